#!/usr/bin/env bash
# Activation drift (post §6, Fig 6.1 / 6.2 / the rel_Δ table).
#
# Per-concept rel_Δ = ‖A_ckpt − A_base‖ / ‖A_base‖ at three hook points (A = one prompt's activations
# over all the images, stacked), averaged over each prompt group's prompts, for each checkpoint against
# BASE (drift.json; the per-(image, prompt) mean is in drift_pair_mean.json); then renders the §6
# heatmap and Fig 6.1 (the `recovery@STEP` rows form the curve, the others are dotted references).
#
# Usage: probes/drift.sh [RESULTS_DIR]          (default target/probe-results; writes RESULTS_DIR/drift)
# On the fixture it compares two perturbed copies; for real checkpoints set, e.g.:
#   BASE=ckpts/sam3.pt CKPTS="frozen_te=ckpts/frozen_te.pt recovery@400=… recovery@1200=…" \
#   IMAGES=watch_images/ PROMPTS="watch=data/prompts/watch.txt lvis=data/prompts/lvis.txt saco=saco_pos.txt" \
#   POINTS=fusion.layers.4,decoder.layers.5.q0,decoder.layers.5.mean CONFIG= probes/drift.sh runs/
source "$(dirname "$0")/common.sh"
OUT="$RESULTS/drift"
BASE="${BASE:-$FIXTURE}"
CKPTS="${CKPTS:-pert=$INPUTS/pert recovery@100=$INPUTS/pert2}"
IMAGES="${IMAGES:-$INPUTS/images}"
PROMPTS="${PROMPTS:-shapes=$INPUTS/shapes.txt lvis=data/prompts/lvis.txt watch=data/prompts/watch.txt}"
POINTS="${POINTS:-fusion.layers.1,decoder.layers.1.q0,decoder.layers.1.mean}"
args=()
for c in $CKPTS; do args+=(--ckpt "$c"); done
for p in $PROMPTS; do args+=(--prompts "$p"); done
"$SAM3LAB" probe drift --base "$BASE" "${args[@]}" --images "$IMAGES" --points "$POINTS" --out "$OUT"
FIRST_POINT="${POINTS%%,*}"
REFS="$(for c in $CKPTS; do l="${c%%=*}"; [[ "$l" == *@* ]] || printf '%s,' "$l"; done)"
"$SAM3LAB" figures --from "$OUT/drift.json" --kind heatmap --out "$OUT/figures"
"$SAM3LAB" figures --from "$OUT/drift.json" --kind fig61 --point "$FIRST_POINT" --references "${REFS%,}" --out "$OUT/figures"
echo "results in $OUT (drift.json, drift_pair_mean.json, drift.csv, drift_prompts.csv, drift_pairs.csv, figures/)"
