//! Checkpoint loading by ORIGINAL tensor names into any burn module whose field paths mirror the
//! reference (see the crate doc).
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
//!   `{"state_dict": …}`, through burn's pickle-free reader. A file with complex storages (the
//!   complex64 RoPE tables of the released `sam3.pt`), which that reader refuses, is read in place
//!   by sam3lab's own data-only pickle reader (`pt_complex`): nothing is copied or written;
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::pytorch_reader::PytorchReader;
use burn::store::{FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::DType;
use regex::Regex;
use safetensors::{Dtype, SafeTensors};

use crate::{ModelError, Sam3Config};

mod pt_complex;

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

/// A checkpoint argument resolved to files.
#[derive(Clone, Debug)]
pub struct ResolvedCheckpoint {
    pub weights: PathBuf,
    /// `config.json` of a fixture directory.
    pub config: Option<PathBuf>,
}

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
    pub skipped: Vec<String>,
    /// Raw-key prefix in front of the reference names (`detector.`, `model.detector.`, …).
    raw_prefix: String,
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

/// One tensor of a `.pt` file, its bytes read on request ([`open_pytorch`]).
#[derive(Clone)]
pub struct PtTensor {
    /// Dotted path through the pickled dicts (`model.detector.…` under a `{"model": …}` wrapper).
    pub name: String,
    pub dtype: burn::store::pytorch_reader::DType,
    /// For a complex tensor, its real view's shape (a trailing axis of 2: real, imaginary).
    pub shape: Vec<usize>,
    /// Stored as complex64 (read as f32) or complex128 (read as f64), as `torch.view_as_real`.
    pub complex: bool,
    read: std::sync::Arc<dyn Fn() -> std::io::Result<Vec<u8>> + Send + Sync>,
}

impl PtTensor {
    fn new(
        name: String,
        dtype: burn::store::pytorch_reader::DType,
        shape: Vec<usize>,
        complex: bool,
        read: impl Fn() -> std::io::Result<Vec<u8>> + Send + Sync + 'static,
    ) -> Self {
        PtTensor { name, dtype, shape, complex, read: std::sync::Arc::new(read) }
    }

    /// The tensor's bytes, contiguous, row-major, little-endian (a strided view is gathered).
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        (self.read)().map_err(|e| std::io::Error::new(e.kind(), format!("tensor '{}': {e}", self.name)))
    }

    pub fn num_elements(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn byte_len(&self) -> usize {
        self.num_elements() * self.dtype.size()
    }
}

impl std::fmt::Debug for PtTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PtTensor").field("name", &self.name).field("dtype", &self.dtype).field("shape", &self.shape).finish()
    }
}

/// The tensors of a `.pt` file, read in place: nothing is copied or written. A file whose
/// `data.pkl` names complex storages (the complex64 RoPE tables of the released `sam3.pt`, which
/// burn's reader refuses) is parsed by sam3lab's own data-only pickle reader (`pt_complex`);
/// every other file goes through burn's `PytorchReader`. Complex tensors are allowed only under
/// `*.attn.freqs_cis` (which every loader skips); any other is refused, naming the keys.
pub fn open_pytorch(path: &Path) -> Result<Vec<PtTensor>, ModelError> {
    if let Some((archive, root, pickle)) = pt_complex::open_pickle(path)
        && pt_complex::has_complex(&pickle)
    {
        let tensors = pt_complex::read_in_place(path, archive, &root, &pickle)?;
        let foreign: Vec<String> = tensors
            .iter()
            .filter(|t| t.complex && !t.name.ends_with(".attn.freqs_cis"))
            .map(|t| format!("{} ({})", t.name, if t.dtype.size() == 4 { "complex64" } else { "complex128" }))
            .collect();
        if !foreign.is_empty() {
            return Err(ckpt_err(
                path,
                format!(
                    "holds complex tensors other than the RoPE tables `*.attn.freqs_cis` (the only ones the loader \
                     skips): {}; re-save them as real tensors (`torch.view_as_real`) or drop them",
                    foreign.join(", ")
                ),
            ));
        }
        return Ok(tensors);
    }
    let reader = PytorchReader::new(path).map_err(|e| {
        let msg = e.to_string();
        let hint = if msg.contains("Complex") {
            " — a complex storage type other than complex64/complex128, which sam3lab cannot read \
             (only the complex64 RoPE tables `*.attn.freqs_cis` of sam3.pt are expected)"
        } else {
            ""
        };
        ckpt_err(path, format!("not a readable PyTorch checkpoint: {msg}{hint}"))
    })?;
    Ok(reader
        .into_tensors()
        .into_values()
        .map(|t| {
            let (name, dtype, shape, read) = t.into_parts();
            PtTensor::new(name, dtype, shape, false, read)
        })
        .collect())
}

