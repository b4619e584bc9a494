//! Evaluation metrics over a whole evaluation set, accumulated in f64 on the host.
//!
//! With rows x_i ∈ ℝ^d (i = 1..N), reconstructions x̂_i and feature activations f_i ∈ ℝ^m:
//! - `mse` = (1/(N·d)) Σ_i ‖x_i − x̂_i‖²  — the mean over rows of the squared error summed over dims,
//!   divided by d (i.e. the mean over all N·d elements; NOT divided by a token count twice, SAELens PR#711);
//! - `explained_variance` = 1 − Σ_i ‖x_i − x̂_i‖² / Σ_i ‖x_i − x̄‖², x̄ the per-dimension mean over the
//!   same N rows — one ratio over the whole set, not a mean of per-row or per-batch ratios
//!   (SAELens PR#443/#665). `null` when the denominator is 0 (fewer than 2 distinct rows);
//! - `l0` = (1/N) Σ_i #{j : f_ij > 0};  `l1` = (1/N) Σ_i Σ_j |f_ij|;
//! - `dead_features` = #{j : f_ij ≤ 0 for every i}, `dead_fraction` = dead_features / m.
//! All in the units of the activations the SAE is applied to (raw, un-normalised activations).

use burn::prelude::*;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

use crate::model::{Sae, host};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub rows: usize,
    pub mse: f64,
    pub explained_variance: Option<f64>,
    pub l0: f64,
    pub l1: f64,
    pub dead_features: usize,
    pub dead_fraction: f64,
}

/// Rows per forward when evaluating (bounds memory at about rows × m floats).
pub const EVAL_CHUNK: usize = 2048;

/// Run the SAE over `rows` (n × d, row-major) in chunks, calling `visit(first_row, x, f, x̂)` with
/// host copies of each chunk's inputs, feature activations (chunk × m) and reconstructions.
pub fn for_each_chunk(sae: &Sae, rows: &[f32], d: usize, mut visit: impl FnMut(usize, &[f32], &[f32], &[f32])) {
    let device = sae.w_enc.device();
    let n = rows.len() / d;
    let mut start = 0;
    while start < n {
        let len = EVAL_CHUNK.min(n - start);
        let xs = &rows[start * d..(start + len) * d];
        let x = Tensor::<2>::from_data(TensorData::new(xs.to_vec(), [len, d]), &device);
        let f = sae.encode(x);
        let xh = sae.decode(f.clone());
        visit(start, xs, &host(&f), &host(&xh));
        start += len;
    }
}

/// Metrics of `sae` on `rows` (n × d).
pub fn evaluate(sae: &Sae, rows: &[f32], d: usize) -> Metrics {
    let m = sae.width();
    let n = rows.len() / d;
    let mut mean = vec![0f64; d];
    for r in rows.chunks_exact(d) {
        for (a, &v) in mean.iter_mut().zip(r) {
            *a += v as f64;
        }
    }
    mean.iter_mut().for_each(|a| *a /= n.max(1) as f64);
    let mut sst = 0f64;
    for r in rows.chunks_exact(d) {
        sst += r.iter().zip(&mean).map(|(&v, &mu)| (v as f64 - mu).powi(2)).sum::<f64>();
    }
    let (mut sse, mut l0, mut l1) = (0f64, 0f64, 0f64);
    let mut fired = vec![false; m];
    for_each_chunk(sae, rows, d, |_, x, f, xh| {
        sse += x.iter().zip(xh).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>();
        for fr in f.chunks_exact(m) {
            for (j, &v) in fr.iter().enumerate() {
                if v > 0.0 {
                    l0 += 1.0;
                    fired[j] = true;
                }
                l1 += (v as f64).abs();
            }
        }
    });
    let dead = fired.iter().filter(|&&b| !b).count();
    let nf = n.max(1) as f64;
    Metrics {
        rows: n,
        mse: sse / (nf * d as f64),
        explained_variance: (sst > 0.0).then(|| 1.0 - sse / sst),
        l0: l0 / nf,
        l1: l1 / nf,
        dead_features: dead,
        dead_fraction: dead as f64 / m as f64,
    }
}
