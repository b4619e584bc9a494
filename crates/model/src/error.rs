use thiserror::Error;

/// Errors of the model crate. Every variant names the file / tensor / input at fault.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("config {path}: {why}")]
    Config { path: String, why: String },
    /// A checkpoint that does not fit the model: every problem at once.
    #[error("checkpoint {path} does not fit the model:{}", list_problems(.missing, .unexpected, .mismatched))]
    CheckpointMismatch {
        path: String,
        missing: Vec<String>,
        unexpected: Vec<String>,
        /// (key, expected shape, found shape)
        mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    },
    #[error("checkpoint {path}: {why}")]
    Checkpoint { path: String, why: String },
    #[error("image {path}: {why}")]
    Image { path: String, why: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("prompt: {0}")]
    Prompt(String),
    #[error("device: {0}")]
    Device(String),
    /// A forward whose outputs hold NaN or ±Inf (names every such output).
    #[error("non-finite model output: {0}")]
    NonFinite(String),
    #[error("fixture {path}: {why}")]
    Fixture { path: String, why: String },
    #[error(transparent)]
    Hook(#[from] sam3lab_hooks::HookError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The file could not be read as a checkpoint (names the file, and the tensor where one is at fault).
    #[error(transparent)]
    Read(#[from] sam3lab_checkpoint::CheckpointError),
}

fn list_problems(missing: &[String], unexpected: &[String], mismatched: &[(String, Vec<usize>, Vec<usize>)]) -> String {
    let mut s = String::new();
    if !missing.is_empty() {
        s += &format!("\n  missing keys ({}): {}", missing.len(), missing.join(", "));
    }
    if !unexpected.is_empty() {
        s += &format!("\n  unexpected keys ({}): {}", unexpected.len(), unexpected.join(", "));
    }
    for (k, e, f) in mismatched {
        s += &format!("\n  shape mismatch {k}: expected {e:?}, found {f:?}");
    }
    s
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
