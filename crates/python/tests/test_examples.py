"""examples/python print what their Rust twins print (the twins as `cargo test` builds them)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import IMAGE, ROOT

TWINS = [("q0_cosine.py", "q0_cosine"), ("layer_cosine.py", "q0_toward_base")]


def run(cmd):
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}:\n{r.stderr}"
    return r.stdout


def per_layer(text):
    return [line for line in text.splitlines() if line.startswith("decoder.layers.")]


@pytest.mark.parametrize("py, rust", TWINS)
def test_python_examples_print_their_rust_twins_numbers(py, rust):
    exe = os.path.join(ROOT, "target", "release", "examples", rust)
    if not os.access(exe, os.X_OK):
        pytest.fail(f"no {exe}: `cargo test --release --workspace` builds the examples (scripts/test.sh does)")
    ours = per_layer(run([sys.executable, os.path.join("examples", "python", py)]))
    theirs = per_layer(run([exe]))
    assert ours and ours == theirs


def test_perturbed_is_seeded_and_changes_the_outputs(model):
    a, b, c = model.perturbed(0.02, 1), model.perturbed(0.02, 1), model.perturbed(0.02, 2)
    assert a.sha256 is None and "perturbed" in a.path
    outs = [m.run_with_cache(IMAGE, "a red cat", [])[0]["presence_logit"] for m in (model, a, b, c)]
    assert outs[1].tobytes() == outs[2].tobytes()
    assert len({o.tobytes() for o in (outs[0], outs[1], outs[3])}) == 3
    assert np.array_equal(model.perturbed(0.0, 5).run_with_cache(IMAGE, "a red cat", [])[0]["scores"],
                          model.run_with_cache(IMAGE, "a red cat", [])[0]["scores"])
    with pytest.raises(ValueError, match="amplitude"):
        model.perturbed(-1.0, 0)
