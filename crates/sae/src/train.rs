//! Training: Adam on minibatches of (optionally normalised) rows, decoder directions kept at unit
//! norm after every optimizer step, everything seeded.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SaeError};
use crate::model::{Activation, SaeParams, SaeWeights, activate, decode_with, host, pre_acts, unit_rows};
use crate::rng::Rng;

/// How sparsity is obtained.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sparsity {
    /// ReLU + coeff · mean_rows Σ_j f_j (decoder rows are unit-norm, so no norm weighting is needed).
    L1 { coeff: f64 },
    /// Keep the K largest pre-activations per row; loss is reconstruction only.
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Number of features m.
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
        }
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
        match self.sparsity {
            Sparsity::L1 { coeff } if !(coeff.is_finite() && coeff >= 0.0) => bad(format!("L1 coefficient {coeff} must be ≥ 0")),
            Sparsity::Topk { k } if k == 0 || k > self.width => bad(format!("top-k k = {k} must be in 1..={}", self.width)),
            _ => Ok(()),
        }
    }
}

/// Means over one log window of steps, in training (normalised) units.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// Last step of the window (1-based).
    pub step: usize,
    /// recon + λ·l1 (λ after warmup).
    pub loss: f64,
    /// mean over rows of ‖x − x̂‖² (summed over dims).
    pub recon: f64,
    /// mean over rows of Σ_j f_j.
    pub l1: f64,
    /// mean active features per row.
    pub l0: f64,
    /// Fraction of features that never fired during the window.
    pub dead_in_window: f64,
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

/// Train an SAE on `rows` (n × d, row-major). `progress(step, loss)` is called after every step.
pub fn train(rows: &[f32], d: usize, cfg: &TrainConfig, progress: &mut dyn FnMut(usize, f64)) -> Result<Trained> {
    let n = if d == 0 { 0 } else { rows.len() / d };
    cfg.validate(d, n)?;
    let m = cfg.width;
    let activation = cfg.sparsity.activation();

    let mean_sq = rows.chunks_exact(d).map(|r| r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>()).sum::<f64>() / n as f64;
    let scale = if cfg.normalize && mean_sq > 0.0 { (d as f64 / mean_sq).sqrt() } else { 1.0 };
    let xs: Vec<f32> = rows.iter().map(|&v| (v as f64 * scale) as f32).collect();

    let mut rng = Rng::new(cfg.seed);
    let init = init_weights(&xs, d, m, &mut rng);
    let device = Device::flex().autodiff();
    let mut params = SaeParams::new(&init, &device);
    let mut optim = AdamConfig::new()
        .with_beta_1(cfg.adam_beta1 as f32)
        .with_beta_2(cfg.adam_beta2 as f32)
        .with_epsilon(cfg.adam_eps as f32)
        .init();

    let b = cfg.batch.min(n);
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let mut pos = 0;
    let mut buf = vec![0f32; b * d];
    let mut log = Vec::new();
    let mut win = [0f64; 4]; // loss, recon, l1, l0 sums over the window
    let mut win_steps = 0usize;
    let mut fired = Tensor::<2>::zeros([1, m], &Device::flex());

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
        let f = activate(pre, activation);
        let xh = decode_with(f.clone(), params.w_dec.val(), params.b_dec.val());
        let recon = (xh - x).square().sum_dim(1).mean();
        let l1 = f.clone().sum_dim(1).mean();
        let lambda = match cfg.sparsity {
            Sparsity::L1 { coeff } if cfg.l1_warmup_steps > 0 => coeff * (step as f64 / cfg.l1_warmup_steps as f64).min(1.0),
            Sparsity::L1 { coeff } => coeff,
            Sparsity::Topk { .. } => 0.0,
        };
        let loss = if lambda > 0.0 { recon.clone() + l1.clone().mul_scalar(lambda) } else { recon.clone() };

        let mut grads = GradientsParams::from_grads(loss.backward(), &params);
        if cfg.project_decoder_grad {
            let id = params.w_dec.id;
            if let Some(g) = grads.remove::<2>(id) {
                let w = params.w_dec.val().inner();
                let along = (g.clone() * w.clone()).sum_dim(1); // m × 1 (rows are unit-norm)
                grads.register(id, g - w * along);
            }
        }
        params = optim.step(cfg.lr, params, grads);
        // The constraint holds after EVERY step: renormalise the decoder directions.
        params.w_dec = params.w_dec.map(|t| Tensor::from_inner(unit_rows(t.inner())).require_grad());

        let fi = f.inner();
        let active = fi.greater_elem(0.0).float();
        fired = fired + active.clone().sum_dim(0);
        let vals = [loss, recon, l1].map(|t| t.inner().into_scalar::<f32>() as f64);
        let l0 = active.sum_dim(1).mean().into_scalar::<f32>() as f64;
        win[0] += vals[0];
        win[1] += vals[1];
        win[2] += vals[2];
        win[3] += l0;
        win_steps += 1;
        if !vals[0].is_finite() {
            return Err(SaeError::Config(format!("loss became {} at step {step}; lower --lr", vals[0])));
        }
        progress(step, vals[0]);
        if step % cfg.log_every == 0 || step == cfg.steps {
            let k = win_steps as f64;
            let dead = host(&fired).iter().filter(|&&c| c == 0.0).count();
            log.push(StepLog {
                step,
                loss: win[0] / k,
                recon: win[1] / k,
                l1: win[2] / k,
                l0: win[3] / k,
                dead_in_window: dead as f64 / m as f64,
            });
            win = [0.0; 4];
            win_steps = 0;
            fired = Tensor::<2>::zeros([1, m], &Device::flex());
        }
    }

    let mut weights = params.valid_weights();
    // Fold the normalisation: f_raw = f/s with the same unit-norm decoder (see crate docs).
    for v in weights.b_enc.iter_mut().chain(weights.b_dec.iter_mut()) {
        *v = (*v as f64 / scale) as f32;
    }
    Ok(Trained { weights, activation, act_scale: scale, effective_batch: b, log })
}

impl SaeParams {
    fn valid_weights(&self) -> SaeWeights {
        self.clone().valid().weights()
    }
}
