//! The one checkpoint reader: a file opened without loading it — a memory-mapped safetensors file
//! (tensor bytes borrowed from the page cache, zero copy) or a `.pt`/`.pth` read in place
//! ([`crate::pt::open_pytorch`]; tensors read one at a time, nothing copied). Keys are named by the
//! file's [`Naming`]. The model's loader draws its tensors from here, and so do the weight-space
//! probes, the converter and the surgery writer.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use memmap2::Mmap;
use safetensors::SafeTensors;

use crate::dtype::{self, Dtype, elem_size, is_float};
use crate::error::{CheckpointError, Result};
use sam3lab_util::nearest_names;
use crate::keys::{KeyClass, Naming};
use crate::pt::PtTensor;
use crate::sniff::{Format, sniff};

/// One tensor of a checkpoint: metadata plus where its bytes are.
#[derive(Clone)]
pub struct TensorEntry {
    /// Normalised name (no `detector.` prefix); for a skipped entry, the stored name.
    pub name: String,
    /// The key exactly as in the file.
    pub key: String,
    /// Key as stored, without a state-dict wrapper (`model.` / `state_dict.`, see [`Naming`]).
    pub stored_name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// `Some(reason)` when the file's [`Naming`] skips it.
    pub skipped: Option<&'static str>,
    loc: Loc,
}

#[derive(Clone)]
enum Loc {
    /// Absolute byte range in the mapped file.
    Mapped(Range<usize>),
    Pickled(PtTensor),
}

impl TensorEntry {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn byte_len(&self) -> usize {
        match &self.loc {
            Loc::Mapped(r) => r.len(),
            Loc::Pickled(t) => t.byte_len(),
        }
    }
    pub fn is_float(&self) -> bool {
        is_float(self.dtype)
    }
    /// Stored as a complex tensor in a `.pt` (the RoPE tables of `sam3.pt`); `dtype` and `shape`
    /// then describe its real view (`torch.view_as_real`: a trailing axis of 2).
    pub fn is_complex(&self) -> bool {
        matches!(&self.loc, Loc::Pickled(t) if t.complex)
    }
    /// The header that writes this tensor again under its stored name (for streaming a copy).
    pub fn header(&self) -> crate::writer::TensorHeader {
        crate::writer::TensorHeader {
            name: self.stored_name.clone(),
            dtype: self.dtype,
            shape: self.shape.clone(),
        }
    }
}

impl std::fmt::Debug for TensorEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorEntry")
            .field("name", &self.name)
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .finish()
    }
}

/// An opened checkpoint. Holds only metadata and a mapping; tensor bytes are borrowed from the page
/// cache (safetensors) or read on request (`.pt`).
pub struct Checkpoint {
    path: PathBuf,
    format: Format,
    mmap: Option<Mmap>,
    /// Every entry in file order (kept and skipped).
    entries: Vec<TensorEntry>,
    /// Normalised name → index into `entries`, kept entries only.
    index: HashMap<String, usize>,
    /// Kept entries sorted by name.
    sorted: Vec<usize>,
    metadata: Option<HashMap<String, String>>,
    sha256: OnceLock<String>,
}

const PAGE: usize = 4096;

