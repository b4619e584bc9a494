//! sam3lab-steering: training-free interventions on SAM3's forward — which direction to push, and
//! what that does to the decision. One job, in three parts:
//!
//! - **steering directions and the α sweep** (this module, `sam3lab probe steer`, the post's §9 null
//!   intervention): a direction read from a safetensors file, or the mean difference b − a of one
//!   hook point between two checkpoints over a pair file (the post's `replay_neg.q0 − replay.q0`);
//!   then one [`sam3lab_probes::sweep`] over α — α = 0 is the sweep's baseline (the plain forward),
//!   every other α adds α·direction at the point (`Action::Add`) — read per α as neg_correct
//!   (fraction of negative pairs with no kept detection), positive recall (fraction of positive
//!   pairs with at least one) and the mean presence σ / kept count per label. "Kept" is the
//!   evaluator's rule, score ≥ 0.5, and both rates come from `sam3lab_eval`
//!   ([`sam3lab_eval::neg_correct`]), so they mean what `eval score`'s `neg_correct` means. The
//!   running of checkpoints over pairs, the sweep, inputs and manifests come from `sam3lab-probes`;
//!   this crate adds only the directions and the α-specific tables.
//! - **the same interventions as text** ([`intervention`]): `--hook` specs (zero / scale / add a
//!   direction such as the `direction.safetensors` `probe steer` writes / patch from a source
//!   checkpoint) parsed, checked against the model and applied during a forward;
//! - **scoring them with the evaluator** ([`predict`]): the model-to-evaluator adapter that runs a
//!   checkpoint, with or without `--hook` interventions, over a SA-Co/Gold ground truth and writes
//!   COCO results ([`predict::predict_to_file`], behind `sam3lab eval predict`).
//!
//! `probe steer --shard K/N`: [`run_shard`] sweeps one shard's pairs (a mean-difference direction
//! is still averaged over every pair) and [`merge`] puts N shards back together; [`run`] and
//! [`merge`] make their result through one `assemble` step, so merged shards give [`run`]'s bytes.

pub mod intervention;
pub mod predict;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use sam3lab_util::progress::Progress;
use sam3lab_results::{HeatmapTable, Scale, ScaleKind};
use sam3lab_hooks::DynTensor;
use sam3lab_probes::inputs::{Label, LabelFilter, Pairs, pair_image_records, shard_pairs};
use sam3lab_probes::manifest::{CheckpointRecord, Csv, FileRecord, Manifest, file_record, num, pairs_record, write_atomic, write_json};
use sam3lab_probes::model::{self, CkptSpec, Loaded, Outcome};
use sam3lab_probes::shard::{self, Measured, PairRow, Plan, Shard, ShardFile};
use sam3lab_probes::sweep::{self, Intervention, Sweep};
use sam3lab_probes::{ProbeError, Result};
use serde::{Deserialize, Serialize};

/// Where the steering direction comes from.
#[derive(Clone, Debug)]
pub enum DirectionSource {
    /// A safetensors file; `key` picks the tensor when it holds several.
    File { path: PathBuf, key: Option<String> },
    /// mean over pairs of (B's activation − A's activation) at the point.
    MeanDiff { a: CkptSpec, b: CkptSpec },
}

impl DirectionSource {
    /// `FILE.safetensors` or `mean-diff:CKPT_A,CKPT_B`.
    pub fn parse(arg: &str, key: Option<String>) -> Result<Self> {
        if let Some(rest) = arg.strip_prefix("mean-diff:") {
            let Some((a, b)) = rest.split_once(',') else {
                return Err(ProbeError::Usage(format!("--direction `{arg}`: expected mean-diff:CKPT_A,CKPT_B")));
            };
            if a.is_empty() || b.is_empty() {
                return Err(ProbeError::Usage(format!("--direction `{arg}`: both checkpoints are needed")));
            }
            return Ok(Self::MeanDiff { a: CkptSpec::new("a", a), b: CkptSpec::new("b", b) });
        }
        Ok(Self::File { path: PathBuf::from(arg), key })
    }
}

