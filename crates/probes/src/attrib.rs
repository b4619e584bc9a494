//! Attribution patching: the cheap screen before causal patching. For each (image, prompt) pair and
//! each hook point p, a first-order estimate of how far TARGET's presence logit ℓ would move if p's
//! activation were replaced by SOURCE's on the same pair:
//!
//!   estimate(p) = Σ ∂ℓ_target/∂a_p ⊙ (a_source,p − a_target,p)
//!
//! One TARGET forward and one backward per pair give every point at once (the gradients are hook
//! points: [`sam3lab_hooks::Action::Grad`] on an autodiff device), where causal patching needs one
//! forward per point. This is what TransformerLens users call attribution patching (Nanda 2023;
//! Syed et al. 2023, "Attribution Patching Outperforms Automated Circuit Discovery"). It is exact
//! when ℓ is linear in a_p between the two activations and drifts from the truth where it is not
//! (LayerNorms, softmaxes, the presence head's MLP): so with `verify` each point is also patched for
//! real — TARGET's forward with p replaced by SOURCE's activation, the [`crate::sweep`] edit — and the
//! agreement is reported: Spearman's ρ (ties averaged, [`sam3lab_util::stats::spearman`]) between
//! the per-point means of estimate and actual change, the same over every (pair, point), and the
//! share of (pair, point) where the two have the same sign.
//!
//! Every run of a pair (SOURCE, TARGET with the gradients, TARGET patched) captures the same points,
//! so they share one computation path; the gradient entry adds an exact zero, so TARGET's baseline
//! logit is the plain forward's.
//!
//! Sharded: [`run_shard`] measures the pairs of one shard's images and [`merge`] puts N shards back
//! together; both [`run`] and [`merge`] make their result through one `assemble` step from the
//! per-pair rows (the shard format: [`crate::shard`]), so merged shards give [`run`]'s bytes.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use sam3lab_hooks::HookSpec;
use sam3lab_util::progress::Progress;
use sam3lab_util::stats;
use serde::{Deserialize, Serialize};

use crate::{ProbeError, Result};
use crate::inputs::{Label, LabelFilter, Pairs, pair_image_records, shard_pairs};
use crate::manifest::{Csv, Manifest, num, pairs_record, write_json};
use crate::model::{self, CkptSpec};
use crate::shard::{self, Measured, PairRow, Plan, Shard, ShardFile};
use crate::sweep;

pub struct AttribRequest {
    /// The checkpoint whose activations would be patched in (e.g. the base).
    pub source: CkptSpec,
    /// The checkpoint whose presence logit is explained (e.g. the fine-tune).
    pub target: CkptSpec,
    pub config: Option<PathBuf>,
    pub pairs: Pairs,
    /// Hook names or patterns; each resolved point is scored on its own. Points must be editable
    /// (a gradient reaches only values the model uses).
    pub points: Vec<String>,
    pub label: LabelFilter,
    /// Also patch every point for real and measure the agreement (one more TARGET forward per point and pair).
    pub verify: bool,
    pub seed: u64,
    /// The device; TARGET runs on its autodiff twin.
    pub device: Device,
}

/// One (pair, point).
#[derive(Clone, Debug, Serialize)]
pub struct AttribPair {
    pub pair: usize,
    pub image: String,
    pub prompt: String,
    pub label: Label,
    pub point: String,
    /// TARGET's presence logit (unpatched).
    pub target_logit: f64,
    /// SOURCE's presence logit on the same pair.
    pub source_logit: f64,
    /// Σ grad ⊙ (a_source − a_target).
    pub estimate: f64,
    /// ℓ(TARGET with this point patched from SOURCE) − ℓ(TARGET), with `verify`.
    pub actual: Option<f64>,
}

/// One point over the pairs.
#[derive(Clone, Debug, Serialize)]
pub struct AttribPoint {
    pub point: String,
    pub mean_estimate: f64,
    pub mean_actual: Option<f64>,
    /// 1 = the largest |mean estimate| (the screen's order).
    pub rank_estimate: usize,
    /// 1 = the largest |mean actual|, with `verify`.
    pub rank_actual: Option<usize>,
}

