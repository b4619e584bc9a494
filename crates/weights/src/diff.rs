//! `weights diff`: per-tensor ‖base‖, ‖Δ‖ and rel_change, per-group summaries, Table 6.1.

use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use sam3lab_util::progress::Progress;
pub use sam3lab_results::{DiffReport, GroupDiff, TensorDiff};
use sha2::{Digest, Sha256};

use sam3lab_checkpoint::{Checkpoint, TensorEntry};
use crate::error::{Result, WeightsError};
use crate::groups::Groups;
use crate::kernel::pair_sums;
use sam3lab_util::csv::Table;

use crate::output::{HeatmapTable, fmt_opt, heatmap_csv, write_atomic, write_json};

/// Elements per work item when both tensors are memory-mapped (2 MiB of f32): small enough to
/// balance threads and bound resident memory, large enough that scheduling costs nothing.
pub const CHUNK_ELEMS: usize = 1 << 19;

/// Raw sums for one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSums {
    pub name: String,
    pub numel: u64,
    pub base_sq: f64,
    pub delta_sq: f64,
}

/// Check that two checkpoints hold the same float tensors with the same shapes; returns the pairs
/// to compare, sorted by name. Non-float tensors present in both are left out (with a note).
pub fn matched_tensors<'a>(
    base: &'a Checkpoint,
    other: &'a Checkpoint,
) -> Result<Vec<(&'a TensorEntry, &'a TensorEntry)>> {
    let missing = |has: &Checkpoint, lacks: &Checkpoint| -> Option<WeightsError> {
        let names: Vec<String> = has
            .tensors()
            .filter(|e| lacks.get(&e.name).is_none())
            .map(|e| e.name.clone())
            .collect();
        (!names.is_empty()).then(|| WeightsError::MissingKeys {
            has_path: has.path().to_path_buf(),
            lacks_path: lacks.path().to_path_buf(),
            missing_count: names.len(),
            missing: names,
        })
    };
    if let Some(e) = missing(base, other).or_else(|| missing(other, base)) {
        return Err(e);
    }
    let mut pairs = Vec::with_capacity(base.len());
    for b in base.tensors() {
        let o = other.get(&b.name).expect("key sets checked");
        if b.shape != o.shape {
            return Err(WeightsError::ShapeMismatch {
                name: b.name.clone(),
                a_path: base.path().to_path_buf(),
                a_shape: b.shape.clone(),
                b_path: other.path().to_path_buf(),
                b_shape: o.shape.clone(),
            });
        }
        match (b.is_float(), o.is_float()) {
            (true, true) => pairs.push((b, o)),
            (false, false) => eprintln!(
                "note: '{}' has dtype {:?}; not a float tensor, left out of the diff",
                b.name, b.dtype
            ),
            _ => {
                return Err(sam3lab_checkpoint::CheckpointError::Tensor {
                    path: other.path().to_path_buf(),
                    name: b.name.clone(),
                    reason: format!(
                        "dtype {:?} cannot be compared with {:?} in {}",
                        o.dtype,
                        b.dtype,
                        base.path().display()
                    ),
                }
                .into());
            }
        }
    }
    Ok(pairs)
}

struct Item {
    pair: usize,
    elems: Range<usize>,
}

/// Σ base² and Σ Δ² for every matched tensor, streamed: threads take chunks of tensors from a shared
/// counter, each chunk's pages are dropped from the resident set once summed. Results are combined
/// per tensor in element order, so they do not depend on thread timing. Both files' sha256 (their
/// identity in every result file) are computed in the same pass, pipelined with the sums.
pub fn tensor_sums(
    base: &Checkpoint,
    other: &Checkpoint,
    progress: &dyn Progress,
) -> Result<Vec<TensorSums>> {
    sums_impl(base, other, progress, true)
}

/// [`tensor_sums`] without computing the files' sha256 (for the benchmark's breakdown only: every
/// result file needs the identity).
pub fn tensor_sums_unhashed(
    base: &Checkpoint,
    other: &Checkpoint,
    progress: &dyn Progress,
) -> Result<Vec<TensorSums>> {
    sums_impl(base, other, progress, false)
}

