"""The Python package against the fixture exported from Meta's code, and its error paths."""

import json
import os

import numpy as np
import pytest

import sam3lab

from conftest import FIXTURE, IMAGE, ROOT, read_safetensors


def test_run_with_cache_equals_the_reference_activations(model):
    """Every batch-first key of the fixture that is a hook point of the same shape, within the
    fixture's parity tolerance (atol 1e-4 + rtol 1e-3; masks atol 1e-3)."""
    cfg = json.load(open(os.path.join(FIXTURE, "config.json")))
    expected = read_safetensors(os.path.join(FIXTURE, "expected.safetensors"))
    inputs = read_safetensors(os.path.join(FIXTURE, "inputs.safetensors"))
    image = np.ascontiguousarray(inputs["image_uint8"])
    prompt = cfg["tokenizer"]["prompt"]
    names = dict(model.hook_names())
    keys = [k for k, v in cfg["expected"].items()
            if k in names and k in expected and v.get("layout", "").startswith("B,")
            and list(expected[k].shape) == names[k]]
    out, cache = model.run_with_cache(image, prompt, keys)
    compared = 0
    for k in keys:
        ref = expected[k].astype(np.float64)
        got = cache[k].astype(np.float64)
        atol = 1e-3 if k.startswith("seg.") else 1e-4
        assert np.all(np.abs(got - ref) <= atol + 1e-3 * np.abs(ref)), f"{k}: max |d| {np.abs(got - ref).max()}"
        compared += 1
    assert compared >= 20, f"only {compared} keys compared: {keys}"
    for key, ours in [("out.pred_logits", "pred_logits"), ("out.pred_boxes", "boxes"), ("out.pred_masks", "masks")]:
        assert np.allclose(out[ours], expected[key], atol=1e-3, rtol=1e-3), key


def test_zero_scale_replace_and_callable_agree_bit_for_bit(model):
    """Zeroing a head through four independent paths gives the same bytes, and changes the outputs."""
    head = "decoder.layers.1.ca_text.head.0"
    shape = dict(model.hook_names())[head]
    base, _ = model.run_with_cache(IMAGE, "a red cat", [])
    runs = [
        model.run_with_hooks(IMAGE, "a red cat", [(head, "zero")])[0],
        model.run_with_hooks(IMAGE, "a red cat", [(head, ("scale", 0.0))])[0],
        model.run_with_hooks(IMAGE, "a red cat", [(head, ("replace", np.zeros(shape, np.float32)))])[0],
        model.run_with_hooks(IMAGE, "a red cat", [(head, lambda a: np.zeros_like(a))])[0],
    ]
    for r in runs[1:]:
        for k in runs[0]:
            assert runs[0][k].tobytes() == r[k].tobytes(), k
    assert runs[0]["presence_logit"].tobytes() != base["presence_logit"].tobytes()


def test_add_steers_and_capture_sees_the_edit(model):
    q0 = "decoder.layers.1.q0"
    d = dict(model.hook_names())[q0][-1]
    v = np.ones(d, np.float32)
    _, plain = model.run_with_cache(IMAGE, "a red cat", [q0])
    out, cache = model.run_with_hooks(IMAGE, "a red cat", [(q0, ("add", v, 2.0))], capture=[q0])
    assert np.allclose(cache[q0], plain[q0] + 2.0, atol=1e-5)


def test_a_misspelt_name_raises_with_the_nearest_names(model):
    with pytest.raises(ValueError, match=r"decoder\.layers\.1\.q0"):
        model.run_with_cache(IMAGE, "a red cat", ["decoder.layer.1.q0"])


def test_a_raising_callable_surfaces_as_its_own_exception(model):
    def boom(a):
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        model.run_with_hooks(IMAGE, "a red cat", [("decoder.layers.1.q0", boom)])


def test_a_callable_returning_the_wrong_shape_is_a_value_error(model):
    with pytest.raises(ValueError, match="shape"):
        model.run_with_hooks(IMAGE, "a red cat", [("decoder.layers.1.q0", lambda a: a[..., :3])])


def test_bad_inputs_are_python_exceptions(model):
    with pytest.raises(ValueError, match="no-such"):
        sam3lab.load(os.path.join(ROOT, "no-such-checkpoint.safetensors"))
    with pytest.raises(ValueError, match="H×W×3"):
        model.run_with_cache(np.zeros((4, 4), np.uint8), "a red cat", [])
    with pytest.raises(ValueError, match="action"):
        model.run_with_hooks(IMAGE, "a red cat", [("decoder.layers.1.q0", ("explode", 1))])
    with pytest.raises(ValueError):
        sam3lab.load(FIXTURE, device="tpu")


def test_a_pil_image_runs_like_its_array(model):
    Image = pytest.importorskip("PIL.Image")
    img = Image.open(IMAGE)
    arr = np.asarray(img.convert("RGB"))
    for pil in (img, img.convert("RGBA"), img.convert("RGB")):
        out, cache = model.run_with_cache(pil, "a red cat", ["presence_logit"])
        ref, rcache = model.run_with_cache(arr, "a red cat", ["presence_logit"])
        assert out["scores"].tobytes() == ref["scores"].tobytes()
        assert cache.manifest["image"]["sha256"] == rcache.manifest["image"]["sha256"]
