//! `weights cosines`: directions of one parameter's movement under several trajectories (Table 7.1)
//! and their projection onto the break/orthogonal plane (Fig. 8.1).
//!
//! Everything is derived from one streamed Gram matrix of the delta vectors (f64), so a parameter of
//! any size is read once per checkpoint and never held as more than one block of deltas.

use std::path::Path;

use sam3lab_util::csv::Table;
pub use sam3lab_results::{CosinesReport, Projection, ProjectionPoint, TrajectoryReport};

use sam3lab_checkpoint::Checkpoint;
use sam3lab_results::FileRecord;
use crate::diff::short;
use sam3lab_checkpoint::dtype::decode_f64;
use crate::error::{Result, WeightsError};

use crate::output::{HeatmapTable, fmt_opt, write_atomic, write_json};

/// A trajectory over opened checkpoints.
pub struct Trajectory<'a> {
    pub label: String,
    pub from: &'a Checkpoint,
    pub to: &'a Checkpoint,
}

enum Origin {
    Base,
    /// Starts at another trajectory's tip.
    Chain(usize),
    /// Placed at proj(FROM − base): index of that extra vector in the Gram matrix.
    Direct(usize),
}

/// Compute the report. `axis`/`toward` default to the first trajectory and to the trajectory with
/// the largest component orthogonal to the axis.
pub fn cosines<'a>(
    param: &str,
    base: &'a Checkpoint,
    trajs: &[Trajectory<'a>],
    axis: Option<&str>,
    toward: Option<&str>,
) -> Result<CosinesReport> {
    if trajs.is_empty() {
        return Err(WeightsError::Usage(
            "give at least one trajectory (--traj LABEL=FROM:TO)".into(),
        ));
    }
    let find = |label: &str, flag: &str| -> Result<usize> {
        trajs.iter().position(|t| t.label == label).ok_or_else(|| {
            WeightsError::Usage(format!(
                "{flag} '{label}' is not a trajectory label; labels: {}",
                trajs
                    .iter()
                    .map(|t| t.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    };
    let axis_idx = axis.map(|a| find(a, "--axis")).transpose()?.unwrap_or(0);
    let toward_idx = toward.map(|a| find(a, "--toward")).transpose()?;
    if toward_idx == Some(axis_idx) {
        return Err(WeightsError::Usage(format!(
            "--toward must differ from --axis ('{}')",
            trajs[axis_idx].label
        )));
    }

    // Distinct checkpoints (by identity of the opened file), base first.
    let mut ckpts: Vec<&Checkpoint> = vec![base];
    let mut ends: Vec<(usize, usize)> = Vec::with_capacity(trajs.len());
    for t in trajs {
        let mut slot = |c: &'a Checkpoint| match ckpts.iter().position(|k| std::ptr::eq(*k, c)) {
            Some(i) => i,
            None => {
                ckpts.push(c);
                ckpts.len() - 1
            }
        };
        ends.push((slot(t.from), slot(t.to)));
    }
    let ckpts = ckpts;

    // The parameter must exist, be a float, and have the base's shape everywhere.
    let base_entry = base.require(param)?;
    let name = base_entry.name.clone();
    let mut entries = Vec::with_capacity(ckpts.len());
    for c in &ckpts {
        let e = c.require(&name)?;
        if e.shape != base_entry.shape {
            return Err(WeightsError::ShapeMismatch {
                name: name.clone(),
                a_path: base.path().to_path_buf(),
                a_shape: base_entry.shape.clone(),
                b_path: c.path().to_path_buf(),
                b_shape: e.shape.clone(),
            });
        }
        if !e.is_float() {
            return Err(c.tensor_err(e, &format!("dtype {:?} is not a float type", e.dtype)).into());
        }
        entries.push(e);
    }

    // Identities (hashed in parallel), then origins: chains are matched by sha256.
    std::thread::scope(|s| -> Result<()> {
        let hs: Vec<_> = ckpts
            .iter()
            .map(|c| s.spawn(move || c.sha256().map(|_| ()).map_err(WeightsError::from)))
            .collect();
        hs.into_iter()
            .try_for_each(|h| h.join().expect("hash thread panicked"))
    })?;
    let sha = |i: usize| ckpts[i].sha256().expect("hashed above").to_string();
    let mut extra: Vec<usize> = Vec::new(); // checkpoint slot of each Direct origin's FROM
    let origins: Vec<Origin> = (0..trajs.len())
        .map(|t| {
            let from_sha = sha(ends[t].0);
            if from_sha == sha(0) {
                return Origin::Base;
            }
            // Start at the tip of the trajectory that ends where this one starts, unless following
            // such links loops back (then place the start directly, like an unrelated FROM).
            let ends_at = |want: &str, not: usize| {
                (0..trajs.len()).find(|&s| s != not && sha(ends[s].1) == want)
            };
            let mut seen = vec![t];
            let mut cur = t;
            let cyclic = loop {
                let want = sha(ends[cur].0);
                if want == sha(0) {
                    break false;
                }
                match ends_at(&want, cur) {
                    None => break false,
                    Some(s) if seen.contains(&s) => break true,
                    Some(s) => {
                        seen.push(s);
                        cur = s;
                    }
                }
            };
            match ends_at(&from_sha, t) {
                Some(s) if !cyclic => Origin::Chain(s),
                _ => {
                    extra.push(ends[t].0);
                    Origin::Direct(trajs.len() + extra.len() - 1)
                }
            }
        })
        .collect();

    // Stream the parameter: vectors 0..T are the deltas, T.. the Direct origins' FROM − base.
    let n = base_entry.numel();
    let bytes: Vec<_> = ckpts
        .iter()
        .zip(&entries)
        .map(|(c, e)| c.bytes(e, 0..n))
        .collect::<sam3lab_checkpoint::Result<_>>()?;
    let nv = trajs.len() + extra.len();
    let mut gram = vec![vec![0f64; nv]; nv];
    let mut base_sq = 0f64;
    const B: usize = 4096;
    let mut dec = vec![vec![0f64; B]; ckpts.len()];
    let mut vecs = vec![vec![0f64; B]; nv];
    let mut start = 0;
    while start < n {
        let len = B.min(n - start);
        for (k, (e, by)) in entries.iter().zip(&bytes).enumerate() {
            let size = sam3lab_checkpoint::dtype::elem_size(e.dtype).expect("float");
            decode_f64(
                &by[start * size..(start + len) * size],
                e.dtype,
                &mut dec[k][..len],
            );
        }
        base_sq += dec[0][..len].iter().map(|x| x * x).sum::<f64>();
        for (t, &(f, to)) in ends.iter().enumerate() {
            for i in 0..len {
                vecs[t][i] = dec[to][i] - dec[f][i];
            }
        }
        for (j, &f) in extra.iter().enumerate() {
            for i in 0..len {
                vecs[trajs.len() + j][i] = dec[f][i] - dec[0][i];
            }
        }
        for a in 0..nv {
            for b in a..nv {
                let dot: f64 = vecs[a][..len]
                    .iter()
                    .zip(&vecs[b][..len])
                    .map(|(x, y)| x * y)
                    .sum();
                gram[a][b] += dot;
            }
        }
        start += len;
    }
    for a in 1..nv {
        let (upper, lower) = gram.split_at_mut(a);
        for (b, row) in upper.iter().enumerate() {
            lower[0][b] = row[a];
        }
    }
    drop(bytes);

    let base_norm = base_sq.sqrt();
    let norms: Vec<f64> = (0..trajs.len()).map(|t| gram[t][t].sqrt()).collect();
    let cosine = (0..trajs.len())
        .map(|s| {
            (0..trajs.len())
                .map(|t| {
                    (norms[s] > 0.0 && norms[t] > 0.0)
                        .then(|| (gram[s][t] / (norms[s] * norms[t])).clamp(-1.0, 1.0))
                })
                .collect()
        })
        .collect();

    // Projection plane.
    let a = axis_idx;
    let gaa = gram[a][a];
    if gaa <= 0.0 {
        return Err(WeightsError::Usage(format!(
            "axis trajectory '{}' does not move '{name}' (Δ = 0); choose another --axis",
            trajs[a].label
        )));
    }
    let orth_sq = |b: usize| gram[b][b] - gram[a][b] * gram[a][b] / gaa;
    let toward_idx = toward_idx.unwrap_or_else(|| {
        (0..trajs.len())
            .filter(|&t| t != a)
            .max_by(|&x, &y| orth_sq(x).total_cmp(&orth_sq(y)))
            .unwrap_or(a)
    });
    let b = toward_idx;
    let w_sq = orth_sq(b);
    let degenerate = b == a || w_sq <= 1e-12 * gram[b][b];
    if degenerate {
        eprintln!(
            "note: '{}' has no component orthogonal to '{}' on '{name}'; the projection is one-dimensional (y = 0)",
            trajs[b].label, trajs[a].label
        );
    }
    let unit = if base_norm > 0.0 {
        base_norm
    } else {
        eprintln!(
            "note: '{name}' is all zeros in the base checkpoint; the projection is in absolute units"
        );
        1.0
    };
    let proj = |v: usize| -> [f64; 2] {
        let x = gram[v][a] / gaa.sqrt();
        let y = if degenerate {
            0.0
        } else {
            (gram[v][b] - gram[v][a] * gram[a][b] / gaa) / w_sq.sqrt()
        };
        [x / unit, y / unit]
    };
    fn tip_of(
        t: usize,
        origins: &[Origin],
        proj: &dyn Fn(usize) -> [f64; 2],
    ) -> ([f64; 2], [f64; 2]) {
        let origin = match origins[t] {
            Origin::Base => [0.0, 0.0],
            Origin::Chain(s) => tip_of(s, origins, proj).1,
            Origin::Direct(v) => proj(v),
        };
        let d = proj(t);
        (origin, [origin[0] + d[0], origin[1] + d[1]])
    }
    let points = (0..trajs.len())
        .map(|t| {
            let (origin, tip) = tip_of(t, &origins, &proj);
            ProjectionPoint {
                label: trajs[t].label.clone(),
                origin,
                tip,
            }
        })
        .collect();

    let trajectories = trajs
        .iter()
        .zip(&norms)
        .map(|(t, &dn)| {
            Ok(TrajectoryReport {
                label: t.label.clone(),
                from: Some(crate::checkpoint_id(t.from)?),
                to: Some(crate::checkpoint_id(t.to)?),
                delta_norm: Some(dn),
                rel_base: (base_norm > 0.0).then(|| dn / base_norm),
            })
        })
        .collect::<Result<_>>()?;

    Ok(CosinesReport {
        param: name,
        numel: Some(n as u64),
        base: Some(crate::checkpoint_id(base)?),
        base_norm: Some(base_norm),
        trajectories,
        cosine,
        projection: Some(Projection {
            axis: trajs[a].label.clone(),
            toward: trajs[b].label.clone(),
            points,
            base: None,
        }),
    })
}

/// Path and sha256 of a recorded checkpoint; empty when the report does not hold it (a report this
/// crate wrote always does).
fn id(f: &Option<FileRecord>) -> (&str, &str) {
    f.as_ref().map_or(("", ""), |f| (f.path.as_str(), f.sha256.as_str()))
}

/// The cosine matrix as a heatmap (rows = cols = trajectory labels).
pub fn cosine_table(r: &CosinesReport) -> HeatmapTable {
    let labels: Vec<String> = r.trajectories.iter().map(|t| t.label.clone()).collect();
    let (base, base_sha) = id(&r.base);
    HeatmapTable::plain(
        format!(
            "Pairwise cosine of weight-delta directions on {} ({}-d)",
            r.param,
            r.numel.map_or_else(|| "?".to_string(), |n| n.to_string())
        ),
        format!(
            "sam3lab weights cosines: base={} (sha256 {}); {}",
            base,
            short(base_sha),
            r.trajectories
                .iter()
                .map(|t| format!("{} = {} − {}", t.label, id(&t.to).0, id(&t.from).0))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        labels.clone(),
        labels,
        r.cosine.clone(),
    )
}

/// `cosines.csv`: label, delta_norm, rel_base, then cos to every trajectory.
pub fn cosines_csv(r: &CosinesReport) -> String {
    let mut header: Vec<String> = ["label", "from", "to", "delta_norm", "rel_base"].map(String::from).to_vec();
    header.extend(r.trajectories.iter().map(|t| format!("cos_{}", t.label)));
    let (base, base_sha) = id(&r.base);
    let mut table = Table::new(&header).comment(&format!(
        "sam3lab weights cosines; param={}; base={} sha256={}",
        r.param, base, base_sha
    ));
    for (t, row) in r.trajectories.iter().zip(&r.cosine) {
        let mut cells = vec![
            t.label.clone(),
            id(&t.from).0.to_string(),
            id(&t.to).0.to_string(),
            t.delta_norm.map_or_else(String::new, |d| d.to_string()),
            fmt_opt(t.rel_base),
        ];
        cells.extend(row.iter().map(|c| fmt_opt(*c)));
        table.row(cells);
    }
    table.into_string()
}

/// Write `cosines.json`, `cosine_table.json` and `cosines.csv` into `dir`.
pub fn write_report(dir: &Path, r: &CosinesReport) -> Result<()> {
    write_json(&dir.join("cosines.json"), r)?;
    write_json(&dir.join("cosine_table.json"), &cosine_table(r))?;
    write_atomic(&dir.join("cosines.csv"), cosines_csv(r).as_bytes())
}

/// `weights cosines`: open each distinct checkpoint once, compute, write the three files into `out`.
pub fn run(
    param: &str,
    base: &Path,
    trajs: &[crate::TrajSpec],
    axis: Option<&str>,
    toward: Option<&str>,
    out: &Path,
) -> Result<CosinesReport> {
    let mut opened = crate::spec::Opened::new();
    let b = opened.open(base)?;
    let idx = opened.open_trajectories(base, trajs)?;
    let c = &opened.checkpoints;
    let list: Vec<Trajectory> = trajs
        .iter()
        .zip(&idx)
        .map(|(t, &(f, o))| Trajectory {
            label: t.label.clone(),
            from: &c[f],
            to: &c[o],
        })
        .collect();
    let r = cosines(param, &c[b], &list, axis, toward)?;
    write_report(out, &r)?;
    Ok(r)
}
