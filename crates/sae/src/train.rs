//! Training: Adam on minibatches of (optionally normalised) rows, decoder directions kept at unit
//! norm after every optimizer step, dead latents handled as in practice — resampled (ReLU + L1,
//! Anthropic's "Towards Monosemanticity") or given the AuxK loss (TopK, OpenAI's "Scaling and
//! evaluating sparse autoencoders") — and everything seeded.

use burn::module::{Module, Param};
use burn::optim::{Adam, AdamConfig, AdamState, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::relu;
use sam3lab_util::rng::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SaeError};
use crate::metrics::for_each_chunk;
use crate::model::{Activation, Sae, SaeParams, SaeWeights, activate, decode_with, host, pre_acts, unit_rows};

/// How sparsity is obtained.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sparsity {
    /// ReLU + coeff · mean_rows Σ_j f_j (decoder rows are unit-norm, so no norm weighting is needed).
    L1 { coeff: f64 },
    /// Keep the K largest pre-activations per row; loss is reconstruction (+ AuxK).
    Topk { k: usize },
}

impl Sparsity {
    pub fn activation(&self) -> Activation {
        match *self {
            Sparsity::L1 { .. } => Activation::Relu,
            Sparsity::Topk { k } => Activation::Topk { k },
        }
    }
}

/// The default dictionary size is this many times the input width d (1,024 features at d = 256,
/// the post's SAE on `decoder.layers.5.q0`).
pub const DEFAULT_WIDTH_FACTOR: usize = 4;

/// The default number of features m for inputs of width d: 4 × d.
pub fn default_width(d: usize) -> usize {
    DEFAULT_WIDTH_FACTOR * d
}

/// The largest default "dead" window in rows (OpenAI: a latent is dead after 10 M tokens without firing).
pub const DEAD_AFTER_ROWS_CAP: usize = 10_000_000;
/// OpenAI's AuxK coefficient α.
pub const DEFAULT_AUX_COEFF: f64 = 1.0 / 32.0;
/// Anthropic's scale of a resampled encoder column, relative to the mean live encoder norm.
pub const DEFAULT_RESAMPLE_ENCODER_SCALE: f64 = 0.2;
/// Rows whose reconstruction loss is measured to choose resampling targets (all rows if fewer).
pub const DEFAULT_RESAMPLE_ROWS: usize = 16_384;

fn default_resample_rows() -> usize {
    DEFAULT_RESAMPLE_ROWS
}
fn default_resample_encoder_scale() -> f64 {
    DEFAULT_RESAMPLE_ENCODER_SCALE
}
fn default_aux_coeff() -> f64 {
    DEFAULT_AUX_COEFF
}
/// What an `sae.json` written before these settings existed means: no resampling, no AuxK.
fn off() -> Option<usize> {
    Some(0)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Number of features m (default [`default_width`]: 4 × d).
    pub width: usize,
    pub sparsity: Sparsity,
    pub steps: usize,
    pub lr: f64,
    /// Rows per step (capped at the number of rows).
    pub batch: usize,
    pub seed: u64,
    /// Scale rows by s = sqrt(d / mean‖x‖²) for training (so mean‖x‖² = d); s is folded back into
    /// the saved biases, so the saved SAE reads raw activations.
    pub normalize: bool,
    /// L1 coefficient ramps linearly from 0 over this many steps (fewer dead features).
    pub l1_warmup_steps: usize,
    /// Remove the gradient component parallel to each decoder direction before the step
    /// (dictionary_learning's ConstrainedAdam). Renormalisation after the step happens regardless.
    pub project_decoder_grad: bool,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_eps: f64,
    /// Steps per log window.
    pub log_every: usize,
    /// A latent is *dead* when it has not fired (f > 0) on any of the last N training rows (counted
    /// in whole minibatches). `None` = one pass over the training rows, at most 10 M (OpenAI's
    /// threshold). Used by resampling, AuxK and the `dead` column of the log.
    #[serde(default)]
    pub dead_after_rows: Option<usize>,
    /// ReLU + L1 only: every this many steps, during the first half of training, re-initialise the
    /// dead latents (see [`train`]). `None` = steps / 8 (four resamplings, at 1/8 … 4/8 of training,
    /// like Anthropic's 25k/50k/75k/100k); `Some(0)` = never. Ignored (recorded as 0) for TopK.
    #[serde(default = "off")]
    pub resample_every: Option<usize>,
    /// Rows (drawn from the training rows with the seed; all of them if fewer) whose reconstruction
    /// loss chooses the resampling targets.
    #[serde(default = "default_resample_rows")]
    pub resample_rows: usize,
    /// A resampled latent's encoder column has this × the mean encoder-column norm of the live
    /// latents (Anthropic: 0.2).
    #[serde(default = "default_resample_encoder_scale")]
    pub resample_encoder_scale: f64,
    /// TopK only: the AuxK loss's k_aux. `None` = d/2 rounded up to a power of two (OpenAI), at most
    /// m; `Some(0)` = no AuxK. Ignored (recorded as 0) for ReLU + L1.
    #[serde(default = "off")]
    pub aux_k: Option<usize>,
    /// The AuxK coefficient α (OpenAI: 1/32).
    #[serde(default = "default_aux_coeff")]
    pub aux_coeff: f64,
    /// Where to train (default: the CPU). Not recorded in `sae.json`: the device changes no result
    /// beyond float rounding.
    #[serde(skip)]
    pub device: Option<Device>,
}

