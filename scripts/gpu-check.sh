#!/usr/bin/env bash
# The GPU check of issue #22, ready to run whenever a GPU machine is at hand (nothing here runs in CI):
# build with `--features wgpu`, run forward and training parity on every shipped fixture on the GPU,
# time one short fine-tune of the fixture recipe there and on the CPU, and write every number to
# ${OUT:-gpu-check}/gpu-check.txt (plus each command's log). Exit status: non-zero if any parity fails.
#
#   bash scripts/gpu-check.sh                   # wgpu (Vulkan); DEVICE=cuda needs a `--features cuda` build
#   OUT=/tmp/gpu DEVICE=wgpu:1 bash scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}; DEVICE=${DEVICE:-wgpu}; FEATURE=${DEVICE%%:*}
mkdir -p "$OUT"; REPORT="$OUT/gpu-check.txt"; : > "$REPORT"
say() { echo "$*" | tee -a "$REPORT"; }
say "sam3lab GPU check: $(git rev-parse --short HEAD 2>/dev/null || echo unknown) on $(hostname), device $DEVICE, $(date -u +%FT%TZ)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/gpu: /' | tee -a "$REPORT"
t0=$(date +%s)
FEATURES=(); [ "$FEATURE" = cpu ] || FEATURES=(--features "$FEATURE")   # DEVICE=cpu: a dry run of the script
if ! cargo build --release -p sam3lab-cli "${FEATURES[@]}" > "$OUT/build.log" 2>&1; then
  say "build with --features $FEATURE FAILED (see $OUT/build.log)"; exit 1
fi
say "build ${FEATURES[*]:-(CPU only)}: $(( $(date +%s) - t0 )) s"
BIN=./target/release/sam3lab
status=0
for fx in data/fixtures/sam3-tiny data/fixtures/sam3-tiny-train data/fixtures/sam3-deep3-train data/fixtures/sam3-depth-train; do
  name=$(basename "$fx")
  t=$(date +%s.%N)
  if $BIN parity --fixture "$fx" --device "$DEVICE" --quiet > "$OUT/parity-$name.log" 2>&1; then r=pass; else r=FAIL; status=1; fi
  say "parity $name on $DEVICE: $r ($(tail -1 "$OUT/parity-$name.log" | cut -c1-80)), $(echo "$(date +%s.%N) - $t" | bc) s"
done
# One short fine-tune (the fixture's frozen_te recipe) on the GPU and on the CPU: wall time each.
for dev in "$DEVICE" cpu; do
  d="$OUT/train-$(echo "$dev" | tr ':' '_')"; rm -rf "$d"
  t=$(date +%s.%N)
  if $BIN train --recipe recipes/fixture/frozen_te.toml --out "$d" --device "$dev" > "$d.log" 2>&1; then r=ok; else r=FAIL; status=1; fi
  say "train recipes/fixture/frozen_te.toml on $dev: $r, $(echo "$(date +%s.%N) - $t" | bc) s"
done
say "done in $(( $(date +%s) - t0 )) s; exit $status"
exit $status