impl Checkpoint {
    /// Open a checkpoint, sniffing the container from its first bytes ([`sniff`]). Parses only the
    /// header (safetensors) or `data.pkl` (PyTorch).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        match sniff(&path)? {
            Format::Pytorch => Self::open_pytorch(path),
            Format::Safetensors => Self::open_safetensors(path),
        }
    }

    fn open_safetensors(path: PathBuf) -> Result<Self> {
        let file = File::open(&path).map_err(|e| CheckpointError::io(&path, e))?;
        // SAFETY: the file is opened read-only; a concurrent writer would be a user error, as with
        // every mmap-based reader (torch, safetensors). We never hand out references past `self`.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| CheckpointError::io(&path, e))?;
        let (n, meta) = match SafeTensors::read_metadata(&mmap) {
            Ok(x) => x,
            Err(e) => return Err(explain_safetensors_error(&path, &mmap, e)),
        };
        let data_start = 8 + n;
        let mut infos: Vec<(String, safetensors::tensor::TensorInfo)> = meta.tensors().into_iter().map(|(k, v)| (k, v.clone())).collect();
        infos.sort_by_key(|(_, i)| i.data_offsets);
        let naming = Naming::of(infos.iter().map(|(k, _)| k.as_str()));
        let entries = infos
            .into_iter()
            .map(|(raw, info)| {
                let (s, e) = info.data_offsets;
                make_entry(&naming, &raw, info.dtype, info.shape, Loc::Mapped(data_start + s..data_start + e))
            })
            .collect();
        let metadata = meta.metadata().clone();
        Ok(Self::build(path, Format::Safetensors, Some(mmap), entries, metadata))
    }

    fn open_pytorch(path: PathBuf) -> Result<Self> {
        // Read in place, the complex64 RoPE storages of the released `sam3.pt` included (their
        // real views; skipped by the naming), without copying the file.
        let tensors = crate::pt::open_pytorch(&path)?;
        if tensors.is_empty() {
            return Err(CheckpointError::format(&path, "PyTorch file holds no tensors"));
        }
        let naming = Naming::of(tensors.iter().map(|t| t.name.as_str()));
        let mut entries: Vec<TensorEntry> = tensors
            .into_iter()
            .map(|t| {
                let key = t.name.clone();
                let dtype = dtype::from_pytorch(t.dtype);
                let shape = t.shape.clone();
                make_entry(&naming, &key, dtype, shape, Loc::Pickled(t))
            })
            .collect();
        // No file order for pickled tensors: use name order (what the surgery writer emits).
        entries.sort_by(|a, b| a.stored_name.cmp(&b.stored_name));
        // Complex tensors (only the RoPE tables are let through by the opener) must be skipped ones.
        let loaded: Vec<&str> = entries.iter().filter(|e| e.is_complex() && e.skipped.is_none()).map(|e| e.stored_name.as_str()).collect();
        if !loaded.is_empty() {
            return Err(CheckpointError::format(&path, format!("complex tensors where real ones are loaded: {}", loaded.join(", "))));
        }
        Ok(Self::build(path, Format::Pytorch, None, entries, None))
    }

    fn build(path: PathBuf, format: Format, mmap: Option<Mmap>, entries: Vec<TensorEntry>, metadata: Option<HashMap<String, String>>) -> Self {
        // Names are the stored keys less one fixed prefix, so kept names are unique.
        let index: HashMap<String, usize> =
            entries.iter().enumerate().filter(|(_, e)| e.skipped.is_none()).map(|(i, e)| (e.name.clone(), i)).collect();
        let mut sorted: Vec<usize> = index.values().copied().collect();
        sorted.sort_by(|&a, &b| entries[a].name.cmp(&entries[b].name));
        Self { path, format, mmap, entries, index, sorted, metadata, sha256: OnceLock::new() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn format(&self) -> Format {
        self.format
    }
    /// The safetensors `__metadata__` map, if any.
    pub fn metadata(&self) -> Option<&HashMap<String, String>> {
        self.metadata.as_ref()
    }
    /// Kept (image-detector) tensors, sorted by normalised name.
    pub fn tensors(&self) -> impl Iterator<Item = &TensorEntry> {
        self.sorted.iter().map(|&i| &self.entries[i])
    }
    /// Every stored tensor in file order, skipped ones included (for writing a complete copy).
    pub fn all_entries(&self) -> &[TensorEntry] {
        &self.entries
    }
    /// Number of kept tensors.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }
    /// Look a tensor up by name, with or without the `detector.` prefix.
    pub fn get(&self, name: &str) -> Option<&TensorEntry> {
        let name = name.strip_prefix("detector.").unwrap_or(name);
        self.index.get(name).map(|&i| &self.entries[i])
    }
    /// Like [`get`](Self::get), but a missing name is an error listing the nearest names.
    pub fn require(&self, name: &str) -> Result<&TensorEntry> {
        self.get(name).ok_or_else(|| CheckpointError::MissingParam {
            path: self.path.clone(),
            name: name.to_string(),
            nearest: nearest_names(name, self.tensors().map(|e| e.name.as_str()), 3),
        })
    }

    /// Bytes of elements `elems` of a tensor: borrowed from the mapping (zero copy), or read from a
    /// `.pt` file (the whole tensor is read, then sliced; callers ask for whole `.pt` tensors).
    pub fn bytes(&self, entry: &TensorEntry, elems: Range<usize>) -> Result<Cow<'_, [u8]>> {
        let size = elem_size(entry.dtype)
            .ok_or_else(|| self.tensor_err(entry, "sub-byte dtype cannot be sliced"))?;
        let (a, b) = (elems.start * size, elems.end * size);
        match &entry.loc {
            Loc::Mapped(r) => {
                let mmap = self.mmap.as_ref().expect("mapped entry has a mapping");
                Ok(Cow::Borrowed(&mmap[r.start + a..r.start + b]))
            }
            Loc::Pickled(t) => {
                let mut data = t
                    .read()
                    .map_err(|e| self.tensor_err(entry, &e.to_string()))?;
                if data.len() != entry.byte_len() {
                    return Err(self.tensor_err(entry, "storage shorter than its shape"));
                }
                if a == 0 && b == data.len() {
                    Ok(Cow::Owned(data))
                } else {
                    data.truncate(b);
                    data.drain(..a);
                    Ok(Cow::Owned(data))
                }
            }
        }
    }

    /// Every byte of a tensor, whatever its dtype (for copying it into another file).
    pub fn raw_bytes(&self, entry: &TensorEntry) -> Result<Cow<'_, [u8]>> {
        match &entry.loc {
            Loc::Mapped(r) => Ok(Cow::Borrowed(
                &self.mmap.as_ref().expect("mapping")[r.clone()],
            )),
            Loc::Pickled(t) => Ok(Cow::Owned(
                t.read()
                    .map_err(|e| self.tensor_err(entry, &e.to_string()))?,
            )),
        }
    }

    /// Decode a whole float tensor to f32 (small tensors: surgery slices, tests).
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>> {
        self.read_decoded(name, dtype::decode_f32)
    }

    /// Decode a whole float tensor to f64.
    pub fn read_f64(&self, name: &str) -> Result<Vec<f64>> {
        self.read_decoded(name, dtype::decode_f64)
    }

    /// A whole float tensor through `decode`; a non-float dtype is an error naming the tensor.
    fn read_decoded<T: Copy + Default>(
        &self,
        name: &str,
        decode: fn(&[u8], dtype::Dtype, &mut [T]),
    ) -> Result<Vec<T>> {
        let entry = self.require(name)?;
        if !entry.is_float() {
            return Err(self.tensor_err(
                entry,
                &format!("dtype {:?} is not a float type", entry.dtype),
            ));
        }
        let bytes = self.bytes(entry, 0..entry.numel())?;
        let mut out = vec![T::default(); entry.numel()];
        decode(&bytes, entry.dtype, &mut out);
        Ok(out)
    }

    /// The whole mapped file (safetensors only).
    pub fn mapped(&self) -> Option<&[u8]> {
        self.mmap.as_deref()
    }

    /// Byte range of elements `elems` of a mapped tensor, in file offsets.
    pub fn byte_range(
        &self,
        entry: &TensorEntry,
        elems: Range<usize>,
    ) -> Option<Range<usize>> {
        self.mapped_range(entry, &elems)
    }

    /// Prefault file bytes `r` of the mapping.
    pub fn populate_bytes(&self, r: Range<usize>) {
        #[cfg(target_os = "linux")]
        if let Some(m) = &self.mmap {
            let _ = m.advise_range(memmap2::Advice::PopulateRead, r.start, r.len());
        }
        #[cfg(not(target_os = "linux"))]
        let _ = r;
    }

    /// Drop file bytes `r` (whole pages inside it) from the resident set.
    ///
    /// The mapping is MAP_SHARED and read-only, so MADV_DONTNEED discards nothing but our page-table
    /// entries; any later access (by us or another thread) refaults the same file bytes from the page
    /// cache, and no reference into the range becomes dangling.
    pub fn release_bytes(&self, r: Range<usize>) {
        if let Some(m) = &self.mmap {
            let start = r.start.div_ceil(PAGE) * PAGE;
            let end = r.end / PAGE * PAGE;
            if end > start {
                // SAFETY: see above — a read-only shared mapping refaults identical bytes.
                let _ = unsafe {
                    m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
                };
            }
        }
    }

    pub fn has_sha256(&self) -> bool {
        self.sha256.get().is_some()
    }

    /// Record a sha256 computed elsewhere (by the diff's pipelined hashing of the mapping).
    pub fn set_sha256(&self, s: String) {
        let _ = self.sha256.set(s);
    }

    /// Prefault a mapped range before reading it (one syscall instead of one fault per 64 KiB).
    pub fn populate(&self, entry: &TensorEntry, elems: Range<usize>) {
        #[cfg(target_os = "linux")]
        if let (Some(r), Some(m)) = (self.mapped_range(entry, &elems), &self.mmap) {
            let _ = m.advise_range(memmap2::Advice::PopulateRead, r.start, r.len());
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (entry, elems);
    }

    /// Drop the pages of a processed range from this process's resident set (they stay in the page
    /// cache). This is what keeps resident memory at the size of the tensors in flight instead of the
    /// whole file: a read-only shared mapping refaults identical data if the range is read again.
    pub fn release(&self, entry: &TensorEntry, elems: Range<usize>) {
        if let Some(r) = self.mapped_range(entry, &elems) {
            self.release_bytes(r);
        }
    }

    fn mapped_range(&self, entry: &TensorEntry, elems: &Range<usize>) -> Option<Range<usize>> {
        let size = elem_size(entry.dtype)?;
        match &entry.loc {
            Loc::Mapped(r) => Some(r.start + elems.start * size..r.start + elems.end * size),
            Loc::Pickled(_) => None,
        }
    }

    /// Drop a whole tensor's pages from the resident set once it has been consumed (see
    /// [`release`](Self::release)); a no-op for `.pt` tensors.
    pub fn release_entry(&self, entry: &TensorEntry) {
        if let Some(size) = elem_size(entry.dtype) {
            self.release(entry, 0..entry.byte_len() / size);
        }
    }

    pub fn is_mapped(&self, entry: &TensorEntry) -> bool {
        matches!(entry.loc, Loc::Mapped(_))
    }

    pub fn tensor_err(&self, entry: &TensorEntry, reason: &str) -> CheckpointError {
        CheckpointError::Tensor {
            path: self.path.clone(),
            name: entry.name.clone(),
            reason: reason.to_string(),
        }
    }

    /// sha256 of the file's bytes, streamed once per process and kept in memory (never on disk).
    pub fn sha256(&self) -> Result<&str> {
        if let Some(s) = self.sha256.get() {
            return Ok(s);
        }
        let s = sha256_file(&self.path)?;
        Ok(self.sha256.get_or_init(|| s))
    }
}

