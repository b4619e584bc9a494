//! The geometry encoder (`geometry_encoder`, reference `SequenceGeometryEncoder`): box prompts →
//! prompt tokens, plus the CLS token that is always there (a text-only prompt still runs it and gets
//! one token).
//!
//! A box (cx, cy, w, h in [0,1], normalised to the resized square image) becomes
//! `label_embed[label] + boxes_direct_project(box) + boxes_pool_project(roi_align(img_pre_norm(L2), box, 7))
//! + boxes_pos_enc_project([sine(cy), sine(cx), h, w])`. The sequence `[boxes…, CLS]` goes through
//! `final_proj` + `norm`, then the pre-norm layers (`encode.{i}`: self-attention with the token mask,
//! cross-attention to the RAW 1× image features with their position on the keys, FFN) and `encode_norm`.
//!
//! ROI-align follows `torchvision.ops.roi_align(feats, boxes, 7)` with its defaults: `spatial_scale=1`
//! (boxes are given in feature-map cells), `sampling_ratio=-1` (⌈roi/7⌉ samples per bin and axis) and
//! `aligned=False` (no half-pixel shift; rois narrower than one cell are widened to one). It is written
//! as a `(49, HW)` weight matrix per box applied with one matmul, so it runs on any device and is
//! differentiable. Point prompts are not supported (the reference's grounding path ignores them too):
//! they are rejected with an error, never silently dropped.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::{Bool, Int, TensorData};
use sam3lab_hooks::Hooks;

use crate::fusion::{EncoderLayer, LayerInputs};
use crate::nn::box_embed::encode_boxes;
use crate::nn::{DropRate, layer_norm, linear};
use crate::{ModelError, Sam3Config};

/// One box prompt: centre x, centre y, width, height normalised to [0,1] of the (squashed) model
/// input; `positive = false` marks a negative (exclusion) box.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoxPrompt {
    pub cxcywh: [f32; 4],
    pub positive: bool,
}

impl BoxPrompt {
    pub fn positive(cxcywh: [f32; 4]) -> Self {
        Self { cxcywh, positive: true }
    }

    /// Every coordinate finite and in [0,1], width and height > 0.
    pub fn validate(&self) -> Result<(), ModelError> {
        let [cx, cy, w, h] = self.cxcywh;
        let bad = self.cxcywh.iter().any(|v| !v.is_finite() || !(0.0..=1.0).contains(v));
        if bad || w <= 0.0 || h <= 0.0 {
            return Err(ModelError::Prompt(format!(
                "box (cx, cy, w, h) = ({cx}, {cy}, {w}, {h}) is invalid: every value must be in [0, 1] \
                 (normalised to the image) and w, h > 0"
            )));
        }
        Ok(())
    }
}

/// A point prompt (x, y in [0,1]). Accepted by the API only to be refused with a clear error: the
/// image grounding path of SAM3 does not use points (the reference prints "Point prompts are ignored
/// in PCS").
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PointPrompt {
    pub xy: [f32; 2],
    pub positive: bool,
}

/// All geometric prompts of one grounding call (applied to every image of the batch).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GeometryPrompt {
    pub boxes: Vec<BoxPrompt>,
    pub points: Vec<PointPrompt>,
}

impl GeometryPrompt {
    pub fn boxes(boxes: &[BoxPrompt]) -> Self {
        Self {
            boxes: boxes.to_vec(),
            points: Vec::new(),
        }
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        if !self.points.is_empty() {
            return Err(ModelError::Prompt(format!(
                "{} point prompt(s) given, but SAM3's image grounding path does not support point prompts \
                 (the reference ignores them: \"Point prompts are ignored in PCS\"); use a box prompt instead",
                self.points.len()
            )));
        }
        self.boxes.iter().try_for_each(BoxPrompt::validate)
    }
}

/// `geometry_encoder.*` under torch names. The point projections exist only so that the checkpoint
/// loads (the grounding path never uses them).
#[derive(Module, Debug)]
pub struct GeometryEncoder {
    pub label_embed: Embedding,
    pub cls_embed: Embedding,
    pub points_direct_project: Linear,
    pub points_pool_project: Linear,
    pub points_pos_enc_project: Linear,
    pub boxes_direct_project: Linear,
    pub boxes_pool_project: Conv2d,
    pub boxes_pos_enc_project: Linear,
    pub final_proj: Linear,
    pub norm: LayerNorm,
    pub img_pre_norm: LayerNorm,
    pub encode: Vec<EncoderLayer>,
    pub encode_norm: LayerNorm,
}

