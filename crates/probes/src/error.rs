use std::path::{Path, PathBuf};

use thiserror::Error;

/// Everything a probe can refuse or fail on; every variant names the input at fault.
#[derive(Debug, Error)]
pub enum ProbeError {
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
    #[error(transparent)]
    Weights(#[from] sam3lab_weights::WeightsError),
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl ProbeError {
    pub fn input(path: &Path, line: Option<usize>, why: impl Into<String>) -> Self {
        ProbeError::Input { path: path.to_path_buf(), line, why: why.into() }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Self {
        ProbeError::Io { path: path.to_path_buf(), source }
    }
}

pub type Result<T, E = ProbeError> = std::result::Result<T, E>;
