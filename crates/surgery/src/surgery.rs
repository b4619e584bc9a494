//! Checkpoint-level head surgery: stream INTO to a new safetensors file, re-encoding only the named
//! heads' slices as (1 − α)·INTO + α·DONOR, and describe every change in a manifest.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use sam3lab_util::progress::Progress;
use sam3lab_checkpoint::dtype::{decode_f64, elem_size, encode_f64};
use sam3lab_checkpoint::{Checkpoint, SafetensorsWriter, TensorHeader, sha256_file};
use sam3lab_util::nearest_names;
use sam3lab_weights::{CheckpointId, WeightsError, checkpoint_id};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SurgeryError};
use crate::heads::{HeadCounts, head_ranges, head_ref};
use crate::patch::blend;

/// What to do.
pub struct SurgeryRequest<'a> {
    pub into: &'a Path,
    pub donor: &'a Path,
    /// Hook names, e.g. `decoder.layers.4.ca_text.head.0`.
    pub heads: &'a [String],
    pub alpha: f64,
    pub counts: HeadCounts,
    /// The config file the counts came from (recorded in the manifest), if any.
    pub config: Option<&'a Path>,
    pub out: &'a Path,
}

/// One tensor slice a head changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SliceChange {
    /// Key as written (same spelling as in INTO).
    pub key: String,
    /// `"rows"` (in-projection weight/bias: the q, k, v blocks) or `"cols"` (out-projection weight).
    pub axis: String,
    /// Half-open index ranges along `axis`.
    pub ranges: Vec<[usize; 2]>,
    /// Elements in the slices.
    pub elements: usize,
    /// ‖written − INTO‖₂ over the slices (after rounding to INTO's dtype).
    pub delta_norm: f64,
}

/// One head's changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadChange {
    pub head: String,
    pub module: String,
    pub num_heads: usize,
    pub head_dim: usize,
    pub slices: Vec<SliceChange>,
}

/// The JSON written next to the output checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub tool: String,
    pub into: CheckpointId,
    pub donor: CheckpointId,
    pub output: CheckpointId,
    pub alpha: f64,
    pub head_counts: HeadCounts,
    /// The `--config` file (path + sha256), or `null` for SAM3's built-in head counts.
    pub config: Option<CheckpointId>,
    pub heads: Vec<HeadChange>,
    /// Tensors in the output (all of INTO's, skipped keys included).
    pub tensors_total: usize,
    /// Keys whose bytes differ from INTO's copy in principle (all touched keys, even at α = 0).
    pub tensors_touched: Vec<String>,
    /// Elements inside the named heads' slices (re-encoded; unchanged in value where DONOR = INTO).
    pub elements_rewritten: u64,
}

