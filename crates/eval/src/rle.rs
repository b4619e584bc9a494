//! COCO run-length encoding of binary masks, bit-compatible with pycocotools (`maskApi.c`).
//!
//! Layout: pixels are visited in column-major (Fortran) order — down the first column, then the
//! second, … — and `counts` alternates runs of 0s and 1s, always starting with a (possibly empty)
//! run of 0s. The compressed form is pycocotools' ASCII string: each count (from the fourth on,
//! as a difference to the count two places back) is written in 5-bit little-endian groups with a
//! continuation bit (0x20) and sign bit (0x10) of the last group, offset by 48 (`'0'`).

use crate::error::EvalError;

/// A binary mask of `height × width` pixels as COCO run lengths (column-major, runs start with 0s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rle {
    pub height: u32,
    pub width: u32,
    pub counts: Vec<u32>,
}

impl Rle {
    /// Build from explicit run lengths, checking that they cover exactly `height × width` pixels.
    pub fn from_counts(height: u32, width: u32, counts: Vec<u32>) -> Result<Rle, String> {
        let total: u64 = counts.iter().map(|&c| c as u64).sum();
        let expected = height as u64 * width as u64;
        if total != expected {
            return Err(format!(
                "RLE counts cover {total} pixels but size {height}x{width} has {expected}"
            ));
        }
        Ok(Rle {
            height,
            width,
            counts,
        })
    }

    /// Encode a row-major mask (`mask[y * width + x]`, non-zero = inside), as `pycocotools.mask.encode`
    /// does for the same mask (which it reads column-major).
    pub fn from_row_major(height: u32, width: u32, mask: &[u8]) -> Rle {
        let (h, w) = (height as usize, width as usize);
        assert_eq!(mask.len(), h * w, "mask length must be height*width");
        Rle::from_column_major_iter(
            height,
            width,
            (0..w)
                .flat_map(|x| (0..h).map(move |y| (x, y)))
                .map(|(x, y)| mask[y * w + x] != 0),
        )
    }

    /// Encode pixels given in column-major order.
    pub fn from_column_major_iter(
        height: u32,
        width: u32,
        bits: impl Iterator<Item = bool>,
    ) -> Rle {
        // Same run convention as pycocotools' rleEncode: first run counts 0s, a run is closed on every
        // value change, and the last run is always written (so an empty image gives `[0]`).
        let mut counts = Vec::new();
        let mut current = false;
        let mut run = 0u32;
        for bit in bits {
            if bit != current {
                counts.push(run);
                run = 0;
                current = bit;
            }
            run += 1;
        }
        counts.push(run);
        Rle {
            height,
            width,
            counts,
        }
    }

    /// Decode into a row-major mask of 0/1 bytes.
    pub fn to_row_major(&self) -> Vec<u8> {
        let (h, w) = (self.height as usize, self.width as usize);
        let mut out = vec![0u8; h * w];
        let mut pos = 0usize;
        for (k, &c) in self.counts.iter().enumerate() {
            let c = c as usize;
            if k % 2 == 1 {
                for p in pos..pos + c {
                    let (x, y) = (p / h, p % h);
                    out[y * w + x] = 1;
                }
            }
            pos += c;
        }
        out
    }

