# Shared setup for the probe recipes (sourced, not run).
#
# Sets: ROOT (repo root), SAM3LAB (the binary: $SAM3LAB, else target/release/sam3lab, built if
# missing, else `sam3lab` on PATH), FIXTURE (data/fixtures/sam3-tiny), RESULTS (the results root:
# first argument of the recipe, else $RESULTS, else target/probe-results), INPUTS
# ($RESULTS/inputs: generated PNGs, pairs.jsonl, images.txt, shapes.txt and two perturbed copies of
# the fixture, `pert` and `pert2`, made once).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -z "${SAM3LAB:-}" ]]; then
  if [[ -x target/release/sam3lab ]]; then
    SAM3LAB=target/release/sam3lab
  elif command -v sam3lab >/dev/null; then
    SAM3LAB=sam3lab
  else
    cargo build --release -p sam3lab-cli
    SAM3LAB=target/release/sam3lab
  fi
fi
FIXTURE=data/fixtures/sam3-tiny
RESULTS="${1:-${RESULTS:-target/probe-results}}"
INPUTS="$RESULTS/inputs"
if [[ ! -f "$INPUTS/pairs.jsonl" || ! -d "$INPUTS/pert2" ]]; then
  "$SAM3LAB" probe demo-inputs --out "$INPUTS" --images 4 --seed 0 \
    --perturb "pert=$FIXTURE" --perturb "pert2=$FIXTURE" --noise 0.02
fi
