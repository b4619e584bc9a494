//! Sine encodings of positions and boxes, as the reference computes them.
//!
//! Same formula as the image position maps ([`super::pos2d`]): channel pair (2m, 2m+1) of an axis
//! holds (sin, cos) of `coord · scale / dim_t[2m]` with `dim_t[k] = temperature^(2⌊k/2⌋ / n)` over `n`
//! features per axis. Two users:
//! - [`encode_boxes`]: `PositionEmbeddingSine.encode_boxes` → `[pos_y(cy), pos_x(cx), h, w]` (d + 2).
//! - [`gen_sineembed_for_position`]: the decoder's query sine embedding → `[y, x, w, h]` (4 · d/2),
//!   always with temperature 10000 and scale 2π (hard-coded in the reference).
//!
//! Everything is computed in f32 like the reference, dividing (not multiplying by a reciprocal) so
//! the values round the same way.

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::config::PositionEncodingConfig;

use super::pos2d::sine_dim_t as dim_t;

/// Sine features of already-scaled coordinates: `x` `(B, N, 1)` → `(B, N, n)` with
/// `[sin(x/dt0), cos(x/dt1), sin(x/dt2), …]` (dt_{2m} = dt_{2m+1}).
fn sine_features(x: Tensor<3>, dt: &[f32]) -> Tensor<3> {
    let device = x.device();
    let n = dt.len();
    let div = Tensor::<1>::from_data(TensorData::new(dt.to_vec(), [n]), &device).reshape([1, 1, n]);
    let v = x / div;
    let parity: Vec<f32> = (0..n).map(|k| if k % 2 == 0 { 1.0 } else { 0.0 }).collect();
    let even = Tensor::<1>::from_data(TensorData::new(parity, [n]), &device).reshape([1, 1, n]);
    let odd = even.clone().neg().add_scalar(1.0);
    v.clone().sin() * even + v.cos() * odd
}

/// Coordinate `c` (0..4) of `(B, N, 4)` as `(B, N, 1)`.
fn coord(x: &Tensor<3>, c: usize) -> Tensor<3> {
    let [b, n, _] = x.dims();
    x.clone().slice([0..b, 0..n, c..c + 1])
}

/// The decoder's `gen_sineembed_for_position(ref, d_model)`: `(B, Q, 4)` cxcywh in [0,1] →
/// `(B, Q, 2·d_model)` ordered `[y, x, w, h]`, `d_model/2` features each.
pub fn gen_sineembed_for_position(pos: Tensor<3>, d_model: usize) -> Tensor<3> {
    let dt = dim_t(d_model / 2, 10000.0);
    let scale = 2.0 * std::f32::consts::PI;
    let enc = |c: usize| sine_features(coord(&pos, c).mul_scalar(scale), &dt);
    Tensor::cat(vec![enc(1), enc(0), enc(2), enc(3)], 2)
}

/// `PositionEmbeddingSine.encode_boxes`: `(B, N, 4)` cxcywh in [0,1] → `(B, N, d+2)` =
/// `[pos_y(cy), pos_x(cx), h, w]` (note: h before w, raw, unscaled).
pub fn encode_boxes(boxes: Tensor<3>, pe: &PositionEncodingConfig) -> Tensor<3> {
    let dt = dim_t(pe.num_pos_feats / 2, pe.temperature);
    let scale = pe.scale as f32;
    let enc = |c: usize| sine_features(coord(&boxes, c).mul_scalar(scale), &dt);
    Tensor::cat(vec![enc(1), enc(0), coord(&boxes, 3), coord(&boxes, 2)], 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pe(d: usize) -> PositionEncodingConfig {
        PositionEncodingConfig {
            num_pos_feats: d,
            temperature: 10000.0,
            normalize: true,
            scale: 2.0 * std::f64::consts::PI,
        }
    }

    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn box_encoding_matches_hand_computation() {
        // d = 8 → 4 features per axis, dim_t = [1, 1, 100, 100].
        let dev = Device::flex();
        let b = Tensor::<3>::from_data(TensorData::new(vec![0.25f32, 0.5, 0.1, 0.2], [1, 1, 4]), &dev);
        let v = vals(encode_boxes(b, &pe(8)));
        let tau = 2.0 * std::f64::consts::PI;
        let (cx, cy) = (0.25 * tau, 0.5 * tau);
        let expect = [
            (cy).sin(),
            (cy).cos(),
            (cy / 100.0).sin(),
            (cy / 100.0).cos(),
            (cx).sin(),
            (cx).cos(),
            (cx / 100.0).sin(),
            (cx / 100.0).cos(),
            0.2,
            0.1,
        ];
        assert_eq!(v.len(), 10);
        for (a, e) in v.iter().zip(expect) {
            assert!((*a as f64 - e).abs() < 1e-6, "{v:?} vs {expect:?}");
        }
    }

    #[test]
    fn query_sine_order_is_y_x_w_h() {
        let dev = Device::flex();
        let b = Tensor::<3>::from_data(TensorData::new(vec![0.1f32, 0.2, 0.3, 0.4], [1, 1, 4]), &dev);
        let v = vals(gen_sineembed_for_position(b, 4)); // 2 feats per coord, dim_t = [1, 1]
        let tau = 2.0 * std::f64::consts::PI;
        let expect: Vec<f64> = [0.2, 0.1, 0.3, 0.4]
            .iter()
            .flat_map(|c: &f64| [(c * tau).sin(), (c * tau).cos()])
            .collect();
        for (a, e) in v.iter().zip(&expect) {
            assert!((*a as f64 - e).abs() < 1e-6, "{v:?} vs {expect:?}");
        }
    }
}
