use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use safetensors::tensor::{Dtype, TensorView};

use crate::registry::nearest_names;
use crate::{DynTensor, HookError};

/// Which image a cache was computed from: the file path (or a description of a generated input)
/// and the sha256 of the file's bytes (of the raw RGB bytes for a generated image).
///
/// Reads either this object or, from older manifests, a plain string (taken as the path).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "ImageIdentityRepr")]
pub struct ImageIdentity {
    pub path: String,
    pub sha256: String,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ImageIdentityRepr {
    Full { path: String, #[serde(default)] sha256: String },
    Text(String),
}

impl From<ImageIdentityRepr> for ImageIdentity {
    fn from(r: ImageIdentityRepr) -> Self {
        match r {
            ImageIdentityRepr::Full { path, sha256 } => Self { path, sha256 },
            ImageIdentityRepr::Text(path) => Self { path, sha256: String::new() },
        }
    }
}

impl ImageIdentity {
    /// Path and sha256 of an image file's bytes.
    pub fn from_file(path: &Path) -> Result<Self, HookError> {
        let bytes = std::fs::read(path)
            .map_err(|e| HookError::CacheIo { path: path.display().to_string(), why: format!("cannot read the image: {e}") })?;
        Ok(Self { path: path.display().to_string(), sha256: sha256_hex(&bytes) })
    }

    /// A generated or in-memory input: a description and the sha256 of its bytes.
    pub fn from_bytes(description: &str, bytes: &[u8]) -> Self {
        Self { path: description.to_string(), sha256: sha256_hex(bytes) }
    }
}

/// A description only (no hash), e.g. for synthetic activations.
impl From<&str> for ImageIdentity {
    fn from(s: &str) -> Self {
        Self { path: s.to_string(), sha256: String::new() }
    }
}

impl From<String> for ImageIdentity {
    fn from(s: String) -> Self {
        Self { path: s, sha256: String::new() }
    }
}

/// sha256 (lowercase hex) of some bytes (`sam3lab_util`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    sam3lab_util::sha256_hex(bytes)
}

/// sha256 (lowercase hex) of a file, streamed (no mapping, so hashing a multi-GB checkpoint adds
/// nothing to resident memory). The one file hash every crate uses for checkpoint / image / input
/// identity; callers map the I/O error to their own error type.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    sam3lab_util::sha256_file(path)
}

/// Where a cache came from: enough to reproduce it or to refuse mixing caches from different runs.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CacheManifest {
    /// sha256 of the checkpoint file(s) the model was loaded from.
    pub checkpoint_sha256: String,
    /// The model config (as JSON) the forward ran with.
    pub config: serde_json::Value,
    /// Image identity: path and sha256 of its bytes (or a description for generated inputs).
    pub image: ImageIdentity,
    pub prompt: String,
    /// The hook spec as (pattern, action) descriptions, in spec order.
    pub hook_spec: Vec<(String, String)>,
    pub sam3lab_version: String,
    /// The seed of whatever randomness produced the inputs; `None` when nothing was random (a
    /// forward pass itself is deterministic).
    pub seed: Option<u64>,
    /// Free-form extra fields (probe name, box prompt, ...).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl CacheManifest {
    /// An empty manifest stamped with this build's sam3lab version.
    pub fn new() -> Self {
        Self { sam3lab_version: env!("CARGO_PKG_VERSION").to_string(), ..Self::default() }
    }
}

/// Captured activations by hook name. Files list tensors sorted by name; the forward (capture)
/// order is kept too ([`ActivationCache::names_in_capture_order`]) and saved with the file.
#[derive(Clone, Debug, Default)]
pub struct ActivationCache {
    tensors: BTreeMap<String, DynTensor>,
    /// Names in first-capture order.
    order: Vec<String>,
    pub manifest: CacheManifest,
    /// The zero leaves that `grad` entries added at their points (live with the forward's graph;
    /// never saved): [`ActivationCache::gradients`] reads their gradients.
    grad_leaves: BTreeMap<String, DynTensor>,
}

impl ActivationCache {
    /// Store `t` under `name` (a later capture of the same name replaces the value but keeps its
    /// place in the capture order).
    pub fn insert(&mut self, name: &str, t: DynTensor) {
        if self.tensors.insert(name.to_string(), t).is_none() {
            self.order.push(name.to_string());
        }
    }

