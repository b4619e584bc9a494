//! Post-processing like the reference `Sam3Processor._forward_grounding`.
//!
//! `score = σ(pred_logits)·σ(presence_logit)`; keep queries with `score > threshold` (default 0.5, the
//! reference processor's; HF uses 0.3); boxes cxcywh → xyxy × (W, H, W, H) of the ORIGINAL image;
//! masks: bilinear resize of the mask LOGITS (align_corners=False) to the original size, then σ, then
//! `> 0.5`. Only kept masks are resized (a full-size image × 200 queries would be gigabytes); the raw
//! per-query tensors ([`boxes_xyxy_px`], [`mask_probs`]) are available for parity checks.

use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Int, TensorData};

use crate::ModelError;
use crate::decoder::cxcywh_to_xyxy;
use crate::heads::GroundingOutput;

/// The reference processor's default confidence threshold.
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// A binary mask at the original image size, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Mask {
    pub height: usize,
    pub width: usize,
    pub data: Vec<bool>,
}

impl Mask {
    pub fn area(&self) -> usize {
        self.data.iter().filter(|&&b| b).count()
    }

    pub fn get(&self, y: usize, x: usize) -> bool {
        self.data[y * self.width + x]
    }
}

/// One kept query.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Detection {
    /// Query index (0..num_queries) in the decoder.
    pub query: usize,
    /// σ(logit)·σ(presence).
    pub score: f32,
    /// `[x0, y0, x1, y1]` in original-image pixels.
    pub box_xyxy: [f32; 4],
    /// Foreground pixels of the mask.
    pub mask_area: usize,
    #[serde(skip)]
    pub mask: Mask,
}

/// Everything kept for one image.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Detections {
    /// `(height, width)` of the original image.
    pub image_hw: (usize, usize),
    pub threshold: f32,
    pub presence_logit: f32,
    /// σ(presence_logit).
    pub presence_prob: f32,
    pub detections: Vec<Detection>,
}

/// `(B, Q, 4)` boxes xyxy in original pixels (`pred_boxes` → xyxy × (W, H, W, H)).
pub fn boxes_xyxy_px(out: &GroundingOutput, (h, w): (usize, usize)) -> Tensor<3> {
    let device = out.pred_boxes.device();
    let scale = Tensor::<1>::from_data(
        TensorData::new(vec![w as f32, h as f32, w as f32, h as f32], [4]),
        &device,
    );
    cxcywh_to_xyxy(out.pred_boxes.clone()) * scale.reshape([1, 1, 4])
}

/// `(B, Q, h, w)` mask probabilities: σ(bilinear(logits, (h, w), align_corners=False)).
pub fn mask_probs(mask_logits: Tensor<4>, (h, w): (usize, usize)) -> Tensor<4> {
    sigmoid(interpolate(
        mask_logits,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size([h, w]),
    ))
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 tensor data")
}

/// Post-process a batch-1 output for an original image of `(height, width)`.
pub fn postprocess(out: &GroundingOutput, image_hw: (usize, usize), threshold: f32) -> Result<Detections, ModelError> {
    let b = out.scores.dims()[0];
    if b != 1 {
        return Err(ModelError::Prompt(format!(
            "postprocess takes a batch of 1 (got {b}); use postprocess_batch"
        )));
    }
    Ok(postprocess_batch(out, &[image_hw], threshold)?.remove(0))
}

