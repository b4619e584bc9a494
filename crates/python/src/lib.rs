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
use sam3lab_hooks::{DynTensor, HookSpec};
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
}

/// `load(ckpt, config=None, device="cpu")`.
#[pyfunction]
#[pyo3(signature = (ckpt, config = None, device = "cpu"))]
fn load(py: Python<'_>, ckpt: PathBuf, config: Option<PathBuf>, device: &str) -> PyResult<Model> {
    let dev = sam3lab_model::device::device_from_name(device).map_err(value_err)?;
    let path = ckpt.display().to_string();
    let p = py.detach(|| Predictor::load(&ckpt, config.as_deref(), &dev)).map_err(value_err)?;
    Ok(Model { p, path })
}

/// An image argument: a path (str / os.PathLike) or an `H×W×3` uint8 array.
fn image_of(obj: &Bound<'_, PyAny>) -> PyResult<RgbImage> {
    if let Ok(path) = obj.extract::<PathBuf>() {
        let img = image::open(&path).map_err(|e| value_err(format!("image {}: {e}", path.display())))?;
        return Ok(img.to_rgb8());
    }
    let arr: numpy::PyReadonlyArray3<u8> = obj
        .extract()
        .map_err(|_| value_err("image must be a path or an H×W×3 uint8 numpy array (a PIL image: numpy.asarray(img))"))?;
    let shape = arr.shape().to_vec();
    if shape[2] != 3 {
        return Err(value_err(format!("image array must be H×W×3 (RGB), got {shape:?}")));
    }
    let data: Vec<u8> = arr.as_array().iter().copied().collect();
    RgbImage::from_raw(shape[1] as u32, shape[0] as u32, data).ok_or_else(|| value_err("image array: inconsistent size"))
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

type Outputs = (sam3lab_model::heads::GroundingOutput, sam3lab_hooks::ActivationCache);

/// `(out, cache)` as Python dicts of numpy arrays, cache keys in capture order.
fn results<'py>(py: Python<'py>, (out, cache): Outputs) -> PyResult<Bound<'py, PyTuple>> {
    let o = PyDict::new(py);
    o.set_item("pred_logits", to_numpy(py, out.pred_logits)?)?;
    o.set_item("boxes", to_numpy(py, out.pred_boxes)?)?;
    o.set_item("boxes_xyxy", to_numpy(py, out.pred_boxes_xyxy)?)?;
    o.set_item("masks", to_numpy(py, out.pred_masks)?)?;
    o.set_item("presence_logit", to_numpy(py, out.presence_logit)?)?;
    o.set_item("scores", to_numpy(py, out.scores)?)?;
    let c = PyDict::new(py);
    for name in cache.names_in_capture_order() {
        let t = cache.get(name).map_err(runtime_err)?;
        c.set_item(name, dyn_array(py, t.shape().to_vec(), t.to_vec())?)?;
    }
    PyTuple::new(py, [o.into_any(), c.into_any()])
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
        let img = image_of(image)?;
        let mut spec = HookSpec::new();
        for n in &names {
            spec = spec.capture(n).map_err(value_err)?;
        }
        let prompt = prompt.to_string();
        let run = py.detach(|| self.p.run_with_hooks(&img, &prompt, spec)).map_err(value_err)?;
        results(py, run)
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
        let img = image_of(image)?;
        let dev = self.p.device.clone();
        let raised: Arc<Mutex<Option<PyErr>>> = Arc::new(Mutex::new(None));
        let mut spec = HookSpec::new();
        let mut callables = false;
        for (name, action) in &hooks {
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
                        spec.add(name, from_numpy(&tup.get_item(1)?, &format!("hook `{name}`"), &dev)?, alpha)
                    }
                    ("replace", 2) => spec.replace(name, from_numpy(&tup.get_item(1)?, &format!("hook `{name}`"), &dev)?),
                    _ => return Err(bad()),
                }
            } else {
                return Err(bad());
            }
            .map_err(value_err)?;
        }
        for n in &capture {
            spec = spec.capture(n).map_err(value_err)?;
        }
        let prompt = prompt.to_string();
        // A Python callable needs the GIL inside the forward; without one, release it.
        let run = if callables { self.p.run_with_hooks(&img, &prompt, spec) } else { py.detach(|| self.p.run_with_hooks(&img, &prompt, spec)) };
        if let Some(e) = raised.lock().expect("lock").take() {
            return Err(e);
        }
        results(py, run.map_err(value_err)?)
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

#[pymodule]
fn _sam3lab(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