/// A lazily read burn-store tensor over a [`PtTensor`]: its bytes are read when the applier draws them.
fn pack_tensor(t: PtTensor) -> PackTensor {
    use burn::store::pytorch_reader::DType as Pt;
    let dtype = match t.dtype {
        Pt::F64 => DType::F64,
        Pt::F32 => DType::F32,
        Pt::F16 => DType::F16,
        Pt::BF16 => DType::BF16,
        Pt::I64 => DType::I64,
        Pt::I32 => DType::I32,
        Pt::I16 => DType::I16,
        Pt::I8 => DType::I8,
        Pt::U64 => DType::U64,
        Pt::U32 => DType::U32,
        Pt::U16 => DType::U16,
        Pt::U8 => DType::U8,
        Pt::Bool => DType::Bool(burn::tensor::BoolStore::Native),
    };
    let shape = burn::tensor::Shape::from(t.shape.clone());
    let declared = shape.clone();
    burn::store::bridge::deferred(t.name.clone(), dtype, shape, None, move || {
        let bytes = t.read().map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
                burn::store::burn_pack::Error::ValidationError(e.to_string())
            }
            _ => burn::store::burn_pack::Error::IoError(e.to_string()),
        })?;
        Ok(burn::tensor::TensorData::from_bytes_vec(bytes, declared.clone(), dtype))
    })
}

/// A file, or a fixture directory holding `weights.safetensors` (+ `config.json`).
pub fn resolve(path: &Path) -> Result<ResolvedCheckpoint, ModelError> {
    if path.is_dir() {
        let weights = path.join("weights.safetensors");
        if !weights.is_file() {
            return Err(ckpt_err(path, "is a directory without weights.safetensors (expected a checkpoint file or a fixture directory)"));
        }
        let config = path.join("config.json");
        return Ok(ResolvedCheckpoint { weights, config: config.is_file().then_some(config) });
    }
    if !path.exists() {
        return Err(ckpt_err(path, "no such file"));
    }
    Ok(ResolvedCheckpoint { weights: path.to_path_buf(), config: None })
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

/// Why the image model never loads `key` (a name after the `detector.` prefix is stripped), or
/// `None` when it does. The one skip rule shared by the loader and the weight probes.
pub fn skip_reason(key: &str) -> Option<&'static str> {
    if key.starts_with("tracker.") {
        Some("video tracker")
    } else if key.starts_with("backbone.vision_backbone.sam2_convs.") || key.starts_with("vision_encoder.tracker_neck.") {
        Some("tracker neck (sam2_convs)")
    } else if key.ends_with(".attn.freqs_cis") || key.contains(".rotary_emb.") {
        Some("RoPE buffer (freqs_cis)")
    } else {
        None
    }
}

/// Keys the image model never loads (see [`skip_reason`]).
pub fn is_skipped_key(key: &str) -> bool {
    skip_reason(key).is_some()
}

fn sniff(path: &Path) -> Result<[u8; 8], ModelError> {
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::Io { path: path.display().to_string(), source: e })?;
    let mut head = [0u8; 8];
    let mut n = 0;
    while n < 8 {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(ModelError::Io { path: path.display().to_string(), source: e }),
        }
    }
    if n < 8 {
        return Err(ckpt_err(path, format!("only {n} bytes: truncated or not a checkpoint (safetensors or PyTorch zip)")));
    }
    Ok(head)
}

fn is_pytorch(head: &[u8; 8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head[0] == 0x80 // zip container or a legacy pickle stream
}

fn st_dtype(d: Dtype) -> &'static str {
    match d {
        Dtype::F32 => "F32",
        Dtype::F16 => "F16",
        Dtype::BF16 => "BF16",
        Dtype::F64 => "F64",
        _ => "other",
    }
}

/// Read a checkpoint's tensor index (names, shapes, dtypes) without loading the data.
pub fn read_index(path: &Path) -> Result<CheckpointIndex, ModelError> {
    read_index_with_scratch(path, &std::env::temp_dir())
}

