#!/usr/bin/env bash
# Regenerate data/fixtures/flops-reference.json: PyTorch's per-stage FLOP count of a SAM3 forward
# (benches/reference/flops.py) for the full-size model and the fixture. Needs the reference Python
# (torch + Meta's sam3), e.g. PY=/opt/sam3-ref/bin/python bash scripts/flops-reference.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python3}"
full=$("$PY" benches/reference/flops.py --full --threads 2 2>/dev/null)
fixture=$("$PY" benches/reference/flops.py --fixture data/fixtures/sam3-tiny 2>/dev/null)
version=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')
"$PY" - "$full" "$fixture" "$version" <<'PYEOF'
import json, os, sys
full, fixture, version = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
out = {"source": f"benches/reference/flops.py: torch.utils.flop_counter.FlopCounterMode on Meta's sam3 modules (torch {version}), prompt \"a red cat\", text-only, batch 1; regenerate with scripts/flops-reference.sh",
       "models": {"full": full, "sam3-tiny": fixture}}
tmp = "data/fixtures/flops-reference.json.tmp"
with open(tmp, "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
os.replace(tmp, "data/fixtures/flops-reference.json")
PYEOF
echo "wrote data/fixtures/flops-reference.json"
