#![allow(dead_code)]
//! Synthetic data with known sparse features, shared by the SAE tests.

pub struct Lcg(u64);
impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407))
    }
    pub fn u(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn n(&mut self) -> f64 {
        let (a, b) = (1.0 - self.u(), self.u());
        (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
    }
}

/// `k` random unit directions in ℝ^d (row-major k × d).
pub fn directions(k: usize, d: usize, rng: &mut Lcg) -> Vec<Vec<f64>> {
    (0..k)
        .map(|_| {
            let v: Vec<f64> = (0..d).map(|_| rng.n()).collect();
            let nrm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.into_iter().map(|x| x / nrm).collect()
        })
        .collect()
}

/// Rows x = offset + Σ_j a_j e_j + noise, each feature active with probability `p` and amplitude in [0.5, 1.5].
pub fn sparse_rows(dirs: &[Vec<f64>], n: usize, p: f64, noise: f64, offset: &[f64], rng: &mut Lcg) -> Vec<f32> {
    let d = dirs[0].len();
    let mut out = Vec::with_capacity(n * d);
    for _ in 0..n {
        let mut x = offset.to_vec();
        for e in dirs {
            if rng.u() < p {
                let a = 0.5 + rng.u();
                for (xi, ei) in x.iter_mut().zip(e) {
                    *xi += a * ei;
                }
            }
        }
        for xi in x.iter_mut() {
            *xi += noise * rng.n();
        }
        out.extend(x.into_iter().map(|v| v as f32));
    }
    out
}

/// For each true direction, the best |cosine|… no: the best signed cosine with any learned decoder row.
pub fn best_matches(dirs: &[Vec<f64>], w_dec: &[f32], d: usize) -> Vec<f64> {
    dirs.iter()
        .map(|e| {
            w_dec
                .chunks_exact(d)
                .map(|r| {
                    let dot: f64 = r.iter().zip(e).map(|(&a, &b)| a as f64 * b).sum();
                    let nr = r.iter().map(|&a| (a as f64).powi(2)).sum::<f64>().sqrt();
                    dot / nr.max(1e-12)
                })
                .fold(f64::MIN, f64::max)
        })
        .collect()
}
