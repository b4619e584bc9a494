//! Causal patching (post §9, probe 3): run SOURCE, transplant the named hook points into TARGET's
//! forward (replace), and read TARGET's decision before and after.
//!
//! Per pair: the presence sigmoid, the kept-detection count (score ≥ 0.5, the evaluator's keep rule
//! [`sam3lab_eval::is_kept`]) and the top score,
//! for SOURCE, TARGET before and TARGET after each patch condition; per condition: the fraction of
//! TARGET's false positives on negative pairs (≥ 1 kept detection) that the patch silences (0 kept),
//! also restricted to the negatives where SOURCE keeps nothing ("disagreeing" pairs, the post's 34),
//! plus neg_correct / positive recall before and after ([`sam3lab_eval::neg_correct`]: the same
//! definition and threshold as `eval score`).
//!
//! The lockstep caveat the post found is built in: besides the user's points, the probe patches
//! `decoder.layers.{L}.q0` alone and the whole `decoder.layers.{L}.out` (both carry the presence
//! token the presence head reads; the whole output also carries every cross-attention contribution),
//! reported side by side.
//!
//! It is one [`crate::sweep`] of TARGET over the conditions (each patched from SOURCE), with the
//! metric [`model::outcome`]. Every run of a pair (source, before, after) captures the same set of
//! points, so all of them take the same computation path (per-head attention is computed explicitly
//! when a head point is involved): patching a checkpoint into itself changes nothing, bit for bit.
//!
//! Sharded: [`run_shard`] measures the pairs of one shard's images and [`merge`] puts N shards back
//! together; both [`run`] and [`merge`] make their result through one `assemble` step from the
//! per-pair rows (the shard format: [`crate::shard`]), so merged shards give [`run`]'s bytes.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use sam3lab_util::progress::Progress;
use sam3lab_results::HeatmapTable;
use sam3lab_hooks::ActivationCache;
use serde::{Deserialize, Serialize};

use crate::{ProbeError, Result};
use crate::inputs::{Label, LabelFilter, Pair, Pairs, pair_image_records, shard_pairs};
use crate::manifest::{Csv, Manifest, num, pairs_record, write_json};
use crate::model::{self, CkptSpec, Outcome};
use crate::shard::{self, Measured, PairRow, Plan, Shard, ShardFile};
use crate::sweep::{self, Intervention, Sweep};

/// Which layer the q0-vs-whole-output comparison uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lockstep {
    Off,
    /// The last decoder layer (where the presence head reads q0).
    Last,
    Layer(usize),
}

pub struct PatchRequest {
    pub source: CkptSpec,
    pub target: CkptSpec,
    pub config: Option<PathBuf>,
    pub pairs: Pairs,
    /// Hook names or patterns transplanted together (the `patch` condition).
    pub points: Vec<String>,
    pub lockstep: Lockstep,
    pub label: LabelFilter,
    pub seed: u64,
    pub device: Device,
}

/// One set of points patched together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub name: String,
    pub points: Vec<String>,
}

/// A pair's outcomes.
#[derive(Clone, Debug, Serialize)]
pub struct PairPatch {
    pub pair: usize,
    pub image: String,
    pub prompt: String,
    pub label: Label,
    pub source: Outcome,
    pub before: Outcome,
    /// One per condition, in condition order.
    pub after: Vec<Outcome>,
    /// ‖a_target − a_source‖ / ‖a_source‖ at each patched point (`None` when ‖a_source‖ = 0).
    pub point_rel_diff: Vec<(String, Option<f64>)>,
}

/// One condition over the pairs.
#[derive(Clone, Debug, Serialize)]
pub struct ConditionSummary {
    pub name: String,
    pub points: Vec<String>,
    pub pairs: usize,
    pub neg_pairs: usize,
    pub pos_pairs: usize,
    /// Negative pairs where TARGET keeps ≥ 1 detection before the patch.
    pub target_false_positives: usize,
    /// Of those, how many keep none after the patch.
    pub silenced: usize,
    pub silenced_fraction: Option<f64>,
    /// Target false positives where SOURCE keeps nothing (the two checkpoints disagree).
    pub disagreeing: usize,
    pub silenced_disagreeing: usize,
    pub silenced_fraction_disagreeing: Option<f64>,
    /// Negative pairs without detections before the patch that get some after it.
    pub new_false_positives: usize,
    pub neg_correct_before: Option<f64>,
    pub neg_correct_after: Option<f64>,
    pub pos_recall_before: Option<f64>,
    pub pos_recall_after: Option<f64>,
    pub mean_presence_neg_before: Option<f64>,
    pub mean_presence_neg_after: Option<f64>,
    pub mean_presence_pos_before: Option<f64>,
    pub mean_presence_pos_after: Option<f64>,
    /// Mean |σ_after − σ_source|: how close the patch brings TARGET's gate to SOURCE's.
    pub mean_abs_presence_gap_to_source: f64,
}