    pub(crate) fn insert_grad_leaf(&mut self, name: &str, leaf: DynTensor) {
        self.grad_leaves.insert(name.to_string(), leaf);
    }

    /// The points where this forward recorded gradients (`grad` entries), sorted.
    pub fn grad_points(&self) -> impl Iterator<Item = &str> {
        self.grad_leaves.keys().map(String::as_str)
    }

    /// The gradients at every `grad` point, as a cache keyed by the point names (same shapes as
    /// the activations), from the `Gradients` of `metric.backward()` on a scalar computed from
    /// this forward's outputs. A point the metric does not depend on is an error naming it.
    pub fn gradients(&self, grads: &burn::tensor::Gradients) -> Result<ActivationCache, HookError> {
        let mut out = ActivationCache { manifest: self.manifest.clone(), ..ActivationCache::default() };
        for (name, leaf) in &self.grad_leaves {
            let g = leaf.grad(grads).ok_or_else(|| HookError::NoGradient { point: name.clone() })?;
            out.insert(name, g);
        }
        Ok(out)
    }

    /// Names in the order the forward first captured them (forward order).
    pub fn names_in_capture_order(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(|s| s.as_str())
    }

    /// Total size of the captured values in bytes (f32).
    pub fn bytes(&self) -> usize {
        self.tensors.values().map(|t| 4 * t.numel()).sum()
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
        self.order.retain(|n| n != name);
        self.tensors.remove(name)
    }

