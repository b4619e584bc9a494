//! sam3lab-probes: the research post's activation probes on SAM3 as library functions.
//!
//! This crate owns the probes themselves: activation drift vs a reference (§6, [`drift`]), per-head
//! contribution ranking and the layer-level cosine probe (§9, [`heads`]), causal patching with the
//! q0-vs-whole-layer lockstep comparison (§9, [`patch`]), attribution patching — the gradient ×
//! (source − target) screen, with its agreement with the causal patch ([`attrib`]), the per-prompt
//! presence gate (§1 Fig 1.1, [`presence`]), whether the text encoder knows a vocabulary (token-row
//! norms and feature cosines, [`vocab`]), per-forward activation caches for the SAE ([`capture`]),
//! and small generated inputs to try them on ([`demo`]).
//!
//! They run on `sam3lab-runner` (re-exported here as [`inputs`], [`manifest`], [`model`], [`shard`]
//! and [`sweep`]): its loop encodes an image once per checkpoint and a prompt once per checkpoint. This
//! crate trains nothing: retraining a sub-module (§5, `sam3lab retrain`) lives with the training
//! engine (`sam3lab_train::retrain`, on the runner), steering directions and α sweeps in
//! `sam3lab-steering` (on [`sweep`]), SAEs in `sam3lab-sae`.

pub mod attrib;
pub mod capture;
pub mod demo;
pub mod drift;
pub mod heads;
pub mod patch;
pub mod presence;
pub mod vocab;

/// The runner's plumbing, under the paths the probes have always used.
pub use sam3lab_runner::{inputs, manifest, model, shard, sweep};
/// The probes' error is the runner's (one type from input reading to the hooked forward).
pub use sam3lab_runner::{Result, RunError as ProbeError};
