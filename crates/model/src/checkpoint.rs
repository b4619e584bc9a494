//! Checkpoint loading by ORIGINAL tensor names into any burn module whose field paths mirror the
//! reference (see the crate doc). The file is read through `sam3lab-checkpoint`'s one reader; this
//! module checks it against the model and writes its tensors into the module.
//!
//! Accepted inputs:
//! - `.safetensors` with the reference names, with or without the `detector.` prefix of the video
//!   checkpoint (when the prefix is present, only `detector.*` keys are the image model's);
//! - HF-transformers SAM3 safetensors (`vision_encoder.*`, `detr_decoder.*`, …; design doc §5):
//!   renamed back, q/k/v re-concatenated into `in_proj_*` / the ViT `qkv`, the dropped cls row of
//!   `pos_embed` restored (zeros: SAM3 never reads it) and `text_projection` transposed back;
//!   transformers' video checkpoints (`Sam3VideoModel`) hold the image model under
//!   `detector_model.` (only those keys are read; `tracker_model.*` / `tracker_neck.*` are skipped);
//! - PyTorch zip state dicts (`sam3.pt`), possibly wrapped in `{"model": …}` or
//!   `{"state_dict": …}`, read in place (`sam3lab_checkpoint::open_pytorch`, complex RoPE storages included): nothing
//!   is copied or written;
//! - a fixture directory (`weights.safetensors` + `config.json`).
//!
//! Always skipped: `tracker.*`, `backbone.vision_backbone.sam2_convs.*` (the tracker's neck) and the
//! RoPE buffers `*.attn.freqs_cis` (recomputed). Before anything is written into the module, the
//! file's key set and shapes are checked against [`crate::params::param_shapes`]; every missing
//! key, unexpected key and shape mismatch is reported in ONE [`ModelError::CheckpointMismatch`]
//! naming the file.
//!
//! Non-finite weights are refused: after loading, every tensor written into the module is scanned,
//! and NaN or ±Inf anywhere stops the load with an error naming the file and every such tensor
//! (with its NaN / Inf counts). [`LoadOptions::allow_nonfinite`] — the CLI's `--allow-nonfinite`,
//! through [`set_allow_nonfinite`] — lets such a checkpoint load, for debugging only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{FloatCastAdapter, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter};
use burn::tensor::DType;
use sam3lab_checkpoint::dtype::{self, Dtype, dtype_name};
use sam3lab_checkpoint::hf::{self, HfPlan};
use sam3lab_checkpoint::{Checkpoint, Format};

use crate::{ModelError, Sam3Config};

/// The file layouts the loader recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum CheckpointFormat {
    /// safetensors with the reference key names (optionally `detector.`-prefixed).
    Safetensors,
    /// safetensors in HF-transformers naming, mapped back on load.
    HfSafetensors,
    /// A PyTorch `torch.save` state dict.
    Pytorch,
}

/// A checkpoint argument resolved to files (the weights and a fixture directory's `config.json`).
pub use sam3lab_checkpoint::Resolved as ResolvedCheckpoint;
/// The image model's key rule, shared with the weight-space probes.
pub use sam3lab_checkpoint::{is_skipped_key, skip_reason};

/// What a load did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LoadReport {
    pub path: PathBuf,
    pub format: CheckpointFormat,
    /// Tensors written into the module.
    pub applied: usize,
    /// File keys ignored on purpose (tracker, sam2 neck, RoPE buffers), count.
    pub skipped: usize,
}

/// One tensor of a checkpoint under its normalised (reference) name.
#[derive(Clone, Debug)]
pub struct IndexEntry {
    pub shape: Vec<usize>,
    pub dtype: String,
}

/// The tensors of a checkpoint file, keyed by normalised reference name (`detector.` stripped,
/// HF names mapped back), without the skipped keys.
#[derive(Clone, Debug)]
pub struct CheckpointIndex {
    pub path: PathBuf,
    pub format: CheckpointFormat,
    pub tensors: BTreeMap<String, IndexEntry>,
    /// Stored keys the image model does not load (tracker, tracker neck, RoPE buffers, …).
    pub skipped: Vec<String>,
}

/// How a checkpoint is loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Load tensors holding NaN or ±Inf instead of refusing them (debugging only).
    pub allow_nonfinite: bool,
}

impl LoadOptions {
    /// The process-wide options: what [`load_into`] (and so `Sam3::load` / `Predictor::load`) uses.
    pub fn process() -> Self {
        LoadOptions { allow_nonfinite: nonfinite_allowed() }
    }
}

