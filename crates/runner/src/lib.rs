//! sam3lab-runner: the loop every probe runs, and what it reads and records.
//!
//! This crate owns: loading checkpoints for probing and the hooked forward over one (image, prompt),
//! with each image encoded once per model and each prompt once per model ([`model`]); the loop over
//! (image, prompt) pairs for one or more checkpoints in lockstep, and the generic activation patch /
//! sweep on top of it (TARGET under a list of interventions, one metric per run: [`sweep`]); reading
//! the inputs (image directories or lists, `GROUP=FILE` prompt lists, JSONL pair files) with errors
//! naming the file and line ([`inputs`]); and the provenance every output carries plus atomic JSON
//! and CSV writing ([`manifest`]).
//!
//! The probes (`sam3lab-probes`), the presence-head retrain (`sam3lab-train`) and the steering
//! sweeps (`sam3lab-steering`) are built on it; none of them needs another's crate for it.

mod error;
pub mod inputs;
pub mod manifest;
pub mod model;
pub mod shard;
pub mod sweep;

pub use error::{Result, RunError};
