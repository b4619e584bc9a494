//! The parity harness: run the model on a reference fixture's inputs and compare every captured
//! activation with the reference's, key by key.
//!
//! A fixture directory holds `config.json` (hyper-parameters in `model`, each expected key's
//! reference `layout`, `suggested_tolerance`), `weights.safetensors`, `inputs.safetensors` and
//! `expected.safetensors`. The model is built from `config.json` alone and runs with a capture-all
//! hook spec (`**`). Each expected tensor is brought to the hook layout (the batch axis moved first;
//! a `B*nH` axis split into `B, nH`) and compared:
//! pass ⇔ |ours − ref| ≤ atol + rtol·|ref| element-wise. atol/rtol come from the fixture's
//! `suggested_tolerance` (1e-4 / 1e-3); mask-logit keys (`pred_masks`, `mask_probs`,
//! `semantic_seg`, `pixel_embed`, `instance_embeds`) use atol 1e-3, as the fixture README allows.
//! `max_rel` is reported over elements with |ref| > atol (relative error of near-zero values is noise).
//! Keys the model does not produce are listed as not covered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use safetensors::{Dtype, SafeTensors};
use sam3lab_hooks::{ActivationCache, DynTensor, Hooks};
use serde::Serialize;

use crate::backbone::Backbone;
use crate::checkpoint::{load_into, sha256_file};
use crate::params::param_shapes;
use crate::postprocess::{boxes_xyxy_px, mask_probs};
use crate::{BoxPrompt, ModelError, Sam3, Sam3Config};

/// A tensor on the host as f32 (bool → 0/1, ints → float), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Axes reordered: output axis `i` is input axis `perm[i]`.
    pub fn permute(&self, perm: &[usize]) -> HostTensor {
        let r = self.shape.len();
        let new_shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let mut in_strides = vec![1usize; r];
        for i in (0..r.saturating_sub(1)).rev() {
            in_strides[i] = in_strides[i + 1] * self.shape[i + 1];
        }
        let n = self.numel();
        let mut out = Vec::with_capacity(n);
        let mut idx = vec![0usize; r];
        for _ in 0..n {
            let off: usize = (0..r).map(|i| idx[i] * in_strides[perm[i]]).sum();
            out.push(self.data[off]);
            for i in (0..r).rev() {
                idx[i] += 1;
                if idx[i] < new_shape[i] {
                    break;
                }
                idx[i] = 0;
            }
        }
        HostTensor { shape: new_shape, data: out }
    }
}

/// Per-key comparison outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// The model produced no tensor for this key.
    NotCovered,
}

#[derive(Clone, Debug, Serialize)]
pub struct ParityRow {
    /// The fixture key.
    pub key: String,
    /// The hook point it was compared with.
    pub hook: String,
    /// Shape in the hook layout.
    pub shape: Vec<usize>,
    pub max_abs: Option<f64>,
    pub max_rel: Option<f64>,
    pub atol: f64,
    pub rtol: f64,
    pub status: Status,
    /// Why a key failed or is not covered.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ParityReport {
    pub fixture: String,
    pub config_sha256: String,
    pub weights_sha256: String,
    /// What ran: `full` (the whole model, both passes) or `backbone` (trunk, neck, text only).
    pub mode: String,
    pub atol: f64,
    pub rtol: f64,
    pub mask_atol: f64,
    pub passed: usize,
    pub failed: usize,
    pub not_covered: usize,
    pub rows: Vec<ParityRow>,
    /// The pass rule when it is not the element-wise one above (e.g. training fixtures' per-group rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl ParityReport {
    pub fn all_compared_pass(&self) -> bool {
        self.failed == 0
    }

    pub fn row(&self, key: &str) -> Option<&ParityRow> {
        self.rows.iter().find(|r| r.key == key)
    }