impl TrainConfig {
    pub fn new(width: usize, sparsity: Sparsity) -> Self {
        TrainConfig {
            width,
            sparsity,
            steps: 2000,
            lr: 1e-3,
            batch: 1024,
            seed: 0,
            normalize: true,
            l1_warmup_steps: 0,
            project_decoder_grad: true,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_eps: 1e-8,
            log_every: 20,
            dead_after_rows: None,
            resample_every: None,
            resample_rows: DEFAULT_RESAMPLE_ROWS,
            resample_encoder_scale: DEFAULT_RESAMPLE_ENCODER_SCALE,
            aux_k: None,
            aux_coeff: DEFAULT_AUX_COEFF,
            device: None,
        }
    }

    /// The defaults for inputs of width `d`: m = [`default_width`]`(d)` = 4 × d.
    pub fn for_input(d: usize, sparsity: Sparsity) -> Self {
        Self::new(default_width(d), sparsity)
    }

    /// Every automatic setting made concrete for `n` training rows of width `d` (what `train` uses
    /// and `sae.json` records).
    pub fn resolved(&self, d: usize, n: usize) -> TrainConfig {
        let mut c = self.clone();
        c.dead_after_rows = Some(self.dead_after_rows.unwrap_or(n.min(DEAD_AFTER_ROWS_CAP)));
        c.resample_every = Some(match self.sparsity {
            Sparsity::L1 { .. } => self.resample_every.unwrap_or(self.steps / 8),
            Sparsity::Topk { .. } => 0,
        });
        c.aux_k = Some(match self.sparsity {
            Sparsity::L1 { .. } => 0,
            Sparsity::Topk { .. } => self.aux_k.unwrap_or_else(|| (d / 2).max(1).next_power_of_two().min(self.width)),
        });
        c
    }

    pub fn validate(&self, d: usize, rows: usize) -> Result<()> {
        let bad = |s: String| Err(SaeError::Config(s));
        if self.width == 0 {
            return bad("width must be ≥ 1".into());
        }
        if d == 0 || rows == 0 {
            return bad(format!("the activation set is empty ({rows} rows of d = {d})"));
        }
        if self.steps == 0 || self.batch == 0 || self.log_every == 0 {
            return bad("steps, batch and log_every must be ≥ 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("learning rate {} must be a positive number", self.lr));
        }
        if self.dead_after_rows == Some(0) {
            return bad("dead_after_rows must be ≥ 1".into());
        }
        if self.resample_rows == 0 || !(self.resample_encoder_scale.is_finite() && self.resample_encoder_scale > 0.0) {
            return bad(format!(
                "resampling needs resample_rows ≥ 1 (got {}) and a positive encoder scale (got {})",
                self.resample_rows, self.resample_encoder_scale
            ));
        }
        if !(self.aux_coeff.is_finite() && self.aux_coeff >= 0.0) {
            return bad(format!("AuxK coefficient {} must be ≥ 0", self.aux_coeff));
        }
        if let (Sparsity::Topk { .. }, Some(ka)) = (self.sparsity, self.aux_k) {
            if ka > self.width {
                return bad(format!("AuxK k_aux = {ka} must be in 0..={} (0 = no AuxK)", self.width));
            }
        }
        match self.sparsity {
            Sparsity::L1 { coeff } if !(coeff.is_finite() && coeff >= 0.0) => bad(format!("L1 coefficient {coeff} must be ≥ 0")),
            Sparsity::Topk { k } if k == 0 || k > self.width => bad(format!("top-k k = {k} must be in 1..={}", self.width)),
            _ => Ok(()),
        }
    }
}

/// Means over one log window of steps, in training (normalised) units. One entry per window is the
/// per-checkpoint training record in `sae.json`'s `log`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// Last step of the window (1-based).
    pub step: usize,
    /// recon + λ·l1 (λ after warmup), + the weighted AuxK term for TopK.
    pub loss: f64,
    /// mean over rows of ‖x − x̂‖² (summed over dims).
    pub recon: f64,
    /// mean over rows of Σ_j f_j.
    pub l1: f64,
    /// mean active features per row.
    pub l0: f64,
    /// Fraction of features that never fired during the window.
    pub dead_in_window: f64,
    /// Fraction of features dead at the window's last step (after any resampling): not fired on any
    /// of the last `dead_after_rows` training rows.
    #[serde(default)]
    pub dead: f64,
    /// Mean AuxK loss over the window, normalised as OpenAI's: mean‖e − ê‖² / mean‖e − ē‖² (0 when
    /// AuxK is off or nothing is dead).
    #[serde(default)]
    pub aux: f64,
    /// Latents resampled during the window.
    #[serde(default)]
    pub resampled: usize,
}

