//! sam3lab-model: SAM3's image-grounding path in burn, numerically equal to Meta's reference.
//!
//! Image + noun-phrase (and optional box) prompt → boxes, scores, masks and the presence logit, with
//! every parameter under its ORIGINAL checkpoint name (the module tree mirrors the PyTorch one, so
//! `backbone.vision_backbone.trunk.blocks.3.attn.qkv.weight` is exactly that field path). Every
//! intermediate the research post looks at is a named hook point (see `sam3lab-hooks`); hook tensors
//! use the reference's layout with the batch axis moved first. CPU (flex) by default, GPU behind the
//! `wgpu`/`cuda` features: the device is chosen at run time.
//!
//! The way in is [`predict::Predictor`]: `load` a checkpoint, then `segment` for detections, or
//! `run_with_cache(&image, prompt, &names)` / `run_with_hooks(&image, prompt, spec)` (and their
//! `…_batch` forms over images × prompts) for outputs plus captured or edited activations. Below it,
//! [`Sam3`], the one pipeline type, exposes the stages (`encode_image`, `encode_text`, `ground` /
//! `ground_geometry`, `forward`, and train mode's `encode_image_train` / `ground_train`), each taking
//! a [`hooks::Hooks`] context; [`hook_registry`] lists every hook point of a config, expanded from the one table in [`points`].

// First: its `point!` macro names every tap of the modules below.
#[macro_use]
pub mod points;
pub mod config;
pub mod error;
pub mod nn;
// Backbone, loading, inputs, parity (M1).
pub mod backbone;
pub mod checkpoint;
pub mod device;
pub mod neck;
pub mod params;
pub mod parity;
pub mod preprocess;
pub mod text;
pub mod tokenizer;
pub mod vit;
// Heads (M2).
pub mod decoder;
pub mod fusion;
pub mod geometry;
pub mod heads;
pub mod postprocess;
pub mod predict;
pub mod runs;
pub mod sam3;
pub mod scoring;
pub mod seg;

pub use config::Sam3Config;
pub use geometry::{BoxPrompt, GeometryPrompt, PointPrompt};
pub use heads::{GroundingOutput, ImageFeatures, QuerySet, TextFeatures, TrainLayerOutput, TrainOutput};
pub use postprocess::{Detection, Detections, postprocess};
pub use sam3::{LoadInfo, Sam3, hook_registry};
pub use error::{ModelError, Result};
pub use sam3lab_hooks as hooks;
