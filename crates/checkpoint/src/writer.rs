//! Streaming safetensors writer: the header is fixed up front, tensor bytes are appended in order
//! (in as many pieces as the caller likes), the file's sha256 is computed on the way, and the file
//! appears under its final name only when complete (temp file + rename).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Metadata, TensorInfo};
use sha2::{Digest, Sha256};

use crate::dtype::Dtype;
use crate::error::{CheckpointError, Result};
use sam3lab_util::tmp_path;

/// Name, dtype and shape of one tensor to write.
#[derive(Clone, Debug)]
pub struct TensorHeader {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

impl TensorHeader {
    pub fn byte_len(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.bitsize() / 8
    }
}

pub struct SafetensorsWriter {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
    hasher: Sha256,
    plan: Vec<(String, usize)>,
    next: usize,
    filled: usize,
}

/// The exact header bytes (length prefix included) for these tensors, in this order.
pub fn header_bytes(
    tensors: &[TensorHeader],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let mut offset = 0;
    let mut infos = Vec::with_capacity(tensors.len());
    for t in tensors {
        let len = t.byte_len();
        infos.push((
            t.name.clone(),
            TensorInfo {
                dtype: t.dtype,
                shape: t.shape.clone(),
                data_offsets: (offset, offset + len),
            },
        ));
        offset += len;
    }
    let meta = Metadata::new(metadata, infos)
        .map_err(|e| CheckpointError::Usage(format!("cannot build a safetensors header: {e}")))?;
    let mut json = serde_json::to_vec(&meta).expect("metadata serialises");
    // Pad to 8 bytes with spaces, as the safetensors crate does, so data stays aligned.
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    Ok(out)
}

impl SafetensorsWriter {
    pub fn create(
        path: &Path,
        tensors: &[TensorHeader],
        metadata: Option<HashMap<String, String>>,
    ) -> Result<Self> {
        let header = header_bytes(tensors, metadata)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| CheckpointError::io(dir, e))?;
        }
        let tmp = tmp_path(path);
        let file = File::create(&tmp).map_err(|e| CheckpointError::io(&tmp, e))?;
        let mut w = Self {
            path: path.to_path_buf(),
            tmp,
            file: Some(BufWriter::with_capacity(1 << 20, file)),
            hasher: Sha256::new(),
            plan: tensors
                .iter()
                .map(|t| (t.name.clone(), t.byte_len()))
                .collect(),
            next: 0,
            filled: 0,
        };
        w.put(&header)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        let f = self.file.as_mut().expect("open until finish");
        f.write_all(bytes)
            .map_err(|e| CheckpointError::io(&self.tmp, e))
    }

    /// Append bytes of tensor `name` (which must be the next one, or the current one unfinished).
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        while self.next < self.plan.len()
            && self.plan[self.next].1 == 0
            && self.plan[self.next].0 != name
        {
            self.next += 1; // empty tensors need no bytes
        }
        let Some((expect, len)) = self.plan.get(self.next).cloned() else {
            return Err(CheckpointError::Usage(format!(
                "{}: '{name}' written past the last tensor",
                self.path.display()
            )));
        };
        if expect != name {
            return Err(CheckpointError::Usage(format!(
                "{}: expected bytes of '{expect}', got '{name}'",
                self.path.display()
            )));
        }
        if self.filled + bytes.len() > len {
            return Err(CheckpointError::Usage(format!(
                "{}: '{name}' takes {len} bytes, got {}",
                self.path.display(),
                self.filled + bytes.len()
            )));
        }
        self.put(bytes)?;
        self.filled += bytes.len();
        if self.filled == len {
            self.next += 1;
            self.filled = 0;
        }
        Ok(())
    }

    /// Check every tensor was written, flush, rename into place; returns the file's sha256.
    pub fn finish(mut self) -> Result<String> {
        while self.next < self.plan.len() && self.plan[self.next].1 == 0 {
            self.next += 1;
        }
        if self.next < self.plan.len() {
            return Err(CheckpointError::Usage(format!(
                "{}: tensor '{}' was not written",
                self.path.display(),
                self.plan[self.next].0
            )));
        }
        let f = self.file.take().expect("open until finish");
        let file = f
            .into_inner()
            .map_err(|e| CheckpointError::io(&self.tmp, e.into_error()))?;
        file.sync_all()
            .map_err(|e| CheckpointError::io(&self.tmp, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| CheckpointError::io(&self.path, e))?;
        Ok(hex::encode(std::mem::take(&mut self.hasher).finalize()))
    }
}

impl Drop for SafetensorsWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp); // never leave a partial file behind
        }
    }
}