pub struct Trained {
    /// Weights for RAW activations (normalisation folded in).
    pub weights: SaeWeights,
    pub activation: Activation,
    /// The scale s the rows were multiplied by for training (1 when not normalising).
    pub act_scale: f64,
    /// Rows per step actually used.
    pub effective_batch: usize,
    pub log: Vec<StepLog>,
    /// The configuration with every automatic setting made concrete ([`TrainConfig::resolved`]).
    pub config: TrainConfig,
}

/// Seeded initial weights: unit-norm Gaussian decoder directions, W_enc = W_decᵀ, b_enc = 0,
/// b_dec = the mean row (of the normalised data).
fn init_weights(xs: &[f32], d: usize, m: usize, rng: &mut Rng) -> SaeWeights {
    let mut w_dec = vec![0f32; m * d];
    for row in w_dec.chunks_exact_mut(d) {
        let g: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        for (o, v) in row.iter_mut().zip(g) {
            *o = (v / norm) as f32;
        }
    }
    let mut w_enc = vec![0f32; d * m];
    for j in 0..m {
        for i in 0..d {
            w_enc[i * m + j] = w_dec[j * d + i];
        }
    }
    let n = xs.len() / d;
    let mut mean = vec![0f64; d];
    for r in xs.chunks_exact(d) {
        for (a, &v) in mean.iter_mut().zip(r) {
            *a += v as f64;
        }
    }
    let b_dec = mean.iter().map(|a| (a / n as f64) as f32).collect();
    SaeWeights { d_in: d, width: m, w_enc, b_enc: vec![0.0; m], w_dec, b_dec }
}

/// Adam's state for each parameter (burn's [`Adam`], stepped per tensor so that the moments of
/// resampled latents can be reset).
#[derive(Default)]
struct AdamStates {
    w_enc: Option<AdamState<2>>,
    b_enc: Option<AdamState<1>>,
    w_dec: Option<AdamState<2>>,
    b_dec: Option<AdamState<1>>,
}

fn adam_step<const D: usize>(adam: &Adam, lr: f64, p: Param<Tensor<D>>, g: Tensor<D>, st: &mut Option<AdamState<D>>) -> Param<Tensor<D>> {
    p.map(|t| {
        let (t, s) = adam.step(lr, t.inner(), g, st.take());
        *st = s;
        Tensor::from_inner(t).require_grad()
    })
}

/// Multiply a parameter's Adam moments by `keep` (broadcast; 0 resets an entry).
fn scale_moments<const D: usize>(st: &mut Option<AdamState<D>>, keep: Tensor<D>) {
    if let Some(s) = st.as_mut() {
        let mm = &mut s.momentum;
        mm.moment_1 = mm.moment_1.clone() * keep.clone();
        mm.moment_2 = mm.moment_2.clone() * keep.clone();
        if let Some(v) = mm.max_moment_2.take() {
            mm.max_moment_2 = Some(v * keep);
        }
    }
}

/// Train an SAE on `rows` (n × d, row-major) from the seeded initialisation. `progress(step, loss)`
/// is called after every step.
///
/// Dead latents (not fired on the last `dead_after_rows` rows):
/// - **ReLU + L1, resampling** (Anthropic, "Towards Monosemanticity"): at steps `resample_every`,
///   2·`resample_every`, … ≤ steps/2, the reconstruction loss ‖x − x̂‖² of `resample_rows` training
///   rows is measured; each dead latent j gets a row drawn with probability ∝ loss² (without
///   replacement) and, with e its residual x − x̂: decoder direction W_dec[j] = e/‖e‖, encoder
///   column W_enc[:, j] = e/‖e‖ · `resample_encoder_scale` · (mean encoder-column norm of the live
///   latents), b_enc[j] = 0, and Adam's first and second moments of those entries reset to 0 (the
///   step count is shared by the whole tensor and is kept). Its dead counter restarts.
/// - **TopK, AuxK** (OpenAI, "Scaling and evaluating sparse autoencoders"): with e = x − x̂
///   (detached) and ê = W_decᵀ ReLU(top-k_aux of the dead latents' pre-activations) (no bias), the
///   loss gets + α · V_x · mean‖e − ê‖² / V_e, where V_e = mean‖e − ē‖² over the batch and
///   V_x = mean‖x − x̄‖² over the training rows (constants): OpenAI's normalised AuxK MSE, weighted
///   against our reconstruction term as OpenAI weights it against their normalised MSE.
pub fn train(rows: &[f32], d: usize, cfg: &TrainConfig, progress: &mut dyn FnMut(usize, f64)) -> Result<Trained> {
    train_impl(rows, d, cfg, None, progress)
}