/// Default manifest path: `out` with its extension replaced by `manifest.json`.
pub fn manifest_path(out: &Path) -> PathBuf {
    out.with_extension("manifest.json")
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Run the surgery, write the checkpoint (atomically) and return the manifest (not yet written).
pub fn surgery(req: &SurgeryRequest<'_>, progress: &dyn Progress) -> Result<Manifest> {
    if !req.alpha.is_finite() {
        return Err(SurgeryError::Usage(format!(
            "--alpha must be a finite number, got {}",
            req.alpha
        )));
    }
    if req.heads.is_empty() {
        return Err(SurgeryError::Usage(
            "no heads given (--heads decoder.layers.4.ca_text.head.0,…)".into(),
        ));
    }
    for input in [req.into, req.donor] {
        if same_file(req.out, input) {
            return Err(SurgeryError::Usage(format!(
                "--out {} is an input checkpoint; write the result to a new file",
                req.out.display()
            )));
        }
    }
    let into = Checkpoint::open(req.into)?;
    let donor = Checkpoint::open(req.donor)?;

    // Resolve every head to flat ranges per normalised key.
    let mut plan: BTreeMap<String, Vec<Range<usize>>> = BTreeMap::new();
    let mut changes: Vec<HeadChange> = Vec::new();
    let mut seen = HashSet::new();
    for name in req.heads {
        let h = head_ref(name.trim())?;
        if !seen.insert(h.name.clone()) {
            return Err(SurgeryError::DuplicateHead { name: h.name });
        }
        let k = &h.keys;
        let num_heads = req.counts.get(k.family);
        if h.head >= num_heads {
            return Err(SurgeryError::HeadOutOfRange {
                name: h.name.clone(),
                module: k.module.clone(),
                head: h.head,
                num_heads,
            });
        }
        let mut shapes = Vec::new();
        for key in [&k.in_weight, &k.in_bias, &k.out_weight] {
            fn lookup<'c>(
                c: &'c Checkpoint,
                key: &str,
                head: &str,
            ) -> Result<&'c sam3lab_checkpoint::TensorEntry> {
                c.get(key).ok_or_else(|| SurgeryError::MissingModule {
                    name: head.to_string(),
                    path: c.path().display().to_string(),
                    key: key.to_string(),
                    present: nearest_names(key, c.tensors().map(|e| e.name.as_str()), 2),
                })
            }
            let (a, b) = (lookup(&into, key, &h.name)?, lookup(&donor, key, &h.name)?);
            if a.shape != b.shape {
                return Err(WeightsError::ShapeMismatch {
                    name: key.clone(),
                    a_path: into.path().to_path_buf(),
                    a_shape: a.shape.clone(),
                    b_path: donor.path().to_path_buf(),
                    b_shape: b.shape.clone(),
                }
                .into());
            }
            for (c, e) in [(&into, a), (&donor, b)] {
                if !e.is_float() {
                    return Err(SurgeryError::Layout {
                        module: k.module.clone(),
                        reason: format!(
                            "'{key}' in {} has dtype {:?}, not a float type",
                            c.path().display(),
                            e.dtype
                        ),
                    });
                }
            }
            shapes.push(a.shape.clone());
        }
        let (c, d_in, d_out) =
            crate::heads::check_shapes(k, &shapes[0], &shapes[1], &shapes[2], num_heads)?;
        let hd = c / num_heads;
        let r = head_ranges(c, d_in, d_out, num_heads, h.head);
        let rows: Vec<[usize; 2]> = (0..3)
            .map(|b| [b * c + h.head * hd, b * c + (h.head + 1) * hd])
            .collect();
        let cols = vec![[h.head * hd, (h.head + 1) * hd]];
        let stored = |key: &str| into.get(key).expect("checked").stored_name.clone();
        let mut slices = Vec::new();
        for (key, ranges, axis, idx) in [
            (&k.in_weight, r.in_weight, "rows", rows.clone()),
            (&k.in_bias, r.in_bias, "rows", rows),
            (&k.out_weight, r.out_weight, "cols", cols),
        ] {
            slices.push(SliceChange {
                key: stored(key),
                axis: axis.into(),
                ranges: idx,
                elements: ranges.iter().map(|x| x.len()).sum(),
                delta_norm: 0.0,
            });
            plan.entry(key.clone()).or_default().extend(ranges);
        }
        changes.push(HeadChange {
            head: h.name.clone(),
            module: k.module.clone(),
            num_heads,
            head_dim: hd,
            slices,
        });
    }

    // Stream INTO → OUT.
    let entries = into.all_entries();
    let headers: Vec<TensorHeader> = entries.iter().map(|e| e.header()).collect();
    progress.set_len(entries.iter().map(|e| e.byte_len() as u64).sum());
    let mut w = SafetensorsWriter::create(req.out, &headers, into.metadata().cloned())?;
    // Squared change per (normalised key, range start) → summed into the head slices below.
    let mut delta_sq: BTreeMap<(String, usize), f64> = BTreeMap::new();
    const PIECE: usize = 16 << 20;
    for e in entries {
        let ranges = if e.skipped.is_none() {
            plan.get(&e.name)
        } else {
            None
        };
        match ranges {
            None => {
                let raw = into.raw_bytes(e)?;
                for piece in raw.chunks(PIECE) {
                    w.write(&e.stored_name, piece)?;
                    progress.inc(piece.len() as u64);
                }
                if raw.is_empty() {
                    w.write(&e.stored_name, &[])?;
                }
                drop(raw);
                into.release_entry(e);
            }
            Some(ranges) => {
                let n = e.numel();
                let size = elem_size(e.dtype).expect("float");
                let de = donor.get(&e.name).expect("checked");
                let mut out = into.bytes(e, 0..n)?.into_owned();
                let mut xi = vec![0f64; n];
                let mut xd = vec![0f64; n];
                decode_f64(&out, e.dtype, &mut xi);
                decode_f64(&donor.bytes(de, 0..n)?, de.dtype, &mut xd);
                let mut enc = Vec::with_capacity(8);
                let mut back = [0f64];
                for r in ranges {
                    let mut sq = 0f64;
                    for i in r.clone() {
                        let v = blend(xi[i], xd[i], req.alpha);
                        enc.clear();
                        encode_f64(&[v], e.dtype, &mut enc);
                        if req.alpha != 0.0 {
                            out[i * size..(i + 1) * size].copy_from_slice(&enc);
                        }
                        decode_f64(&out[i * size..(i + 1) * size], e.dtype, &mut back);
                        sq += (back[0] - xi[i]).powi(2);
                    }
                    *delta_sq.entry((e.name.clone(), r.start)).or_default() += sq;
                }
                w.write(&e.stored_name, &out)?;
                progress.inc(out.len() as u64);
            }
        }
    }
    let out_sha = w.finish()?;

    // Fill in per-slice change norms.
    for (hc, name) in changes.iter_mut().zip(req.heads) {
        let h = head_ref(name.trim())?;
        let k = &h.keys;
        let num_heads = hc.num_heads;
        let shape = |key: &str| into.get(key).expect("checked").shape.clone();
        let (c, d_in, d_out) = crate::heads::check_shapes(
            k,
            &shape(&k.in_weight),
            &shape(&k.in_bias),
            &shape(&k.out_weight),
            num_heads,
        )?;
        let r = head_ranges(c, d_in, d_out, num_heads, h.head);
        for (slice, (key, ranges)) in hc.slices.iter_mut().zip([
            (&k.in_weight, r.in_weight),
            (&k.in_bias, r.in_bias),
            (&k.out_weight, r.out_weight),
        ]) {
            let sq: f64 = ranges
                .iter()
                .map(|x| {
                    delta_sq
                        .get(&(key.clone(), x.start))
                        .copied()
                        .unwrap_or(0.0)
                })
                .sum();
            slice.delta_norm = sq.sqrt();
        }
    }
    let config = match req.config {
        Some(p) => Some(CheckpointId {
            path: p.display().to_string(),
            sha256: sha256_file(p)?,
        }),
        None => None,
    };
    let elements_rewritten = changes
        .iter()
        .flat_map(|h| &h.slices)
        .map(|s| s.elements as u64)
        .sum();
    Ok(Manifest {
        tool: format!("sam3lab surgery {}", env!("CARGO_PKG_VERSION")),
        into: checkpoint_id(&into)?,
        donor: checkpoint_id(&donor)?,
        output: CheckpointId {
            path: req.out.display().to_string(),
            sha256: out_sha,
        },
        alpha: req.alpha,
        head_counts: req.counts,
        config,
        heads: changes,
        tensors_total: entries.len(),
        tensors_touched: plan
            .keys()
            .map(|k| into.get(k).expect("checked").stored_name.clone())
            .collect(),
        elements_rewritten,
    })
}
