//! One module per subcommand. Each exposes `Args` (clap) and `run(Args) -> anyhow::Result<u8>`
//! returning the exit code (0 ok, 1 a check failed); an `Err` exits 2.
pub mod bench;
pub mod eval;
pub mod figures;
pub mod hooks;
pub mod merge;
pub mod parity;
pub mod probe;
pub mod reproduce;
pub mod retrain;
pub mod run;
pub mod sae;
pub mod segment;
pub mod surgery;
pub mod train;
pub mod weights;
pub mod world;

use std::path::Path;

pub use sam3lab_model::predict::{PROMPT_SHOWN_CHARS, shorten_prompt};

/// A prompt (or a label holding one) as a table cell: cut by [`shorten_prompt`]'s rule — its first
/// [`PROMPT_SHOWN_CHARS`] characters, `…` and its total length — but not quoted. Result files keep
/// the full text; only what reaches the terminal is cut.
pub fn shorten_cell(text: &str) -> String {
    let n = text.chars().count();
    if n <= PROMPT_SHOWN_CHARS {
        text.to_string()
    } else {
        let head: String = text.chars().take(PROMPT_SHOWN_CHARS).collect();
        format!("{head}… ({n} characters)")
    }
}

/// The nearest existing ancestor of `p` (itself included) that is not a directory, if any: what
/// stops a directory (or a file) from being created at `p`.
fn blocking_file(p: &Path) -> Option<&Path> {
    let mut cur = Some(p);
    while let Some(c) = cur {
        if c.as_os_str().is_empty() {
            return None;
        }
        if let Ok(m) = std::fs::metadata(c) {
            return (!m.is_dir()).then_some(c);
        }
        cur = c.parent();
    }
    None
}

/// Check an output directory flag (`--out DIR`) before any work starts: it must be a directory or
/// not exist yet, and nothing on its path may be a file.
pub fn check_out_dir(flag: &str, p: &Path) -> anyhow::Result<()> {
    match blocking_file(p) {
        Some(f) if f == p => anyhow::bail!(
            "{flag} {}: must be a directory (it is created if missing), and {} is a file",
            p.display(),
            f.display()
        ),
        Some(f) => anyhow::bail!(
            "{flag} {}: must be a directory, and {} on its path is a file",
            p.display(),
            f.display()
        ),
        None => Ok(()),
    }
}

/// Check an output file flag (`--out FILE`) before any work starts: it must not be a directory,
/// and nothing on the path to it may be a file.
pub fn check_out_file(flag: &str, p: &Path) -> anyhow::Result<()> {
    if p.is_dir() {
        anyhow::bail!("{flag} {}: must be a file name, and {} is a directory", p.display(), p.display());
    }
    if let Some(f) = p.parent().and_then(blocking_file) {
        anyhow::bail!("{flag} {}: {} on its path is a file, not a directory", p.display(), f.display());
    }
    Ok(())
}
