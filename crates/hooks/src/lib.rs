//! sam3lab-hooks: named hook points through which probes read and change SAM3's forward pass.
//!
//! This crate owns the vocabulary probes are written in: [`HookPoint`] (a dotted canonical name such as
//! `decoder.layers.5.q0`), [`HookPattern`] (globs and ranges over those names, e.g.
//! `decoder.layers.*.q0` or `decoder.layers.3..5.ca_text.head.*`), [`HookSpec`] (an ordered list of
//! `pattern → action` entries: capture, replace, add, scale, zero, or any closure), the run-time
//! [`Hooks`] context the model threads through its forward, and the [`ActivationCache`] that captures
//! land in (saved as safetensors + a JSON manifest). It knows nothing about SAM3's layers: the model
//! crate taps named points and publishes a [`HookRegistry`] (every valid name with its shape for a
//! config), which is what validates names and suggests the nearest valid ones on a typo.
//!
//! Cost model: a forward with an empty spec pays one branch per tap and never builds a name; per-head
//! contributions and attention maps are computed only when some entry asks for them.

pub mod attribution;
mod cache;
mod ctx;
mod error;
mod point;
mod registry;
mod spec;
mod tensor;

pub use attribution::FrozenLayerNorm;
pub use cache::{ActivationCache, CacheManifest, ImageIdentity, manifest_path, sha256_hex};
pub use ctx::Hooks;
pub use error::HookError;
pub use point::{HookPattern, HookPoint};
pub use registry::{HookInfo, HookRegistry, nearest_names};
pub use spec::{Action, HookSpec, MapFn};
pub use tensor::DynTensor;
