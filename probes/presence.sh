#!/usr/bin/env bash
# The presence gate, prompt by prompt (post §1, Fig 1.1).
#
# σ(presence_logit) — SAM3's presence_logit_dec.sigmoid() — of each checkpoint on every negative
# (image, prompt) pair, as bars, with the image processor's 0.3 confidence threshold as the line.
#
# Usage: probes/presence.sh [RESULTS_DIR]          (writes RESULTS_DIR/presence)
# Real checkpoints (the post: the watch FT vs base on 12 SA-Co/Gold negative prompts):
#   CKPTS="watch_ft=ckpts/frozen_te.pt base=ckpts/sam3.pt" PAIRS=saco_neg12.jsonl probes/presence.sh runs/
source "$(dirname "$0")/common.sh"
OUT="$RESULTS/presence"
CKPTS="${CKPTS:-pert=$INPUTS/pert base=$FIXTURE}"
PAIRS="${PAIRS:-$INPUTS/pairs.jsonl}"
LABEL="${LABEL:-neg}"
args=()
for c in $CKPTS; do args+=(--ckpt "$c"); done
"$SAM3LAB" probe presence "${args[@]}" --pairs "$PAIRS" --label "$LABEL" --out "$OUT"
"$SAM3LAB" figures --from "$OUT/presence.json" --kind fig11 --name fig1_1_presence --out "$OUT/figures"
echo "results in $OUT (presence.json, presence.csv, figures/)"
