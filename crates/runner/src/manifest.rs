//! Provenance carried by every probe output (the records are `sam3lab-results`' types; here they
//! are filled from files), and atomic JSON/CSV writing.
//!
//! Outputs hold no timestamps or timings, and maps are ordered, so the same inputs and seed give
//! the same bytes. Paths are recorded as given on the command line.

use std::path::Path;

use serde::Serialize;

use crate::{RunError, Result};

pub use sam3lab_results::{CheckpointRecord, FileRecord, Manifest, PairsRecord, SAM3LAB_VERSION};

/// The [`FileRecord`] of a file: its path as given and the sha256 of its bytes.
pub fn file_record(path: &Path) -> Result<FileRecord> {
    Ok(FileRecord { path: path.display().to_string(), sha256: sha256_file(path)? })
}

/// The [`PairsRecord`] of a pair file of which the probe used `used` pairs.
pub fn pairs_record(p: &crate::inputs::Pairs, used: usize) -> PairsRecord {
    use crate::inputs::Label;
    PairsRecord {
        path: p.path.display().to_string(),
        sha256: p.sha256.clone(),
        count: p.pairs.len(),
        pos: p.count(Label::Pos),
        neg: p.count(Label::Neg),
        used,
    }
}

/// sha256 (hex) of a file's bytes, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    sam3lab_hooks::sha256_file(path).map_err(|e| RunError::io(path, e))
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename, so a reader
/// never sees a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    sam3lab_util::write_atomic(path, bytes).map_err(|e| RunError::io(path, e))
}

/// Pretty JSON with a trailing newline, written atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value)
        .map_err(|e| RunError::Usage(format!("cannot serialise {}: {e}", path.display())))?;
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

/// A CSV table built in memory ([`sam3lab_util::csv::Table`]: the `csv` crate's quoting), written
/// atomically.
pub struct Csv(sam3lab_util::csv::Table);

impl Csv {
    pub fn new(header: &[&str]) -> Self {
        Self(sam3lab_util::csv::Table::new(header))
    }

    pub fn row<I: IntoIterator<Item = String>>(&mut self, fields: I) {
        self.0.row(fields);
    }

    pub fn write(self, path: &Path) -> Result<()> {
        write_atomic(path, self.0.into_string().as_bytes())
    }
}

/// A number for CSV: shortest round-trip form, empty for `None`.
pub use sam3lab_util::csv::num;
