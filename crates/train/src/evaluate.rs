//! Evaluation during training (eval-mode forward on a held-out SA-Co/Gold-format set): the refusal
//! and detection rates the post reports plus threshold-free ones, so a run can be watched as it
//! learns. `neg_correct` / `pos_detect` use the evaluator's rule (`sam3lab_eval::refusal`: a
//! prediction counts when its score σ(logit)·σ(presence) ≥ 0.5).

use burn::prelude::*;
use sam3lab_hooks::Hooks;
use sam3lab_model::{GeometryPrompt, Sam3};
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, ImageCache, make_batch};
use crate::error::Result;
use crate::loss::{host, upsample_bilinear};

/// `[eval]` of a recipe.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// Held-out set (SA-Co/Gold / COCO JSON).
    pub gt: std::path::PathBuf,
    #[serde(default)]
    pub images: Option<std::path::PathBuf>,
    /// Evaluate every this many steps (and at step 0 and the last step).
    pub every: usize,
    /// Pairs per forward.
    #[serde(default = "eight")]
    pub batch: usize,
    /// Evaluate at most this many pairs (the first ones; default all).
    #[serde(default)]
    pub max_pairs: Option<usize>,
}

fn eight() -> usize {
    8
}

/// One evaluation row.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EvalRow {
    pub step: usize,
    pub pairs: usize,
    /// Share of negatives with no prediction ≥ 0.5.
    pub neg_correct: Option<f64>,
    /// Share of positives with some prediction ≥ 0.5.
    pub pos_detect: Option<f64>,
    /// Accuracy of σ(presence) ≥ 0.5 against "has an instance".
    pub presence_acc: f64,
    /// P(max score of a positive > max score of a negative) (ties count ½).
    pub score_auc: Option<f64>,
    /// Mean over ground-truth instances of the best IoU of any query's mask (an oracle: scores
    /// ignored), masks upsampled to the input size and cut at logit 0.
    pub best_iou: Option<f64>,
    pub mean_max_score_pos: Option<f64>,
    pub mean_max_score_neg: Option<f64>,
}

impl EvalRow {
    pub const HEADER: &'static str =
        "step,pairs,neg_correct,pos_detect,presence_acc,score_auc,best_iou,mean_max_score_pos,mean_max_score_neg";

