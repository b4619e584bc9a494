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
    #[error("{path}: not a readable checkpoint: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: truncated safetensors file: {reason}")]
    Truncated { path: PathBuf, reason: String },
    #[error("{path}: tensor '{name}': {reason}")]
    Tensor {
        path: PathBuf,
        name: String,
        reason: String,
    },
    #[error(
        "{path}: two keys normalise to the same name '{name}' ('{first}' and '{second}'); \
         a checkpoint must hold either the `detector.`-prefixed keys or the plain ones"
    )]
    DuplicateKey {
        path: PathBuf,
        name: String,
        first: String,
        second: String,
    },
    #[error("{path}: no parameter named '{name}'{}", suggest(.nearest))]
    MissingParam {
        path: PathBuf,
        name: String,
        nearest: Vec<String>,
    },
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

fn suggest(nearest: &[String]) -> String {
    if nearest.is_empty() {
        String::new()
    } else {
        format!("; nearest: {}", nearest.join(", "))
    }
}

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
