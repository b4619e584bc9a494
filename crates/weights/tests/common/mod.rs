//! Small generated checkpoints for the tests: safetensors through the safetensors crate, and a
//! torch-zip `.pt` written by hand (stored ZIP + protocol-2 pickle), as `torch.save` lays it out.
#![allow(dead_code)]

use std::path::Path;

use half::{bf16, f16};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

/// A named tensor with f32 values (stored as `dtype`).
#[derive(Clone)]
pub struct T {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

pub fn t(name: &str, shape: &[usize], values: Vec<f32>) -> T {
    assert_eq!(shape.iter().product::<usize>(), values.len(), "{name}");
    T {
        name: name.into(),
        shape: shape.to_vec(),
        values,
    }
}

pub fn encode(values: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::F64 => values
            .iter()
            .flat_map(|v| f64::from(*v).to_le_bytes())
            .collect(),
        Dtype::F16 => values
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_bits().to_le_bytes())
            .collect(),
        Dtype::BF16 => values
            .iter()
            .flat_map(|v| bf16::from_f32(*v).to_bits().to_le_bytes())
            .collect(),
        other => panic!("{other:?}"),
    }
}

pub fn write_st(path: &Path, tensors: &[T], dtype: Dtype) {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|t| encode(&t.values, dtype)).collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            (
                t.name.clone(),
                TensorView::new(dtype, t.shape.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Deterministic pseudo-random values in [−1, 1) (sam3lab's seeded RNG).
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = sam3lab_util::rng::Rng::new(seed);
    (0..n).map(|_| rng.range(-1.0, 1.0) as f32).collect()
}

// ---- torch.save ZIP layout, written by hand ------------------------------------------------

fn pickle_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'X');
    out.extend((s.len() as u32).to_le_bytes());
    out.extend(s.as_bytes());
}

fn pickle_int(out: &mut Vec<u8>, v: i32) {
    out.push(b'J');
    out.extend(v.to_le_bytes());
}

fn pickle_global(out: &mut Vec<u8>, module: &str, name: &str) {
    out.push(b'c');
    out.extend(format!("{module}\n{name}\n").as_bytes());
}

/// A `.pt` holding `tensors` (f32), optionally wrapped as `{"model": state_dict}`.
pub fn write_pt(path: &Path, tensors: &[T], wrap_model: bool) {
    write_pt_with_complex(path, tensors, wrap_model, &[]);
}

/// [`write_pt`] plus complex64 tensors (`ComplexFloatStorage`, as sam3.pt stores its RoPE tables
/// `*.attn.freqs_cis`): each `(name, shape, bytes)` with 8 bytes per complex element.
pub fn write_pt_with_complex(path: &Path, tensors: &[T], wrap_model: bool, complex: &[(String, Vec<usize>, Vec<u8>)]) {
    let all: Vec<(&str, &[usize], &str, usize)> = tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice(), "FloatStorage", t.values.len()))
        .chain(complex.iter().map(|(n, s, b)| (n.as_str(), s.as_slice(), "ComplexFloatStorage", b.len() / 8)))
        .collect();
    let mut p = vec![0x80, 0x02];
    if wrap_model {
        p.push(b'}');
        pickle_str(&mut p, "model");
    }
    p.push(b'}');
    for (i, &(name, shape, class, numel)) in all.iter().enumerate() {
        pickle_str(&mut p, name);
        pickle_global(&mut p, "torch._utils", "_rebuild_tensor_v2");
        p.push(b'(');
        p.push(b'(');
        pickle_str(&mut p, "storage");
        pickle_global(&mut p, "torch", class);
        pickle_str(&mut p, &i.to_string());
        pickle_str(&mut p, "cpu");
        pickle_int(&mut p, numel as i32);
        p.push(b't');
        p.push(b'Q'); // BINPERSID
        pickle_int(&mut p, 0); // storage offset
        p.push(b'(');
        for &d in shape {
            pickle_int(&mut p, d as i32);
        }
        p.push(b't');
        p.push(b'(');
        let mut stride = 1;
        let mut strides = vec![0; shape.len()];
        for k in (0..shape.len()).rev() {
            strides[k] = stride;
            stride *= shape[k];
        }
        for s in strides {
            pickle_int(&mut p, s as i32);
        }
        p.push(b't');
        p.push(0x89); // NEWFALSE: requires_grad
        pickle_global(&mut p, "collections", "OrderedDict");
        p.push(b')');
        p.push(b'R');
        p.push(b't');
        p.push(b'R');
        p.push(b's');
    }
    if wrap_model {
        p.push(b's');
    }
    p.push(b'.');

    let mut entries: Vec<(String, Vec<u8>)> = vec![("archive/data.pkl".into(), p)];
    for (i, t) in tensors.iter().enumerate() {
        entries.push((format!("archive/data/{i}"), encode(&t.values, Dtype::F32)));
    }
    for (j, (_, _, bytes)) in complex.iter().enumerate() {
        entries.push((format!("archive/data/{}", tensors.len() + j), bytes.clone()));
    }
    entries.push(("archive/version".into(), b"3\n".to_vec()));
    std::fs::write(path, zip_stored(&entries)).unwrap();
}

/// A ZIP archive with every entry stored (no compression), as torch.save writes it.
fn zip_stored(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let crc = crc.sum();
        let offset = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend(20u16.to_le_bytes()); // version needed
            v.extend(0u16.to_le_bytes()); // flags
            v.extend(0u16.to_le_bytes()); // stored
            v.extend(0u16.to_le_bytes()); // time
            v.extend(0x21u16.to_le_bytes()); // date 1980-01-01
            v.extend(crc.to_le_bytes());
            v.extend((data.len() as u32).to_le_bytes());
            v.extend((data.len() as u32).to_le_bytes());
            v.extend((name.len() as u16).to_le_bytes());
            v.extend(0u16.to_le_bytes()); // extra
        };
        out.extend(0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend(name.as_bytes());
        out.extend(data);
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend(20u16.to_le_bytes()); // made by
        common(&mut central);
        central.extend(0u16.to_le_bytes()); // comment
        central.extend(0u16.to_le_bytes()); // disk
        central.extend(0u16.to_le_bytes()); // internal attrs
        central.extend(0u32.to_le_bytes()); // external attrs
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}
