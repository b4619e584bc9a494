#!/usr/bin/env bash
# F1-only selection of the fine-tunes' learning rate (issue 26 item 4): frozen_te from the candidate
# base at 600 steps for each rate; narrow-eval pos_mean_IoU (eval predict + score) is the only number
# looked at. Every variant is logged in results.csv.
# Usage (repo root): bash scripts/world/f1-select.sh BASE CONFIG WORLD OBJECTIVE OUT   (LRS="1e-4 3e-4" to choose rates)
set -euo pipefail
BIN=${BIN:-./target/release/sam3lab}; BASE=$1; CFG=$2; WORLD=$3; OBJ=$4; OUT=$5; mkdir -p $OUT
echo "lr,steps,narrow_pos_mean_IoU,base_sha256" > $OUT/results.csv.tmp
for lr in ${LRS:-1e-4 3e-4 1e-3}; do
  d=$OUT/lr_$lr; mkdir -p $d
  sed -e "s#../../data/world/base.safetensors#$BASE#" -e "s#../../data/world/config.json#$CFG#" \
      -e "s#../../runs/world/#$WORLD/#g" -e "s#../../data/world/objective.toml#$OBJ#" \
      -e "s#^lr = .*#lr = $lr#" -e "s#^steps = .*#steps = 600#" -e "s#^checkpoints = .*#checkpoints = [600]#" \
      -e "s#^every = 250#every = 600#" recipes/world/frozen_te.toml > $d/recipe.toml
  [ -f $d/train/step_000600.safetensors ] || $BIN train --recipe $d/recipe.toml --out $d/train > $d/train.log 2>&1
  $BIN eval predict --ckpt $d/train/step_000600.safetensors --config $CFG --gt $WORLD/narrow-eval.json --images $WORLD --out $d/narrow.pred.json > /dev/null 2>&1
  $BIN eval score --gt $WORLD/narrow-eval.json --pred $d/narrow.pred.json --out $d/narrow.score.json > /dev/null 2>&1
  iou=$(python3 -c "import json;print(json.load(open('$d/narrow.score.json'))['pos_mean_IoU'])")
  echo "$lr,600,$iou,$(sha256sum $BASE | cut -c1-16)" | tee -a $OUT/results.csv.tmp
done
mv $OUT/results.csv.tmp $OUT/results.csv
