"""The post's §9 layer-cosine probe (Rust twin: examples/q0_toward_base.rs): does the negatives
fine-tune's shift of the presence token q0 point back toward base? Per decoder layer,
cos(q0(ft_neg) − q0(ft), q0(base) − q0(ft)), averaged over image × prompt pairs.
Run from the repo root: python examples/python/layer_cosine.py [BASE FT FT_NEG]"""
import sys

import numpy as np
import sam3lab

if len(sys.argv) == 4:
    base, ft, ft_neg = (sam3lab.load(c) for c in sys.argv[1:])
else:  # the shipped fixture as base and two noisy copies of it as stand-in fine-tunes
    base = sam3lab.load("data/fixtures/sam3-tiny")
    ft, ft_neg = base.perturbed(0.02, 1), base.perturbed(0.02, 2)
images = ["data/examples/fixture-a.png", "data/fixtures/train-set/image_0.png", "data/fixtures/train-set/image_1.png"]
prompts = ["a watch", "a red cat", "a dog"]


def q0(m):  # hook name → (pairs, d), pairs image-major
    caches = [cache for row in m.run_with_cache_batch(images, prompts, ["decoder.layers.*.q0"]) for _, cache in row]
    return {name: np.concatenate([c[name] for c in caches]) for name in caches[0]}


b, f, n = q0(base), q0(ft), q0(ft_neg)
for name in b:
    u, v = n[name] - f[name], b[name] - f[name]
    cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    print(f"{name}  cos toward base = {cos.mean():+.3f} (mean over {len(cos)} pairs)")
