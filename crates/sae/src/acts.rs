//! Activation sets: the rows an SAE trains on or is evaluated on, read from hook caches.
//! The on-disk contract (what `--acts` accepts, which manifest keys are read) is in
//! `/work/notes/sae-contract.md` and the crate README section; keep them in sync with this file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use sam3lab_hooks::ActivationCache;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SaeError, io_err};

/// Whether a forward's prompt names something in the image (`pos`) or not (`neg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairLabel {
    Pos,
    Neg,
}

impl PairLabel {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pos" => Some(PairLabel::Pos),
            "neg" => Some(PairLabel::Neg),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            PairLabel::Pos => "pos",
            PairLabel::Neg => "neg",
        }
    }
}

/// One cache file of a set: where its rows are and what its manifest says about them.
#[derive(Clone, Debug, Serialize)]
pub struct CacheFile {
    pub path: String,
    pub checkpoint_sha256: String,
    /// First row of this file in the set, and how many rows it contributed.
    pub row_start: usize,
    pub rows: usize,
    /// Size of axis 0 (batch items); each item owns `rows / batch` consecutive rows.
    pub batch: usize,
    /// Per batch item: label and pair id (from `extra.label` / `extra.pair` or the list entry).
    #[serde(skip)]
    pub labels: Vec<Option<PairLabel>>,
    #[serde(skip)]
    pub pairs: Vec<Option<usize>>,
}

/// Rows of one hook point gathered from one `--acts` source, in file order then row-major order.
#[derive(Clone, Debug)]
pub struct ActivationSet {
    /// The `--acts` argument as given (without its `LABEL=`).
    pub source: String,
    pub point: String,
    pub d: usize,
    /// Row-major `n × d`.
    pub rows: Vec<f32>,
    /// Rank of the point's tensor in every file (all must agree).
    pub rank: usize,
    pub files: Vec<CacheFile>,
}

/// What a `.jsonl` list entry may say about its file.
#[derive(Clone, Debug, Default)]
struct ListEntry {
    label: Option<PairLabel>,
    pair: Option<usize>,
}

/// Split `LABEL=SOURCE`: the text before the first `=` is a label only if it looks like one
/// (`[A-Za-z0-9_.@+-]+`), so paths containing `=` after a `/` stay paths.
pub fn split_labeled(arg: &str) -> (Option<String>, String) {
    if let Some((l, rest)) = arg.split_once('=') {
        let ok = !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || "_.@+-".contains(c));
        if ok && !rest.is_empty() {
            return (Some(l.to_string()), rest.to_string());
        }
    }
    (None, arg.to_string())
}

