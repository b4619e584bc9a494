//! `.pt` files holding complex storages, read in place.
//!
//! burn's PyTorch reader refuses such a file while parsing `data.pkl` (`unsupported Python type
//! 'torch.ComplexFloatStorage'`), so the whole file would fail even though the only complex tensors
//! of the released `sam3.pt` are the RoPE tables `*.attn.freqs_cis` that every loader skips and
//! recomputes. Those files are read here instead, straight from the archive: nothing is copied and
//! nothing is written anywhere.
//!
//! `data.pkl` is parsed by a small pickle *interpreter of data only* ([`Unpickler`]): no pickle code
//! runs, no Python object is built. It knows the opcodes `torch.save` writes (protocols 2–5), the
//! calls that rebuild tensors (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`) and
//! `collections.OrderedDict`; any other call becomes an opaque value that holds no tensors. Each
//! tensor keeps its storage key, offset, shape and stride; its bytes are read on request from the
//! zip entry `<root>data/<key>` through the `zip` crate, which verifies the entry's CRC when the
//! tensor spans the whole storage (the common case). Strided views are gathered.
//!
//! A complex tensor reads as its real view (`torch.view_as_real`): complex64 as f32 and complex128
//! as f64, with a trailing axis of 2 (real, imaginary). The loaders still accept complex tensors
//! only under `*.attn.freqs_cis` (skipped), and name any other.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use burn::store::pytorch_reader::{DType, MAX_PICKLE_SIZE};
use zip::ZipArchive;

use crate::error::CheckpointError;
use crate::pt::PtTensor;

fn ckpt_err(path: &Path, why: impl Into<String>) -> CheckpointError {
    CheckpointError::format(path, why)
}

/// The class names `torch.save` writes for complex storages.
const C64: &str = "ComplexFloatStorage";
const C128: &str = "ComplexDoubleStorage";

type Archive = ZipArchive<BufReader<File>>;

