//! Image input exactly like the reference processor: torchvision v2 `Resize((S, S))` (bilinear,
//! antialias=True, no aspect preservation) on the uint8 image, then `/255` and `(x − 0.5) / 0.5`.
//!
//! torch resizes uint8 images with its own separable antialiased kernel (the same filter as PIL:
//! a triangle whose support grows with the downscale factor, weights normalised per output pixel),
//! with the weights quantised to int16 at a precision chosen from the largest weight, integer
//! accumulation with rounding, and a uint8 intermediate between the horizontal pass (first) and the
//! vertical pass. [`resize_bilinear_aa_u8`] reproduces that bit for bit, which is what makes
//! `pixel_values` match the reference to float rounding.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::TensorData;
use image::RgbImage;

use crate::ModelError;

/// Read a PNG/JPEG file as 8-bit RGB (alpha dropped, grey expanded).
pub fn load_image(path: &Path) -> Result<RgbImage, ModelError> {
    let err = |why: String| ModelError::Image { path: path.display().to_string(), why };
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let fmt = image::guess_format(&bytes)
        .map_err(|_| err("not a PNG or JPEG image (unrecognised file signature)".into()))?;
    let img = image::load_from_memory_with_format(&bytes, fmt).map_err(|e| err(format!("cannot decode {fmt:?}: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(err("image has zero size".into()));
    }
    Ok(img.to_rgb8())
}

/// One axis of the antialiased bilinear resize: for each output index, the first input index and
/// int16 weights; plus the fixed-point precision (bits).
struct AxisWeights {
    start: Vec<usize>,
    weights: Vec<Vec<i32>>,
    precision: u32,
}

fn axis_weights(in_size: usize, out_size: usize) -> AxisWeights {
    let scale = in_size as f64 / out_size as f64;
    let support = if scale >= 1.0 { scale } else { 1.0 }; // bilinear: interp_size/2 = 1
    let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    let mut start = Vec::with_capacity(out_size);
    let mut wf: Vec<Vec<f64>> = Vec::with_capacity(out_size);
    for i in 0..out_size {
        let center = scale * (i as f64 + 0.5);
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let mut w: Vec<f64> = (xmin..xmax)
            .map(|j| {
                let x = (j as f64 - center + 0.5) * invscale;
                (1.0 - x.abs()).max(0.0)
            })
            .collect();
        let total: f64 = w.iter().sum();
        if total != 0.0 {
            w.iter_mut().for_each(|v| *v /= total);
        }
        start.push(xmin);
        wf.push(w);
    }
    let wmax = wf.iter().flatten().cloned().fold(f64::MIN, f64::max);
    let mut precision = 0u32;
    while precision < 22 {
        let next = (0.5 + wmax * (1u64 << (precision + 1)) as f64) as i64;
        if next >= (1 << 15) {
            break;
        }
        precision += 1;
    }
    let weights = wf
        .iter()
        .map(|w| {
            w.iter()
                .map(|v| {
                    let v = v * (1u64 << precision) as f64;
                    if v < 0.0 { (-0.5 + v) as i32 } else { (0.5 + v) as i32 }
                })
                .collect()
        })
        .collect();
    AxisWeights { start, weights, precision }
}

fn clip_u8(sum: i64, precision: u32) -> u8 {
    (sum >> precision).clamp(0, 255) as u8
}

/// torch/torchvision antialiased bilinear resize of an interleaved RGB uint8 image.
pub fn resize_bilinear_aa_u8(src: &[u8], (in_h, in_w): (usize, usize), (out_h, out_w): (usize, usize)) -> Vec<u8> {
    const C: usize = 3;
    // horizontal pass (only when the width changes)
    let (tmp, tw) = if out_w != in_w {
        let ax = axis_weights(in_w, out_w);
        let half = 1i64 << (ax.precision - 1);
        let mut tmp = vec![0u8; in_h * out_w * C];
        for y in 0..in_h {
            for x in 0..out_w {
                for ch in 0..C {
                    let mut s = half;
                    for (k, w) in ax.weights[x].iter().enumerate() {
                        s += *w as i64 * src[(y * in_w + ax.start[x] + k) * C + ch] as i64;
                    }
                    tmp[(y * out_w + x) * C + ch] = clip_u8(s, ax.precision);
                }
            }
        }
        (tmp, out_w)
    } else {
        (src.to_vec(), in_w)
    };
    if out_h == in_h {
        return tmp;
    }
    let ax = axis_weights(in_h, out_h);
    let half = 1i64 << (ax.precision - 1);
    let mut out = vec![0u8; out_h * tw * C];
    for y in 0..out_h {
        for x in 0..tw {
            for ch in 0..C {
                let mut s = half;
                for (k, w) in ax.weights[y].iter().enumerate() {
                    s += *w as i64 * tmp[((ax.start[y] + k) * tw + x) * C + ch] as i64;
                }
                out[(y * tw + x) * C + ch] = clip_u8(s, ax.precision);
            }
        }
    }
    out
}

/// Resized and normalised pixel values `(3, S, S)` in channel-first order, as host floats.
pub fn preprocess_data(img: &RgbImage, resolution: usize) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let resized = resize_bilinear_aa_u8(img.as_raw(), (h, w), (resolution, resolution));
    let n = resolution * resolution;
    let mut out = vec![0f32; 3 * n];
    for (p, px) in resized.chunks_exact(3).enumerate() {
        for ch in 0..3 {
            // ToDtype(float32, scale=True) then Normalize(0.5, 0.5), in the reference's order.
            let v = px[ch] as f32 * (1.0f32 / 255.0);
            out[ch * n + p] = (v - 0.5) / 0.5;
        }
    }
    out
}

/// `(1, 3, S, S)` pixel values on `device`, ready for the trunk.
pub fn preprocess(img: &RgbImage, resolution: usize, device: &Device) -> Tensor<4> {
    let data = preprocess_data(img, resolution);
    Tensor::from_data(TensorData::new(data, [1, 3, resolution, resolution]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Identity size is a copy; a 2× downscale of a constant stays constant; 2 → 1 averages with
    /// rounding half up: (10 + 21) / 2 = 15.5 → 16.
    #[test]
    fn small_cases_by_hand() {
        let src: Vec<u8> = (0..2 * 2 * 3).map(|i| i as u8).collect();
        assert_eq!(resize_bilinear_aa_u8(&src, (2, 2), (2, 2)), src);
        let flat = vec![77u8; 4 * 4 * 3];
        assert!(resize_bilinear_aa_u8(&flat, (4, 4), (2, 2)).iter().all(|&v| v == 77));
        let row = vec![10u8, 10, 10, 21, 21, 21];
        assert_eq!(resize_bilinear_aa_u8(&row, (1, 2), (1, 1)), vec![16, 16, 16]);
    }
}
