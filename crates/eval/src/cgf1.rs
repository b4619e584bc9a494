//! The cgF1 family, mirroring `sam3/eval/cgf1_eval.py` (`CGF1Eval.evaluateImg`,
//! `CGF1Eval.accumulate`, `CGF1Eval.summarize`, `CGF1Evaluator._select_best_scoring`).
//! See the crate documentation for the definitions.

use crate::assign::linear_sum_assignment;

/// Number of IoU thresholds (0.50:0.05:0.95).
pub const NUM_THRESHOLDS: usize = 10;

/// The IoU thresholds exactly as pycocotools builds them
/// (`np.linspace(.5, 0.95, 10)`: `i * ((0.95 - 0.5) / 9) + 0.5`, last one set to 0.95), so that an IoU
/// sitting on a threshold is classified identically (e.g. the 9th threshold is 0.8999999999999999).
pub fn iou_thresholds() -> [f64; NUM_THRESHOLDS] {
    let step = (0.95 - 0.5) / (NUM_THRESHOLDS as f64 - 1.0);
    let mut t = [0.0; NUM_THRESHOLDS];
    for (i, v) in t.iter_mut().enumerate() {
        *v = i as f64 * step + 0.5;
    }
    t[NUM_THRESHOLDS - 1] = 0.95;
    t
}

/// Image-level (entry-level) outcome: does the entry have instances, and was anything kept?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageLevel {
    /// Instances present, at least one prediction kept.
    TruePositive,
    /// No instances, at least one prediction kept.
    FalsePositive,
    /// No instances, nothing kept.
    TrueNegative,
    /// Instances present, nothing kept.
    FalseNegative,
}

/// Per-threshold instance counts of one entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Counts {
    pub tp: [i64; NUM_THRESHOLDS],
    pub fp: [i64; NUM_THRESHOLDS],
    pub fn_: [i64; NUM_THRESHOLDS],
}

/// The evaluation of one (image, noun phrase) entry against one ground truth
/// (the result dict of `CGF1Eval.evaluateImg`).
#[derive(Clone, Debug, PartialEq)]
pub struct EntryEval {
    pub image_id: i64,
    pub image_level: ImageLevel,
    pub num_gt: usize,
    pub num_dt: usize,
    /// Absent for a true negative (the reference's dict then has no `TPs`).
    pub counts: Option<Counts>,
    /// Per-threshold local F1 (`local_F1s`); absent for a true negative.
    pub local_f1: Option<[f64; NUM_THRESHOLDS]>,
    /// `local_positive_F1s`: zeros for a false negative, the local F1 when instances are present and
    /// predictions were kept, absent otherwise.
    pub local_positive_f1: Option<[f64; NUM_THRESHOLDS]>,
    /// Which ground-truth file this evaluation is against (0 = the first `--gt`).
    pub gt_index: usize,
}