/// [`train`] starting from `init` instead of the seeded initialisation: weights for RAW activations
/// as saved (the biases are scaled into training units, decoder directions renormalised). The seed
/// still fixes the minibatch order and the resampling draws.
pub fn train_from(init: &SaeWeights, rows: &[f32], d: usize, cfg: &TrainConfig, progress: &mut dyn FnMut(usize, f64)) -> Result<Trained> {
    init.check()?;
    if init.d_in != d || init.width != cfg.width {
        return Err(SaeError::Config(format!(
            "initial weights are d = {}, m = {}; the rows have d = {d} and the config m = {}",
            init.d_in, init.width, cfg.width
        )));
    }
    train_impl(rows, d, cfg, Some(init), progress)
}

fn train_impl(rows: &[f32], d: usize, cfg: &TrainConfig, init: Option<&SaeWeights>, progress: &mut dyn FnMut(usize, f64)) -> Result<Trained> {
    let n = if d == 0 { 0 } else { rows.len() / d };
    cfg.validate(d, n)?;
    let cfg = &cfg.resolved(d, n);
    cfg.validate(d, n)?;
    let m = cfg.width;
    let activation = cfg.sparsity.activation();
    let dead_after = cfg.dead_after_rows.unwrap_or(n) as u64;
    let resample_every = cfg.resample_every.unwrap_or(0);
    let aux_k = cfg.aux_k.unwrap_or(0);

    let mean_sq = rows.chunks_exact(d).map(|r| r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>()).sum::<f64>() / n as f64;
    let scale = if cfg.normalize && mean_sq > 0.0 { (d as f64 / mean_sq).sqrt() } else { 1.0 };
    let xs: Vec<f32> = rows.iter().map(|&v| (v as f64 * scale) as f32).collect();
    // V_x = mean‖x − x̄‖² over the training rows (training units): OpenAI's MSE normaliser.
    let v_x = total_variance(&xs, d);

    let mut rng = Rng::new(cfg.seed);
    let init = match init {
        None => init_weights(&xs, d, m, &mut rng),
        Some(w) => {
            let mut w = w.clone();
            for v in w.b_enc.iter_mut().chain(w.b_dec.iter_mut()) {
                *v = (*v as f64 * scale) as f32;
            }
            w
        }
    };
    // The resampling draws have their own stream, so turning resampling on or off leaves the
    // minibatch order unchanged.
    let mut rs_rng = Rng::new(cfg.seed ^ 0x7E5A_4D91_0B1C_2F33);
    let base = cfg.device.clone().unwrap_or_else(Device::flex);
    let device = base.clone().autodiff();
    let mut params = SaeParams::new(&init, &device);
    params.w_dec = params.w_dec.map(|t| Tensor::from_inner(unit_rows(t.inner())).require_grad());
    let adam = AdamConfig::new()
        .with_beta_1(cfg.adam_beta1 as f32)
        .with_beta_2(cfg.adam_beta2 as f32)
        .with_epsilon(cfg.adam_eps as f32)
        .build();
    let mut states = AdamStates::default();

    let b = cfg.batch.min(n);
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let mut pos = 0;
    let mut buf = vec![0f32; b * d];
    let mut log = Vec::new();
    let mut win = [0f64; 5]; // loss, recon, l1, l0, aux sums over the window
    let mut win_steps = 0usize;
    let mut win_resampled = 0usize;
    let mut fired = Tensor::<2>::zeros([1, m], &base);
    // Rows seen since each latent last fired (in whole minibatches).
    let mut since = vec![0u64; m];

    for step in 1..=cfg.steps {
        for r in 0..b {
            if pos == n {
                rng.shuffle(&mut order);
                pos = 0;
            }
            let src = order[pos];
            pos += 1;
            buf[r * d..(r + 1) * d].copy_from_slice(&xs[src * d..(src + 1) * d]);
        }
        let x = Tensor::<2>::from_data(TensorData::new(buf.clone(), [b, d]), &device);
        let pre = pre_acts(x.clone(), params.w_enc.val(), params.b_enc.val(), params.b_dec.val());
        let f = activate(pre.clone(), activation);
        let xh = decode_with(f.clone(), params.w_dec.val(), params.b_dec.val());
        let err = x - xh;
        let recon = err.clone().square().sum_dim(1).mean();
        let l1 = f.clone().sum_dim(1).mean();
        let lambda = match cfg.sparsity {
            Sparsity::L1 { coeff } if cfg.l1_warmup_steps > 0 => coeff * (step as f64 / cfg.l1_warmup_steps as f64).min(1.0),
            Sparsity::L1 { coeff } => coeff,
            Sparsity::Topk { .. } => 0.0,
        };
        let mut loss = if lambda > 0.0 { recon.clone() + l1.clone().mul_scalar(lambda) } else { recon.clone() };
        let dead: Vec<usize> = (0..m).filter(|&j| since[j] >= dead_after).collect();
        let mut aux_val = 0.0;
        if aux_k > 0 && !dead.is_empty() && cfg.aux_coeff > 0.0 {
            if let Some((term, normalised)) = aux_k_term(pre, err, d, &dead, aux_k.min(dead.len()), params.w_dec.val(), cfg.aux_coeff * v_x) {
                loss = loss + term;
                aux_val = normalised;
            }
        }

        let mut grads = GradientsParams::from_grads(loss.backward(), &params);
        let mut take = |id, what: &str| grads.remove::<2>(id).ok_or_else(|| SaeError::Config(format!("no gradient for {what}")));
        let g_enc = take(params.w_enc.id, "W_enc")?;
        let mut g_dec = take(params.w_dec.id, "W_dec")?;
        let g_benc = grads.remove::<1>(params.b_enc.id).ok_or_else(|| SaeError::Config("no gradient for b_enc".into()))?;
        let g_bdec = grads.remove::<1>(params.b_dec.id).ok_or_else(|| SaeError::Config("no gradient for b_dec".into()))?;
        if cfg.project_decoder_grad {
            let w = params.w_dec.val().inner();
            let along = (g_dec.clone() * w.clone()).sum_dim(1); // m × 1 (rows are unit-norm)
            g_dec = g_dec - w * along;
        }
        params.w_enc = adam_step(&adam, cfg.lr, params.w_enc, g_enc, &mut states.w_enc);
        params.b_enc = adam_step(&adam, cfg.lr, params.b_enc, g_benc, &mut states.b_enc);
        params.w_dec = adam_step(&adam, cfg.lr, params.w_dec, g_dec, &mut states.w_dec);
        params.b_dec = adam_step(&adam, cfg.lr, params.b_dec, g_bdec, &mut states.b_dec);
        // The constraint holds after EVERY step: renormalise the decoder directions.
        params.w_dec = params.w_dec.map(|t| Tensor::from_inner(unit_rows(t.inner())).require_grad());

        let fi = f.inner();
        let active = fi.greater_elem(0.0).float();
        let counts = active.clone().sum_dim(0);
        for (s, c) in since.iter_mut().zip(host(&counts)) {
            *s = if c > 0.0 { 0 } else { *s + b as u64 };
        }
        fired = fired + counts;
        let vals = [loss, recon, l1].map(|t| t.inner().into_scalar::<f32>() as f64);
        let l0 = active.sum_dim(1).mean().into_scalar::<f32>() as f64;
        win[0] += vals[0];
        win[1] += vals[1];
        win[2] += vals[2];
        win[3] += l0;
        win[4] += aux_val;
        win_steps += 1;
        if !vals[0].is_finite() {
            return Err(SaeError::Config(format!("loss became {} at step {step}; lower --lr", vals[0])));
        }

        if resample_every > 0 && step % resample_every == 0 && step <= cfg.steps / 2 {
            let dead: Vec<usize> = (0..m).filter(|&j| since[j] >= dead_after).collect();
            if !dead.is_empty() {
                let done = resample(&mut params, &mut states, &dead, &xs, d, activation, cfg, &mut rs_rng, &device)?;
                for &j in &dead[..done] {
                    since[j] = 0;
                }
                win_resampled += done;
            }
        }

        progress(step, vals[0]);
        if step % cfg.log_every == 0 || step == cfg.steps {
            let k = win_steps as f64;
            let dead_win = host(&fired).iter().filter(|&&c| c == 0.0).count();
            let dead_now = since.iter().filter(|&&s| s >= dead_after).count();
            log.push(StepLog {
                step,
                loss: win[0] / k,
                recon: win[1] / k,
                l1: win[2] / k,
                l0: win[3] / k,
                dead_in_window: dead_win as f64 / m as f64,
                dead: dead_now as f64 / m as f64,
                aux: win[4] / k,
                resampled: win_resampled,
            });
            win = [0.0; 5];
            win_steps = 0;
            win_resampled = 0;
            fired = Tensor::<2>::zeros([1, m], &base);
        }
    }

    let mut weights = params.valid_weights();
    // Fold the normalisation: f_raw = f/s with the same unit-norm decoder (see crate docs).
    for v in weights.b_enc.iter_mut().chain(weights.b_dec.iter_mut()) {
        *v = (*v as f64 / scale) as f32;
    }
    Ok(Trained { weights, activation, act_scale: scale, effective_batch: b, log, config: cfg.clone() })
}

