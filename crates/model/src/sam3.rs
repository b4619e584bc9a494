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
use sam3lab_hooks::Hooks;

use crate::backbone::Backbone;
use crate::checkpoint::{self, LoadReport};
use crate::decoder::Decoder;
use crate::fusion::FusionEncoder;
use crate::geometry::{BoxPrompt, GeometryEncoder, GeometryPrompt};
use crate::heads::{GroundingOutput, ImageFeatures, TextFeatures, Transformer};
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
    /// A randomly initialised model (finite everywhere; for tests and benchmarks). The config is
    /// checked here, once ([`Sam3Config::validate`]; [`Sam3::load`] reports the same as an error), so
    /// the forwards never re-check it.
    ///
    /// # Panics
    /// On a config that fails [`Sam3Config::validate`].
    pub fn new(cfg: &Sam3Config, device: &Device) -> Self {
        if let Err(why) = cfg.validate() {
            panic!("Sam3::new: invalid config: {why}");
        }
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

    /// Trunk + neck: `pixel_values` `(B, 3, S, S)` (preprocessed, [-1, 1]) → the feature levels and
    /// their position maps. Compute once per image and ground many prompts against it.
    pub fn encode_image(&self, pixel_values: Tensor<4>, hooks: &mut Hooks) -> ImageFeatures {
        let v = self.backbone.forward_image(pixel_values, hooks);
        ImageFeatures { fpn: v.fpn, pos: v.pos }
    }

    /// [`Self::encode_image`] in train mode: the trunk with the config's stochastic depth
    /// (`vit.drop_path_rate`, acting only on an autodiff device; 0 = `encode_image`, to the bit).
    pub fn encode_image_train(&self, pixel_values: Tensor<4>, hooks: &mut Hooks) -> ImageFeatures {
        let v = self
            .backbone
            .vision_backbone
            .forward_drop_path(pixel_values, self.config.vit.drop_path_rate, hooks);
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

    /// Ground a text prompt (+ optional boxes) against encoded image features
    /// ([`Self::ground_geometry`] with a box-only geometric prompt).
    pub fn ground(
        &self,
        image: &ImageFeatures,
        text: &TextFeatures,
        boxes: &[BoxPrompt],
        hooks: &mut Hooks,
    ) -> Result<GroundingOutput, ModelError> {
        self.ground_geometry(image, text, &GeometryPrompt::boxes(boxes), hooks)
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

/// Every hook point of the model for `cfg` (built from the hook table, [`crate::points`]).
pub use crate::points::hook_registry;
