"""How alike is the presence token q0 for two prompts on one image, layer by layer? (The Rust twin:
examples/q0_cosine.rs.) Run from the repo root: python examples/python/q0_cosine.py [CKPT]"""
import sys

import numpy as np
import sam3lab

m = sam3lab.load(sys.argv[1] if len(sys.argv) > 1 else "data/fixtures/sam3-tiny")
runs = [m.run_with_cache("data/examples/fixture-a.png", p, ["decoder.layers.*.q0"]) for p in ("a red cat", "a blue sky")]
print("presence logits:", [float(out["presence_logit"][0, 0]) for out, _ in runs])
for name, a in runs[0][1].items():
    b = runs[1][1][name].ravel()
    print(f"{name}  cosine = {a.ravel() @ b / np.linalg.norm(a) / np.linalg.norm(b):+.4f}")
