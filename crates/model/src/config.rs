//! Hyper-parameters of the SAM3 image-grounding path.
//!
//! Field names follow the `model` section of a fixture `config.json` (the PyTorch reference's
//! builder arguments), so a fixture config deserialises directly; [`Sam3Config::sam3`] gives the
//! released checkpoint's values (design doc §1.2). Nothing in the model hard-codes a size.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ModelError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sam3Config {
    /// Square input resolution the image is resized to.
    pub image_size: usize,
    /// Width of everything after the backbone (fusion, decoder, heads).
    pub d_model: usize,
    pub vit: VitConfig,
    pub neck: NeckConfig,
    pub position_encoding: PositionEncodingConfig,
    pub text: TextConfig,
    pub geometry: GeometryConfig,
    pub fusion: FusionConfig,
    pub decoder: DecoderConfig,
    pub scoring: ScoringConfig,
    pub seg_head: SegHeadConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VitConfig {
    pub img_size: usize,
    pub pretrain_img_size: usize,
    pub patch_size: usize,
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    pub global_att_blocks: Vec<usize>,
    pub window_size: usize,
    pub rope_theta: f64,
    #[serde(default = "yes")]
    pub use_rope: bool,
    #[serde(default = "yes")]
    pub use_interp_rope: bool,
    #[serde(default = "yes")]
    pub use_abs_pos: bool,
    #[serde(default = "yes")]
    pub tile_abs_pos: bool,
    #[serde(default = "yes")]
    pub pretrain_use_cls_token: bool,
    #[serde(default)]
    pub retain_cls_token: bool,
    #[serde(default = "yes")]
    pub ln_pre: bool,
    #[serde(default)]
    pub ln_post: bool,
    #[serde(default)]
    pub bias_patch_embed: bool,
    #[serde(default = "yes")]
    pub qkv_bias: bool,
    #[serde(default = "ln_eps")]
    pub layer_norm_eps: f64,
    /// Train-mode stochastic depth of the last block (reference `drop_path_rate`; SAM3 trains with
    /// 0.1): block `i` uses `drop_path_rate · i / (depth − 1)`. 0 = off (the default).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub drop_path_rate: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeckConfig {
    pub scale_factors: Vec<f64>,
    pub scalp: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PositionEncodingConfig {
    /// Total sine channels (= d_model): half for y, half for x.
    pub num_pos_feats: usize,
    pub temperature: f64,
    pub normalize: bool,
    pub scale: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    pub width: usize,
    pub heads: usize,
    pub layers: usize,
    pub context_length: usize,
    pub vocab_size: usize,
    pub mlp_ratio: f64,
    #[serde(default = "yes")]
    pub use_ln_post: bool,
    #[serde(default = "yes")]
    pub causal_mask: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeometryConfig {
    pub num_layers: usize,
    pub num_heads: usize,
    pub dim_feedforward: usize,
    pub roi_size: usize,
    /// Train-mode dropout of the encoder layers and their attention weights (reference `dropout`; SAM3 trains with 0.1). 0 = off (the default).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropout: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FusionConfig {
    pub num_layers: usize,
    pub num_heads: usize,
    pub dim_feedforward: usize,
    /// Train-mode dropout of the encoder layers and their attention weights (reference `dropout`; SAM3 trains with 0.1). 0 = off (the default).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropout: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecoderConfig {
    pub num_layers: usize,
    pub num_heads: usize,
    pub dim_feedforward: usize,
    pub num_queries: usize,
    #[serde(rename = "boxRPB")]
    pub box_rpb: String,
    pub presence_token: bool,
    pub resolution: usize,
    pub stride: usize,
    /// Train-mode dropout of the decoder layers and their attention weights (reference `dropout`; SAM3 trains with 0.1). 0 = off (the default).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropout: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoringConfig {
    pub prompt_mlp_hidden: usize,
    pub clamp_max_val: f64,
    /// Train-mode dropout of the prompt MLP's hidden layer (reference `dropout`; SAM3 trains with 0.1). 0 = off (the default).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropout: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegHeadConfig {
    pub num_upsampling_stages: usize,
    pub interpolation_mode: String,
    pub groupnorm_groups: usize,
    pub cross_attend_prompt_heads: usize,
}

fn yes() -> bool {
    true
}
fn ln_eps() -> f64 {
    1e-5
}
fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// Output width of the CLIP `text_projection` (computed and discarded by SAM3, but a checkpoint tensor).
pub const TEXT_PROJECTION_DIM: usize = 512;

impl Sam3Config {
    /// The released SAM3 checkpoint's hyper-parameters (design doc §1.2).
    pub fn sam3() -> Self {
        let d = 256;
        Sam3Config {
            image_size: 1008,
            d_model: d,
            vit: VitConfig {
                img_size: 1008,
                pretrain_img_size: 336,
                patch_size: 14,
                embed_dim: 1024,
                depth: 32,
                num_heads: 16,
                mlp_ratio: 4.625,
                global_att_blocks: vec![7, 15, 23, 31],
                window_size: 24,
                rope_theta: 10000.0,
                use_rope: true,
                use_interp_rope: true,
                use_abs_pos: true,
                tile_abs_pos: true,
                pretrain_use_cls_token: true,
                retain_cls_token: false,
                ln_pre: true,
                ln_post: false,
                bias_patch_embed: false,
                qkv_bias: true,
                layer_norm_eps: 1e-5,
                drop_path_rate: 0.0,
            },
            neck: NeckConfig { scale_factors: vec![4.0, 2.0, 1.0, 0.5], scalp: 1 },
            position_encoding: PositionEncodingConfig {
                num_pos_feats: d,
                temperature: 10000.0,
                normalize: true,
                scale: 2.0 * std::f64::consts::PI,
            },
            text: TextConfig {
                width: 1024,
                heads: 16,
                layers: 24,
                context_length: 32,
                vocab_size: 49408,
                mlp_ratio: 4.0,
                use_ln_post: true,
                causal_mask: true,
            },
            geometry: GeometryConfig { num_layers: 3, num_heads: 8, dim_feedforward: 2048, roi_size: 7, dropout: 0.0 },
            fusion: FusionConfig { num_layers: 6, num_heads: 8, dim_feedforward: 2048, dropout: 0.0 },
            decoder: DecoderConfig {
                num_layers: 6,
                num_heads: 8,
                dim_feedforward: 2048,
                num_queries: 200,
                box_rpb: "log".into(),
                presence_token: true,
                resolution: 1008,
                stride: 14,
                dropout: 0.0,
            },
            scoring: ScoringConfig { prompt_mlp_hidden: 2048, clamp_max_val: 12.0, dropout: 0.0 },
            seg_head: SegHeadConfig {
                num_upsampling_stages: 3,
                interpolation_mode: "nearest".into(),
                groupnorm_groups: 8,
                cross_attend_prompt_heads: 8,
            },
        }
    }

    /// Parse a config: either a bare model config or a fixture `config.json` with a `model` section.
    pub fn from_json_str(text: &str, origin: &str) -> Result<Self, ModelError> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ModelError::Config { path: origin.into(), why: format!("not JSON: {e}") })?;
        let model = v.get("model").cloned().unwrap_or(v);
        let cfg: Sam3Config = serde_json::from_value(model)
            .map_err(|e| ModelError::Config { path: origin.into(), why: e.to_string() })?;
        cfg.validate().map_err(|why| ModelError::Config { path: origin.into(), why })?;
        Ok(cfg)
    }

    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ModelError::Config { path: path.display().to_string(), why: e.to_string() })?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Token grid side (image_size / patch).
    pub fn grid(&self) -> usize {
        self.image_size / self.vit.patch_size
    }

    /// ViT MLP hidden width (`int(embed_dim * mlp_ratio)` like the reference).
    pub fn vit_mlp_hidden(&self) -> usize {
        (self.vit.embed_dim as f64 * self.vit.mlp_ratio) as usize
    }

    pub fn text_mlp_hidden(&self) -> usize {
        (self.text.width as f64 * self.text.mlp_ratio) as usize
    }

    /// Whether the train-mode forward draws random numbers (any dropout or drop-path rate > 0).
    pub fn has_train_dropout(&self) -> bool {
        [self.vit.drop_path_rate, self.geometry.dropout, self.fusion.dropout, self.decoder.dropout, self.scoring.dropout]
            .iter()
            .any(|&p| p > 0.0)
    }

    /// Check the divisibility constraints of design doc §6.
    pub fn validate(&self) -> Result<(), String> {
        let v = &self.vit;
        let mut errs = Vec::new();
        if self.image_size % v.patch_size != 0 {
            errs.push(format!("image_size {} is not a multiple of patch_size {}", self.image_size, v.patch_size));
        }
        if self.grid() < 2 {
            errs.push(format!("token grid {} must be at least 2", self.grid()));
        }
        if v.embed_dim % v.num_heads != 0 || (v.embed_dim / v.num_heads) % 4 != 0 {
            errs.push(format!("vit embed_dim {} / heads {} must give a head dim divisible by 4", v.embed_dim, v.num_heads));
        }
        if v.embed_dim % 4 != 0 {
            errs.push(format!("vit embed_dim {} must be divisible by 4", v.embed_dim));
        }
        for (name, h) in [
            ("geometry", self.geometry.num_heads),
            ("fusion", self.fusion.num_heads),
            ("decoder", self.decoder.num_heads),
            ("seg_head", self.seg_head.cross_attend_prompt_heads),
        ] {
            if h == 0 || self.d_model % h != 0 {
                errs.push(format!("d_model {} not divisible by {name} heads {h}", self.d_model));
            }
        }
        if self.d_model % self.seg_head.groupnorm_groups != 0 {
            errs.push(format!("d_model {} not divisible by groupnorm_groups {}", self.d_model, self.seg_head.groupnorm_groups));
        }
        if self.position_encoding.num_pos_feats != self.d_model || self.d_model % 4 != 0 {
            errs.push(format!(
                "position_encoding.num_pos_feats {} must equal d_model {} (and be divisible by 4)",
                self.position_encoding.num_pos_feats, self.d_model
            ));
        }
        if self.text.width % self.text.heads != 0 {
            errs.push(format!("text width {} not divisible by heads {}", self.text.width, self.text.heads));
        }
        if self.text.context_length < 2 {
            errs.push("text context_length must hold SOT and EOT".into());
        }
        if self.decoder.box_rpb != "log" {
            errs.push(format!("decoder.boxRPB `{}` is not supported (only \"log\")", self.decoder.box_rpb));
        }
        if self.decoder.num_layers == 0 {
            errs.push("decoder.num_layers must be at least 1".into());
        }
        if !self.decoder.presence_token {
            errs.push("decoder.presence_token = false is not supported".into());
        }
        for (name, p) in [
            ("vit.drop_path_rate", v.drop_path_rate),
            ("geometry.dropout", self.geometry.dropout),
            ("fusion.dropout", self.fusion.dropout),
            ("decoder.dropout", self.decoder.dropout),
            ("scoring.dropout", self.scoring.dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                errs.push(format!("{name} {p} must be in [0, 1)"));
            }
        }
        if v.global_att_blocks.iter().any(|&b| b >= v.depth) {
            errs.push(format!("global_att_blocks {:?} out of range for depth {}", v.global_att_blocks, v.depth));
        }
        if errs.is_empty() { Ok(()) } else { Err(errs.join("; ")) }
    }
}