    /// Human-readable table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "parity: {} ({} mode; weights sha256 {}…)\n{:<52} {:<18} {:>11} {:>11}  {}\n",
            self.fixture,
            self.mode,
            &self.weights_sha256[..12.min(self.weights_sha256.len())],
            "key",
            "shape",
            "max_abs",
            "max_rel",
            "status"
        );
        for r in &self.rows {
            let f = |v: Option<f64>| v.map(|x| format!("{x:.3e}")).unwrap_or_else(|| "-".into());
            let st = match r.status {
                Status::Pass => "pass".to_string(),
                Status::Fail => format!("FAIL {}", r.note),
                Status::NotCovered => format!("not covered ({})", r.note),
            };
            s += &format!("{:<52} {:<18} {:>11} {:>11}  {st}\n", r.key, format!("{:?}", r.shape), f(r.max_abs), f(r.max_rel));
        }
        match &self.rule {
            Some(rule) => s += &format!("{} passed, {} failed, {} not covered ({rule})\n", self.passed, self.failed, self.not_covered),
            None => {
                s += &format!(
                    "{} passed, {} failed, {} not covered (tolerance |d| <= {:e} + {:e}|ref|, masks atol {:e})\n",
                    self.passed, self.failed, self.not_covered, self.atol, self.rtol, self.mask_atol
                )
            }
        }
        s
    }

    /// Write the report as JSON atomically (temp file in the same directory, then rename).
    pub fn write_json(&self, path: &Path) -> Result<(), ModelError> {
        let io = |e: std::io::Error| ModelError::Io { path: path.display().to_string(), source: e };
        let text = serde_json::to_string_pretty(self).expect("report serialises");
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(format!(".{}.tmp{}", path.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// A loaded fixture directory.
pub struct Fixture {
    pub dir: PathBuf,
    pub config: Sam3Config,
    pub config_json: serde_json::Value,
    pub config_sha256: String,
    pub inputs: BTreeMap<String, HostTensor>,
    /// Expected tensors in the fixture's own (reference) layout, in `config.json` order.
    pub expected: Vec<(String, HostTensor)>,
    pub atol: f64,
    pub rtol: f64,
}

fn fx_err(path: &Path, why: impl Into<String>) -> ModelError {
    ModelError::Fixture { path: path.display().to_string(), why: why.into() }
}

/// Read every tensor of a safetensors file as host f32.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::Io { path: path.display().to_string(), source: e })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| fx_err(path, format!("not a valid safetensors file: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, v) in st.iter() {
        let d = v.data();
        let data: Vec<f32> = match v.dtype() {
            Dtype::F32 => d.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F64 => d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            Dtype::I64 => d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            Dtype::I32 => d.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            Dtype::BOOL | Dtype::U8 => d.iter().map(|&b| b as f32).collect(),
            other => return Err(fx_err(path, format!("tensor `{name}` has unsupported dtype {other:?}"))),
        };
        out.insert(name.to_string(), HostTensor { shape: v.shape().to_vec(), data });
    }
    Ok(out)
}

impl Fixture {
    pub fn load(dir: &Path) -> Result<Fixture, ModelError> {
        if !dir.is_dir() {
            return Err(fx_err(dir, "not a directory (expected a fixture directory with config.json, weights/inputs/expected .safetensors)"));
        }
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| fx_err(&cfg_path, format!("cannot read: {e}")))?;
        let config_json: serde_json::Value = serde_json::from_str(&text).map_err(|e| fx_err(&cfg_path, format!("not JSON: {e}")))?;
        let config = Sam3Config::from_json_str(&text, &cfg_path.display().to_string())?;
        crate::backbone::check_supported(&config).map_err(|why| ModelError::Config { path: cfg_path.display().to_string(), why })?;
        for f in ["weights.safetensors", "inputs.safetensors", "expected.safetensors"] {
            if !dir.join(f).is_file() {
                return Err(fx_err(dir, format!("missing {f}")));
            }
        }
        let inputs = read_safetensors(&dir.join("inputs.safetensors"))?;
        let mut expected: Vec<(String, HostTensor)> = read_safetensors(&dir.join("expected.safetensors"))?.into_iter().collect();
        expected.sort_by_cached_key(|(k, _)| forward_order_key(k));
        let tol = config_json.get("suggested_tolerance");
        let atol = tol.and_then(|t| t.get("atol")).and_then(|v| v.as_f64()).unwrap_or(1e-4);
        let rtol = tol.and_then(|t| t.get("rtol")).and_then(|v| v.as_f64()).unwrap_or(1e-3);
        let config_sha256 = sha256_file(&cfg_path)?;
        Ok(Fixture { dir: dir.to_path_buf(), config, config_json, config_sha256, inputs, expected, atol, rtol })
    }

    pub fn input(&self, name: &str) -> Result<&HostTensor, ModelError> {
        self.inputs.get(name).ok_or_else(|| fx_err(&self.dir.join("inputs.safetensors"), format!("missing input `{name}`")))
    }

    /// The reference layout string of an expected key (first word of its `layout`).
    pub fn layout(&self, key: &str) -> Option<String> {
        let l = self.config_json.get("expected")?.get(key)?.get("layout")?.as_str()?;
        Some(l.split_whitespace().next().unwrap_or("").to_string())
    }
}