/// [`read_index`] taking a scratch directory, kept for compatibility: no loader writes temporary
/// files any more (a `.pt` with complex storages is read in place), so `scratch` is unused.
pub fn read_index_with_scratch(path: &Path, scratch: &Path) -> Result<CheckpointIndex, ModelError> {
    let head = sniff(path)?;
    if is_pytorch(&head) {
        let _ = scratch; // nothing is written any more: kept for API compatibility
        return read_index_pytorch(path, &open_pytorch(path)?);
    }
    let file = std::fs::File::open(path).map_err(|e| ModelError::Io { path: path.display().to_string(), source: e })?;
    // SAFETY: read-only map of a file we do not modify.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::Io { path: path.display().to_string(), source: e })?;
    let raw = st_raw_index(path, &mmap)?;
    let raw_keys: Vec<String> = raw.keys().cloned().collect();
    if is_hf(&raw_keys) {
        let plan = HfPlan::new(path, &raw)?;
        let mut tensors = BTreeMap::new();
        for (k, e) in &plan.targets {
            tensors.insert(k.clone(), IndexEntry { shape: e.shape.clone(), dtype: e.dtype.into() });
        }
        return Ok(CheckpointIndex { path: path.into(), format: CheckpointFormat::HfSafetensors, tensors, skipped: plan.skipped, raw_prefix: String::new() });
    }
    let (prefix, tensors, skipped) = normalise(raw.into_iter().map(|(k, (s, d))| (k, s, d.to_string())).collect());
    Ok(CheckpointIndex { path: path.into(), format: CheckpointFormat::Safetensors, tensors, skipped, raw_prefix: prefix })
}

type RawIndex = BTreeMap<String, (Vec<usize>, &'static str)>;

fn st_raw_index(path: &Path, bytes: &[u8]) -> Result<RawIndex, ModelError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        let why = match e {
            safetensors::SafeTensorError::HeaderTooSmall | safetensors::SafeTensorError::HeaderTooLarge => {
                format!("not a safetensors file ({e})")
            }
            safetensors::SafeTensorError::MetadataIncompleteBuffer => {
                format!("truncated: the header promises more data than the file's {} bytes ({e})", bytes.len())
            }
            _ => format!("not a valid safetensors file ({e}); it may be truncated or in another format"),
        };
        ckpt_err(path, why)
    })?;
    Ok(st.iter().map(|(k, v)| (k.to_string(), (v.shape().to_vec(), st_dtype(v.dtype())))).collect())
}

/// Strip the `detector.` (and `model.`/`state_dict.` wrapper) prefix and drop skipped keys.
/// Returns the raw prefix, the kept tensors and the skipped raw keys.
fn normalise(raw: Vec<(String, Vec<usize>, String)>) -> (String, BTreeMap<String, IndexEntry>, Vec<String>) {
    let wrapper = ["model.", "state_dict."]
        .into_iter()
        .find(|w| !raw.is_empty() && raw.iter().all(|(k, _, _)| k.starts_with(w)))
        .unwrap_or("");
    let has_detector = raw.iter().any(|(k, _, _)| k[wrapper.len()..].starts_with("detector."));
    let prefix = format!("{wrapper}{}", if has_detector { "detector." } else { "" });
    let mut tensors = BTreeMap::new();
    let mut skipped = Vec::new();
    for (k, shape, dtype) in raw {
        match k.strip_prefix(&prefix) {
            Some(n) if !is_skipped_key(n) => {
                tensors.insert(n.to_string(), IndexEntry { shape, dtype });
            }
            _ => skipped.push(k),
        }
    }
    (prefix, tensors, skipped)
}

