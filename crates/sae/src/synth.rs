//! Planted-feature activation sets: rows that are sparse non-negative combinations of known unit
//! directions, written as hook caches, so a user can check that an SAE configuration recovers known
//! features (and benchmark training) before trusting it on real activations.

use std::path::Path;

use burn::prelude::*;
use sam3lab_hooks::{ActivationCache, DynTensor};
use sam3lab_util::rng::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SaeError};
use crate::io::write_atomic;
use crate::model::SaeWeights;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    pub d: usize,
    /// Number of planted directions K.
    pub features: usize,
    pub rows: usize,
    /// Rows per cache file.
    pub rows_per_file: usize,
    /// Expected number of active directions per row (each is active with probability active/K).
    pub active: f64,
    /// Standard deviation of the Gaussian noise added to every coordinate.
    pub noise: f64,
    pub seed: u64,
}

/// The directions file name inside the output directory (tensor `directions`, K × d).
pub const DIRECTIONS_FILE: &str = "directions.safetensors";

/// Write `out/acts/cNNNN.safetensors` (the point `point`, shape (rows, d)) and `out/directions.safetensors`.
/// Amplitudes are uniform in [0.5, 1.5]; directions are Gaussian, normalised.
pub fn write_planted(out: &Path, point: &str, cfg: &SynthConfig) -> Result<()> {
    if cfg.d == 0 || cfg.features == 0 || cfg.rows == 0 || cfg.rows_per_file == 0 {
        return Err(SaeError::Config("d, features, rows and rows_per_file must be ≥ 1".into()));
    }
    if !(cfg.active > 0.0 && cfg.active <= cfg.features as f64) || !(cfg.noise >= 0.0) {
        return Err(SaeError::Config(format!("active must be in (0, {}] and noise ≥ 0", cfg.features)));
    }
    let (d, k) = (cfg.d, cfg.features);
    let mut rng = Rng::new(cfg.seed);
    let mut dirs = vec![0f32; k * d];
    for row in dirs.chunks_exact_mut(d) {
        let g: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        let n = g.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        row.iter_mut().zip(g).for_each(|(o, v)| *o = (v / n) as f32);
    }
    let p = cfg.active / k as f64;
    let device = Device::flex();
    let mut done = 0;
    let mut file = 0;
    while done < cfg.rows {
        let n = cfg.rows_per_file.min(cfg.rows - done);
        let mut vals = vec![0f32; n * d];
        for x in vals.chunks_exact_mut(d) {
            for e in dirs.chunks_exact(d) {
                if rng.u01() < p {
                    let a = (0.5 + rng.u01()) as f32;
                    x.iter_mut().zip(e).for_each(|(xi, ei)| *xi += a * ei);
                }
            }
            if cfg.noise > 0.0 {
                x.iter_mut().for_each(|xi| *xi += (cfg.noise * rng.normal()) as f32);
            }
        }
        let mut c = ActivationCache::default();
        c.insert(point, DynTensor::from_vec(vals, vec![n, d], &device));
        c.manifest.checkpoint_sha256 = "synthetic".into();
        c.manifest.image = "planted features (sam3lab sae synth)".into();
        c.manifest.seed = Some(cfg.seed);
        c.manifest.sam3lab_version = env!("CARGO_PKG_VERSION").into();
        c.manifest.extra.insert("synth".into(), serde_json::to_value(cfg).expect("plain struct"));
        let path = out.join("acts").join(format!("c{file:04}.safetensors"));
        c.save(&path).map_err(|source| SaeError::Cache { path: path.display().to_string(), source })?;
        done += n;
        file += 1;
    }
    let bytes: Vec<u8> = dirs.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![k, d], &bytes)
        .map_err(|e| SaeError::Config(e.to_string()))?;
    let st = safetensors::serialize(vec![("directions".to_string(), view)], None).map_err(|e| SaeError::Config(e.to_string()))?;
    write_atomic(&out.join(DIRECTIONS_FILE), &st)
}

/// Read a K × d `directions` tensor (as written by [`write_planted`]).
pub fn read_directions(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let err = |why: String| SaeError::Io { path: path.display().to_string(), why };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| err(format!("not a safetensors file: {e}")))?;
    let v = st.tensor("directions").map_err(|_| err("no tensor `directions`".into()))?;
    if v.dtype() != safetensors::Dtype::F32 || v.shape().len() != 2 {
        return Err(err(format!("`directions` is {:?} {:?}, expected F32 (K, d)", v.dtype(), v.shape())));
    }
    let vals = v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok((vals, v.shape()[0], v.shape()[1]))
}

/// For each direction (K × d, row-major), the decoder feature with the highest cosine and that cosine.
pub fn match_directions(w: &SaeWeights, dirs: &[f32], d: usize) -> Result<Vec<(usize, f64)>> {
    if d != w.d_in {
        return Err(SaeError::Width { what: "the directions file".into(), expected: w.d_in, found: d });
    }
    let norms = w.decoder_norms();
    Ok(dirs
        .chunks_exact(d)
        .map(|e| {
            let en = e.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt().max(1e-12);
            (0..w.width)
                .map(|j| {
                    let dot: f64 = w.decoder_row(j).iter().zip(e).map(|(&a, &b)| a as f64 * b as f64).sum();
                    (j, dot / (norms[j].max(1e-12) * en))
                })
                .fold((0, f64::MIN), |best, c| if c.1 > best.1 { c } else { best })
        })
        .collect())
}
