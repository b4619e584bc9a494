//! sam3lab-python: the Python face of sam3lab (module `sam3lab._sam3lab`, wrapped by the pure-Python
//! package `sam3lab`). It owns the conversions and nothing else: a checkpoint is loaded by
//! `sam3lab_model::predict::Predictor`, a forward with hooks is `Predictor::run_with_hooks`, and the
//! hook vocabulary is `sam3lab_hooks::HookSpec`'s (capture, replace, add, scale, zero, a function).
//!
//! Across the boundary: images are a path or an `H×W×3` uint8 array, tensors come back as float32
//! numpy arrays in the hook table's layout, every error is a Python exception carrying sam3lab's
//! message (`ValueError` for bad input, `RuntimeError` otherwise), and a Python callable used as a
//! hook that raises re-raises that exception. Forwards without callable hooks release the GIL.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burn::prelude::*;
use image::RgbImage;
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use sam3lab_hooks::{ActivationCache, CacheManifest, DynTensor, HookSpec, ImageIdentity};
use sam3lab_model::predict::Predictor;

fn value_err(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

fn runtime_err(e: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// A loaded SAM3 checkpoint (the shipped fixture, the world's base, `sam3.pt`, safetensors).
#[pyclass(module = "sam3lab._sam3lab", frozen)]
struct Model {
    p: Predictor,
    path: String,
    device: String,
}

/// `load(ckpt, config=None, device="cpu")`.
#[pyfunction]
#[pyo3(signature = (ckpt, config = None, device = "cpu"))]
fn load(py: Python<'_>, ckpt: PathBuf, config: Option<PathBuf>, device: &str) -> PyResult<Model> {
    let dev = sam3lab_model::device::device_from_name(device).map_err(value_err)?;
    let path = ckpt.display().to_string();
    let p = py.detach(|| Predictor::load(&ckpt, config.as_deref(), &dev)).map_err(value_err)?;
    Ok(Model { p, path, device: device.to_string() })
}

/// An image argument: a path (str / os.PathLike), a PIL image or an `H×W×3` uint8 array, with how a cache
/// manifest names it (the path and the sha256 of the file's bytes, as `sam3lab run` records it; for
/// an array, a description and the sha256 of its raw RGB bytes).
fn image_of(obj: &Bound<'_, PyAny>) -> PyResult<(RgbImage, ImageIdentity)> {
    if let Ok(path) = obj.extract::<PathBuf>() {
        let img = image::open(&path).map_err(|e| value_err(format!("image {}: {e}", path.display())))?;
        let id = ImageIdentity::from_file(&path).map_err(value_err)?;
        return Ok((img.to_rgb8(), id));
    }
    // A PIL image (anything with PIL's `mode` and `convert`): as RGB, through numpy.
    if obj.hasattr("mode")? && obj.hasattr("convert")? && obj.cast::<numpy::PyUntypedArray>().is_err() {
        let rgb = obj.call_method1("convert", ("RGB",)).map_err(|e| value_err(format!("image: cannot convert to RGB ({e})")))?;
        let arr = obj.py().import("numpy")?.call_method1("asarray", (rgb,))?;
        let (img, _) = image_of(&arr)?;
        let id = ImageIdentity::from_bytes(&format!("<in-memory {}×{} PIL image>", img.width(), img.height()), img.as_raw());
        return Ok((img, id));
    }
    let arr: numpy::PyReadonlyArray3<u8> = obj
        .extract()
        .map_err(|_| value_err("image must be a path, a PIL image or an H×W×3 uint8 numpy array"))?;
    let shape = arr.shape().to_vec();
    if shape[2] != 3 {
        return Err(value_err(format!("image array must be H×W×3 (RGB), got {shape:?}")));
    }
    let data: Vec<u8> = arr.as_array().iter().copied().collect();
    let id = ImageIdentity::from_bytes(&format!("<in-memory {}×{} RGB array>", shape[1], shape[0]), &data);
    let img = RgbImage::from_raw(shape[1] as u32, shape[0] as u32, data).ok_or_else(|| value_err("image array: inconsistent size"))?;
    Ok((img, id))
}

/// A list of image arguments (the batched forms).
fn images_of(objs: &Bound<'_, PyAny>) -> PyResult<Vec<(RgbImage, ImageIdentity)>> {
    if objs.extract::<PathBuf>().is_ok() || objs.cast::<numpy::PyUntypedArray>().is_ok() {
        return Err(value_err("images must be a list of images (paths or H×W×3 uint8 arrays), not one image"));
    }
    objs.try_iter()
        .map_err(|_| value_err("images must be a list of images (paths or H×W×3 uint8 arrays)"))?
        .map(|o| image_of(&o?))
        .collect()
}

fn to_numpy<'py, const D: usize>(py: Python<'py>, t: Tensor<D>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let shape = t.dims().to_vec();
    let v = t.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| runtime_err(format!("{e:?}")))?;
    dyn_array(py, shape, v)
}