/// Evaluate one entry from the IoU matrix of its kept predictions (rows) against its non-crowd
/// ground-truth instances (columns), row-major `num_dt × num_gt`.
pub fn evaluate_entry(
    image_id: i64,
    gt_index: usize,
    ious: &[f64],
    num_dt: usize,
    num_gt: usize,
) -> EntryEval {
    assert_eq!(ious.len(), num_dt * num_gt);
    let base = EntryEval {
        image_id,
        image_level: ImageLevel::TrueNegative,
        num_gt,
        num_dt,
        counts: None,
        local_f1: None,
        local_positive_f1: None,
        gt_index,
    };
    if num_gt == 0 && num_dt == 0 {
        return base;
    }
    if num_dt == 0 {
        return EntryEval {
            image_level: ImageLevel::FalseNegative,
            counts: Some(Counts {
                tp: [0; NUM_THRESHOLDS],
                fp: [0; NUM_THRESHOLDS],
                fn_: [num_gt as i64; NUM_THRESHOLDS],
            }),
            local_f1: Some([0.0; NUM_THRESHOLDS]),
            local_positive_f1: Some([0.0; NUM_THRESHOLDS]),
            ..base
        };
    }
    // Maximum-IoU one-to-one matching: minimise the negated IoU, as the reference does.
    let neg: Vec<f64> = ious.iter().map(|v| -v).collect();
    let matched: Vec<f64> = linear_sum_assignment(&neg, num_dt, num_gt)
        .iter()
        .map(|&(d, g)| ious[d * num_gt + g])
        .collect();
    let thresholds = iou_thresholds();
    let mut counts = Counts {
        tp: [0; NUM_THRESHOLDS],
        fp: [0; NUM_THRESHOLDS],
        fn_: [0; NUM_THRESHOLDS],
    };
    let mut f1 = [0.0; NUM_THRESHOLDS];
    for (t, &thr) in thresholds.iter().enumerate() {
        let tp = matched.iter().filter(|&&m| m >= thr).count() as i64;
        let fp = num_dt as i64 - tp;
        let fn_ = num_gt as i64 - tp;
        counts.tp[t] = tp;
        counts.fp[t] = fp;
        counts.fn_[t] = fn_;
        let precision = tp as f64 / ((tp + fp) as f64 + 1e-4);
        let recall = tp as f64 / ((tp + fn_) as f64 + 1e-4);
        f1[t] = 2.0 * precision * recall / (precision + recall + 1e-4);
    }
    EntryEval {
        image_level: if num_gt > 0 {
            ImageLevel::TruePositive
        } else {
            ImageLevel::FalsePositive
        },
        counts: Some(counts),
        local_f1: Some(f1),
        local_positive_f1: if num_gt > 0 { Some(f1) } else { None },
        ..base
    }
}

/// The oracle choice among evaluations of one entry against several ground truths
/// (`_select_best_scoring`): keep the first; a later one replaces it when both have a local F1 and
/// the later one's mean over thresholds is strictly higher, or when the later one has none (both
/// ground truth and predictions empty: a perfect answer).
pub fn select_oracle(candidates: Vec<EntryEval>) -> EntryEval {
    let mut it = candidates.into_iter();
    let mut best = it.next().expect("at least one ground truth");
    for current in it {
        match (&best.local_f1, &current.local_f1) {
            (Some(b), Some(c)) => {
                if np_mean(c) > np_mean(b) {
                    best = current;
                }
            }
            (_, None) => best = current,
            (None, Some(_)) => {}
        }
    }
    best
}

/// numpy's float64 sum (pairwise summation, `pairwise_sum` in numpy's loops), so averages carry
/// exactly the reference's rounding.
pub fn np_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut r = 0.0;
        for &x in a {
            r += x;
        }
        r
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        np_sum(&a[..n2]) + np_sum(&a[n2..])
    }
}

/// `np.mean` of a float64 array.
pub fn np_mean(a: &[f64]) -> f64 {
    np_sum(a) / a.len() as f64
}

/// Sums over the scored entries (`CGF1Eval.accumulate`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Accumulated {
    pub tp: [i64; NUM_THRESHOLDS],
    pub fp: [i64; NUM_THRESHOLDS],
    /// FPs of entries with instances only (`positive_micro_FPs`).
    pub positive_fp: [i64; NUM_THRESHOLDS],
    pub fn_: [i64; NUM_THRESHOLDS],
    pub positive_local_f1_sum: [f64; NUM_THRESHOLDS],
    /// Entries with instances and at least one kept prediction.
    pub positive_f1_count: i64,
    pub il_tp: i64,
    pub il_fp: i64,
    pub il_tn: i64,
    pub il_fn: i64,
}