    /// One `eval.csv` record with its newline (6 decimals; empty for an undefined value).
    pub fn csv(&self) -> String {
        let o = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
        sam3lab_util::csv::line([
            self.step.to_string(),
            self.pairs.to_string(),
            o(self.neg_correct),
            o(self.pos_detect),
            o(Some(self.presence_acc)),
            o(self.score_auc),
            o(self.best_iou),
            o(self.mean_max_score_pos),
            o(self.mean_max_score_neg),
        ])
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Evaluate `model` (eval mode) on `set`.
pub fn evaluate(model: &Sam3, set: &Dataset, spec: &EvalSpec, cache: &mut ImageCache, step: usize, device: &Device) -> Result<EvalRow> {
    Ok(evaluate_detailed(model, set, spec, cache, step, device)?.0)
}

/// [`evaluate`], plus every ground-truth instance's best-query IoU with its pair's noun phrase (the
/// oracle ceiling per concept: world v2's B5 reads it per narrow part).
pub fn evaluate_detailed(
    model: &Sam3,
    set: &Dataset,
    spec: &EvalSpec,
    cache: &mut ImageCache,
    step: usize,
    device: &Device,
) -> Result<(EvalRow, Vec<(String, f64)>)> {
    let cfg = &model.config;
    let r = cfg.image_size;
    let n = spec.max_pairs.unwrap_or(usize::MAX).min(set.pairs.len());
    let (mut pos_max, mut neg_max) = (vec![], vec![]);
    let (mut pres_ok, mut ious) = (0usize, vec![]);
    let mut by_phrase = vec![];
    let idx: Vec<usize> = (0..n).collect();
    for chunk in idx.chunks(spec.batch.max(1)) {
        let picks: Vec<(&Dataset, usize)> = chunk.iter().map(|&i| (set, i)).collect();
        let b = make_batch(&picks, cache, r, cfg.text.context_length, device)?;
        let mut none = Hooks::none();
        let image = model.encode_image(b.pixels.clone(), &mut none).select(&b.img_ids);
        let text = model.encode_text(b.input_ids.clone(), &mut none).select(&b.text_ids);
        let out = model.ground_geometry(&image, &text, &GeometryPrompt::default(), &mut none)?;
        let scores = host(&out.scores);
        let presence = host(&out.presence_logit);
        let [bq, q, h4, w4] = out.pred_masks.dims();
        let masks = upsample_bilinear(out.pred_masks.clone().reshape([bq * q, h4, w4]), r);
        let masks = host(&masks);
        let off = b.targets.offsets();
        for (k, &pi) in chunk.iter().enumerate() {
            let pair = &set.pairs[pi];
            let s = &scores[k * q..(k + 1) * q];
            let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let positive = !pair.instances.is_empty();
            if positive { pos_max.push(max) } else { neg_max.push(max) }
            let p = 1.0 / (1.0 + (-presence[k]).exp());
            if (p >= 0.5) == positive {
                pres_ok += 1;
            }
            for t in 0..b.targets.num_boxes[k] {
                let ti = off[k] + t;
                if !b.targets.is_valid_mask[ti] {
                    continue;
                }
                let tm = &b.targets.masks[ti * r * r..(ti + 1) * r * r];
                let mut best = 0f64;
                for qi in 0..q {
                    let m = &masks[(k * q + qi) * r * r..(k * q + qi + 1) * r * r];
                    let (mut inter, mut uni) = (0usize, 0usize);
                    for (a, b) in m.iter().zip(tm) {
                        let (a, b) = (*a > 0.0, *b > 0.5);
                        inter += (a && b) as usize;
                        uni += (a || b) as usize;
                    }
                    if uni > 0 {
                        best = best.max(inter as f64 / uni as f64);
                    }
                }
                ious.push(best);
                by_phrase.push((pair.text.clone(), best));
            }
        }
    }
    let auc = (!pos_max.is_empty() && !neg_max.is_empty()).then(|| {
        let mut wins = 0f64;
        for p in &pos_max {
            for q in &neg_max {
                wins += if p > q { 1.0 } else if p == q { 0.5 } else { 0.0 };
            }
        }
        wins / (pos_max.len() * neg_max.len()) as f64
    });
    let row = EvalRow {
        step,
        pairs: n,
        neg_correct: sam3lab_eval::refusal::neg_correct(neg_max.iter().map(|&m| [m])),
        pos_detect: sam3lab_eval::refusal::pos_recall(pos_max.iter().map(|&m| [m])),
        presence_acc: pres_ok as f64 / n.max(1) as f64,
        score_auc: auc,
        best_iou: mean(&ious),
        mean_max_score_pos: mean(&pos_max),
        mean_max_score_neg: mean(&neg_max),
    };
    Ok((row, by_phrase))
}

/// Mean best-query IoU per phrase, in first-seen order.
pub fn mean_by_phrase(v: &[(String, f64)]) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64, usize)> = vec![];
    for (p, x) in v {
        match out.iter_mut().find(|o| &o.0 == p) {
            Some(o) => {
                o.1 += x;
                o.2 += 1;
            }
            None => out.push((p.clone(), *x, 1)),
        }
    }
    out.into_iter().map(|(p, s, n)| (p, s / n as f64)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_by_phrase_by_hand() {
        let v = vec![("b".to_string(), 0.5), ("a".to_string(), 1.0), ("b".to_string(), 0.25)];
        assert_eq!(mean_by_phrase(&v), vec![("b".to_string(), 0.375), ("a".to_string(), 1.0)]);
        assert!(mean_by_phrase(&[]).is_empty());
    }
}
