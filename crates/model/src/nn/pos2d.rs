//! The reference `PositionEmbeddingSine` (normalize=True): a fixed 2-D sine/cosine map per
//! feature level, plus its 1-D coordinate encoding (used for box/point prompts).
//!
//! Computed on the host in f32 with the reference's operation order, then uploaded:
//! `y_i = (i+1) / (h + 1e-6) · scale`, `dim_t[k] = T^(2⌊k/2⌋ / (d/2))`, channel `2m` = sin(·/dim_t[2m]),
//! `2m+1` = cos(·/dim_t[2m+1]); channels are `[pos_y (d/2), pos_x (d/2)]`.

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::config::PositionEncodingConfig;

/// `dim_t` of the reference for `npf = num_pos_feats / 2` features per axis.
pub fn sine_dim_t(npf: usize, temperature: f64) -> Vec<f32> {
    let t = temperature as f32;
    (0..npf)
        .map(|k| {
            let e = (2.0 * ((k / 2) as f32)) / npf as f32;
            t.powf(e)
        })
        .collect()
}

/// Interleaved sin/cos features of already-scaled coordinates: `npf` values per coordinate.
pub fn sine_features(coord: f32, dim_t: &[f32], out: &mut Vec<f32>) {
    for (k, d) in dim_t.iter().enumerate() {
        let v = coord / d;
        out.push(if k % 2 == 0 { v.sin() } else { v.cos() });
    }
}

/// The `(d, h, w)` position map of an `h × w` feature level (`d = cfg.num_pos_feats`).
pub fn sine_pos_2d_data(h: usize, w: usize, cfg: &PositionEncodingConfig) -> Vec<f32> {
    let d = cfg.num_pos_feats;
    let npf = d / 2;
    let dim_t = sine_dim_t(npf, cfg.temperature);
    let scale = cfg.scale as f32;
    let norm = |i: usize, n: usize| -> f32 {
        let v = (i + 1) as f32;
        if cfg.normalize { v / (n as f32 + 1e-6f32) * scale } else { v }
    };
    let ys: Vec<Vec<f32>> = (0..h)
        .map(|i| {
            let mut f = Vec::with_capacity(npf);
            sine_features(norm(i, h), &dim_t, &mut f);
            f
        })
        .collect();
    let xs: Vec<Vec<f32>> = (0..w)
        .map(|j| {
            let mut f = Vec::with_capacity(npf);
            sine_features(norm(j, w), &dim_t, &mut f);
            f
        })
        .collect();
    let mut out = vec![0f32; d * h * w];
    for c in 0..npf {
        for i in 0..h {
            for j in 0..w {
                out[(c * h + i) * w + j] = ys[i][c];
                out[((npf + c) * h + i) * w + j] = xs[j][c];
            }
        }
    }
    out
}

/// The position map as a `(1, d, h, w)` tensor on `device` (broadcast it over the batch).
pub fn sine_pos_2d(h: usize, w: usize, cfg: &PositionEncodingConfig, device: &Device) -> Tensor<4> {
    let d = cfg.num_pos_feats;
    Tensor::from_data(TensorData::new(sine_pos_2d_data(h, w, cfg), [1, d, h, w]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-derived: d=4 (2 features per axis), h=w=1 → y = x = 1/(1+1e-6)·2π,
    /// dim_t = [1, 1] → channels [sin y, cos y, sin x, cos x].
    #[test]
    fn one_pixel_map_by_hand() {
        let cfg = PositionEncodingConfig { num_pos_feats: 4, temperature: 10000.0, normalize: true, scale: std::f64::consts::TAU };
        let v = sine_pos_2d_data(1, 1, &cfg);
        let a = (1.0f64 / (1.0 + 1e-6) * std::f64::consts::TAU) as f32;
        let want = [a.sin(), a.cos(), a.sin(), a.cos()];
        for (g, w) in v.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{v:?}");
        }
        // dim_t for npf=4: T^0, T^0, T^(2/4), T^(2/4)
        let dt = sine_dim_t(4, 10000.0);
        assert_eq!(dt[0], 1.0);
        assert!((dt[2] - 100.0).abs() < 1e-3 && dt[2] == dt[3]);
    }
}