/// Post-process every batch element; `image_hw[i]` is the original size of image `i`.
pub fn postprocess_batch(
    out: &GroundingOutput,
    image_hw: &[(usize, usize)],
    threshold: f32,
) -> Result<Vec<Detections>, ModelError> {
    let [b, q] = out.scores.dims();
    if image_hw.len() != b {
        return Err(ModelError::Prompt(format!(
            "{} image sizes for a batch of {b}",
            image_hw.len()
        )));
    }
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ModelError::Prompt(format!("threshold {threshold} is not in [0, 1]")));
    }
    let scores = to_vec(out.scores.clone());
    let presence = to_vec(out.presence_logit.clone());
    let device = out.scores.device();
    let mut all = Vec::with_capacity(b);
    for (bi, &(h, w)) in image_hw.iter().enumerate() {
        let keep: Vec<usize> = (0..q).filter(|&k| scores[bi * q + k] > threshold).collect();
        let boxes = to_vec(boxes_xyxy_px(out, (h, w)).slice([bi..bi + 1]));
        let mut dets = Vec::with_capacity(keep.len());
        if !keep.is_empty() {
            let [_, _, mh, mw] = out.pred_masks.dims();
            let idx = Tensor::<1, Int>::from_data(
                TensorData::new(keep.iter().map(|&k| k as i64).collect::<Vec<_>>(), [keep.len()]),
                &device,
            );
            let logits = out
                .pred_masks
                .clone()
                .slice([bi..bi + 1])
                .reshape([q, mh, mw])
                .select(0, idx);
            let probs = mask_probs(logits.reshape([keep.len(), 1, mh, mw]), (h, w));
            let probs = to_vec(probs);
            for (j, &k) in keep.iter().enumerate() {
                let data: Vec<bool> = probs[j * h * w..(j + 1) * h * w].iter().map(|&p| p > 0.5).collect();
                let mask = Mask {
                    height: h,
                    width: w,
                    data,
                };
                dets.push(Detection {
                    query: k,
                    score: scores[bi * q + k],
                    box_xyxy: [boxes[k * 4], boxes[k * 4 + 1], boxes[k * 4 + 2], boxes[k * 4 + 3]],
                    mask_area: mask.area(),
                    mask,
                });
            }
        }
        let pl = presence[bi];
        all.push(Detections {
            image_hw: (h, w),
            threshold,
            presence_logit: pl,
            presence_prob: 1.0 / (1.0 + (-pl).exp()),
            detections: dets,
        });
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t<const D: usize>(v: Vec<f32>, s: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(v, s), &Device::flex())
    }

    /// Two queries: q0 (logit 2, box centred, mask logits +2) is kept; q1 (logit 0 → score σ(0)·σ(10) <
    /// 0.5) is not. Hand-derived box in pixels for a 10×20 (h×w) image.
    #[test]
    fn keeps_above_threshold_and_maps_to_pixels() {
        let pred_logits = t(vec![2.0, 0.0], [1, 2, 1]);
        let presence_logit = t(vec![10.0], [1, 1]);
        let scores = sigmoid(pred_logits.clone().reshape([1, 2])) * sigmoid(presence_logit.clone());
        let pred_boxes = t(vec![0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1], [1, 2, 4]);
        let mut m = vec![2.0f32; 4];
        m.extend([-2.0f32; 4]);
        let out = GroundingOutput {
            pred_logits,
            pred_boxes_xyxy: cxcywh_to_xyxy(pred_boxes.clone()),
            pred_boxes,
            pred_masks: t(m, [1, 2, 2, 2]),
            semantic_seg: t(vec![0.0; 4], [1, 1, 2, 2]),
            presence_logit,
            scores,
        };
        let d = postprocess(&out, (10, 20), 0.5).unwrap();
        assert_eq!(d.detections.len(), 1);
        let k = &d.detections[0];
        assert_eq!(k.query, 0);
        let want = 1.0 / (1.0 + (-2f32).exp()) / (1.0 + (-10f32).exp());
        assert!((k.score - want).abs() < 1e-6);
        assert_eq!(k.box_xyxy, [5.0, 2.5, 15.0, 7.5]);
        assert_eq!((k.mask.height, k.mask.width, k.mask_area), (10, 20, 200));
        assert!((d.presence_prob - 1.0 / (1.0 + (-10f32).exp())).abs() < 1e-6);
        // threshold 0 keeps both; the second mask is empty
        let d = postprocess(&out, (10, 20), 0.0).unwrap();
        assert_eq!(
            d.detections.iter().map(|x| x.mask_area).collect::<Vec<_>>(),
            vec![200, 0]
        );
        assert!(postprocess(&out, (10, 20), 1.5).is_err());
    }
}