/// A direction ready to add.
#[derive(Clone, Debug)]
pub struct Direction {
    /// `[d]` (broadcast over the point's other axes) or the point's batch-1 shape.
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl Direction {
    pub fn norm(&self) -> f64 {
        self.values.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()
    }
}

/// Provenance of a direction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DirectionInfo {
    /// `file` or `mean-diff`.
    pub kind: String,
    pub file: Option<FileRecord>,
    pub key: Option<String>,
    pub a: Option<CheckpointRecord>,
    pub b: Option<CheckpointRecord>,
    /// Pairs averaged (mean-diff) and their label filter.
    pub pairs: Option<usize>,
    pub label: Option<String>,
    pub shape: Vec<usize>,
    /// ‖direction‖₂ as read / computed (before `unit` scaling).
    pub norm: f64,
    /// Scaled to unit norm before the sweep.
    pub unit: bool,
}

pub struct SteerRequest {
    pub ckpt: CkptSpec,
    pub config: Option<PathBuf>,
    pub point: String,
    pub direction: DirectionSource,
    /// Pairs the mean difference averages over (default: negatives, as the post).
    pub direction_label: LabelFilter,
    /// Scale the direction to unit norm.
    pub unit: bool,
    /// α values; 0 is added when missing (the baseline).
    pub alphas: Vec<f64>,
    pub pairs: Pairs,
    pub seed: u64,
    pub device: Device,
}

/// One α over the pairs.
#[derive(Clone, Debug, Serialize)]
pub struct AlphaSummary {
    pub alpha: f64,
    /// Negative pairs with no kept detection / negative pairs.
    pub neg_correct: Option<f64>,
    /// Positive pairs with ≥ 1 kept detection / positive pairs.
    pub pos_recall: Option<f64>,
    pub neg_pairs: usize,
    pub pos_pairs: usize,
    pub mean_presence_neg: Option<f64>,
    pub mean_presence_pos: Option<f64>,
    pub mean_kept_neg: Option<f64>,
    pub mean_kept_pos: Option<f64>,
}

/// One pair, one outcome per α (in `alphas` order).
#[derive(Clone, Debug, Serialize)]
pub struct PairSteer {
    pub pair: usize,
    pub image: String,
    pub prompt: String,
    pub label: Label,
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, Serialize)]
pub struct SteerResult {
    pub point: String,
    /// The keep threshold of every count and rate ([`sam3lab_eval::SCORE_THRESHOLD`], score ≥ it).
    pub threshold: f64,
    pub direction: DirectionInfo,
    pub alphas: Vec<AlphaSummary>,
    pub pairs: Vec<PairSteer>,
    pub manifest: Manifest,
    /// The direction actually added (after `unit` scaling).
    #[serde(skip)]
    pub added: Direction,
}

/// A direction file's reader error (it names the file and tensor) as the runner's error.
fn weights_error(e: sam3lab_checkpoint::CheckpointError) -> ProbeError {
    ProbeError::Usage(e.to_string())
}

/// Read a direction tensor from a safetensors file (any float dtype).
pub fn read_direction(path: &Path, key: Option<&str>) -> Result<(Direction, String)> {
    let ck = sam3lab_checkpoint::Checkpoint::open(path).map_err(weights_error)?;
    let names: Vec<String> = ck.tensors().map(|e| e.name.clone()).collect();
    let name = match key {
        Some(k) => k.to_string(),
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(ProbeError::input(
                path,
                None,
                format!(
                    "holds {} tensors ({}{}); name one (`FILE#KEY` in `--hook add:`, `--direction-key` in `probe steer`)",
                    names.len(),
                    names.iter().take(8).cloned().collect::<Vec<_>>().join(", "),
                    if names.len() > 8 { format!(", … {} more", names.len() - 8) } else { String::new() }
                ),
            ));
        }
    };
    let e = ck.require(&name).map_err(weights_error)?;
    let shape = e.shape.clone();
    Ok((Direction { shape, values: ck.read_f32(&name).map_err(weights_error)? }, name))
}