/// The archive, the directory holding `data.pkl` (found as burn's reader finds it: the shortest
/// such directory) and the `data.pkl` bytes. `None` when the file is not a zip this can open (the
/// caller's reader then reports the problem as before).
pub(crate) fn open_pickle(path: &Path) -> Option<(Archive, String, Vec<u8>)> {
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

/// Whether a `data.pkl` names a complex storage class (then burn's reader cannot parse it).
pub(crate) fn has_complex(pickle: &[u8]) -> bool {
    contains(pickle, C64.as_bytes()) || contains(pickle, C128.as_bytes())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every tensor of the archive, read lazily in place.
pub(crate) fn read_in_place(path: &Path, archive: Archive, root: &str, pickle: &[u8]) -> Result<Vec<PtTensor>, CheckpointError> {
    let root_value = Unpickler::new(pickle).run().map_err(|e| ckpt_err(path, format!("data.pkl: {e}")))?;
    let mut found = Vec::new();
    flatten(&root_value, &mut Vec::new(), &mut found, 0);
    let archive = Arc::new(Mutex::new(archive));
    let mut out = Vec::with_capacity(found.len());
    for (name, t) in found {
        let Some((dtype, complex)) = storage_dtype(&t.storage.class) else {
            return Err(ckpt_err(path, format!("tensor `{name}` has storage type `torch.{}`, which sam3lab cannot read", t.storage.class)));
        };
        let esize = dtype.size() * if complex { 2 } else { 1 };
        if t.shape.len() != t.stride.len() {
            return Err(ckpt_err(path, format!("tensor `{name}`: shape {:?} and stride {:?} differ in rank", t.shape, t.stride)));
        }
        let numel = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let extent = t.shape.iter().zip(&t.stride).try_fold(1usize, |a, (&d, &s)| a.checked_add(d.saturating_sub(1).checked_mul(s)?));
        let (Some(numel), Some(extent)) = (numel, extent) else {
            return Err(ckpt_err(path, format!("tensor `{name}`: shape {:?} overflows", t.shape)));
        };
        let extent = if numel == 0 { 0 } else { extent };
        if t.offset.checked_add(extent).is_none_or(|end| end > t.storage.numel) {
            return Err(ckpt_err(
                path,
                format!("tensor `{name}` (offset {}, shape {:?}, stride {:?}) reaches past its storage of {} elements", t.offset, t.shape, t.stride, t.storage.numel),
            ));
        }
        let mut shape = t.shape.clone();
        if complex {
            shape.push(2);
        }
        let read = StorageRead {
            archive: archive.clone(),
            entry: format!("{root}data/{}", t.storage.key),
            storage_bytes: t.storage.numel * esize,
            offset: t.offset,
            shape: t.shape.clone(),
            stride: t.stride.clone(),
            esize,
        };
        out.push(PtTensor::new(name, dtype, shape, complex, move || read.read()));
    }
    Ok(out)
}

fn storage_dtype(class: &str) -> Option<(DType, bool)> {
    Some(match class {
        "DoubleStorage" => (DType::F64, false),
        "FloatStorage" => (DType::F32, false),
        "HalfStorage" => (DType::F16, false),
        "BFloat16Storage" => (DType::BF16, false),
        "LongStorage" => (DType::I64, false),
        "IntStorage" => (DType::I32, false),
        "ShortStorage" => (DType::I16, false),
        "CharStorage" => (DType::I8, false),
        "ByteStorage" => (DType::U8, false),
        "BoolStorage" => (DType::Bool, false),
        C64 => (DType::F32, true),
        C128 => (DType::F64, true),
        _ => return None,
    })
}

/// How to read one tensor's bytes from its storage entry.
struct StorageRead {
    archive: Arc<Mutex<Archive>>,
    entry: String,
    storage_bytes: usize,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
    esize: usize,
}

impl StorageRead {
    fn read(&self) -> io::Result<Vec<u8>> {
        let numel: usize = self.shape.iter().product();
        let contiguous = is_contiguous(&self.shape, &self.stride);
        let extent = if numel == 0 {
            0
        } else {
            1 + self.shape.iter().zip(&self.stride).map(|(&d, &s)| (d - 1) * s).sum::<usize>()
        };
        let (start, len) = (self.offset * self.esize, extent * self.esize);
        let mut archive = self.archive.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = archive
            .by_name(&self.entry)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("storage `{}`: {e}", self.entry)))?;
        let size = file.size() as usize;
        if size < self.storage_bytes {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("storage `{}` holds {size} bytes, the pickle declares {}", self.entry, self.storage_bytes),
            ));
        }
        let window = if start == 0 && len == size {
            // the whole entry: read to its end, so the zip reader verifies its CRC
            let mut all = Vec::with_capacity(size);
            file.read_to_end(&mut all).map_err(|e| io::Error::new(e.kind(), format!("storage `{}`: {e}", self.entry)))?;
            all
        } else {
            io::copy(&mut (&mut file).take(start as u64), &mut io::sink())?;
            let mut w = Vec::with_capacity(len);
            (&mut file).take(len as u64).read_to_end(&mut w)?;
            w
        };
        drop(file);
        drop(archive);
        if window.len() != len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("storage `{}`: expected {len} bytes, found {}", self.entry, window.len())));
        }
        if contiguous {
            return Ok(window);
        }
        // gather a strided view, row-major
        let mut out = Vec::with_capacity(numel * self.esize);
        let mut idx = vec![0usize; self.shape.len()];
        for _ in 0..numel {
            let at: usize = idx.iter().zip(&self.stride).map(|(&i, &s)| i * s).sum::<usize>() * self.esize;
            out.extend_from_slice(&window[at..at + self.esize]);
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < self.shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Ok(out)
    }
}

fn is_contiguous(shape: &[usize], stride: &[usize]) -> bool {
    let mut want = 1usize;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != want {
            return false;
        }
        want *= d;
    }
    true
}

// ---------------------------------------------------------------------------------------------
// A data-only pickle interpreter: enough for what `torch.save` writes.

struct StorageRef {
    class: String,
    key: String,
    numel: usize,
}

