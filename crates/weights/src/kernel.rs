//! The diff's inner loop: Σ base² and Σ (other − base)² over a byte range of two tensors.
//!
//! Precision: f32 sums in 16 lanes over blocks of 1024 elements, then f64 across blocks (stack.md §5):
//! each f32 partial sum covers 64 terms, so its relative rounding error stays near 1e-6 while the
//! inner loop vectorises; the f64 total is exact to ~1e-16 relative to that.

use sam3lab_checkpoint::dtype::{Dtype, decode_f32};

/// Elements per f32 accumulation block.
pub const BLOCK: usize = 1024;
const LANES: usize = 16;

/// (Σ b², Σ (o − b)²) for two byte slices holding the same number of elements of float dtypes `bt`
/// and `ot` (little-endian). Panics in debug if the element counts differ (callers check shapes).
pub fn pair_sums(base: &[u8], bt: Dtype, other: &[u8], ot: Dtype) -> (f64, f64) {
    if bt == Dtype::F32 && ot == Dtype::F32 {
        return f32_pair(base, other);
    }
    let bs = sam3lab_checkpoint::dtype::elem_size(bt).expect("float");
    let os = sam3lab_checkpoint::dtype::elem_size(ot).expect("float");
    let n = base.len() / bs;
    debug_assert_eq!(n, other.len() / os);
    let (mut sb, mut sd) = (0f64, 0f64);
    let mut xb = [0f32; BLOCK];
    let mut xo = [0f32; BLOCK];
    let mut start = 0;
    while start < n {
        let len = BLOCK.min(n - start);
        decode_f32(&base[start * bs..(start + len) * bs], bt, &mut xb[..len]);
        decode_f32(&other[start * os..(start + len) * os], ot, &mut xo[..len]);
        let (b, d) = lanes_f32(&xb[..len], &xo[..len]);
        sb += f64::from(b);
        sd += f64::from(d);
        start += len;
    }
    (sb, sd)
}

fn lanes_f32(b: &[f32], o: &[f32]) -> (f32, f32) {
    let mut ab = [0f32; LANES];
    let mut ad = [0f32; LANES];
    let (bc, br) = b.as_chunks::<LANES>();
    let (oc, or) = o.as_chunks::<LANES>();
    for (x, y) in bc.iter().zip(oc) {
        for l in 0..LANES {
            ab[l] += x[l] * x[l];
            let d = y[l] - x[l];
            ad[l] += d * d;
        }
    }
    for (x, y) in br.iter().zip(or) {
        ab[0] += x * x;
        let d = y - x;
        ad[0] += d * d;
    }
    (ab.iter().sum(), ad.iter().sum())
}

/// f32/f32 straight from the (possibly unaligned) mapped bytes, no intermediate buffer.
fn f32_pair(base: &[u8], other: &[u8]) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the features the function was compiled for (checked above).
            return unsafe { f32_pair_avx2(base, other) };
        }
    }
    f32_pair_generic(base, other)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn f32_pair_avx2(base: &[u8], other: &[u8]) -> (f64, f64) {
    f32_pair_generic(base, other)
}

#[inline(always)]
fn f32_pair_generic(base: &[u8], other: &[u8]) -> (f64, f64) {
    debug_assert_eq!(base.len(), other.len());
    let (mut sb, mut sd) = (0f64, 0f64);
    let (bblocks, brest) = base.as_chunks::<{ BLOCK * 4 }>();
    let (oblocks, orest) = other.as_chunks::<{ BLOCK * 4 }>();
    for (bb, ob) in bblocks.iter().zip(oblocks) {
        let mut ab = [0f32; LANES];
        let mut ad = [0f32; LANES];
        let (bc, _) = bb.as_chunks::<{ LANES * 4 }>();
        let (oc, _) = ob.as_chunks::<{ LANES * 4 }>();
        for (x, y) in bc.iter().zip(oc) {
            for l in 0..LANES {
                let xv = f32::from_le_bytes([x[4 * l], x[4 * l + 1], x[4 * l + 2], x[4 * l + 3]]);
                let yv = f32::from_le_bytes([y[4 * l], y[4 * l + 1], y[4 * l + 2], y[4 * l + 3]]);
                ab[l] += xv * xv;
                let d = yv - xv;
                ad[l] += d * d;
            }
        }
        sb += f64::from(ab.iter().sum::<f32>());
        sd += f64::from(ad.iter().sum::<f32>());
    }
    let (mut rb, mut rd) = (0f32, 0f32);
    for (x, y) in brest.chunks_exact(4).zip(orest.chunks_exact(4)) {
        let xv = f32::from_le_bytes([x[0], x[1], x[2], x[3]]);
        let yv = f32::from_le_bytes([y[0], y[1], y[2], y[3]]);
        rb += xv * xv;
        rd += (yv - xv) * (yv - xv);
    }
    (sb + f64::from(rb), sd + f64::from(rd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_f32(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn f32_fast_path_matches_f64_reference_and_generic_path() {
        // 5000 elements: 4 full blocks plus a remainder; values in a wide range.
        let n = 5000;
        let b: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3)
            .collect();
        let o: Vec<f32> = b
            .iter()
            .enumerate()
            .map(|(i, x)| x + ((i % 13) as f32 - 6.0) * 1e-4)
            .collect();
        let (rb, rd) = b.iter().zip(&o).fold((0f64, 0f64), |(sb, sd), (&x, &y)| {
            let d = f64::from(y) - f64::from(x);
            (sb + f64::from(x) * f64::from(x), sd + d * d)
        });
        let (fb, fd) = pair_sums(&bytes_f32(&b), Dtype::F32, &bytes_f32(&o), Dtype::F32);
        assert!((fb - rb).abs() / rb < 1e-6, "{fb} vs {rb}");
        assert!((fd - rd).abs() / rd < 1e-5, "{fd} vs {rd}");
        // Unaligned input (offset by one byte) gives the same result.
        let mut ub = vec![0u8];
        ub.extend(bytes_f32(&b));
        let mut uo = vec![0u8];
        uo.extend(bytes_f32(&o));
        assert_eq!(
            pair_sums(&ub[1..], Dtype::F32, &uo[1..], Dtype::F32),
            (fb, fd)
        );
        // The generic (mixed-dtype) path agrees with the fast path.
        let ob64: Vec<u8> = o.iter().flat_map(|x| f64::from(*x).to_le_bytes()).collect();
        let (gb, gd) = pair_sums(&bytes_f32(&b), Dtype::F32, &ob64, Dtype::F64);
        assert!((gb - fb).abs() / fb < 1e-6 && (gd - fd).abs() / fd < 1e-5);
    }
}