impl GeometryEncoder {
    pub fn new(cfg: &Sam3Config, device: &Device) -> Self {
        let d = cfg.d_model;
        let g = &cfg.geometry;
        let r = g.roi_size;
        Self {
            label_embed: EmbeddingConfig::new(2, d).init(device),
            cls_embed: EmbeddingConfig::new(1, d).init(device),
            points_direct_project: linear(2, d, device),
            points_pool_project: linear(d, d, device),
            points_pos_enc_project: linear(d, d, device),
            boxes_direct_project: linear(4, d, device),
            boxes_pool_project: Conv2dConfig::new([d, d], [r, r]).init(device),
            boxes_pos_enc_project: linear(d + 2, d, device),
            final_proj: linear(d, d, device),
            norm: layer_norm(d, device),
            img_pre_norm: layer_norm(d, device),
            encode: (0..g.num_layers)
                .map(|_| EncoderLayer::new(d, g.num_heads, g.dim_feedforward, device))
                .collect(),
            encode_norm: layer_norm(d, device),
        }
    }

    /// Encode the geometric prompt against the 1× image level.
    ///
    /// `img` `(B, HW, d)` are the raw 1× features (row-major over `hw = (h, w)`), `pos` their sine map.
    /// Returns the tokens `(B, S, d)` with `S = boxes + 1` and their padding mask `(B, S)` (all valid:
    /// every image gets the same prompt). `drop` is the train-mode dropout of the encoder layers
    /// ([`DropRate::OFF`] in eval mode).
    pub fn forward(
        &self,
        prompt: &GeometryPrompt,
        img: &Tensor<3>,
        pos: &Tensor<3>,
        hw: (usize, usize),
        cfg: &Sam3Config,
        drop: DropRate,
        hooks: &mut Hooks,
    ) -> Result<(Tensor<3>, Tensor<2, Bool>), ModelError> {
        prompt.validate()?;
        let [b, _, d] = img.dims();
        let device = img.device();
        let cls = self.cls_embed.weight.val().reshape([1, 1, d]).expand([b, 1, d]);
        let embeds = if prompt.boxes.is_empty() {
            cls
        } else {
            Tensor::cat(vec![self.encode_boxes(&prompt.boxes, img, hw, cfg), cls], 1)
        };
        let s = embeds.dims()[1];
        let mask = Tensor::<2, Bool>::from_data(TensorData::new(vec![false; b * s], [b, s]), &device);

        let x = self.norm.forward(self.final_proj.forward(embeds));
        let mut x = hooks.tap(|| point!("geometry.tokens_in"), x);
        // No padding anywhere (same prompt for every image): the masks would not change a value.
        let inp = LayerInputs {
            self_pos: None,
            self_kpm: None,
            memory: img,
            memory_pos: Some(pos),
            memory_kpm: None,
        };
        for (i, layer) in self.encode.iter().enumerate() {
            x = layer.forward(&crate::nn::hook_name(hooks, || point!(prefix "geometry.layers.{i}", i)), x, &inp, drop, hooks);
            x = hooks.tap(|| point!("geometry.layers.{i}", i), x);
        }
        let x = hooks.tap(|| point!("geometry.out"), self.encode_norm.forward(x));
        let mask = crate::heads::tap_mask(hooks, &point!("geometry.padding_mask"), mask);
        Ok((x, mask))
    }

