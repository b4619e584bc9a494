"""Activation caches: Cache.save / sam3lab.load_cache in the project's cache format (the Rust
writer and reader), CLI-written caches in Python, and the batched image × prompt forms."""

import hashlib
import json
import os

import numpy as np
import pytest

import sam3lab
from conftest import FIXTURE, IMAGE, ROOT

POINTS = ["decoder.layers.*.q0", "presence_logit"]
OTHER_IMAGE = os.path.join(ROOT, "figures", "post02", "fig8_1_bias_projection.png")


def file_sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def same_bytes(a, b):
    assert list(a) == list(b), (list(a), list(b))
    for k in a:
        assert a[k].dtype == b[k].dtype == np.float32, k
        assert a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes(), k


def test_a_saved_cache_round_trips_with_its_manifest(model, tmp_path):
    _, cache = model.run_with_cache(IMAGE, "a red cat", POINTS)
    m = cache.manifest
    # what the manifest records, against independent sources
    assert m["checkpoint_sha256"] == model.sha256 == file_sha256(os.path.join(FIXTURE, "weights.safetensors"))
    assert m["image"] == {"path": IMAGE, "sha256": file_sha256(IMAGE)}
    assert m["prompt"] == "a red cat"
    assert [p for p, _ in m["hook_spec"]] == POINTS
    assert m["config"]["d_model"] == json.load(open(os.path.join(FIXTURE, "config.json")))["model"]["d_model"]
    assert m["sam3lab_version"] == sam3lab.__version__

    path = tmp_path / "c.safetensors"
    cache.save(path)
    back = sam3lab.load_cache(path)
    assert isinstance(back, sam3lab.Cache)
    same_bytes(cache, back)
    assert back.manifest == cache.manifest
    with open(tmp_path / "c.json") as f:
        assert json.load(f) == cache.manifest  # the sidecar
    assert sorted(os.listdir(tmp_path)) == ["c.json", "c.safetensors"]  # no temporary left behind

    # same cache → same bytes
    cache.save(tmp_path / "d.safetensors")
    for ext in ("safetensors", "json"):
        assert (tmp_path / f"c.{ext}").read_bytes() == (tmp_path / f"d.{ext}").read_bytes()

    # an edited cache: a new entry (any numeric array is stored as float32) and a free-form field
    back["mine"] = np.arange(6, dtype=np.float64).reshape(2, 3)
    back.manifest["extra"]["note"] = "edited"
    back.save(tmp_path / "e.safetensors")
    again = sam3lab.load_cache(tmp_path / "e.safetensors")
    assert list(again) == list(cache) + ["mine"]
    assert again["mine"].dtype == np.float32 and np.array_equal(again["mine"], np.arange(6).reshape(2, 3))
    assert again.manifest["extra"]["note"] == "edited"


def test_cache_errors_are_value_errors(model, tmp_path):
    _, cache = model.run_with_cache(IMAGE, "a red cat", ["presence_logit"])
    with pytest.raises(ValueError, match=r"\.json"):
        cache.save(tmp_path / "c.json")
    cache.manifest["note"] = "top level"
    with pytest.raises(ValueError, match="unknown field `note`.*extra"):
        cache.save(tmp_path / "c.safetensors")
    assert not os.listdir(tmp_path)
    (tmp_path / "junk.safetensors").write_bytes(b"not a cache at all")
    with pytest.raises(ValueError, match="junk.safetensors"):
        sam3lab.load_cache(tmp_path / "junk.safetensors")
    with pytest.raises(ValueError, match="missing.safetensors"):
        sam3lab.load_cache(tmp_path / "missing.safetensors")


def test_a_cache_written_by_the_cli_loads_in_python(model, cli, tmp_path):
    path = tmp_path / "run.safetensors"
    cli("run", "--ckpt", FIXTURE, "--image", IMAGE, "--prompt", "a red cat", "--capture", *POINTS, "--out", path)
    theirs = sam3lab.load_cache(path)
    out, mine = model.run_with_cache(IMAGE, "a red cat", POINTS)
    same_bytes(mine, theirs)  # same engine, same capture order
    tm, mm = theirs.manifest, mine.manifest
    for key in ("checkpoint_sha256", "config", "prompt", "hook_spec", "sam3lab_version", "seed"):
        assert tm[key] == mm[key], key
    assert tm["image"]["sha256"] == mm["image"]["sha256"] == file_sha256(IMAGE)
    assert tm["extra"]["presence_logit"] == mm["extra"]["presence_logit"] == out["presence_logit"].ravel().tolist()
    with open(tmp_path / "run.json") as f:
        assert json.load(f) == tm


def test_batched_forms_equal_one_run_per_pair(model):
    arr = np.asarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3)), dtype=np.uint8)
    images, prompts = [IMAGE, arr, OTHER_IMAGE], ["a red cat", "a dog"]
    runs = model.run_with_cache_batch(images, prompts, POINTS + ["trunk.blocks.0"])
    assert len(runs) == 3 and all(len(r) == 2 for r in runs)
    for i, img in enumerate(images):
        for j, p in enumerate(prompts):
            out, cache = model.run_with_cache(img, p, POINTS + ["trunk.blocks.0"])
            bout, bcache = runs[i][j]
            same_bytes(cache, bcache)
            for k in out:
                assert out[k].tobytes() == bout[k].tobytes(), (i, j, k)
            assert bcache.manifest == cache.manifest
    assert runs[1][0][1].manifest["image"]["sha256"] == hashlib.sha256(arr.tobytes()).hexdigest()

    head = "decoder.layers.1.ca_text.head.0"
    hooks = [(head, "zero"), ("decoder.layers.0.q0", lambda a: a * 0.5)]
    hruns = model.run_with_hooks_batch(images[:2], prompts, hooks, capture=["presence_logit"])
    for i in range(2):
        for j, p in enumerate(prompts):
            out, cache = model.run_with_hooks(images[i], p, hooks, capture=["presence_logit"])
            same_bytes(cache, hruns[i][j][1])
            assert out["scores"].tobytes() == hruns[i][j][0]["scores"].tobytes()
            # and the hooks did something
            assert cache["presence_logit"].tobytes() != runs[i][j][1]["presence_logit"].tobytes()


def test_batched_form_errors(model):
    with pytest.raises(ValueError, match="list of images"):
        model.run_with_cache_batch(IMAGE, ["a red cat"], [])
    with pytest.raises(ValueError, match=r"decoder\.layers\.1\.q0"):
        model.run_with_cache_batch([IMAGE], ["a red cat"], ["decoder.layer.1.q0"])

    def boom(a):
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        model.run_with_hooks_batch([IMAGE], ["a red cat", "a dog"], [("decoder.layers.1.q0", boom)])
