//! Softmax attention over long sequences on the CPU, for inference: the trunk's global blocks
//! (5,184 tokens at 1008²), its 576-token windows and the fusion encoder's image self-attention.
//!
//! burn-flex's fused kernel walks the keys in tiles of 64 and runs its online softmax one scalar
//! `exp` at a time, which caps it near 60–75 GFLOP/s on this machine class while its matmul runs at
//! 200+. Here each (batch·head, block of query rows) is three steps: the score block `Q·Kᵀ` by one
//! GEMM (`gemm`, the crate burn-flex's matmul uses), a row softmax whose `exp` is a short
//! branch-free polynomial that the compiler vectorises (AVX-512 or AVX2, picked at run time), then
//! `P·V` by a second GEMM; blocks are spread over the CPU threads. Same mathematics
//! as the fused kernel (max-subtracted softmax in f32, scale 1/√d); the results agree to float
//! rounding (tested against burn's kernel).
//!
//! Used only where it applies: the CPU device without autodiff, no mask, no bias, not causal, and
//! at least [`MIN_SCORES`] scores per head (below that burn's kernels are as fast).

use burn::prelude::*;
use burn::tensor::TensorData;

/// Score elements per head from which the blocked kernel is used.
pub const MIN_SCORES: usize = 256 * 1024;
/// Query rows per block: a 128 × 5,184 score block is 2.6 MB.
const BLOCK_Q: usize = 128;

/// Whether [`attention`] applies to `q` `(B, H, Lq, d)` against `k` `(B, H, Lk, d)`.
pub fn applies(q: &Tensor<4>, k: &Tensor<4>) -> bool {
    let device = q.device();
    let [_, _, lq, _] = q.dims();
    let lk = k.dims()[2];
    device == Device::flex() && !device.is_autodiff() && lq * lk >= MIN_SCORES
}

/// `softmax(q·kᵀ/√d)·v` for `q` `(B, H, Lq, d)`, `k` `(B, H, Lk, d)`, `v` `(B, H, Lk, dv)` →
/// `(B, H, Lq, dv)`. Check [`applies`] first.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let device = q.device();
    let [b, h, lq, d] = q.dims();
    let lk = k.dims()[2];
    let dv = v.dims()[3];
    let host = |t: Tensor<4>| t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 tensor data");
    let (q, k, v) = (host(q), host(k), host(v));
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0.0f32; b * h * lq * dv];

    // Tasks: (head index, first query row, the output rows it owns), dealt round-robin.
    let threads = crate::device::cpu_threads().max(1);
    let mut groups: Vec<Vec<(usize, usize, &mut [f32])>> = (0..threads).map(|_| Vec::new()).collect();
    let mut n = 0;
    for (bh, head_out) in out.chunks_mut(lq * dv).enumerate() {
        for (blk, rows) in head_out.chunks_mut(BLOCK_Q * dv).enumerate() {
            groups[n % threads].push((bh, blk * BLOCK_Q, rows));
            n += 1;
        }
    }
    let (q, k, v) = (&q, &k, &v);
    std::thread::scope(|s| {
        for group in groups.into_iter().filter(|g| !g.is_empty()) {
            s.spawn(move || {
                let mut scores = vec![0.0f32; BLOCK_Q * lk];
                for (bh, r0, rows_out) in group {
                    let rows = rows_out.len() / dv;
                    let qb = &q[(bh * lq + r0) * d..(bh * lq + r0 + rows) * d];
                    let kh = &k[bh * lk * d..(bh + 1) * lk * d];
                    let vh = &v[bh * lk * dv..(bh + 1) * lk * dv];
                    let sc = &mut scores[..rows * lk];
                    // SAFETY: every pointer/stride pair describes a slice in bounds: sc is
                    // rows × lk row-major, qb rows × d, kh lk × d read as its transpose (d × lk),
                    // vh lk × dv, rows_out rows × dv.
                    unsafe {
                        gemm::gemm(
                            rows, lk, d,
                            sc.as_mut_ptr(), 1, lk as isize, false,
                            qb.as_ptr(), 1, d as isize,
                            kh.as_ptr(), d as isize, 1,
                            0.0, scale, false, false, false,
                            gemm::Parallelism::None,
                        );
                    }
                    let mut inv = [0.0f32; BLOCK_Q];
                    for (r, row) in sc.chunks_mut(lk).enumerate() {
                        inv[r] = 1.0 / softmax_unnormalised(row);
                    }
                    unsafe {
                        gemm::gemm(
                            rows, dv, lk,
                            rows_out.as_mut_ptr(), 1, dv as isize, false,
                            sc.as_ptr(), 1, lk as isize,
                            vh.as_ptr(), 1, dv as isize,
                            0.0, 1.0, false, false, false,
                            gemm::Parallelism::None,
                        );
                    }
                    for (r, o) in rows_out.chunks_mut(dv).enumerate() {
                        o.iter_mut().for_each(|x| *x *= inv[r]);
                    }
                }
            });
        }
    });
    Tensor::from_data(TensorData::new(out, [b, h, lq, dv]), &device)
}

