//! `.pt` files holding complex storages, which burn's PyTorch reader refuses while parsing
//! `data.pkl` (`unsupported Python type 'torch.ComplexFloatStorage'`), so the whole file would fail
//! even though the only complex tensors of the released `sam3.pt` are the RoPE tables
//! `*.attn.freqs_cis` that the loader skips and recomputes.
//!
//! No pickle code is run and no pickle is parsed here: the storage CLASS NAME in `data.pkl` is
//! relabelled in place to a real type of the same element size (complex64 → `DoubleStorage`,
//! 8 bytes), keeping the pickle's length so frames and offsets stay valid, and burn's reader parses
//! the result. Those tensors then read as f64 of the same shape; nothing ever reads their bytes.
//!
//! Which tensors were relabelled is found by parsing the pickle twice, with two different labels
//! per complex kind, in small archives holding the pickle and no storages (parsing reads no tensor
//! bytes): the keys whose dtype differs between the two parses are exactly the complex ones. They
//! must all be `*.attn.freqs_cis`; a complex128 storage (16-byte elements: no real type matches)
//! or a complex tensor under any other key is refused, naming the keys.
//!
//! Loading the weights needs the storages next to the relabelled pickle, so [`Relabelled::full_copy`]
//! writes a temporary archive in the scratch directory: the new `data.pkl` (stored) and every other
//! entry raw-copied (no recompression; the reader still checks each storage's CRC). It costs one
//! copy of the archive on disk (3.4 GB for `sam3.pt`) and is deleted when the returned
//! [`TempPath`] drops, on success and on error alike.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use burn::store::pytorch_reader::{DType, MAX_PICKLE_SIZE, PytorchReader};
use tempfile::TempPath;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::ckpt_err;
use crate::ModelError;

/// The class names `torch.save` writes for complex storages.
const C64: &str = "ComplexFloatStorage";
const C128: &str = "ComplexDoubleStorage";

/// Two labellings of (complex64, complex128). Labelling A's complex64 type has the same element
/// size (8 bytes), so the relabelled file reads; complex128 is only ever named, never read. Every
/// replacement is at least 2 bytes shorter than what it replaces (see [`relabel`]).
const LABELS_A: (&str, &str) = ("DoubleStorage", "IntStorage");
const LABELS_B: (&str, &str) = ("LongStorage", "ShortStorage");

/// The only complex tensors the loader may meet: the RoPE tables it recomputes.
fn is_rope_table(raw_key: &str) -> bool {
    raw_key.ends_with(".attn.freqs_cis")
}

/// A `.pt` whose complex64 storages are relabelled.
pub(super) struct Relabelled {
    /// `data.pkl` with labelling A.
    pickle: Vec<u8>,
    /// Directory of `data.pkl` inside the archive (`archive/`, `sam3/`, or empty).
    root: String,
    /// Raw keys of the complex64 tensors (all RoPE tables), sorted.
    pub keys: Vec<String>,
    /// An archive with the relabelled pickle but no storages: enough to list names, shapes and
    /// dtypes, not to read a tensor.
    index_zip: TempPath,
}

/// Look for complex storages in `path`'s `data.pkl`. `None` when there are none, or when the file
/// is not a zip this can open (the caller's reader then reports the problem as before).
pub(super) fn probe(path: &Path, scratch: &Path) -> Result<Option<Relabelled>, ModelError> {
    let Some((mut archive, root, pickle)) = open_pickle(path) else { return Ok(None) };
    if !contains(&pickle, C64.as_bytes()) && !contains(&pickle, C128.as_bytes()) {
        return Ok(None);
    }
    let pickle_a = relabel(&pickle, LABELS_A);
    let pickle_b = relabel(&pickle, LABELS_B);
    let zip_a = write_copy(path, &mut archive, &root, &pickle_a, scratch, false)?;
    let zip_b = write_copy(path, &mut archive, &root, &pickle_b, scratch, false)?;
    let parse = |p: &Path| {
        PytorchReader::new(p).map_err(|e| {
            ckpt_err(path, format!("not a readable PyTorch checkpoint: {e} (after relabelling its complex storages)"))
        })
    };
    let (a, b) = (parse(&zip_a)?, parse(&zip_b)?);
    drop(zip_b);

    let mut c64 = Vec::new();
    let mut c128 = Vec::new();
    if a.len() != b.len() {
        return Err(ckpt_err(path, format!("internal: {} vs {} tensors under two relabellings", a.len(), b.len())));
    }
    for (key, ta) in a.tensors() {
        let Some(tb) = b.tensors().get(key) else {
            return Err(ckpt_err(path, format!("internal: tensor `{key}` is missing from the second relabelling")));
        };
        match (ta.dtype(), tb.dtype()) {
            (x, y) if x == y => {}
            (DType::F64, DType::I64) => c64.push(key.clone()),
            (DType::I32, DType::I16) => c128.push(key.clone()),
            (x, y) => {
                return Err(ckpt_err(path, format!("internal: tensor `{key}` reads as {x:?} and {y:?} under two relabellings")));
            }
        }
    }
    c64.sort();
    c128.sort();
    if !c128.is_empty() {
        return Err(ckpt_err(
            path,
            format!(
                "holds complex128 tensors, which cannot be loaded (burn reads no complex data, and only the complex64 \
                 RoPE tables `*.attn.freqs_cis` are skipped): {}; re-save them as real tensors \
                 (`torch.view_as_real`) or drop them",
                c128.join(", ")
            ),
        ));
    }
    let foreign: Vec<&str> = c64.iter().filter(|k| !is_rope_table(k)).map(String::as_str).collect();
    if !foreign.is_empty() {
        return Err(ckpt_err(
            path,
            format!(
                "holds complex64 tensors other than the RoPE tables `*.attn.freqs_cis` (the only ones the loader \
                 skips): {}; re-save them as real tensors (`torch.view_as_real`) or drop them",
                foreign.join(", ")
            ),
        ));
    }
    Ok(Some(Relabelled { pickle: pickle_a, root, keys: c64, index_zip: zip_a }))
}

