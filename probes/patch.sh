#!/usr/bin/env bash
# Causal patching (post §9, probe 3) with the lockstep caveat.
#
# Transplants the last decoder layer's output from SOURCE into TARGET on every pair and reports, per
# pair, the presence σ and kept detections before/after, and the fraction of TARGET's false
# positives on negatives the patch silences — next to patching q0 alone and the whole layer output.
#
# Usage: probes/patch.sh [RESULTS_DIR]          (writes RESULTS_DIR/patch)
# Real checkpoints (the post: lvis_replay_neg → lvis_replay, decoder[5]):
#   SOURCE=… TARGET=… PAIRS=… POINTS=decoder.layers.5.out probes/patch.sh runs/
source "$(dirname "$0")/common.sh"
SOURCE="${SOURCE:-$FIXTURE}"
TARGET="${TARGET:-$INPUTS/pert}"
PAIRS="${PAIRS:-$INPUTS/pairs.jsonl}"
POINTS="${POINTS:-decoder.layers.1.out}"
"$SAM3LAB" probe patch --source "$SOURCE" --target "$TARGET" --points "$POINTS" --pairs "$PAIRS" --out "$RESULTS/patch"
"$SAM3LAB" figures --from "$RESULTS/patch/patch_heatmap.json" --kind heatmap --out "$RESULTS/patch/figures"
echo "results in $RESULTS/patch (patch.json, patch_summary.csv, patch_pairs.csv, figures/)"