#[derive(Debug, Serialize)]
pub struct PatchResult {
    /// The keep threshold of every count and rate ([`sam3lab_eval::SCORE_THRESHOLD`], score ≥ it).
    pub threshold: f64,
    pub conditions: Vec<ConditionSummary>,
    /// SOURCE's own neg_correct / recall on the same pairs, for reference.
    pub source_neg_correct: Option<f64>,
    pub source_pos_recall: Option<f64>,
    pub pairs: Vec<PairPatch>,
    pub manifest: Manifest,
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

fn frac(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// The conditions a request runs, with its points resolved.
pub fn conditions(req: &PatchRequest, registry: &sam3lab_hooks::HookRegistry, num_layers: usize) -> Result<Vec<Condition>> {
    let mut out = vec![Condition { name: "patch".into(), points: model::resolve_points(registry, &req.points)? }];
    let layer = match req.lockstep {
        Lockstep::Off => None,
        Lockstep::Last => Some(num_layers - 1),
        Lockstep::Layer(l) if l < num_layers => Some(l),
        Lockstep::Layer(l) => {
            return Err(ProbeError::Usage(format!("--lockstep-layer {l}: the decoder has layers 0..{}", num_layers - 1)));
        }
    };
    if let Some(l) = layer {
        out.push(Condition { name: format!("q0_only@{l}"), points: vec![format!("decoder.layers.{l}.q0")] });
        out.push(Condition { name: format!("layer_out@{l}"), points: vec![format!("decoder.layers.{l}.out")] });
    }
    Ok(out)
}

/// The `probe` of a patch shard file.
pub const PROBE: &str = "patch";

/// One pair's measurement: its outcomes exactly (presence logit and scores) and the relative
/// differences at the patched points.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub pair: usize,
    #[serde(with = "crate::shard::outcome")]
    pub source: Outcome,
    #[serde(with = "crate::shard::outcome")]
    pub before: Outcome,
    /// One per condition.
    #[serde(with = "crate::shard::outcome::vec")]
    pub after: Vec<Outcome>,
    /// One per point of the manifest's `points` (every patched point).
    #[serde(with = "crate::shard::opt_bits_vec")]
    pub rel_diff: Vec<Option<f64>>,
}

impl PairRow for Row {
    fn pair(&self) -> usize {
        self.pair
    }
}

/// A patch shard (`probe patch --shard K/N`'s `patch_shard.json`); its context is the conditions.
pub type PatchShard = ShardFile<Vec<Condition>, Row>;

/// Run the patching probe: a [`sweep`] of TARGET over the conditions, each patched from SOURCE.
pub fn run(req: &PatchRequest, progress: &dyn Progress) -> Result<PatchResult> {
    assemble(measure(req, None, progress)?)
}

/// Run shard `shard`: the pairs of the images g ≡ K (mod N); [`merge`] of all N shards gives what
/// [`run`] gives.
pub fn run_shard(req: &PatchRequest, shard: Shard, progress: &dyn Progress) -> Result<PatchShard> {
    Ok(measure(req, Some(shard), progress)?.into_shard(PROBE, shard))
}

/// Put the shards (files or their directories, any order) of one run back together: what [`run`]
/// returns.
pub fn merge(shards: &[PathBuf]) -> Result<PatchResult> {
    assemble(shard::merge_files(PROBE, shards)?)
}

fn measure(req: &PatchRequest, shard: Option<Shard>, progress: &dyn Progress) -> Result<Measured<Vec<Condition>, Row>> {
    let selected = req.pairs.select(req.label)?;
    let mine = match shard {
        Some(s) => shard_pairs(&selected, s),
        None => selected.clone(),
    };
    let cfg = req.config.as_deref();
    let source = model::load(&req.source, cfg, &req.device)?;
    let target = model::load(&req.target, cfg, &req.device)?;
    model::check_same_config(&[&source, &target])?;
    let conds = conditions(req, &source.registry, source.predictor.model.config.decoder.num_layers)?;
    let s = Sweep {
        target: &target,
        sources: vec![&source],
        capture: Vec::new(),
        interventions: conds.iter().map(|c| Intervention::patch(&c.name, &c.points, 0)).collect(),
    };
    let union = s.points();
    // ‖a_target − a_source‖ / ‖a_source‖ at every patched point, from the plain runs.
    let rel_diff = |_: &Pair, src: &[ActivationCache], base: &ActivationCache| -> Result<Vec<Option<f64>>> {
        let mut out = Vec::new();
        for p in &union {
            let (s, t) = (src[0].get(p)?.to_vec(), base.get(p)?.to_vec());
            let s2: f64 = s.iter().map(|&x| (x as f64).powi(2)).sum();
            let d2: f64 = s.iter().zip(&t).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
            out.push((s2 > 0.0).then(|| (d2 / s2).sqrt()));
        }
        Ok(out)
    };
    progress.set_len(mine.len() as u64);
    let table = sweep::run_observed(&s, &mine, progress, |out| Ok(model::outcome(out)), rel_diff)?;
    let rows: Vec<Row> = table
        .rows
        .into_iter()
        .map(|r| Row {
            pair: r.pair.index,
            source: r.sources.into_iter().next().expect("one source"),
            before: r.baseline,
            after: r.patched,
            rel_diff: r.extra,
        })
        .collect();

    let mut manifest = Manifest::new("sam3lab probe patch", req.seed);
    model::describe(&mut manifest, &[&source, &target], cfg)?;
    for (rec, role) in manifest.checkpoints.iter_mut().zip(["source", "target"]) {
        rec.label = role.into();
    }
    manifest.points = union;
    manifest.images = pair_image_records(&selected)?;
    manifest.pairs = Some(pairs_record(&req.pairs, selected.len()));
    manifest.option("threshold", sam3lab_eval::SCORE_THRESHOLD);
    manifest.option("label", req.label.as_str());
    manifest.option("conditions", &conds);
    manifest.notes = vec![
        model::keep_rule(),
        "a false positive is a negative pair with ≥ 1 kept detection; silenced_fraction = FPs with 0 kept after the patch / FPs before".into(),
        "disagreeing = target FPs on negatives where the source keeps nothing".into(),
        "source, before and after runs capture the same points so they share one computation path".into(),
    ];
    Ok(Measured::new(manifest, conds, Plan::of(&selected), rows))
}

/// The tables from the measurements: the one path by which [`run`] and [`merge`] make their result.
fn assemble(m: Measured<Vec<Condition>, Row>) -> Result<PatchResult> {
    let Measured { manifest, context: conds, plan, mut rows } = m;
    rows.sort_by_key(|r| r.pair);
    let mut results: Vec<PairPatch> = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(p) = plan.pair(r.pair) else {
            return Err(ProbeError::Usage(format!("patch: a measurement of pair {}, which the run did not select", r.pair)));
        };
        if r.after.len() != conds.len() || r.rel_diff.len() != manifest.points.len() {
            return Err(ProbeError::Usage(format!(
                "patch: pair {} has {} outcomes and {} point differences for {} conditions and {} points",
                r.pair,
                r.after.len(),
                r.rel_diff.len(),
                conds.len(),
                manifest.points.len()
            )));
        }
        results.push(PairPatch {
            pair: r.pair,
            image: p.image.clone(),
            prompt: p.prompt.clone(),
            label: p.label,
            source: r.source,
            before: r.before,
            after: r.after,
            point_rel_diff: manifest.points.iter().cloned().zip(r.rel_diff).collect(),
        });
    }

