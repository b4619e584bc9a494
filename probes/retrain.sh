#!/usr/bin/env bash
# Presence-head retrain (post §5, "presence_only"), both modes.
#
# BCE on the presence logit over balanced positive/negative pairs, Adam, everything but the named
# tensors frozen; logs the Table 5.1 trajectory. The cached mode captures decoder[last].q0 once and
# trains presence_token_out_norm + presence_token_head on it; the full mode runs the whole forward
# each step and also trains the presence token. Then checks, with `probe drift`, that the retrained
# checkpoint's upstream activations are byte-identical to the input's (rel_Δ = 0 at q0, as the post's
# presence_only control) and writes the trajectory.
#
# Usage: probes/retrain.sh [RESULTS_DIR]        (writes RESULTS_DIR/retrain)
# Real checkpoint (the post: fork from lvis_replay, 2 500 + 2 500 pairs, 1 000 steps at 1e-4):
#   CKPT=ckpts/lvis_replay.pt PAIRS=watch_pairs.jsonl IMAGES=watch_images/ STEPS=1000 LR=1e-4 \
#   POINT=decoder.layers.5.q0 CONFIG= probes/retrain.sh runs/
source "$(dirname "$0")/common.sh"
OUT="$RESULTS/retrain"
CKPT="${CKPT:-$FIXTURE}"
PAIRS="${PAIRS:-$INPUTS/pairs.jsonl}"
STEPS="${STEPS:-300}"
LR="${LR:-1e-3}"
IMAGES="${IMAGES:-$INPUTS/images}"
POINT="${POINT:-decoder.layers.1.q0}"   # the last decoder layer's q0 (decoder.layers.5.q0 on SAM3)
# The retrained file is a bare safetensors: reading it back needs the fixture's config (empty for SAM3).
CONFIG="${CONFIG-$FIXTURE/config.json}"
cfg=()
[[ -n "$CONFIG" ]] && cfg=(--config "$CONFIG")
"$SAM3LAB" retrain --ckpt "$CKPT" --train 'transformer.decoder.presence_token*' --cached --pairs "$PAIRS" \
  --steps "$STEPS" --lr "$LR" --seed 0 --out "$OUT/presence_only_cached.safetensors"
"$SAM3LAB" retrain --ckpt "$CKPT" --train 'transformer.decoder.presence_token*' --pairs "$PAIRS" \
  --steps "$(( STEPS < 60 ? STEPS : 60 ))" --lr "$LR" --seed 0 --out "$OUT/presence_only_full.safetensors"
"$SAM3LAB" probe drift "${cfg[@]}" --base "$CKPT" --ckpt "presence_only=$OUT/presence_only_cached.safetensors" \
  --images "$IMAGES" --prompts "shapes=$INPUTS/shapes.txt" --points "$POINT" --out "$OUT/upstream_drift"
echo "results in $OUT (*.safetensors, *.manifest.json with the trajectory, *.trajectory.csv, upstream_drift/)"
