//! Errors of head surgery; each names the head, module, key or file at fault.

#[derive(Debug, thiserror::Error)]
pub enum SurgeryError {
    #[error(transparent)]
    Weights(#[from] sam3lab_weights::WeightsError),
    #[error(transparent)]
    Checkpoint(#[from] sam3lab_checkpoint::CheckpointError),
    #[error(
        "unknown head '{name}'{}; head names look like: {}",
        nearest.as_ref().map(|n| format!(" (did you mean {n}?)")).unwrap_or_default(),
        patterns.join(", ")
    )]
    UnknownHead {
        name: String,
        nearest: Option<String>,
        patterns: Vec<String>,
    },
    #[error("head '{name}': index {head} out of range, '{module}' has {num_heads} heads (0..={})", num_heads - 1)]
    HeadOutOfRange {
        name: String,
        module: String,
        head: usize,
        num_heads: usize,
    },
    #[error("head '{name}' is listed twice")]
    DuplicateHead { name: String },
    #[error("head '{name}': {path} has no tensor '{key}'{}", suggest(.present))]
    MissingModule {
        name: String,
        path: String,
        key: String,
        present: Vec<String>,
    },
    #[error("attention module '{module}': {reason}")]
    Layout { module: String, reason: String },
    #[error("config {path}: {reason}")]
    Config { path: String, reason: String },
    #[error("{0}")]
    Usage(String),
}

fn suggest(present: &[String]) -> String {
    if present.is_empty() {
        String::new()
    } else {
        format!("; nearest present: {}", present.join(", "))
    }
}

pub type Result<T> = std::result::Result<T, SurgeryError>;
