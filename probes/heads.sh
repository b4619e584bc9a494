#!/usr/bin/env bash
# Per-head ranking and the layer-level cosine probe (post §9, probes 1 and 2).
#
# For every cross-text-attention head of the decoder: mean ‖contrib_B − contrib_A‖₂ at the presence
# slot q0 over the negative pairs, cos(B − A, REF − A) ("toward base") and each checkpoint's mean
# contribution magnitude, ranked; then the same cosine at every decoder layer's q0. Renders the
# module × head heatmaps.
#
# Usage: probes/heads.sh [RESULTS_DIR]          (writes RESULTS_DIR/heads and RESULTS_DIR/layers)
# Real checkpoints (the post: A = lvis_replay, B = lvis_replay_neg, REF = base, decoder[3..5]):
#   A=… B=… REF=… PAIRS=saco_neg_probe.jsonl MODULE=decoder.layers.3..5.ca_text probes/heads.sh runs/
source "$(dirname "$0")/common.sh"
A="${A:-$FIXTURE}"
B="${B:-$INPUTS/pert}"
REF="${REF:-$INPUTS/pert2}"
PAIRS="${PAIRS:-$INPUTS/pairs.jsonl}"
MODULE="${MODULE:-decoder.layers.0..1.ca_text}"
"$SAM3LAB" probe heads --a "$A" --b "$B" --ref "$REF" --pairs "$PAIRS" --module "$MODULE" --label neg --slot q0 --out "$RESULTS/heads"
"$SAM3LAB" probe heads --a "$A" --b "$B" --ref "$REF" --pairs "$PAIRS" --module 'decoder.layers.*.q0' --label neg --out "$RESULTS/layers"
for h in heads_delta_heatmap heads_cos_heatmap; do
  "$SAM3LAB" figures --from "$RESULTS/heads/$h.json" --kind heatmap --out "$RESULTS/heads/figures"
done
echo "results in $RESULTS/heads (heads.json, heads.csv, figures/) and $RESULTS/layers"