/// mean_rows ‖x − x̄‖² of `xs` (n × d), x̄ the mean row.
fn total_variance(xs: &[f32], d: usize) -> f64 {
    let n = (xs.len() / d).max(1) as f64;
    let mut mean = vec![0f64; d];
    for r in xs.chunks_exact(d) {
        for (a, &x) in mean.iter_mut().zip(r) {
            *a += x as f64 / n;
        }
    }
    xs.chunks_exact(d).map(|r| r.iter().zip(&mean).map(|(&x, mu)| (x as f64 - mu).powi(2)).sum::<f64>()).sum::<f64>() / n
}

/// The AuxK term (autodiff scalar, already weighted by `weight` = α · V_x) and the normalised AuxK
/// loss mean‖e − ê‖² / V_e (host), or None when the residual has no variance. `pre`:
/// pre-activations (b × m); `err`: x − x̂ (b × d); `k`: how many dead latents per row (≤ dead.len()).
/// Works on the dead columns only (b × #dead), so it costs little when few latents are dead.
fn aux_k_term(pre: Tensor<2>, err: Tensor<2>, d: usize, dead: &[usize], k: usize, w_dec: Tensor<2>, weight: f64) -> Option<(Tensor<1>, f64)> {
    let e = err.detach();
    let v_e = total_variance(&host(&e.clone().inner()), d);
    if !(v_e > 0.0) {
        return None;
    }
    let [b, _] = pre.dims();
    let nd = dead.len();
    let device = pre.device();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(dead.iter().map(|&j| j as i64).collect::<Vec<_>>(), [nd]), &device);
    let pre_dead = pre.select(1, idx.clone()); // b × nd
    let vals = host(&pre_dead.clone().inner());
    let mut mask = vec![0f32; b * nd];
    let mut sel = vec![0f32; nd];
    for (row, mrow) in vals.chunks_exact(nd).zip(mask.chunks_exact_mut(nd)) {
        sel.copy_from_slice(row);
        let thr = *sel.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a)).1;
        let mut taken = 0;
        for (mv, &v) in mrow.iter_mut().zip(row) {
            if taken < k && v >= thr {
                *mv = 1.0;
                taken += 1;
            }
        }
    }
    let mask = Tensor::<2>::from_data(TensorData::new(mask, [b, nd]), &device);
    let f_aux = relu(pre_dead * mask);
    let mse = (f_aux.matmul(w_dec.select(0, idx)) - e).square().sum_dim(1).mean();
    let normalised = mse.clone().inner().into_scalar::<f32>() as f64 / v_e;
    Some((mse.mul_scalar(weight / v_e), normalised))
}

