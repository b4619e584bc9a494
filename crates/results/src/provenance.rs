//! Provenance: what identifies the inputs of a result file. Outputs hold no timestamps or
//! timings, and maps are ordered, so the same inputs and seed give the same bytes. Paths are
//! recorded as given on the command line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The version string written into every manifest.
pub const SAM3LAB_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A file's identity in every result file — a checkpoint, a config, an image, a direction: the
/// path as given and the sha256 (hex) of its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub sha256: String,
}

/// A checkpoint as a probe used it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// The label (drift rows, `LABEL=CKPT`) or role (`a`, `b`, `ref`, `source`, `target`, …).
    pub label: String,
    /// The argument as given (a file or a fixture directory).
    pub path: String,
    /// The weights file actually read.
    pub weights: String,
    pub sha256: String,
}

/// What every probe output carries (`manifest.json`, and the `manifest` of a drift table or
/// presence bars).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prompts: BTreeMap<String, Vec<String>>,
    /// The pair file (heads, patch, steer, retrain, capture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<PairsRecord>,
    /// Probe-specific settings (threshold, slot, label filter, …).
    pub options: BTreeMap<String, serde_json::Value>,
    /// How the numbers are computed, in words.
    pub notes: Vec<String>,
}

/// A pair file in a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairsRecord {
    pub path: String,
    pub sha256: String,
    pub count: usize,
    pub pos: usize,
    pub neg: usize,
    /// Pairs the probe used (after a label filter).
    pub used: usize,
}

impl Manifest {
    /// An empty manifest of `tool` at this version.
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

    /// Records a probe-specific setting.
    pub fn option(&mut self, key: &str, v: impl Serialize) {
        self.options.insert(key.to_string(), serde_json::to_value(v).expect("option serialises"));
    }
}
