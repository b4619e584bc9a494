#!/usr/bin/env bash
# The project's tests: the README's second command, and exactly what .ci/run runs.
# 1. Every Rust test of the workspace (one profile: release).
# 2. The Python package built from this tree (maturin, into the project-local venv target/py-venv,
#    which this script makes and fills from PyPI), then its pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --workspace
VENV="$PWD/target/py-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "maturin>=1.5,<2" numpy pytest
(cd crates/python && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" maturin develop --release -q)
"$VENV/bin/python" -m pytest -q crates/python/tests