/// The index of a `.pt` from its tensors ([`open_pytorch`]; no tensor bytes are read).
fn read_index_pytorch(path: &Path, pt: &[PtTensor]) -> Result<CheckpointIndex, ModelError> {
    let raw: Vec<(String, Vec<usize>, String)> = pt.iter().map(|t| (t.name.clone(), t.shape.clone(), format!("{:?}", t.dtype))).collect();
    if raw.is_empty() {
        return Err(ckpt_err(path, "PyTorch file holds no tensors"));
    }
    let (prefix, tensors, skipped) = normalise(raw);
    // complex tensors (only the RoPE tables get this far) must never reach the module
    let loaded: Vec<&str> = pt.iter().filter(|t| t.complex && !skipped.contains(&t.name)).map(|t| t.name.as_str()).collect();
    if !loaded.is_empty() {
        return Err(ckpt_err(path, format!("complex tensors where real ones are loaded: {}", loaded.join(", "))));
    }
    Ok(CheckpointIndex { path: path.into(), format: CheckpointFormat::Pytorch, tensors, skipped, raw_prefix: prefix })
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
    let pytorch = is_pytorch(&sniff(path)?);
    // opened once: the index and the load below read the same parse
    let pt = if pytorch { Some(open_pytorch(path)?) } else { None };
    let index = match &pt {
        Some(pt) => read_index_pytorch(path, pt)?,
        None => read_index(path)?,
    };
    check_index(&index, expected, module_prefix)?;
    let adapter = PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32));
    let remap = |raw_prefix: &str| {
        KeyRemapper::from_patterns(vec![(format!("^{}{}", regex::escape(raw_prefix), regex::escape(module_prefix)), String::new())])
            .map_err(|e| ckpt_err(path, format!("internal: key remap: {e}")))
    };
    let result = match index.format {
        CheckpointFormat::Safetensors => {
            let mut store = SafetensorsStore::from_file(path)
                .remap(remap(&index.raw_prefix)?)
                .with_from_adapter(adapter)
                .allow_partial(true)
                .validate(false);
            module.load_from(&mut store).map_err(|e| ckpt_err(path, format!("loading: {e}")))?
        }
        CheckpointFormat::HfSafetensors => {
            let file = std::fs::File::open(path).map_err(|e| ModelError::Io { path: path.display().to_string(), source: e })?;
            // SAFETY: read-only map of a file we do not modify.
            let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::Io { path: path.display().to_string(), source: e })?;
            let raw = st_raw_index(path, &bytes)?;
            let plan = HfPlan::new(path, &raw)?;
            // An in-memory copy under the reference names (HF files are renamed/re-concatenated).
            let converted = plan.build(path, &bytes)?;
            drop(bytes);
            let mut store = SafetensorsStore::from_bytes(Some(converted))
                .remap(remap("")?)
                .with_from_adapter(adapter)
                .allow_partial(true)
                .validate(false);
            module.load_from(&mut store).map_err(|e| ckpt_err(path, format!("loading: {e}")))?
        }
        CheckpointFormat::Pytorch => {
            // read in place, tensor by tensor, as the applier asks for them
            let skipped: HashSet<&str> = index.skipped.iter().map(String::as_str).collect();
            let wanted: Vec<PackTensor> = pt
                .unwrap_or_default()
                .into_iter()
                .filter(|t| !t.complex && !skipped.contains(t.name.as_str()))
                .map(pack_tensor)
                .collect();
            let (wanted, _) = remap(&index.raw_prefix)?.remap(wanted);
            module.apply(wanted, None, Some(Box::new(adapter)), false)
        }
    };
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

// ---------------------------------------------------------------------------------------------
// HF-transformers naming (design doc §5; the inverse of transformers' convert_sam3_to_hf.py).

fn is_hf(keys: &[String]) -> bool {
    keys.iter().any(|k| {
        let k = hf_strip(k);
        k.starts_with("vision_encoder.backbone.") || k.starts_with("detr_decoder.") || k.starts_with("text_encoder.text_model.")
    })
}

/// The image model's prefix in transformers' video checkpoints (`Sam3VideoModel`:
/// `convert_sam3_video_to_hf.py` maps the original `sam3_model.` to `detector_model.`, beside
/// `tracker_model.*` and `tracker_neck.*`).
const HF_DETECTOR: &str = "detector_model.";

