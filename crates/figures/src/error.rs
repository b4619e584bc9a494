use std::path::PathBuf;

/// Everything that can go wrong loading figure inputs or writing figures. Every variant names the
/// file (or input) at fault so the CLI can print it as is.
#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    // The cause is printed inline and deliberately not a `source()`, so the CLI's `{:#}` chain does
    // not print it twice.
    #[error("{path}: cannot read: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: cannot write: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: not valid JSON for {what}: {cause}")]
    Json {
        path: PathBuf,
        what: &'static str,
        cause: serde_json::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Csv {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{path}: missing column `{column}` (columns present: {present})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        present: String,
    },
    #[error("{input}: {msg}")]
    Invalid { input: String, msg: String },
    #[error("cannot register the embedded font: {0}")]
    Font(String),
    #[error("drawing {figure}: {msg}")]
    Draw { figure: String, msg: String },
}

impl FigureError {
    /// Shorthand for a semantic problem in an input (unknown label, ragged matrix, …).
    pub fn invalid(input: impl std::fmt::Display, msg: impl Into<String>) -> Self {
        FigureError::Invalid {
            input: input.to_string(),
            msg: msg.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, FigureError>;
