use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use safetensors::tensor::{Dtype, TensorView};

use crate::registry::nearest_names;
use crate::{DynTensor, HookError};

/// Where a cache came from: enough to reproduce it or to refuse mixing caches from different runs.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CacheManifest {
    /// sha256 of the checkpoint file(s) the model was loaded from.
    pub checkpoint_sha256: String,
    /// The model config (as JSON) the forward ran with.
    pub config: serde_json::Value,
    /// Image identity: path and sha256 of its bytes (or a description for generated inputs).
    pub image: String,
    pub prompt: String,
    /// The hook spec as (pattern, action) descriptions.
    pub hook_spec: Vec<(String, String)>,
    pub sam3lab_version: String,
    pub seed: Option<u64>,
    /// Free-form extra fields (probe name, box prompt, ...).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Captured activations by hook name, in capture order of names (sorted for stable files).
#[derive(Clone, Debug, Default)]
pub struct ActivationCache {
    tensors: BTreeMap<String, DynTensor>,
    pub manifest: CacheManifest,
}

impl ActivationCache {
    pub fn insert(&mut self, name: &str, t: DynTensor) {
        self.tensors.insert(name.to_string(), t);
    }

    pub fn get(&self, name: &str) -> Result<&DynTensor, HookError> {
        self.tensors.get(name).ok_or_else(|| HookError::NotCaptured {
            name: name.to_string(),
            nearest: nearest_names(self.tensors.keys().map(|s| s.as_str()), name, 3),
        })
    }

    /// A captured tensor at its rank.
    pub fn tensor<const D: usize>(&self, name: &str) -> Result<Tensor<D>, HookError> {
        self.get(name)?.to_rank::<D>(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(|s| s.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &DynTensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    pub fn remove(&mut self, name: &str) -> Option<DynTensor> {
        self.tensors.remove(name)
    }

    /// Save as `path` (safetensors, f32, the manifest also in its metadata) plus `path` with
    /// extension `.json` holding the manifest. Both are written to temporary names, then renamed.
    pub fn save(&self, path: &Path) -> Result<(), HookError> {
        let io = |why: String| HookError::CacheIo { path: path.display().to_string(), why };
        let data: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(k, v)| (k.clone(), v.to_vec().iter().flat_map(|f| f.to_le_bytes()).collect(), v.shape().to_vec()))
            .collect();
        let views: Vec<(String, TensorView<'_>)> = data
            .iter()
            .map(|(k, b, s)| Ok((k.clone(), TensorView::new(Dtype::F32, s.clone(), b).map_err(|e| io(e.to_string()))?)))
            .collect::<Result<_, HookError>>()?;
        let manifest_json = serde_json::to_string_pretty(&self.manifest).map_err(|e| io(e.to_string()))?;
        let mut meta = std::collections::HashMap::new();
        meta.insert("sam3lab_manifest".to_string(), manifest_json.clone());
        let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| io(e.to_string()))?;
        write_atomic(path, &bytes).map_err(|e| io(e.to_string()))?;
        write_atomic(&manifest_path(path), manifest_json.as_bytes()).map_err(|e| io(e.to_string()))?;
        Ok(())
    }

    /// Load a cache written by [`ActivationCache::save`] (any f32 safetensors file loads; the
    /// manifest is empty when the file has none).
    pub fn load(path: &Path, device: &Device) -> Result<Self, HookError> {
        let io = |why: String| HookError::CacheIo { path: path.display().to_string(), why };
        let bytes = std::fs::read(path).map_err(|e| io(e.to_string()))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| io(format!("not a safetensors file: {e}")))?;
        let manifest = match meta.metadata().as_ref().and_then(|m| m.get("sam3lab_manifest")) {
            Some(s) => serde_json::from_str(s).map_err(|e| io(format!("bad manifest: {e}")))?,
            None => CacheManifest::default(),
        };
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| io(format!("not a safetensors file: {e}")))?;
        let mut cache = ActivationCache { manifest, ..Default::default() };
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(io(format!("tensor `{name}` is {:?}, expected F32", view.dtype())));
            }
            let vals: Vec<f32> =
                view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            cache.insert(&name, DynTensor::from_vec(vals, view.shape().to_vec(), device));
        }
        Ok(cache)
    }
}

/// The manifest sidecar of a cache file: `x.safetensors` → `x.json`.
pub fn manifest_path(path: &Path) -> PathBuf {
    path.with_extension("json")
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.tmp{}", path.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_with_manifest() {
        let dev = Device::flex();
        let mut c = ActivationCache::default();
        c.insert("decoder.layers.1.q0", DynTensor::from_vec(vec![1.5, -2.0, 3.25], vec![1, 3], &dev));
        c.manifest.prompt = "a red cat".into();
        c.manifest.seed = Some(7);
        let dir = std::env::temp_dir().join(format!("sam3lab-cache-test-{}", std::process::id()));
        let p = dir.join("c.safetensors");
        c.save(&p).unwrap();
        let back = ActivationCache::load(&p, &dev).unwrap();
        assert_eq!(back.manifest, c.manifest);
        assert_eq!(back.get("decoder.layers.1.q0").unwrap().to_vec(), vec![1.5, -2.0, 3.25]);
        assert_eq!(back.get("decoder.layers.1.q0").unwrap().shape(), &[1, 3]);
        let err = back.get("decoder.layers.1.qo").unwrap_err().to_string();
        assert!(err.contains("decoder.layers.1.q0"), "{err}");
        assert!(manifest_path(&p).exists());
        std::fs::remove_dir_all(dir).ok();
    }
}
