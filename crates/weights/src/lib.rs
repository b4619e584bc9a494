//! sam3lab-weights: weight-space probes on SAM3 checkpoints, with no forward pass.
//!
//! This crate owns the checkpoint diff (per-tensor ‖base‖, ‖Δ‖,
//! rel_change; per module group weighted and aggregate rel_change; the post's Table 6.1), the
//! direction probe on one parameter (pairwise cosines of several trajectories' deltas and the Fig. 8.1
//! projection), writing their results (the types are `sam3lab-results`': [`DiffReport`],
//! [`CosinesReport`], the [`HeatmapTable`] the figures crate renders) as JSON and CSV,
//! and synthetic SAM3-shaped checkpoints for the benchmark. Files are read through
//! `sam3lab-checkpoint`'s one reader ([`sam3lab_checkpoint::Checkpoint`]).
//! Work is spread over threads per chunk of tensor; resident memory stays at the chunks in flight.

pub mod bench;
pub mod cosines;
pub mod diff;
mod error;
mod groups;
pub mod kernel;
mod output;
pub mod spec;
pub mod synth;

pub use output::{CheckpointId, checkpoint_id};
pub use cosines::{CosinesReport, Projection, ProjectionPoint, Trajectory, TrajectoryReport};
pub use diff::{DiffReport, GroupDiff, TensorDiff, TensorSums};
pub use error::{Result, WeightsError, edit_distance, nearest_names};
pub use groups::{DEFAULT_GROUPS, GroupRule, Groups};
pub use output::{HeatmapTable, heatmap_csv, write_atomic, write_json};
pub use spec::{TrajSpec, parse_traj, parse_trajs};
