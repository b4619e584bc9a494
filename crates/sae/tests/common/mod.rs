#![allow(dead_code)]
//! Synthetic data with known sparse features, and cache writing, shared by the SAE tests.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use sam3lab_hooks::{ActivationCache, DynTensor};

pub use sam3lab_util::rng::Rng;

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `k` random unit directions in ℝ^d, no two with |cos| > `max_cos` (a well-posed dictionary).
pub fn directions(k: usize, d: usize, max_cos: f64, rng: &mut Rng) -> Vec<Vec<f64>> {
    let mut out: Vec<Vec<f64>> = Vec::new();
    while out.len() < k {
        let v: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        let nrm = dot(&v, &v).sqrt();
        let v: Vec<f64> = v.into_iter().map(|x| x / nrm).collect();
        if out.iter().all(|e| dot(e, &v).abs() <= max_cos) {
            out.push(v);
        }
    }
    out
}

/// Rows x = offset + Σ_j a_j e_j + noise·N(0, I): each feature active with probability `p`,
/// amplitude uniform in [0.5, 1.5].
pub fn sparse_rows(dirs: &[Vec<f64>], n: usize, p: f64, noise: f64, offset: &[f64], rng: &mut Rng) -> Vec<f32> {
    let d = dirs[0].len();
    let mut out = Vec::with_capacity(n * d);
    for _ in 0..n {
        let mut x = offset.to_vec();
        for e in dirs {
            if rng.u01() < p {
                let a = 0.5 + rng.u01();
                for (xi, ei) in x.iter_mut().zip(e) {
                    *xi += a * ei;
                }
            }
        }
        for xi in x.iter_mut() {
            *xi += noise * rng.normal();
        }
        out.extend(x.into_iter().map(|v| v as f32));
    }
    out
}

/// For each true direction, the best cosine with any row of `w_dec` (m × d).
pub fn best_matches(dirs: &[Vec<f64>], w_dec: &[f32], d: usize) -> Vec<f64> {
    dirs.iter()
        .map(|e| {
            w_dec
                .chunks_exact(d)
                .map(|r| {
                    let r: Vec<f64> = r.iter().map(|&a| a as f64).collect();
                    dot(&r, e) / dot(&r, &r).sqrt().max(1e-12)
                })
                .fold(f64::MIN, f64::max)
        })
        .collect()
}

/// Write a hook cache holding `point` with `shape`/`values`, a checkpoint sha and manifest extras.
pub fn write_cache(path: &Path, point: &str, shape: Vec<usize>, values: Vec<f32>, sha: &str, extra: &[(&str, serde_json::Value)]) {
    let mut c = ActivationCache::default();
    c.insert(point, DynTensor::from_vec(values, shape, &Device::flex()));
    c.manifest.checkpoint_sha256 = sha.to_string();
    c.manifest.prompt = "synthetic".into();
    c.manifest.extra = extra.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<BTreeMap<_, _>>();
    c.save(path).unwrap();
}

/// The standard synthetic problem of the recovery tests: 16 directions in d = 16, ~2 active per row.
pub fn standard_problem(k: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f32>) {
    let d = 16;
    let mut rng = Rng::new(seed);
    let dirs = directions(k, d, 0.5, &mut rng);
    let offset: Vec<f64> = (0..d).map(|i| 0.3 * (i as f64).sin()).collect();
    let rows = sparse_rows(&dirs, 4000, 2.0 / k as f64, 0.01, &offset, &mut rng);
    (dirs, rows)
}
