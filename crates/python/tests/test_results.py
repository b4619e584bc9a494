"""The results readers and the SAE files, against what the CLI writes on the shipped fixture:
read_table / read_json (a CSV checked against the JSON the same command wrote beside it),
load_sae (against its own files and numpy), and `sae export --format saelens`."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import sam3lab
from conftest import FIXTURE, IMAGE, ROOT, read_safetensors

POINT = "decoder.layers.1.q0"
IMAGES = [IMAGE, os.path.join(ROOT, "figures", "post02", "fig8_1_bias_projection.png")]
PROMPTS = ["a red cat", "a dog", "a watch"]


@pytest.fixture(scope="module")
def sae_run(cli, perturbed_fixture, tmp_path_factory):
    """docs/sae.md's fixture recipe, small: caches from `sam3lab run` on the fixture (`base`) and
    a perturbed copy (`other`), a ReLU+L1 and a TopK SAE from `sae train`, `sae rank` from base to
    other, and both SAEs exported for SAELens."""
    w = tmp_path_factory.mktemp("sae")
    pairs, i = [], 0
    for label, ckpt in (("acts", FIXTURE), ("other", perturbed_fixture)):
        (w / label).mkdir()
        listing = []
        for k, (img, p) in enumerate((img, p) for img in IMAGES for p in PROMPTS):
            if label == "acts":
                pairs.append(json.dumps({"image": img, "prompt": p, "label": "neg" if k % 2 == 0 else "pos"}))
            cli("run", "--ckpt", ckpt, "--image", img, "--prompt", p, "--capture", POINT, "--out", w / label / f"f{k}.safetensors")
            listing.append(json.dumps({"path": f"f{k}.safetensors", "pair": k}))
            i = k + 1
        (w / label / "list.jsonl").write_text("\n".join(listing) + "\n")
    (w / "pairs.jsonl").write_text("\n".join(pairs) + "\n")
    acts, other = w / "acts" / "list.jsonl", w / "other" / "list.jsonl"
    common = ["--point", POINT, "--width", "16", "--steps", "100", "--lr", "3e-3", "--batch", "6", "--seed", "0"]
    cli("sae", "train", "--acts", f"base={acts}", "--l1", "0.5", *common, "--out", w / "relu")
    cli("sae", "train", "--acts", f"base={acts}", "--topk", "3", *common, "--out", w / "topk")
    cli("sae", "rank", "--sae", w / "relu", "--pairs", w / "pairs.jsonl", "--acts", f"base={acts}", f"other={other}",
        "--from", "base", "--to", "other", "--out", w / "rank")
    for kind in ("relu", "topk"):
        cli("sae", "export", "--sae", w / kind, "--format", "saelens", "--out", w / f"saelens-{kind}")
    rows = np.concatenate([sam3lab.load_cache(w / "acts" / f"f{k}.safetensors")[POINT] for k in range(i)])
    return w, rows


def test_read_table_equals_the_json_beside_it(sae_run):
    w, _ = sae_run
    t = sam3lab.read_table(w / "rank" / "rank.csv")
    j = sam3lab.read_json(w / "rank" / "rank.json")
    # the `# key: value` lines
    assert t.meta["source"] == f"{j['tool']} (sam3lab {j['sam3lab_version']})"
    assert j["sae"]["weights_sha256"] in t.meta["sae"] and j["pairs"]["sha256"] in t.meta["pairs"]
    assert t.meta["score"] == j["score"]
    # the columns, typed
    feats = j["features"]
    assert len(t) == len(feats) == j["sae"]["width"]
    assert t["rank"].dtype == np.int64 and t["feature"].dtype == np.int64
    assert t["feature"].tolist() == [f["feature"] for f in feats]
    assert t["score"].dtype == np.float64 and t["score"].tolist() == [f["score"] for f in feats]
    assert np.any(t["score"] != 0)  # the two checkpoints differ
    for c, ck in enumerate(j["checkpoints"]):
        for key in ("fire_neg", "fire_pos", "mean_neg", "mean_pos"):
            assert t[f"{ck['label']}.{key}"].tolist() == [f["rates"][c][key] for f in feats], (ck["label"], key)
    assert t.rows()[0] == tuple(t[c][0].item() for c in t.columns)


def test_read_table_on_weights_diff(cli, tmp_path):
    """Another command's tables: a text column, comment lines without a key, and `# source:`."""
    base, other = (os.path.join(ROOT, "data", "world", p) for p in ("base.safetensors", "candidates/v2a/base.safetensors"))
    cli("weights", "diff", base, f"v2a={other}", "--out", tmp_path)
    t = sam3lab.read_table(tmp_path / "tensors.csv")
    j = sam3lab.read_json(tmp_path / "diff.json")
    assert t["name"].dtype.kind == "U" and t["name"].tolist() == [x["name"] for x in j["tensors"]]
    assert t["numel"].tolist() == [x["numel"] for x in j["tensors"]]
    assert t["rel_change"].tolist() == [x["rel_change"] for x in j["tensors"]]
    table = sam3lab.read_table(tmp_path / "table.csv")
    tj = sam3lab.read_json(tmp_path / "table.json")
    assert table.meta["source"] == tj["source"]
    assert table["group"].tolist() == tj["rows"] and table["v2a"].tolist() == [r[0] for r in tj["values"]]