impl Relabelled {
    /// A file burn's reader parses to the checkpoint's names, shapes and dtypes (no tensor bytes).
    pub fn index_path(&self) -> &Path {
        &self.index_zip
    }

    /// The whole archive with the relabelled pickle, in `scratch`; deleted when the result drops.
    pub fn full_copy(&self, path: &Path, scratch: &Path) -> Result<TempPath, ModelError> {
        let changed = || ckpt_err(path, "changed while it was being read (its data.pkl differs from the one checked)");
        let Some((mut archive, root, pickle)) = open_pickle(path) else { return Err(changed()) };
        if root != self.root || relabel(&pickle, LABELS_A) != self.pickle {
            return Err(changed());
        }
        write_copy(path, &mut archive, &root, &self.pickle, scratch, true)
    }
}

type Archive = ZipArchive<BufReader<File>>;

/// The archive, the directory holding `data.pkl` (found as burn's reader finds it: the shortest
/// such directory) and the `data.pkl` bytes.
fn open_pickle(path: &Path) -> Option<(Archive, String, Vec<u8>)> {
    let file = File::open(path).ok()?;
    let mut archive = ZipArchive::new(BufReader::new(file)).ok()?;
    let root = archive
        .file_names()
        .filter_map(Result::ok)
        .filter_map(|n| n.strip_suffix("data.pkl").map(str::to_string))
        .filter(|r| r.is_empty() || r.ends_with('/'))
        .min_by_key(String::len)?;
    let mut entry = archive.by_name(&format!("{root}data.pkl")).ok()?;
    if entry.size() > MAX_PICKLE_SIZE {
        return None;
    }
    let mut pickle = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut pickle).ok()?;
    drop(entry);
    Some((archive, root, pickle))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Replace the storage class names `ComplexFloatStorage` / `ComplexDoubleStorage` by
/// `labels.0` / `labels.1` wherever the pickle names them: as a protocol-2 `GLOBAL`
/// (`c` `torch\n` `Name\n`) or as the string a protocol-4 `STACK_GLOBAL` takes
/// (`SHORT_BINUNICODE` `\x8c` len, or `BINUNICODE` `X` u32 len). The length is kept: the shorter
/// opcode is followed by no-op opcodes `(1` (MARK, POP_MARK), or `(N1` (MARK, NONE, POP_MARK) for
/// an odd gap, before whatever followed (a memo PUT memoizes the same stack top as before).
fn relabel(pickle: &[u8], labels: (&str, &str)) -> Vec<u8> {
    let mut out = pickle.to_vec();
    for (from, to) in [(C64, labels.0), (C128, labels.1)] {
        let encodings = |name: &str| -> Vec<Vec<u8>> {
            vec![
                [b"ctorch\n", name.as_bytes(), b"\n"].concat(),
                [&[0x8c, name.len() as u8][..], name.as_bytes()].concat(),
                [&[b'X'][..], &(name.len() as u32).to_le_bytes(), name.as_bytes()].concat(),
            ]
        };
        for (old, new) in encodings(from).into_iter().zip(encodings(to)) {
            // every label is at least 2 bytes shorter than what it replaces (tested below)
            let gap = old.len() - new.len();
            let mut filled = new;
            if gap % 2 == 1 {
                filled.extend(b"(N1");
            }
            filled.extend(b"(1".repeat(gap / 2 - gap % 2));
            let mut i = 0;
            while i + old.len() <= out.len() {
                if out[i..i + old.len()] == old[..] {
                    out[i..i + old.len()].copy_from_slice(&filled);
                    i += old.len();
                } else {
                    i += 1;
                }
            }
        }
    }
    out
}

