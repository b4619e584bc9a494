//! Everything after the backbone — prompt assembly (text + geometry), fusion encoder, decoder,
//! scoring and segmentation head → [`GroundingOutput`] — as methods of the one pipeline type
//! [`Sam3`]: [`Sam3::ground_geometry`] (eval mode) and [`Sam3::ground_train`] (train mode).
//!
//! Grounding takes [`ImageFeatures`] (computed once per image) and [`TextFeatures`] (once per
//! phrase), so any number of prompts can be grounded against one encoded image, and a test can feed
//! a fixture's expected backbone outputs straight into the heads.

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::{Bool, Int, TensorData};
use burn::tensor::activation::sigmoid;
use sam3lab_hooks::Hooks;

use crate::decoder::{Decoder, DecoderInput, DecoderOutput, cxcywh_to_xyxy};
use crate::fusion::{FusionEncoder, FusionInput};
use crate::geometry::GeometryPrompt;
use crate::nn::DropRate;
use crate::sam3::Sam3;
use crate::{ModelError, Sam3Config};

/// Image features from the backbone: the neck levels and their sine position maps.
#[derive(Clone, Debug)]
pub struct ImageFeatures {
    /// `[4×, 2×, 1×]` levels, each `(B, d, h, w)`, finest first (reference `backbone_fpn`); the last
    /// one feeds the encoder and decoder, all of them the pixel decoder.
    pub fpn: Vec<Tensor<4>>,
    /// Sine position maps of the same levels (reference `vision_pos_enc`), batch 1 or B; only the 1×
    /// one is used.
    pub pos: Vec<Tensor<4>>,
}

impl ImageFeatures {
    pub fn batch(&self) -> usize {
        self.fpn[0].dims()[0]
    }

    /// The features of images `ids` (with repeats), in that order: one row per (image, prompt)
    /// query, as the reference's `_get_img_feats(backbone_out, img_ids)`. Differentiable.
    pub fn select(&self, ids: &[usize]) -> Self {
        let idx = index_tensor(ids, &self.fpn[0].device());
        let pick = |t: &Tensor<4>| {
            if t.dims()[0] == 1 && self.batch() != 1 {
                return t.clone(); // a batch-1 position map broadcasts
            }
            t.clone().select(0, idx.clone())
        };
        Self {
            fpn: self.fpn.iter().map(pick).collect(),
            pos: self.pos.iter().map(pick).collect(),
        }
    }
}

/// `ids` as a 1-D int tensor on `device` (for `select`).
pub fn index_tensor(ids: &[usize], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [ids.len()]), device)
}

impl TextFeatures {
    /// The features of phrases `ids` (with repeats), in that order. Differentiable.
    pub fn select(&self, ids: &[usize]) -> Self {
        let idx = index_tensor(ids, &self.feats.device());
        Self {
            feats: self.feats.clone().select(0, idx.clone()),
            // Through float: burn-flex 0.22.1's bool `select` returns a u8 tensor that `cat` rejects.
            padding_mask: self.padding_mask.clone().float().select(0, idx).greater_elem(0.5),
        }
    }
}

/// Text features from the language backbone.
#[derive(Clone, Debug)]
pub struct TextFeatures {
    /// `(B, L, d)` = `text.out` (resizer output) batch-first.
    pub feats: Tensor<3>,
    /// `(B, L)`, true = padding (token id 0).
    pub padding_mask: Tensor<2, Bool>,
}

