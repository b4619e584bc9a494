#!/usr/bin/env bash
# Activation caches for the SAE probe (post §9, probe 4; the SAE itself is `sam3lab sae`).
#
# Captures decoder[last].q0 for every pair under two checkpoints (one cache per pair, with the pair
# index and label in its manifest), trains a small TopK SAE on both, and ranks features by the change
# in (fire rate on negatives − on positives) between the two checkpoints.
#
# Usage: probes/capture.sh [RESULTS_DIR]        (writes RESULTS_DIR/capture)
# Real checkpoints (the post: lvis_replay vs lvis_replay_neg, 256 → 1024, decoder[5].q0):
#   A=… B=… PAIRS=… POINT=decoder.layers.5.q0 WIDTH=1024 probes/capture.sh runs/
source "$(dirname "$0")/common.sh"
OUT="$RESULTS/capture"
A="${A:-$FIXTURE}"
B="${B:-$INPUTS/pert}"
PAIRS="${PAIRS:-$INPUTS/pairs.jsonl}"
POINT="${POINT:-decoder.layers.1.q0}"
WIDTH="${WIDTH:-64}"
"$SAM3LAB" probe capture --ckpt "a=$A" --ckpt "b=$B" --pairs "$PAIRS" --points "$POINT" --out "$OUT/caches"
"$SAM3LAB" sae train --acts "a=$OUT/caches/a" --acts "b=$OUT/caches/b" --point "$POINT" --width "$WIDTH" --topk 4 \
  --steps 300 --out "$OUT/sae"
"$SAM3LAB" sae rank --sae "$OUT/sae" --acts "a=$OUT/caches/a/list.jsonl" --acts "b=$OUT/caches/b/list.jsonl" \
  --pairs "$PAIRS" --point "$POINT" --out "$OUT/rank"
echo "results in $OUT (caches/, sae/, rank/)"