/// How well the estimate predicts the causal patch (with `verify`).
#[derive(Clone, Debug, Serialize)]
pub struct Agreement {
    /// Spearman's ρ between the points' mean estimates and mean actual changes.
    pub spearman_point_means: Option<f64>,
    /// Spearman's ρ over every (pair, point).
    pub spearman_pairs: Option<f64>,
    /// Share of (pair, point) where estimate and actual change have the same sign (both zero counts as agreeing).
    pub sign_agreement: Option<f64>,
    /// Σ|estimate − actual| / Σ|actual| over every (pair, point).
    pub relative_l1_error: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct AttribResult {
    /// What is explained: TARGET's final presence logit.
    pub metric: String,
    /// Points in the screen's order (largest |mean estimate| first).
    pub points: Vec<AttribPoint>,
    pub agreement: Option<Agreement>,
    pub pairs: Vec<AttribPair>,
    pub manifest: Manifest,
}

fn dot_diff(grad: &[f32], source: &[f32], target: &[f32]) -> f64 {
    grad.iter().zip(source.iter().zip(target)).map(|(&g, (&s, &t))| g as f64 * (s as f64 - t as f64)).sum()
}

/// Ranks 1..n by descending |value| (ties keep point order).
fn rank_by_magnitude(v: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[b].abs().total_cmp(&v[a].abs()));
    let mut rank = vec![0; v.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r + 1;
    }
    rank
}

/// The `probe` of an attrib shard file.
pub const PROBE: &str = "attrib";

/// One (pair, point) measurement, its numbers as their bits.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub pair: usize,
    /// The point's position in the manifest's `points`.
    pub point: usize,
    #[serde(with = "crate::shard::bits")]
    pub target_logit: f64,
    #[serde(with = "crate::shard::bits")]
    pub source_logit: f64,
    #[serde(with = "crate::shard::bits")]
    pub estimate: f64,
    #[serde(with = "crate::shard::opt_bits")]
    pub actual: Option<f64>,
}

impl PairRow for Row {
    fn pair(&self) -> usize {
        self.pair
    }
}

/// What the tables need besides the rows and the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub verify: bool,
}

/// An attrib shard (`probe attrib --shard K/N`'s `attrib_shard.json`).
pub type AttribShard = ShardFile<Context, Row>;

/// Run the attribution probe.
pub fn run(req: &AttribRequest, progress: &dyn Progress) -> Result<AttribResult> {
    assemble(measure(req, None, progress)?)
}

/// Run shard `shard`: the pairs of the images g ≡ K (mod N); [`merge`] of all N shards gives what
/// [`run`] gives.
pub fn run_shard(req: &AttribRequest, shard: Shard, progress: &dyn Progress) -> Result<AttribShard> {
    Ok(measure(req, Some(shard), progress)?.into_shard(PROBE, shard))
}

/// Put the shards (files or their directories, any order) of one run back together: what [`run`]
/// returns.
pub fn merge(shards: &[PathBuf]) -> Result<AttribResult> {
    assemble(shard::merge_files(PROBE, shards)?)
}