/// Raw model outputs of one grounding call (batch-first; last decoder layer).
#[derive(Clone, Debug)]
pub struct GroundingOutput {
    /// `(B, Q, 1)` dot-product score logits (clamped ±12, presence NOT folded in).
    pub pred_logits: Tensor<3>,
    /// `(B, Q, 4)` cxcywh in [0,1] of the squashed model input.
    pub pred_boxes: Tensor<3>,
    /// `(B, Q, 4)` xyxy in [0,1].
    pub pred_boxes_xyxy: Tensor<3>,
    /// `(B, Q, H4, W4)` mask logits at 4× the token grid.
    pub pred_masks: Tensor<4>,
    /// `(B, 1, H4, W4)` semantic logits.
    pub semantic_seg: Tensor<4>,
    /// `(B, 1)` presence logit of the last layer (unclamped).
    pub presence_logit: Tensor<2>,
    /// `(B, Q)` = σ(pred_logits)·σ(presence_logit).
    pub scores: Tensor<2>,
}

/// `transformer` = fusion encoder + decoder, under torch names.
#[derive(Module, Debug)]
pub struct Transformer {
    pub encoder: FusionEncoder,
    pub decoder: Decoder,
}

impl Transformer {
    pub fn new(cfg: &Sam3Config, device: &Device) -> Self {
        Self {
            encoder: FusionEncoder::new(cfg, device),
            decoder: Decoder::new(cfg, device),
        }
    }
}

/// The prompt-conditioned state shared by eval and train mode: everything up to the decoder.
struct Decoded {
    memory: Tensor<3>,
    prompt: Tensor<3>,
    prompt_mask: Tensor<2, Bool>,
    dec: DecoderOutput,
    /// The projected pooled prompt for dot-product scoring.
    g: Tensor<2>,
}

/// One query set (o2o or o2m) of one decoder layer's train-mode outputs (batch-first).
#[derive(Clone, Debug)]
pub struct QuerySet {
    /// `(B, Q, 1)` score logits.
    pub pred_logits: Tensor<3>,
    /// `(B, Q, 4)` cxcywh.
    pub pred_boxes: Tensor<3>,
    /// `(B, Q, 4)` xyxy.
    pub pred_boxes_xyxy: Tensor<3>,
    /// `(B, Q, H4, W4)` mask logits: the last layer only (the reference has no auxiliary masks).
    pub pred_masks: Option<Tensor<4>>,
}

/// One decoder layer's train-mode outputs: the reference's `out` (last layer) or `aux_outputs[i]`.
#[derive(Clone, Debug)]
pub struct TrainLayerOutput {
    pub o2o: QuerySet,
    /// The one-to-many (DAC) half; no presence logit of its own.
    pub o2m: QuerySet,
    /// `(B, 1)` = `presence_logit_dec`.
    pub presence_logit: Tensor<2>,
}

/// Train-mode outputs: one entry per decoder layer, the last one being the final output.
#[derive(Clone, Debug)]
pub struct TrainOutput {
    pub layers: Vec<TrainLayerOutput>,
}

impl TrainOutput {
    /// The final output (`out` in the reference).
    pub fn last(&self) -> &TrainLayerOutput {
        self.layers.last().expect("at least one decoder layer")
    }
}