static ALLOW_NONFINITE: AtomicBool = AtomicBool::new(false);

/// Process-wide escape for debugging (the CLI's `--allow-nonfinite`): checkpoints with NaN / ±Inf
/// load, and a forward with non-finite outputs only warns (see
/// [`crate::predict::check_finite_outputs`]). Off by default.
pub fn set_allow_nonfinite(allow: bool) {
    ALLOW_NONFINITE.store(allow, Ordering::Relaxed);
}

/// Whether [`set_allow_nonfinite`] switched the non-finite checks off.
pub fn nonfinite_allowed() -> bool {
    ALLOW_NONFINITE.load(Ordering::Relaxed)
}

/// Count (NaN, ±Inf) in little-endian float bytes of `dtype`; `None` for non-float types.
pub fn count_nonfinite(dtype: DType, bytes: &[u8]) -> Option<(usize, usize)> {
    let mut nan = 0usize;
    let mut inf = 0usize;
    let mut see = |v: f64| {
        if v.is_nan() {
            nan += 1;
        } else if v.is_infinite() {
            inf += 1;
        }
    };
    match dtype {
        DType::F32 | DType::Flex32 => bytes.chunks_exact(4).for_each(|c| see(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)),
        DType::F64 => bytes.chunks_exact(8).for_each(|c| see(f64::from_le_bytes(c.try_into().expect("8 bytes")))),
        DType::F16 => bytes.chunks_exact(2).for_each(|c| see(half::f16::from_le_bytes([c[0], c[1]]).to_f64())),
        DType::BF16 => bytes.chunks_exact(2).for_each(|c| see(half::bf16::from_le_bytes([c[0], c[1]]).to_f64())),
        _ => return None,
    }
    Some((nan, inf))
}

/// Every float tensor of `module` holding NaN or ±Inf, as `name (n NaN, m Inf of k)` with the
/// reference name (`module_prefix` + module path).
pub fn nonfinite_tensors<M: ModuleSnapshot>(module: &M, module_prefix: &str) -> Result<Vec<String>, ModelError> {
    let mut bad = Vec::new();
    // torch names (LayerNorm gamma/beta → weight/bias), as the checkpoint spells them
    for t in module.collect(None, Some(Box::new(burn::store::BurnToPyTorchAdapter)), false) {
        let bytes = t
            .to_bytes()
            .map_err(|e| ModelError::Checkpoint { path: String::new(), why: format!("internal: reading back `{}`: {e}", t.name) })?;
        if let Some((nan, inf)) = count_nonfinite(t.dtype, &bytes)
            && nan + inf > 0
        {
            let n = t.shape.num_elements();
            bad.push(format!("{module_prefix}{} ({nan} NaN, {inf} Inf of {n})", t.name));
        }
    }
    Ok(bad)
}

fn ckpt_err(path: &Path, why: impl Into<String>) -> ModelError {
    ModelError::Checkpoint { path: path.display().to_string(), why: why.into() }
}

/// A file, or a fixture directory holding `weights.safetensors` (+ `config.json`).
pub fn resolve(path: &Path) -> Result<ResolvedCheckpoint, ModelError> {
    Ok(sam3lab_checkpoint::resolve(path)?)
}

/// The model config for a checkpoint: the override, else the fixture's `config.json`, else the
/// released SAM3 hyper-parameters.
pub fn resolve_config(resolved: &ResolvedCheckpoint, config_override: Option<&Path>) -> Result<Sam3Config, ModelError> {
    let cfg = match (config_override, resolved.config.as_deref()) {
        (Some(p), _) | (None, Some(p)) => Sam3Config::from_file(p)?,
        (None, None) => Sam3Config::sam3(),
    };
    if let Err(why) = crate::backbone::check_supported(&cfg) {
        let path = config_override.or(resolved.config.as_deref()).map(|p| p.display().to_string()).unwrap_or_default();
        return Err(ModelError::Config { path, why });
    }
    Ok(cfg)
}

/// sha256 (hex) of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    sam3lab_hooks::sha256_file(path).map_err(|e| ModelError::Io { path: path.display().to_string(), source: e })
}

/// Read a checkpoint's tensor index (names, shapes, dtypes) without loading the data.
pub fn read_index(path: &Path) -> Result<CheckpointIndex, ModelError> {
    Ok(index_of(&Checkpoint::open(path)?)?.0)
}

