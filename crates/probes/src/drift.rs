//! Activation drift (post §6): how far each checkpoint's activations at a few hook points sit from a
//! reference checkpoint's on the same (image, prompt) inputs, averaged per prompt group.
//!
//! rel_Δ(image, prompt) = ‖a_ckpt − a_ref‖₂ / ‖a_ref‖₂ over the whole activation tensor at the point
//! (batch 1); the table value for (checkpoint, point, group) is its mean over the group's
//! (image, prompt) pairs. A second table (`drift_pooled.json`) holds the per-prompt reading of the
//! figures schema: sqrt(Σ_images ‖Δ‖² / Σ_images ‖a_ref‖²) per prompt, then the mean over the group's
//! prompts.
//!
//! Memory: one model is loaded at a time. The reference runs first and its activations are spilled
//! to disk, one file per image (prompts × points, raw f32), together with ‖a_ref‖ per input; each
//! checkpoint then re-reads one (image, prompt, point) slice at a time. Resident memory is one model,
//! one encoded image and one prompt's activations, whatever the number of images, prompts or
//! checkpoints; the spill takes images × prompts × Σ_points numel × 4 bytes of disk (about 10 GB for
//! the post's 20 images × 97 prompts with `fusion.layers.4` on the full model) and is deleted at the
//! end unless kept. Each image is encoded once per checkpoint and each prompt once per checkpoint.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use burn::prelude::*;
use indicatif::ProgressBar;
use sam3lab_figures::schema::{DriftRow, DriftTable};
use sam3lab_hooks::{ActivationCache, HookSpec, Hooks};
use serde::Serialize;

use crate::error::{ProbeError, Result};
use crate::inputs::{ImageList, PromptGroup};
use crate::manifest::{Csv, Manifest, num, write_json};
use crate::model::{self, CkptSpec, Loaded, Stages, TextCache};

/// What to compare.
pub struct DriftRequest {
    /// The reference checkpoint (its label names the reference in the table, e.g. `base`).
    pub base: CkptSpec,
    /// The checkpoints compared against it (one table row each; labels unique).
    pub checkpoints: Vec<CkptSpec>,
    pub config: Option<PathBuf>,
    pub images: ImageList,
    pub groups: Vec<PromptGroup>,
    /// Hook names or patterns (expanded against the model's registry).
    pub points: Vec<String>,
    pub seed: u64,
    /// Where the reference's activations are spilled (created, emptied, removed at the end unless `keep_spill`).
    pub spill_dir: PathBuf,
    pub keep_spill: bool,
    pub device: Device,
}

/// One (checkpoint, point, group, image, prompt) measurement.
#[derive(Clone, Debug, Serialize)]
pub struct DriftPairValue {
    pub checkpoint: String,
    pub point: String,
    pub group: String,
    pub image: String,
    pub prompt: String,
    pub ref_norm: f64,
    pub delta_norm: f64,
    /// `None` when ‖a_ref‖ = 0.
    pub rel_delta: Option<f64>,
}

#[derive(Debug)]
pub struct DriftResult {
    /// The §6 table (checkpoint × point × group), mean of per-(image, prompt) rel_Δ.
    pub table: DriftTable,
    /// The per-prompt pooled reading.
    pub pooled: DriftTable,
    pub pairs: Vec<DriftPairValue>,
    pub manifest: Manifest,
}

/// Where one (image, prompt, point) activation of the reference lives in its image's spill file.
#[derive(Clone, Debug)]
struct Slot {
    offset: u64,
    shape: Vec<usize>,
    sq_norm: f64,
}

fn sq_norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64) * (x as f64)).sum()
}

fn spill_path(dir: &Path, image: usize) -> PathBuf {
    dir.join(format!("ref_image{image:05}.f32"))
}

/// Run one checkpoint over every (image, prompt), calling `visit(image, prompt, cache)`.
fn sweep(
    model: &Loaded,
    images: &ImageList,
    prompts: &[String],
    points: &[String],
    progress: &ProgressBar,
    mut visit: impl FnMut(usize, usize, &ActivationCache) -> Result<()>,
) -> Result<()> {
    let stages = Stages::of(points);
    let mut texts = TextCache::default();
    for (i, path) in images.paths.iter().enumerate() {
        let rgb = model::load_rgb(path)?;
        let encoded = model.predictor.encode_image(&rgb, &mut Hooks::none());
        for (j, prompt) in prompts.iter().enumerate() {
            let mut spec = HookSpec::new();
            for p in points {
                spec = spec.capture(p)?;
            }
            let (_, cache) = model::forward(model, &rgb, &encoded, &mut texts, prompt, spec, stages)?;
            visit(i, j, &cache)?;
            progress.inc(1);
        }
    }
    Ok(())
}