/// An HF key without its model prefix (`detector_model.` or `sam3_model.`).
fn hf_strip(key: &str) -> &str {
    key.strip_prefix(HF_DETECTOR).or_else(|| key.strip_prefix("sam3_model.")).unwrap_or(key)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum HfFix {
    None,
    /// `position_embeddings` lost the cls row: prepend one (zeros).
    PrependClsRow,
    /// `text_projection` was stored transposed.
    Transpose,
}

struct HfTarget {
    /// Raw HF keys of the parts (one, or q/k/v in order).
    sources: Vec<String>,
    fix: HfFix,
    shape: Vec<usize>,
    dtype: &'static str,
}

struct HfPlan {
    targets: BTreeMap<String, HfTarget>,
    skipped: Vec<String>,
}

/// Ordered rename rules HF → reference (`$1` = captured layer index).
fn hf_rules() -> &'static [(Regex, &'static str)] {
    static RULES: std::sync::OnceLock<Vec<(Regex, &'static str)>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        let vb = "backbone.vision_backbone.";
        let lb = "backbone.language_backbone.";
        let rules: Vec<(String, String)> = vec![
            // vision trunk
            (r"^vision_encoder\.backbone\.embeddings\.position_embeddings$".into(), format!("{vb}trunk.pos_embed")),
            (r"^vision_encoder\.backbone\.embeddings\.patch_embeddings\.projection\.".into(), format!("{vb}trunk.patch_embed.proj.")),
            (r"^vision_encoder\.backbone\.layer_norm\.".into(), format!("{vb}trunk.ln_pre.")),
            (r"^vision_encoder\.backbone\.layers\.(\d+)\.layer_norm1\.".into(), format!("{vb}trunk.blocks.$1.norm1.")),
            (r"^vision_encoder\.backbone\.layers\.(\d+)\.layer_norm2\.".into(), format!("{vb}trunk.blocks.$1.norm2.")),
            (r"^vision_encoder\.backbone\.layers\.(\d+)\.attention\.([qkv])_proj\.".into(), format!("{vb}trunk.blocks.$1.attn.qkv.${{2}}_part.")),
            (r"^vision_encoder\.backbone\.layers\.(\d+)\.attention\.qkv\.".into(), format!("{vb}trunk.blocks.$1.attn.qkv.")),
            (r"^vision_encoder\.backbone\.layers\.(\d+)\.attention\.o_proj\.".into(), format!("{vb}trunk.blocks.$1.attn.proj.")),
            (r"^vision_encoder\.backbone\.layers\.(\d+)\.mlp\.".into(), format!("{vb}trunk.blocks.$1.mlp.")),
            // neck (scale_layers.0 of a 4× level is dconv_2x2_0: fixed up in HfPlan::new)
            (r"^vision_encoder\.neck\.fpn_layers\.(\d+)\.scale_layers\.0\.".into(), format!("{vb}convs.$1.dconv_2x2.")),
            (r"^vision_encoder\.neck\.fpn_layers\.(\d+)\.scale_layers\.2\.".into(), format!("{vb}convs.$1.dconv_2x2_1.")),
            (r"^vision_encoder\.neck\.fpn_layers\.(\d+)\.proj1\.".into(), format!("{vb}convs.$1.conv_1x1.")),
            (r"^vision_encoder\.neck\.fpn_layers\.(\d+)\.proj2\.".into(), format!("{vb}convs.$1.conv_3x3.")),
            // text
            (r"^text_encoder\.text_model\.embeddings\.token_embedding\.".into(), format!("{lb}encoder.token_embedding.")),
            (r"^text_encoder\.text_model\.embeddings\.position_embedding\.weight$".into(), format!("{lb}encoder.positional_embedding")),
            (r"^text_encoder\.text_model\.final_layer_norm\.".into(), format!("{lb}encoder.ln_final.")),
            (r"^text_encoder\.text_projection\.weight$".into(), format!("{lb}encoder.text_projection")),
            (r"^text_encoder\.text_model\.encoder\.layers\.(\d+)\.self_attn\.".into(), format!("{lb}encoder.transformer.resblocks.$1.attn.")),
            (r"^text_encoder\.text_model\.encoder\.layers\.(\d+)\.layer_norm1\.".into(), format!("{lb}encoder.transformer.resblocks.$1.ln_1.")),
            (r"^text_encoder\.text_model\.encoder\.layers\.(\d+)\.layer_norm2\.".into(), format!("{lb}encoder.transformer.resblocks.$1.ln_2.")),
            (r"^text_encoder\.text_model\.encoder\.layers\.(\d+)\.mlp\.fc1\.".into(), format!("{lb}encoder.transformer.resblocks.$1.mlp.c_fc.")),
            (r"^text_encoder\.text_model\.encoder\.layers\.(\d+)\.mlp\.fc2\.".into(), format!("{lb}encoder.transformer.resblocks.$1.mlp.c_proj.")),
            (r"^text_projection\.".into(), format!("{lb}resizer.")),
            // geometry encoder
            (r"^geometry_encoder\.layers\.(\d+)\.cross_attn\.".into(), "geometry_encoder.encode.$1.cross_attn_image.".into()),
            (r"^geometry_encoder\.layers\.(\d+)\.self_attn\.".into(), "geometry_encoder.encode.$1.self_attn.".into()),
            (r"^geometry_encoder\.layers\.(\d+)\.mlp\.fc([12])\.".into(), "geometry_encoder.encode.$1.linear$2.".into()),
            (r"^geometry_encoder\.layers\.(\d+)\.layer_norm([123])\.".into(), "geometry_encoder.encode.$1.norm$2.".into()),
            (r"^geometry_encoder\.vision_layer_norm\.".into(), "geometry_encoder.img_pre_norm.".into()),
            (r"^geometry_encoder\.prompt_layer_norm\.".into(), "geometry_encoder.norm.".into()),
            (r"^geometry_encoder\.output_layer_norm\.".into(), "geometry_encoder.encode_norm.".into()),
            // fusion encoder
            (r"^detr_encoder\.layers\.(\d+)\.cross_attn\.".into(), "transformer.encoder.layers.$1.cross_attn_image.".into()),
            (r"^detr_encoder\.layers\.(\d+)\.self_attn\.".into(), "transformer.encoder.layers.$1.self_attn.".into()),
            (r"^detr_encoder\.layers\.(\d+)\.mlp\.fc([12])\.".into(), "transformer.encoder.layers.$1.linear$2.".into()),
            (r"^detr_encoder\.layers\.(\d+)\.layer_norm([123])\.".into(), "transformer.encoder.layers.$1.norm$2.".into()),
            // decoder
            (r"^detr_decoder\.layers\.(\d+)\.self_attn_layer_norm\.".into(), "transformer.decoder.layers.$1.norm2.".into()),
            (r"^detr_decoder\.layers\.(\d+)\.text_cross_attn_layer_norm\.".into(), "transformer.decoder.layers.$1.catext_norm.".into()),
            (r"^detr_decoder\.layers\.(\d+)\.vision_cross_attn_layer_norm\.".into(), "transformer.decoder.layers.$1.norm1.".into()),
            (r"^detr_decoder\.layers\.(\d+)\.mlp_layer_norm\.".into(), "transformer.decoder.layers.$1.norm3.".into()),
            (r"^detr_decoder\.layers\.(\d+)\.self_attn\.".into(), "transformer.decoder.layers.$1.self_attn.".into()),
            (r"^detr_decoder\.layers\.(\d+)\.text_cross_attn\.".into(), "transformer.decoder.layers.$1.ca_text.".into()),
            (r"^detr_decoder\.layers\.(\d+)\.vision_cross_attn\.".into(), "transformer.decoder.layers.$1.cross_attn.".into()),
            (r"^detr_decoder\.layers\.(\d+)\.mlp\.fc([12])\.".into(), "transformer.decoder.layers.$1.linear$2.".into()),
            (r"^detr_decoder\.presence_layer_norm\.".into(), "transformer.decoder.presence_token_out_norm.".into()),
            (r"^detr_decoder\.output_layer_norm\.".into(), "transformer.decoder.norm.".into()),
            (r"^detr_decoder\.presence_head\.layer(\d)\.".into(), "transformer.decoder.presence_token_head.layers.#$1.".into()),
            (r"^detr_decoder\.box_head\.layer(\d)\.".into(), "transformer.decoder.bbox_embed.layers.#$1.".into()),
            (r"^detr_decoder\.ref_point_head\.layer(\d)\.".into(), "transformer.decoder.ref_point_head.layers.#$1.".into()),
            (r"^detr_decoder\.box_rpb_embed_([xy])\.layer(\d)\.".into(), "transformer.decoder.boxRPB_embed_$1.layers.#$2.".into()),
            (r"^detr_decoder\.".into(), "transformer.decoder.".into()),
            // scoring
            (r"^dot_product_scoring\.text_mlp\.layer(\d)\.".into(), "dot_prod_scoring.prompt_mlp.layers.#$1.".into()),
            (r"^dot_product_scoring\.text_mlp_out_norm\.".into(), "dot_prod_scoring.prompt_mlp.out_norm.".into()),
            (r"^dot_product_scoring\.text_proj\.".into(), "dot_prod_scoring.prompt_proj.".into()),
            (r"^dot_product_scoring\.query_proj\.".into(), "dot_prod_scoring.hs_proj.".into()),
            // segmentation head
            (r"^mask_decoder\.pixel_decoder\.".into(), "segmentation_head.pixel_decoder.".into()),
            (r"^mask_decoder\.mask_embedder\.layers\.".into(), "segmentation_head.mask_predictor.mask_embed.layers.".into()),
            (r"^mask_decoder\.instance_projection\.".into(), "segmentation_head.instance_seg_head.".into()),
            (r"^mask_decoder\.semantic_projection\.".into(), "segmentation_head.semantic_seg_head.".into()),
            (r"^mask_decoder\.prompt_cross_attn_norm\.".into(), "segmentation_head.cross_attn_norm.".into()),
            (r"^mask_decoder\.prompt_cross_attn\.".into(), "segmentation_head.cross_attend_prompt.".into()),
        ];
        rules.into_iter().map(|(p, r)| (Regex::new(&p).expect("static HF rule"), &*Box::leak(r.into_boxed_str()))).collect()
    })
}

