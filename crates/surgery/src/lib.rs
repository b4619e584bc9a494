//! sam3lab-surgery: head surgery on SAM3 weights.
//!
//! This crate owns the mapping from the hook API's attention-head names
//! (`decoder.layers.4.ca_text.head.0`, `trunk.blocks.3.attn.head.7`, …) to checkpoint keys and
//! per-head slices ([`head_ref`], [`module_keys`], [`head_ranges`]; the head count per module comes
//! from [`HeadCounts`]), the interpolation (1 − α)·INTO + α·DONOR on a head's q/k/v rows of the
//! in-projection and its columns of the out-projection — on in-memory tensors ([`patch_heads`], for
//! probes) and on whole checkpoints ([`surgery`], streamed to a complete safetensors file with the
//! same keys and dtypes as INTO, plus a [`Manifest`] of every change). Everything else is copied
//! byte for byte; the out-projection bias, shared by all heads, is never touched.

mod error;
mod heads;
mod patch;
mod surgery;

pub use error::{Result, SurgeryError};
pub use heads::{
    AttnKeys, Family, HeadCounts, HeadRanges, HeadRef, check_shapes, head_patterns, head_ranges,
    head_ref, module_keys,
};
pub use patch::{F32Tensor, blend, head_slices, patch_heads};
pub use surgery::{HeadChange, Manifest, SliceChange, SurgeryRequest, manifest_path, surgery};