impl ActivationSet {
    pub fn n_rows(&self) -> usize {
        if self.d == 0 { 0 } else { self.rows.len() / self.d }
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.d..(i + 1) * self.d]
    }

    /// Distinct non-empty checkpoint sha256s with their row counts, in first-seen order.
    pub fn checkpoints(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for f in &self.files {
            match out.iter_mut().find(|(s, _)| *s == f.checkpoint_sha256) {
                Some((_, n)) => *n += f.rows,
                None => out.push((f.checkpoint_sha256.clone(), f.rows)),
            }
        }
        out
    }

    /// Per row: (file index, batch item) — for mapping rows back to labels and pairs.
    pub fn row_owner(&self, row: usize) -> (usize, usize) {
        let fi = self.files.partition_point(|f| f.row_start + f.rows <= row);
        let f = &self.files[fi];
        let per_item = f.rows / f.batch.max(1);
        (fi, (row - f.row_start) / per_item.max(1))
    }

    /// Load `source` (a cache file, a directory of them, or a list file; see the crate docs) and
    /// gather `point`'s rows. `feature_axis` picks the axis that is `d` (default: the last).
    pub fn load(source: &str, point: &str, feature_axis: Option<usize>) -> Result<Self> {
        let files = resolve_source(source)?;
        if files.is_empty() {
            return Err(SaeError::Source { source_arg: source.to_string(), why: "no .safetensors cache files found".into() });
        }
        let device = Device::flex();
        let mut set = ActivationSet { source: source.to_string(), point: point.to_string(), d: 0, rows: Vec::new(), rank: 0, files: Vec::new() };
        let mut first: Option<(String, Vec<usize>)> = None;
        for (path, entry) in files {
            let pstr = path.display().to_string();
            let cache = ActivationCache::load(&path, &device).map_err(|source| SaeError::Cache { path: pstr.clone(), source })?;
            let t = cache.get(point).map_err(|source| SaeError::Cache { path: pstr.clone(), source })?;
            let shape = t.shape().to_vec();
            let shape_err = |why: String| SaeError::Shape { path: pstr.clone(), point: point.to_string(), found: shape.clone(), why };
            if shape.len() < 2 {
                return Err(shape_err("expected at least 2 axes (batch, ..., d)".into()));
            }
            let axis = feature_axis.unwrap_or(shape.len() - 1);
            if axis == 0 || axis >= shape.len() {
                return Err(shape_err(format!("feature axis {axis} must be in 1..{} (axis 0 is the batch axis)", shape.len())));
            }
            let d = shape[axis];
            if let Some((fp, fs)) = &first {
                if fs.len() != shape.len() {
                    return Err(shape_err(format!("rank {} differs from rank {} of {fp} {fs:?} in the same set", shape.len(), fs.len())));
                }
                if fs[axis] != d {
                    return Err(shape_err(format!("d = {d} (axis {axis}) differs from d = {} of {fp} {fs:?} in the same set", fs[axis])));
                }
            } else {
                first = Some((pstr.clone(), shape.clone()));
                set.d = d;
                set.rank = shape.len();
            }
            let vals = t.to_vec();
            let before = set.rows.len() / d;
            move_axis_last(&vals, &shape, axis, &mut set.rows);
            let rows = set.rows.len() / d - before;
            let batch = shape[0];
            let (labels, pairs) = item_meta(&pstr, &cache.manifest.extra, batch, &entry)?;
            set.files.push(CacheFile {
                path: pstr,
                checkpoint_sha256: cache.manifest.checkpoint_sha256.clone(),
                row_start: before,
                rows,
                batch,
                labels,
                pairs,
            });
        }
        if let Some(i) = set.rows.iter().position(|v| !v.is_finite()) {
            let (fi, _) = set.row_owner(i / set.d);
            return Err(SaeError::Data {
                path: set.files[fi].path.clone(),
                point: point.to_string(),
                why: format!("non-finite value {} at row {}", set.rows[i], i / set.d - set.files[fi].row_start),
            });
        }
        Ok(set)
    }
}

/// Append the rows of `vals` (shape `shape`) to `out`, with `axis` moved last and the rest flattened.
fn move_axis_last(vals: &[f32], shape: &[usize], axis: usize, out: &mut Vec<f32>) {
    let outer: usize = shape[..axis].iter().product();
    let d = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    if inner == 1 {
        out.extend_from_slice(vals);
        return;
    }
    out.reserve(vals.len());
    for o in 0..outer {
        for i in 0..inner {
            for f in 0..d {
                out.push(vals[(o * d + f) * inner + i]);
            }
        }
    }
}

/// A per-item manifest value: scalar (applies to every item) or an array of length `batch`.
fn per_item<T: Copy>(
    path: &str,
    key: &str,
    v: Option<&serde_json::Value>,
    batch: usize,
    parse: impl Fn(&serde_json::Value) -> Option<T>,
    expect: &str,
) -> Result<Vec<Option<T>>> {
    let err = |why: String| SaeError::Manifest { path: path.to_string(), key: key.to_string(), why };
    match v {
        None | Some(serde_json::Value::Null) => Ok(vec![None; batch]),
        Some(serde_json::Value::Array(xs)) => {
            if xs.len() != batch {
                return Err(err(format!("array has {} entries but the batch axis has {batch}", xs.len())));
            }
            xs.iter()
                .enumerate()
                .map(|(i, x)| parse(x).map(Some).ok_or_else(|| err(format!("entry {i} is {x}, expected {expect}"))))
                .collect()
        }
        Some(x) => parse(x).map(|t| vec![Some(t); batch]).ok_or_else(|| err(format!("{x} is not {expect}"))),
    }
}

