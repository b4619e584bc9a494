//! Retraining one named sub-module with everything else frozen (post §5, "presence_only").
//!
//! Loss: BCE on the presence logit of the last decoder layer (`presence_logit`, the gate the
//! post-processing multiplies into every score), y = 1 for positive pairs, 0 for negatives, positives
//! weighted by `pos_weight` (torch `BCEWithLogitsLoss(pos_weight=…)`), averaged over a balanced
//! minibatch (half positives, half negatives, drawn without replacement per class and reshuffled per
//! pass, seeded). Adam (β = 0.9, 0.999, ε = 1e-8, torch's defaults; not the engine's AdamW, whose
//! update is computed differently). Parameters are selected the engine's way: globs over their
//! ORIGINAL checkpoint names ([`crate::params::Globs`]), and [`crate::params::set_trainable`] gives
//! every parameter its name-derived id and sets `require_grad` on exactly the selected ones; every
//! other tensor is frozen. The trained values come back in torch layout ([`crate::params::values`]).
//! Pairs, the manifest and the hooked forward are the runner's (`sam3lab_runner::{inputs, manifest,
//! model}`).
//!
//! Two modes:
//! - full: the whole forward runs each step (on burn's autodiff device). Image and text features are
//!   computed once per distinct image / prompt for the whole run (they do not depend on the trained
//!   tensors unless a glob reaches into the backbone, in which case they are recomputed with
//!   gradients). At most `max_cached_images` images' features stay in memory; the others are spilled
//!   to a temporary directory next to the output after their one trunk + neck run and read back
//!   from it (bit-identical), so memory stays bounded and the trunk never runs twice per image;
//! - cached: `decoder.layers.{last}.q0` is captured once per pair and only
//!   `presence_token_out_norm` + `presence_token_head` are trained on it (the presence token, and
//!   everything upstream, frozen) — seconds on a CPU.
//!
//! The trajectory (the post's Table 5.1) is evaluated on every pair at step 0, every `log_every`
//! steps and at the end: mean presence σ and mean (unweighted) BCE on positives and on negatives.
//! The output is a complete safetensors file under the input's key spelling (the same prefix
//! convention), dtypes and metadata: every tensor but the trained ones is copied byte for byte.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::LayerNorm;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::{Int, TensorData};
use sam3lab_util::progress::Progress;
use sam3lab_hooks::{HookSpec, Hooks};
use sam3lab_model::heads::{ImageFeatures, TextFeatures};
use sam3lab_model::nn::Mlp;
use sam3lab_model::predict::{Predictor, tokenize};
use sam3lab_model::{Sam3, preprocess};
use sam3lab_util::rng::Rng;
use sam3lab_checkpoint::{Checkpoint, SafetensorsWriter, TensorHeader};
use serde::Serialize;

use sam3lab_runner::inputs::{Label, Pair, Pairs, pair_image_records};
use sam3lab_runner::manifest::{Csv, FileRecord, Manifest, num, pairs_record, write_json};
use sam3lab_runner::model::{self, CkptSpec};
use sam3lab_runner::sweep;

use crate::error::{Result, TrainError};
use crate::params::{self, Globs};

/// The parameter prefix of the cached mode's trainable modules.
pub const HEAD_PREFIX: &str = "transformer.decoder.";

pub struct RetrainRequest {
    pub ckpt: PathBuf,
    pub config: Option<PathBuf>,
    /// Globs over original parameter names; may be empty in cached mode (= the whole head).
    pub train: Vec<String>,
    pub pairs: Pairs,
    pub steps: usize,
    pub lr: f64,
    pub pos_weight: f64,
    /// Pairs per step (half positives, half negatives; at least 2).
    pub batch: usize,
    pub cached: bool,
    pub seed: u64,
    /// Trajectory rows every this many steps (plus step 0 and the last).
    pub log_every: usize,
    /// Full mode: at most this many images' features are kept in memory; the others are spilled to
    /// a temporary directory next to `out` after their one trunk + neck run and read back from it.
    pub max_cached_images: usize,
    pub out: PathBuf,
    /// Also write the checkpoint after each of these steps (< `steps`), as `step_{N:06}.safetensors`
    /// beside `out` (a trajectory of checkpoints, e.g. the post's Table 5.1).
    pub save_at: Vec<usize>,
    pub device: Device,
}

/// The optimisation settings shared by both modes.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    pub steps: usize,
    /// Steps after which the trained values are kept (see [`RetrainRequest::save_at`]).
    pub save_at: Vec<usize>,
    pub lr: f64,
    pub pos_weight: f64,
    pub batch: usize,
    pub seed: u64,
    pub log_every: usize,
    pub device: Device,
}

