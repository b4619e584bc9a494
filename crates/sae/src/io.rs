//! The SAE directory: `sae.safetensors` (W_enc d×m, b_enc m, W_dec m×d, b_dec d; f32, SAELens names
//! and shapes, weights for RAW activations) and `sae.json` ([`SaeMeta`]: config, metrics, training
//! manifest, and the sha256 of `sae.safetensors`, which is checked on load so a torn or edited pair
//! is refused). Each file is written to a temporary name in the directory and renamed.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::acts::ActivationSet;
use crate::error::{Result, SaeError, io_err};
use crate::metrics::Metrics;
use crate::model::{Activation, Sae, SaeWeights};
use crate::train::{StepLog, TrainConfig};

pub const FORMAT: &str = "sam3lab-sae/1";
pub const WEIGHTS_FILE: &str = "sae.safetensors";
pub const META_FILE: &str = "sae.json";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointRows {
    pub checkpoint_sha256: String,
    pub rows: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub checkpoint_sha256: String,
    pub rows: usize,
}

/// One `--acts` source an SAE was trained or evaluated on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub label: Option<String>,
    pub source: String,
    pub rows: usize,
    pub checkpoints: Vec<CheckpointRows>,
    pub files: Vec<FileRecord>,
}

impl SourceRecord {
    pub fn of(label: Option<&str>, set: &ActivationSet) -> Self {
        SourceRecord {
            label: label.map(str::to_string),
            source: set.source.clone(),
            rows: set.n_rows(),
            checkpoints: set.checkpoints().into_iter().map(|(checkpoint_sha256, rows)| CheckpointRows { checkpoint_sha256, rows }).collect(),
            files: set
                .files
                .iter()
                .map(|f| FileRecord { path: f.path.clone(), checkpoint_sha256: f.checkpoint_sha256.clone(), rows: f.rows })
                .collect(),
        }
    }
}

/// Everything in `sae.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaeMeta {
    pub format: String,
    pub sam3lab_version: String,
    pub d_in: usize,
    pub width: usize,
    pub activation: Activation,
    /// The hook point the SAE reads, and which axis of it is d (null = last).
    pub point: String,
    pub feature_axis: Option<usize>,
    /// The scale s rows were multiplied by for training; already folded into the saved biases
    /// (feature activations are in raw units: f_raw = f_train / s).
    pub act_scale: f64,
    /// Null for an SAE not trained here (built from given weights).
    pub train: Option<TrainConfig>,
    pub effective_batch: Option<usize>,
    pub sources: Vec<SourceRecord>,
    /// Evaluation metrics (raw units) by checkpoint label ("all" = every training row).
    pub metrics: BTreeMap<String, Metrics>,
    pub log: Vec<StepLog>,
    /// sha256 of `sae.safetensors`.
    pub weights_sha256: String,
}

/// Write to a temporary file in the same directory, then rename (no partial file under `path`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    sam3lab_util::write_atomic(path, bytes).map_err(|e| io_err(path, e))
}

pub use sam3lab_hooks::sha256_hex;

pub fn sha256_file(path: &Path) -> Result<String> {
    sam3lab_hooks::sha256_file(path).map_err(|e| io_err(path, e))
}

fn weights_bytes(w: &SaeWeights) -> Result<Vec<u8>> {
    let mut md = std::collections::HashMap::new();
    md.insert("format".to_string(), FORMAT.to_string());
    tensors_bytes(w, Some(md))
}

/// The four tensors (SAELens names and shapes, f32) as one safetensors file.
fn tensors_bytes(w: &SaeWeights, md: Option<std::collections::HashMap<String, String>>) -> Result<Vec<u8>> {
    w.check()?;
    let (d, m) = (w.d_in, w.width);
    let le = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let data = [
        ("W_enc", le(&w.w_enc), vec![d, m]),
        ("b_enc", le(&w.b_enc), vec![m]),
        ("W_dec", le(&w.w_dec), vec![m, d]),
        ("b_dec", le(&w.b_dec), vec![d]),
    ];
    let views: Vec<(String, TensorView<'_>)> = data
        .iter()
        .map(|(k, b, s)| TensorView::new(Dtype::F32, s.clone(), b).map(|v| (k.to_string(), v)))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| SaeError::Config(e.to_string()))?;
    safetensors::serialize(views, md).map_err(|e| SaeError::Config(e.to_string()))
}

/// Write `dir/sae.safetensors` then `dir/sae.json` (with the weights' sha256 filled in).
pub fn save(dir: &Path, w: &SaeWeights, meta: &SaeMeta) -> Result<SaeMeta> {
    let bytes = weights_bytes(w)?;
    let mut meta = meta.clone();
    meta.weights_sha256 = sha256_hex(&bytes);
    meta.d_in = w.d_in;
    meta.width = w.width;
    let json = serde_json::to_string_pretty(&meta).map_err(|e| SaeError::Config(e.to_string()))?;
    write_atomic(&dir.join(WEIGHTS_FILE), &bytes)?;
    write_atomic(&dir.join(META_FILE), format!("{json}\n").as_bytes())?;
    Ok(meta)
}