pub fn accumulate(entries: &[EntryEval]) -> Accumulated {
    let mut a = Accumulated::default();
    for e in entries {
        match e.image_level {
            ImageLevel::TruePositive => a.il_tp += 1,
            ImageLevel::FalsePositive => a.il_fp += 1,
            ImageLevel::TrueNegative => a.il_tn += 1,
            ImageLevel::FalseNegative => a.il_fn += 1,
        }
        let Some(c) = &e.counts else { continue };
        for t in 0..NUM_THRESHOLDS {
            a.tp[t] += c.tp[t];
            a.fp[t] += c.fp[t];
            a.fn_[t] += c.fn_[t];
        }
        if let Some(f) = &e.local_positive_f1 {
            for (t, &v) in f.iter().enumerate() {
                a.positive_local_f1_sum[t] += v;
                a.positive_fp[t] += c.fp[t];
            }
            if e.num_dt > 0 {
                a.positive_f1_count += 1;
            }
        }
    }
    a
}

/// Per-threshold curves and image-level scalars (the reference's `self.eval`).
#[derive(Clone, Debug, PartialEq)]
pub struct Curves {
    pub precision: [f64; NUM_THRESHOLDS],
    pub recall: [f64; NUM_THRESHOLDS],
    pub f1: [f64; NUM_THRESHOLDS],
    pub positive_micro_precision: [f64; NUM_THRESHOLDS],
    pub positive_micro_f1: [f64; NUM_THRESHOLDS],
    /// NaN when no entry has instances and kept predictions (the reference divides 0 by 0).
    pub positive_macro_f1: [f64; NUM_THRESHOLDS],
    pub cgf1: [f64; NUM_THRESHOLDS],
    pub il_precision: f64,
    pub il_recall: f64,
    pub il_f1: f64,
    pub il_fpr: f64,
    pub il_mcc: f64,
}

impl Accumulated {
    pub fn curves(&self) -> Curves {
        let mut c = Curves {
            precision: [0.0; NUM_THRESHOLDS],
            recall: [0.0; NUM_THRESHOLDS],
            f1: [0.0; NUM_THRESHOLDS],
            positive_micro_precision: [0.0; NUM_THRESHOLDS],
            positive_micro_f1: [0.0; NUM_THRESHOLDS],
            positive_macro_f1: [0.0; NUM_THRESHOLDS],
            cgf1: [0.0; NUM_THRESHOLDS],
            il_precision: 0.0,
            il_recall: 0.0,
            il_f1: 0.0,
            il_fpr: 0.0,
            il_mcc: 0.0,
        };
        let (tp, fp, tn, fn_) = (self.il_tp, self.il_fp, self.il_tn, self.il_fn);
        c.il_recall = tp as f64 / ((tp + fn_) as f64 + 1e-6);
        c.il_precision = tp as f64 / ((tp + fp) as f64 + 1e-6);
        c.il_f1 = 2.0 * c.il_precision * c.il_recall / (c.il_precision + c.il_recall + 1e-6);
        c.il_fpr = fp as f64 / ((fp + tn) as f64 + 1e-6);
        // Python multiplies exact integers, then converts once; the root is `** 0.5` (pow).
        let num = (tp as i128 * tn as i128 - fp as i128 * fn_ as i128) as f64;
        let den = (tp + fp) as f64 * (tp + fn_) as f64 * (tn + fp) as f64 * (tn + fn_) as f64;
        c.il_mcc = num / (den.powf(0.5) + 1e-6);
        for t in 0..NUM_THRESHOLDS {
            let tp = self.tp[t];
            c.precision[t] = tp as f64 / ((tp + self.fp[t]) as f64 + 1e-4);
            c.positive_micro_precision[t] = tp as f64 / ((tp + self.positive_fp[t]) as f64 + 1e-4);
            c.recall[t] = tp as f64 / ((tp + self.fn_[t]) as f64 + 1e-4);
            c.f1[t] = 2.0 * c.precision[t] * c.recall[t] / (c.precision[t] + c.recall[t] + 1e-4);
            c.positive_micro_f1[t] = 2.0 * c.positive_micro_precision[t] * c.recall[t]
                / (c.positive_micro_precision[t] + c.recall[t] + 1e-4);
            c.positive_macro_f1[t] = self.positive_local_f1_sum[t] / self.positive_f1_count as f64;
            c.cgf1[t] = c.positive_micro_f1[t] * c.il_mcc;
        }
        c
    }
}

