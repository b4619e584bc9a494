"""Activation caches: a dict name → float32 array with the manifest sam3lab records beside it."""

import json
import os

from . import _sam3lab


class Cache(dict):
    """Captured activations by hook name (in capture order) plus `manifest`, the dict `sam3lab run`
    writes beside a cache: checkpoint_sha256, config, image {path, sha256}, prompt, hook_spec,
    sam3lab_version, seed, extra.

    `cache.save(path)` writes the project's cache file (`path`, safetensors, float32, the manifest in
    its metadata) and `path` with extension `.json` (the manifest), each to a temporary name and
    renamed; `sam3lab.load_cache(path)` reads it back. Both go through the Rust engine's own writer
    and reader (`ActivationCache::save` / `load`), so a file written here is one `sam3lab sae train`
    reads, and a file `sam3lab run` wrote loads here.
    """

    def __init__(self, arrays=(), manifest=None):
        super().__init__(arrays)
        if isinstance(manifest, str):
            manifest = json.loads(manifest)
        self.manifest = dict(manifest) if manifest else {}

    def save(self, path):
        """Write the cache file `path` (not `.json`: the manifest goes there) and its manifest."""
        _sam3lab._save_cache(os.fspath(path), list(self.items()), json.dumps(self.manifest))

    def __repr__(self):
        return f"sam3lab.Cache({len(self)} tensors: {', '.join(list(self)[:4])}{', …' if len(self) > 4 else ''})"


def load_cache(path):
    """A cache file written by `sam3lab run`, `probe capture` or `Cache.save` as a `Cache` (capture
    order kept; `manifest` from the file's metadata, `{}` when it has none)."""
    return _sam3lab._load_cache(os.fspath(path))
