use std::path::{Path, PathBuf};

use thiserror::Error;

/// Everything a run over checkpoints and inputs can refuse or fail on (the probes, retrain and steering share it: `sam3lab_probes::ProbeError` is this type); every variant names the input at fault.
#[derive(Debug, Error)]
pub enum RunError {
    /// A bad input file: the file, the 1-based line when there is one, and what is wrong.
    #[error("{}{}: {why}", .path.display(), .line.map(|l| format!(":{l}")).unwrap_or_default())]
    Input { path: PathBuf, line: Option<usize>, why: String },
    /// A bad argument or combination of arguments.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Model(#[from] sam3lab_model::ModelError),
    #[error(transparent)]
    Hook(#[from] sam3lab_hooks::HookError),
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl RunError {
    pub fn input(path: &Path, line: Option<usize>, why: impl Into<String>) -> Self {
        RunError::Input { path: path.to_path_buf(), line, why: why.into() }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Self {
        RunError::Io { path: path.to_path_buf(), source }
    }
}

pub type Result<T, E = RunError> = std::result::Result<T, E>;
