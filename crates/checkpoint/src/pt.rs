//! PyTorch `.pt` / `.pth` files, read in place: burn's pickle-free `PytorchReader`, or, for a file
//! with complex storages (the RoPE tables of the released `sam3.pt`, which that reader refuses),
//! sam3lab's own data-only pickle reader ([`crate::pt_complex`]). Nothing is copied or written;
//! each tensor's bytes are read when asked for.

use std::path::Path;
use std::sync::Arc;

use burn::store::pytorch_reader::{DType, PytorchReader};

use crate::error::{CheckpointError, Result};
use crate::pt_complex;

/// One tensor of a `.pt` file, its bytes read on request ([`open_pytorch`]).
#[derive(Clone)]
pub struct PtTensor {
    /// Dotted path through the pickled dicts (`model.detector.…` under a `{"model": …}` wrapper).
    pub name: String,
    pub dtype: DType,
    /// For a complex tensor, its real view's shape (a trailing axis of 2: real, imaginary).
    pub shape: Vec<usize>,
    /// Stored as complex64 (read as f32) or complex128 (read as f64), as `torch.view_as_real`.
    pub complex: bool,
    read: Arc<dyn Fn() -> std::io::Result<Vec<u8>> + Send + Sync>,
}

impl PtTensor {
    pub(crate) fn new(
        name: String,
        dtype: DType,
        shape: Vec<usize>,
        complex: bool,
        read: impl Fn() -> std::io::Result<Vec<u8>> + Send + Sync + 'static,
    ) -> Self {
        PtTensor { name, dtype, shape, complex, read: Arc::new(read) }
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

/// The tensors of a `.pt` file, read in place. Complex tensors are allowed only under
/// `*.attn.freqs_cis` (which every loader skips); any other is refused, naming the keys.
pub fn open_pytorch(path: &Path) -> Result<Vec<PtTensor>> {
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
            return Err(CheckpointError::format(
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
        CheckpointError::format(path, format!("not a readable PyTorch checkpoint: {msg}{hint}"))
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