/// Sort key putting fixture keys in forward order: stage, then natural (numeric-aware) name order;
/// the box-prompt pass after the main one.
fn forward_order_key(key: &str) -> (bool, usize, Vec<(String, u64)>) {
    const STAGES: [&str; 13] =
        ["image", "trunk", "neck", "text", "geometry", "prompt", "fusion", "decoder", "scoring", "seg", "out", "post", ""];
    let (boxp, k) = match key.strip_prefix("box_prompt.") {
        Some(k) => (true, k),
        None => (false, key),
    };
    let first = k.split('.').next().unwrap_or("");
    let stage = STAGES.iter().position(|s| *s == first).unwrap_or(STAGES.len());
    // Within a stage, names in forward order; others after them, alphabetically.
    const ORDER: [&str; 13] = [
        "tokens_in", "patch_embed", "embed", "ln_pre", "input_ids", "token_embedding", "pos_embed", "blocks", "layers",
        "ln_final", "out", "memory", "padding_mask",
    ];
    let segs = k
        .split('.')
        .enumerate()
        .map(|(i, seg)| match seg.parse::<u64>() {
            Ok(n) => (String::new(), n),
            Err(_) if i == 1 => (String::new(), ORDER.iter().position(|o| *o == seg).unwrap_or(ORDER.len()) as u64 + 1000),
            Err(_) => (seg.to_string(), 0),
        })
        .collect();
    (boxp, stage, segs)
}

/// Bring a reference-layout tensor to the hook layout: the `B` axis first; a `B*nH` axis becomes
/// `B, nH`. `batch` is the fixture's batch size. Layouts without a `B` axis are unchanged.
pub fn to_hook_layout(t: &HostTensor, layout: &str, batch: usize) -> Result<HostTensor, String> {
    let axes: Vec<&str> = layout.split(',').collect();
    if axes.len() != t.shape.len() {
        return Ok(t.clone()); // free-form layout text: compare as is
    }
    let mut t = t.clone();
    let mut axes: Vec<String> = axes.iter().map(|s| s.to_string()).collect();
    if let Some(i) = axes.iter().position(|a| a.starts_with("B*")) {
        if t.shape[i] % batch != 0 {
            return Err(format!("axis {} of size {} is not divisible by the batch {batch}", axes[i], t.shape[i]));
        }
        let inner = t.shape[i] / batch;
        t.shape.splice(i..=i, [batch, inner]);
        axes.splice(i..=i, ["B".to_string(), axes[i][2..].to_string()]);
    }
    match axes.iter().position(|a| a == "B") {
        None | Some(0) => Ok(t),
        Some(b) => {
            let mut perm = vec![b];
            perm.extend((0..t.shape.len()).filter(|&i| i != b));
            Ok(t.permute(&perm))
        }
    }
}