    let neg: Vec<&PairPatch> = results.iter().filter(|r| r.label == Label::Neg).collect();
    let pos: Vec<&PairPatch> = results.iter().filter(|r| r.label == Label::Pos).collect();
    let summaries = conds
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let fp: Vec<&&PairPatch> = neg.iter().filter(|r| r.before.kept > 0).collect();
            let silenced = fp.iter().filter(|r| r.after[k].kept == 0).count();
            let dis: Vec<&&&PairPatch> = fp.iter().filter(|r| r.source.kept == 0).collect();
            let silenced_dis = dis.iter().filter(|r| r.after[k].kept == 0).count();
            ConditionSummary {
                name: c.name.clone(),
                points: c.points.clone(),
                pairs: results.len(),
                neg_pairs: neg.len(),
                pos_pairs: pos.len(),
                target_false_positives: fp.len(),
                silenced,
                silenced_fraction: frac(silenced, fp.len()),
                disagreeing: dis.len(),
                silenced_disagreeing: silenced_dis,
                silenced_fraction_disagreeing: frac(silenced_dis, dis.len()),
                new_false_positives: neg.iter().filter(|r| r.before.kept == 0 && r.after[k].kept > 0).count(),
                neg_correct_before: model::neg_correct(neg.iter().map(|r| &r.before)),
                neg_correct_after: model::neg_correct(neg.iter().map(|r| &r.after[k])),
                pos_recall_before: model::pos_recall(pos.iter().map(|r| &r.before)),
                pos_recall_after: model::pos_recall(pos.iter().map(|r| &r.after[k])),
                mean_presence_neg_before: mean(neg.iter().map(|r| r.before.presence_sigma)),
                mean_presence_neg_after: mean(neg.iter().map(|r| r.after[k].presence_sigma)),
                mean_presence_pos_before: mean(pos.iter().map(|r| r.before.presence_sigma)),
                mean_presence_pos_after: mean(pos.iter().map(|r| r.after[k].presence_sigma)),
                mean_abs_presence_gap_to_source: mean(
                    results.iter().map(|r| (r.after[k].presence_sigma - r.source.presence_sigma).abs()),
                )
                .unwrap_or(0.0),
            }
        })
        .collect();

    Ok(PatchResult {
        threshold: sam3lab_eval::SCORE_THRESHOLD,
        conditions: summaries,
        source_neg_correct: model::neg_correct(neg.iter().map(|r| &r.source)),
        source_pos_recall: model::pos_recall(pos.iter().map(|r| &r.source)),
        pairs: results,
        manifest,
    })
}

