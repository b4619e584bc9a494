//! Head surgery on in-memory tensors (for probes that hold weights already): the same slices and
//! the same arithmetic as the checkpoint surgery.

use std::collections::HashMap;
use std::ops::Range;

use crate::error::{Result, SurgeryError};
use crate::heads::{HeadCounts, HeadRef, check_shapes, head_ranges};

/// A dense row-major f32 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct F32Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// (1 − α)·into + α·donor, with α = 0 and α = 1 exact (no arithmetic touches the kept value).
#[inline]
pub fn blend(into: f64, donor: f64, alpha: f64) -> f64 {
    if alpha == 0.0 {
        into
    } else if alpha == 1.0 {
        donor
    } else {
        (1.0 - alpha) * into + alpha * donor
    }
}

/// Per-tensor flat element ranges one head owns, keyed by checkpoint key.
pub fn head_slices(
    head: &HeadRef,
    counts: &HeadCounts,
    shape_of: impl Fn(&str) -> Option<Vec<usize>>,
) -> Result<Vec<(String, Vec<Range<usize>>)>> {
    let k = &head.keys;
    let num_heads = counts.get(k.family);
    if head.head >= num_heads {
        return Err(SurgeryError::HeadOutOfRange {
            name: head.name.clone(),
            module: k.module.clone(),
            head: head.head,
            num_heads,
        });
    }
    let get = |key: &str| {
        shape_of(key).ok_or_else(|| SurgeryError::MissingModule {
            name: head.name.clone(),
            path: "the given tensors".into(),
            key: key.to_string(),
            present: vec![],
        })
    };
    let (c, d_in, d_out) = check_shapes(
        k,
        &get(&k.in_weight)?,
        &get(&k.in_bias)?,
        &get(&k.out_weight)?,
        num_heads,
    )?;
    let r = head_ranges(c, d_in, d_out, num_heads, head.head);
    Ok(vec![
        (k.in_weight.clone(), r.in_weight),
        (k.in_bias.clone(), r.in_bias),
        (k.out_weight.clone(), r.out_weight),
    ])
}

/// Interpolate `heads` of `into` toward `donor` in place: on each head's q/k/v rows of the
/// in-projection (weight and bias) and its columns of the out-projection. Both maps must hold the
/// three tensors of every named module (more is fine), with equal shapes. Returns the elements
/// changed per key.
pub fn patch_heads(
    into: &mut HashMap<String, F32Tensor>,
    donor: &HashMap<String, F32Tensor>,
    heads: &[HeadRef],
    counts: &HeadCounts,
    alpha: f64,
) -> Result<Vec<(String, usize)>> {
    let mut changed = Vec::new();
    for h in heads {
        let slices = head_slices(h, counts, |k| into.get(k).map(|t| t.shape.clone()))?;
        for (key, ranges) in slices {
            let d = donor.get(&key).ok_or_else(|| SurgeryError::MissingModule {
                name: h.name.clone(),
                path: "the donor tensors".into(),
                key: key.clone(),
                present: vec![],
            })?;
            let t = into.get_mut(&key).expect("shape looked up above");
            if d.shape != t.shape {
                return Err(SurgeryError::Layout {
                    module: h.keys.module.clone(),
                    reason: format!("'{key}': into has {:?}, donor has {:?}", t.shape, d.shape),
                });
            }
            let mut n = 0;
            for r in ranges {
                n += r.len();
                for i in r {
                    t.data[i] = blend(f64::from(t.data[i]), f64::from(d.data[i]), alpha) as f32;
                }
            }
            changed.push((key, n));
        }
    }
    Ok(changed)
}