struct TensorRef {
    storage: Rc<StorageRef>,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

#[derive(Clone)]
enum V {
    None,
    Bool(bool),
    Int(i64),
    Float,
    Str(Rc<str>),
    Bytes,
    Tuple(Rc<Vec<V>>),
    List(Rc<RefCell<Vec<V>>>),
    Dict(Rc<RefCell<Vec<(V, V)>>>),
    Global(Rc<str>, Rc<str>),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    /// Anything else (an object of a class the interpreter does not model).
    Other,
}

fn dict(pairs: Vec<(V, V)>) -> V {
    V::Dict(Rc::new(RefCell::new(pairs)))
}

/// Flatten nested dicts (and lists) to dotted names, as burn's reader does.
fn flatten(v: &V, path: &mut Vec<String>, out: &mut Vec<(String, Rc<TensorRef>)>, depth: usize) {
    if depth > 64 {
        return;
    }
    match v {
        V::Dict(d) => {
            for (k, val) in d.borrow().iter() {
                let key = match k {
                    V::Str(s) => s.to_string(),
                    V::Int(i) => i.to_string(),
                    _ => continue,
                };
                path.push(key);
                flatten(val, path, out, depth + 1);
                path.pop();
            }
        }
        V::List(items) => {
            for (i, item) in items.borrow().iter().enumerate() {
                path.push(i.to_string());
                flatten(item, path, out, depth + 1);
                path.pop();
            }
        }
        V::Tuple(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                flatten(item, path, out, depth + 1);
                path.pop();
            }
        }
        V::Tensor(t) => out.push((path.join("."), t.clone())),
        _ => {}
    }
}

struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<V>,
    marks: Vec<usize>,
    memo: HashMap<u64, V>,
}

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8]) -> Self {
        Unpickler { data, pos: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new() }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| format!("ends inside an opcode at byte {}", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u64, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()) as u64)
    }
    fn u32(&mut self) -> Result<u64, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()) as u64)
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or("a text opcode without its newline")?;
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).map_err(|e| e.to_string())
    }
    fn string(&mut self, n: u64) -> Result<V, String> {
        let n = usize::try_from(n).map_err(|_| "string too long")?;
        let b = self.take(n)?;
        Ok(V::Str(String::from_utf8_lossy(b).into()))
    }
    fn pop(&mut self) -> Result<V, String> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err("pop below a mark".into());
        }
        self.stack.pop().ok_or_else(|| "pop from an empty stack".into())
    }
    fn top(&mut self) -> Result<&mut V, String> {
        self.stack.last_mut().ok_or_else(|| "empty stack".into())
    }
    fn pop_mark(&mut self) -> Result<Vec<V>, String> {
        let m = self.marks.pop().ok_or("no mark on the stack")?;
        if m > self.stack.len() {
            return Err("mark above the stack".into());
        }
        Ok(self.stack.split_off(m))
    }
    fn int(&self, v: i64) -> V {
        V::Int(v)
    }

    fn run(mut self) -> Result<V, String> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.u64()?; // FRAME
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'1' => {
                    self.pop_mark()?;
                }
                b'0' => {
                    if self.marks.last().is_some_and(|&m| m == self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                b'2' => {
                    let t = self.top()?.clone();
                    self.stack.push(t);
                }
                b'}' => self.stack.push(dict(Vec::new())),
                b']' | 0x8f => self.stack.push(V::List(Rc::new(RefCell::new(Vec::new())))),
                b')' => self.stack.push(V::Tuple(Rc::new(Vec::new()))),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(V::Tuple(Rc::new(items)));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n + self.marks.last().copied().unwrap_or(0) {
                        return Err(format!("TUPLE{n} on a short stack at byte {at}"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(V::Tuple(Rc::new(items)));
                }
                b'l' | 0x91 => {
                    let items = self.pop_mark()?;
                    self.stack.push(V::List(Rc::new(RefCell::new(items))));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err("DICT with an odd number of items".into());
                    }
                    let mut it = items.into_iter();
                    let mut pairs = Vec::new();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    self.stack.push(dict(pairs));
                }
                b'X' => {
                    let n = self.u32()?;
                    let s = self.string(n)?;
                    self.stack.push(s);
                }
                0x8c => {
                    let n = self.u8()? as u64;
                    let s = self.string(n)?;
                    self.stack.push(s);
                }
                0x8d => {
                    let n = self.u64()?;
                    let s = self.string(n)?;
                    self.stack.push(s);
                }
                b'T' => {
                    let n = self.u32()?;
                    let s = self.string(n)?;
                    self.stack.push(s);
                }
                b'U' => {
                    let n = self.u8()? as u64;
                    let s = self.string(n)?;
                    self.stack.push(s);
                }
                b'V' => {
                    let s = self.line()?;
                    self.stack.push(V::Str(s.into()));
                }
                b'S' => {
                    let s = self.line()?.trim_matches(|c| c == '\'' || c == '"').to_string();
                    self.stack.push(V::Str(s.into()));
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.u32()?,
                        b'C' => self.u8()? as u64,
                        _ => self.u64()?,
                    };
                    self.take(usize::try_from(n).map_err(|_| "bytes too long")?)?;
                    self.stack.push(V::Bytes);
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.take(4)?.try_into().unwrap()) as i64;
                    let v = self.int(v);
                    self.stack.push(v);
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.stack.push(V::Int(v));
                }
                b'M' => {
                    let v = self.u16()? as i64;
                    self.stack.push(V::Int(v));
                }
                b'I' | b'L' => {
                    let s = self.line()?.trim_end_matches('L');
                    let v = match s {
                        "00" => V::Bool(false),
                        "01" => V::Bool(true),
                        _ => s.parse::<i64>().map(V::Int).unwrap_or(V::Other),
                    };
                    self.stack.push(v);
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.u8()? as u64 } else { self.u32()? };
                    let b = self.take(usize::try_from(n).map_err(|_| "long too long")?)?;
                    let v = if b.len() <= 8 {
                        let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) { [0xffu8; 8] } else { [0u8; 8] };
                        buf[..b.len()].copy_from_slice(b);
                        V::Int(i64::from_le_bytes(buf))
                    } else {
                        V::Other
                    };
                    self.stack.push(v);
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(V::Float);
                }
                b'F' => {
                    self.line()?;
                    self.stack.push(V::Float);
                }
                b'N' => self.stack.push(V::None),
                0x88 => self.stack.push(V::Bool(true)),
                0x89 => self.stack.push(V::Bool(false)),
                b'q' | b'r' | 0x94 | b'p' => {
                    let idx = match op {
                        b'q' => self.u8()? as u64,
                        b'r' => self.u32()?,
                        b'p' => self.line()?.parse().map_err(|_| "bad PUT index")?,
                        _ => self.memo.len() as u64,
                    };
                    let t = self.top()?.clone();
                    self.memo.insert(idx, t);
                }
                b'h' | b'j' | b'g' => {
                    let idx = match op {
                        b'h' => self.u8()? as u64,
                        b'j' => self.u32()?,
                        _ => self.line()?.parse().map_err(|_| "bad GET index")?,
                    };
                    let v = self.memo.get(&idx).cloned().ok_or_else(|| format!("memo {idx} read before it was written (byte {at})"))?;
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(V::Global(module.into(), name.into()));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (V::Str(module), V::Str(name)) = (module, name) else {
                        return Err(format!("STACK_GLOBAL without two strings at byte {at}"));
                    };
                    self.stack.push(V::Global(module, name));
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = reduce(f, args).map_err(|e| format!("{e} (byte {at})"))?;
                    self.stack.push(v);
                }
                0x81 => {
                    self.pop()?;
                    self.pop()?;
                    self.stack.push(V::Other);
                }
                0x92 => {
                    self.pop()?;
                    self.pop()?;
                    self.pop()?;
                    self.stack.push(V::Other);
                }
                b'b' => {
                    self.pop()?; // BUILD: an object's state; a dict's attributes (`_metadata`) are not items
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = persistent(pid).map_err(|e| format!("{e} (byte {at})"))?;
                    self.stack.push(v);
                }
                b'P' => {
                    self.line()?;
                    self.stack.push(V::Other);
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    if let V::Dict(d) = self.top()? {
                        d.borrow_mut().push((k, v));
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err("SETITEMS with an odd number of items".into());
                    }
                    if let V::Dict(d) = self.top()? {
                        let mut d = d.borrow_mut();
                        let mut it = items.into_iter();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            d.push((k, v));
                        }
                    }
                }
                b'a' => {
                    let v = self.pop()?;
                    if let V::List(l) = self.top()? {
                        l.borrow_mut().push(v);
                    }
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    if let V::List(l) = self.top()? {
                        l.borrow_mut().extend(items);
                    }
                }
                _ => return Err(format!("opcode 0x{op:02x} at byte {at} is not one torch.save writes")),
            }
        }
    }
}

