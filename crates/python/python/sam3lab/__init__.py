"""sam3lab from Python: SAM3's image-grounding path with ~1,650 named hook points.

    import sam3lab
    m = sam3lab.load("data/fixtures/sam3-tiny")            # a fixture dir, .safetensors or sam3.pt
    out, cache = m.run_with_cache("img.png", "a red cat", ["decoder.layers.*.q0"])
    out, _ = m.run_with_hooks("img.png", "a red cat", [("decoder.layers.1.ca_text.head.0", "zero")])
    cache.save("q0.safetensors"); cache = sam3lab.load_cache("q0.safetensors")
    table = sam3lab.read_table("runs/x/drift.csv")         # columns as numpy arrays, .meta

`out` and `cache` hold float32 numpy arrays (`torch.from_numpy` takes them as they are). Errors are
Python exceptions carrying sam3lab's message (ValueError for bad input). The engine is Rust: see the
repository's docs/python.md.
"""

from ._sam3lab import Model, Sae, __version__, load
from .cache import Cache, load_cache
from .results import Table, load_sae, read_json, read_table

__all__ = ["Model", "Sae", "Cache", "Table", "load", "load_cache", "load_sae", "read_table", "read_json", "__version__"]