/// SAELens's file names (`sae_lens.constants`: `SAE_CFG_FILENAME`, `SAE_WEIGHTS_FILENAME`).
pub const SAELENS_CFG_FILE: &str = "cfg.json";
pub const SAELENS_WEIGHTS_FILE: &str = "sae_weights.safetensors";
/// The SAELens version whose on-disk format [`export_saelens`] writes (`metadata.sae_lens_version`;
/// SAELens converts configs of versions below 6.0.0 from its older layout on load).
pub const SAELENS_FORMAT_VERSION: &str = "6.0.0";

/// SAELens 6.x's `cfg.json` for an SAE (what `SAE.save_model` writes for a `StandardSAE` /
/// `TopKSAE`: d_in, d_sae, dtype, device, apply_b_dec_to_input, normalize_activations,
/// reshape_activations, metadata, architecture, and for TopK `k` and `rescale_acts_by_decoder_norm`),
/// plus a `sam3lab` object (provenance; SAELens drops keys that are not config fields).
pub fn saelens_cfg(meta: &SaeMeta) -> serde_json::Value {
    let mut cfg = serde_json::json!({
        "d_in": meta.d_in,
        "d_sae": meta.width,
        "dtype": "float32",
        "device": "cpu",
        // f = act(W_enc·(x − b_dec) + b_enc): SAELens's `process_sae_in` subtracts b_dec.
        "apply_b_dec_to_input": true,
        // The saved weights read raw activations (act_scale is folded into the biases).
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "sae_lens_version": SAELENS_FORMAT_VERSION,
            "sae_lens_training_version": SAELENS_FORMAT_VERSION,
            "model_name": "sam3",
            "hook_name": meta.point,
        },
        "architecture": "standard",
        "sam3lab": {
            "format": FORMAT,
            "sam3lab_version": meta.sam3lab_version,
            "point": meta.point,
            "feature_axis": meta.feature_axis,
            "act_scale": meta.act_scale,
            "weights_sha256": meta.weights_sha256,
        },
    });
    if let Activation::Topk { k } = meta.activation {
        cfg["architecture"] = "topk".into();
        cfg["k"] = k.into();
        // sam3lab's decoder directions are unit-norm already.
        cfg["rescale_acts_by_decoder_norm"] = false.into();
    }
    cfg
}

/// Export the SAE directory `dir` (checked as [`load`] checks it) in SAELens 6.x's on-disk format:
/// `out/cfg.json` ([`saelens_cfg`]) and `out/sae_weights.safetensors` (`W_enc` d × m, `b_enc` m,
/// `W_dec` m × d, `b_dec` d, float32, no metadata), which `sae_lens.SAE.load_from_disk(out)` loads.
/// Each file is written to a temporary name and renamed; the same SAE gives the same bytes.
pub fn export_saelens(dir: &Path, out: &Path) -> Result<()> {
    let (sae, meta) = load(dir, &Device::flex())?;
    let bytes = tensors_bytes(&sae.to_weights(), None)?;
    let cfg = serde_json::to_string_pretty(&saelens_cfg(&meta)).map_err(|e| SaeError::Config(e.to_string()))?;
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    write_atomic(&out.join(SAELENS_WEIGHTS_FILE), &bytes)?;
    write_atomic(&out.join(SAELENS_CFG_FILE), format!("{cfg}\n").as_bytes())
}

/// Load an SAE directory (weights checked against `sae.json`'s sha256 and shapes).
pub fn load(dir: &Path, device: &Device) -> Result<(Sae, SaeMeta)> {
    let err = |why: String| SaeError::SaeFile { path: dir.display().to_string(), why };
    let mp = dir.join(META_FILE);
    let text = std::fs::read_to_string(&mp).map_err(|e| err(format!("cannot read {META_FILE}: {e}")))?;
    let meta: SaeMeta = serde_json::from_str(&text).map_err(|e| err(format!("{META_FILE} is not a valid SAE manifest: {e}")))?;
    if meta.format != FORMAT {
        return Err(err(format!("{META_FILE} has format `{}`, expected `{FORMAT}`", meta.format)));
    }
    let wp = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&wp).map_err(|e| err(format!("cannot read {WEIGHTS_FILE}: {e}")))?;
    let sha = sha256_hex(&bytes);
    if sha != meta.weights_sha256 {
        return Err(err(format!(
            "{WEIGHTS_FILE} has sha256 {sha} but {META_FILE} records {} (partial write or edited file)",
            meta.weights_sha256
        )));
    }
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| err(format!("{WEIGHTS_FILE}: {e}")))?;
    let (d, m) = (meta.d_in, meta.width);
    let get = |name: &str, shape: Vec<usize>| -> Result<Vec<f32>> {
        let v = st.tensor(name).map_err(|_| err(format!("{WEIGHTS_FILE} has no tensor `{name}`")))?;
        if v.dtype() != Dtype::F32 || v.shape() != shape.as_slice() {
            return Err(err(format!("tensor `{name}` is {:?} {:?}, expected F32 {shape:?}", v.dtype(), v.shape())));
        }
        Ok(v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let w = SaeWeights {
        d_in: d,
        width: m,
        w_enc: get("W_enc", vec![d, m])?,
        b_enc: get("b_enc", vec![m])?,
        w_dec: get("W_dec", vec![m, d])?,
        b_dec: get("b_dec", vec![d])?,
    };
    let sae = Sae::from_weights(&w, meta.activation, device).map_err(|e| err(e.to_string()))?;
    Ok((sae, meta))
}