fn measure(req: &AttribRequest, shard: Option<Shard>, progress: &dyn Progress) -> Result<Measured<Context, Row>> {
    let selected = req.pairs.select(req.label)?;
    let mine = match shard {
        Some(s) => shard_pairs(&selected, s),
        None => selected.clone(),
    };
    let cfg = req.config.as_deref();
    // Both on the autodiff twin of the device, so SOURCE and TARGET take the same kernels (a
    // checkpoint against itself then attributes exactly 0). Only the gradient leaves are tracked:
    // untracked weights keep the cached image and prompt encodings free of graph, so every pair's
    // backward is its own (burn keeps no graph across backwards).
    let ad = req.device.clone().autodiff();
    let mut source = model::load(&req.source, cfg, &ad)?;
    source.predictor.model = source.predictor.model.no_grad();
    let mut target = model::load(&req.target, cfg, &ad)?;
    target.predictor.model = target.predictor.model.no_grad();
    model::check_same_config(&[&source, &target])?;
    let points = model::resolve_points(&target.registry, &req.points)?;
    // Gradients reach only values the model uses: refuse read-only points up front, by name.
    let mut grad_spec = HookSpec::new();
    for p in &points {
        grad_spec = grad_spec.grad(p)?;
    }
    grad_spec.validate(&target.registry)?;
    let grad_spec = grad_spec.capture_all(&points)?;

    progress.set_len(mine.len() as u64);
    let mut rows: Vec<Row> = Vec::new();
    sweep::for_each_pair(&[&source, &target], &mine, &points, progress, |runs| {
        let (src_out, src) = runs.capture(0, &points)?;
        let (out, tgt) = runs.run(1, grad_spec.clone())?;
        let target_logit = model::outcome(&out).presence_logit as f64;
        let grads = out.presence_logit.clone().sum().backward();
        let g = tgt.gradients(&grads)?;
        let source_logit = model::outcome(&src_out).presence_logit as f64;
        for (k, p) in points.iter().enumerate() {
            let estimate = dot_diff(&g.get(p)?.to_vec(), &src.get(p)?.to_vec(), &tgt.get(p)?.to_vec());
            let actual = if req.verify {
                let spec = HookSpec::new().replace(p, src.get(p)?.clone())?.capture_all(&points)?;
                let (patched, _) = runs.run(1, spec)?;
                Some(model::outcome(&patched).presence_logit as f64 - target_logit)
            } else {
                None
            };
            rows.push(Row { pair: runs.pair.index, point: k, target_logit, source_logit, estimate, actual });
        }
        Ok(())
    })?;
    let mut manifest = Manifest::new("sam3lab probe attrib", req.seed);
    model::describe(&mut manifest, &[&source, &target], cfg)?;
    for (rec, role) in manifest.checkpoints.iter_mut().zip(["source", "target"]) {
        rec.label = role.into();
    }
    manifest.points = points.clone();
    manifest.images = pair_image_records(&selected)?;
    manifest.pairs = Some(pairs_record(&req.pairs, selected.len()));
    manifest.option("label", req.label.as_str());
    manifest.option("verify", req.verify);
    manifest.notes = vec![
        "metric: the target's final presence logit ℓ (before the sigmoid)".into(),
        "estimate(p) = Σ ∂ℓ_target/∂a_p ⊙ (a_source,p − a_target,p): the first-order change of ℓ if p were patched from the source (attribution patching)".into(),
        "actual(p) = ℓ(target with p replaced by the source's activation on the same pair) − ℓ(target), with --verify".into(),
        "points are ranked by |mean estimate| over the pairs; agreement: Spearman ρ (ties averaged) of point means and of every (pair, point), sign agreement, Σ|est − act| / Σ|act|".into(),
    ];
    Ok(Measured::new(manifest, Context { verify: req.verify }, Plan::of(&selected), rows))
}

