#!/usr/bin/env bash
# B5 of world v2: the long unfrozen fine-tune (recipes/world/b5_long_unfrozen.toml), then narrow-eval
# pos_mean_IoU and every part's oracle best-query IoU of its last checkpoint.
# Usage (repo root): bash scripts/world/b5-long-unfrozen.sh BASE CONFIG WORLD OBJECTIVE OUT
set -euo pipefail
BIN=${BIN:-./target/release/sam3lab}; BASE=$1; CFG=$2; WORLD=$3; OBJ=$4; d=$5; mkdir -p $d
sed -e "s#../../data/world/base.safetensors#$BASE#" -e "s#../../data/world/config.json#$CFG#" \
    -e "s#../../runs/world/#$WORLD/#g" -e "s#../../data/world/objective.toml#$OBJ#" \
    recipes/world/b5_long_unfrozen.toml > $d/recipe.toml
$BIN train --recipe $d/recipe.toml --out $d/train > $d/train.log 2>&1
last=$(ls $d/train/step_*.safetensors | sort | tail -1)
$BIN eval predict --ckpt $last --config $CFG --gt $WORLD/narrow-eval.json --images $WORLD --out $d/narrow.pred.json > /dev/null 2>&1
$BIN eval score --gt $WORLD/narrow-eval.json --pred $d/narrow.pred.json --out $d/narrow.score.json > /dev/null 2>&1
$BIN eval oracle --ckpt $last --config $CFG --gt $WORLD/narrow-eval.json --out $d/oracle.json > $d/oracle.txt 2>&1
echo done