impl RetrainRequest {
    pub fn settings(&self) -> TrainSettings {
        TrainSettings {
            steps: self.steps,
            save_at: self.save_at.clone(),
            lr: self.lr,
            pos_weight: self.pos_weight,
            batch: self.batch,
            seed: self.seed,
            log_every: self.log_every,
            device: self.device.clone(),
        }
    }
}

/// One row of the Table 5.1 trajectory (means over every pair of the class).
#[derive(Clone, Debug, Serialize)]
pub struct TrajectoryRow {
    pub step: usize,
    pub pos_sigma: f64,
    pub neg_sigma: f64,
    pub pos_bce: f64,
    pub neg_bce: f64,
    /// The training objective on the whole set: (pos_weight·pos_bce + neg_bce) / 2.
    pub balanced_loss: f64,
}

/// One trained tensor.
#[derive(Clone, Debug, Serialize)]
pub struct TrainedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub numel: usize,
    /// ‖after − before‖₂ (after rounding to the file's dtype).
    pub delta_norm: f64,
    /// ‖after − before‖ / ‖before‖ (`None` when ‖before‖ = 0).
    pub rel_change: Option<f64>,
}

/// What `sam3lab retrain` writes next to the checkpoint (`FILE.manifest.json`).
#[derive(Debug, Serialize)]
pub struct RetrainReport {
    pub manifest: Manifest,
    pub output: FileRecord,
    pub mode: String,
    pub trained: Vec<TrainedTensor>,
    pub trained_params: usize,
    /// Tensors a glob matched that the cached mode keeps frozen (the presence token).
    pub frozen_by_cached_mode: Vec<String>,
    pub trajectory: Vec<TrajectoryRow>,
}

/// Wall-clock seconds (printed, never written into outputs: same seed → same bytes).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    /// Feature / q0 capture.
    pub prepare_s: f64,
    pub train_s: f64,
    pub write_s: f64,
    /// Full mode: trunk + neck runs (with frozen image encoders, one per distinct image).
    pub image_encodes: usize,
    /// Full mode: images whose features went to the spill directory (over `max_cached_images`).
    pub spilled_images: usize,
    /// Full mode: bytes written to the spill directory (deleted when the run ends).
    pub spilled_bytes: u64,
}

/// `FILE.safetensors` → `FILE.manifest.json`.
pub fn manifest_path(out: &Path) -> PathBuf {
    out.with_extension("manifest.json")
}

/// `FILE.safetensors` → `FILE.trajectory.csv`.
pub fn trajectory_path(out: &Path) -> PathBuf {
    out.with_extension("trajectory.csv")
}

/// Draws `k` indices per call from a class, without replacement within a pass over it.
struct ClassSampler {
    items: Vec<usize>,
    pos: usize,
}

impl ClassSampler {
    fn new(items: Vec<usize>, rng: &mut Rng) -> Self {
        let mut s = Self { items, pos: 0 };
        rng.shuffle(&mut s.items);
        s
    }
    fn take(&mut self, k: usize, rng: &mut Rng) -> Vec<usize> {
        (0..k)
            .map(|_| {
                if self.pos == self.items.len() {
                    rng.shuffle(&mut self.items);
                    self.pos = 0;
                }
                self.pos += 1;
                self.items[self.pos - 1]
            })
            .collect()
    }
}

/// softplus(x) = log(1 + eˣ), computed stably.
fn softplus<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    relu(x.clone()) + x.abs().neg().exp().log1p()
}

/// Mean over the batch of pos_weight·y·softplus(−l) + (1 − y)·softplus(l).
fn bce_loss(logits: Tensor<1>, y: &[f32], pos_weight: f64) -> Tensor<1> {
    let dev = logits.device();
    let n = y.len();
    let yt = Tensor::<1>::from_data(TensorData::new(y.to_vec(), [n]), &dev);
    let pos = softplus(logits.clone().neg()) * yt.clone().mul_scalar(pos_weight);
    let neg = softplus(logits) * yt.neg().add_scalar(1.0);
    (pos + neg).mean()
}

fn bce_host(l: f64, y: Label) -> f64 {
    let sp = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
    match y {
        Label::Pos => sp(-l),
        Label::Neg => sp(l),
    }
}

/// The trajectory row of a set of logits (one per pair).
fn trajectory_row(step: usize, logits: &[f64], labels: &[Label], pos_weight: f64) -> TrajectoryRow {
    let mut s = [(0.0, 0.0, 0usize); 2]; // (σ sum, bce sum, n) for pos, neg
    for (&l, &y) in logits.iter().zip(labels) {
        let k = usize::from(y == Label::Neg);
        s[k].0 += model::sigmoid(l);
        s[k].1 += bce_host(l, y);
        s[k].2 += 1;
    }
    let m = |i: usize, j: usize| if s[i].2 == 0 { f64::NAN } else { (if j == 0 { s[i].0 } else { s[i].1 }) / s[i].2 as f64 };
    TrajectoryRow {
        step,
        pos_sigma: m(0, 0),
        neg_sigma: m(1, 0),
        pos_bce: m(0, 1),
        neg_bce: m(1, 1),
        balanced_loss: (pos_weight * m(0, 1) + m(1, 1)) / 2.0,
    }
}

