//! The whole SAM3 image model (`Sam3Image`): backbone + geometry encoder + transformer (fusion
//! encoder, decoder) + dot-product scoring + segmentation head, under the reference attribute names,
//! so every burn parameter path is its checkpoint key.
//!
//! Image features are computed once ([`Sam3::encode_image`]), text once per phrase
//! ([`Sam3::encode_text`]), and [`Sam3::ground`] runs the heads for any number of prompts against
//! them; [`Sam3::forward`] is the one-shot composition of the three and gives identical results.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::Int;
use sam3lab_hooks::{HookRegistry, Hooks};

use crate::backbone::Backbone;
use crate::checkpoint::{self, LoadReport};
use crate::decoder::Decoder;
use crate::fusion::FusionEncoder;
use crate::geometry::{BoxPrompt, GeometryEncoder, GeometryPrompt};
use crate::heads::{GroundingOutput, Heads, ImageFeatures, TextFeatures, Transformer};
use crate::scoring::DotProductScoring;
use crate::seg::SegmentationHead;
use crate::{ModelError, Sam3Config};

/// `Sam3Image` under torch names (no tracker, no `sam2_convs`).
#[derive(Module, Debug)]
pub struct Sam3 {
    pub backbone: Backbone,
    pub geometry_encoder: GeometryEncoder,
    pub transformer: Transformer,
    pub dot_prod_scoring: DotProductScoring,
    pub segmentation_head: SegmentationHead,
    #[module(skip)]
    pub config: Sam3Config,
}

/// Where a loaded model came from (goes into every result file).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadInfo {
    /// The weights file actually read.
    pub path: PathBuf,
    /// sha256 (hex) of that file.
    pub sha256: String,
    pub config: Sam3Config,
    pub report: LoadReport,
}

impl Sam3 {
    /// A randomly initialised model (finite everywhere; for tests and benchmarks).
    pub fn new(cfg: &Sam3Config, device: &Device) -> Self {
        Self {
            backbone: Backbone::new(cfg, device),
            geometry_encoder: GeometryEncoder::new(cfg, device),
            transformer: Transformer {
                encoder: FusionEncoder::new(cfg, device),
                decoder: Decoder::new(cfg, device),
            },
            dot_prod_scoring: DotProductScoring::new(cfg, device),
            segmentation_head: SegmentationHead::new(cfg, device),
            config: cfg.clone(),
        }
    }

    /// Load a checkpoint file (`.safetensors` with or without the `detector.` prefix, HF naming, or a
    /// PyTorch `.pt`), or a fixture directory (`weights.safetensors` + `config.json`). The config is
    /// `config_override`, else the fixture's, else [`Sam3Config::sam3`].
    pub fn load(path: &Path, config_override: Option<&Path>, device: &Device) -> Result<(Self, LoadInfo), ModelError> {
        let resolved = checkpoint::resolve(path)?;
        let cfg = checkpoint::resolve_config(&resolved, config_override)?;
        let mut model = Sam3::new(&cfg, device);
        let report = checkpoint::load_into(&mut model, &resolved.weights, &crate::params::param_shapes(&cfg), "")?;
        let sha256 = checkpoint::sha256_file(&resolved.weights)?;
        Ok((
            model,
            LoadInfo {
                path: resolved.weights,
                sha256,
                config: cfg,
                report,
            },
        ))
    }