/// Write `archive` to a new temporary file in `scratch` with `pickle` as its `data.pkl` (stored)
/// and every other entry raw-copied, leaving out the storages (`<root>data/…`) unless `storages`.
fn write_copy(
    path: &Path,
    archive: &mut Archive,
    root: &str,
    pickle: &[u8],
    scratch: &Path,
    storages: bool,
) -> Result<TempPath, ModelError> {
    let (file, tmp) = tempfile::Builder::new()
        .prefix(".sam3lab-relabelled-")
        .suffix(".pt")
        .tempfile_in(scratch)
        .map_err(|e| {
            ckpt_err(path, format!("cannot create a temporary file in {} (set TMPDIR to use another directory): {e}", scratch.display()))
        })?
        .into_parts();
    let pkl_name = format!("{root}data.pkl");
    let data_dir = format!("{root}data/");
    let total: u64 = if storages {
        (0..archive.len()).filter_map(|i| archive.by_index_raw(i).ok().map(|e| e.compressed_size())).sum()
    } else {
        0
    };
    let bar = if storages { progress(path, total, &tmp) } else { indicatif::ProgressBar::hidden() };
    let write_err = |e: &dyn std::fmt::Display| {
        ckpt_err(
            path,
            format!(
                "writing its relabelled temporary copy {} (needs about {} MB free in {}; set TMPDIR to use another \
                 directory): {e}",
                tmp.display(),
                total.div_ceil(1 << 20),
                scratch.display()
            ),
        )
    };
    let sink = Progress { inner: BufWriter::with_capacity(1 << 20, file), bar: bar.clone() };
    let mut zip = ZipWriter::new(sink).set_auto_large_file();
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|e| ckpt_err(path, format!("zip entry {i}: {e}")))?;
        let name = entry.name().map_err(|e| ckpt_err(path, format!("zip entry {i}: {e}")))?.into_owned();
        if name == pkl_name {
            drop(entry);
            let options = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
            zip.start_file(name, options).map_err(|e| write_err(&e))?;
            zip.write_all(pickle).map_err(|e| write_err(&e))?;
        } else if storages || !name.starts_with(&data_dir) {
            zip.raw_copy_file(entry).map_err(|e| write_err(&e))?;
        }
    }
    let sink = zip.finish().map_err(|e| write_err(&e))?;
    sink.inner.into_inner().map_err(|e| write_err(&e.into_error()))?;
    bar.finish_and_clear();
    Ok(tmp)
}

fn progress(path: &Path, total: u64, tmp: &Path) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} ({eta})") {
        bar.set_style(style);
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    bar.set_message(format!("{name}: complex RoPE buffers, reading through a relabelled copy {}", tmp.display()));
    bar
}

/// A writer that advances a progress bar by the bytes written.
struct Progress<W> {
    inner: W,
    bar: indicatif::ProgressBar,
}

impl<W: Write> Write for Progress<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Seek> Seek for Progress<W> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relabelling_keeps_the_length_and_fills_with_no_ops() {
        let pkl = b"\x80\x02ctorch\nComplexFloatStorage\nq\x06X\x01\x00\x00\x000\x8c\x13ComplexFloatStorage\x94\
                    ctorch\nComplexDoubleStorage\nq\x07.";
        let a = relabel(pkl, LABELS_A);
        assert_eq!(a.len(), pkl.len());
        let want: &[u8] = b"\x80\x02ctorch\nDoubleStorage\n(1(1(1q\x06X\x01\x00\x00\x000\x8c\x0dDoubleStorage(1(1(1\x94\
                            ctorch\nIntStorage\n(1(1(1(1(1q\x07.";
        assert_eq!(a, want);
        let b = relabel(pkl, LABELS_B);
        assert_eq!(b.len(), pkl.len());
        assert!(contains(&b, b"ctorch\nLongStorage\n(1(1(1(1q\x06"));
        assert!(contains(&b, b"ctorch\nShortStorage\n(1(1(1(1q\x07"));
        // an odd gap: MARK NONE POP_MARK first
        for (to64, to128) in [LABELS_A, LABELS_B] {
            assert!(C64.len() >= to64.len() + 2 && C128.len() >= to128.len() + 2);
        }
        let odd = relabel(b"ctorch\nComplexDoubleStorage\n", ("DoubleStorage", "DoubleStorage"));
        assert_eq!(odd, b"ctorch\nDoubleStorage\n(N1(1(1".to_vec());
    }
}