/// Stream a file through sha256 with a 1 MiB buffer (reads from the page cache; no mapping, so the
/// hash does not add to resident memory).
pub fn sha256_file(path: &Path) -> Result<String> {
    sam3lab_util::sha256_file(path).map_err(|e| CheckpointError::io(path, e))
}

fn make_entry(naming: &Naming, raw: &str, dtype: Dtype, shape: Vec<usize>, loc: Loc) -> TensorEntry {
    let stored = naming.unwrapped(raw).to_string();
    let (name, skipped) = match naming.classify(raw) {
        KeyClass::Keep(n) => (n, None),
        KeyClass::Skip(why) => (stored.clone(), Some(why)),
    };
    TensorEntry { name, key: raw.to_string(), stored_name: stored, dtype, shape, skipped, loc }
}

/// Turn safetensors' terse errors into ones that name the file and, for truncation, the tensor.
fn explain_safetensors_error(
    path: &Path,
    buf: &[u8],
    err: safetensors::SafeTensorError,
) -> CheckpointError {
    use safetensors::SafeTensorError as E;
    let path = path.to_path_buf();
    let n = u64::from_le_bytes(buf[..8].try_into().expect("len checked")) as usize;
    match err {
        E::MetadataIncompleteBuffer => {
            // Header parsed; find the first tensor whose data runs past the end of the file.
            let data_len = buf.len().saturating_sub(8 + n);
            let header: HashMap<String, serde_json::Value> =
                serde_json::from_slice(&buf[8..8 + n]).unwrap_or_default();
            let mut ends: Vec<(usize, &String)> = header
                .iter()
                .filter_map(|(k, v)| Some((v.get("data_offsets")?.get(1)?.as_u64()? as usize, k)))
                .collect();
            ends.sort();
            let declared = ends.last().map_or(0, |e| e.0);
            let reason = match ends.iter().find(|(end, _)| *end > data_len) {
                Some((end, name)) => format!(
                    "the header declares {declared} data bytes but the file holds {data_len}; \
                     tensor '{name}' ends at data byte {end}"
                ),
                None => format!(
                    "the header declares {declared} data bytes but the file holds {data_len} (trailing bytes)"
                ),
            };
            CheckpointError::Truncated { path, reason }
        }
        E::InvalidHeaderLength | E::HeaderTooLarge if 8 + n > buf.len() || n > 100_000_000 => {
            CheckpointError::Format {
                path,
                reason: format!(
                    "not a safetensors file (its first 8 bytes give a header length of {n} bytes, the file has {}) \
                 and not a PyTorch checkpoint (no ZIP/pickle/TAR signature)",
                    buf.len()
                ),
            }
        }
        other => CheckpointError::Format {
            path,
            reason: format!("invalid safetensors header: {other}"),
        },
    }
}