fn item_meta(
    path: &str,
    extra: &BTreeMap<String, serde_json::Value>,
    batch: usize,
    entry: &ListEntry,
) -> Result<(Vec<Option<PairLabel>>, Vec<Option<usize>>)> {
    let label_of = |x: &serde_json::Value| x.as_str().and_then(PairLabel::parse);
    let pair_of = |x: &serde_json::Value| x.as_u64().map(|p| p as usize);
    let mut labels = per_item(path, "label", extra.get("label"), batch, label_of, "\"pos\" or \"neg\"")?;
    let mut pairs = per_item(path, "pair", extra.get("pair"), batch, pair_of, "a non-negative integer pair index")?;
    // A list entry fills in or must agree: never a silent override.
    if let Some(l) = entry.label {
        for (i, x) in labels.iter_mut().enumerate() {
            match x {
                Some(m) if *m != l => {
                    return Err(SaeError::Manifest {
                        path: path.to_string(),
                        key: "label".into(),
                        why: format!("item {i} says \"{}\" but the list file says \"{}\"", m.as_str(), l.as_str()),
                    });
                }
                _ => *x = Some(l),
            }
        }
    }
    if let Some(p) = entry.pair {
        for (i, x) in pairs.iter_mut().enumerate() {
            match x {
                Some(m) if *m != p => {
                    return Err(SaeError::Manifest {
                        path: path.to_string(),
                        key: "pair".into(),
                        why: format!("item {i} says {m} but the list file says {p}"),
                    });
                }
                _ => *x = Some(p),
            }
        }
    }
    Ok((labels, pairs))
}

/// The cache files named by a source, with what a list entry says about each.
fn resolve_source(source: &str) -> Result<Vec<(PathBuf, ListEntry)>> {
    let p = Path::new(source);
    let serr = |why: String| SaeError::Source { source_arg: source.to_string(), why };
    let meta = std::fs::metadata(p).map_err(|e| serr(format!("cannot read: {e}")))?;
    if meta.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|e| io_err(p, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|q| q.is_file() && q.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        return Ok(files.into_iter().map(|f| (f, ListEntry::default())).collect());
    }
    if p.extension().is_some_and(|x| x == "safetensors") {
        return Ok(vec![(p.to_path_buf(), ListEntry::default())]);
    }
    // A list file.
    let text = std::fs::read_to_string(p).map_err(|e| serr(format!("not a cache, directory or readable list file: {e}")))?;
    let base = p.parent().unwrap_or(Path::new("."));
    let jsonl = p.extension().is_some_and(|x| x == "jsonl");
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (!jsonl && line.starts_with('#')) {
            continue;
        }
        let lerr = |why: String| serr(format!("line {}: {why}", i + 1));
        let (rel, entry) = if jsonl {
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| lerr(format!("bad JSON: {e}")))?;
            let path = v.get("path").and_then(|x| x.as_str()).ok_or_else(|| lerr("missing string field \"path\"".into()))?;
            let label = match v.get("label") {
                None | Some(serde_json::Value::Null) => None,
                Some(x) => Some(x.as_str().and_then(PairLabel::parse).ok_or_else(|| lerr(format!("label {x} is not \"pos\" or \"neg\"")))?),
            };
            let pair = match v.get("pair") {
                None | Some(serde_json::Value::Null) => None,
                Some(x) => Some(x.as_u64().ok_or_else(|| lerr(format!("pair {x} is not a non-negative integer")))? as usize),
            };
            (path.to_string(), ListEntry { label, pair })
        } else {
            (line.to_string(), ListEntry::default())
        };
        let rp = Path::new(&rel);
        let full = if rp.is_absolute() { rp.to_path_buf() } else { base.join(rp) };
        if !full.is_file() {
            return Err(lerr(format!("cache file {} does not exist", full.display())));
        }
        out.push((full, entry));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_axis_last_matches_index_formula() {
        // shape (2, 3, 4) with the feature axis 1 (d = 3): row (o, i) has values vals[o*12 + f*4 + i].
        let vals: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let mut out = Vec::new();
        move_axis_last(&vals, &[2, 3, 4], 1, &mut out);
        assert_eq!(out.len(), 24);
        for o in 0..2 {
            for i in 0..4 {
                for f in 0..3 {
                    assert_eq!(out[(o * 4 + i) * 3 + f], vals[o * 12 + f * 4 + i]);
                }
            }
        }
    }

    #[test]
    fn split_labeled_rules() {
        assert_eq!(split_labeled("base=/a/b"), (Some("base".into()), "/a/b".into()));
        assert_eq!(split_labeled("recovery@1200=x.safetensors"), (Some("recovery@1200".into()), "x.safetensors".into()));
        assert_eq!(split_labeled("/a/k=v/c"), (None, "/a/k=v/c".into()));
        assert_eq!(split_labeled("plain"), (None, "plain".into()));
    }
}
