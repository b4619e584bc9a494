"""Shared fixtures: the repository's paths, the fixture model, and the sam3lab CLI binary."""

import json
import os
import struct
import subprocess

import numpy as np

import pytest

import sam3lab

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FIXTURE = os.path.join(ROOT, "data", "fixtures", "sam3-tiny")
IMAGE = os.path.join(ROOT, "data", "examples", "fixture-a.png")


def read_safetensors(path):
    """A minimal safetensors reader (8-byte header length, JSON header, raw little-endian data)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    dtypes = {"F32": "<f4", "I64": "<i8", "U8": "u1", "BOOL": "?", "F64": "<f8"}
    out = {}
    for k, v in header.items():
        if k == "__metadata__" or v["dtype"] not in dtypes:
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dtypes[v["dtype"]]).reshape(v["shape"])
    return out


def write_safetensors(path, tensors):
    """A minimal safetensors writer for float32 arrays (the format's spec: 8-byte little-endian
    header length, JSON header with dtype / shape / data_offsets, then the raw data)."""
    header, blobs, at = {}, [], 0
    for k in sorted(tensors):
        b = np.ascontiguousarray(tensors[k], dtype="<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(np.shape(tensors[k])), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


@pytest.fixture(scope="session")
def perturbed_fixture(tmp_path_factory):
    """A second checkpoint of the fixture's config: every weight plus seeded noise (5 % of its
    tensor's standard deviation), as a fixture directory."""
    d = tmp_path_factory.mktemp("perturbed")
    rng = np.random.default_rng(0)
    w = read_safetensors(os.path.join(FIXTURE, "weights.safetensors"))
    write_safetensors(d / "weights.safetensors",
                      {k: v + 0.05 * (v.std() or 1.0) * rng.standard_normal(v.shape) for k, v in w.items()})
    (d / "config.json").write_bytes(open(os.path.join(FIXTURE, "config.json"), "rb").read())
    return d


@pytest.fixture(scope="session")
def model():
    return sam3lab.load(FIXTURE)


@pytest.fixture(scope="session")
def cli():
    """Run the CLI this tree built (`SAM3LAB_BIN`, default target/release/sam3lab: `scripts/test.sh`
    builds it with the Rust tests first); a failure raises with its stderr."""
    exe = os.environ.get("SAM3LAB_BIN", os.path.join(ROOT, "target", "release", "sam3lab"))
    if not os.access(exe, os.X_OK):
        pytest.fail(f"no sam3lab binary at {exe}: build it with `cargo build --release -p sam3lab-cli` (scripts/test.sh does)")

    def run(*args):
        r = subprocess.run([exe, *map(str, args)], cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError(f"sam3lab {' '.join(map(str, args))} exited {r.returncode}:\n{r.stderr}")
        return r.stdout

    return run