/// A threshold-dependent metric summarised over all thresholds (`None`) or at one threshold, as
/// `summarize._summarize` does: mean of the values that are `> -1` (NaN drops out), or -1 if none.
fn summarize_curve(curve: &[f64; NUM_THRESHOLDS], at: Option<f64>) -> f64 {
    let thresholds = iou_thresholds();
    let picked: Vec<f64> = match at {
        None => curve.to_vec(),
        Some(thr) => (0..NUM_THRESHOLDS)
            .filter(|&t| thresholds[t] == thr)
            .map(|t| curve[t])
            .collect(),
    };
    let kept: Vec<f64> = picked.into_iter().filter(|v| *v > -1.0).collect();
    if kept.is_empty() {
        -1.0
    } else {
        np_mean(&kept)
    }
}

/// The reference's output, in `CGF1_METRICS` order: `(name, value)` where name is
/// `cgF1_eval_{iou_type}_{metric}` or `…_{metric}@{0.5|0.75}`.
pub fn summary(curves: &Curves, iou_type: &str) -> Vec<(String, f64)> {
    let threshold_metrics: [(&str, &[f64; NUM_THRESHOLDS]); 7] = [
        ("cgF1", &curves.cgf1),
        ("precision", &curves.precision),
        ("recall", &curves.recall),
        ("F1", &curves.f1),
        ("positive_macro_F1", &curves.positive_macro_f1),
        ("positive_micro_F1", &curves.positive_micro_f1),
        ("positive_micro_precision", &curves.positive_micro_precision),
    ];
    let image_level = [
        ("IL_precision", curves.il_precision),
        ("IL_recall", curves.il_recall),
        ("IL_F1", curves.il_f1),
        ("IL_FPR", curves.il_fpr),
        ("IL_MCC", curves.il_mcc),
    ];
    let mut out = Vec::new();
    for (name, c) in threshold_metrics {
        out.push((
            format!("cgF1_eval_{iou_type}_{name}"),
            summarize_curve(c, None),
        ));
    }
    for (name, v) in image_level {
        out.push((format!("cgF1_eval_{iou_type}_{name}"), v));
    }
    for (thr, label) in [(0.5, "0.5"), (0.75, "0.75")] {
        for (name, c) in threshold_metrics {
            out.push((
                format!("cgF1_eval_{iou_type}_{name}@{label}"),
                summarize_curve(c, Some(thr)),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_match_numpy_linspace() {
        // Values printed by numpy 2.4: np.linspace(.5, .95, 10).tolist()
        let expected = [
            0.5,
            0.55,
            0.6,
            0.65,
            0.7,
            0.75,
            0.8,
            0.85,
            0.8999999999999999,
            0.95,
        ];
        assert_eq!(iou_thresholds(), expected);
    }

    #[test]
    fn np_sum_is_pairwise() {
        // With 1e16 and small values, sequential and pairwise sums differ; the pairwise order is
        // r0..r7 = a0..a7 combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)), then a8, a9 added.
        let a = [1e16, 1.0, 1.0, 1.0, -1e16, 1.0, 1.0, 1.0, 1.0, 1.0];
        let pairwise = ((1e16 + 1.0) + (1.0 + 1.0)) + ((-1e16 + 1.0) + (1.0 + 1.0)) + 1.0 + 1.0;
        assert_eq!(np_sum(&a), pairwise);
        let mut seq = 0.0;
        for x in a {
            seq += x;
        }
        assert_ne!(np_sum(&a), seq);
    }
}
