//! Provenance carried by every probe output, and atomic JSON/CSV writing.
//!
//! Outputs hold no timestamps or timings, and maps are ordered, so the same inputs and seed give
//! the same bytes. Paths are recorded as given on the command line.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{ProbeError, Result};

/// The version string written into every manifest.
pub const SAM3LAB_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A file's path (as given) and the sha256 of its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub sha256: String,
}

impl FileRecord {
    pub fn of(path: &Path) -> Result<Self> {
        Ok(Self { path: path.display().to_string(), sha256: sha256_file(path)? })
    }
}

/// A checkpoint as a probe used it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CheckpointRecord {
    /// The label (drift rows, `LABEL=CKPT`) or role (`a`, `b`, `ref`, `source`, `target`, …).
    pub label: String,
    /// The argument as given (a file or a fixture directory).
    pub path: String,
    /// The weights file actually read.
    pub weights: String,
    pub sha256: String,
}

/// What every probe output carries.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    /// The command, e.g. `sam3lab probe drift`.
    pub tool: String,
    pub sam3lab_version: String,
    pub seed: u64,
    /// The model config (all checkpoints of one run share it).
    pub config: serde_json::Value,
    /// The `--config` override, if one was given.
    pub config_file: Option<FileRecord>,
    pub checkpoints: Vec<CheckpointRecord>,
    /// Hook points read or written.
    pub points: Vec<String>,
    pub images: Vec<FileRecord>,
    /// Prompt groups (drift) — group → phrases.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub prompts: BTreeMap<String, Vec<String>>,
    /// The pair file (heads, patch, steer, retrain, capture).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pairs: Option<PairsRecord>,
    /// Probe-specific settings (threshold, slot, label filter, …).
    pub options: BTreeMap<String, serde_json::Value>,
    /// How the numbers are computed, in words.
    pub notes: Vec<String>,
}

/// A pair file in a manifest.
#[derive(Clone, Debug, Serialize)]
pub struct PairsRecord {
    pub path: String,
    pub sha256: String,
    pub count: usize,
    pub pos: usize,
    pub neg: usize,
    /// Pairs the probe used (after a label filter).
    pub used: usize,
}

impl PairsRecord {
    pub fn of(p: &crate::inputs::Pairs, used: usize) -> Self {
        use crate::inputs::Label;
        Self {
            path: p.path.display().to_string(),
            sha256: p.sha256.clone(),
            count: p.pairs.len(),
            pos: p.count(Label::Pos),
            neg: p.count(Label::Neg),
            used,
        }
    }
}

impl Manifest {
    pub fn new(tool: &str, seed: u64) -> Self {
        Self {
            tool: tool.to_string(),
            sam3lab_version: SAM3LAB_VERSION.to_string(),
            seed,
            config: serde_json::Value::Null,
            config_file: None,
            checkpoints: vec![],
            points: vec![],
            images: vec![],
            prompts: BTreeMap::new(),
            pairs: None,
            options: BTreeMap::new(),
            notes: vec![],
        }
    }

    pub fn option(&mut self, key: &str, v: impl Serialize) {
        self.options.insert(key.to_string(), serde_json::to_value(v).expect("option serialises"));
    }
}

/// sha256 (hex) of a file's bytes, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    sam3lab_hooks::sha256_file(path).map_err(|e| ProbeError::io(path, e))
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename, so a reader
/// never sees a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    sam3lab_util::write_atomic(path, bytes).map_err(|e| ProbeError::io(path, e))
}

/// Pretty JSON with a trailing newline, written atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value)
        .map_err(|e| ProbeError::Usage(format!("cannot serialise {}: {e}", path.display())))?;
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
