//! Errors of the evaluation crate: each names the file and the entry at fault.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a valid {what} JSON file: {source}", path.display())]
    Json {
        path: PathBuf,
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("model failed on image {file_name}: {source:#}")]
    Model {
        file_name: String,
        source: anyhow::Error,
    },
}

impl EvalError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        EvalError::Invalid(msg.into())
    }
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;
