//! Errors of the weight-space tools. Every variant names the file, tensor or label at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file could not be read as a checkpoint, or a tensor of it (names the file and tensor).
    #[error(transparent)]
    Checkpoint(#[from] sam3lab_checkpoint::CheckpointError),
    #[error("shape mismatch for '{name}': {a_path} has {a_shape:?}, {b_path} has {b_shape:?}")]
    ShapeMismatch {
        name: String,
        a_path: PathBuf,
        a_shape: Vec<usize>,
        b_path: PathBuf,
        b_shape: Vec<usize>,
    },
    #[error(
        "key sets differ: {missing_count} tensor(s) of {has_path} are missing from {lacks_path}: {}",
        list(.missing)
    )]
    MissingKeys {
        has_path: PathBuf,
        lacks_path: PathBuf,
        missing_count: usize,
        missing: Vec<String>,
    },
    #[error("groups file {path}: {reason}")]
    Groups { path: String, reason: String },
    #[error("{0}")]
    Usage(String),
}

pub type Result<T> = std::result::Result<T, WeightsError>;

fn list(names: &[String]) -> String {
    const SHOWN: usize = 8;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(", … ({} more)", names.len() - SHOWN));
    }
    s
}

impl WeightsError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WeightsError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Up to `k` candidates closest to `name` by edit distance (for "did you mean" messages), and the
/// distance itself: `sam3lab_util`'s.
pub use sam3lab_util::{edit_distance, nearest_names};