    /// The head modules as one pipeline.
    pub fn heads(&self) -> Heads<'_> {
        Heads {
            geometry_encoder: &self.geometry_encoder,
            transformer: &self.transformer,
            dot_prod_scoring: &self.dot_prod_scoring,
            segmentation_head: &self.segmentation_head,
            cfg: &self.config,
        }
    }

    /// Trunk + neck: `pixel_values` `(B, 3, S, S)` (preprocessed, [-1, 1]) → the feature levels and
    /// their position maps. Compute once per image and ground many prompts against it.
    pub fn encode_image(&self, pixel_values: Tensor<4>, hooks: &mut Hooks) -> ImageFeatures {
        let v = self.backbone.forward_image(pixel_values, hooks);
        ImageFeatures { fpn: v.fpn, pos: v.pos }
    }

    /// Text encoder: token ids `(B, L)` with `L ≤ context_length` (the tokenizer truncates) → features
    /// and padding mask.
    pub fn encode_text(&self, input_ids: Tensor<2, Int>, hooks: &mut Hooks) -> TextFeatures {
        let t = self.backbone.forward_text(input_ids, hooks);
        TextFeatures {
            feats: t.features,
            padding_mask: t.padding_mask,
        }
    }

    /// Ground a text prompt (+ optional boxes) against encoded image features.
    pub fn ground(
        &self,
        image: &ImageFeatures,
        text: &TextFeatures,
        boxes: &[BoxPrompt],
        hooks: &mut Hooks,
    ) -> Result<GroundingOutput, ModelError> {
        self.heads().ground(image, text, &GeometryPrompt::boxes(boxes), hooks)
    }

    /// Like [`Sam3::ground`] with a full geometric prompt (point prompts are rejected with an error).
    pub fn ground_geometry(
        &self,
        image: &ImageFeatures,
        text: &TextFeatures,
        geometry: &GeometryPrompt,
        hooks: &mut Hooks,
    ) -> Result<GroundingOutput, ModelError> {
        self.heads().ground(image, text, geometry, hooks)
    }

    /// One-shot forward: `encode_image` + `encode_text` + `ground` (identical results).
    pub fn forward(
        &self,
        pixel_values: Tensor<4>,
        input_ids: Tensor<2, Int>,
        boxes: &[BoxPrompt],
        hooks: &mut Hooks,
    ) -> Result<GroundingOutput, ModelError> {
        let cfg = &self.config;
        let [bi, c, h, w] = pixel_values.dims();
        if c != 3 || h != cfg.image_size || w != cfg.image_size {
            return Err(ModelError::Prompt(format!(
                "pixel_values must be (B, 3, {s}, {s}), got {:?}",
                [bi, c, h, w],
                s = cfg.image_size
            )));
        }
        let [bt, l] = input_ids.dims();
        if bt != bi || l == 0 || l > cfg.text.context_length {
            return Err(ModelError::Prompt(format!(
                "input_ids must be (B={bi}, L) with 1 ≤ L ≤ context_length {}, got {:?}",
                cfg.text.context_length,
                [bt, l]
            )));
        }
        GeometryPrompt::boxes(boxes).validate()?;
        let image = self.encode_image(pixel_values, hooks);
        let text = self.encode_text(input_ids, hooks);
        self.ground(&image, &text, boxes, hooks)
    }
}

/// Every hook point of the model for `cfg`, in forward order, with its shape at batch 1 and a
/// text-only prompt (prompt-length axes grow by one per box).
pub fn hook_registry(cfg: &Sam3Config) -> HookRegistry {
    let mut reg = HookRegistry::default();
    crate::backbone::register_hooks(cfg, &mut reg);
    register_head_hooks(cfg, &mut reg);
    reg
}

/// Register an attention module's points: per-head contributions, weights, output.
fn attn(reg: &mut HookRegistry, name: &str, heads: usize, lq: usize, lk: usize, d: usize, what: &str) {
    for h in 0..heads {
        reg.push(
            format!("{name}.head.{h}"),
            [1, lq, d],
            format!("{what}: head {h}'s contribution to .out (no bias)"),
        );
    }
    reg.push(
        format!("{name}.attn_weights"),
        [1, heads, lq, lk],
        format!("{what}: softmax weights (B,H,Lq,Lk)"),
    );
    reg.push(
        format!("{name}.out"),
        [1, lq, d],
        format!("{what}: output after out_proj, before the residual add"),
    );
}