pub use crate::points::hook_name;

const MASK_KEYS: [&str; 5] = ["pred_masks", "mask_probs", "semantic_seg", "pixel_embed", "instance_embeds"];
/// atol for mask-logit-like keys (fixture README: "masks/logits may need atol ~1e-3").
pub const MASK_ATOL: f64 = 1e-3;

/// Compare element-wise; `(max_abs, max_rel, pass)`.
pub fn compare(ours: &[f32], reference: &[f32], atol: f64, rtol: f64) -> (f64, f64, bool) {
    let (mut max_abs, mut max_rel, mut pass) = (0f64, 0f64, true);
    for (&a, &r) in ours.iter().zip(reference) {
        let (a, r) = (a as f64, r as f64);
        if a == r {
            continue; // also equal infinities
        }
        let d = (a - r).abs();
        if !d.is_finite() {
            pass = false;
            max_abs = f64::INFINITY;
            continue;
        }
        if d > atol + rtol * r.abs() {
            pass = false;
        }
        max_abs = max_abs.max(d);
        if r.abs() > atol {
            max_rel = max_rel.max(d / r.abs());
        }
    }
    (max_abs, max_rel, pass)
}

/// Activations of one model run over a fixture: the main forward, and the box-prompt forward.
pub struct Captures {
    pub mode: String,
    pub main: ActivationCache,
    pub box_prompt: Option<ActivationCache>,
    pub weights_sha256: String,
}

fn to_tensor4(t: &HostTensor, device: &Device) -> Result<Tensor<4>, String> {
    let s: [usize; 4] = t.shape.clone().try_into().map_err(|_| format!("expected rank 4, got {:?}", t.shape))?;
    Ok(Tensor::from_data(TensorData::new(t.data.clone(), s), device))
}

fn to_ids(t: &HostTensor, device: &Device) -> Result<Tensor<2, Int>, String> {
    let s: [usize; 2] = t.shape.clone().try_into().map_err(|_| format!("expected rank 2, got {:?}", t.shape))?;
    let v: Vec<i64> = t.data.iter().map(|&x| x as i64).collect();
    Ok(Tensor::from_data(TensorData::new(v, s), device))
}

/// Run the backbone (trunk + neck + text) on the fixture's inputs with every hook captured.
pub fn run_backbone(fx: &Fixture, device: &Device) -> Result<Captures, ModelError> {
    let weights = fx.dir.join("weights.safetensors");
    let mut model = Backbone::new(&fx.config, device);
    load_into(&mut model, &weights, &param_shapes(&fx.config), "backbone.")?;
    let inputs = fx.dir.join("inputs.safetensors");
    let pixels = to_tensor4(fx.input("pixel_values")?, device).map_err(|e| fx_err(&inputs, format!("pixel_values: {e}")))?;
    let ids = to_ids(fx.input("input_ids")?, device).map_err(|e| fx_err(&inputs, format!("input_ids: {e}")))?;
    let mut hooks = Hooks::capture(&["**"])?;
    model.forward_image(pixels, &mut hooks);
    model.forward_text(ids, &mut hooks);
    let main = hooks.finish()?;
    Ok(Captures { mode: "backbone".into(), main, box_prompt: None, weights_sha256: sha256_file(&weights)? })
}