/// The presence head alone: `presence_token_head(presence_token_out_norm(q0))`.
#[derive(Module, Debug)]
pub struct PresenceHead {
    pub presence_token_out_norm: LayerNorm,
    pub presence_token_head: Mlp,
}

impl PresenceHead {
    /// A randomly initialised head of width `d` (SAM3: d = 256, 132 609 parameters with the token).
    pub fn new(d: usize, device: &Device) -> Self {
        Self { presence_token_out_norm: sam3lab_model::nn::layer_norm(d, device), presence_token_head: Mlp::new(d, d, 1, 3, device) }
    }

    pub fn of(model: &Sam3) -> Self {
        let d = &model.transformer.decoder;
        Self { presence_token_out_norm: d.presence_token_out_norm.clone(), presence_token_head: d.presence_token_head.clone() }
    }

    /// `(N, d)` → `(N,)` presence logits.
    pub fn forward(&self, q0: Tensor<2>) -> Tensor<1> {
        let [n, _] = q0.dims();
        self.presence_token_head.forward(self.presence_token_out_norm.forward(q0)).reshape([n])
    }
}

fn check(req: &RetrainRequest) -> Result<()> {
    if req.steps == 0 {
        return Err(TrainError::Usage("--steps must be ≥ 1".into()));
    }
    if !(req.lr.is_finite() && req.lr > 0.0) {
        return Err(TrainError::Usage(format!("--lr {} must be a positive number", req.lr)));
    }
    if !(req.pos_weight.is_finite() && req.pos_weight > 0.0) {
        return Err(TrainError::Usage(format!("--pos-weight {} must be a positive number", req.pos_weight)));
    }
    if req.batch < 2 {
        return Err(TrainError::Usage(format!("--batch {} must be ≥ 2 (half positives, half negatives)", req.batch)));
    }
    if req.log_every == 0 {
        return Err(TrainError::Usage("--log-every must be ≥ 1".into()));
    }
    if let Some(&s) = req.save_at.iter().find(|&&s| s == 0 || s >= req.steps) {
        return Err(TrainError::Usage(format!("--save-at {s} must be in 1..{} (the last step is --out itself)", req.steps)));
    }
    if req.save_at.iter().any(|&s| intermediate_path(&req.out, s) == req.out) {
        return Err(TrainError::Usage(format!("--out {} is named like a --save-at checkpoint (step_N.safetensors); give it another name", req.out.display())));
    }
    for l in [Label::Pos, Label::Neg] {
        if req.pairs.count(l) == 0 {
            return Err(TrainError::input(&req.pairs.path, format!("no `{}` pair: a balanced BCE needs both labels", l.as_str())));
        }
    }
    let same = |a: &Path| match (a.canonicalize(), req.out.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    };
    if same(&req.ckpt) || same(&req.ckpt.join("weights.safetensors")) {
        return Err(TrainError::Usage(format!("--out {} is the input checkpoint; write to a new file", req.out.display())));
    }
    Ok(())
}

