//! A fixed, seeded subsample of a ground truth's entries: the post's SA-Co/Gold sweep scores
//! 2 000 (image, noun phrase) pairs per subset, seed 0 (7 subsets × 2 000).
//!
//! The candidates are the entries of one ground-truth file that are `is_instance_exhaustive` (the
//! only ones the scorer uses), so N chosen entries are N scored entries. Each candidate gets the key
//! `splitmix64(seed ⊕ splitmix64(id))` of its entry id; the N smallest keys (ties by id) are taken
//! and kept in file order. The choice therefore depends only on the set of candidate ids, N and the
//! seed — not on the file's order, the machine, or which annotator's copy of a subset is read (the
//! a/b/c files list the same entries) — and a larger N contains every entry of a smaller one. With
//! fewer than N candidates, all of them are taken.
//!
//! `sam3lab eval predict --subsample N --seed S` runs only the chosen entries, and
//! `sam3lab eval score --subsample N --seed S` scores only them (the selection is made on the first
//! ground truth and applied to every ground truth and to the predictions).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::coco::{GtDataset, Prediction};

/// `N` entries per ground-truth file, chosen with `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subsample {
    pub n: usize,
    pub seed: u64,
}

// A keyed hash of (id, seed), not a stream: each entry's key must not depend on how many were drawn
// before it, so this stays a pure function rather than sam3lab_util::rng::Rng.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The selection key of an entry id.
pub fn key(id: i64, seed: u64) -> u64 {
    splitmix64(seed ^ splitmix64(id as u64))
}

impl Subsample {
    /// Indices into `gt.images` of the chosen entries, in file order.
    pub fn select(&self, gt: &GtDataset) -> Vec<usize> {
        let mut cand: Vec<(u64, i64, usize)> = gt
            .images
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_instance_exhaustive)
            .map(|(i, e)| (key(e.id, self.seed), e.id, i))
            .collect();
        cand.sort_unstable();
        cand.truncate(self.n);
        let mut idx: Vec<usize> = cand.into_iter().map(|c| c.2).collect();
        idx.sort_unstable();
        idx
    }

    /// The ids of the chosen entries.
    pub fn ids(&self, gt: &GtDataset) -> HashSet<i64> {
        self.select(gt).into_iter().map(|i| gt.images[i].id).collect()
    }

    /// How many entries are candidates (instance-exhaustive).
    pub fn candidates(gt: &GtDataset) -> usize {
        gt.images.iter().filter(|e| e.is_instance_exhaustive).count()
    }
}

/// Keep only the entries in `ids` (and their annotations).
pub fn restrict_gt(gt: &mut GtDataset, ids: &HashSet<i64>) {
    gt.images.retain(|e| ids.contains(&e.id));
    gt.annotations.retain(|a| ids.contains(&a.image_id));
}

/// Keep only the predictions for entries in `ids`; returns how many were dropped.
pub fn restrict_predictions(preds: &mut Vec<Prediction>, ids: &HashSet<i64>) -> usize {
    let before = preds.len();
    preds.retain(|p| ids.contains(&p.image_id));
    before - preds.len()
}

/// What [`score_files`] restricted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restricted {
    /// Entries chosen (≤ N) from the first ground truth's candidates.
    pub chosen: usize,
    pub candidates: usize,
    /// Predictions for entries outside the subsample, left out.
    pub dropped_predictions: usize,
}

/// [`crate::score_files`] on a subsample: the entries chosen from the first ground truth, in every
/// ground truth and in the predictions.
pub fn score_files(
    gt_paths: &[&std::path::Path],
    pred_path: &std::path::Path,
    opts: &crate::ScoreOptions,
    sub: &Subsample,
) -> crate::Result<(crate::ScoreReport, Vec<crate::FileIdentity>, crate::FileIdentity, Restricted)> {
    let mut gts = Vec::new();
    let mut ids = Vec::new();
    let mut names = Vec::new();
    for p in gt_paths {
        let bytes = crate::coco::read_bytes(p)?;
        gts.push(crate::coco::parse_gt(p, &bytes)?);
        ids.push(crate::FileIdentity::of(p, &bytes));
        names.push(p.display().to_string());
    }
    let bytes = crate::coco::read_bytes(pred_path)?;
    let mut preds = crate::coco::parse_predictions(pred_path, &bytes)?;
    let pred_id = crate::FileIdentity::of(pred_path, &bytes);
    let mut r = Restricted { chosen: 0, candidates: 0, dropped_predictions: 0 };
    if let Some(first) = gts.first() {
        let keep = sub.ids(first);
        r.chosen = keep.len();
        r.candidates = Subsample::candidates(first);
        for g in gts.iter_mut() {
            restrict_gt(g, &keep);
        }
        r.dropped_predictions = restrict_predictions(&mut preds, &keep);
    }
    let report = crate::score(&gts, &names, &preds, &pred_path.display().to_string(), opts)?;
    Ok((report, ids, pred_id, r))
}
