#!/usr/bin/env bash
# Steering sweep (post §9, the activation-steering null intervention).
#
# Adds α·(B.q0 − A.q0) (the mean difference over the negative pairs) at the last decoder layer's q0
# of CKPT and reports neg_correct and positive recall for α ∈ {0, 0.5, 1, 1.5, 2, 3}.
#
# Usage: probes/steer.sh [RESULTS_DIR]          (writes RESULTS_DIR/steer)
# Real checkpoints (the post: CKPT = A = lvis_replay, B = lvis_replay_neg, point decoder[5].q0):
#   CKPT=… A=… B=… PAIRS=… POINT=decoder.layers.5.q0 probes/steer.sh runs/
source "$(dirname "$0")/common.sh"
CKPT="${CKPT:-$FIXTURE}"
A="${A:-$FIXTURE}"
B="${B:-$INPUTS/pert}"
PAIRS="${PAIRS:-$INPUTS/pairs.jsonl}"
POINT="${POINT:-decoder.layers.1.q0}"
"$SAM3LAB" probe steer --ckpt "$CKPT" --point "$POINT" --direction "mean-diff:$A,$B" --direction-label neg \
  --alphas 0.5,1,1.5,2,3 --pairs "$PAIRS" --out "$RESULTS/steer"
"$SAM3LAB" figures --from "$RESULTS/steer/steer_heatmap.json" --kind heatmap --out "$RESULTS/steer/figures"
echo "results in $RESULTS/steer (steer.json, steer.csv, direction.safetensors, figures/)"