/// Re-initialise the `dead` latents (see [`train`]); returns how many were resampled (a prefix of
/// `dead`; fewer when fewer candidate rows have a non-zero loss).
#[allow(clippy::too_many_arguments)]
fn resample(
    params: &mut SaeParams,
    states: &mut AdamStates,
    dead: &[usize],
    xs: &[f32],
    d: usize,
    activation: Activation,
    cfg: &TrainConfig,
    rng: &mut Rng,
    device: &Device,
) -> Result<usize> {
    let mut w = params.weights();
    let (n, m) = (xs.len() / d, w.width);
    let cand: Vec<f32> = if n <= cfg.resample_rows {
        xs.to_vec()
    } else {
        (0..cfg.resample_rows).flat_map(|_| {
            let i = rng.below(n);
            xs[i * d..(i + 1) * d].iter().copied()
        })
        .collect()
    };
    let nc = cand.len() / d;
    let sae = Sae::from_weights(&w, activation, &Device::flex())?;
    let mut resid = vec![0f32; nc * d];
    let mut weight = vec![0f64; nc];
    for_each_chunk(&sae, &cand, d, |start, x, _, xh| {
        for (r, (xr, hr)) in x.chunks_exact(d).zip(xh.chunks_exact(d)).enumerate() {
            let i = start + r;
            let mut l = 0f64;
            for (k, (&a, &h)) in xr.iter().zip(hr).enumerate() {
                let e = a - h;
                resid[i * d + k] = e;
                l += (e as f64).powi(2);
            }
            weight[i] = l * l;
        }
    });
    let mut is_dead = vec![false; m];
    dead.iter().for_each(|&j| is_dead[j] = true);
    let col_norm = |j: usize| (0..d).map(|i| (w.w_enc[i * m + j] as f64).powi(2)).sum::<f64>().sqrt();
    let alive: Vec<f64> = (0..m).filter(|&j| !is_dead[j]).map(col_norm).collect();
    let alive_norm = if alive.is_empty() { 1.0 } else { alive.iter().sum::<f64>() / alive.len() as f64 };
    let enc_len = cfg.resample_encoder_scale * alive_norm;

    let mut done = 0;
    for &j in dead {
        let total: f64 = weight.iter().sum();
        if !(total > 0.0) {
            break; // nothing left unexplained to point a latent at
        }
        let mut u = rng.u01() * total;
        let mut pick = None;
        for (i, &wt) in weight.iter().enumerate() {
            if wt > 0.0 {
                pick = Some(i);
                if u < wt {
                    break;
                }
                u -= wt;
            }
        }
        let i = pick.expect("total > 0");
        weight[i] = 0.0;
        let e = &resid[i * d..(i + 1) * d];
        let norm = e.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        for (k, &v) in e.iter().enumerate() {
            let u = v as f64 / norm;
            w.w_dec[j * d + k] = u as f32;
            w.w_enc[k * m + j] = (u * enc_len) as f32;
        }
        w.b_enc[j] = 0.0;
        done += 1;
    }
    if done == 0 {
        return Ok(0);
    }
    let mut keep = vec![1f32; m];
    dead[..done].iter().for_each(|&j| keep[j] = 0.0);
    let plain = Device::flex();
    let keep_row = Tensor::<1>::from_data(TensorData::new(keep.clone(), [m]), &plain);
    scale_moments(&mut states.w_enc, keep_row.clone().unsqueeze_dim::<2>(0)); // d × m: columns
    scale_moments(&mut states.b_enc, keep_row.clone());
    scale_moments(&mut states.w_dec, keep_row.unsqueeze_dim::<2>(1)); // m × d: rows
    *params = SaeParams::new(&w, device);
    Ok(done)
}

