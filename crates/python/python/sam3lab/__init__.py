"""sam3lab from Python: SAM3's image-grounding path with ~1,650 named hook points.

    import sam3lab
    m = sam3lab.load("data/fixtures/sam3-tiny")            # a fixture dir, .safetensors or sam3.pt
    out, cache = m.run_with_cache("img.png", "a red cat", ["decoder.layers.*.q0"])
    out, _ = m.run_with_hooks("img.png", "a red cat", [("decoder.layers.1.ca_text.head.0", "zero")])

`out` and `cache` hold float32 numpy arrays (`torch.from_numpy` takes them as they are). Errors are
Python exceptions carrying sam3lab's message (ValueError for bad input). The engine is Rust: see the
repository's docs/python.md.
"""

from ._sam3lab import Model, __version__, load

__all__ = ["Model", "load", "__version__"]
