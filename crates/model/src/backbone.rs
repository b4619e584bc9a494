//! SAM3's backbone (`backbone.*`): the vision trunk + neck with their sine position maps, and the
//! text encoder. Field names are the reference attribute names, so the burn parameter paths are the
//! checkpoint keys (without the leading `backbone.`).

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::Int;
use sam3lab_hooks::Hooks;

use crate::Sam3Config;
use crate::config::PositionEncodingConfig;
use crate::neck::NeckLevel;
use crate::nn::pos2d::sine_pos_2d;
use crate::text::{LanguageBackbone, TextOutput};
use crate::vit::Vit;

/// `Sam3DualViTDetNeck` without the tracker's `sam2_convs`.
#[derive(Module, Debug)]
pub struct VisionBackbone {
    pub trunk: Vit,
    pub convs: Vec<NeckLevel>,
    /// Levels dropped from the end (`scalp`; SAM3: 1, the 0.5× level).
    pub scalp: usize,
    #[module(skip)]
    pub position_encoding: PositionEncodingConfig,
}

/// `SAM3VLBackbone`.
#[derive(Module, Debug)]
pub struct Backbone {
    pub vision_backbone: VisionBackbone,
    pub language_backbone: LanguageBackbone,
}

/// What the vision backbone hands the rest of the model (the reference's `backbone_fpn` and
/// `vision_pos_enc`, after `scalp`).
#[derive(Clone, Debug)]
pub struct VisionOutput {
    /// Feature levels, finest first: `(B, d, 4g, 4g)`, `(B, d, 2g, 2g)`, `(B, d, g, g)` for SAM3.
    /// The last one is `vision_features`, the fusion encoder's input.
    pub fpn: Vec<Tensor<4>>,
    /// The sine position map of each level, `(1, d, h, w)` (broadcast over the batch).
    pub pos: Vec<Tensor<4>>,
}

/// Reference options this port does not implement, as one message (`Ok` = supported).
pub fn check_supported(cfg: &Sam3Config) -> Result<(), String> {
    let mut errs = Vec::new();
    if let Err(e) = crate::vit::check_supported(&cfg.vit) {
        errs.push(e);
    }
    if let Err(e) = crate::neck::check_supported(&cfg.neck.scale_factors) {
        errs.push(e);
    }
    if cfg.neck.scalp >= cfg.neck.scale_factors.len() {
        errs.push(format!("neck.scalp {} drops every level", cfg.neck.scalp));
    }
    if !cfg.position_encoding.normalize {
        errs.push("position_encoding.normalize = false is not supported".into());
    }
    if cfg.image_size != cfg.vit.img_size {
        errs.push(format!("image_size {} differs from vit.img_size {}", cfg.image_size, cfg.vit.img_size));
    }
    if errs.is_empty() { Ok(()) } else { Err(errs.join("; ")) }
}

impl Backbone {
    pub fn new(cfg: &Sam3Config, device: &Device) -> Self {
        let c = cfg.vit.embed_dim;
        Self {
            vision_backbone: VisionBackbone {
                trunk: Vit::new(&cfg.vit, device),
                convs: cfg.neck.scale_factors.iter().map(|&s| NeckLevel::new(s, c, cfg.d_model, device)).collect(),
                scalp: cfg.neck.scalp,
                position_encoding: cfg.position_encoding.clone(),
            },
            language_backbone: LanguageBackbone::new(&cfg.text, cfg.d_model, device),
        }
    }

    /// `pixel_values` `(B, 3, S, S)` (normalised to [-1, 1]) → feature pyramid + position maps.
    pub fn forward_image(&self, pixel_values: Tensor<4>, hooks: &mut Hooks) -> VisionOutput {
        self.vision_backbone.forward(pixel_values, hooks)
    }

    /// Token ids `(B, L)` → text features (see [`LanguageBackbone::forward`]).
    pub fn forward_text(&self, input_ids: Tensor<2, Int>, hooks: &mut Hooks) -> TextOutput {
        self.language_backbone.forward(input_ids, hooks)
    }
}

impl VisionBackbone {
    pub fn forward(&self, pixel_values: Tensor<4>, hooks: &mut Hooks) -> VisionOutput {
        self.forward_drop_path(pixel_values, 0.0, hooks)
    }

    /// [`Self::forward`] with the trunk's train-mode stochastic depth (see [`Vit::forward_drop_path`]).
    pub fn forward_drop_path(&self, pixel_values: Tensor<4>, drop_path_rate: f64, hooks: &mut Hooks) -> VisionOutput {
        let device = pixel_values.device();
        let pixel_values = hooks.tap(|| point!("image"), pixel_values);
        let x = self.trunk.forward_drop_path(pixel_values, drop_path_rate, hooks);
        let kept = self.convs.len() - self.scalp;
        let mut fpn = Vec::with_capacity(kept);
        let mut pos = Vec::with_capacity(kept);
        for (i, level) in self.convs.iter().enumerate() {
            if i >= kept {
                // Dropped by `scalp`: computed only for a hook.
                if hooks.is_active() && hooks.wants(&point!("neck.fpn.{i}", i)) {
                    hooks.tap(|| point!("neck.fpn.{i}", i), level.forward(x.clone()));
                }
                continue;
            }
            let y = hooks.tap(|| point!("neck.fpn.{i}", i), level.forward(x.clone()));
            let [_, _, h, w] = y.dims();
            pos.push(sine_pos_2d(h, w, &self.position_encoding, &device));
            fpn.push(y);
        }
        VisionOutput { fpn, pos }
    }
}