/// Run the drift probe. The spill directory is removed afterwards (also on error) unless `keep_spill`.
pub fn run(req: &DriftRequest, progress: &ProgressBar) -> Result<DriftResult> {
    let r = run_inner(req, progress);
    if r.is_err() && !req.keep_spill && req.spill_dir.exists() {
        let _ = std::fs::remove_dir_all(&req.spill_dir);
    }
    r
}

fn run_inner(req: &DriftRequest, progress: &ProgressBar) -> Result<DriftResult> {
    if req.checkpoints.is_empty() {
        return Err(ProbeError::Usage("give at least one --ckpt LABEL=CKPT to compare against --base".into()));
    }
    let mut labels: Vec<&str> = Vec::new();
    for c in &req.checkpoints {
        if labels.contains(&c.label.as_str()) {
            return Err(ProbeError::Usage(format!("checkpoint label `{}` is given twice", c.label)));
        }
        labels.push(&c.label);
    }
    // Unique prompts in first-appearance order; a prompt may sit in several groups.
    let mut prompts: Vec<String> = Vec::new();
    for g in &req.groups {
        for p in &g.prompts {
            if !prompts.contains(p) {
                prompts.push(p.clone());
            }
        }
    }
    let n_img = req.images.paths.len();
    progress.set_length(((1 + req.checkpoints.len()) * n_img * prompts.len()) as u64);

    // ---- reference pass: spill activations per image
    let base = model::load(&req.base, req.config.as_deref(), &req.device)?;
    let points = model::resolve_points(&base.registry, &req.points)?;
    let mut manifest = Manifest::new("sam3lab probe drift", req.seed);
    let mut records = vec![base.record.clone()];
    if req.spill_dir.exists() {
        std::fs::remove_dir_all(&req.spill_dir).map_err(|e| ProbeError::io(&req.spill_dir, e))?;
    }
    std::fs::create_dir_all(&req.spill_dir).map_err(|e| ProbeError::io(&req.spill_dir, e))?;
    // slots[image][prompt][point]
    let mut slots: Vec<Vec<Vec<Slot>>> = vec![Vec::with_capacity(prompts.len()); n_img];
    {
        let mut writer: Option<(usize, BufWriter<File>, u64)> = None;
        sweep(&base, &req.images, &prompts, &points, progress, |i, _j, cache| {
            if writer.as_ref().is_none_or(|(wi, _, _)| *wi != i) {
                if let Some((_, mut w, _)) = writer.take() {
                    w.flush().map_err(|e| ProbeError::io(&req.spill_dir, e))?;
                }
                let p = spill_path(&req.spill_dir, i);
                let f = File::create(&p).map_err(|e| ProbeError::io(&p, e))?;
                writer = Some((i, BufWriter::with_capacity(1 << 20, f), 0));
            }
            let (_, w, off) = writer.as_mut().expect("opened above");
            let mut row = Vec::with_capacity(points.len());
            for p in &points {
                let t = cache.get(p)?;
                let v = t.to_vec();
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                w.write_all(&bytes).map_err(|e| ProbeError::io(&req.spill_dir, e))?;
                row.push(Slot { offset: *off, shape: t.shape().to_vec(), sq_norm: sq_norm(&v) });
                *off += bytes.len() as u64;
            }
            slots[i].push(row);
            Ok(())
        })?;
        if let Some((_, mut w, _)) = writer.take() {
            w.flush().map_err(|e| ProbeError::io(&req.spill_dir, e))?;
        }
    }
    let config_json = base.config.clone();
    model::describe(&mut manifest, &[&base], req.config.as_deref())?;
    drop(base);

    // ---- each checkpoint against the spill
    // sums[ckpt][point][prompt] = (Σ_images ‖Δ‖², Σ_images ‖a_ref‖²) for the pooled reading.
    let mut pair_values: Vec<DriftPairValue> = Vec::new();
    let mut pooled_sums: Vec<Vec<Vec<(f64, f64)>>> = Vec::new();
    for spec in &req.checkpoints {
        let m = model::load(spec, req.config.as_deref(), &req.device)?;
        if m.config != config_json {
            return Err(ProbeError::Usage(format!(
                "checkpoint `{}` ({}) has a different model config than the reference ({}); drift compares one architecture",
                spec.label,
                spec.path.display(),
                req.base.path.display()
            )));
        }
        records.push(m.record.clone());
        let mut sums = vec![vec![(0.0f64, 0.0f64); prompts.len()]; points.len()];
        let mut file: Option<(usize, File)> = None;
        let mut rows: Vec<(usize, usize, usize, f64, f64)> = Vec::new(); // image, prompt, point, ref², Δ²
        sweep(&m, &req.images, &prompts, &points, progress, |i, j, cache| {
            if file.as_ref().is_none_or(|(fi, _)| *fi != i) {
                let p = spill_path(&req.spill_dir, i);
                file = Some((i, File::open(&p).map_err(|e| ProbeError::io(&p, e))?));
            }
            let (_, f) = file.as_mut().expect("opened above");
            for (k, p) in points.iter().enumerate() {
                let slot = &slots[i][j][k];
                let t = cache.get(p)?;
                if t.shape() != slot.shape.as_slice() {
                    return Err(ProbeError::Usage(format!(
                        "`{p}` has shape {:?} in `{}` but {:?} in the reference",
                        t.shape(),
                        spec.label,
                        slot.shape
                    )));
                }
                let v = t.to_vec();
                let mut buf = vec![0u8; v.len() * 4];
                f.seek(SeekFrom::Start(slot.offset)).map_err(|e| ProbeError::io(&req.spill_dir, e))?;
                f.read_exact(&mut buf).map_err(|e| ProbeError::io(&req.spill_dir, e))?;
                let d2: f64 = v
                    .iter()
                    .zip(buf.chunks_exact(4))
                    .map(|(&a, c)| {
                        let r = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                        let d = a as f64 - r as f64;
                        d * d
                    })
                    .sum();
                sums[k][j].0 += d2;
                sums[k][j].1 += slot.sq_norm;
                rows.push((i, j, k, slot.sq_norm, d2));
            }
            Ok(())
        })?;
        for (i, j, k, r2, d2) in rows {
            let rel = (r2 > 0.0).then(|| (d2 / r2).sqrt());
            for g in req.groups.iter().filter(|g| g.prompts.contains(&prompts[j])) {
                pair_values.push(DriftPairValue {
                    checkpoint: spec.label.clone(),
                    point: points[k].clone(),
                    group: g.name.clone(),
                    image: req.images.paths[i].display().to_string(),
                    prompt: prompts[j].clone(),
                    ref_norm: r2.sqrt(),
                    delta_norm: d2.sqrt(),
                    rel_delta: rel,
                });
            }
        }
        pooled_sums.push(sums);
    }
    if !req.keep_spill {
        std::fs::remove_dir_all(&req.spill_dir).map_err(|e| ProbeError::io(&req.spill_dir, e))?;
    }

    // ---- tables
    let group_names: Vec<String> = req.groups.iter().map(|g| g.name.clone()).collect();
    let mut table_rows = Vec::new();
    let mut pooled_rows = Vec::new();
    for (c, spec) in req.checkpoints.iter().enumerate() {
        let mut values: BTreeMap<String, BTreeMap<String, Option<f64>>> = BTreeMap::new();
        let mut pvalues: BTreeMap<String, BTreeMap<String, Option<f64>>> = BTreeMap::new();
        for (k, p) in points.iter().enumerate() {
            for g in &req.groups {
                let rels: Vec<f64> = pair_values
                    .iter()
                    .filter(|v| v.checkpoint == spec.label && &v.point == p && v.group == g.name)
                    .filter_map(|v| v.rel_delta)
                    .collect();
                let mean = (!rels.is_empty()).then(|| rels.iter().sum::<f64>() / rels.len() as f64);
                values.entry(p.clone()).or_default().insert(g.name.clone(), mean);
                let per_prompt: Vec<f64> = g
                    .prompts
                    .iter()
                    .filter_map(|pr| {
                        let j = prompts.iter().position(|x| x == pr).expect("prompt listed");
                        let (d2, r2) = pooled_sums[c][k][j];
                        (r2 > 0.0).then(|| (d2 / r2).sqrt())
                    })
                    .collect();
                let pmean = (!per_prompt.is_empty()).then(|| per_prompt.iter().sum::<f64>() / per_prompt.len() as f64);
                pvalues.entry(p.clone()).or_default().insert(g.name.clone(), pmean);
            }
        }
        let label = step_label(&spec.label);
        table_rows.push(DriftRow { checkpoint: spec.label.clone(), label: label.clone(), values });
        pooled_rows.push(DriftRow { checkpoint: spec.label.clone(), label, values: pvalues });
    }

    manifest.checkpoints = records;
    manifest.points = points.clone();
    manifest.images = req.images.records()?;
    manifest.prompts = req.groups.iter().map(|g| (g.name.clone(), g.prompts.clone())).collect();
    manifest.option("reference", &req.base.label);
    manifest.option("images_source", req.images.source.display().to_string());
    manifest.option(
        "prompt_files",
        req.groups.iter().map(|g| (g.name.clone(), g.file.display().to_string())).collect::<BTreeMap<_, _>>(),
    );
    manifest.notes = vec![
        "rel_delta (drift.json): per (image, prompt), ‖a_ckpt − a_ref‖₂ / ‖a_ref‖₂ over the whole activation at the point (batch 1); table value = mean over the group's (image, prompt) pairs".into(),
        "rel_delta_pooled (drift_pooled.json): per prompt, sqrt(Σ_images ‖a_ckpt − a_ref‖² / Σ_images ‖a_ref‖²); table value = mean over the group's prompts".into(),
        "inputs with ‖a_ref‖ = 0 are left out of the means (rel_delta is null for them in drift_pairs.csv)".into(),
        "memory: the reference's activations are spilled to disk per image; one model is loaded at a time".into(),
    ];
    let manifest_json = serde_json::to_value(&manifest).expect("manifest serialises");
    let table = DriftTable {
        metric: "rel_delta".into(),
        reference: Some(req.base.label.clone()),
        points: points.clone(),
        groups: group_names.clone(),
        rows: table_rows,
        manifest: manifest_json.clone(),
    };
    let pooled = DriftTable {
        metric: "rel_delta_pooled".into(),
        reference: Some(req.base.label.clone()),
        points,
        groups: group_names,
        rows: pooled_rows,
        manifest: manifest_json,
    };
    table.validate("drift.json").map_err(|e| ProbeError::Usage(format!("internal: drift table invalid: {e}")))?;
    Ok(DriftResult { table, pooled, pairs: pair_values, manifest })
}