/// `row ← exp(row − max(row))` in place; returns the sum (≥ 1: the max contributes 1). The loops
/// are written to auto-vectorise; on a CPU with AVX-512 (or AVX2 + FMA) the same code is compiled
/// for it and chosen at run time.
fn softmax_unnormalised(row: &mut [f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { softmax_avx512(row) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { softmax_avx2(row) };
        }
    }
    softmax_portable(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_avx512(row: &mut [f32]) -> f32 {
    softmax_portable(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_avx2(row: &mut [f32]) -> f32 {
    softmax_portable(row)
}

const LANES: usize = 16;

#[inline(always)]
fn softmax_portable(row: &mut [f32]) -> f32 {
    // Max and sum in LANES partial accumulators (a plain fold would not vectorise: float
    // reductions keep their order).
    let mut m = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            m[i] = m[i].max(c[i]);
        }
    }
    let max = chunks.remainder().iter().copied().fold(m.iter().copied().fold(f32::NEG_INFINITY, f32::max), f32::max);
    let mut acc = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            let e = exp_approx(c[i] - max);
            c[i] = e;
            acc[i] += e;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp_approx(*x - max);
        sum += *x;
    }
    sum
}

/// `exp(x)` for `x ≤ 0` (a max-subtracted score), branch-free so that it vectorises: x = n·ln2 + r
/// with |r| ≤ ln2/2 (Cody–Waite split of ln2), a degree-6 Taylor polynomial for e^r (relative error
/// < 2e-7 on that range), scaled by 2^n through the exponent bits; below −87 it flushes to 0.
#[inline(always)]
fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.max(-87.0);
    // Round to nearest by adding 1.5·2^23: the sum's low mantissa bits are then n itself, read
    // off as an integer (neither `f32::round` nor a saturating `as i32` cast vectorises).
    const SHIFT: f32 = 12_582_912.0;
    let t = x * LOG2E + SHIFT;
    let n = t - SHIFT;
    let ni = (t.to_bits() as i32).wrapping_sub(SHIFT.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use burn::tensor::module::attention as burn_attention;
    use burn::tensor::ops::AttentionModuleOptions;

    /// Against burn's fused kernel on shapes that use it: several heads, a ragged last query block,
    /// Lq ≠ Lk, dv ≠ d, large logits (the max subtraction matters).
    #[test]
    fn equals_burns_attention() {
        let dev = Device::flex();
        for (b, h, lq, lk, d, dv, sd) in [(1, 3, 700, 400, 32, 32, 1.0), (2, 2, 300, 900, 16, 24, 4.0)] {
            let q = Tensor::<4>::random([b, h, lq, d], Distribution::Normal(0.0, sd), &dev);
            let k = Tensor::<4>::random([b, h, lk, d], Distribution::Normal(0.0, 1.0), &dev);
            let v = Tensor::<4>::random([b, h, lk, dv], Distribution::Normal(0.0, 1.0), &dev);
            assert!(applies(&q, &k));
            let opts = AttentionModuleOptions { scale: None, softcap: None, is_causal: false };
            let want = burn_attention(q.clone(), k.clone(), v.clone(), None, None, opts);
            let got = attention(q, k, v);
            assert_eq!(got.dims(), [b, h, lq, dv]);
            let err: f32 = (got - want).abs().max().into_scalar();
            assert!(err < 2e-5, "max |ours − burn| = {err}");
        }
    }

    /// The polynomial `exp` against std's over the whole range it serves (max-subtracted scores).
    #[test]
    fn exp_approx_matches_std() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -90.0 * i as f32 / 200_000.0;
            let (a, b) = (exp_approx(x) as f64, (x as f64).exp());
            if x > -87.0 {
                worst = worst.max((a - b).abs() / b);
            } else {
                assert!(a < 1e-37, "exp({x}) = {a}");
            }
        }
        assert!(worst < 1e-6, "max relative error {worst:e}");
    }

    #[test]
    fn softmax_rows_match_scalar_exp() {
        let mut row: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 20.0).collect();
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let want: Vec<f32> = row.iter().map(|x| (x - max).exp()).collect();
        let sum = softmax_unnormalised(&mut row);
        for (a, b) in row.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-6 * b + 1e-30, "{a} vs {b}");
        }
        assert!((sum - want.iter().sum::<f32>()).abs() < 1e-4);
    }
}
