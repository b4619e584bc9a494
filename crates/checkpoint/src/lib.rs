//! sam3lab-checkpoint: SAM3 checkpoint files, below the model.
//!
//! This crate owns what a checkpoint *file* is, apart from any network: what an argument names
//! ([`resolve`]: a file or a fixture directory) and which container a file is ([`sniff`]); the one
//! reader ([`Checkpoint`]: a memory-mapped safetensors file, zero copy, or a `.pt` read in place —
//! burn's pickle-free reader, or for the complex RoPE storages of the released `sam3.pt` a
//! data-only pickle reader of our own); which stored keys are the image model's and under which
//! names ([`keys`]); transformers' naming mapped back to the reference's ([`hf`]); element types
//! ([`dtype`]); the streaming safetensors writer ([`SafetensorsWriter`]) and [`convert`] (any
//! checkpoint → one safetensors file). The model's loader (`sam3lab-model`) and the weight-space
//! probes (`sam3lab-weights`) both read through it.

pub mod convert;
pub mod dtype;
mod error;
pub mod hf;
pub mod keys;
mod pt;
mod pt_complex;
mod reader;
mod sniff;
mod writer;

pub use convert::{ConvertReport, convert};
pub use error::{CheckpointError, Result};
pub use keys::{KeyClass, Naming, is_skipped_key, skip_reason};
pub use pt::{PtTensor, open_pytorch};
pub use reader::{Checkpoint, TensorEntry, sha256_file};
pub use sniff::{Format, Resolved, resolve, sniff};
pub use writer::{SafetensorsWriter, TensorHeader, header_bytes};
