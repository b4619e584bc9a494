//! Errors of reading and writing checkpoint files. Every variant names the file, and the tensor
//! where there is one.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No checkpoint where one was named (a missing file, a directory without weights).
    #[error("checkpoint {path}: {why}")]
    NotFound { path: PathBuf, why: String },
    #[error("{path}: not a readable checkpoint: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: truncated safetensors file: {reason}")]
    Truncated { path: PathBuf, reason: String },
    #[error("{path}: tensor '{name}': {reason}")]
    Tensor { path: PathBuf, name: String, reason: String },
    #[error(
        "{path}: two keys normalise to the same name '{name}' ('{first}' and '{second}'); \
         a checkpoint must hold either the `detector.`-prefixed keys or the plain ones"
    )]
    DuplicateKey { path: PathBuf, name: String, first: String, second: String },
    #[error("{path}: no parameter named '{name}'{}", suggest(.nearest))]
    MissingParam { path: PathBuf, name: String, nearest: Vec<String> },
    /// A request the file cannot satisfy as asked (a writer fed out of order, a bad output name).
    #[error("{0}")]
    Usage(String),
}

pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

fn suggest(nearest: &[String]) -> String {
    if nearest.is_empty() { String::new() } else { format!("; nearest: {}", nearest.join(", ")) }
}

impl CheckpointError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CheckpointError::Io { path: path.into(), source }
    }

    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        CheckpointError::Format { path: path.into(), reason: reason.into() }
    }
}