fn as_usize(v: &V, what: &str) -> Result<usize, String> {
    match v {
        V::Int(i) if *i >= 0 => Ok(*i as usize),
        V::Bool(b) => Ok(*b as usize),
        _ => Err(format!("{what}: expected a non-negative integer")),
    }
}

fn dims(v: &V, what: &str) -> Result<Vec<usize>, String> {
    match v {
        V::Tuple(items) => items.iter().map(|x| as_usize(x, what)).collect(),
        V::List(items) => items.borrow().iter().map(|x| as_usize(x, what)).collect(),
        _ => Err(format!("{what}: expected a tuple")),
    }
}

/// `('storage', torch.<Class>Storage, key, location, numel)` → a storage reference.
fn persistent(pid: V) -> Result<V, String> {
    let V::Tuple(items) = pid else { return Ok(V::Other) };
    if items.len() < 5 || !matches!(&items[0], V::Str(s) if &**s == "storage") {
        return Ok(V::Other);
    }
    let class = match &items[1] {
        V::Global(_, name) => name.to_string(),
        _ => return Err("storage without a storage class".into()),
    };
    let key = match &items[2] {
        V::Str(s) => s.to_string(),
        V::Int(i) => i.to_string(),
        _ => return Err("storage without a key".into()),
    };
    let numel = as_usize(&items[4], "storage size")?;
    Ok(V::Storage(Rc::new(StorageRef { class, key, numel })))
}