def test_read_table_and_read_json_errors(sae_run, tmp_path):
    w, _ = sae_run
    text = (w / "rank" / "rank.csv").read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text(text + "1,2\n")  # a record narrower than the header
    line = len(text.splitlines()) + 1
    with pytest.raises(ValueError, match=rf"bad\.csv:{line}: 2 fields"):
        sam3lab.read_table(bad)
    with pytest.raises(ValueError, match="missing.csv"):
        sam3lab.read_table(tmp_path / "missing.csv")
    (tmp_path / "bad.json").write_text('{"a": ')
    with pytest.raises(ValueError, match="bad.json"):
        sam3lab.read_json(tmp_path / "bad.json")


def test_to_pandas(sae_run):
    pd = pytest.importorskip("pandas")
    t = sam3lab.read_table(sae_run[0] / "rank" / "rank.csv")
    df = t.to_pandas()
    assert list(df.columns) == t.columns and df.attrs["score"] == t.meta["score"]
    assert np.array_equal(df["score"].to_numpy(), t["score"])
    # pandas' own reader agrees on the numbers
    assert np.array_equal(pd.read_csv(sae_run[0] / "rank" / "rank.csv", comment="#")["score"].to_numpy(), t["score"])


def numpy_encode(x, s, k=None):
    pre = (x.astype(np.float64) - s["b_dec"]) @ s["W_enc"] + s["b_enc"]
    if k is not None:
        thr = np.sort(pre, axis=-1)[:, -k][:, None]
        pre = np.where(pre >= thr, pre, 0.0)
    return np.maximum(pre, 0.0)


@pytest.mark.parametrize("kind", ["relu", "topk"])
def test_load_sae_matches_its_files_and_numpy(sae_run, kind):
    w, rows = sae_run
    s = sam3lab.load_sae(w / kind)
    files = read_safetensors(w / kind / "sae.safetensors")
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        got = getattr(s, name)
        assert got.dtype == np.float32 and got.tobytes() == files[name].tobytes(), name
    meta = sam3lab.read_json(w / kind / "sae.json")
    assert s.meta == meta and meta["point"] == POINT
    k = meta["activation"].get("k")
    assert (kind == "topk") == (k is not None)
    f = s.encode(rows)
    assert f.shape == (rows.shape[0], meta["width"])
    assert np.allclose(f, numpy_encode(rows, files, k), atol=1e-5)
    if k is not None:
        assert ((f > 0).sum(-1) <= k).all()
    assert np.allclose(s.decode(f), f.astype(np.float64) @ files["W_dec"] + files["b_dec"], atol=1e-5)
    assert s.encode(rows[None]).shape == (1, *f.shape)  # leading axes kept
    with pytest.raises(ValueError, match="last axis"):
        s.encode(rows[:, :3])