    /// Number of foreground pixels (`pycocotools.mask.area`).
    pub fn area(&self) -> u64 {
        self.counts
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&c| c as u64)
            .sum()
    }

    /// Bounding box `[x, y, w, h]` in pixels, as `pycocotools.mask.toBbox` computes it — including its
    /// rule that a run of 1s crossing a column boundary widens the box to the full image height.
    pub fn to_bbox(&self) -> [f64; 4] {
        let h = self.height as u64;
        let m = (self.counts.len() / 2) * 2; // a trailing run of 0s does not matter
        if m == 0 || h == 0 {
            return [0.0; 4];
        }
        let (mut xs, mut ys) = (self.width as u64, h);
        let (mut xe, mut ye) = (0u64, 0u64);
        let mut cc: u64 = 0;
        let mut xp = 0u64;
        for j in 0..m {
            cc += self.counts[j] as u64;
            // Start of a 1-run (j even) is pixel cc; end of a 1-run (j odd) is pixel cc-1.
            let t = cc.wrapping_sub((j % 2) as u64);
            let y = t % h;
            let x = (t - y) / h;
            if j % 2 == 0 {
                xp = x;
            } else if xp < x {
                ys = 0;
                ye = h - 1;
            }
            xs = xs.min(x);
            xe = xe.max(x);
            ys = ys.min(y);
            ye = ye.max(y);
        }
        [
            xs as f64,
            ys as f64,
            (xe as f64 - xs as f64) + 1.0,
            (ye as f64 - ys as f64) + 1.0,
        ]
    }

    /// pycocotools' compressed `counts` string.
    pub fn to_compressed(&self) -> String {
        let mut s = Vec::with_capacity(self.counts.len() * 2);
        for i in 0..self.counts.len() {
            let mut x = self.counts[i] as i64;
            if i > 2 {
                x -= self.counts[i - 2] as i64;
            }
            loop {
                let mut c = x & 0x1f;
                x >>= 5; // arithmetic shift: negative deltas keep their sign
                let more = if c & 0x10 != 0 { x != -1 } else { x != 0 };
                if more {
                    c |= 0x20;
                }
                s.push((c + 48) as u8);
                if !more {
                    break;
                }
            }
        }
        String::from_utf8(s).expect("ASCII")
    }

    /// Parse pycocotools' compressed `counts` string for a `height × width` mask.
    pub fn from_compressed(height: u32, width: u32, counts: &str) -> Result<Rle, String> {
        let bytes = counts.as_bytes();
        let mut out: Vec<u32> = Vec::new();
        let mut p = 0usize;
        while p < bytes.len() {
            let mut x: i64 = 0;
            let mut k = 0u32;
            loop {
                let b = bytes[p];
                if !(48..48 + 64).contains(&b) {
                    return Err(format!(
                        "compressed RLE has invalid character {:?} at byte {p}",
                        b as char
                    ));
                }
                if k >= 12 {
                    return Err(format!(
                        "compressed RLE has an over-long number ending at byte {p}"
                    ));
                }
                let c = (b - 48) as i64;
                x |= (c & 0x1f) << (5 * k);
                let more = c & 0x20 != 0;
                p += 1;
                k += 1;
                if !more {
                    if c & 0x10 != 0 {
                        x |= -1i64 << (5 * k);
                    }
                    break;
                }
                if p >= bytes.len() {
                    return Err("compressed RLE ends in the middle of a number".into());
                }
            }
            let m = out.len();
            if m > 2 {
                x += out[m - 2] as i64;
            }
            if x < 0 || x > u32::MAX as i64 {
                return Err(format!(
                    "compressed RLE decodes to an invalid run length {x} (run {m})"
                ));
            }
            out.push(x as u32);
        }
        Rle::from_counts(height, width, out)
    }

    /// Union of masks of one size (`pycocotools.mask.merge(..., intersect=False)` semantics).
    pub fn union(height: u32, width: u32, masks: &[&Rle]) -> Rle {
        let mut acc = Rle {
            height,
            width,
            counts: vec![height * width],
        };
        for m in masks {
            assert_eq!(
                (m.height, m.width),
                (height, width),
                "union of masks of different sizes"
            );
            let mut bits: Vec<(u64, bool)> = Vec::new();
            walk_runs(&acc, m, |len, a, b| bits.push((len, a || b)));
            let mut counts = Vec::new();
            let mut current = false;
            let mut run = 0u64;
            for (len, v) in bits {
                if v != current {
                    counts.push(run as u32);
                    run = 0;
                    current = v;
                }
                run += len;
            }
            counts.push(run as u32);
            acc = Rle {
                height,
                width,
                counts,
            };
        }
        acc
    }
}

