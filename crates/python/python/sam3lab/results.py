"""Readers for what the sam3lab CLI writes: CSV tables with `# key: value` lines, JSON, SAEs."""

import json
import os

import numpy as np

from . import _sam3lab


class Table(dict):
    """A sam3lab CSV table: a dict column name → numpy array (header order), plus `meta`, the
    `# key: value` lines above the header (keys lowercased, values as strings, in file order).

    A column whose cells all read as integers is int64; one whose cells all read as numbers
    (an empty cell is an undefined value: NaN) is float64; any other column is a str array.
    """

    def __init__(self, columns, meta):
        super().__init__(columns)
        self.meta = meta

    @property
    def columns(self):
        return list(self)

    def __len__(self):
        return len(next(iter(self.values()))) if dict.__len__(self) else 0

    def rows(self):
        """The records as tuples (Python scalars)."""
        cols = [v.tolist() for v in self.values()]
        return list(zip(*cols))

    def to_pandas(self):
        """A pandas DataFrame of the columns (`df.attrs` holds `meta`). Needs pandas."""
        import pandas as pd

        df = pd.DataFrame({k: v for k, v in self.items()})
        df.attrs.update(self.meta)
        return df

    def __repr__(self):
        return f"sam3lab.Table({len(self)} rows × {dict.__len__(self)} columns: {', '.join(self)}; meta {self.meta})"


def _column(cells):
    try:
        if all(c.strip() != "" for c in cells):
            return np.array([int(c) for c in cells], dtype=np.int64)
    except ValueError:
        pass
    try:
        return np.array([float(c) if c.strip() != "" else np.nan for c in cells], dtype=np.float64)
    except ValueError:
        return np.array(cells, dtype=str)


def read_table(path):
    """Read a CSV sam3lab wrote (`sam3lab_util::csv`: the same parser the CLI reads tables back
    with) as a `Table`: columns as numpy arrays, the `# key: value` header lines as `.meta`.
    A malformed file raises ValueError naming the file and line."""
    meta, header, rows = _sam3lab._parse_table(os.fspath(path))
    cols = {}
    for i, name in enumerate(header):
        cells = [r[i] for r in rows]
        cols[name] = _column(cells) if cells else np.array([], dtype=np.float64)
    return Table(cols, dict(meta))


def read_json(path):
    """Read a JSON file sam3lab wrote (a report, a manifest, detections, figures' data) as plain
    Python objects. Invalid JSON raises ValueError naming the file."""
    path = os.fspath(path)
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def load_sae(path):
    """Load an SAE directory written by `sam3lab sae train` (`sae.safetensors` + `sae.json`; the
    weights' sha256 is checked against `sae.json`). Returns a `sam3lab.Sae` with `W_enc` (d × m),
    `b_enc`, `W_dec` (m × d), `b_dec` as float32 arrays (SAELens's names and layout), `meta`
    (`sae.json` as a dict), and `encode(x)` / `decode(f)` over arrays whose last axis is d / m."""
    return _sam3lab.load_sae(os.fspath(path))
