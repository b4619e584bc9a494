//! sam3lab-probes: the research post's activation probes on SAM3 as library functions, plus the
//! input and provenance plumbing they share.
//!
//! This crate owns: reading probe inputs (image directories or lists, `GROUP=FILE` prompt lists,
//! JSONL (image, prompt, label) pair files) with errors naming the file and line ([`inputs`]); the
//! manifest every output carries (checkpoint sha256s, hook points, images, prompts, seed, version)
//! and atomic JSON/CSV writing ([`manifest`]); checkpoint loading and the hooked forward the probes
//! share ([`model`]); and the probes themselves — activation drift vs a reference (§6, [`drift`]),
//! per-head contribution ranking and the layer-level cosine probe (§9, [`heads`]), causal patching
//! with the q0-vs-whole-layer lockstep comparison (§9, [`patch`]), attribution patching — the
//! gradient × (source − target) screen, with its agreement with the causal patch ([`attrib`]), the generic activation patch /
//! sweep behind `probe patch` and `probe steer` ([`sweep`]: a target under a list of interventions,
//! a metric per run, the unpatched baseline), the per-prompt presence gate (§1 Fig 1.1,
//! [`presence`]), whether the text encoder knows a vocabulary (token-row norms and feature cosines,
//! [`vocab`]), and per-forward activation caches for the SAE ([`capture`]). Every probe encodes
//! an image once per checkpoint and a prompt once per checkpoint. It trains nothing: retraining a
//! sub-module (§5, `sam3lab retrain`) lives with the training engine (`sam3lab_train::retrain`, on
//! this crate's inputs, model and manifest), steering directions and α sweeps in `sam3lab-steering`
//! (on [`sweep`]), SAEs in `sam3lab-sae`.

pub mod attrib;
pub mod capture;
pub mod demo;
pub mod drift;
mod error;
pub mod heads;
pub mod inputs;
pub mod manifest;
pub mod model;
pub mod patch;
pub mod presence;
pub mod sweep;
pub mod vocab;

pub use error::{ProbeError, Result};
