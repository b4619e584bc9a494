//! Element types: which ones are floats we can decode, their sizes, and little-endian decode/encode.

use half::{bf16, f16};
pub use safetensors::Dtype;

/// Bytes per element, or `None` for sub-byte types (F4, F6), which are only ever copied raw.
pub fn elem_size(dtype: Dtype) -> Option<usize> {
    let bits = dtype.bitsize();
    bits.is_multiple_of(8).then_some(bits / 8)
}

/// Float types the probes can decode (everything else is copied raw or refused).
pub fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)
}

/// The name safetensors uses in its header (`"F32"`, `"BF16"`, …).
pub fn dtype_name(dtype: Dtype) -> String {
    format!("{dtype:?}")
}

/// Decode `out.len()` little-endian elements of a float `dtype` from `bytes` into f32.
/// F64 is rounded to f32 (only the streaming diff kernel uses this path).
pub fn decode_f32(bytes: &[u8], dtype: Dtype, out: &mut [f32]) {
    decode_into(bytes, dtype, out, "decode_f32");
}

/// Decode into f64 (exact for every float type).
pub fn decode_f64(bytes: &[u8], dtype: Dtype, out: &mut [f64]) {
    decode_into(bytes, dtype, out, "decode_f64");
}

/// A decode target: f32 (F64 rounds) or f64 (every float type exact).
trait Decoded: Copy {
    fn from_f32(v: f32) -> Self;
    fn from_f64(v: f64) -> Self;
}

impl Decoded for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Decoded for f64 {
    fn from_f32(v: f32) -> Self {
        f64::from(v)
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// F16 and BF16 widen exactly to f32, so going through f32 loses nothing for either target.
fn decode_into<T: Decoded>(bytes: &[u8], dtype: Dtype, out: &mut [T], caller: &str) {
    match dtype {
        Dtype::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = T::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            }
        }
        Dtype::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = T::from_f32(f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32());
            }
        }
        Dtype::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = T::from_f32(bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32());
            }
        }
        Dtype::F64 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                *o = T::from_f64(f64::from_le_bytes(c.try_into().expect("8 bytes")));
            }
        }
        other => unreachable!("{caller} called on non-float {other:?}"),
    }
}

/// Encode f64 values to little-endian bytes of a float `dtype` (round to nearest).
pub fn encode_f64(values: &[f64], dtype: Dtype, out: &mut Vec<u8>) {
    for &v in values {
        match dtype {
            Dtype::F64 => out.extend_from_slice(&v.to_le_bytes()),
            Dtype::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
            Dtype::F16 => out.extend_from_slice(&f16::from_f64(v).to_bits().to_le_bytes()),
            Dtype::BF16 => out.extend_from_slice(&bf16::from_f64(v).to_bits().to_le_bytes()),
            other => unreachable!("encode_f64 called on non-float {other:?}"),
        }
    }
}

/// Map pytorch-reader's element types onto safetensors' (same names in the header).
pub(crate) fn from_pytorch(dtype: burn::store::pytorch_reader::DType) -> Dtype {
    use burn::store::pytorch_reader::DType as P;
    match dtype {
        P::F64 => Dtype::F64,
        P::F32 => Dtype::F32,
        P::F16 => Dtype::F16,
        P::BF16 => Dtype::BF16,
        P::I64 => Dtype::I64,
        P::I32 => Dtype::I32,
        P::I16 => Dtype::I16,
        P::I8 => Dtype::I8,
        P::U64 => Dtype::U64,
        P::U32 => Dtype::U32,
        P::U16 => Dtype::U16,
        P::U8 => Dtype::U8,
        P::Bool => Dtype::BOOL,
    }
}

/// burn's element type for a stored one (what a loader declares to burn's store); `None` for the
/// sub-byte and exotic float types no SAM3 checkpoint holds.
pub fn to_burn(dtype: Dtype) -> Option<burn::tensor::DType> {
    use burn::tensor::DType as B;
    Some(match dtype {
        Dtype::F64 => B::F64,
        Dtype::F32 => B::F32,
        Dtype::F16 => B::F16,
        Dtype::BF16 => B::BF16,
        Dtype::I64 => B::I64,
        Dtype::I32 => B::I32,
        Dtype::I16 => B::I16,
        Dtype::I8 => B::I8,
        Dtype::U64 => B::U64,
        Dtype::U32 => B::U32,
        Dtype::U16 => B::U16,
        Dtype::U8 => B::U8,
        Dtype::BOOL => B::Bool(burn::tensor::BoolStore::Native),
        _ => return None,
    })
}