/// Rename one HF key. Returns `(reference key, q/k/v part)`; HF's 1-based `layerN` indices come
/// back 0-based.
fn hf_rename(key: &str) -> Option<(String, Option<usize>)> {
    let key = hf_strip(key);
    let mut name = None;
    for (re, rep) in hf_rules() {
        if re.is_match(key) {
            name = Some(re.replace(key, *rep).into_owned());
            break;
        }
    }
    let mut name = name.unwrap_or_else(|| key.to_string());
    // 1-based `layerK` → 0-based `layers.K-1`
    if let Some(i) = name.find(".#") {
        let rest = &name[i + 2..];
        let end = rest.find('.').unwrap_or(rest.len());
        let k: usize = rest[..end].parse().ok()?;
        name = format!("{}.{}{}", &name[..i], k.checked_sub(1)?, &rest[end..]);
    }
    // attention projections: q/k/v parts and o_proj
    static QKV: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let qkv = QKV.get_or_init(|| Regex::new(r"^(.*)\.(?:([qkv])_proj|qkv\.([qkv])_part)\.(weight|bias)$").unwrap());
    if let Some(c) = qkv.captures(&name) {
        let part = ["q", "k", "v"].iter().position(|p| Some(*p) == c.get(2).or(c.get(3)).map(|m| m.as_str()))?;
        let base = &c[1];
        let wb = &c[4];
        let target = if name.contains(".attn.qkv.") { format!("{base}.qkv.{wb}") } else { format!("{base}.in_proj_{wb}") };
        return Some((target, Some(part)));
    }
    Some((name.replace(".o_proj.", ".out_proj."), None))
}