    /// Save as `path` (safetensors, f32, the manifest also in its metadata) plus `path` with
    /// extension `.json` holding the manifest. Both are written to temporary names, then renamed.
    pub fn save(&self, path: &Path) -> Result<(), HookError> {
        let io = |why: String| HookError::CacheIo { path: path.display().to_string(), why };
        if manifest_path(path) == path {
            return Err(io("the cache file must not have the extension .json (its manifest is written there)".into()));
        }
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
        let order = serde_json::to_string(&self.order).map_err(|e| io(e.to_string()))?;
        meta.insert("sam3lab_capture_order".to_string(), order);
        let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| io(e.to_string()))?;
        let bytes = sorted_metadata(bytes).map_err(io)?;
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
        let order: Vec<String> = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("sam3lab_capture_order"))
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let mut cache = ActivationCache { manifest, ..Default::default() };
        let mut views = st.tensors();
        // Insert in the saved capture order, then anything the order list does not name.
        let rank: std::collections::HashMap<&str, usize> = order.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        views.sort_by_key(|(name, _)| (rank.get(name.as_str()).copied().unwrap_or(usize::MAX), name.clone()));
        for (name, view) in views {
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

/// A safetensors file with its `__metadata__` entries in sorted key order. `safetensors::serialize`
/// takes the metadata as a `HashMap` and writes it in that map's (randomly seeded) iteration order,
/// so a file with two metadata keys came out in either order: the same cache gave different bytes.
/// The header is re-serialised with sorted keys and padded as safetensors pads it (spaces to a
/// multiple of 8); the data offsets are relative to the data, so the data is kept as is.
fn sorted_metadata(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    let n = u64::from_le_bytes(bytes[..8].try_into().map_err(|_| "short safetensors file".to_string())?) as usize;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| format!("safetensors header: {e}"))?;
    let mut sorted = serde_json::Map::new();
    for (k, v) in header {
        let v = match (k.as_str(), v) {
            ("__metadata__", serde_json::Value::Object(m)) => {
                let m: BTreeMap<String, serde_json::Value> = m.into_iter().collect();
                let mut o = serde_json::Map::new();
                o.extend(m);
                serde_json::Value::Object(o)
            }
            (_, v) => v,
        };
        sorted.insert(k, v);
    }
    let mut h = serde_json::to_string(&sorted).map_err(|e| e.to_string())?.into_bytes();
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

/// The manifest sidecar of a cache file: `x.safetensors` → `x.json`.
pub fn manifest_path(path: &Path) -> PathBuf {
    path.with_extension("json")
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    sam3lab_util::write_atomic(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_hash_streams_the_same_digest_as_the_bytes() {
        let dir = std::env::temp_dir().join(format!("sam3lab-sha-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("abc.bin");
        std::fs::write(&p, b"abc").unwrap();
        // FIPS 180-2 test vector for "abc".
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), want);
        assert_eq!(sha256_file(&p).unwrap(), want);
        // more than one 1 MiB buffer
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &big).unwrap();
        assert_eq!(sha256_file(&p).unwrap(), sha256_hex(&big));
        assert!(sha256_file(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_same_cache_saves_to_the_same_bytes() {
        let dev = Device::flex();
        let dir = std::env::temp_dir().join(format!("sam3lab-cache-bytes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = ActivationCache::default();
        c.insert("b.point", DynTensor::from_vec(vec![1.0, 2.0], vec![1, 2], &dev));
        c.insert("a.point", DynTensor::from_vec(vec![3.0], vec![1, 1], &dev));
        c.manifest = CacheManifest::new();
        c.manifest.prompt = "a red cat".into();
        // Each save builds a new metadata HashMap (its own random order); two keys, so 20 saves
        // in one order by chance has probability 2^-19.
        let first = {
            c.save(&dir.join("c0.safetensors")).unwrap();
            std::fs::read(dir.join("c0.safetensors")).unwrap()
        };
        for i in 1..20 {
            let p = dir.join(format!("c{i}.safetensors"));
            c.save(&p).unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), first, "save {i}");
        }
        let back = ActivationCache::load(&dir.join("c0.safetensors"), &dev).unwrap();
        assert_eq!(back.names_in_capture_order().collect::<Vec<_>>(), ["b.point", "a.point"]);
        assert_eq!(back.manifest, c.manifest);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn save_load_round_trip_with_manifest_and_capture_order() {
        let dev = Device::flex();
        let mut c = ActivationCache::default();
        // Captured in forward order, which is not name order.
        c.insert("trunk.out", DynTensor::from_vec(vec![0.5, 0.25], vec![2], &dev));
        c.insert("decoder.layers.1.q0", DynTensor::from_vec(vec![1.5, -2.0, 3.25], vec![1, 3], &dev));
        c.insert("a.first_by_name", DynTensor::from_vec(vec![7.0], vec![1], &dev));
        c.manifest = CacheManifest::new();
        c.manifest.prompt = "a red cat".into();
        c.manifest.seed = Some(7);
        c.manifest.image = ImageIdentity::from_bytes("generated", b"abc");
        c.manifest.hook_spec = vec![("decoder.layers.*.q0".into(), "Capture".into())];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.safetensors");
        c.save(&p).unwrap();
        let back = ActivationCache::load(&p, &dev).unwrap();
        assert_eq!(back.manifest, c.manifest);
        assert_eq!(back.manifest.sam3lab_version, env!("CARGO_PKG_VERSION"));
        // sha256("abc"), the FIPS 180-2 test vector.
        assert_eq!(back.manifest.image.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(back.get("decoder.layers.1.q0").unwrap().to_vec(), vec![1.5, -2.0, 3.25]);
        assert_eq!(back.get("decoder.layers.1.q0").unwrap().shape(), &[1, 3]);
        let order: Vec<&str> = back.names_in_capture_order().collect();
        assert_eq!(order, ["trunk.out", "decoder.layers.1.q0", "a.first_by_name"]);
        assert_eq!(back.bytes(), 4 * 6);
        let err = back.get("decoder.layers.1.qo").unwrap_err().to_string();
        assert!(err.contains("decoder.layers.1.q0"), "{err}");
        // The sidecar manifest holds the same fields.
        let side: CacheManifest = serde_json::from_slice(&std::fs::read(manifest_path(&p)).unwrap()).unwrap();
        assert_eq!(side, c.manifest);
        // A .json cache path would clobber its own manifest.
        let err = c.save(&dir.path().join("c.json")).unwrap_err().to_string();
        assert!(err.contains(".json"), "{err}");
    }

    #[test]
    fn image_identity_reads_old_string_form_and_hashes_files() {
        let m: CacheManifest = serde_json::from_value(serde_json::json!({
            "checkpoint_sha256": "x", "config": null, "image": "planted features", "prompt": "",
            "hook_spec": [], "sam3lab_version": "0", "seed": null
        }))
        .unwrap();
        assert_eq!(m.image, ImageIdentity::from("planted features"));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("img.bin");
        std::fs::write(&f, b"abc").unwrap();
        let id = ImageIdentity::from_file(&f).unwrap();
        assert_eq!(id.sha256, ImageIdentity::from_bytes("", b"abc").sha256);
        assert!(ImageIdentity::from_file(&dir.path().join("missing.png")).unwrap_err().to_string().contains("missing.png"));
    }
}