fn dyn_array<'py>(py: Python<'py>, shape: Vec<usize>, v: Vec<f32>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(runtime_err)?.into_pyarray(py))
}

fn from_numpy(arr: &Bound<'_, PyAny>, what: &str, device: &Device) -> PyResult<DynTensor> {
    let a: PyReadonlyArrayDyn<f32> = arr
        .extract()
        .or_else(|_| arr.call_method1("astype", ("float32",)).and_then(|c| c.extract()))
        .map_err(|_| value_err(format!("{what}: expected a numeric numpy array")))?;
    let shape = a.shape().to_vec();
    Ok(DynTensor::from_vec(a.as_array().iter().copied().collect(), shape, device))
}

type Outputs = (sam3lab_model::heads::GroundingOutput, ActivationCache);

/// A cache's tensors (capture order) and manifest as a `sam3lab.Cache` (a dict name → array with
/// `.manifest` and `.save(path)`).
fn py_cache<'py>(py: Python<'py>, cache: &ActivationCache) -> PyResult<Bound<'py, PyAny>> {
    let c = PyDict::new(py);
    for name in cache.names_in_capture_order() {
        let t = cache.get(name).map_err(runtime_err)?;
        c.set_item(name, dyn_array(py, t.shape().to_vec(), t.to_vec())?)?;
    }
    let manifest = serde_json::to_string(&cache.manifest).map_err(runtime_err)?;
    py.import("sam3lab.cache")?.getattr("Cache")?.call1((c, manifest))
}

/// `(out, cache)`: the outputs as a dict of numpy arrays, the cache as a `sam3lab.Cache` whose
/// manifest records what `sam3lab run` records (checkpoint sha256, config, image path + sha256,
/// prompt, hook spec, version; `extra`: checkpoint path, device, image size, presence logit).
fn results<'py>(py: Python<'py>, model: &Model, image: &ImageIdentity, (out, mut cache): Outputs) -> PyResult<Bound<'py, PyTuple>> {
    let presence: Vec<f32> = out.presence_logit.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
    let hw = out.pred_masks.dims();
    let m = &mut cache.manifest;
    m.image = image.clone();
    m.seed = None;
    m.extra.insert("checkpoint_path".into(), serde_json::json!(model.path));
    m.extra.insert("device".into(), serde_json::json!(model.device));
    m.extra.insert("presence_logit".into(), serde_json::json!(presence));
    m.extra.insert("mask_hw".into(), serde_json::json!([hw[2], hw[3]]));
    let o = PyDict::new(py);
    o.set_item("pred_logits", to_numpy(py, out.pred_logits)?)?;
    o.set_item("boxes", to_numpy(py, out.pred_boxes)?)?;
    o.set_item("boxes_xyxy", to_numpy(py, out.pred_boxes_xyxy)?)?;
    o.set_item("masks", to_numpy(py, out.pred_masks)?)?;
    o.set_item("presence_logit", to_numpy(py, out.presence_logit)?)?;
    o.set_item("scores", to_numpy(py, out.scores)?)?;
    PyTuple::new(py, [o.into_any(), py_cache(py, &cache)?])
}

/// The runs of a batched call as a list (images) of lists (prompts) of `(out, cache)`.
fn batch_results<'py>(py: Python<'py>, model: &Model, ids: &[ImageIdentity], runs: sam3lab_model::predict::Runs) -> PyResult<Bound<'py, PyAny>> {
    let prompts = runs.prompts;
    let mut rows = Vec::with_capacity(runs.images);
    let mut row = Vec::with_capacity(prompts);
    for (k, run) in runs.runs.into_iter().enumerate() {
        row.push(results(py, model, &ids[k / prompts.max(1)], run)?);
        if row.len() == prompts {
            rows.push(pyo3::types::PyList::new(py, std::mem::take(&mut row))?);
        }
    }
    Ok(pyo3::types::PyList::new(py, rows)?.into_any())
}