/// Run the retrain; writes the checkpoint, `FILE.manifest.json` and `FILE.trajectory.csv`.
pub fn run(req: &RetrainRequest, progress: &dyn Progress) -> Result<(RetrainReport, Timing)> {
    check(req)?;
    let t0 = Instant::now();
    let predictor = Predictor::load(&req.ckpt, req.config.as_deref(), &req.device)?;
    let loaded = model::load_from_predictor(CkptSpec::new("input", &req.ckpt), predictor);
    let labels: Vec<Label> = req.pairs.pairs.iter().map(|p| p.label).collect();
    let all_names: Vec<String> = params::list(&loaded.predictor.model, "").into_iter().map(|p| p.name).collect();
    let globs = if req.train.is_empty() {
        if !req.cached {
            return Err(TrainError::Usage("--train GLOB is required (e.g. 'transformer.decoder.presence_token*')".into()));
        }
        Globs::parse(&[format!("{HEAD_PREFIX}presence_token_out_norm.*"), format!("{HEAD_PREFIX}presence_token_head.*")])?
    } else {
        Globs::parse(&req.train)?
    };
    globs.check_each_matches(&all_names)?;
    let matched: BTreeSet<String> = all_names.iter().filter(|n| globs.matches(n)).cloned().collect();

    let mut timing = Timing::default();
    let (trained, frozen_by_cached, (values, saved), trajectory) = if req.cached {
        let head = PresenceHead::of(&loaded.predictor.model);
        let head_names: BTreeSet<String> = params::list(&head, HEAD_PREFIX).into_iter().map(|p| p.name).collect();
        let trained: BTreeSet<String> = matched.intersection(&head_names).cloned().collect();
        let frozen: Vec<String> = matched.difference(&head_names).cloned().collect();
        if trained.is_empty() {
            return Err(TrainError::Usage(format!(
                "--cached trains only {HEAD_PREFIX}presence_token_out_norm.* and {HEAD_PREFIX}presence_token_head.*; --train matched none of them ({})",
                matched.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let q0 = capture_q0(&loaded, &req.pairs, progress)?;
        timing.prepare_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let (values, traj) = train_cached(&req.settings(), head, &trained, &q0, &labels, progress)?;
        timing.train_s = t1.elapsed().as_secs_f64();
        (trained, frozen, values, traj)
    } else {
        let t1 = Instant::now();
        let (values, traj, prep) = train_full(req, &loaded, &matched, &labels, progress, &mut timing)?;
        timing.prepare_s = t0.elapsed().as_secs_f64() - t1.elapsed().as_secs_f64() + prep;
        timing.train_s = t1.elapsed().as_secs_f64() - prep;
        (matched, vec![], values, traj)
    };

    let t2 = Instant::now();
    let input_weights = PathBuf::from(&loaded.record.weights);
    let (out_sha, trained_info) = write_checkpoint(&input_weights, &req.out, &trained, &values)?;
    for (step, v) in &saved {
        write_checkpoint(&input_weights, &intermediate_path(&req.out, *step), &trained, v)?;
    }
    let mut manifest = Manifest::new("sam3lab retrain", req.seed);
    model::describe(&mut manifest, &[&loaded], req.config.as_deref())?;
    manifest.points = if req.cached { vec![q0_point(&loaded)] } else { vec!["presence_logit".into()] };
    let all: Vec<&Pair> = req.pairs.pairs.iter().collect();
    manifest.images = pair_image_records(&all)?;
    manifest.pairs = Some(pairs_record(&req.pairs, all.len()));
    manifest.option("train", &globs.text);
    manifest.option("steps", req.steps);
    manifest.option("lr", req.lr);
    manifest.option("pos_weight", req.pos_weight);
    manifest.option("batch", req.batch);
    manifest.option("log_every", req.log_every);
    manifest.option("optimizer", "adam(beta1=0.9, beta2=0.999, eps=1e-8)");
    manifest.notes = vec![
        "loss = mean over a balanced minibatch of pos_weight·y·softplus(−l) + (1−y)·softplus(l), l = presence logit of the last decoder layer".into(),
        "trajectory: every pair at each logged step; σ = sigmoid(l); BCE unweighted; balanced_loss = (pos_weight·pos_bce + neg_bce)/2".into(),
        "the output checkpoint copies every tensor except `trained` byte for byte (same keys, dtypes, metadata)".into(),
    ];
    let trained_params = trained_info.iter().map(|t| t.numel).sum();
    let report = RetrainReport {
        manifest,
        output: FileRecord { path: req.out.display().to_string(), sha256: out_sha },
        mode: if req.cached { "cached" } else { "full" }.into(),
        trained: trained_info,
        trained_params,
        frozen_by_cached_mode: frozen_by_cached,
        trajectory,
    };
    write_json(&manifest_path(&req.out), &report)?;
    let mut csv = Csv::new(&["step", "pos_sigma", "neg_sigma", "pos_bce", "neg_bce", "balanced_loss"]);
    for r in &report.trajectory {
        csv.row([
            r.step.to_string(),
            num(Some(r.pos_sigma)),
            num(Some(r.neg_sigma)),
            num(Some(r.pos_bce)),
            num(Some(r.neg_bce)),
            num(Some(r.balanced_loss)),
        ]);
    }
    csv.write(&trajectory_path(&req.out))?;
    timing.write_s = t2.elapsed().as_secs_f64();
    Ok((report, timing))
}

/// Where `--save-at N` writes: `step_{N:06}.safetensors` in `out`'s directory.
pub fn intermediate_path(out: &Path, step: usize) -> PathBuf {
    out.with_file_name(format!("step_{step:06}.safetensors"))
}

fn q0_point(m: &model::Loaded) -> String {
    format!("decoder.layers.{}.q0", m.predictor.model.config.decoder.num_layers - 1)
}

/// `decoder.layers.{last}.q0` for every pair, `(N, d)` row-major, in pair order.
pub fn capture_q0(m: &model::Loaded, pairs: &Pairs, progress: &dyn Progress) -> Result<Vec<Vec<f32>>> {
    let point = q0_point(m);
    let all: Vec<&Pair> = pairs.pairs.iter().collect();
    let mut rows: Vec<Option<Vec<f32>>> = vec![None; all.len()];
    progress.set_len(all.len() as u64);
    progress.set_message("capturing q0");
    sweep::for_each_pair(&[m], &all, std::slice::from_ref(&point), progress, |runs| {
        let (_, cache) = runs.run(0, HookSpec::new().capture(&point)?)?;
        rows[runs.pair.index] = Some(cache.get(&point)?.to_vec());
        Ok(())
    })?;
    Ok(rows.into_iter().map(|r| r.expect("every pair captured")).collect())
}

type Values = Vec<(String, Vec<usize>, Vec<f32>)>;
/// The trained values kept after each `save_at` step.
type Saved = Vec<(usize, Values)>;

/// torch's Adam defaults (burn's default ε is 1e-5).
fn adam() -> AdamConfig {
    AdamConfig::new().with_beta_1(0.9).with_beta_2(0.999).with_epsilon(1e-8)
}

fn log_step(step: usize, req: &TrainSettings) -> bool {
    step == 0 || step % req.log_every == 0 || step == req.steps
}

/// Train the presence head on captured q0 rows (`labels[i]` for row i); returns the trained values of
/// the `trained` tensors (torch layout, original names under [`HEAD_PREFIX`]) and the trajectory.
pub fn train_cached(
    req: &TrainSettings,
    head: PresenceHead,
    trained: &BTreeSet<String>,
    q0: &[Vec<f32>],
    labels: &[Label],
    progress: &dyn Progress,
) -> Result<((Values, Saved), Vec<TrajectoryRow>)> {
    let n = q0.len();
    let d = q0[0].len();
    let plain = req.device.clone();
    let flat: Vec<f32> = q0.iter().flatten().copied().collect();
    let q_plain = Tensor::<2>::from_data(TensorData::new(flat, [n, d]), &plain);
    let q_ad = q_plain.clone().autodiff();
    let mut head = params::set_trainable(head, HEAD_PREFIX, &|name| trained.contains(name)).train();
    let mut optim = adam().init();
    let mut rng = Rng::new(req.seed);
    let idx = |l: Label| (0..n).filter(|&i| labels[i] == l).collect::<Vec<_>>();
    let (mut sp, mut sn) = (ClassSampler::new(idx(Label::Pos), &mut rng), ClassSampler::new(idx(Label::Neg), &mut rng));
    let (bp, bn) = (req.batch / 2, req.batch - req.batch / 2);
    let eval = |h: &PresenceHead, step: usize| -> TrajectoryRow {
        let logits: Vec<f64> = model::host(h.valid().forward(q_plain.clone())).into_iter().map(f64::from).collect();
        trajectory_row(step, &logits, labels, req.pos_weight)
    };
    let mut traj = vec![eval(&head, 0)];
    let mut saved = vec![];
    progress.set_len(req.steps as u64);
    progress.set_position(0);
    progress.set_message("training (cached q0)");
    for step in 1..=req.steps {
        let mut batch = sp.take(bp, &mut rng);
        batch.extend(sn.take(bn, &mut rng));
        let y: Vec<f32> = batch.iter().map(|&i| if labels[i] == Label::Pos { 1.0 } else { 0.0 }).collect();
        let ids = Tensor::<1, Int>::from_data(
            TensorData::new(batch.iter().map(|&i| i as i64).collect::<Vec<_>>(), [batch.len()]),
            &q_ad.device(),
        );
        let logits = head.forward(q_ad.clone().select(0, ids));
        let loss = bce_loss(logits, &y, req.pos_weight);
        let lv = loss.clone().inner().into_scalar::<f32>();
        if !lv.is_finite() {
            return Err(TrainError::Usage(format!("the loss became {lv} at step {step}; lower --lr")));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &head);
        head = optim.step(req.lr, head, grads);
        if log_step(step, req) {
            traj.push(eval(&head, step));
        }
        if req.save_at.contains(&step) && step < req.steps {
            saved.push((step, params::values(&head.valid(), HEAD_PREFIX, trained)));
        }
        progress.inc(1);
    }
    Ok(((params::values(&head.valid(), HEAD_PREFIX, trained), saved), traj))
}

/// Per-pair inputs of the full mode: which image and which prompt.
struct FullInputs {
    images: Vec<PathBuf>,
    image_of: Vec<usize>,
    prompts: Vec<String>,
    prompt_of: Vec<usize>,
}

fn full_inputs(pairs: &Pairs) -> FullInputs {
    let mut f = FullInputs { images: vec![], image_of: vec![], prompts: vec![], prompt_of: vec![] };
    for p in &pairs.pairs {
        let i = f.images.iter().position(|x| *x == p.image).unwrap_or_else(|| {
            f.images.push(p.image.clone());
            f.images.len() - 1
        });
        let j = f.prompts.iter().position(|x| *x == p.prompt).unwrap_or_else(|| {
            f.prompts.push(p.prompt.clone());
            f.prompts.len() - 1
        });
        f.image_of.push(i);
        f.prompt_of.push(j);
    }
    f
}

fn cat_features(feats: &[ImageFeatures]) -> ImageFeatures {
    let levels = feats[0].fpn.len();
    ImageFeatures {
        fpn: (0..levels).map(|l| Tensor::cat(feats.iter().map(|f| f.fpn[l].clone()).collect(), 0)).collect(),
        pos: feats[0].pos.clone(),
    }
}

fn cat_text(texts: &[TextFeatures]) -> TextFeatures {
    TextFeatures {
        feats: Tensor::cat(texts.iter().map(|t| t.feats.clone()).collect(), 0),
        padding_mask: Tensor::cat(texts.iter().map(|t| t.padding_mask.clone()).collect(), 0),
    }
}

fn ad_image(f: ImageFeatures) -> ImageFeatures {
    ImageFeatures { fpn: f.fpn.into_iter().map(|t| t.autodiff()).collect(), pos: f.pos.into_iter().map(|t| t.autodiff()).collect() }
}

fn ad_text(t: TextFeatures) -> TextFeatures {
    TextFeatures { feats: t.feats.autodiff(), padding_mask: t.padding_mask.autodiff() }
}

/// Features for the full mode: fixed (plain) ones are computed once and kept, trainable ones
/// recomputed per use. Image features stay in memory for at most `max_images` images; the others
/// are written to a spill directory after their one trunk + neck run (raw little-endian f32 per FPN
/// level, so reading them back gives the same bits) and read from it on every later use.
struct FeatureSource<'a> {
    inputs: &'a FullInputs,
    image_trainable: bool,
    text_trainable: bool,
    /// Plain features of frozen encoders (bounded for images).
    image_cache: HashMap<usize, ImageFeatures>,
    max_images: usize,
    text_cache: HashMap<usize, TextFeatures>,
    ctx: usize,
    image_size: usize,
    /// Where spilled features go (created on the first spill, deleted on drop).
    spill_parent: PathBuf,
    spill: Option<tempfile::TempDir>,
    /// Spilled images: the FPN level shapes and the position maps (the same for every image).
    spilled: HashMap<usize, (Vec<[usize; 4]>, Vec<Tensor<4>>)>,
    encodes: usize,
    spilled_bytes: u64,
}

impl FeatureSource<'_> {
    fn pixels(&self, i: usize, device: &Device) -> Result<Tensor<4>> {
        let rgb = model::load_rgb(&self.inputs.images[i])?;
        Ok(preprocess::preprocess(&rgb, self.image_size, device))
    }

    fn ids(&self, j: usize, device: &Device) -> Result<Tensor<2, Int>> {
        let (ids, _) = tokenize(sam3lab_model::tokenizer::Tokenizer::clip(), &self.inputs.prompts[j], self.ctx)?;
        Ok(Tensor::<2, Int>::from_data(TensorData::new(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [1, self.ctx]), device))
    }

    /// Image features of image `i` for `model` (plain model + plain device, or the autodiff model).
    fn image(&mut self, i: usize, plain: &Sam3, ad: Option<&Sam3>, device: &Device) -> Result<ImageFeatures> {
        if let (true, Some(m)) = (self.image_trainable, ad) {
            return Ok(m.encode_image(self.pixels(i, device)?.autodiff(), &mut Hooks::none()));
        }
        let f = match self.image_cache.get(&i) {
            Some(f) => f.clone(),
            None if self.spilled.contains_key(&i) => self.read_spilled(i, device)?,
            None => {
                let f = plain.encode_image(self.pixels(i, device)?, &mut Hooks::none());
                self.encodes += 1;
                if self.image_cache.len() < self.max_images {
                    self.image_cache.insert(i, f.clone());
                } else {
                    self.write_spilled(i, &f)?;
                }
                f
            }
        };
        Ok(if ad.is_some() { ad_image(f) } else { f })
    }

    fn spill_file(&self, i: usize) -> Option<PathBuf> {
        self.spill.as_ref().map(|d| d.path().join(format!("{i}.f32")))
    }

    fn write_spilled(&mut self, i: usize, f: &ImageFeatures) -> Result<()> {
        if self.spill.is_none() {
            let dir = tempfile::Builder::new().prefix(".sam3lab-retrain-spill-").tempdir_in(&self.spill_parent).map_err(|e| {
                TrainError::Usage(format!(
                    "cannot create a spill directory for image features in {} ({e}); raise --max-cached-images to keep them in memory",
                    self.spill_parent.display()
                ))
            })?;
            self.spill = Some(dir);
        }
        let path = self.spill_file(i).expect("created above");
        let mut bytes = Vec::new();
        let mut shapes = Vec::with_capacity(f.fpn.len());
        for level in &f.fpn {
            shapes.push(level.dims());
            let data = level.clone().into_data().convert::<f32>();
            bytes.extend(data.as_slice::<f32>().map_err(|e| TrainError::Usage(format!("internal: spilling features: {e:?}")))?.iter().flat_map(|v| v.to_le_bytes()));
        }
        std::fs::write(&path, &bytes).map_err(|e| {
            TrainError::Usage(format!("writing spilled image features {} ({e}); raise --max-cached-images or free disk space", path.display()))
        })?;
        self.spilled_bytes += bytes.len() as u64;
        self.spilled.insert(i, (shapes, f.pos.clone()));
        Ok(())
    }

    fn read_spilled(&self, i: usize, device: &Device) -> Result<ImageFeatures> {
        let path = self.spill_file(i).expect("spilled images have a file");
        let bytes = std::fs::read(&path).map_err(|e| TrainError::Usage(format!("reading spilled image features {} ({e})", path.display())))?;
        let (shapes, pos) = &self.spilled[&i];
        let mut at = 0;
        let mut fpn = Vec::with_capacity(shapes.len());
        for shape in shapes {
            let n: usize = shape.iter().product();
            let Some(chunk) = bytes.get(at..at + 4 * n) else {
                return Err(TrainError::Usage(format!("spilled image features {} are cut short", path.display())));
            };
            let vals: Vec<f32> = chunk.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            fpn.push(Tensor::<4>::from_data(TensorData::new(vals, *shape), device));
            at += 4 * n;
        }
        Ok(ImageFeatures { fpn, pos: pos.clone() })
    }

    fn text(&mut self, j: usize, plain: &Sam3, ad: Option<&Sam3>, device: &Device) -> Result<TextFeatures> {
        if let (true, Some(m)) = (self.text_trainable, ad) {
            return Ok(m.encode_text(self.ids(j, device)?.autodiff(), &mut Hooks::none()));
        }
        let t = match self.text_cache.get(&j) {
            Some(t) => t.clone(),
            None => {
                let t = plain.encode_text(self.ids(j, device)?, &mut Hooks::none());
                self.text_cache.insert(j, t.clone());
                t
            }
        };
        Ok(if ad.is_some() { ad_text(t) } else { t })
    }

    /// Presence logits `(B,)` of some pairs under `plain` (evaluation) or `ad` (training).
    fn logits(&mut self, pairs: &[usize], plain: &Sam3, ad: Option<&Sam3>, device: &Device) -> Result<Tensor<1>> {
        let mut imgs = Vec::with_capacity(pairs.len());
        let mut txts = Vec::with_capacity(pairs.len());
        for &p in pairs {
            imgs.push(self.image(self.inputs.image_of[p], plain, ad, device)?);
            txts.push(self.text(self.inputs.prompt_of[p], plain, ad, device)?);
        }
        let m = ad.unwrap_or(plain);
        let out = m.ground(&cat_features(&imgs), &cat_text(&txts), &[], &mut Hooks::none())?;
        Ok(out.presence_logit.reshape([pairs.len()]))
    }
}

fn train_full(
    req: &RetrainRequest,
    loaded: &model::Loaded,
    trained: &BTreeSet<String>,
    labels: &[Label],
    progress: &dyn Progress,
    timing: &mut Timing,
) -> Result<((Values, Saved), Vec<TrajectoryRow>, f64)> {
    let t0 = Instant::now();
    let plain_model = &loaded.predictor.model;
    let device = req.device.clone();
    let inputs = full_inputs(&req.pairs);
    let mut src = FeatureSource {
        inputs: &inputs,
        image_trainable: trained.iter().any(|n| n.starts_with("backbone.vision_backbone.")),
        text_trainable: trained.iter().any(|n| n.starts_with("backbone.language_backbone.")),
        image_cache: HashMap::new(),
        max_images: req.max_cached_images,
        text_cache: HashMap::new(),
        ctx: plain_model.config.text.context_length,
        image_size: plain_model.config.image_size,
        spill_parent: req.out.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        spill: None,
        spilled: HashMap::new(),
        encodes: 0,
        spilled_bytes: 0,
    };
    let n = labels.len();
    let eval_batch = req.batch.max(1);
    let eval = |m: &Sam3, step: usize, src: &mut FeatureSource| -> Result<TrajectoryRow> {
        let mut logits = Vec::with_capacity(n);
        let all: Vec<usize> = (0..n).collect();
        for chunk in all.chunks(eval_batch) {
            logits.extend(model::host(src.logits(chunk, m, None, &device)?).into_iter().map(f64::from));
        }
        Ok(trajectory_row(step, &logits, labels, req.pos_weight))
    };
    progress.set_message("encoding + step 0");
    let mut traj = vec![eval(plain_model, 0, &mut src)?];
    let mut saved = vec![];
    let prep = t0.elapsed().as_secs_f64();
    let mut ad = params::set_trainable(plain_model.clone(), "", &|name| trained.contains(name)).train();
    let mut optim = adam().init();
    let mut rng = Rng::new(req.seed);
    let idx = |l: Label| (0..n).filter(|&i| labels[i] == l).collect::<Vec<_>>();
    let (mut sp, mut sn) = (ClassSampler::new(idx(Label::Pos), &mut rng), ClassSampler::new(idx(Label::Neg), &mut rng));
    let (bp, bn) = (req.batch / 2, req.batch - req.batch / 2);
    progress.set_len(req.steps as u64);
    progress.set_position(0);
    progress.set_message("training");
    for step in 1..=req.steps {
        let mut batch = sp.take(bp, &mut rng);
        batch.extend(sn.take(bn, &mut rng));
        let y: Vec<f32> = batch.iter().map(|&i| if labels[i] == Label::Pos { 1.0 } else { 0.0 }).collect();
        let logits = src.logits(&batch, plain_model, Some(&ad), &device)?;
        let loss = bce_loss(logits, &y, req.pos_weight);
        let lv = loss.clone().inner().into_scalar::<f32>();
        if !lv.is_finite() {
            return Err(TrainError::Usage(format!("the loss became {lv} at step {step}; lower --lr")));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &ad);
        ad = optim.step(req.lr, ad, grads);
        if log_step(step, &req.settings()) {
            let v = ad.valid();
            traj.push(eval(&v, step, &mut src)?);
        }
        if req.save_at.contains(&step) && step < req.steps {
            saved.push((step, params::values(&ad.valid(), "", trained)));
        }
        progress.inc(1);
    }
    timing.image_encodes = src.encodes;
    timing.spilled_images = src.spilled.len();
    timing.spilled_bytes = src.spilled_bytes;
    Ok(((params::values(&ad.valid(), "", trained), saved), traj, prep))
}

/// Copy `input` to `out` tensor by tensor, replacing the `trained` ones with `values` (encoded in the
/// file's dtype). Returns the output's sha256 and per-tensor change.
pub fn write_checkpoint(
    input: &Path,
    out: &Path,
    trained: &BTreeSet<String>,
    values: &[(String, Vec<usize>, Vec<f32>)],
) -> Result<(String, Vec<TrainedTensor>)> {
    let ck = Checkpoint::open(input)?;
    let entries: Vec<_> = ck.all_entries().to_vec();
    let by_name: HashMap<&str, &(String, Vec<usize>, Vec<f32>)> = values.iter().map(|v| (v.0.as_str(), v)).collect();
    for name in trained {
        let e = ck.require(name)?;
        let Some((_, shape, _)) = by_name.get(name.as_str()) else {
            return Err(TrainError::Usage(format!("internal: no trained value for `{name}`")));
        };
        if *shape != e.shape {
            return Err(TrainError::Usage(format!(
                "trained `{name}` has shape {shape:?} but {} stores {:?}",
                input.display(),
                e.shape
            )));
        }
    }
    let headers: Vec<TensorHeader> = entries.iter().map(|e| e.header()).collect();
    let mut w = SafetensorsWriter::create(out, &headers, ck.metadata().cloned())?;
    let mut info = Vec::new();
    for e in &entries {
        let replace = e.skipped.is_none() && trained.contains(&e.name);
        if replace {
            let (_, shape, vals) = by_name[e.name.as_str()];
            let v64: Vec<f64> = vals.iter().map(|&x| x as f64).collect();
            let mut bytes = Vec::with_capacity(e.byte_len());
            sam3lab_checkpoint::dtype::encode_f64(&v64, e.dtype, &mut bytes);
            let before = ck.read_f64(&e.name)?;
            let mut after = vec![0f64; v64.len()];
            sam3lab_checkpoint::dtype::decode_f64(&bytes, e.dtype, &mut after);
            let d2: f64 = after.iter().zip(&before).map(|(a, b)| (a - b).powi(2)).sum();
            let b2: f64 = before.iter().map(|b| b * b).sum();
            info.push(TrainedTensor {
                name: e.name.clone(),
                shape: shape.clone(),
                numel: vals.len(),
                delta_norm: d2.sqrt(),
                rel_change: (b2 > 0.0).then(|| (d2 / b2).sqrt()),
            });
            w.write(&e.stored_name, &bytes)?;
        } else {
            let bytes = ck.raw_bytes(e)?;
            w.write(&e.stored_name, &bytes)?;
        }
    }
    let sha = w.finish()?;
    Ok((sha, info))
}
