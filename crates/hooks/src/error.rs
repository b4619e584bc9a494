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
    #[error("cannot {action} hook point `{point}`{}: it is read-only (the model never uses the tapped value, so the edit would have no effect); capture it instead", via(.pattern, .point))]
    ReadOnly { point: String, pattern: String, action: String },
    #[error("hook `{name}`: {what} has shape {found:?}, expected {expected:?}")]
    Shape { name: String, what: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("`{name}` is not in the activation cache{}", suggest(.nearest))]
    NotCaptured { name: String, nearest: Vec<String> },
    #[error("cannot take the gradient at hook point `{point}`: the forward runs on `{device}`, which records no graph (load the model on an autodiff device, e.g. `Device::flex().autodiff()`)")]
    NotAutodiff { point: String, device: String },
    #[error("no gradient reached hook point `{point}`: it is not on the path from the value `backward` was called on (or that backward ran before this forward)")]
    NoGradient { point: String },
    #[error("activation cache {path}: {why}")]
    CacheIo { path: String, why: String },
}

fn via(pattern: &str, point: &str) -> String {
    if pattern == point { String::new() } else { format!(" (matched by `{pattern}`)") }
}

fn suggest(nearest: &[String]) -> String {
    if nearest.is_empty() {
        String::new()
    } else {
        format!("; nearest valid names: {}", nearest.join(", "))
    }
}