/// Run the whole model on the fixture: the text-only forward with every hook captured (plus the
/// post-processing outputs `post.boxes_xyxy_px` / `post.mask_probs` at the raw image size), then a
/// second grounding pass with the fixture's box prompt on the same image/text features.
pub fn run_full(fx: &Fixture, device: &Device) -> Result<Captures, ModelError> {
    let inputs = fx.dir.join("inputs.safetensors");
    let bad = |what: &str, e: String| fx_err(&inputs, format!("{what}: {e}"));
    let (model, info) = Sam3::load(&fx.dir, None, device)?;
    let pixels = to_tensor4(fx.input("pixel_values")?, device).map_err(|e| bad("pixel_values", e))?;
    let ids = to_ids(fx.input("input_ids")?, device).map_err(|e| bad("input_ids", e))?;
    let raw = fx.input("image_uint8")?;
    if raw.shape.len() != 3 {
        return Err(bad("image_uint8", format!("expected (H0, W0, 3), got {:?}", raw.shape)));
    }
    let hw = (raw.shape[0], raw.shape[1]);
    let boxes = box_prompts(fx).map_err(|e| bad("box_prompt_cxcywh/label", e))?;

    let mut hooks = Hooks::capture(&["**"])?;
    let image = model.encode_image(pixels, &mut hooks);
    let text = model.encode_text(ids, &mut hooks);
    let out = model.ground(&image, &text, &[], &mut hooks)?;
    let mut main = hooks.finish()?;
    main.insert("post.boxes_xyxy_px", DynTensor::new(boxes_xyxy_px(&out, hw)));
    main.insert("post.mask_probs", DynTensor::new(mask_probs(out.pred_masks.clone(), hw)));

    let box_prompt = if boxes.is_empty() {
        None
    } else {
        let mut hooks = Hooks::capture(&["**"])?;
        let out = model.ground(&image, &text, &boxes, &mut hooks)?;
        let mut c = hooks.finish()?;
        c.insert("post.boxes_xyxy_px", DynTensor::new(boxes_xyxy_px(&out, hw)));
        c.insert("post.mask_probs", DynTensor::new(mask_probs(out.pred_masks.clone(), hw)));
        Some(c)
    };
    Ok(Captures { mode: "full".into(), main, box_prompt, weights_sha256: info.sha256 })
}

/// The fixture's box prompt (`box_prompt_cxcywh` `(N, 1, 4)`, `box_prompt_label` `(N, 1)`), if any.
fn box_prompts(fx: &Fixture) -> Result<Vec<BoxPrompt>, String> {
    let (Some(b), Some(l)) = (fx.inputs.get("box_prompt_cxcywh"), fx.inputs.get("box_prompt_label")) else {
        return Ok(Vec::new());
    };
    if b.shape.len() != 3 || b.shape[1] != 1 || b.shape[2] != 4 || l.numel() != b.shape[0] {
        return Err(format!("expected (N, 1, 4) boxes and N labels, got {:?} and {:?}", b.shape, l.shape));
    }
    Ok(b.data
        .chunks_exact(4)
        .zip(&l.data)
        .map(|(c, &lab)| BoxPrompt { cxcywh: [c[0], c[1], c[2], c[3]], positive: lab > 0.5 })
        .collect())
}

