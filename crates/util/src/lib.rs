//! sam3lab-util: the few helpers every sam3lab crate needs and none owns — writing a file so that
//! it appears only when complete (temp file in the same directory, then rename), the sha256 of a
//! file or of bytes (the identity recorded in every manifest), the nearest valid names for a
//! misspelt one (Levenshtein distance from `strsim`), the one seeded random stream ([`rng`]) and CSV
//! tables with `# key: value` lines above the header ([`csv`], records by the `csv` crate), small
//! statistics ([`stats`]: mean, sample SD, Spearman's ρ with ties), and the
//! [`progress::Progress`] trait through which library code reports progress without a UI type.
//! No burn, no model: any crate can depend on it.

pub mod csv;
pub mod progress;
pub mod rng;
pub mod stats;

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The temporary name a file is written under before it is renamed into place: hidden, in the
/// same directory (so the rename is atomic), unique per process.
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    dir.join(format!(".{name}.tmp{}", std::process::id()))
}

/// Write `bytes` to `path` atomically: the parent directory is created, the data goes to
/// [`tmp_path`] and is renamed over `path` only when complete, so readers never see a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tmp_path(path);
    let res = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// sha256 of a file's bytes, lowercase hex (streamed; the file is not read whole).
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The `k` candidates closest to `query` by Levenshtein distance; ties keep the candidates' order.
pub fn nearest_names<'a>(query: &str, candidates: impl Iterator<Item = &'a str>, k: usize) -> Vec<String> {
    let mut scored: Vec<(usize, usize, &str)> =
        candidates.enumerate().map(|(i, c)| (strsim::levenshtein(query, c), i, c)).collect();
    scored.sort();
    scored.into_iter().take(k).map(|(_, _, c)| c.to_string()).collect()
}

/// Levenshtein distance (characters), from `strsim`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_only_the_complete_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/out.json");
        write_atomic(&p, b"{}").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"{}");
        let names: Vec<_> = std::fs::read_dir(d.path().join("sub")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // A failing write (target is a directory) leaves no temp file behind.
        assert!(write_atomic(d.path(), b"x").is_err());
    }

    #[test]
    fn sha256_of_file_and_bytes_agree_with_known_value() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a");
        std::fs::write(&p, b"abc").unwrap();
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), want);
        assert_eq!(sha256_file(&p).unwrap(), want);
    }

    #[test]
    fn nearest_names_rank_by_distance_then_order() {
        let c = ["decoder.layers.1.q0", "decoder.layers.10.q0", "fusion.layers.1"];
        assert_eq!(nearest_names("decoder.layer.1.q0", c.iter().copied(), 2), vec!["decoder.layers.1.q0", "decoder.layers.10.q0"]);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