/// Conditions × rates, for `sam3lab figures --kind heatmap`.
pub fn heatmap(r: &PatchResult) -> HeatmapTable {
    let cols = ["silenced FP", "silenced FP (disagreeing)", "neg_correct before", "neg_correct after", "pos recall before", "pos recall after"];
    HeatmapTable {
        title: "Causal patch: target false positives silenced, side by side per patched point set".into(),
        source: format!(
            "sam3lab probe patch; source {} → target {}; kept = score ≥ {}",
            r.manifest.checkpoints.first().map(|c| c.path.as_str()).unwrap_or(""),
            r.manifest.checkpoints.get(1).map(|c| c.path.as_str()).unwrap_or(""),
            r.threshold
        ),
        rows: r.conditions.iter().map(|c| format!("{} ({})", c.name, c.points.join(", "))).collect(),
        cols: cols.map(String::from).to_vec(),
        values: r
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.silenced_fraction,
                    c.silenced_fraction_disagreeing,
                    c.neg_correct_before,
                    c.neg_correct_after,
                    c.pos_recall_before,
                    c.pos_recall_after,
                ]
            })
            .collect(),
        scale: Some(sam3lab_results::Scale { kind: sam3lab_results::ScaleKind::Sequential, min: 0.0, max: 1.0 }),
        decimals: Some(2),
        row_title: Some("patched".into()),
        col_title: None,
    }
}

/// Write `patch.json`, `patch_summary.csv`, `patch_pairs.csv`, `patch_heatmap.json`, `manifest.json`.
pub fn write(out: &Path, r: &PatchResult) -> Result<()> {
    write_json(&out.join("patch.json"), r)?;
    let mut s = Csv::new(&[
        "condition", "points", "pairs", "neg_pairs", "target_false_positives", "silenced", "silenced_fraction", "disagreeing",
        "silenced_disagreeing", "silenced_fraction_disagreeing", "new_false_positives", "neg_correct_before", "neg_correct_after",
        "pos_recall_before", "pos_recall_after",
    ]);
    for c in &r.conditions {
        s.row([
            c.name.clone(),
            c.points.join(" "),
            c.pairs.to_string(),
            c.neg_pairs.to_string(),
            c.target_false_positives.to_string(),
            c.silenced.to_string(),
            num(c.silenced_fraction),
            c.disagreeing.to_string(),
            c.silenced_disagreeing.to_string(),
            num(c.silenced_fraction_disagreeing),
            c.new_false_positives.to_string(),
            num(c.neg_correct_before),
            num(c.neg_correct_after),
            num(c.pos_recall_before),
            num(c.pos_recall_after),
        ]);
    }
    s.write(&out.join("patch_summary.csv"))?;
    let mut p = Csv::new(&[
        "pair", "label", "image", "prompt", "condition", "source_presence", "source_kept", "before_presence", "before_kept",
        "after_presence", "after_kept", "after_max_score",
    ]);
    for pr in &r.pairs {
        for (c, a) in r.conditions.iter().zip(&pr.after) {
            p.row([
                pr.pair.to_string(),
                pr.label.as_str().into(),
                pr.image.clone(),
                pr.prompt.clone(),
                c.name.clone(),
                num(Some(pr.source.presence_sigma)),
                pr.source.kept.to_string(),
                num(Some(pr.before.presence_sigma)),
                pr.before.kept.to_string(),
                num(Some(a.presence_sigma)),
                a.kept.to_string(),
                format!("{}", a.max_score),
            ]);
        }
    }
    p.write(&out.join("patch_pairs.csv"))?;
    write_json(&out.join("patch_heatmap.json"), &heatmap(r))?;
    write_json(&out.join("manifest.json"), &r.manifest)
}