fn sums_impl(
    base: &Checkpoint,
    other: &Checkpoint,
    progress: &dyn Progress,
    hash: bool,
) -> Result<Vec<TensorSums>> {
    let pairs = matched_tensors(base, other)?;
    let mapped = pairs
        .iter()
        .all(|(b, o)| base.is_mapped(b) && other.is_mapped(o));
    let mut items = Vec::new();
    for (i, (b, _)) in pairs.iter().enumerate() {
        let n = b.numel();
        let chunk = if mapped { CHUNK_ELEMS } else { n.max(1) };
        let mut s = 0;
        while s < n {
            items.push(Item {
                pair: i,
                elems: s..(s + chunk).min(n),
            });
            s += chunk;
        }
    }
    // Byte ranges each item reads (mapped files): items run in base-file order, and an item is
    // "ready" for the pipelined hashers once both files are hashed past its ranges.
    let end_of = |it: &Item| -> (usize, usize) {
        let (b, o) = pairs[it.pair];
        let eb = base.byte_range(b, it.elems.clone()).map_or(0, |r| r.end);
        let eo = other.byte_range(o, it.elems.clone()).map_or(0, |r| r.end);
        (eb, eo)
    };
    if mapped {
        items.sort_by_key(|it| {
            base.byte_range(pairs[it.pair].0, it.elems.clone())
                .map_or(0, |r| r.start)
        });
    }
    let need: Vec<(usize, usize)> = items.iter().map(end_of).collect();
    progress.set_len(
        pairs
            .iter()
            .map(|(b, o)| (b.byte_len() + o.byte_len()) as u64)
            .sum(),
    );

    let results: Mutex<Vec<(f64, f64)>> = Mutex::new(vec![(0.0, 0.0); items.len()]);
    let next = AtomicUsize::new(0);
    let hashed = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let run_item = |k: usize| -> Result<(f64, f64)> {
        let item = &items[k];
        let (b, o) = pairs[item.pair];
        base.populate(b, item.elems.clone());
        other.populate(o, item.elems.clone());
        let bb = base.bytes(b, item.elems.clone())?;
        let ob = other.bytes(o, item.elems.clone())?;
        let r = pair_sums(&bb, b.dtype, &ob, o.dtype);
        progress.inc((bb.len() + ob.len()) as u64);
        drop((bb, ob));
        base.release(b, item.elems.clone());
        other.release(o, item.elems.clone());
        Ok(r)
    };
    // Claim items in order; when `gated`, stop at the first one the hashers have not both passed.
    let drain = |local: &mut Vec<(usize, (f64, f64))>, gated: bool| -> Result<()> {
        loop {
            let k = next.load(Ordering::Acquire);
            if k >= items.len() {
                return Ok(());
            }
            if gated {
                let (eb, eo) = need[k];
                if eb > hashed[0].load(Ordering::Acquire) || eo > hashed[1].load(Ordering::Acquire)
                {
                    return Ok(());
                }
            }
            if next
                .compare_exchange(k, k + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                local.push((k, run_item(k)?));
            }
        }
    };
    let store = |local: Vec<(usize, (f64, f64))>| {
        let mut r = results.lock().expect("no panics while locked");
        for (k, v) in local {
            r[k] = v;
        }
    };
    // Pipelined hashing (both files mapped): one thread per file hashes it front to back straight
    // from the mapping and, between chunks, sums whatever items both hashers have passed, while
    // those bytes are still in cache. sha256 is sequential, so these two streams set the pace; the
    // diff rides along almost for free.
    let hasher = |f: usize, ck: &Checkpoint| -> Result<()> {
        const CH: usize = 2 << 20;
        let data = ck.mapped().expect("pipelined only when mapped");
        let mut h = Sha256::new();
        let mut local = Vec::new();
        let mut pos = 0usize;
        while pos < data.len() {
            let end = (pos + CH).min(data.len());
            ck.populate_bytes(pos..end);
            h.update(&data[pos..end]);
            hashed[f].store(end, Ordering::Release);
            // Drop the chunk from our page tables at once: an item that reads it later refaults
            // the same page-cache pages (still cache-hot) for the price of a page-table update.
            ck.release_bytes(pos..end);
            pos = end;
            drain(&mut local, true)?;
        }
        ck.set_sha256(hex::encode(h.finalize()));
        hashed[f].store(usize::MAX, Ordering::Release);
        drain(&mut local, false)?;
        store(local);
        Ok(())
    };
    let worker = || -> Result<()> {
        let mut local = Vec::new();
        drain(&mut local, false)?;
        store(local);
        Ok(())
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let hash = hash && !(base.has_sha256() && other.has_sha256());
    std::thread::scope(|s| -> Result<()> {
        let mut handles = Vec::new();
        if hash && mapped {
            handles.push(s.spawn(|| hasher(0, base)));
            handles.push(s.spawn(|| hasher(1, other)));
            for _ in 2..threads {
                handles.push(s.spawn(worker));
            }
        } else {
            if hash {
                handles.push(s.spawn(|| base.sha256().map(|_| ()).map_err(WeightsError::from)));
                handles.push(s.spawn(|| other.sha256().map(|_| ()).map_err(WeightsError::from)));
            }
            for _ in 0..threads.min(items.len()).max(1) {
                handles.push(s.spawn(worker));
            }
        }
        for h in handles {
            h.join().expect("diff thread panicked")?;
        }
        Ok(())
    })?;
    let results = results.into_inner().expect("not poisoned");
    let mut sums: Vec<TensorSums> = pairs
        .iter()
        .map(|(b, _)| TensorSums {
            name: b.name.clone(),
            numel: b.numel() as u64,
            base_sq: 0.0,
            delta_sq: 0.0,
        })
        .collect();
    // Combine per tensor in element order, whatever order the threads ran the items in.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&k| (items[k].pair, items[k].elems.start));
    for k in order {
        let (sb, sd) = results[k];
        sums[items[k].pair].base_sq += sb;
        sums[items[k].pair].delta_sq += sd;
    }
    Ok(sums)
}

/// rel_change from squared norms: 0 when both are 0, undefined when only the base is 0.
pub fn rel_change(base_sq: f64, delta_sq: f64) -> Option<f64> {
    if base_sq > 0.0 {
        Some(delta_sq.sqrt() / base_sq.sqrt())
    } else if delta_sq == 0.0 {
        Some(0.0)
    } else {
        None
    }
}

/// Per-tensor rows and per-group summaries from the sums.
pub fn summarize(sums: &[TensorSums], groups: &Groups) -> (Vec<TensorDiff>, Vec<GroupDiff>) {
    let tensors: Vec<TensorDiff> = sums
        .iter()
        .map(|s| TensorDiff {
            name: s.name.clone(),
            numel: s.numel,
            base_norm: s.base_sq.sqrt(),
            delta_norm: s.delta_sq.sqrt(),
            rel_change: rel_change(s.base_sq, s.delta_sq),
        })
        .collect();
    #[derive(Default, Clone)]
    struct Acc {
        numel: u64,
        tensors: usize,
        weighted: f64,
        weight: f64,
        base_sq: f64,
        delta_sq: f64,
    }
    let mut acc = vec![Acc::default(); groups.rules().len()];
    for (s, t) in sums.iter().zip(&tensors) {
        for g in groups.matching(&s.name) {
            let a = &mut acc[g];
            a.numel += s.numel;
            a.tensors += 1;
            a.base_sq += s.base_sq;
            a.delta_sq += s.delta_sq;
            if let Some(r) = t.rel_change {
                a.weighted += s.numel as f64 * r;
                a.weight += s.numel as f64;
            }
        }
    }
    let group_rows = groups
        .rules()
        .iter()
        .zip(acc)
        .map(|(rule, a)| GroupDiff {
            group: rule.group.clone(),
            numel: Some(a.numel),
            tensors: Some(a.tensors),
            rel_change_weighted: (a.weight > 0.0).then(|| a.weighted / a.weight),
            rel_change_aggregate: if a.tensors == 0 {
                None
            } else {
                rel_change(a.base_sq, a.delta_sq)
            },
        })
        .collect();
    (tensors, group_rows)
}

/// Diff one pair end to end.
pub fn diff(
    base: &Checkpoint,
    other: &Checkpoint,
    groups: &Groups,
    label: &str,
    progress: &dyn Progress,
) -> Result<DiffReport> {
    let sums = tensor_sums(base, other, progress)?;
    let (tensors, group_rows) = summarize(&sums, groups);
    for g in group_rows.iter().filter(|g| g.tensors == Some(0)) {
        eprintln!(
            "note: group '{}' matches no tensor of {}",
            g.group,
            base.path().display()
        );
    }
    Ok(DiffReport {
        base: crate::checkpoint_id(base)?,
        other: crate::checkpoint_id(other)?,
        label: Some(label.to_string()),
        group_rules: groups.rules().to_vec(),
        tensors,
        groups: group_rows,
    })
}

/// One `#` identity line above the header (label, both files and their sha256).
fn identity(r: &DiffReport) -> String {
    format!(
        "sam3lab weights diff; label={}; base={} sha256={}; other={} sha256={}",
        label(r), r.base.path, r.base.sha256, r.other.path, r.other.sha256
    )
}

/// The report's column label (empty in a report without one; this crate always writes it).
fn label(r: &DiffReport) -> &str {
    r.label.as_deref().unwrap_or("")
}

fn num<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

/// `tensors.csv`: name, numel, base_norm, delta_norm, rel_change (after one `#` identity line).
pub fn tensors_csv(r: &DiffReport) -> String {
    let mut t = Table::new(&["name", "numel", "base_norm", "delta_norm", "rel_change"]).comment(&identity(r));
    for x in &r.tensors {
        t.row([x.name.clone(), x.numel.to_string(), x.base_norm.to_string(), x.delta_norm.to_string(), fmt_opt(x.rel_change)]);
    }
    t.into_string()
}

/// `groups.csv`: group, numel, tensors, rel_change_weighted, rel_change_aggregate.
pub fn groups_csv(r: &DiffReport) -> String {
    let mut t = Table::new(&["group", "numel", "tensors", "rel_change_weighted", "rel_change_aggregate"]).comment(&identity(r));
    for g in &r.groups {
        t.row([
            g.group.clone(),
            num(g.numel),
            num(g.tensors),
            fmt_opt(g.rel_change_weighted),
            fmt_opt(g.rel_change_aggregate),
        ]);
    }
    t.into_string()
}

/// Write `diff.json`, `tensors.csv`, `groups.csv` into `dir`.
pub fn write_report(dir: &Path, r: &DiffReport) -> Result<()> {
    write_json(&dir.join("diff.json"), r)?;
    write_atomic(&dir.join("tensors.csv"), tensors_csv(r).as_bytes())?;
    write_atomic(&dir.join("groups.csv"), groups_csv(r).as_bytes())
}

/// Table 6.1: groups × recipes of `rel_change_weighted` (rows in group-rule order, columns in
/// report order).
pub fn table(reports: &[DiffReport]) -> HeatmapTable {
    let rows: Vec<String> = reports
        .first()
        .map(|r| r.groups.iter().map(|g| g.group.clone()).collect())
        .unwrap_or_default();
    let values = rows
        .iter()
        .enumerate()
        .map(|(i, _)| {
            reports
                .iter()
                .map(|r| r.groups[i].rel_change_weighted)
                .collect()
        })
        .collect();
    let source = reports
        .iter()
        .map(|r| {
            format!(
                "{} = {} (sha256 {}) − {} (sha256 {})",
                label(r),
                r.other.path,
                short(&r.other.sha256),
                r.base.path,
                short(&r.base.sha256)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    HeatmapTable::plain(
        "Weighted mean rel_change per module group (each recipe vs its start)".into(),
        format!("sam3lab weights diff: {source}"),
        rows,
        reports.iter().map(|r| label(r).to_string()).collect(),
        values,
    )
}

pub(crate) fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// `weights diff BASE OTHER…`: one diff per trajectory (FROM defaults to `base`). With one
/// trajectory the files go straight into `out`; with several, each into `out/LABEL/`. Always writes
/// `out/table.json` (a [`HeatmapTable`]) and `out/table.csv` (Table 6.1 layout).
pub fn run(
    base: &Path,
    trajs: &[crate::TrajSpec],
    groups: &Groups,
    out: &Path,
    progress: &dyn Progress,
) -> Result<Vec<DiffReport>> {
    if trajs.is_empty() {
        return Err(WeightsError::Usage(
            "give at least one OTHER checkpoint".into(),
        ));
    }
    let mut opened = crate::spec::Opened::new();
    let pairs = opened.open_trajectories(base, trajs)?;
    // Check every pair before the long work, so a bad key set fails in milliseconds.
    for &(f, t) in &pairs {
        matched_tensors(&opened.checkpoints[f], &opened.checkpoints[t])?;
    }
    let mut reports = Vec::with_capacity(trajs.len());
    for (t, &(f, o)) in trajs.iter().zip(&pairs) {
        progress.set_message(&t.label);
        progress.set_position(0);
        let r = diff(
            &opened.checkpoints[f],
            &opened.checkpoints[o],
            groups,
            &t.label,
            progress,
        )?;
        let dir = if trajs.len() == 1 {
            out.to_path_buf()
        } else {
            out.join(&t.label)
        };
        write_report(&dir, &r)?;
        reports.push(r);
    }
    let table = table(&reports);
    write_json(&out.join("table.json"), &table)?;
    write_atomic(&out.join("table.csv"), heatmap_csv(&table, "group").as_bytes())?;
    Ok(reports)
}