fn reduce(f: V, args: V) -> Result<V, String> {
    let V::Global(module, name) = f else { return Ok(V::Other) };
    let items: Vec<V> = match &args {
        V::Tuple(t) => t.to_vec(),
        _ => Vec::new(),
    };
    match (&*module, &*name) {
        ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
            if items.len() < 4 {
                return Err(format!("{name}: expected at least 4 arguments, got {}", items.len()));
            }
            let V::Storage(storage) = &items[0] else { return Err(format!("{name}: the first argument is not a storage")) };
            Ok(V::Tensor(Rc::new(TensorRef {
                storage: storage.clone(),
                offset: as_usize(&items[1], "storage offset")?,
                shape: dims(&items[2], "shape")?,
                stride: dims(&items[3], "stride")?,
            })))
        }
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => Ok(items.into_iter().next().unwrap_or(V::Other)),
        ("collections", "OrderedDict") | ("builtins" | "__builtin__", "dict") => {
            let mut pairs = Vec::new();
            if let Some(V::List(l)) = items.first() {
                for p in l.borrow().iter() {
                    if let V::Tuple(kv) = p
                        && kv.len() == 2
                    {
                        pairs.push((kv[0].clone(), kv[1].clone()));
                    }
                }
            }
            Ok(dict(pairs))
        }
        _ => Ok(V::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(pkl: &[u8]) -> Vec<(String, Vec<usize>, Vec<usize>, usize, String)> {
        let v = Unpickler::new(pkl).run().unwrap();
        let mut out = Vec::new();
        flatten(&v, &mut Vec::new(), &mut out, 0);
        out.into_iter().map(|(n, t)| (n, t.shape.clone(), t.stride.clone(), t.offset, t.storage.class.clone())).collect()
    }

    #[test]
    fn parses_a_protocol_2_state_dict_with_memo_and_ordered_dict() {
        // {"a.b": tensor(ComplexFloatStorage '0', offset 1, shape (2,3), stride (1,2))}, then a
        // second tensor reusing the memoized class, inside OrderedDict with a BUILD of `_metadata`
        let pkl = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x03\x00\x00\x00a.bq\x02ctorch._utils\n_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04ctorch\nComplexFloatStorage\nq\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x07tq\x08QK\x01K\x02K\x03\x86q\tK\x01K\x02\x86q\n\x89h\x00)Rq\x0btq\x0cRq\rX\x01\x00\x00\x00cq\x0eh\x03((h\x04h\x05X\x01\x00\x00\x001h\x07K\x04tQK\x00K\x04\x85K\x01\x85\x89h\x00)RtRu}X\t\x00\x00\x00_metadata}sb.";
        let got = names(pkl);
        assert_eq!(
            got,
            vec![
                ("a.b".into(), vec![2, 3], vec![1, 2], 1, C64.into()),
                ("c".into(), vec![4], vec![1], 0, C64.into()),
            ]
        );
    }

    /// The same pickle in a real zip: the strided, offset complex view is gathered from its storage
    /// and read as its real view.
    #[test]
    fn strided_complex_views_are_gathered_from_the_archive() {
        use std::io::Write;
        let pkl = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x03\x00\x00\x00a.bq\x02ctorch._utils\n_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04ctorch\nComplexFloatStorage\nq\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x07tq\x08QK\x01K\x02K\x03\x86q\tK\x01K\x02\x86q\n\x89h\x00)Rq\x0btq\x0cRq\rX\x01\x00\x00\x00cq\x0eh\x03((h\x04h\x05X\x01\x00\x00\x001h\x07K\x04tQK\x00K\x04\x85K\x01\x85\x89h\x00)RtRu}X\t\x00\x00\x00_metadata}sb.";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.pt");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("v/data.pkl", stored).unwrap();
        zip.write_all(pkl).unwrap();
        // storage 0: 7 complex64 elements, element i = eight bytes of value i
        zip.start_file("v/data/0", stored).unwrap();
        zip.write_all(&(0..7u8).flat_map(|i| [i; 8]).collect::<Vec<u8>>()).unwrap();
        zip.start_file("v/data/1", stored).unwrap();
        zip.write_all(&(0..4u8).flat_map(|i| [10 + i; 8]).collect::<Vec<u8>>()).unwrap();
        zip.finish().unwrap();

        let (archive, root, pickle) = open_pickle(&path).unwrap();
        assert_eq!(root, "v/");
        assert!(has_complex(&pickle));
        let ts = read_in_place(&path, archive, &root, &pickle).unwrap();
        let ab = ts.iter().find(|t| t.name == "a.b").unwrap();
        assert!(ab.complex);
        assert_eq!((ab.dtype, ab.shape.clone()), (DType::F32, vec![2, 3, 2]));
        // element (r, c) is storage[1 + r + 2c]
        let want: Vec<u8> = [1u8, 3, 5, 2, 4, 6].iter().flat_map(|&i| [i; 8]).collect();
        assert_eq!(ab.read().unwrap(), want);
        let c = ts.iter().find(|t| t.name == "c").unwrap();
        assert_eq!(c.read().unwrap(), (0..4u8).flat_map(|i| [10 + i; 8]).collect::<Vec<u8>>());
    }

    #[test]
    fn contiguity() {
        assert!(is_contiguous(&[2, 3], &[3, 1]));
        assert!(is_contiguous(&[1, 3], &[99, 1]));
        assert!(!is_contiguous(&[2, 3], &[1, 2]));
    }

    #[test]
    fn unknown_opcodes_are_named() {
        let e = Unpickler::new(b"\x80\x02\xff.").run().err().unwrap();
        assert!(e.contains("0xff") && e.contains("byte 2"), "{e}");
    }
}
