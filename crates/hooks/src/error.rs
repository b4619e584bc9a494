use thiserror::Error;

/// Everything that can go wrong naming, matching or applying a hook.
#[derive(Debug, Error)]
pub enum HookError {
    #[error("invalid hook name `{name}`: {why}")]
    InvalidName { name: String, why: String },
    #[error("unknown hook point `{name}`{}", suggest(.nearest))]
    Unknown { name: String, nearest: Vec<String> },
    #[error("hook pattern `{pattern}` matches no hook point{}", suggest(.nearest))]
    NoMatch { pattern: String, nearest: Vec<String> },
    #[error("hook `{name}`: {what} has shape {found:?}, expected {expected:?}")]
    Shape { name: String, what: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("`{name}` is not in the activation cache{}", suggest(.nearest))]
    NotCaptured { name: String, nearest: Vec<String> },
    #[error("activation cache {path}: {why}")]
    CacheIo { path: String, why: String },
}

fn suggest(nearest: &[String]) -> String {
    if nearest.is_empty() {
        String::new()
    } else {
        format!("; nearest valid names: {}", nearest.join(", "))
    }
}
