//! The typed inputs of the study: what a run measured, per checkpoint and seed.

use serde::{Deserialize, Serialize};

use crate::stats;

/// What one checkpoint (one seed of one recipe) measured. Rates and IoUs are fractions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Measures {
    /// broad-eval neg_correct: share of negative entries with no kept prediction.
    pub neg_correct: Option<f64>,
    /// broad-eval positive detection: share of positive entries with a kept prediction
    /// (IL_TP / (IL_TP + IL_FN)).
    pub detection: Option<f64>,
    /// broad-eval pos_mean_IoU.
    pub pos_mean_iou: Option<f64>,
    /// broad-eval positive micro F1 (pmF1).
    pub pmf1: Option<f64>,
    /// LVIS stand-in (broad-positive-eval) mIoU: its pos_mean_IoU.
    pub lvis_miou: Option<f64>,
    /// narrow-eval IoU (the watch stand-in): its pos_mean_IoU.
    pub narrow_iou: Option<f64>,
    /// Fig 1.1: σ(presence) on the Fig 1.1 broad negatives, one per prompt, in the probe's order.
    pub fig11_sigma: Option<Vec<f64>>,
    /// cos of this checkpoint's delta of `presence_token_out_norm.bias` (from its start: base, or
    /// frozen_te for recovery) with frozen_te − base.
    pub bias_cos: Option<f64>,
    /// The same cosine on the scalar `presence_token_head.layers.2.bias` (±1; 0 when it did not move).
    pub scalar_bias_cos: Option<f64>,
}

/// A recipe's runs: one [`Measures`] per seed (`--seeds N` gives N; the default one).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Runs {
    pub seeds: Vec<Measures>,
}

/// A value over a recipe's seeds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub mean: f64,
    /// Sample SD over the seeds; `None` with fewer than two.
    pub sd: Option<f64>,
    pub n: usize,
}

impl Runs {
    /// One seed.
    pub fn one(m: Measures) -> Runs {
        Runs { seeds: vec![m] }
    }

    /// The per-seed values of a field, over the seeds that have it.
    pub fn values(&self, f: impl Fn(&Measures) -> Option<f64>) -> Vec<f64> {
        self.seeds.iter().filter_map(f).filter(|x| x.is_finite()).collect()
    }

    /// Mean and SD of a field over the seeds that have it; `None` when none has.
    pub fn stat(&self, f: impl Fn(&Measures) -> Option<f64>) -> Option<Stat> {
        let v = self.values(f);
        if v.is_empty() {
            return None;
        }
        Some(Stat { mean: stats::mean(&v), sd: stats::sd(&v), n: v.len() })
    }

    /// Fig 1.1's σ per prompt, averaged over the seeds that measured it; `None` when none did or
    /// their prompt counts differ.
    pub fn fig11_sigma(&self) -> Option<Vec<f64>> {
        let v: Vec<&Vec<f64>> = self.seeds.iter().filter_map(|m| m.fig11_sigma.as_ref()).collect();
        let n = v.first()?.len();
        if n == 0 || v.iter().any(|s| s.len() != n) {
            return None;
        }
        Some((0..n).map(|i| v.iter().map(|s| s[i]).sum::<f64>() / v.len() as f64).collect())
    }
}

/// The SD of the margin `a − b` of a field over the seeds: of the per-seed differences when both
/// sides have the same number (≥ 2) of seeds, else √ of the summed variances of the sides with ≥ 2
/// seeds; `None` when no side has two (the margin cannot be judged for noise). `b = None` is a
/// single fixed checkpoint (the base).
pub fn margin_sd(a: &Runs, b: Option<&Runs>, f: impl Fn(&Measures) -> Option<f64> + Copy) -> Option<f64> {
    let va = a.values(f);
    let vb = b.map(|b| b.values(f)).unwrap_or_default();
    if let Some(b) = b {
        // Paired only when every seed of both sides has the value (seed i against seed i).
        if va.len() >= 2 && va.len() == vb.len() && a.seeds.len() == va.len() && b.seeds.len() == vb.len() {
            let d: Vec<f64> = va.iter().zip(&vb).map(|(x, y)| x - y).collect();
            return stats::sd(&d);
        }
    }
    let vars: Vec<f64> = [stats::sd(&va), stats::sd(&vb)].into_iter().flatten().map(|s| s * s).collect();
    if vars.is_empty() { None } else { Some(vars.iter().sum::<f64>().sqrt()) }
}

/// B4's inputs: the text encoder's token rows and features of the narrow and broad vocabularies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TextEncoderCheck {
    /// Norm of each narrow (part-name) word's token-embedding row.
    pub narrow_row_norms: Vec<f64>,
    /// Norm of each broad word's token-embedding row.
    pub broad_row_norms: Vec<f64>,
    /// The largest pairwise cosine between the text features of the part names.
    pub max_cos_narrow: f64,
    /// The largest pairwise cosine between the text features of the broad phrases.
    pub max_cos_broad: f64,
}

/// Table 6.1: weight movement (weighted mean rel_change) per module group, per recipe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupMovement {
    pub groups: Vec<String>,
    /// (recipe, movement per group in `groups`' order; `None` where the group has no tensor).
    pub recipes: Vec<(String, Vec<Option<f64>>)>,
}

/// Everything the study judges, as one run (or several) measured it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StudyResults {
    /// The shipped base (one checkpoint).
    pub base: Measures,
    pub frozen_te: Runs,
    pub lvis_replay: Runs,
    pub lvis_replay_n100: Runs,
    pub lvis_replay_neg: Runs,
    /// Post-hoc recovery from frozen_te's last checkpoint (its last checkpoint, never a best one).
    pub recovery: Runs,
    /// presence_only from lvis_replay's last checkpoint.
    pub presence_only: Runs,
    /// Control: the fine-tune recipe on broad pretraining data (B6).
    pub null_ft: Runs,
    /// Control: the fine-tune with the text encoder trainable (the post's predecessor's premise).
    pub unfrozen_te: Runs,
    /// Control: broad-eval neg_correct of the base with the presence gate forced open (B2).
    pub gate_open_base_neg_correct: Option<f64>,
    /// B5: narrow-eval IoU of one long unfrozen fine-tune (run once, recorded).
    pub long_unfrozen_narrow_iou: Option<f64>,
    /// B5: oracle best-query IoU of every narrow part, by part name.
    pub oracle_part_iou: Option<Vec<(String, f64)>>,
    /// B4's measurements of the base's text encoder.
    pub text_encoder: Option<TextEncoderCheck>,
    /// Table 6.1's module-group movement.
    pub group_movement: Option<GroupMovement>,
    /// F7's seed floor: cos(frozen_te seed 0 − base, frozen_te seed 1 − base) on the presence bias.
    pub seed_floor_cos: Option<f64>,
    /// §9: broad-eval neg_correct of the best training-free intervention on lvis_replay (head
    /// surgery, steering), with its name.
    pub best_intervention: Option<(String, f64)>,
}
