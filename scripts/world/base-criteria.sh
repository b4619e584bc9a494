#!/usr/bin/env bash
# B1-B4 of world v2 on a candidate base (the measurements reproduce makes, run by hand).
# Usage (repo root): bash scripts/world/base-criteria.sh BASE CONFIG WORLD OUT   (WORLD from `sam3lab world gen`)
set -euo pipefail
BIN=${BIN:-./target/release/sam3lab}; BASE=$1; CFG=$2; W=$3; O=$4; mkdir -p $O
for split in broad-eval broad-positive-eval narrow-eval; do
  $BIN eval predict --ckpt $BASE --config $CFG --gt $W/$split.json --images $W --out $O/$split.pred.json > /dev/null 2>&1
  $BIN eval score --gt $W/$split.json --pred $O/$split.pred.json --out $O/$split.score.json > /dev/null 2>&1
done
python3 - "$W" "$O" <<'PY'
import json, struct, sys
W, O = sys.argv[1], sys.argv[2]
g = json.load(open(f"{W}/broad-eval.json"))
pos = {a["image_id"] for a in g["annotations"]}
seen, rows = set(), []
for im in g["images"]:
    if im["id"] not in pos and im["text_input"] not in seen:
        seen.add(im["text_input"]); rows.append({"image": f"{W}/{im['file_name']}", "prompt": im["text_input"], "label": "neg"})
    if len(rows) == 12: break
open(f"{O}/fig11.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in rows))
h = json.dumps({"presence_logit": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(f"{O}/open.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + struct.pack("<f", 50.0))
PY
$BIN eval predict --ckpt $BASE --config $CFG --gt $W/broad-eval.json --images $W --hook zero:presence_logit --hook add:presence_logit=$O/open.safetensors --out $O/gate-open.pred.json > /dev/null 2>&1
$BIN eval score --gt $W/broad-eval.json --pred $O/gate-open.pred.json --out $O/gate-open.score.json > /dev/null 2>&1
$BIN probe presence --ckpt base=$BASE --pairs $O/fig11.jsonl --label neg --config $CFG --out $O/fig11 > /dev/null 2>&1
$BIN probe vocab --ckpt $BASE --config $CFG --narrow $W/prompts/narrow-parts.txt --broad $W/prompts/broad-eval.txt --out $O/vocab
python3 - "$O" <<'PY'
import json, sys
O = sys.argv[1]
s = lambda n: json.load(open(f"{O}/{n}.score.json"))
b = s("broad-eval"); det = b["IL_TP"] / (b["IL_TP"] + b["IL_FN"])
print(f"B1 broad-eval neg_correct {b['neg_correct']:.3f} (>= 0.90), detection {det:.3f} (>= 0.80), pos_mean_IoU {b['pos_mean_IoU']:.3f} (>= 0.55); LVIS mIoU {s('broad-positive-eval')['pos_mean_IoU']:.3f} (>= 0.55)")
p = json.load(open(f"{O}/fig11/presence.json"))
sig = p["series"][0]["values"]
print("B2 fig11 sigma:", [round(x, 3) for x in sig], "closed (<=0.10):", sum(x <= 0.10 for x in sig), "/12 (>= 11);", "; gate-open neg_correct", round(s("gate-open")["neg_correct"], 3), "(<= 0.40)")
print(f"B3 narrow-eval pos_mean_IoU {s('narrow-eval')['pos_mean_IoU']:.3f} (in [0.10, 0.35])")
v = json.load(open(f"{O}/vocab/vocab.json"))
bm = sum(v["broad_row_norms"]) / len(v["broad_row_norms"])
r = [x / bm for x in v["narrow_row_norms"]]
print(f"B4 narrow row norm / broad mean: {min(r):.2f}-{max(r):.2f} (in [0.5, 2]); max cos narrow {v['max_cos_narrow']:.3f} vs broad {v['max_cos_broad']:.3f} (+0.1)")
PY
