use thiserror::Error;

/// Everything that can go wrong loading activations, training, saving or ranking an SAE.
/// Every variant names the file / key / label at fault.
#[derive(Debug, Error)]
pub enum SaeError {
    #[error("{path}: {why}")]
    Io { path: String, why: String },
    #[error("activation cache {path}: {source}")]
    Cache { path: String, source: sam3lab_hooks::HookError },
    #[error("activation cache {path}: point `{point}` has shape {found:?}: {why}")]
    Shape { path: String, point: String, found: Vec<usize>, why: String },
    #[error("activation cache {path}: point `{point}`: {why}")]
    Data { path: String, point: String, why: String },
    #[error("activation source `{source_arg}`: {why}")]
    Source { source_arg: String, why: String },
    #[error("activation cache {path}: manifest `extra.{key}`: {why}")]
    Manifest { path: String, key: String, why: String },
    #[error("pairs file {path} line {line}: {why}")]
    Pairs { path: String, line: usize, why: String },
    #[error("unknown checkpoint label `{label}`; known labels: {}", .known.join(", "))]
    UnknownLabel { label: String, known: Vec<String> },
    #[error("checkpoint label `{label}`: {why}")]
    Label { label: String, why: String },
    #[error("SAE directory {path}: {why}")]
    SaeFile { path: String, why: String },
    #[error("invalid SAE configuration: {0}")]
    Config(String),
    #[error("{what}: activations have d = {found}, expected d = {expected}")]
    Width { what: String, expected: usize, found: usize },
}

pub type Result<T> = std::result::Result<T, SaeError>;

pub(crate) fn io_err(path: &std::path::Path, e: impl std::fmt::Display) -> SaeError {
    SaeError::Io { path: path.display().to_string(), why: e.to_string() }
}
