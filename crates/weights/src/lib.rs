//! sam3lab-weights: weight-space probes on SAM3 checkpoints, with no forward pass.
//!
//! This crate owns reading checkpoints without loading them ([`Checkpoint`]: memory-mapped
//! safetensors decoded zero-copy from f32/f16/bf16/f64, or `.pt` read in place through the model
//! crate's pickle-free opener; keys normalised to the image detector's names), [`convert`] (any
//! checkpoint → one safetensors file, `sam3lab weights convert`), the checkpoint diff (per-tensor ‖base‖, ‖Δ‖,
//! rel_change; per module group weighted and aggregate rel_change; the post's Table 6.1), the
//! direction probe on one parameter (pairwise cosines of several trajectories' deltas and the Fig. 8.1
//! projection), writing their results (the types are `sam3lab-results`': [`DiffReport`],
//! [`CosinesReport`], the [`HeatmapTable`] the figures crate renders) as JSON and CSV,
//! a streaming safetensors writer, and synthetic SAM3-shaped checkpoints for the benchmark.
//! Work is spread over threads per chunk of tensor; resident memory stays at the chunks in flight.

pub mod bench;
mod checkpoint;
pub mod convert;
pub mod cosines;
pub mod diff;
pub mod dtype;
mod error;
mod groups;
pub mod kernel;
mod output;
pub mod spec;
pub mod synth;
mod writer;

pub use checkpoint::{
    Checkpoint, CheckpointId, Format, KeyClass, TensorEntry, normalize_key, sha256_file,
};
pub use convert::{ConvertReport, convert};
pub use cosines::{CosinesReport, Projection, ProjectionPoint, Trajectory, TrajectoryReport};
pub use diff::{DiffReport, GroupDiff, TensorDiff, TensorSums};
pub use error::{Result, WeightsError, edit_distance, nearest_names};
pub use groups::{DEFAULT_GROUPS, GroupRule, Groups};
pub use output::{HeatmapTable, heatmap_csv, write_atomic, write_json};
pub use spec::{TrajSpec, parse_traj, parse_trajs};
pub use writer::{SafetensorsWriter, TensorHeader, header_bytes};
