"""The Python call's overhead over the Rust call (issue #20: ≤ 5 % for a forward without callable
hooks). On the shipped fixture, alternating in one process: `m.run_with_cache(image_array, prompt,
names)` timed from Python (argument conversion, the forward with the GIL released, outputs and cache
to numpy, the Cache object) against `Predictor::run_with_hooks` timed inside Rust on the same model,
image and spec (`m._rust_forward_seconds`). Prints medians and the ratio.

    python crates/python/bench/overhead.py [--rounds 30] [--names 'decoder.layers.*.q0']
"""
import argparse
import os
import statistics
import struct
import time

import numpy as np
import sam3lab

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
ap = argparse.ArgumentParser()
ap.add_argument("--ckpt", default=os.path.join(ROOT, "data", "fixtures", "sam3-tiny"))
ap.add_argument("--rounds", type=int, default=30)
ap.add_argument("--names", nargs="*", default=["decoder.layers.*.q0"])
a = ap.parse_args()

m = sam3lab.load(a.ckpt)
# An image array of the example PNG's size (read from its IHDR), seeded: the forward's cost does
# not depend on the pixels, and both sides get an already-decoded image.
with open(os.path.join(ROOT, "data", "examples", "fixture-a.png"), "rb") as f:
    w, h = struct.unpack(">II", f.read(24)[16:24])
image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
prompt = "a red cat"
for _ in range(3):  # warm-up
    m.run_with_cache(image, prompt, a.names)
    m._rust_forward_seconds(image, prompt, a.names, 1)
py_t, rust_t = [], []
for r in range(a.rounds):  # alternating, the order swapped every round
    if r % 2:
        rust_t.extend(m._rust_forward_seconds(image, prompt, a.names, 1))
    t = time.perf_counter()
    m.run_with_cache(image, prompt, a.names)
    py_t.append(time.perf_counter() - t)
    if not r % 2:
        rust_t.extend(m._rust_forward_seconds(image, prompt, a.names, 1))
py_med, rust_med = statistics.median(py_t), statistics.median(rust_t)
print(f"{a.rounds} rounds, {h}×{w} image, capture {a.names}: Python call median {py_med * 1e3:.2f} ms, "
      f"Rust call median {rust_med * 1e3:.2f} ms, overhead {100 * (py_med / rust_med - 1):+.1f} %")