/// [`read_index`] taking a scratch directory, kept for compatibility: no loader writes temporary
/// files any more (a `.pt` with complex storages is read in place), so `scratch` is unused.
pub fn read_index_with_scratch(path: &Path, scratch: &Path) -> Result<CheckpointIndex, ModelError> {
    let _ = scratch;
    read_index(path)
}

/// The index of an opened file under the reference names, and for an HF file the plan that builds
/// its tensors.
fn index_of(ckpt: &Checkpoint) -> Result<(CheckpointIndex, Option<HfPlan>), ModelError> {
    let path = ckpt.path().to_path_buf();
    let stored = || ckpt.all_entries().iter().map(|e| e.stored_name.as_str());
    if ckpt.format() == Format::Safetensors && hf::is_hf(stored()) {
        let plan = HfPlan::new(ckpt)?;
        let tensors = plan.tensors().map(|(n, s, d)| (n.to_string(), IndexEntry { shape: s.to_vec(), dtype: dtype_name(d) })).collect();
        let index = CheckpointIndex { path, format: CheckpointFormat::HfSafetensors, tensors, skipped: plan.skipped.clone() };
        return Ok((index, Some(plan)));
    }
    let tensors = ckpt.tensors().map(|e| (e.name.clone(), IndexEntry { shape: e.shape.clone(), dtype: dtype_name(e.dtype) })).collect();
    let skipped = ckpt.all_entries().iter().filter(|e| e.skipped.is_some()).map(|e| e.key.clone()).collect();
    let format = match ckpt.format() {
        Format::Safetensors => CheckpointFormat::Safetensors,
        Format::Pytorch => CheckpointFormat::Pytorch,
    };
    Ok((CheckpointIndex { path, format, tensors, skipped }, None))
}

/// Compare an index with the expected `(key, torch shape)` list restricted to `module_prefix`
/// (keys outside it are ignored). One error lists every problem.
pub fn check_index(index: &CheckpointIndex, expected: &[(String, Vec<usize>)], module_prefix: &str) -> Result<(), ModelError> {
    let want: BTreeMap<&str, &Vec<usize>> =
        expected.iter().filter(|(k, _)| k.starts_with(module_prefix)).map(|(k, s)| (k.as_str(), s)).collect();
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    for (k, s) in &want {
        match index.tensors.get(*k) {
            None => missing.push(k.to_string()),
            Some(e) if &e.shape != *s => mismatched.push((k.to_string(), s.to_vec(), e.shape.clone())),
            Some(_) => {}
        }
    }
    let unexpected: Vec<String> = index
        .tensors
        .keys()
        .filter(|k| k.starts_with(module_prefix) && !want.contains_key(k.as_str()))
        .cloned()
        .collect();
    let bad_dtype: Vec<String> = index
        .tensors
        .iter()
        .filter(|(k, e)| want.contains_key(k.as_str()) && !["F32", "F16", "BF16", "F64"].contains(&e.dtype.as_str()))
        .map(|(k, e)| format!("{k} ({})", e.dtype))
        .collect();
    if !bad_dtype.is_empty() {
        return Err(ckpt_err(&index.path, format!("non-float tensors where parameters are expected: {}", bad_dtype.join(", "))));
    }
    if missing.is_empty() && unexpected.is_empty() && mismatched.is_empty() {
        Ok(())
    } else {
        Err(ModelError::CheckpointMismatch { path: index.path.display().to_string(), missing, unexpected, mismatched })
    }
}

/// Load a checkpoint into `module`, whose parameter paths are the reference keys with
/// `module_prefix` removed (`""` for the whole model, `"backbone."` for a [`crate::backbone::Backbone`]).
/// `expected` is the full key list ([`crate::params::param_shapes`]); it is checked first, so a
/// wrong file never half-loads. A `.pt` (complex RoPE buffers included) is read in place: nothing
/// is copied or written.
/// Non-finite tensors are refused unless [`set_allow_nonfinite`] allowed them ([`LoadOptions::process`]).
pub fn load_into<M: ModuleSnapshot>(
    module: &mut M,
    path: &Path,
    expected: &[(String, Vec<usize>)],
    module_prefix: &str,
) -> Result<LoadReport, ModelError> {
    load_into_with_scratch(module, path, expected, module_prefix, &std::env::temp_dir())
}

/// [`load_into`] taking a scratch directory, kept for compatibility: nothing is written there
/// (a `.pt` with complex storages used to be read through a relabelled copy of the whole archive;
/// it is now read in place), so `scratch` is unused.
pub fn load_into_with_scratch<M: ModuleSnapshot>(
    module: &mut M,
    path: &Path,
    expected: &[(String, Vec<usize>)],
    module_prefix: &str,
    scratch: &Path,
) -> Result<LoadReport, ModelError> {
    load_into_with_options(module, path, expected, module_prefix, scratch, LoadOptions::process())
}