def test_load_sae_refuses_an_edited_file(sae_run, tmp_path):
    w, _ = sae_run
    for f in ("sae.safetensors", "sae.json"):
        (tmp_path / f).write_bytes((w / "relu" / f).read_bytes())
    raw = bytearray((tmp_path / "sae.safetensors").read_bytes())
    raw[-1] ^= 1
    (tmp_path / "sae.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="sha256"):
        sam3lab.load_sae(tmp_path)


@pytest.mark.parametrize("kind", ["relu", "topk"])
def test_saelens_export_is_the_saelens_6_disk_format(sae_run, cli, tmp_path, kind):
    """The files SAELens 6.x's `SAE.save_model` writes and `SAE.load_from_disk` reads:
    cfg.json (its config fields) and sae_weights.safetensors (W_enc, b_enc, W_dec, b_dec)."""
    w, _ = sae_run
    out = w / f"saelens-{kind}"
    assert sorted(os.listdir(out)) == ["cfg.json", "sae_weights.safetensors"]
    cfg = sam3lab.read_json(out / "cfg.json")
    meta = sam3lab.read_json(w / kind / "sae.json")
    assert cfg["architecture"] == {"relu": "standard", "topk": "topk"}[kind]
    assert (cfg["d_in"], cfg["d_sae"]) == (meta["d_in"], meta["width"])
    assert cfg["dtype"] == "float32" and cfg["apply_b_dec_to_input"] is True
    assert cfg["normalize_activations"] == "none" and cfg["reshape_activations"] == "none"
    assert int(cfg["metadata"]["sae_lens_version"].split(".")[0]) == 6
    assert cfg["metadata"]["hook_name"] == meta["point"]
    if kind == "topk":
        assert cfg["k"] == meta["activation"]["k"] and cfg["rescale_acts_by_decoder_norm"] is False
    assert cfg["sam3lab"]["weights_sha256"] == meta["weights_sha256"]
    weights = read_safetensors(out / "sae_weights.safetensors")
    ours = read_safetensors(w / kind / "sae.safetensors")
    assert sorted(weights) == ["W_dec", "W_enc", "b_dec", "b_enc"]
    for name in weights:
        assert weights[name].dtype == np.float32 and weights[name].tobytes() == ours[name].tobytes(), name
    # same SAE → same bytes
    cli("sae", "export", "--sae", w / kind, "--format", "saelens", "--out", tmp_path)
    for f in ("cfg.json", "sae_weights.safetensors"):
        assert (tmp_path / f).read_bytes() == (out / f).read_bytes(), f


SAELENS_CHECK = r"""
import sys, numpy as np, torch
from sae_lens import SAE
sae = SAE.load_from_disk(sys.argv[1])
x = torch.from_numpy(np.load(sys.argv[2]))
np.save(sys.argv[3], sae.encode(x).detach().numpy())
print(type(sae).__name__)
"""


@pytest.mark.parametrize("kind", ["relu", "topk"])
def test_saelens_loads_the_export(sae_run, tmp_path, kind):
    """With the real `sae-lens` package: `SAE.load_from_disk` on the export encodes the cached rows
    as sam3lab does. sae-lens pulls in torch and transformers (GBs), so it is not in the test venv:
    this runs where SAM3LAB_SAELENS_PYTHON names a Python that has it (or this one has it)."""
    py = os.environ.get("SAM3LAB_SAELENS_PYTHON")
    if not py:
        try:
            import sae_lens  # noqa: F401
            py = sys.executable
        except ImportError:
            pytest.skip("sae-lens is not installed; set SAM3LAB_SAELENS_PYTHON to a Python that has it")
    w, rows = sae_run
    np.save(tmp_path / "x.npy", rows)
    r = subprocess.run([py, "-c", SAELENS_CHECK, str(w / f"saelens-{kind}"), tmp_path / "x.npy", tmp_path / "f.npy"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == {"relu": "StandardSAE", "topk": "TopKSAE"}[kind]
    theirs = np.load(tmp_path / "f.npy")
    assert np.allclose(theirs, sam3lab.load_sae(w / kind).encode(rows), atol=1e-5)