/// mean over `pairs` of (B's activation − A's activation) at `point` (batch 1).
fn mean_diff(
    a: &Loaded,
    b: &Loaded,
    point: &str,
    pairs: &[&sam3lab_probes::inputs::Pair],
    progress: &dyn Progress,
) -> Result<Direction> {
    let points = [point.to_string()];
    let mut sum: Vec<f64> = Vec::new();
    let mut shape = Vec::new();
    sweep::for_each_pair(&[a, b], pairs, &points, progress, |runs| {
        let ((_, ca), (_, cb)) = (runs.capture(0, &points)?, runs.capture(1, &points)?);
        let (xa, xb) = (ca.get(point)?, cb.get(point)?);
        if sum.is_empty() {
            sum = vec![0.0; xa.numel()];
            shape = xa.shape().to_vec();
        }
        for ((s, va), vb) in sum.iter_mut().zip(xa.to_vec()).zip(xb.to_vec()) {
            *s += vb as f64 - va as f64;
        }
        Ok(())
    })?;
    let n = pairs.len() as f64;
    Ok(Direction { shape, values: sum.into_iter().map(|s| (s / n) as f32).collect() })
}

/// Check a direction fits the point: `[d]` (last axis) or the point's full shape.
fn check_shape(dir: &Direction, point: &str, point_shape: &[usize]) -> Result<()> {
    let d = *point_shape.last().unwrap_or(&0);
    if dir.shape == point_shape || dir.shape == [d] {
        Ok(())
    } else {
        Err(ProbeError::Usage(format!(
            "the direction has shape {:?}; `{point}` needs [{d}] or {point_shape:?}",
            dir.shape
        )))
    }
}

/// α values with 0 first (added when missing), duplicates removed, order otherwise kept.
pub fn alphas_with_baseline(alphas: &[f64]) -> Result<Vec<f64>> {
    if let Some(a) = alphas.iter().find(|a| !a.is_finite()) {
        return Err(ProbeError::Usage(format!("α = {a} is not a finite number")));
    }
    let mut out = vec![0.0];
    for &a in alphas {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// The `probe` of a steer shard file.
pub const PROBE: &str = "steer";

/// One pair's measurement: its outcome under every α (in `alphas` order), exactly.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub pair: usize,
    #[serde(with = "sam3lab_probes::shard::outcome::vec")]
    pub outcomes: Vec<Outcome>,
}

impl PairRow for Row {
    fn pair(&self) -> usize {
        self.pair
    }
}

/// What the tables need besides the rows and the manifest: the point, the α values and the
/// direction added (exactly).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub point: String,
    #[serde(with = "sam3lab_probes::shard::bits_vec")]
    pub alphas: Vec<f64>,
    pub direction: DirectionInfo,
    pub added_shape: Vec<usize>,
    #[serde(with = "sam3lab_probes::shard::hex32")]
    pub added: Vec<f32>,
}

/// A steer shard (`probe steer --shard K/N`'s `steer_shard.json`).
pub type SteerShard = ShardFile<Context, Row>;

/// Run the sweep. Writes nothing; see [`write`].
pub fn run(req: &SteerRequest, progress: &dyn Progress) -> Result<SteerResult> {
    assemble(measure(req, None, progress)?)
}

/// Run shard `shard`: the α sweep over the pairs of the images g ≡ K (mod N). A mean-difference
/// direction is still averaged over all its pairs (every shard computes the same one); [`merge`] of
/// all N shards gives what [`run`] gives.
pub fn run_shard(req: &SteerRequest, shard: Shard, progress: &dyn Progress) -> Result<SteerShard> {
    Ok(measure(req, Some(shard), progress)?.into_shard(PROBE, shard))
}