impl SaeParams {
    fn valid_weights(&self) -> SaeWeights {
        self.clone().valid().weights()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resampling resets Adam's first and second moments of exactly the resampled latents' entries
    /// (W_enc columns, b_enc entries, W_dec rows), and re-initialises those latents.
    #[test]
    fn resampling_resets_adam_moments_of_resampled_latents_only() {
        let (d, m) = (4, 6);
        let mut rng = Rng::new(1);
        let xs: Vec<f32> = (0..64 * d).map(|_| rng.normal() as f32).collect();
        let w = init_weights(&xs, d, m, &mut rng);
        let device = Device::flex().autodiff();
        let plain = Device::flex();
        let mut params = SaeParams::new(&w, &device);
        let adam = AdamConfig::new().build();
        let mut st = AdamStates::default();
        params.w_enc = adam_step(&adam, 1e-3, params.w_enc, Tensor::ones([d, m], &plain), &mut st.w_enc);
        params.b_enc = adam_step(&adam, 1e-3, params.b_enc, Tensor::ones([m], &plain), &mut st.b_enc);
        params.w_dec = adam_step(&adam, 1e-3, params.w_dec, Tensor::ones([m, d], &plain), &mut st.w_dec);
        params.b_dec = adam_step(&adam, 1e-3, params.b_dec, Tensor::ones([d], &plain), &mut st.b_dec);
        let cfg = TrainConfig::new(m, Sparsity::L1 { coeff: 1.0 });
        let before = params.weights();
        assert!(before.b_enc.iter().all(|&b| b != 0.0));
        let done = resample(&mut params, &mut st, &[1, 4], &xs, d, Activation::Relu, &cfg, &mut Rng::new(2), &device).unwrap();
        assert_eq!(done, 2);
        let reset = |j: usize| j == 1 || j == 4;
        let moments = |s: &AdaptiveParts| [host(&s.0), host(&s.1)];
        type AdaptiveParts = (Tensor<2>, Tensor<2>);
        let two = |s: &Option<AdamState<2>>| -> AdaptiveParts {
            let s = &s.as_ref().unwrap().momentum;
            (s.moment_1.clone(), s.moment_2.clone())
        };
        for v in moments(&two(&st.w_enc)) {
            for (idx, x) in v.iter().enumerate() {
                assert_eq!(*x == 0.0, reset(idx % m), "W_enc moment at column {}", idx % m);
            }
        }
        for v in moments(&two(&st.w_dec)) {
            for (idx, x) in v.iter().enumerate() {
                assert_eq!(*x == 0.0, reset(idx / d), "W_dec moment at row {}", idx / d);
            }
        }
        let b = &st.b_enc.as_ref().unwrap().momentum;
        for v in [host(&b.moment_1), host(&b.moment_2)] {
            for (j, x) in v.iter().enumerate() {
                assert_eq!(*x == 0.0, reset(j), "b_enc moment {j}");
            }
        }
        assert!(host(&st.b_dec.as_ref().unwrap().momentum.moment_1).iter().all(|&x| x != 0.0));
        let after = params.weights();
        for j in 0..m {
            assert_eq!(after.b_enc[j] == 0.0, reset(j), "b_enc {j}");
            if !reset(j) {
                assert_eq!(after.decoder_row(j), before.decoder_row(j));
            }
            let row = after.decoder_row(j);
            if reset(j) {
                let norm = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
                assert!((norm - 1.0).abs() < 1e-5, "row {j} norm {norm}");
                // W_enc[:, j] = 0.2 · (mean live encoder norm) · W_dec[j]
                let col: Vec<f32> = (0..d).map(|i| after.w_enc[i * m + j]).collect();
                let cos = col.iter().zip(row).map(|(a, b)| (a * b) as f64).sum::<f64>()
                    / col.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
                assert!((cos - 1.0).abs() < 1e-5, "encoder column {j} not along its decoder row (cos {cos})");
            }
        }
    }

    /// The AuxK term equals a host computation of OpenAI's normalised AuxK MSE, and its gradient
    /// reaches the encoder columns of dead latents only.
    #[test]
    fn aux_k_term_matches_host_formula_and_reaches_only_dead_latents() {
        let (b, d, m, k) = (5, 3, 6, 2);
        let dead = [0usize, 2, 3, 5];
        let mut rng = Rng::new(7);
        let mut r = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
        let (pre_h, err_h, wdec_h) = (r(b * m), r(b * d), r(m * d));
        let device = Device::flex().autodiff();
        let pre = Tensor::<2>::from_data(TensorData::new(pre_h.clone(), [b, m]), &device).require_grad();
        let err = Tensor::<2>::from_data(TensorData::new(err_h.clone(), [b, d]), &device);
        let w_dec = Tensor::<2>::from_data(TensorData::new(wdec_h.clone(), [m, d]), &device).require_grad();
        let (term, normalised) = aux_k_term(pre.clone(), err, d, &dead, k, w_dec.clone(), 1.0).unwrap();

        // Host: per row, the k largest dead pre-activations, ReLU'd, decode without bias.
        let v_e = total_variance(&err_h, d);
        let mut sse = 0f64;
        for i in 0..b {
            let mut ds: Vec<usize> = dead.to_vec();
            ds.sort_by(|&p, &q| pre_h[i * m + q].total_cmp(&pre_h[i * m + p]));
            let mut eh = vec![0f64; d];
            for &j in &ds[..k] {
                let f = (pre_h[i * m + j] as f64).max(0.0);
                for c in 0..d {
                    eh[c] += f * wdec_h[j * d + c] as f64;
                }
            }
            sse += (0..d).map(|c| (err_h[i * d + c] as f64 - eh[c]).powi(2)).sum::<f64>();
        }
        let want = sse / b as f64 / v_e;
        assert!((normalised - want).abs() < 1e-5 * want.max(1.0), "{normalised} vs {want}");
        let t = term.clone().inner().into_scalar::<f32>() as f64;
        assert!((t - want).abs() < 1e-5 * want.max(1.0), "term {t} vs {want}");

        let grads = term.backward();
        let g = host(&pre.grad(&grads).unwrap());
        for i in 0..b {
            for j in 0..m {
                if !dead.contains(&j) {
                    assert_eq!(g[i * m + j], 0.0, "live latent {j} got an AuxK gradient");
                }
            }
        }
        assert!(dead.iter().any(|&j| (0..b).any(|i| g[i * m + j] != 0.0)), "no AuxK gradient reached a dead latent");
        let gd = host(&w_dec.grad(&grads).unwrap());
        for j in 0..m {
            let nz = gd[j * d..(j + 1) * d].iter().any(|&v| v != 0.0);
            assert!(!nz || dead.contains(&j), "live decoder row {j} got an AuxK gradient");
        }
    }
}