/// The tables from the measurements: the one path by which [`run`] and [`merge`] make their result.
fn assemble(m: Measured<Context, Row>) -> Result<AttribResult> {
    let Measured { manifest, context, plan, rows: mut measured } = m;
    let verify = context.verify;
    let points = &manifest.points;
    // Pair-file order; a pair's rows are already in point order and the sort is stable.
    measured.sort_by_key(|r| r.pair);
    let mut rows: Vec<AttribPair> = Vec::with_capacity(measured.len());
    for r in measured {
        let (Some(pair), Some(point)) = (plan.pair(r.pair), points.get(r.point)) else {
            return Err(ProbeError::Usage(format!("attrib: a measurement of pair {} at point {} outside the run", r.pair, r.point)));
        };
        rows.push(AttribPair {
            pair: r.pair,
            image: pair.image.clone(),
            prompt: pair.prompt.clone(),
            label: pair.label,
            point: point.clone(),
            target_logit: r.target_logit,
            source_logit: r.source_logit,
            estimate: r.estimate,
            actual: r.actual,
        });
    }

    let per_point = |f: &dyn Fn(&AttribPair) -> Option<f64>| -> Vec<Option<f64>> {
        points
            .iter()
            .map(|p| {
                let v: Vec<f64> = rows.iter().filter(|r| &r.point == p).filter_map(f).collect();
                (!v.is_empty()).then(|| stats::mean(&v))
            })
            .collect()
    };
    let est_means: Vec<f64> = per_point(&|r| Some(r.estimate)).into_iter().map(|m| m.unwrap_or(0.0)).collect();
    let act_means: Vec<Option<f64>> = per_point(&|r| r.actual);
    let rank_est = rank_by_magnitude(&est_means);
    let acts: Vec<f64> = act_means.iter().map(|m| m.unwrap_or(0.0)).collect();
    let rank_act = verify.then(|| rank_by_magnitude(&acts));
    let mut summary: Vec<AttribPoint> = points
        .iter()
        .enumerate()
        .map(|(k, p)| AttribPoint {
            point: p.clone(),
            mean_estimate: est_means[k],
            mean_actual: act_means[k],
            rank_estimate: rank_est[k],
            rank_actual: rank_act.as_ref().map(|r| r[k]),
        })
        .collect();
    summary.sort_by_key(|s| s.rank_estimate);

    let agreement = verify.then(|| {
        let (e, a): (Vec<f64>, Vec<f64>) = rows.iter().filter_map(|r| r.actual.map(|a| (r.estimate, a))).unzip();
        let same_sign = e.iter().zip(&a).filter(|(x, y)| x.signum() == y.signum() || (**x == 0.0 && **y == 0.0)).count();
        let abs_act: f64 = a.iter().map(|x| x.abs()).sum();
        Agreement {
            spearman_point_means: stats::spearman(&est_means, &acts),
            spearman_pairs: stats::spearman(&e, &a),
            sign_agreement: (!e.is_empty()).then(|| same_sign as f64 / e.len() as f64),
            relative_l1_error: (abs_act > 0.0).then(|| e.iter().zip(&a).map(|(x, y)| (x - y).abs()).sum::<f64>() / abs_act),
        }
    });

    Ok(AttribResult { metric: "presence_logit".into(), points: summary, agreement, pairs: rows, manifest })
}

/// Write `attrib.json`, `attrib.csv` (per point, in the screen's order), `attrib_pairs.csv` and `manifest.json`.
pub fn write(out: &Path, r: &AttribResult) -> Result<()> {
    write_json(&out.join("attrib.json"), r)?;
    let mut c = Csv::new(&["rank_estimate", "point", "mean_estimate", "mean_actual", "rank_actual"]);
    for p in &r.points {
        c.row([
            p.rank_estimate.to_string(),
            p.point.clone(),
            num(Some(p.mean_estimate)),
            num(p.mean_actual),
            p.rank_actual.map(|x| x.to_string()).unwrap_or_default(),
        ]);
    }
    c.write(&out.join("attrib.csv"))?;
    let mut c = Csv::new(&["pair", "label", "image", "prompt", "point", "target_logit", "source_logit", "estimate", "actual"]);
    for p in &r.pairs {
        c.row([
            p.pair.to_string(),
            p.label.as_str().to_string(),
            p.image.clone(),
            p.prompt.clone(),
            p.point.clone(),
            num(Some(p.target_logit)),
            num(Some(p.source_logit)),
            num(Some(p.estimate)),
            num(p.actual),
        ]);
    }
    c.write(&out.join("attrib_pairs.csv"))?;
    write_json(&out.join("manifest.json"), &r.manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_by_magnitude_largest_first() {
        assert_eq!(rank_by_magnitude(&[0.1, -3.0, 2.0, 0.0]), vec![3, 1, 2, 4]);
        assert_eq!(dot_diff(&[1.0, -2.0], &[3.0, 1.0], &[1.0, 2.0]), 2.0 + 2.0);
    }
}