/// Put the shards (files or their directories, any order) of one run back together: what [`run`]
/// returns.
pub fn merge(shards: &[PathBuf]) -> Result<SteerResult> {
    assemble(shard::merge_files(PROBE, shards)?)
}

fn measure(req: &SteerRequest, shard: Option<Shard>, progress: &dyn Progress) -> Result<Measured<Context, Row>> {
    let alphas = alphas_with_baseline(&req.alphas)?;
    let cfg = req.config.as_deref();
    let all: Vec<&sam3lab_probes::inputs::Pair> = req.pairs.pairs.iter().collect();
    let mine = match shard {
        Some(s) => shard_pairs(&all, s),
        None => all.clone(),
    };
    // The direction first (its models are dropped before the swept one is loaded).
    let (direction, mut info) = match &req.direction {
        DirectionSource::File { path, key } => {
            let (d, name) = read_direction(path, key.as_deref())?;
            let info = DirectionInfo {
                kind: "file".into(),
                file: Some(file_record(path)?),
                key: Some(name),
                a: None,
                b: None,
                pairs: None,
                label: None,
                shape: d.shape.clone(),
                norm: d.norm(),
                unit: req.unit,
            };
            (d, info)
        }
        DirectionSource::MeanDiff { a, b } => {
            let sel = req.pairs.select(req.direction_label)?;
            let ma = model::load(a, cfg, &req.device)?;
            let mb = model::load(b, cfg, &req.device)?;
            model::check_same_config(&[&ma, &mb])?;
            ma.registry.point(&req.point)?;
            progress.set_len((sel.len() + mine.len()) as u64);
            progress.set_message("mean difference");
            let d = mean_diff(&ma, &mb, &req.point, &sel, progress)?;
            let info = DirectionInfo {
                kind: "mean-diff".into(),
                file: None,
                key: None,
                a: Some(ma.record.clone()),
                b: Some(mb.record.clone()),
                pairs: Some(sel.len()),
                label: Some(req.direction_label.as_str().into()),
                shape: d.shape.clone(),
                norm: d.norm(),
                unit: req.unit,
            };
            (d, info)
        }
    };
    let m = model::load(&req.ckpt, cfg, &req.device)?;
    let point_info = m.registry.get(&req.point).ok_or_else(|| {
        ProbeError::Hook(sam3lab_hooks::HookError::Unknown { name: req.point.clone(), nearest: m.registry.nearest(&req.point, 3) })
    })?;
    check_shape(&direction, &req.point, &point_info.shape)?;
    let mut added = direction.clone();
    if req.unit {
        let n = direction.norm();
        if n == 0.0 {
            return Err(ProbeError::Usage("--unit: the direction has zero length".into()));
        }
        added.values = direction.values.iter().map(|&v| (v as f64 / n) as f32).collect();
    }
    info.shape = added.shape.clone();
    let value = DynTensor::from_vec(added.values.clone(), added.shape.clone(), &req.device);

    if matches!(req.direction, DirectionSource::File { .. }) {
        progress.set_len(mine.len() as u64);
    }
    progress.set_message("α sweep");
    // α = 0 is the sweep's baseline (the plain forward); every other α one intervention.
    let s = Sweep {
        target: &m,
        sources: Vec::new(),
        capture: vec![req.point.clone()],
        interventions: alphas[1..].iter().map(|&a| Intervention::add(format!("α={a}"), &req.point, value.clone(), a as f32)).collect(),
    };
    let table = sweep::run(&s, &mine, progress, |out| Ok(model::outcome(out)))?;
    let rows: Vec<Row> =
        table.rows.into_iter().map(|r| Row { pair: r.pair.index, outcomes: std::iter::once(r.baseline).chain(r.patched).collect() }).collect();

    let mut manifest = Manifest::new("sam3lab probe steer", req.seed);
    model::describe(&mut manifest, &[&m], cfg)?;
    manifest.checkpoints[0].label = "ckpt".into();
    if let (Some(a), Some(b)) = (&info.a, &info.b) {
        manifest.checkpoints.push(CheckpointRecord { label: "direction_a".into(), ..a.clone() });
        manifest.checkpoints.push(CheckpointRecord { label: "direction_b".into(), ..b.clone() });
    }
    manifest.points = vec![req.point.clone()];
    manifest.images = pair_image_records(&all)?;
    manifest.pairs = Some(pairs_record(&req.pairs, all.len()));
    manifest.option("alphas", &alphas);
    manifest.option("threshold", sam3lab_eval::SCORE_THRESHOLD);
    manifest.option("direction", &info);
    manifest.notes = vec![
        "each forward adds α·direction at the point (a [d] direction broadcasts over the point's other axes); α = 0 is the plain forward".into(),
        model::keep_rule(),
    ];
    let context = Context { point: req.point.clone(), alphas, direction: info, added_shape: added.shape, added: added.values };
    Ok(Measured::new(manifest, context, Plan::of(&all), rows))
}