/// `recovery@1200` → `recovery @ step 1200` (the figures' display label); other labels get none.
fn step_label(label: &str) -> Option<String> {
    let (run, step) = label.split_once('@')?;
    step.parse::<u64>().ok().map(|s| format!("{run} @ step {s}"))
}

/// Write `drift.json`, `drift_pooled.json`, `drift.csv`, `drift_pairs.csv` and `manifest.json` into `out`.
pub fn write(out: &Path, r: &DriftResult) -> Result<()> {
    write_json(&out.join("drift.json"), &r.table)?;
    write_json(&out.join("drift_pooled.json"), &r.pooled)?;
    let mut csv = Csv::new(&["checkpoint", "point", "group", "rel_delta", "rel_delta_pooled", "inputs"]);
    for (row, prow) in r.table.rows.iter().zip(&r.pooled.rows) {
        for p in &r.table.points {
            for g in &r.table.groups {
                let n = r
                    .pairs
                    .iter()
                    .filter(|v| v.checkpoint == row.checkpoint && &v.point == p && &v.group == g && v.rel_delta.is_some())
                    .count();
                let v = row.values.get(p).and_then(|m| m.get(g)).copied().flatten();
                let pv = prow.values.get(p).and_then(|m| m.get(g)).copied().flatten();
                csv.row([row.checkpoint.clone(), p.clone(), g.clone(), num(v), num(pv), n.to_string()]);
            }
        }
    }
    csv.write(&out.join("drift.csv"))?;
    let mut pc = Csv::new(&["checkpoint", "point", "group", "image", "prompt", "ref_norm", "delta_norm", "rel_delta"]);
    for v in &r.pairs {
        pc.row([
            v.checkpoint.clone(),
            v.point.clone(),
            v.group.clone(),
            v.image.clone(),
            v.prompt.clone(),
            num(Some(v.ref_norm)),
            num(Some(v.delta_norm)),
            num(v.rel_delta),
        ]);
    }
    pc.write(&out.join("drift_pairs.csv"))?;
    write_json(&out.join("manifest.json"), &r.manifest)
}