impl HfPlan {
    fn new(path: &Path, raw: &RawIndex) -> Result<Self, ModelError> {
        let four_x: HashSet<String> = raw
            .keys()
            .filter_map(|k| {
                let rest = hf_strip(k).strip_prefix("vision_encoder.neck.fpn_layers.")?;
                let (lvl, tail) = rest.split_once('.')?;
                tail.starts_with("scale_layers.2.").then(|| lvl.to_string())
            })
            .collect();
        let mut parts: BTreeMap<String, [Option<String>; 3]> = BTreeMap::new();
        let mut targets = BTreeMap::new();
        let mut skipped = Vec::new();
        // A video checkpoint: only `detector_model.*` is the image model (the tracker is skipped).
        let video = raw.keys().any(|k| k.starts_with(HF_DETECTOR));
        for (k, (shape, dtype)) in raw {
            if (video && !k.starts_with(HF_DETECTOR)) || is_skipped_key(hf_strip(k)) {
                skipped.push(k.clone());
                continue;
            }
            let Some((mut name, part)) = hf_rename(k) else {
                return Err(ckpt_err(path, format!("HF key `{k}` has a malformed layer index")));
            };
            if let Some(lvl) = name.strip_prefix("backbone.vision_backbone.convs.").and_then(|r| r.split('.').next())
                && four_x.contains(lvl)
            {
                name = name.replace(&format!("convs.{lvl}.dconv_2x2."), &format!("convs.{lvl}.dconv_2x2_0."));
            }
            match part {
                Some(p) => parts.entry(name).or_default()[p] = Some(k.clone()),
                None => {
                    let (fix, shape) = if name == "backbone.vision_backbone.trunk.pos_embed" {
                        let (n, c) = (shape[shape.len() - 2], shape[shape.len() - 1]);
                        (HfFix::PrependClsRow, vec![1, n + 1, c])
                    } else if name == "backbone.language_backbone.encoder.text_projection" && shape.len() == 2 {
                        (HfFix::Transpose, vec![shape[1], shape[0]])
                    } else {
                        (HfFix::None, shape.clone())
                    };
                    targets.insert(name, HfTarget { sources: vec![k.clone()], fix, shape, dtype });
                }
            }
        }
        for (name, [q, k, v]) in parts {
            let (Some(q), Some(k), Some(v)) = (q, k, v) else {
                return Err(ckpt_err(path, format!("HF checkpoint lacks one of the q/k/v projections of `{name}`")));
            };
            let (sq, dq) = &raw[&q];
            if raw[&k].0 != *sq || raw[&v].0 != *sq {
                return Err(ckpt_err(path, format!("q/k/v projections of `{name}` differ in shape")));
            }
            let mut shape = sq.clone();
            shape[0] *= 3;
            targets.insert(name, HfTarget { sources: vec![q, k, v], fix: HfFix::None, shape, dtype: dq });
        }
        Ok(HfPlan { targets, skipped })
    }