/// Walk two equally sized RLEs together, calling `f(len, a, b)` for each maximal stretch where both
/// values are constant.
fn walk_runs(a: &Rle, b: &Rle, mut f: impl FnMut(u64, bool, bool)) {
    let (mut ia, mut ib) = (0usize, 0usize);
    let (mut ra, mut rb) = (0u64, 0u64); // remaining length of current runs
    let (mut va, mut vb) = (true, true); // toggled to false when the first run is loaded
    loop {
        while ra == 0 {
            if ia >= a.counts.len() {
                return;
            }
            ra = a.counts[ia] as u64;
            va = ia % 2 == 1;
            ia += 1;
        }
        while rb == 0 {
            if ib >= b.counts.len() {
                return;
            }
            rb = b.counts[ib] as u64;
            vb = ib % 2 == 1;
            ib += 1;
        }
        let c = ra.min(rb);
        f(c, va, vb);
        ra -= c;
        rb -= c;
    }
}

/// Intersection and union pixel counts of two masks of the same size.
pub fn intersection_union(a: &Rle, b: &Rle) -> (u64, u64) {
    let (mut i, mut u) = (0u64, 0u64);
    walk_runs(a, b, |len, va, vb| {
        if va || vb {
            u += len;
        }
        if va && vb {
            i += len;
        }
    });
    (i, u)
}

/// Mask IoU as `pycocotools.mask.iou` computes it for a non-crowd ground truth: `|d ∩ g| / |d ∪ g|`
/// as a ratio of two integers, and 0 when the masks do not intersect (including two empty masks).
pub fn mask_iou(d: &Rle, g: &Rle) -> Result<f64, EvalError> {
    if (d.height, d.width) != (g.height, g.width) {
        return Err(EvalError::invalid(format!(
            "cannot compare masks of size {}x{} and {}x{}",
            d.height, d.width, g.height, g.width
        )));
    }
    let (i, u) = intersection_union(d, g);
    Ok(if i == 0 { 0.0 } else { i as f64 / u as f64 })
}