/// [`load_into_with_scratch`] with explicit [`LoadOptions`] instead of the process-wide ones.
pub fn load_into_with_options<M: ModuleSnapshot>(
    module: &mut M,
    path: &Path,
    expected: &[(String, Vec<usize>)],
    module_prefix: &str,
    scratch: &Path,
    options: LoadOptions,
) -> Result<LoadReport, ModelError> {
    let _ = scratch; // nothing is written any more: kept for API compatibility
    // opened once: the index and the load below read the same parse
    let ckpt = Arc::new(Checkpoint::open(path)?);
    let (index, plan) = index_of(&ckpt)?;
    check_index(&index, expected, module_prefix)?;
    let adapter = PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32));
    // Every tensor of the module's part of the file, under its module path; bytes are read (and
    // for an HF file rebuilt) when the applier asks for them, one tensor at a time.
    let mut wanted: Vec<PackTensor> = Vec::new();
    let mut declare = |name: &str, shape: &[usize], dtype: Dtype, read: Box<dyn Fn() -> sam3lab_checkpoint::Result<Vec<u8>> + Send + Sync>| -> Result<(), ModelError> {
        let Some(module_path) = name.strip_prefix(module_prefix) else { return Ok(()) };
        let burn_dtype = dtype::to_burn(dtype).ok_or_else(|| ckpt_err(path, format!("tensor `{name}` has dtype {dtype:?}, which sam3lab cannot load")))?;
        let declared = burn::tensor::Shape::from(shape.to_vec());
        let shape = declared.clone();
        wanted.push(burn::store::bridge::deferred(module_path.to_string(), burn_dtype, shape, None, move || {
            let bytes = read().map_err(|e| burn::store::burn_pack::Error::ValidationError(e.to_string()))?;
            Ok(burn::tensor::TensorData::from_bytes_vec(bytes, declared.clone(), burn_dtype))
        }));
        Ok(())
    };
    match plan {
        Some(plan) => {
            let plan = Arc::new(plan);
            for (name, shape, dtype) in plan.tensors() {
                let (ckpt, plan, key) = (ckpt.clone(), plan.clone(), name.to_string());
                declare(name, shape, dtype, Box::new(move || plan.read(&ckpt, &key)))?;
            }
        }
        None => {
            for e in ckpt.tensors() {
                let (reader, entry) = (ckpt.clone(), e.clone());
                // The copy is the module's; the mapped pages are dropped from this process's
                // resident set at once (they stay in the page cache), so loading a file does not
                // hold it twice.
                declare(
                    &e.name,
                    &e.shape,
                    e.dtype,
                    Box::new(move || {
                        let bytes = reader.raw_bytes(&entry)?.into_owned();
                        reader.release_entry(&entry);
                        Ok(bytes)
                    }),
                )?;
            }
        }
    }
    let result = module.apply(wanted, None, Some(Box::new(adapter)), false);
    // tensors whose bytes could not be read: a damaged file (bad checksum, cut-off storage)
    let unreadable: Vec<String> = result
        .errors
        .iter()
        .filter_map(|e| matches!(e, burn::store::ApplyError::LoadError { .. }).then(|| format!("\n  {e}")))
        .collect();
    if !unreadable.is_empty() {
        return Err(ckpt_err(path, format!("damaged: {} tensor(s) could not be read:{}", unreadable.len(), unreadable.concat())));
    }
    if !result.errors.is_empty() || !result.missing.is_empty() {
        let mut why = String::from("the module and the checkpoint disagree after the key check (a model-code bug):");
        for e in &result.errors {
            why += &format!("\n  {e}");
        }
        for (k, _) in &result.missing {
            why += &format!("\n  module parameter `{k}` got no tensor");
        }
        return Err(ckpt_err(path, why));
    }
    if !options.allow_nonfinite {
        let bad = nonfinite_tensors(module, module_prefix)?;
        if !bad.is_empty() {
            return Err(ckpt_err(
                path,
                format!(
                    "{} tensor(s) hold NaN or ±Inf (refused; pass --allow-nonfinite to load them anyway for debugging):\n  {}",
                    bad.len(),
                    bad.join("\n  ")
                ),
            ));
        }
    }
    Ok(LoadReport { path: path.into(), format: index.format, applied: result.applied.len(), skipped: index.skipped.len() })
}