/// The tables from the measurements: the one path by which [`run`] and [`merge`] make their result.
fn assemble(m: Measured<Context, Row>) -> Result<SteerResult> {
    let Measured { manifest, context: cx, plan, mut rows } = m;
    rows.sort_by_key(|r| r.pair);
    let mut pairs: Vec<PairSteer> = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(p) = plan.pair(r.pair) else {
            return Err(ProbeError::Usage(format!("steer: a measurement of pair {}, which the run did not select", r.pair)));
        };
        if r.outcomes.len() != cx.alphas.len() {
            return Err(ProbeError::Usage(format!("steer: pair {} has {} outcomes for {} α values", r.pair, r.outcomes.len(), cx.alphas.len())));
        }
        pairs.push(PairSteer { pair: r.pair, image: p.image.clone(), prompt: p.prompt.clone(), label: p.label, outcomes: r.outcomes });
    }
    let alphas = &cx.alphas;
    let summaries = alphas
        .iter()
        .enumerate()
        .map(|(k, &alpha)| {
            let neg: Vec<&Outcome> = pairs.iter().filter(|p| p.label == Label::Neg).map(|p| &p.outcomes[k]).collect();
            let pos: Vec<&Outcome> = pairs.iter().filter(|p| p.label == Label::Pos).map(|p| &p.outcomes[k]).collect();
            AlphaSummary {
                alpha,
                neg_correct: model::neg_correct(neg.iter().copied()),
                pos_recall: model::pos_recall(pos.iter().copied()),
                neg_pairs: neg.len(),
                pos_pairs: pos.len(),
                mean_presence_neg: mean(neg.iter().map(|o| o.presence_sigma)),
                mean_presence_pos: mean(pos.iter().map(|o| o.presence_sigma)),
                mean_kept_neg: mean(neg.iter().map(|o| o.kept as f64)),
                mean_kept_pos: mean(pos.iter().map(|o| o.kept as f64)),
            }
        })
        .collect();

    Ok(SteerResult {
        point: cx.point,
        threshold: sam3lab_eval::SCORE_THRESHOLD,
        direction: cx.direction,
        alphas: summaries,
        pairs,
        manifest,
        added: Direction { shape: cx.added_shape, values: cx.added },
    })
}

/// Metrics × α, for `sam3lab figures --kind heatmap`.
pub fn heatmap(r: &SteerResult) -> HeatmapTable {
    let rows = ["neg_correct", "pos recall", "mean presence σ (neg)", "mean presence σ (pos)"];
    HeatmapTable {
        title: format!("Steering at {}: refusal and recall per α", r.point),
        source: format!(
            "sam3lab probe steer; ckpt {}; direction {} (‖d‖ = {:.4}); kept = score ≥ {}",
            r.manifest.checkpoints.first().map(|c| c.path.as_str()).unwrap_or(""),
            r.direction.kind,
            r.direction.norm,
            r.threshold
        ),
        rows: rows.map(String::from).to_vec(),
        cols: r.alphas.iter().map(|a| format!("α={}", a.alpha)).collect(),
        values: vec![
            r.alphas.iter().map(|a| a.neg_correct).collect(),
            r.alphas.iter().map(|a| a.pos_recall).collect(),
            r.alphas.iter().map(|a| a.mean_presence_neg).collect(),
            r.alphas.iter().map(|a| a.mean_presence_pos).collect(),
        ],
        scale: Some(Scale { kind: ScaleKind::Sequential, min: 0.0, max: 1.0 }),
        decimals: Some(3),
        row_title: None,
        col_title: Some("α".into()),
    }
}