/// The heads' hook points (geometry, prompt, fusion, decoder, scoring, seg, outputs).
pub fn register_head_hooks(cfg: &Sam3Config, reg: &mut HookRegistry) {
    let d = cfg.d_model;
    let g = cfg.grid();
    let hw = g * g;
    let p = cfg.text.context_length + 1;
    let q = cfg.decoder.num_queries;
    // Masks come out at the finest kept neck level (4× the token grid for SAM3).
    let h4 = cfg.neck.scale_factors.first().map_or(g, |&sc| (g as f64 * sc) as usize);
    let s = 1;

    reg.push(
        "fusion.pos_embed",
        [1, hw, d],
        "sine position map of the 1× level, flattened (B,HW,d)",
    );
    reg.push(
        "geometry.tokens_in",
        [1, s, d],
        "norm(final_proj([boxes…, CLS])) entering the geometry layers (B,S,d)",
    );
    let gh = cfg.geometry.num_heads;
    for i in 0..cfg.geometry.num_layers {
        let n = format!("geometry.layers.{i}");
        attn(
            reg,
            &format!("{n}.self_attn"),
            gh,
            s,
            s,
            d,
            "geometry self-attention over prompt tokens",
        );
        attn(
            reg,
            &format!("{n}.cross_attn"),
            gh,
            s,
            hw,
            d,
            "geometry cross-attention to the raw 1× image (torch cross_attn_image)",
        );
        reg.push(format!("{n}.ffn.out"), [1, s, d], "FFN output before the residual add");
        reg.push(n, [1, s, d], "geometry layer output (B,S,d)");
    }
    reg.push(
        "geometry.out",
        [1, s, d],
        "after encode_norm (B,S,d); S = boxes + 1 (CLS last)",
    );
    reg.push(
        "geometry.padding_mask",
        [1, s],
        "1 = padding (B,S); editable (thresholded at 0.5), flows into prompt.padding_mask",
    );
    reg.push("prompt.feats", [1, p, d], "prompt = [text (L), geometry (S)] (B,P,d)");
    reg.push(
        "prompt.padding_mask",
        [1, p],
        "1 = padding (B,P); editable (thresholded at 0.5)",
    );

    let fh = cfg.fusion.num_heads;
    for i in 0..cfg.fusion.num_layers {
        let n = format!("fusion.layers.{i}");
        attn(
            reg,
            &format!("{n}.self_attn"),
            fh,
            hw,
            hw,
            d,
            "fusion image self-attention (with position)",
        );
        attn(
            reg,
            &format!("{n}.cross_attn"),
            fh,
            hw,
            p,
            d,
            "fusion image→prompt cross-attention (torch cross_attn_image)",
        );
        reg.push(format!("{n}.ffn.out"), [1, hw, d], "FFN output before the residual add");
        reg.push(n, [1, hw, d], "fusion layer output (B,HW,d)");
    }
    reg.push("fusion.memory", [1, hw, d], "fusion encoder output = memory (B,HW,d)");

    let dh = cfg.decoder.num_heads;
    for i in 0..cfg.decoder.num_layers {
        let n = format!("decoder.layers.{i}");
        reg.push(format!("{n}.in"), [1, q, d], "queries entering the layer (B,Q,d)");
        reg.push(
            format!("{n}.presence_in"),
            [1, 1, d],
            "presence token entering the layer (B,1,d)",
        );
        reg.push(
            format!("{n}.ref_boxes"),
            [1, q, 4],
            "reference boxes used by the layer, σ-space cxcywh (B,Q,4)",
        );
        reg.push(
            format!("{n}.query_pos"),
            [1, q, d],
            "ref_point_head(sine(ref_boxes)) (B,Q,d)",
        );
        reg.push(
            format!("{n}.rpb_bias"),
            [1, dh, q, hw],
            "boxRPB bias of the image cross-attention, no presence row (B,H,Q,HW)",
        );
        attn(
            reg,
            &format!("{n}.self_attn"),
            dh,
            1 + q,
            1 + q,
            d,
            "decoder self-attention over [presence, queries]",
        );
        attn(
            reg,
            &format!("{n}.ca_text"),
            dh,
            1 + q,
            p,
            d,
            "decoder cross-attention to the prompt",
        );
        attn(
            reg,
            &format!("{n}.ca_image"),
            dh,
            1 + q,
            hw,
            d,
            "decoder cross-attention to the image memory (torch cross_attn)",
        );
        reg.push(
            format!("{n}.ffn.out"),
            [1, 1 + q, d],
            "FFN output before the residual add and norm3",
        );
        reg.push(
            format!("{n}.out"),
            [1, 1 + q, d],
            "raw layer output, row 0 = presence token (B,1+Q,d)",
        );
        reg.push(
            format!("{n}.q0"),
            [1, d],
            "presence token after the layer = out[:,0] (B,d); edits flow downstream",
        );
        reg.push(
            format!("{n}.queries"),
            [1, q, d],
            "queries after the layer = out[:,1:] (B,Q,d); edits flow downstream",
        );
        reg.push(
            format!("{n}.mean"),
            [1, d],
            "mean over the 1+Q tokens of the (edited) layer output (B,d); READ-ONLY: edits have no effect",
        );
        reg.push(format!("{n}.hs_normed"), [1, q, d], "decoder norm(queries) (B,Q,d)");
        reg.push(
            format!("{n}.pred_boxes"),
            [1, q, 4],
            "refined boxes cxcywh (B,Q,4) = next layer's ref_boxes",
        );
        reg.push(
            format!("{n}.pred_boxes_xyxy"),
            [1, q, 4],
            "refined boxes xyxy (B,Q,4) (read-only)",
        );
        let last = i + 1 == cfg.decoder.num_layers;
        reg.push(
            format!("{n}.presence_logit"),
            [1, 1],
            if last {
                "presence logit of this layer, unclamped (B,1); edits flow into presence_logit and scores"
            } else {
                "presence logit of this layer, unclamped (B,1); read-only: only the last layer's feeds the outputs"
            },
        );
    }
    reg.push(
        "decoder.ref_boxes_all",
        [1, cfg.decoder.num_layers, q, 4],
        "reference boxes entering each layer (B,L,Q,4) (read-only)",
    );
    reg.push(
        "scoring.prompt_mlp",
        [1, p, d],
        "out_norm(prompt + MLP(prompt)) (B,P,d)",
    );
    reg.push(
        "scoring.pooled_prompt",
        [1, d],
        "mean of scoring.prompt_mlp over valid tokens (B,d)",
    );
    for i in 0..cfg.decoder.num_layers {
        reg.push(format!("decoder.layers.{i}.pred_logits"), [1, q, 1], if i + 1 == cfg.decoder.num_layers {
            "dot-product score logits of this layer, clamped ±12 (B,Q,1); edits flow into pred_logits and scores"
        } else {
            "dot-product score logits of this layer, clamped ±12 (B,Q,1); read-only: only the last layer's feeds the outputs"
        });
    }
    reg.push(
        "pred_logits",
        [1, q, 1],
        "final score logits (B,Q,1), presence not included",
    );
    reg.push("pred_boxes", [1, q, 4], "final boxes cxcywh in [0,1] (B,Q,4)");
    reg.push("pred_boxes_xyxy", [1, q, 4], "final boxes xyxy in [0,1] (B,Q,4)");
    reg.push("presence_logit", [1, 1], "final presence logit (B,1)");
    attn(
        reg,
        "seg.prompt_cross_attn",
        cfg.seg_head.cross_attend_prompt_heads,
        hw,
        p,
        d,
        "seg head memory→prompt cross-attention (torch cross_attend_prompt)",
    );
    reg.push(
        "seg.encoder_visual",
        [1, d, g, g],
        "memory + prompt cross-attention on the 1× grid (B,d,h,w)",
    );
    reg.push("seg.pixel_embed", [1, d, h4, h4], "pixel decoder output (B,d,H4,W4)");
    reg.push(
        "seg.instance_embeds",
        [1, d, h4, h4],
        "instance_seg_head(pixel_embed) (B,d,H4,W4)",
    );
    reg.push(
        "seg.mask_embed",
        [1, q, d],
        "mask_embed MLP of the last normed queries (B,Q,d)",
    );
    reg.push("pred_masks", [1, q, h4, h4], "mask logits (B,Q,H4,W4)");
    reg.push("semantic_seg", [1, 1, h4, h4], "semantic logits (B,1,H4,W4)");
    reg.push("scores", [1, q], "σ(pred_logits)·σ(presence_logit) (B,Q)");
}