impl Sam3 {
    /// Prompt assembly, fusion encoder and decoder (`dac` = train mode: 2Q queries and the config's
    /// dropout rates).
    fn decode(
        &self,
        image: &ImageFeatures,
        text: &TextFeatures,
        geometry: &GeometryPrompt,
        dac: bool,
        hooks: &mut Hooks,
    ) -> Result<Decoded, ModelError> {
        geometry.validate()?;
        let cfg = &self.config;
        let levels = image.fpn.len();
        let convs = self.segmentation_head.pixel_decoder.conv_layers.len();
        if levels == 0 || image.pos.len() != levels || levels - 1 > convs {
            return Err(ModelError::Prompt(format!(
                "image features: {levels} levels with {} position maps; the pixel decoder takes 1 to {} levels \
                 with one map each",
                image.pos.len(),
                convs + 1
            )));
        }
        let top = levels - 1; // the 1× level: fusion, geometry and decoder use it alone
        let [b, d, h, w] = image.fpn[top].dims();
        let [bt, _, dt] = text.feats.dims();
        if bt != b || dt != d || d != cfg.d_model {
            return Err(ModelError::Prompt(format!(
                "batch/width mismatch: image features (B={b}, d={d}), text features (B={bt}, d={dt}), config d_model {}",
                cfg.d_model
            )));
        }
        // Seq-flatten the 1× level and its position map: (B, d, h, w) → (B, HW, d), row-major.
        // The position map may come with batch 1 (it does not depend on the image): broadcast it.
        let img = image.fpn[top].clone().reshape([b, d, h * w]).swap_dims(1, 2);
        let pos = image.pos[top]
            .clone()
            .expand([b, d, h, w])
            .reshape([b, d, h * w])
            .swap_dims(1, 2);
        let pos = hooks.tap(|| point!("fusion.pos_embed"), pos);
        // Train mode's dropout (acting only on an autodiff device); eval mode has none.
        let rate = |p: f64| if dac { DropRate::new(p) } else { DropRate::OFF };

        // Prompt = [text (L), geometry (boxes…, CLS)].
        let (geo, geo_mask) = self
            .geometry_encoder
            .forward(geometry, &img, &pos, (h, w), cfg, rate(cfg.geometry.dropout), hooks)?;
        let prompt = hooks.tap(|| point!("prompt.feats"), Tensor::cat(vec![text.feats.clone(), geo], 1));
        let prompt_mask = tap_mask(
            hooks,
            &point!("prompt.padding_mask"),
            Tensor::cat(vec![text.padding_mask.clone(), geo_mask], 1),
        );

        let fusion = FusionInput { pos: &pos, prompt: &prompt, prompt_mask: &prompt_mask, dropout: rate(cfg.fusion.dropout) };
        let memory = self.transformer.encoder.forward(img, &fusion, hooks);
        let decoder = DecoderInput {
            memory: &memory,
            pos: &pos,
            hw: (h, w),
            prompt: &prompt,
            prompt_mask: &prompt_mask,
            dac,
            dropout: rate(cfg.decoder.dropout),
        };
        let dec = self.transformer.decoder.forward(&decoder, hooks);
        let g = self
            .dot_prod_scoring
            .prompt_vector_drop(&prompt, &prompt_mask, rate(cfg.scoring.dropout), hooks);
        Ok(Decoded {
            memory,
            prompt,
            prompt_mask,
            dec,
            g,
        })
    }

    /// Ground one prompt (text + geometry) against encoded image features. Batch sizes of image and
    /// text must agree; the geometric prompt applies to every batch element. Point prompts are
    /// rejected with an error.
    pub fn ground_geometry(
        &self,
        image: &ImageFeatures,
        text: &TextFeatures,
        geometry: &GeometryPrompt,
        hooks: &mut Hooks,
    ) -> Result<GroundingOutput, ModelError> {
        let Decoded {
            memory,
            prompt,
            prompt_mask,
            dec,
            g,
        } = self.decode(image, text, geometry, false, hooks)?;
        let b = memory.dims()[0];
        let n = dec.hs.len();
        let mut pred_logits = None;
        for (i, hs) in dec.hs.iter().enumerate() {
            // Only the last layer's logits feed the outputs; earlier ones only when a hook wants them.
            if i + 1 == n || (hooks.is_active() && hooks.wants(&point!("decoder.layers.{i}.pred_logits", i))) {
                let l = self.dot_prod_scoring.logits(hs.clone(), &g);
                let l = hooks.tap(|| point!("decoder.layers.{i}.pred_logits", i), l);
                if i + 1 == n {
                    pred_logits = Some(l);
                }
            }
        }
        let pred_logits = hooks.tap(
            || point!("pred_logits"),
            pred_logits.expect("at least one decoder layer"),
        );
        let pred_boxes = hooks.tap(|| point!("pred_boxes"), dec.pred_boxes[n - 1].clone());
        let pred_boxes_xyxy = hooks.tap(|| point!("pred_boxes_xyxy"), cxcywh_to_xyxy(pred_boxes.clone()));
        let presence_logit = hooks.tap(|| point!("presence_logit"), dec.presence_logits[n - 1].clone());

        let hs_last = dec.hs[n - 1].clone();
        drop(dec);
        let seg = self
            .segmentation_head
            .forward(&image.fpn, &memory, &prompt, &prompt_mask, hs_last, hooks);
        let pred_masks = hooks.tap(|| point!("pred_masks"), seg.pred_masks);
        let semantic_seg = hooks.tap(|| point!("semantic_seg"), seg.semantic_seg);

        let [_, q, _] = pred_logits.dims();
        let scores = sigmoid(pred_logits.clone().reshape([b, q])) * sigmoid(presence_logit.clone());
        let scores = hooks.tap(|| point!("scores"), scores);
        if let Some(e) = hooks.take_error() {
            return Err(e.into());
        }
        Ok(GroundingOutput {
            pred_logits,
            pred_boxes,
            pred_boxes_xyxy,
            pred_masks,
            semantic_seg,
            presence_logit,
            scores,
        })
    }

