//! The one definition of "kept", "refused" and `neg_correct` in sam3lab.
//!
//! SAM3's evaluator keeps a prediction when its score is **≥ 0.5** (`CGF1Eval(threshold=0.5)`,
//! [`SCORE_THRESHOLD`]); an entry is *refused* when none of its predictions is kept, and
//! `neg_correct` is the share of negative entries (no ground-truth instance) that are refused.
//! `eval score`, `probe patch` and `probe steer` all compute their `neg_correct` (and `probe`'s
//! positive recall, its complement on positives) through [`neg_correct`] / [`is_kept`], so a number
//! called `neg_correct` means the same thing in every output of the project.
//!
//! Two other thresholds exist and are *not* this one: the processor's keep rule `score > T`
//! (`sam3lab segment --threshold`, default 0.5 like `Sam3Processor`; the post's Fig 1.1 dotted line
//! is HF's 0.3) and the prediction writer's `eval predict --threshold 0.3`, which only decides which
//! detections are written to the results file (the scorer then keeps those ≥ 0.5).

/// Predictions with `score >= SCORE_THRESHOLD` are kept (SAM3's `CGF1Eval(threshold=0.5)`).
pub const SCORE_THRESHOLD: f64 = 0.5;

/// Whether a prediction with this score is kept at `threshold` (`score >= threshold`; a NaN score
/// is never kept).
pub fn is_kept_at(score: f64, threshold: f64) -> bool {
    score >= threshold
}

/// Whether a prediction with this score is kept by the evaluator (`score >= 0.5`).
pub fn is_kept(score: f64) -> bool {
    is_kept_at(score, SCORE_THRESHOLD)
}

/// How many of these scores the evaluator keeps.
pub fn kept_count<I: IntoIterator<Item = f64>>(scores: I) -> usize {
    scores.into_iter().filter(|&s| is_kept(s)).count()
}

/// `neg_correct` at `threshold`: the share of negative entries none of whose prediction scores is
/// kept (`score >= threshold`). Each item of `negatives` is one negative entry's prediction scores.
/// `None` when there is no negative entry. Use [`neg_correct`] unless the threshold is a
/// deliberate departure from the evaluator's (`eval score --score-threshold`).
pub fn neg_correct_at<E, S>(negatives: E, threshold: f64) -> Option<f64>
where
    E: IntoIterator<Item = S>,
    S: IntoIterator<Item = f64>,
{
    let (mut n, mut refused) = (0usize, 0usize);
    for scores in negatives {
        n += 1;
        if !scores.into_iter().any(|s| is_kept_at(s, threshold)) {
            refused += 1;
        }
    }
    (n > 0).then(|| refused as f64 / n as f64)
}

/// `neg_correct`: the share of negative entries with no prediction scoring ≥ [`SCORE_THRESHOLD`].
/// Each item of `negatives` is one negative entry's (or pair's) prediction scores; `None` without
/// negatives.
pub fn neg_correct<E, S>(negatives: E) -> Option<f64>
where
    E: IntoIterator<Item = S>,
    S: IntoIterator<Item = f64>,
{
    neg_correct_at(negatives, SCORE_THRESHOLD)
}

/// Positive recall: the share of positive entries with at least one prediction scoring ≥
/// [`SCORE_THRESHOLD`] (the share [`neg_correct`] does not count, on positives); `None` without positives.
pub fn pos_recall<E, S>(positives: E) -> Option<f64>
where
    E: IntoIterator<Item = S>,
    S: IntoIterator<Item = f64>,
{
    let (mut n, mut hit) = (0usize, 0usize);
    for scores in positives {
        n += 1;
        if scores.into_iter().any(is_kept) {
            hit += 1;
        }
    }
    (n > 0).then(|| hit as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_evaluators_threshold_is_inclusive_at_one_half() {
        assert_eq!(SCORE_THRESHOLD, 0.5);
        assert!(is_kept(0.5), "Meta's evaluator keeps score >= 0.5");
        assert!(!is_kept(0.4999));
        assert!(!is_kept(0.3), "the processor's 0.3 is not the evaluator's threshold");
        assert!(!is_kept(f64::NAN));
        assert_eq!(kept_count([0.31, 0.5, 0.49, 0.9]), 2);
    }

    #[test]
    fn neg_correct_counts_refusals_at_the_evaluators_threshold() {
        // Three negatives: one with a 0.4 prediction (kept under the old `> 0.3` rule, refused
        // here), one with an exact 0.5 (kept here, and not under a `> 0.5` rule), one empty.
        let negs: Vec<Vec<f64>> = vec![vec![0.4, 0.1], vec![0.5], vec![]];
        assert_eq!(neg_correct(negs.clone()), Some(2.0 / 3.0));
        assert_eq!(neg_correct_at(negs.clone(), 0.3), Some(1.0 / 3.0), "the departure is explicit");
        assert_eq!(pos_recall(negs), Some(1.0 / 3.0));
        assert_eq!(neg_correct(Vec::<Vec<f64>>::new()), None);
        assert_eq!(pos_recall(Vec::<Vec<f64>>::new()), None);
    }
}