    /// `(B, n, d)` box embeddings (before `final_proj`).
    fn encode_boxes(
        &self,
        boxes: &[BoxPrompt],
        img: &Tensor<3>,
        (h, w): (usize, usize),
        cfg: &Sam3Config,
    ) -> Tensor<3> {
        let [b, hw, d] = img.dims();
        let n = boxes.len();
        let device = img.device();
        let flat: Vec<f32> = boxes.iter().flat_map(|bx| bx.cxcywh).collect();
        let bt = Tensor::<3>::from_data(TensorData::new(flat, [1, n, 4]), &device).expand([b, n, 4]);

        let direct = self.boxes_direct_project.forward(bt.clone());

        // ROI-align on the pre-normed image, then the 7×7 "conv" that reduces each ROI to one vector.
        let r = cfg.geometry.roi_size;
        let feats = self.img_pre_norm.forward(img.clone()); // (B, HW, d)
        let weights: Vec<f32> = boxes
            .iter()
            .flat_map(|bx| {
                let [cx, cy, bw, bh] = bx.cxcywh;
                // box_cxcywh_to_xyxy, then × (W, H, W, H) in f32 like the reference.
                let xyxy = [
                    (cx - 0.5 * bw) * w as f32,
                    (cy - 0.5 * bh) * h as f32,
                    (cx + 0.5 * bw) * w as f32,
                    (cy + 0.5 * bh) * h as f32,
                ];
                roi_align_weights(xyxy, h, w, r)
            })
            .collect();
        let wm = Tensor::<3>::from_data(TensorData::new(weights, [n, r * r, hw]), &device)
            .unsqueeze_dim::<4>(0)
            .expand([b, n, r * r, hw]);
        let pooled = wm.matmul(feats.unsqueeze_dim::<4>(1).expand([b, n, hw, d])); // (B, n, r², d)
        let pooled = pooled.swap_dims(2, 3).reshape([b * n, d, r, r]);
        let pool = self.boxes_pool_project.forward(pooled).reshape([b, n, d]);

        let pos = self
            .boxes_pos_enc_project
            .forward(encode_boxes(bt, &cfg.position_encoding));

        let labels: Vec<i64> = boxes.iter().map(|bx| i64::from(bx.positive)).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &device);
        let label = self
            .label_embed
            .weight
            .val()
            .select(0, idx)
            .reshape([1, n, d])
            .expand([b, n, d]);

        label + direct + pool + pos
    }
}

/// torchvision `roi_align(aligned=False, spatial_scale=1, sampling_ratio=-1)` of one box
/// `[x0, y0, x1, y1]` (feature-map cells) over an `h × w` map, as weights `(r·r, h·w)`: output bin
/// `(ph, pw)` = Σ weights · feature. Same f32 arithmetic as the torchvision CPU kernel.
pub fn roi_align_weights(xyxy: [f32; 4], h: usize, w: usize, r: usize) -> Vec<f32> {
    let [x0, y0, x1, y1] = xyxy;
    let roi_w = (x1 - x0).max(1.0);
    let roi_h = (y1 - y0).max(1.0);
    let bin_h = roi_h / r as f32;
    let bin_w = roi_w / r as f32;
    let grid_h = (roi_h / r as f32).ceil().max(1.0) as usize;
    let grid_w = (roi_w / r as f32).ceil().max(1.0) as usize;
    let count = (grid_h * grid_w).max(1) as f32;
    let mut out = vec![0f32; r * r * h * w];
    for ph in 0..r {
        for pw in 0..r {
            let row = &mut out[(ph * r + pw) * h * w..(ph * r + pw + 1) * h * w];
            for iy in 0..grid_h {
                let y = y0 + ph as f32 * bin_h + (iy as f32 + 0.5) * bin_h / grid_h as f32;
                for ix in 0..grid_w {
                    let x = x0 + pw as f32 * bin_w + (ix as f32 + 0.5) * bin_w / grid_w as f32;
                    for (idx, wt) in bilinear_taps(y, x, h, w) {
                        row[idx] += wt / count;
                    }
                }
            }
        }
    }
    out
}