    /// Build an in-memory safetensors file with the reference names.
    fn build(&self, path: &Path, bytes: &[u8]) -> Result<Vec<u8>, ModelError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| ckpt_err(path, format!("not a valid safetensors file ({e})")))?;
        let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(self.targets.len());
        for (name, t) in &self.targets {
            let views: Vec<_> = t.sources.iter().map(|s| st.tensor(s)).collect::<Result<_, _>>().map_err(|e| ckpt_err(path, e.to_string()))?;
            let dtype = views[0].dtype();
            let esize = dtype.bitsize() / 8;
            let data = match t.fix {
                HfFix::None => views.iter().flat_map(|v| v.data().iter().copied()).collect(),
                HfFix::PrependClsRow => {
                    let c = t.shape[2];
                    let mut d = vec![0u8; c * esize];
                    d.extend_from_slice(views[0].data());
                    d
                }
                HfFix::Transpose => {
                    let src = views[0].data();
                    let (r, c) = (t.shape[1], t.shape[0]); // source is (r, c)
                    let mut d = vec![0u8; src.len()];
                    for i in 0..r {
                        for j in 0..c {
                            let s = (i * c + j) * esize;
                            let o = (j * r + i) * esize;
                            d[o..o + esize].copy_from_slice(&src[s..s + esize]);
                        }
                    }
                    d
                }
            };
            owned.push((name.clone(), dtype, t.shape.clone(), data));
        }
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
            .iter()
            .map(|(n, d, s, b)| safetensors::tensor::TensorView::new(*d, s.clone(), b).map(|v| (n.clone(), v)))
            .collect::<Result<_, _>>()
            .map_err(|e| ckpt_err(path, format!("rebuilding: {e}")))?;
        safetensors::serialize(views, None::<HashMap<String, String>>).map_err(|e| ckpt_err(path, format!("rebuilding: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_names_map_back() {
        let cases = [
            ("vision_encoder.backbone.layers.3.attention.k_proj.weight", "backbone.vision_backbone.trunk.blocks.3.attn.qkv.weight", Some(1)),
            ("vision_encoder.backbone.layers.0.attention.o_proj.bias", "backbone.vision_backbone.trunk.blocks.0.attn.proj.bias", None),
            ("text_encoder.text_model.encoder.layers.1.self_attn.v_proj.bias", "backbone.language_backbone.encoder.transformer.resblocks.1.attn.in_proj_bias", Some(2)),
            ("text_encoder.text_model.encoder.layers.1.self_attn.out_proj.weight", "backbone.language_backbone.encoder.transformer.resblocks.1.attn.out_proj.weight", None),
            ("detr_decoder.layers.0.text_cross_attn.o_proj.weight", "transformer.decoder.layers.0.ca_text.out_proj.weight", None),
            ("detr_decoder.presence_head.layer3.bias", "transformer.decoder.presence_token_head.layers.2.bias", None),
            ("detr_decoder.box_rpb_embed_y.layer1.weight", "transformer.decoder.boxRPB_embed_y.layers.0.weight", None),
            ("mask_decoder.prompt_cross_attn.q_proj.weight", "segmentation_head.cross_attend_prompt.in_proj_weight", Some(0)),
            ("text_projection.bias", "backbone.language_backbone.resizer.bias", None),
            ("geometry_encoder.label_embed.weight", "geometry_encoder.label_embed.weight", None),
        ];
        for (hf, want, part) in cases {
            assert_eq!(hf_rename(hf), Some((want.to_string(), part)), "{hf}");
        }
    }
}