    /// Train-mode grounding, as Meta's `Sam3Image` runs it with `self.training`: 2Q decoder queries
    /// (o2o + DAC o2m), every layer's outputs (the last = `out`, the others = `aux_outputs`), masks of
    /// all 2Q last-layer queries. With the config's train-mode dropout (`geometry`, `fusion`,
    /// `decoder`, `scoring` `.dropout`; 0 by default and in the parity fixture), drawn from burn's
    /// seeded generator and acting only on an autodiff device. The trunk's drop-path is
    /// [`Sam3::encode_image_train`]'s.
    pub fn ground_train(
        &self,
        image: &ImageFeatures,
        text: &TextFeatures,
        geometry: &GeometryPrompt,
        hooks: &mut Hooks,
    ) -> Result<TrainOutput, ModelError> {
        let Decoded {
            memory,
            prompt,
            prompt_mask,
            dec,
            g,
        } = self.decode(image, text, geometry, true, hooks)?;
        let n = dec.hs.len();
        let hs_last = dec.hs[n - 1].clone();
        let seg = self
            .segmentation_head
            .forward(&image.fpn, &memory, &prompt, &prompt_mask, hs_last, hooks);
        let [b, q2, h4, w4] = seg.pred_masks.dims();
        let q = q2 / 2;
        let mut layers = Vec::with_capacity(n);
        for (i, (hs, boxes)) in dec.hs.iter().zip(&dec.pred_boxes).enumerate() {
            let logits = self.dot_prod_scoring.logits(hs.clone(), &g);
            let xyxy = cxcywh_to_xyxy(boxes.clone());
            let half = |k: usize| {
                let r = k * q..(k + 1) * q;
                QuerySet {
                    pred_logits: logits.clone().slice([0..b, r.clone()]),
                    pred_boxes: boxes.clone().slice([0..b, r.clone()]),
                    pred_boxes_xyxy: xyxy.clone().slice([0..b, r.clone()]),
                    pred_masks: (i + 1 == n).then(|| seg.pred_masks.clone().slice([0..b, r, 0..h4, 0..w4])),
                }
            };
            layers.push(TrainLayerOutput {
                o2o: half(0),
                o2m: half(1),
                presence_logit: dec.presence_logits[i].clone(),
            });
        }
        if let Some(e) = hooks.take_error() {
            return Err(e.into());
        }
        Ok(TrainOutput { layers })
    }
}

/// Tap a boolean mask as float 0/1 (1 = padding); an edited value is thresholded back at 0.5.
pub fn tap_mask(hooks: &mut Hooks, name: &str, mask: Tensor<2, Bool>) -> Tensor<2, Bool> {
    if !hooks.wants(name) {
        return mask;
    }
    let f = hooks.tap_named(name, mask.clone().float());
    if hooks.edits(name) { f.greater_elem(0.5) } else { mask }
}
