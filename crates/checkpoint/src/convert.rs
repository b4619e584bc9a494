//! `sam3lab weights convert IN OUT.safetensors`: rewrite a checkpoint (the released `sam3.pt`, any
//! `.pt`, or a safetensors file) as one safetensors file that every later command memory-maps.
//!
//! Every real tensor is written under its stored key (a `{"model": …}` wrapper's `model.` removed;
//! `detector.` / `tracker.` prefixes kept, so the result has `sam3.pt`'s layout), in name order,
//! with its dtype and bytes unchanged. Complex tensors (the RoPE tables `*.attn.freqs_cis`, which
//! every loader skips and recomputes, and which safetensors cannot hold) are left out and listed in
//! the header's `__metadata__` (`sam3lab.dropped`). The file is streamed through
//! [`SafetensorsWriter`]: written to a temporary name next to OUT and renamed when complete, so an
//! error never leaves a partial OUT behind.

use std::collections::HashMap;
use std::path::Path;

use sam3lab_util::progress::Progress;
use serde::Serialize;

use crate::error::{CheckpointError, Result};
use crate::reader::Checkpoint;
use crate::sniff::Format;
use crate::writer::SafetensorsWriter;

/// What a conversion wrote.
#[derive(Clone, Debug, Serialize)]
pub struct ConvertReport {
    pub input: String,
    pub output: String,
    /// Tensors written.
    pub tensors: usize,
    /// Bytes of tensor data written.
    pub bytes: u64,
    /// Stored keys left out (complex tensors).
    pub dropped: Vec<String>,
    /// sha256 of the written file.
    pub sha256: String,
}

/// Convert `input` to the safetensors file `output` (see the module doc). `progress` advances by
/// the bytes of tensor data written (its length is set here).
pub fn convert(input: &Path, output: &Path, progress: &dyn Progress) -> Result<ConvertReport> {
    if output.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        return Err(CheckpointError::Usage(format!(
            "{}: the output must be a .safetensors file",
            output.display()
        )));
    }
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize())
        && a == b
    {
        return Err(CheckpointError::Usage(format!(
            "{}: input and output are the same file",
            output.display()
        )));
    }
    let ckpt = Checkpoint::open(input)?;
    let mut headers = Vec::new();
    let mut dropped = Vec::new();
    let mut keep = Vec::new();
    for e in ckpt.all_entries() {
        if e.is_complex() {
            dropped.push(e.stored_name.clone());
        } else {
            headers.push(e.header());
            keep.push(e);
        }
    }
    if keep.is_empty() {
        return Err(CheckpointError::Format {
            path: input.to_path_buf(),
            reason: "holds no real tensors to convert".into(),
        });
    }
    let total: u64 = keep.iter().map(|e| e.byte_len() as u64).sum();
    progress.set_len(total);
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let source = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    meta.insert("sam3lab.converted_from".to_string(), source);
    meta.insert(
        "sam3lab.source_format".to_string(),
        match ckpt.format() {
            Format::Pytorch => "pytorch",
            Format::Safetensors => "safetensors",
        }
        .to_string(),
    );
    if !dropped.is_empty() {
        meta.insert("sam3lab.dropped".to_string(), dropped.join(","));
    }
    let mut w = SafetensorsWriter::create(output, &headers, Some(meta))?;
    for e in &keep {
        let bytes = ckpt.bytes(e, 0..e.numel())?;
        if bytes.len() != e.byte_len() {
            return Err(CheckpointError::Tensor {
                path: input.to_path_buf(),
                name: e.stored_name.clone(),
                reason: format!("read {} bytes, expected {}", bytes.len(), e.byte_len()),
            });
        }
        w.write(&e.stored_name, &bytes)?;
        progress.inc(bytes.len() as u64);
    }
    let sha256 = w.finish()?;
    progress.finish();
    Ok(ConvertReport {
        input: input.display().to_string(),
        output: output.display().to_string(),
        tensors: keep.len(),
        bytes: total,
        dropped,
        sha256,
    })
}