/// A hook list turned into a spec: `(spec, has_callables, the first exception a callable raised)`.
type Raised = Arc<Mutex<Option<PyErr>>>;

fn hook_spec(hooks: &[(String, Bound<'_, PyAny>)], capture: &[String], dev: &Device) -> PyResult<(HookSpec, bool, Raised)> {
    let raised: Raised = Arc::new(Mutex::new(None));
    let mut spec = HookSpec::new();
    let mut callables = false;
    for (name, action) in hooks {
        let bad = || value_err(format!("hook `{name}`: action must be \"zero\", (\"scale\", a), (\"add\", array[, alpha]), (\"replace\", array) or a callable"));
        spec = if let Ok(s) = action.extract::<String>() {
            match s.as_str() {
                "zero" => spec.zero(name),
                _ => return Err(bad()),
            }
        } else if action.is_callable() {
            callables = true;
            let f: Py<PyAny> = action.clone().unbind();
            let raised = raised.clone();
            let hook = name.clone();
            spec.map(name, move |_, t| {
                Python::attach(|py| {
                    let shape = t.shape().to_vec();
                    let arg = match dyn_array(py, shape.clone(), t.to_vec()) {
                        Ok(a) => a,
                        Err(e) => {
                            raised.lock().expect("lock").get_or_insert(e);
                            return t;
                        }
                    };
                    let back = f.bind(py).call1((arg,)).and_then(|r| {
                        let d = from_numpy(&r, &format!("hook `{hook}`'s callable result"), &t.device())?;
                        if d.shape() != shape.as_slice() {
                            return Err(value_err(format!("hook `{hook}`: the callable returned shape {:?}, expected {shape:?}", d.shape())));
                        }
                        Ok(d)
                    });
                    match back {
                        Ok(d) => d,
                        Err(e) => {
                            raised.lock().expect("lock").get_or_insert(e);
                            t
                        }
                    }
                })
            })
        } else if let Ok(tup) = action.cast::<PyTuple>() {
            let kind: String = tup.get_item(0).and_then(|k| k.extract()).map_err(|_| bad())?;
            match (kind.as_str(), tup.len()) {
                ("scale", 2) => spec.scale(name, tup.get_item(1)?.extract::<f32>().map_err(|_| bad())?),
                ("add", 2 | 3) => {
                    let alpha = if tup.len() == 3 { tup.get_item(2)?.extract::<f32>().map_err(|_| bad())? } else { 1.0 };
                    spec.add(name, from_numpy(&tup.get_item(1)?, &format!("hook `{name}`"), dev)?, alpha)
                }
                ("replace", 2) => spec.replace(name, from_numpy(&tup.get_item(1)?, &format!("hook `{name}`"), dev)?),
                _ => return Err(bad()),
            }
        } else {
            return Err(bad());
        }
        .map_err(value_err)?;
    }
    for n in capture {
        spec = spec.capture(n).map_err(value_err)?;
    }
    Ok((spec, callables, raised))
}

fn capture_spec(names: &[String]) -> PyResult<HookSpec> {
    HookSpec::new().capture_all(names).map_err(value_err)
}

#[pymethods]
impl Model {
    /// Every hook point as `(name, shape)` (shapes at batch 1, text-only prompt), optionally only
    /// those matching `pattern` (`*`, `**`, `a..b`, `{x,y}`).
    #[pyo3(signature = (pattern = None))]
    fn hook_names(&self, pattern: Option<&str>) -> PyResult<Vec<(String, Vec<usize>)>> {
        let pat = pattern.map(|p| p.parse::<sam3lab_hooks::HookPattern>().map_err(value_err)).transpose()?;
        Ok(self
            .p
            .hook_registry()
            .points
            .iter()
            .filter(|i| pat.as_ref().is_none_or(|p| p.matches(i.name.as_str())))
            .map(|i| (i.name.as_str().to_string(), i.shape.clone()))
            .collect())
    }

    /// `out, cache = m.run_with_cache(image, prompt, names)`: one forward, capturing every hook point
    /// matching `names` (names or patterns). The GIL is released during the forward.
    fn run_with_cache<'py>(&self, py: Python<'py>, image: &Bound<'py, PyAny>, prompt: &str, names: Vec<String>) -> PyResult<Bound<'py, PyTuple>> {
        let (img, id) = image_of(image)?;
        let spec = capture_spec(&names)?;
        let prompt = prompt.to_string();
        let run = py.detach(|| self.p.run_with_hooks(&img, &prompt, spec)).map_err(value_err)?;
        results(py, self, &id, run)
    }

    /// `out, cache = m.run_with_hooks(image, prompt, hooks, capture=())`: `hooks` is a list of
    /// `(name, action)`: `"zero"`, `("scale", a)`, `("add", array[, alpha])`, `("replace", array)`,
    /// or a callable `f(array) -> array` (the slow path: the GIL is held for the whole forward, and
    /// an exception it raises is re-raised here). `capture` lists points to return in `cache`.
    #[pyo3(signature = (image, prompt, hooks, capture = Vec::new()))]
    fn run_with_hooks<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
        prompt: &str,
        hooks: Vec<(String, Bound<'py, PyAny>)>,
        capture: Vec<String>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let (img, id) = image_of(image)?;
        let (spec, callables, raised) = hook_spec(&hooks, &capture, &self.p.device)?;
        let prompt = prompt.to_string();
        // A Python callable needs the GIL inside the forward; without one, release it.
        let run = if callables { self.p.run_with_hooks(&img, &prompt, spec) } else { py.detach(|| self.p.run_with_hooks(&img, &prompt, spec)) };
        if let Some(e) = raised.lock().expect("lock").take() {
            return Err(e);
        }
        results(py, self, &id, run.map_err(value_err)?)
    }

    /// `runs = m.run_with_cache_batch(images, prompts, names)`: every (image, prompt) pair, each image
    /// encoded once and each prompt once (`Predictor::run_with_cache_batch`); `runs[i][j]` is
    /// `(out, cache)` of image `i` with prompt `j`. The GIL is released during the forwards.
    fn run_with_cache_batch<'py>(&self, py: Python<'py>, images: &Bound<'py, PyAny>, prompts: Vec<String>, names: Vec<String>) -> PyResult<Bound<'py, PyAny>> {
        let imgs = images_of(images)?;
        let spec = capture_spec(&names)?;
        let (rgb, ids): (Vec<RgbImage>, Vec<ImageIdentity>) = imgs.into_iter().unzip();
        let runs = py.detach(|| self.p.run_with_hooks_batch(&rgb, &prompts, spec)).map_err(value_err)?;
        batch_results(py, self, &ids, runs)
    }

    /// `runs = m.run_with_hooks_batch(images, prompts, hooks, capture=())`: `run_with_hooks` over
    /// every (image, prompt) pair (`Predictor::run_with_hooks_batch`); `runs[i][j]` is `(out, cache)`.
    #[pyo3(signature = (images, prompts, hooks, capture = Vec::new()))]
    fn run_with_hooks_batch<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        prompts: Vec<String>,
        hooks: Vec<(String, Bound<'py, PyAny>)>,
        capture: Vec<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let imgs = images_of(images)?;
        let (spec, callables, raised) = hook_spec(&hooks, &capture, &self.p.device)?;
        let (rgb, ids): (Vec<RgbImage>, Vec<ImageIdentity>) = imgs.into_iter().unzip();
        let run = if callables {
            self.p.run_with_hooks_batch(&rgb, &prompts, spec)
        } else {
            py.detach(|| self.p.run_with_hooks_batch(&rgb, &prompts, spec))
        };
        if let Some(e) = raised.lock().expect("lock").take() {
            return Err(e);
        }
        batch_results(py, self, &ids, run.map_err(value_err)?)
    }

    /// `m.perturbed(amplitude, seed)`: a copy with uniform noise in ±`amplitude` added to every
    /// weight from sam3lab's seeded stream (`Predictor::perturbed`: same seed → same weights, the
    /// same as the Rust call's), a stand-in "fine-tune" for demos and tests. It has no `sha256`.
    fn perturbed(&self, py: Python<'_>, amplitude: f32, seed: u64) -> PyResult<Model> {
        if !amplitude.is_finite() || amplitude < 0.0 {
            return Err(value_err(format!("perturbed: amplitude must be a finite number ≥ 0, got {amplitude}")));
        }
        let p = py.detach(|| self.p.perturbed(amplitude, seed));
        Ok(Model { p, path: format!("{} (perturbed ±{amplitude}, seed {seed})", self.path), device: self.device.clone() })
    }

    /// `m._rust_forward_seconds(image, prompt, names, n)`: wall seconds of each of `n` calls of
    /// `Predictor::run_with_hooks` made from Rust (GIL released, nothing converted to numpy), for
    /// the overhead bench (`crates/python/bench/overhead.py`) to set against the Python call.
    fn _rust_forward_seconds(&self, py: Python<'_>, image: &Bound<'_, PyAny>, prompt: &str, names: Vec<String>, n: usize) -> PyResult<Vec<f64>> {
        let (img, _) = image_of(image)?;
        let spec = capture_spec(&names)?;
        py.detach(|| {
            (0..n)
                .map(|_| {
                    let t = std::time::Instant::now();
                    let run = self.p.run_with_hooks(&img, prompt, spec.clone());
                    let dt = t.elapsed().as_secs_f64();
                    run.map(|r| {
                        std::hint::black_box(r);
                        dt
                    })
                })
                .collect::<Result<Vec<f64>, _>>()
        })
        .map_err(value_err)
    }

    /// The checkpoint's path as given to `load`.
    #[getter]
    fn path(&self) -> String {
        self.path.clone()
    }

    /// The weights file's sha256 (the identity every sam3lab result records).
    #[getter]
    fn sha256(&self) -> Option<String> {
        self.p.info.as_ref().map(|i| i.sha256.clone())
    }

    fn __repr__(&self) -> String {
        format!("sam3lab.Model({:?})", self.path)
    }
}

/// `_save_cache(path, items, manifest_json)`: `items` a list of `(name, array)` in capture order,
/// written by `ActivationCache::save` (the same bytes `sam3lab run` writes: safetensors, f32, the
/// manifest in its metadata and beside it as `.json`; both written to temporary names, renamed).
#[pyfunction]
fn _save_cache(py: Python<'_>, path: PathBuf, items: Vec<(String, Bound<'_, PyAny>)>, manifest_json: &str) -> PyResult<()> {
    let value: serde_json::Value = serde_json::from_str(manifest_json).map_err(|e| value_err(format!("cache manifest: {e}")))?;
    let known = serde_json::to_value(CacheManifest::default()).map_err(runtime_err)?;
    if let (Some(obj), Some(known)) = (value.as_object(), known.as_object()) {
        if let Some(k) = obj.keys().find(|k| !known.contains_key(*k)) {
            return Err(value_err(format!(
                "cache manifest: unknown field `{k}` (the fields are {}; put free-form values under `extra`)",
                known.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let manifest: CacheManifest = serde_json::from_value(value).map_err(|e| value_err(format!("cache manifest: {e}")))?;
    let dev = Device::flex();
    let mut cache = ActivationCache::default();
    for (name, arr) in &items {
        cache.insert(name, from_numpy(arr, &format!("cache entry `{name}`"), &dev)?);
    }
    cache.manifest = manifest;
    py.detach(|| cache.save(&path)).map_err(value_err)
}

/// `_load_cache(path)`: a cache file (any f32 safetensors; `ActivationCache::load`) as a
/// `sam3lab.Cache` in its saved capture order, with the manifest from the file's metadata.
#[pyfunction]
fn _load_cache<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let cache = py.detach(|| ActivationCache::load(&path, &Device::flex())).map_err(value_err)?;
    py_cache(py, &cache)
}

/// `_parse_table(path)`: `(meta, header, rows)` of a sam3lab CSV (`sam3lab_util::csv::parse`: the
/// leading `# key: value` lines with lowercased keys, the header, the records as strings).
#[pyfunction]
fn _parse_table(path: PathBuf) -> PyResult<(Vec<(String, String)>, Vec<String>, Vec<Vec<String>>)> {
    let text = std::fs::read_to_string(&path).map_err(|e| value_err(format!("{}: {e}", path.display())))?;
    let parsed = sam3lab_util::csv::parse(&text).map_err(|(line, why)| value_err(format!("{}:{line}: {why}", path.display())))?;
    Ok((parsed.meta, parsed.header, parsed.rows.into_iter().map(|(_, r)| r).collect()))
}

/// A sparse autoencoder directory written by `sam3lab sae train` (`sae.safetensors` + `sae.json`),
/// loaded by `sam3lab_sae::io::load` (the weights' sha256 checked against `sae.json`).
#[pyclass(module = "sam3lab._sam3lab", frozen)]
struct Sae {
    sae: sam3lab_sae::Sae,
    meta: String,
    path: String,
}

/// `load_sae(dir)`.
#[pyfunction]
fn load_sae(py: Python<'_>, path: PathBuf) -> PyResult<Sae> {
    let (sae, _) = py.detach(|| sam3lab_sae::io::load(&path, &Device::flex())).map_err(value_err)?;
    // `sae.json` as written (re-serialising the parsed struct could change a float's last digit).
    let mp = path.join(sam3lab_sae::io::META_FILE);
    let meta = std::fs::read_to_string(&mp).map_err(|e| value_err(format!("{}: {e}", mp.display())))?;
    Ok(Sae { sae, meta, path: path.display().to_string() })
}

fn rows_of(arr: &Bound<'_, PyAny>, d: usize, what: &str) -> PyResult<(Vec<usize>, Tensor<2>)> {
    let t = from_numpy(arr, what, &Device::flex())?;
    let shape = t.shape().to_vec();
    if shape.last() != Some(&d) {
        return Err(value_err(format!("{what}: the last axis must be {d}, got shape {shape:?}")));
    }
    let n = shape.iter().product::<usize>() / d.max(1);
    Ok((shape, Tensor::from_data(burn::tensor::TensorData::new(t.to_vec(), [n, d]), &Device::flex())))
}

#[pymethods]
impl Sae {
    /// `W_enc` (d × m), SAELens's name and layout.
    #[getter(W_enc)]
    fn w_enc<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        to_numpy(py, self.sae.w_enc.clone())
    }
    /// `b_enc` (m).
    #[getter(b_enc)]
    fn b_enc<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        to_numpy(py, self.sae.b_enc.clone())
    }
    /// `W_dec` (m × d); row j is feature j's unit decoder direction.
    #[getter(W_dec)]
    fn w_dec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        to_numpy(py, self.sae.w_dec.clone())
    }
    /// `b_dec` (d).
    #[getter(b_dec)]
    fn b_dec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        to_numpy(py, self.sae.b_dec.clone())
    }
    /// `sae.json` as a dict (config, metrics, training manifest, weights' sha256).
    #[getter]
    fn meta<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?.call_method1("loads", (self.meta.as_str(),))
    }
    #[getter]
    fn path(&self) -> String {
        self.path.clone()
    }
    /// Feature activations `act(W_enc·(x − b_dec) + b_enc)` of `x` (`…, d`) → `(…, m)`, in raw units.
    fn encode<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let (mut shape, rows) = rows_of(x, self.sae.d_in(), "encode(x)")?;
        let f = py.detach(|| self.sae.encode(rows));
        *shape.last_mut().expect("rank ≥ 1") = self.sae.width();
        let v = f.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| runtime_err(format!("{e:?}")))?;
        dyn_array(py, shape, v)
    }
    /// The reconstruction `W_dec·f + b_dec` of feature activations `f` (`…, m`) → `(…, d)`.
    fn decode<'py>(&self, py: Python<'py>, f: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let (mut shape, rows) = rows_of(f, self.sae.width(), "decode(f)")?;
        let x = py.detach(|| self.sae.decode(rows));
        *shape.last_mut().expect("rank ≥ 1") = self.sae.d_in();
        let v = x.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| runtime_err(format!("{e:?}")))?;
        dyn_array(py, shape, v)
    }
    fn __repr__(&self) -> String {
        format!("sam3lab.Sae({:?}, d_in={}, width={})", self.path, self.sae.d_in(), self.sae.width())
    }
}

#[pymodule]
fn _sam3lab(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_class::<Sae>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(load_sae, m)?)?;
    m.add_function(wrap_pyfunction!(_save_cache, m)?)?;
    m.add_function(wrap_pyfunction!(_load_cache, m)?)?;
    m.add_function(wrap_pyfunction!(_parse_table, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
