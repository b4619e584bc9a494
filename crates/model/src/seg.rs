//! The segmentation head (`segmentation_head`, reference `UniversalSegmentationHead`).
//!
//! 1. `E = memory + cross_attend_prompt(q=cross_attn_norm(memory), k=v=prompt, prompt_mask)`, reshaped to
//!    the 1× grid (`seg.encoder_visual`); it replaces the 1× level as pixel-decoder input.
//! 2. Pixel decoder: from the 1× map, for the 2× then the 4× level: nearest-upsample to its size, add
//!    it, `conv_layers.k` (3×3) → `GroupNorm(8)` → ReLU (`seg.pixel_embed`; the third conv/norm pair
//!    exists in the checkpoint but is never used).
//! 3. `instance_seg_head` (1×1 conv, `seg.instance_embeds`), `mask_embed` (3-layer MLP) of the last
//!    layer's normed queries (`seg.mask_embed`); mask logits = `einsum(bqc, bchw)`.
//! 4. `semantic_seg_head` (1×1 conv → 1 channel) on the pixel embedding.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, LayerNorm, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::Bool;
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use sam3lab_hooks::Hooks;

use crate::Sam3Config;
use crate::nn::{AttnInput, Mlp, MultiheadAttention, layer_norm};

#[derive(Module, Debug)]
pub struct PixelDecoder {
    pub conv_layers: Vec<Conv2d>,
    pub norms: Vec<GroupNorm>,
}

#[derive(Module, Debug)]
pub struct MaskPredictor {
    pub mask_embed: Mlp,
}

#[derive(Module, Debug)]
pub struct SegmentationHead {
    pub pixel_decoder: PixelDecoder,
    pub mask_predictor: MaskPredictor,
    pub cross_attend_prompt: MultiheadAttention,
    pub cross_attn_norm: LayerNorm,
    pub semantic_seg_head: Conv2d,
    pub instance_seg_head: Conv2d,
}

/// Outputs of the head (batch-first).
pub struct SegOutput {
    /// `(B, Q, H4, W4)` mask logits.
    pub pred_masks: Tensor<4>,
    /// `(B, 1, H4, W4)`.
    pub semantic_seg: Tensor<4>,
}

impl SegmentationHead {
    pub fn new(cfg: &Sam3Config, device: &Device) -> Self {
        let d = cfg.d_model;
        let s = &cfg.seg_head;
        let conv3 = || {
            Conv2dConfig::new([d, d], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        Self {
            pixel_decoder: PixelDecoder {
                conv_layers: (0..s.num_upsampling_stages).map(|_| conv3()).collect(),
                norms: (0..s.num_upsampling_stages)
                    .map(|_| {
                        GroupNormConfig::new(s.groupnorm_groups, d)
                            .with_epsilon(1e-5)
                            .init(device)
                    })
                    .collect(),
            },
            mask_predictor: MaskPredictor {
                mask_embed: Mlp::new(d, d, d, 3, device),
            },
            cross_attend_prompt: MultiheadAttention::new(d, s.cross_attend_prompt_heads, device),
            cross_attn_norm: layer_norm(d, device),
            semantic_seg_head: Conv2dConfig::new([d, 1], [1, 1]).init(device),
            instance_seg_head: Conv2dConfig::new([d, d], [1, 1]).init(device),
        }
    }

    /// `fpn` = [4×, 2×, 1×] levels `(B, d, h, w)` (the 1× one is replaced by the prompt-attended
    /// memory), `memory` `(B, HW, d)`, `hs_last` `(B, Q, d)`.
    pub fn forward(
        &self,
        fpn: &[Tensor<4>],
        memory: &Tensor<3>,
        prompt: &Tensor<3>,
        prompt_mask: &Tensor<2, Bool>,
        hs_last: Tensor<3>,
        hooks: &mut Hooks,
    ) -> SegOutput {
        let [b, hw, d] = memory.dims();
        let top = fpn.last().expect("at least one feature level");
        let [_, _, h, w] = top.dims();
        debug_assert_eq!(h * w, hw);
        let ca = self.cross_attend_prompt.forward(
            &point!(prefix "seg.prompt_cross_attn"),
            AttnInput::new(self.cross_attn_norm.forward(memory.clone()), prompt.clone(), prompt.clone())
                .key_padding_mask(Some(prompt_mask.clone())),
            hooks,
        );
        let e = (memory.clone() + ca).swap_dims(1, 2).reshape([b, d, h, w]);
        let mut prev = hooks.tap(|| point!("seg.encoder_visual"), e);

        for (k, feat) in fpn[..fpn.len() - 1].iter().rev().enumerate() {
            let [_, _, fh, fw] = feat.dims();
            let up = interpolate(
                prev,
                InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([fh, fw]),
            );
            let x = self.pixel_decoder.conv_layers[k].forward(feat.clone() + up);
            prev = relu(self.pixel_decoder.norms[k].forward(x));
        }
        let pixel = hooks.tap(|| point!("seg.pixel_embed"), prev);
        let inst = hooks.tap(
            || point!("seg.instance_embeds"),
            self.instance_seg_head.forward(pixel.clone()),
        );
        let me = hooks.tap(
            || point!("seg.mask_embed"),
            self.mask_predictor.mask_embed.forward(hs_last),
        );
        let [_, _, h4, w4] = inst.dims();
        let q = me.dims()[1];
        let pred_masks = me.matmul(inst.reshape([b, d, h4 * w4])).reshape([b, q, h4, w4]);
        let semantic_seg = self.semantic_seg_head.forward(pixel);
        SegOutput {
            pred_masks,
            semantic_seg,
        }
    }
}
