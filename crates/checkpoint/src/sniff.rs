//! What a checkpoint argument names: a file or a fixture directory, and which container a file is.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{CheckpointError, Result};

/// On-disk container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Safetensors,
    Pytorch,
}

/// A checkpoint argument resolved: the weights file and, for a fixture directory, its `config.json`.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub weights: PathBuf,
    pub config: Option<PathBuf>,
}

/// A file, or a fixture directory holding `weights.safetensors` (+ `config.json`).
pub fn resolve(path: &Path) -> Result<Resolved> {
    if path.is_dir() {
        let weights = path.join("weights.safetensors");
        if !weights.is_file() {
            return Err(CheckpointError::NotFound {
                path: path.into(),
                why: "is a directory without weights.safetensors (expected a checkpoint file or a fixture directory)".into(),
            });
        }
        let config = path.join("config.json");
        return Ok(Resolved { weights, config: config.is_file().then_some(config) });
    }
    if !path.exists() {
        return Err(CheckpointError::NotFound { path: path.into(), why: "no such file".into() });
    }
    Ok(Resolved { weights: path.to_path_buf(), config: None })
}

/// The container of a file, from its first bytes: a `{` at byte 8 is a safetensors header (its
/// length prefix may itself start with 0x80, the pickle PROTO opcode, so that is checked first);
/// else a ZIP, pickle or TAR signature is PyTorch; anything else is taken as safetensors, whose
/// parser then says what is wrong. A file under 8 bytes is neither.
pub fn sniff(path: &Path) -> Result<Format> {
    let mut file = std::fs::File::open(path).map_err(|e| CheckpointError::io(path, e))?;
    let mut head = [0u8; 512];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(CheckpointError::io(path, e)),
        }
    }
    let head = &head[..got];
    if got < 8 {
        return Err(CheckpointError::format(path, format!("only {got} bytes: truncated or not a checkpoint (safetensors or PyTorch zip)")));
    }
    let is_safetensors = head.get(8) == Some(&b'{');
    let is_zip = head.starts_with(b"PK\x03\x04");
    let is_pickle = head.first() == Some(&0x80);
    let is_tar = head.len() >= 262 && &head[257..262] == b"ustar";
    Ok(if !is_safetensors && (is_zip || is_pickle || is_tar) { Format::Pytorch } else { Format::Safetensors })
}