/// Box IoU of `[x, y, w, h]` boxes as pycocotools' `bbIou` computes it for a non-crowd ground truth
/// (same operation order, so the same rounding).
pub fn bbox_iou(d: &[f64; 4], g: &[f64; 4]) -> f64 {
    let ga = g[2] * g[3];
    let da = d[2] * d[3];
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let u = da + ga - i;
    i / u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_encoded_mask() {
        // 3x2 mask, row-major:
        // 0 1
        // 1 1
        // 0 0
        // column-major pixels: 0 1 0 | 1 1 0 -> runs 0:1, 1:1, 0:1, 1:2, 0:1
        let r = Rle::from_row_major(3, 2, &[0, 1, 1, 1, 0, 0]);
        assert_eq!(r.counts, vec![1, 1, 1, 2, 1]);
        assert_eq!(r.area(), 3);
        assert_eq!(r.to_row_major(), vec![0, 1, 1, 1, 0, 0]);
        // column 0 rows 1..1, column 1 rows 0..1 -> x 0..1, y 0..1
        assert_eq!(r.to_bbox(), [0.0, 0.0, 2.0, 2.0]);
    }

    #[test]
    fn mask_starting_with_one_has_empty_first_run() {
        let r = Rle::from_row_major(2, 1, &[1, 0]);
        assert_eq!(r.counts, vec![0, 1, 1]);
        let full = Rle::from_row_major(1, 3, &[1, 1, 1]);
        assert_eq!(full.counts, vec![0, 3]);
        let empty = Rle::from_row_major(2, 2, &[0; 4]);
        assert_eq!(empty.counts, vec![4]);
        assert_eq!(empty.to_bbox(), [0.0; 4]);
    }

    #[test]
    fn compressed_string_hand_cases() {
        // Small counts are single characters '0' + c (no continuation, no sign bit when c < 16).
        let r = Rle {
            height: 3,
            width: 2,
            counts: vec![1, 1, 1, 2, 1],
        };
        // counts[3] is written as 2 - counts[1] = 1, counts[4] as 1 - counts[2] = 0.
        assert_eq!(r.to_compressed(), "11110");
        assert_eq!(Rle::from_compressed(3, 2, "11110").unwrap(), r);
        // 16 needs two groups: its low 5 bits have the sign bit (0x10) set, so a continuation group
        // follows: (16 | 0x20) + 48 = '`', then 0 -> '0'.
        let r = Rle {
            height: 4,
            width: 8,
            counts: vec![16, 16],
        };
        assert_eq!(r.to_compressed(), "`0`0");
        assert_eq!(Rle::from_compressed(4, 8, "`0`0").unwrap(), r);
        // A negative delta: counts[3] = 1 after counts[1] = 5 -> -4 -> 0x1c -> 'L'.
        let r = Rle {
            height: 12,
            width: 1,
            counts: vec![1, 5, 1, 1, 4],
        };
        let s = r.to_compressed();
        assert_eq!(s, "151L3");
        assert_eq!(Rle::from_compressed(12, 1, &s).unwrap(), r);
    }

    #[test]
    fn compressed_string_errors() {
        assert!(
            Rle::from_compressed(2, 2, "1 1")
                .unwrap_err()
                .contains("invalid character")
        );
        assert!(
            Rle::from_compressed(2, 2, "12")
                .unwrap_err()
                .contains("cover 3 pixels")
        );
        assert!(
            Rle::from_compressed(2, 2, "h")
                .unwrap_err()
                .contains("ends in the middle")
        );
    }

    #[test]
    fn iou_hand_cases() {
        // 2x2: a = left column, b = top row; intersection 1, union 3.
        let a = Rle::from_row_major(2, 2, &[1, 0, 1, 0]);
        let b = Rle::from_row_major(2, 2, &[1, 1, 0, 0]);
        assert_eq!(intersection_union(&a, &b), (1, 3));
        assert_eq!(mask_iou(&a, &b).unwrap(), 1.0 / 3.0);
        let empty = Rle::from_row_major(2, 2, &[0; 4]);
        assert_eq!(mask_iou(&empty, &empty).unwrap(), 0.0);
        assert_eq!(mask_iou(&a, &empty).unwrap(), 0.0);
        let u = Rle::union(2, 2, &[&a, &b]);
        assert_eq!(u.to_row_major(), vec![1, 1, 1, 0]);
        let other = Rle::from_row_major(1, 4, &[1, 0, 1, 0]);
        assert!(mask_iou(&a, &other).is_err());
    }

    #[test]
    fn bbox_iou_hand_cases() {
        assert_eq!(
            bbox_iou(&[0.0, 0.0, 2.0, 2.0], &[1.0, 1.0, 2.0, 2.0]),
            1.0 / 7.0
        );
        assert_eq!(bbox_iou(&[0.0, 0.0, 1.0, 1.0], &[1.0, 0.0, 1.0, 1.0]), 0.0); // touching
        assert_eq!(bbox_iou(&[0.0, 0.0, 2.0, 2.0], &[0.0, 0.0, 2.0, 2.0]), 1.0);
    }

    #[test]
    fn bbox_of_run_crossing_columns_spans_full_height() {
        // 4x2, ones at (y=3,x=0) and (y=0,x=1): one run crossing the column boundary.
        let r = Rle::from_row_major(4, 2, &[0, 1, 0, 0, 0, 0, 1, 0]);
        assert_eq!(r.counts, vec![3, 2, 3]);
        assert_eq!(r.to_bbox(), [0.0, 0.0, 2.0, 4.0]);
    }
}
