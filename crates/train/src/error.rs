//! Errors of the training engine: each names the thing at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A bad argument, recipe key or combination.
    #[error("{0}")]
    Usage(String),
    /// A bad input file (recipe, data set, fixture) and what is wrong with it.
    #[error("{}: {why}", .path.display())]
    Input { path: PathBuf, why: String },
    #[error(transparent)]
    Model(#[from] sam3lab_model::ModelError),
    #[error(transparent)]
    Hook(#[from] sam3lab_hooks::HookError),
    #[error(transparent)]
    Checkpoint(#[from] sam3lab_checkpoint::CheckpointError),
    /// The runner's input, manifest and forward plumbing that [`crate::retrain`] runs on.
    #[error(transparent)]
    Run(#[from] sam3lab_runner::RunError),
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The loss became non-finite: the step and the find queries of the batch.
    #[error("non-finite loss {value} at step {step} (batch: {pairs}); the last good checkpoint is kept")]
    NonFinite { step: usize, value: f32, pairs: String },
}

impl TrainError {
    pub fn input(path: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        TrainError::Input { path: path.into(), why: why.into() }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io { path: path.into(), source }
    }
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