/// Compare captures against the fixture.
pub fn compare_fixture(fx: &Fixture, caps: &Captures) -> ParityReport {
    let batch = fx.inputs.get("pixel_values").map(|t| t.shape[0]).unwrap_or(1);
    let mut rows = Vec::new();
    for (key, reference) in &fx.expected {
        let hook = hook_name(key);
        let is_mask = MASK_KEYS.iter().any(|m| hook.ends_with(m));
        let atol = if is_mask { MASK_ATOL.max(fx.atol) } else { fx.atol };
        let mut row = ParityRow {
            key: key.clone(),
            hook: hook.clone(),
            shape: reference.shape.clone(),
            max_abs: None,
            max_rel: None,
            atol,
            rtol: fx.rtol,
            status: Status::NotCovered,
            note: String::new(),
        };
        let cache = if key.starts_with("box_prompt.") { caps.box_prompt.as_ref() } else { Some(&caps.main) };
        let Some(cache) = cache else {
            row.note = "the box-prompt forward needs the full model".into();
            rows.push(row);
            continue;
        };
        let Ok(ours) = cache.get(&hook) else {
            row.note = format!("no hook `{hook}` in the {} run", caps.mode);
            rows.push(row);
            continue;
        };
        let layout = fx.layout(key).unwrap_or_default();
        let reference = match to_hook_layout(reference, &layout, batch) {
            Ok(t) => t,
            Err(e) => {
                row.status = Status::Fail;
                row.note = format!("layout `{layout}`: {e}");
                rows.push(row);
                continue;
            }
        };
        row.shape = reference.shape.clone();
        if ours.shape() != reference.shape.as_slice() {
            row.status = Status::Fail;
            row.note = format!("shape: ours {:?}, reference {:?}", ours.shape(), reference.shape);
            rows.push(row);
            continue;
        }
        let (max_abs, max_rel, pass) = compare(&ours.to_vec(), &reference.data, atol, fx.rtol);
        row.max_abs = Some(max_abs);
        row.max_rel = Some(max_rel);
        row.status = if pass { Status::Pass } else { Status::Fail };
        if !pass {
            row.note = "outside tolerance".into();
        }
        rows.push(row);
    }
    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    ParityReport {
        fixture: fx.dir.display().to_string(),
        config_sha256: fx.config_sha256.clone(),
        weights_sha256: caps.weights_sha256.clone(),
        mode: caps.mode.clone(),
        atol: fx.atol,
        rtol: fx.rtol,
        mask_atol: MASK_ATOL,
        passed: count(Status::Pass),
        failed: count(Status::Fail),
        not_covered: count(Status::NotCovered),
        rows,
        rule: None,
    }
}

/// Load a fixture, run the model on it and compare every expected key.
pub fn run_parity(dir: &Path, device: &Device) -> Result<ParityReport, ModelError> {
    let fx = Fixture::load(dir)?;
    let caps = run_full(&fx, device)?;
    Ok(compare_fixture(&fx, &caps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_move_batch_first() {
        // (L=2, B=1, d=3) → (1, 2, 3): same data
        let t = HostTensor { shape: vec![2, 1, 3], data: (0..6).map(|i| i as f32).collect() };
        let h = to_hook_layout(&t, "L,B,d", 1).unwrap();
        assert_eq!(h.shape, vec![1, 2, 3]);
        assert_eq!(h.data, t.data);
        // (L=2, Q=1, B=2, 2) → (B, L, Q, 2)
        let t = HostTensor { shape: vec![2, 1, 2, 2], data: (0..8).map(|i| i as f32).collect() };
        let h = to_hook_layout(&t, "L,Q,B,4", 2).unwrap();
        assert_eq!(h.shape, vec![2, 2, 1, 2]);
        // b=1, l=0 → original [l=0, q=0, b=1] = [2, 3]
        assert_eq!(&h.data[4..6], &[2.0, 3.0]);
        // B*nH with B=2, nH=2
        let t = HostTensor { shape: vec![4, 1], data: vec![0., 1., 2., 3.] };
        let h = to_hook_layout(&t, "B*nH,Q", 2).unwrap();
        assert_eq!(h.shape, vec![2, 2, 1]);
        assert_eq!(h.data, vec![0., 1., 2., 3.]);
    }

    #[test]
    fn tolerance_is_atol_plus_rtol() {
        // bound at ref 1.0: 1e-4 + 1e-3 = 1.1e-3
        let (a, _, ok) = compare(&[1.0012], &[1.0], 1e-4, 1e-3);
        assert!(!ok && (a - 0.0012).abs() < 1e-6);
        assert!(compare(&[1.0010], &[1.0], 1e-4, 1e-3).2);
        assert!(compare(&[-0.00005], &[0.0], 1e-4, 1e-3).2);
        assert!(!compare(&[-0.00015], &[0.0], 1e-4, 1e-3).2);
        assert!(!compare(&[f32::NAN], &[1.0], 1e-4, 1e-3).2);
    }
}
