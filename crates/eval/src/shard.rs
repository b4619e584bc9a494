//! Splitting a prediction run over machines and putting it back together.
//!
//! `eval predict --shard K/N` runs the images whose index (in order of first appearance among the
//! selected entries) is K modulo N, each image with all its noun phrases, and writes a shard file in
//! the same format as a whole run, its meta recording the shard. [`merge`] checks that the shards
//! come from one run (same ground truth, model identity, threshold, entry selection, N; every K once)
//! and writes what the unsharded run writes, byte for byte: the predictions in ground-truth order and
//! the same `.meta.json`. No scheduler: any launcher (a Slurm array, `xargs -P`, one process per
//! GPU) runs the N commands.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::coco::{self, GtDataset, Prediction};
use crate::error::{EvalError, Result};
use crate::output::{sha256_hex, write_atomic};
use crate::predict::meta_path;

/// Shard `k` of `n` (0 ≤ k < n).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    /// `K/N`, e.g. `0/3`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("`{s}` is not a shard K/N with 0 ≤ K < N (e.g. 0/3)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n) = (k.trim().parse::<usize>().map_err(|_| bad())?, n.trim().parse::<usize>().map_err(|_| bad())?);
        if n == 0 || k >= n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

impl Shard {
    /// Whether image group `g` (0-based, in order of first appearance) belongs to this shard.
    pub fn owns(&self, g: usize) -> bool {
        g % self.n == self.k
    }
}

/// Check that `shards` (each with a label for the messages, e.g. its path) are the N shards of one
/// split: the same N, every K once. The one check every `sam3lab merge` makes, whatever it merges.
pub fn check_complete(shards: &[(Shard, String)]) -> std::result::Result<(), String> {
    let Some((s0, first)) = shards.first() else { return Err("no shards given".into()) };
    let mut seen: Vec<Option<&str>> = vec![None; s0.n];
    for (s, label) in shards {
        if s.n != s0.n {
            return Err(format!("{label} is a shard of {} but {first} of {}", s.n, s0.n));
        }
        if let Some(other) = seen[s.k] {
            return Err(format!("shard {}/{} given twice ({other} and {label})", s.k, s.n));
        }
        seen[s.k] = Some(label);
    }
    match seen.iter().position(Option::is_none) {
        Some(k) => Err(format!("shard {k}/{} is missing", s0.n)),
        None => Ok(()),
    }
}

/// What a merge wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeSummary {
    pub shards: usize,
    pub entries: usize,
    pub predictions: usize,
}

/// The meta keys that must agree between shards (everything that identifies the run).
const SAME: [&str; 7] = ["gt_file", "gt_sha256", "images_dir", "model", "threshold", "only_exhaustive", "subsample"];

/// Merge the shard files `shards` (each with its `.meta.json`) of one `eval predict` run into `out`.
pub fn merge(shards: &[PathBuf], out: &Path) -> Result<MergeSummary> {
    if shards.is_empty() {
        return Err(EvalError::invalid("merge: no shard files given".to_string()));
    }
    let mut metas = vec![];
    for p in shards {
        let mp = meta_path(p);
        let text = std::fs::read_to_string(&mp).map_err(|e| EvalError::io(&mp, e))?;
        let m: serde_json::Value = serde_json::from_str(&text).map_err(|e| EvalError::invalid(format!("{}: not JSON: {e}", mp.display())))?;
        let shard: Shard = serde_json::from_value(m["shard"].clone())
            .map_err(|_| EvalError::invalid(format!("{}: not a shard (no \"shard\": {{k, n}}); was it written by `eval predict --shard K/N`?", mp.display())))?;
        metas.push((p.clone(), m, shard));
    }
    let (first_path, first, _) = &metas[0];
    for (p, m, _) in &metas[1..] {
        for k in SAME {
            if m[k] != first[k] {
                return Err(EvalError::invalid(format!(
                    "merge: {} and {} come from different runs: `{k}` is {} vs {}",
                    first_path.display(),
                    p.display(),
                    first[k],
                    m[k]
                )));
            }
        }
    }
    let labelled: Vec<(Shard, String)> = metas.iter().map(|(p, _, s)| (*s, p.display().to_string())).collect();
    check_complete(&labelled).map_err(|e| EvalError::invalid(format!("merge: {e}")))?;
    // The entries in ground-truth order: the whole run's selection, which every shard recorded.
    let gt_path = PathBuf::from(first["gt_file"].as_str().unwrap_or_default());
    let gt_bytes = coco::read_bytes(&gt_path)?;
    if sha256_hex(&gt_bytes) != first["gt_sha256"].as_str().unwrap_or_default() {
        return Err(EvalError::invalid(format!("merge: {} changed since the shards were written (sha256 differs)", gt_path.display())));
    }
    let gt: GtDataset = coco::parse_gt(&gt_path, &gt_bytes)?;
    let order: Vec<i64> = first["shard"]["entry_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
        .ok_or_else(|| EvalError::invalid(format!("{}: no shard.entry_ids", meta_path(first_path).display())))?;
    let mut by_id: HashMap<i64, Vec<Prediction>> = HashMap::new();
    let mut owner: HashMap<i64, usize> = HashMap::new();
    for (p, m, s) in &metas {
        for id in m["shard"]["own_ids"].as_array().into_iter().flatten().filter_map(|v| v.as_i64()) {
            if owner.insert(id, s.k).is_some() {
                return Err(EvalError::invalid(format!("merge: entry {id} is in two shards")));
            }
            by_id.entry(id).or_default();
        }
        let preds: Vec<Prediction> = serde_json::from_slice(&coco::read_bytes(p)?)
            .map_err(|e| EvalError::invalid(format!("{}: not a COCO results list: {e}", p.display())))?;
        for pr in preds {
            if owner.get(&pr.image_id) != Some(&s.k) {
                return Err(EvalError::invalid(format!("{}: prediction for entry {} that this shard does not own", p.display(), pr.image_id)));
            }
            by_id.entry(pr.image_id).or_default().push(pr);
        }
    }
    if let Some(id) = order.iter().find(|id| !owner.contains_key(id)) {
        return Err(EvalError::invalid(format!("merge: entry {id} is in no shard")));
    }
    let _ = gt; // parsed to check the file; the order comes from the recorded selection
    // The final file exactly as `predict` writes it.
    let mut text = String::from("[");
    let mut count = 0usize;
    for id in &order {
        for p in &by_id[id] {
            text.push_str(if count == 0 { "\n" } else { ",\n" });
            text.push_str(&serde_json::to_string(p).expect("prediction serialises"));
            count += 1;
        }
    }
    text.push_str("\n]\n");
    write_atomic(out, text.as_bytes())?;
    let mut meta = first.clone();
    let obj = meta.as_object_mut().expect("meta is an object");
    obj.remove("shard");
    obj.insert("num_entries".into(), order.len().into());
    obj.insert("num_predictions".into(), count.into());
    obj.insert("pred_sha256".into(), sha256_hex(text.as_bytes()).into());
    write_atomic(&meta_path(out), format!("{}\n", serde_json::to_string_pretty(&meta).expect("meta")).as_bytes())?;
    Ok(MergeSummary { shards: metas.len(), entries: order.len(), predictions: count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_own() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!(s, Shard { k: 1, n: 3 });
        assert!(s.owns(1) && s.owns(4) && !s.owns(0) && !s.owns(2));
        for bad in ["3/3", "1", "a/3", "0/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
