//! The benchmark's baseline: the straightforward way (load both files whole, loop tensors, f64
//! norms), kept here so `sam3lab bench weights-diff` measures it in the same run as the streaming
//! diff and checks that both give the same numbers.

use std::io::Read;
use std::path::Path;

use safetensors::SafeTensors;

use crate::diff::TensorSums;
use sam3lab_checkpoint::dtype::Dtype;
use crate::error::{Result, WeightsError};

/// A whole safetensors file read into an f32-aligned buffer (the "load both" step).
pub struct Loaded {
    words: Vec<f32>,
    len: usize,
}

impl Loaded {
    pub fn read(path: &Path) -> Result<Self> {
        let mut f = std::fs::File::open(path).map_err(|e| WeightsError::io(path, e))?;
        let len = f.metadata().map_err(|e| WeightsError::io(path, e))?.len() as usize;
        let mut words = vec![0f32; len.div_ceil(4)];
        // SAFETY: any byte pattern is a valid f32; the view covers exactly the allocation's bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 4)
        };
        f.read_exact(&mut bytes[..len])
            .map_err(|e| WeightsError::io(path, e))?;
        Ok(Self { words, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: as above, read-only.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

/// Load both files whole, then for every tensor Σ b² and Σ (o − b)² in f64, one thread.
pub fn naive_diff(base: &Path, other: &Path) -> Result<Vec<TensorSums>> {
    let (b, o) = (Loaded::read(base)?, Loaded::read(other)?);
    let parse = |l: &Loaded, p: &Path| {
        SafeTensors::read_metadata(l.bytes()).map_err(|e| sam3lab_checkpoint::CheckpointError::Format {
            path: p.to_path_buf(),
            reason: e.to_string(),
        })
    };
    let ((nb, mb), (no, mo)) = (parse(&b, base)?, parse(&o, other)?);
    let mut names: Vec<_> = mb.tensors().into_keys().collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let ib = mb.info(&name).expect("listed");
        let io = mo
            .info(&name)
            .ok_or_else(|| WeightsError::Usage(format!("{} lacks '{name}'", other.display())))?;
        if ib.dtype != Dtype::F32 || io.dtype != Dtype::F32 || ib.shape != io.shape {
            return Err(WeightsError::Usage(format!(
                "baseline handles equal-shape f32 tensors only ('{name}')"
            )));
        }
        // The data section starts 8-byte aligned (header padded), so offsets/4 index the words.
        let xs = &b.words[(8 + nb + ib.data_offsets.0) / 4..(8 + nb + ib.data_offsets.1) / 4];
        let ys = &o.words[(8 + no + io.data_offsets.0) / 4..(8 + no + io.data_offsets.1) / 4];
        let (mut sb, mut sd) = (0f64, 0f64);
        for (&x, &y) in xs.iter().zip(ys) {
            let (x, y) = (f64::from(x), f64::from(y));
            sb += x * x;
            sd += (y - x) * (y - x);
        }
        out.push(TensorSums {
            name,
            numel: xs.len() as u64,
            base_sq: sb,
            delta_sq: sd,
        });
    }
    Ok(out)
}

/// Peak resident set size of this process (VmHWM), in bytes; `None` off Linux.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