/// The four (index, weight) taps of torchvision's `bilinear_interpolate` (zero outside [-1, size]).
fn bilinear_taps(mut y: f32, mut x: f32, h: usize, w: usize) -> Vec<(usize, f32)> {
    if y < -1.0 || y > h as f32 || x < -1.0 || x > w as f32 {
        return Vec::new();
    }
    y = y.max(0.0);
    x = x.max(0.0);
    let (mut y_low, mut x_low) = (y as usize, x as usize);
    let (y_high, x_high);
    if y_low >= h - 1 {
        y_low = h - 1;
        y_high = h - 1;
        y = y_low as f32;
    } else {
        y_high = y_low + 1;
    }
    if x_low >= w - 1 {
        x_low = w - 1;
        x_high = w - 1;
        x = x_low as f32;
    } else {
        x_high = x_low + 1;
    }
    let (ly, lx) = (y - y_low as f32, x - x_low as f32);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    vec![
        (y_low * w + x_low, hy * hx),
        (y_low * w + x_high, hy * lx),
        (y_high * w + x_low, ly * hx),
        (y_high * w + x_high, ly * lx),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct per-sample evaluation of roi_align (independent of the weight-matrix formulation).
    fn roi_align_direct(feat: &[f32], h: usize, w: usize, xyxy: [f32; 4], r: usize) -> Vec<f32> {
        let at = |yy: usize, xx: usize| feat[yy * w + xx] as f64;
        let [x0, y0, x1, y1] = xyxy.map(|v| v as f64);
        let (rw, rh) = ((x1 - x0).max(1.0), (y1 - y0).max(1.0));
        let (gh, gw) = ((rh / r as f64).ceil() as usize, (rw / r as f64).ceil() as usize);
        let mut out = vec![];
        for ph in 0..r {
            for pw in 0..r {
                let mut acc = 0.0;
                for iy in 0..gh {
                    for ix in 0..gw {
                        let y = y0 + (ph as f64 + (iy as f64 + 0.5) / gh as f64) * rh / r as f64;
                        let x = x0 + (pw as f64 + (ix as f64 + 0.5) / gw as f64) * rw / r as f64;
                        if y < -1.0 || y > h as f64 || x < -1.0 || x > w as f64 {
                            continue;
                        }
                        let (y, x) = (y.clamp(0.0, (h - 1) as f64), x.clamp(0.0, (w - 1) as f64));
                        let (yl, xl) = (y.floor() as usize, x.floor() as usize);
                        let (yh, xh) = ((yl + 1).min(h - 1), (xl + 1).min(w - 1));
                        let (ly, lx) = (y - yl as f64, x - xl as f64);
                        acc += (1.0 - ly) * (1.0 - lx) * at(yl, xl)
                            + (1.0 - ly) * lx * at(yl, xh)
                            + ly * (1.0 - lx) * at(yh, xl)
                            + ly * lx * at(yh, xh);
                    }
                }
                out.push((acc / (gh * gw) as f64) as f32);
            }
        }
        out
    }

    #[test]
    fn roi_weights_match_direct_sampling() {
        let (h, w) = (9, 13);
        let feat: Vec<f32> = (0..h * w).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        // A large box (2 samples per bin), a small one (< 1 cell, widened), one hanging off the edge.
        for xyxy in [
            [0.5, 1.0, 12.9, 8.7],
            [3.2, 4.1, 3.6, 4.3],
            [-0.8, 6.0, 14.5, 9.6],
            [2.4, 2.8, 4.8, 6.0],
        ] {
            let r = 7;
            let wts = roi_align_weights(xyxy, h, w, r);
            let via_weights: Vec<f32> = (0..r * r)
                .map(|o| (0..h * w).map(|i| wts[o * h * w + i] * feat[i]).sum())
                .collect();
            let direct = roi_align_direct(&feat, h, w, xyxy, r);
            for (a, b) in via_weights.iter().zip(&direct) {
                assert!((a - b).abs() < 1e-5, "box {xyxy:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn constant_map_pools_to_constant_inside() {
        let (h, w) = (8, 8);
        let wts = roi_align_weights([1.0, 1.0, 6.0, 7.0], h, w, 7);
        for o in 0..49 {
            let s: f32 = wts[o * 64..(o + 1) * 64].iter().sum();
            assert!((s - 1.0).abs() < 1e-5, "bin {o} sums to {s}");
        }
    }

    #[test]
    fn prompts_are_validated() {
        assert!(BoxPrompt::positive([0.5, 0.5, 0.2, 0.2]).validate().is_ok());
        let e = BoxPrompt::positive([1.2, 0.5, 0.2, 0.2])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("[0, 1]"), "{e}");
        assert!(BoxPrompt::positive([0.5, 0.5, 0.0, 0.2]).validate().is_err());
        assert!(BoxPrompt::positive([0.5, f32::NAN, 0.1, 0.2]).validate().is_err());
        let p = GeometryPrompt {
            boxes: vec![],
            points: vec![PointPrompt {
                xy: [0.1, 0.2],
                positive: true,
            }],
        };
        let e = p.validate().unwrap_err().to_string();
        assert!(e.contains("point prompt"), "{e}");
    }
}