/// Write `steer.json`, `steer.csv`, `steer_pairs.csv`, `steer_heatmap.json`, `direction.safetensors`
/// (the direction added, key = the point, reusable with `--direction`) and `manifest.json`.
pub fn write(out: &Path, r: &SteerResult) -> Result<()> {
    write_json(&out.join("steer.json"), r)?;
    let mut csv = Csv::new(&[
        "alpha", "neg_correct", "pos_recall", "neg_pairs", "pos_pairs", "mean_presence_neg", "mean_presence_pos", "mean_kept_neg", "mean_kept_pos",
    ]);
    for a in &r.alphas {
        csv.row([
            format!("{}", a.alpha),
            num(a.neg_correct),
            num(a.pos_recall),
            a.neg_pairs.to_string(),
            a.pos_pairs.to_string(),
            num(a.mean_presence_neg),
            num(a.mean_presence_pos),
            num(a.mean_kept_neg),
            num(a.mean_kept_pos),
        ]);
    }
    csv.write(&out.join("steer.csv"))?;
    let mut pc = Csv::new(&["pair", "label", "image", "prompt", "alpha", "presence_sigma", "kept", "max_score"]);
    for p in &r.pairs {
        for (a, o) in r.alphas.iter().zip(&p.outcomes) {
            pc.row([
                p.pair.to_string(),
                p.label.as_str().into(),
                p.image.clone(),
                p.prompt.clone(),
                format!("{}", a.alpha),
                num(Some(o.presence_sigma)),
                o.kept.to_string(),
                format!("{}", o.max_score),
            ]);
        }
    }
    pc.write(&out.join("steer_pairs.csv"))?;
    write_json(&out.join("steer_heatmap.json"), &heatmap(r))?;
    let bytes: Vec<u8> = r.added.values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, r.added.shape.clone(), &bytes)
        .map_err(|e| ProbeError::Usage(format!("internal: direction tensor: {e}")))?;
    let meta = HashMap::from([(
        "sam3lab_direction".to_string(),
        serde_json::to_string(&r.direction).expect("direction info serialises"),
    )]);
    let st = safetensors::serialize(vec![(r.point.clone(), view)], Some(meta))
        .map_err(|e| ProbeError::Usage(format!("internal: direction file: {e}")))?;
    write_atomic(&out.join("direction.safetensors"), &st)?;
    write_json(&out.join("manifest.json"), &r.manifest)
}

#[cfg(test)]
mod direction_file_tests {
    use super::*;

    /// A file of many tensors without a key is refused with a short list and how to name one.
    #[test]
    fn a_file_of_many_tensors_needs_a_key_and_the_error_stays_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("many.safetensors");
        let bytes: Vec<u8> = (0..4).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let names: Vec<String> = (0..10).map(|i| format!("t{i:02}")).collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> =
            names.iter().map(|n| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4], &bytes).unwrap())).collect();
        safetensors::serialize_to_file(views, None, &path).unwrap();
        let e = read_direction(&path, None).unwrap_err().to_string();
        assert!(e.contains("many.safetensors") && e.contains("10 tensors") && e.contains("… 2 more") && e.contains("FILE#KEY"), "{e}");
        assert!(!e.contains("t09"), "the list is cut after 8 names: {e}");
        let (d, name) = read_direction(&path, Some("t03")).unwrap();
        assert_eq!((name.as_str(), d.values), ("t03", vec![0.0, 1.0, 2.0, 3.0]));
    }
}
