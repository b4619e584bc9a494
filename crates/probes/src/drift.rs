//! Activation drift (post §6): how far each checkpoint's activations at a few hook points sit from a
//! reference checkpoint's on the same (image, prompt) inputs, per prompt group.
//!
//! Two readings are computed for every (checkpoint, point, group) cell:
//!
//! - **per concept** (`drift.json`, metric `rel_delta`, the post's §6 table and Fig 6.1): each
//!   prompt's activations over all the images are stacked into one vector A, and its drift is
//!   ‖A_ckpt − A_ref‖₂ / ‖A_ref‖₂ = sqrt(Σ_images ‖a_ckpt − a_ref‖² / Σ_images ‖a_ref‖²); the cell is
//!   the mean of that over the group's prompts. This is the post's "per-concept relative drift".
//! - **pair mean** (`drift_pair_mean.json`, metric `rel_delta_pair_mean`): rel_Δ(image, prompt) =
//!   ‖a_ckpt − a_ref‖₂ / ‖a_ref‖₂ per input, then the mean over the group's (image, prompt) pairs.
//!   It weights every image equally, however small its activation, so it differs from the
//!   per-concept value whenever ‖a_ref‖ varies across a prompt's images.
//!
//! Both are computed by [`tables`] from the per-input squared norms in [`DriftPairValue`].
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
use sam3lab_util::progress::Progress;
use sam3lab_results::{DriftRow, DriftTable};
use sam3lab_hooks::ActivationCache;
use sam3lab_eval::shard::Shard;
use serde::{Deserialize, Serialize};

use crate::{ProbeError, Result};
use crate::inputs::{ImageList, Item, PromptGroup};
use crate::manifest::{Csv, Manifest, num, write_json};
use crate::model::{self, CkptSpec, Loaded};
use crate::sweep;

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
    /// ‖a_ref‖² and ‖a_ckpt − a_ref‖² as summed (f64), for the exact per-concept reading.
    #[serde(skip)]
    pub ref_sq: f64,
    #[serde(skip)]
    pub delta_sq: f64,
}

impl DriftPairValue {
    /// A measurement from its squared norms (what the probe accumulates).
    pub fn new(checkpoint: &str, point: &str, group: &str, image: &str, prompt: &str, ref_sq: f64, delta_sq: f64) -> Self {
        Self {
            checkpoint: checkpoint.into(),
            point: point.into(),
            group: group.into(),
            image: image.into(),
            prompt: prompt.into(),
            ref_norm: ref_sq.sqrt(),
            delta_norm: delta_sq.sqrt(),
            rel_delta: (ref_sq > 0.0).then(|| (delta_sq / ref_sq).sqrt()),
            ref_sq,
            delta_sq,
        }
    }
}

#[derive(Debug)]
pub struct DriftResult {
    /// The §6 table (checkpoint × point × group): per-concept drift (each prompt's activations over
    /// the images stacked into one vector), averaged over the group's prompts. `drift.json`.
    pub table: DriftTable,
    /// The alternative reading: the mean of per-(image, prompt) rel_Δ over the group's pairs.
    /// `drift_pair_mean.json`.
    pub pair_mean: DriftTable,
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

/// One input of drift's product: image `image` (an index into the image list) with prompt `prompt`.
struct Input<'a> {
    image: usize,
    prompt: usize,
    path: &'a Path,
    text: &'a str,
}

impl Item for Input<'_> {
    fn image(&self) -> &Path {
        self.path
    }
    fn prompt(&self) -> &str {
        self.text
    }
}

/// Run one checkpoint over every (image, prompt) of the images `owned` (indices into `images`),
/// through the runner's loop, calling `visit(image, prompt, cache)`.
fn sweep(
    model: &Loaded,
    images: &ImageList,
    owned: &[usize],
    prompts: &[String],
    points: &[String],
    progress: &dyn Progress,
    mut visit: impl FnMut(usize, usize, &ActivationCache) -> Result<()>,
) -> Result<()> {
    let inputs: Vec<Input> = owned
        .iter()
        .flat_map(|&i| prompts.iter().enumerate().map(move |(j, p)| (i, j, p)))
        .map(|(i, j, p)| Input { image: i, prompt: j, path: &images.paths[i], text: p })
        .collect();
    let items: Vec<&Input> = inputs.iter().collect();
    sweep::for_each_pair(&[model], &items, points, progress, |runs| {
        let (_, cache) = runs.capture(0, points)?;
        visit(runs.pair.image, runs.pair.prompt, &cache)
    })
}

/// Run the drift probe. The spill directory is removed afterwards (also on error) unless `keep_spill`.
pub fn run(req: &DriftRequest, progress: &dyn Progress) -> Result<DriftResult> {
    let all: Vec<usize> = (0..req.images.paths.len()).collect();
    assemble(measure_cleaning_up(req, &all, progress)?)
}

/// Run shard `shard` of the drift probe: the images whose index in `req.images` is K modulo N, each
/// against the reference and every checkpoint. The result holds the per-input measurements exactly
/// (the squared norms' bits) and the whole run's identity; [`merge`] of all N shards gives what
/// [`run`] gives, byte for byte once written.
pub fn run_shard(req: &DriftRequest, shard: Shard, progress: &dyn Progress) -> Result<DriftShard> {
    let owned: Vec<usize> = (0..req.images.paths.len()).filter(|&i| shard.owns(i)).collect();
    let m = measure_cleaning_up(req, &owned, progress)?;
    Ok(DriftShard {
        format: DRIFT_SHARD_FORMAT.into(),
        shard,
        reference: m.reference,
        checkpoints: m.labels,
        points: m.points,
        groups: m.groups,
        images: req.images.paths.iter().map(|p| p.display().to_string()).collect(),
        owned,
        manifest: m.manifest,
        pairs: m
            .pairs
            .iter()
            .map(|(i, v)| ShardPair {
                image_index: *i,
                checkpoint: v.checkpoint.clone(),
                point: v.point.clone(),
                group: v.group.clone(),
                prompt: v.prompt.clone(),
                ref_sq_bits: v.ref_sq.to_bits(),
                delta_sq_bits: v.delta_sq.to_bits(),
            })
            .collect(),
    })
}

/// The `format` of a drift shard file.
pub const DRIFT_SHARD_FORMAT: &str = "sam3lab drift shard 1";

/// One shard of a drift run (`probe drift --shard K/N` writes it as `drift_shard.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftShard {
    pub format: String,
    pub shard: Shard,
    pub reference: String,
    pub checkpoints: Vec<String>,
    pub points: Vec<String>,
    pub groups: Vec<(String, Vec<String>)>,
    /// The whole run's images, as given.
    pub images: Vec<String>,
    /// Which of them this shard ran (indices into `images`).
    pub owned: Vec<usize>,
    /// The whole run's provenance (the same in every shard).
    pub manifest: Manifest,
    /// Every measurement, in the order the unsharded run makes them within each (checkpoint, image).
    pub pairs: Vec<ShardPair>,
}

/// One measurement of a shard: the squared norms as `f64::to_bits`, so a merge recomputes every
/// number from exactly the values the unsharded run sums (JSON's decimal floats need not round-trip).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardPair {
    pub image_index: usize,
    pub checkpoint: String,
    pub point: String,
    pub group: String,
    pub prompt: String,
    pub ref_sq_bits: u64,
    pub delta_sq_bits: u64,
}

/// Put the N shards of one drift run (any order) back together: they must agree on everything that
/// identifies the run, hold every K once and every image once. The result is what [`run`] returns.
pub fn merge(mut shards: Vec<DriftShard>) -> Result<DriftResult> {
    let bad = |m: String| Err(ProbeError::Usage(m));
    let Some(first) = shards.first() else { return bad("no drift shards given".into()) };
    let n = first.shard.n;
    for s in &shards {
        if s.format != DRIFT_SHARD_FORMAT {
            return bad(format!("shard {}/{}: format `{}`, expected `{DRIFT_SHARD_FORMAT}`", s.shard.k, s.shard.n, s.format));
        }
        let same = s.shard.n == n
            && s.reference == first.reference
            && s.checkpoints == first.checkpoints
            && s.points == first.points
            && s.groups == first.groups
            && s.images == first.images
            && s.manifest == first.manifest;
        if !same {
            return bad(format!(
                "shard {}/{} is not from the same run as shard {}/{} (shard count, checkpoints, points, prompts, images or manifest differ)",
                s.shard.k, s.shard.n, first.shard.k, first.shard.n
            ));
        }
        let expect: Vec<usize> = (0..s.images.len()).filter(|&i| s.shard.owns(i)).collect();
        if s.owned != expect || s.pairs.iter().any(|p| !s.owned.contains(&p.image_index)) {
            return bad(format!("shard {}/{} holds images other than its own", s.shard.k, s.shard.n));
        }
    }
    let labelled: Vec<(Shard, String)> = shards.iter().map(|s| (s.shard, format!("shard {}/{}", s.shard.k, s.shard.n))).collect();
    sam3lab_eval::shard::check_complete(&labelled).map_err(|e| ProbeError::Usage(format!("drift shards: {e}")))?;
    shards.sort_by_key(|s| s.shard.k);
    let first = &shards[0];
    let ckpt_index = |c: &str| first.checkpoints.iter().position(|x| x == c);
    let mut pairs: Vec<(usize, usize, DriftPairValue)> = Vec::new();
    for s in &shards {
        for p in &s.pairs {
            let Some(c) = ckpt_index(&p.checkpoint) else {
                return bad(format!("shard {}/{}: measurement of unknown checkpoint `{}`", s.shard.k, s.shard.n, p.checkpoint));
            };
            let image = &s.images[p.image_index];
            let v = DriftPairValue::new(&p.checkpoint, &p.point, &p.group, image, &p.prompt, f64::from_bits(p.ref_sq_bits), f64::from_bits(p.delta_sq_bits));
            pairs.push((c, p.image_index, v));
        }
    }
    // The unsharded order: checkpoint, then image; within one (checkpoint, image) the shard kept it.
    pairs.sort_by_key(|(c, i, _)| (*c, *i));
    assemble(Measured {
        reference: first.reference.clone(),
        labels: first.checkpoints.clone(),
        points: first.points.clone(),
        groups: first.groups.clone(),
        pairs: pairs.into_iter().map(|(_, i, v)| (i, v)).collect(),
        manifest: first.manifest.clone(),
    })
}

/// What a drift run measured, before the tables: every input's squared norms (with its image index)
/// and the run's provenance.
struct Measured {
    reference: String,
    labels: Vec<String>,
    points: Vec<String>,
    groups: Vec<(String, Vec<String>)>,
    pairs: Vec<(usize, DriftPairValue)>,
    manifest: Manifest,
}

/// The tables from the measurements: the one path by which [`run`] and [`merge`] make their result.
fn assemble(m: Measured) -> Result<DriftResult> {
    let manifest_json = serde_json::to_value(&m.manifest).expect("manifest serialises");
    let pairs: Vec<DriftPairValue> = m.pairs.into_iter().map(|(_, v)| v).collect();
    let (table, pair_mean) = tables(&m.reference, &m.labels, &m.points, &m.groups, &pairs, manifest_json);
    table.check().map_err(|e| ProbeError::Usage(format!("internal: drift table invalid: drift.json: {e}")))?;
    Ok(DriftResult { table, pair_mean, pairs, manifest: m.manifest })
}

fn measure_cleaning_up(req: &DriftRequest, owned: &[usize], progress: &dyn Progress) -> Result<Measured> {
    let r = run_inner(req, owned, progress);
    if r.is_err() && !req.keep_spill && req.spill_dir.exists() {
        let _ = std::fs::remove_dir_all(&req.spill_dir);
    }
    r
}

fn run_inner(req: &DriftRequest, owned: &[usize], progress: &dyn Progress) -> Result<Measured> {
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
    progress.set_len(((1 + req.checkpoints.len()) * owned.len() * prompts.len()) as u64);

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
        sweep(&base, &req.images, owned, &prompts, &points, progress, |i, _j, cache| {
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
    let mut pair_values: Vec<(usize, DriftPairValue)> = Vec::new();
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
        let mut file: Option<(usize, File)> = None;
        let mut rows: Vec<(usize, usize, usize, f64, f64)> = Vec::new(); // image, prompt, point, ref², Δ²
        sweep(&m, &req.images, owned, &prompts, &points, progress, |i, j, cache| {
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
                rows.push((i, j, k, slot.sq_norm, d2));
            }
            Ok(())
        })?;
        for (i, j, k, r2, d2) in rows {
            let image = req.images.paths[i].display().to_string();
            for g in req.groups.iter().filter(|g| g.prompts.contains(&prompts[j])) {
                pair_values.push((i, DriftPairValue::new(&spec.label, &points[k], &g.name, &image, &prompts[j], r2, d2)));
            }
        }
    }
    if !req.keep_spill {
        std::fs::remove_dir_all(&req.spill_dir).map_err(|e| ProbeError::io(&req.spill_dir, e))?;
    }

    // ---- tables
    let labels: Vec<String> = req.checkpoints.iter().map(|c| c.label.clone()).collect();
    let groups: Vec<(String, Vec<String>)> = req.groups.iter().map(|g| (g.name.clone(), g.prompts.clone())).collect();

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
        "rel_delta (drift.json, the §6 table): per concept — each prompt's activations over all images stacked into one vector, ‖A_ckpt − A_ref‖₂ / ‖A_ref‖₂ = sqrt(Σ_images ‖a_ckpt − a_ref‖² / Σ_images ‖a_ref‖²); table value = mean over the group's prompts".into(),
        "rel_delta_pair_mean (drift_pair_mean.json): per (image, prompt), ‖a_ckpt − a_ref‖₂ / ‖a_ref‖₂ over the whole activation at the point (batch 1); table value = mean over the group's (image, prompt) pairs".into(),
        "a prompt whose reference activations are all zero, and an input with ‖a_ref‖ = 0, are left out of the respective means (rel_delta is null for such inputs in drift_pairs.csv)".into(),
        "memory: the reference's activations are spilled to disk per image; one model is loaded at a time".into(),
    ];
    Ok(Measured { reference: req.base.label.clone(), labels, points, groups, pairs: pair_values, manifest })
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Per-concept drift of one prompt: its activations over the images stacked into one vector,
/// ‖A_ckpt − A_ref‖ / ‖A_ref‖ = sqrt(Σ ‖Δ‖² / Σ ‖a_ref‖²) over `inputs` (that prompt's
/// measurements, one per image). `None` when the stacked reference is zero.
pub fn per_concept(inputs: &[&DriftPairValue]) -> Option<f64> {
    let (d2, r2) = inputs.iter().fold((0.0f64, 0.0f64), |(d, r), v| (d + v.delta_sq, r + v.ref_sq));
    (r2 > 0.0).then(|| (d2 / r2).sqrt())
}

/// The two tables from per-input measurements: `(per-concept table, pair-mean table)`.
///
/// For each checkpoint (row, in `checkpoints` order), point and group (`(name, prompts)`):
/// per-concept = mean over the group's prompts of [`per_concept`] (prompts without measurements or
/// with a zero reference are skipped); pair mean = mean of `rel_delta` over the group's inputs.
/// A cell with nothing to average is `null`. Rows get the figures' `RUN @ step N` display label for
/// `RUN@N` checkpoints.
pub fn tables(
    reference: &str,
    checkpoints: &[String],
    points: &[String],
    groups: &[(String, Vec<String>)],
    pairs: &[DriftPairValue],
    manifest: serde_json::Value,
) -> (DriftTable, DriftTable) {
    let mut concept_rows = Vec::new();
    let mut mean_rows = Vec::new();
    for ckpt in checkpoints {
        let mut concept: BTreeMap<String, BTreeMap<String, Option<f64>>> = BTreeMap::new();
        let mut pmean: BTreeMap<String, BTreeMap<String, Option<f64>>> = BTreeMap::new();
        for p in points {
            for (g, prompts) in groups {
                let cell: Vec<&DriftPairValue> =
                    pairs.iter().filter(|v| &v.checkpoint == ckpt && &v.point == p && &v.group == g).collect();
                let rels: Vec<f64> = cell.iter().filter_map(|v| v.rel_delta).collect();
                pmean.entry(p.clone()).or_default().insert(g.clone(), mean(&rels));
                let per_prompt: Vec<f64> = prompts
                    .iter()
                    .filter_map(|pr| {
                        let inputs: Vec<&DriftPairValue> = cell.iter().copied().filter(|v| &v.prompt == pr).collect();
                        if inputs.is_empty() { None } else { per_concept(&inputs) }
                    })
                    .collect();
                concept.entry(p.clone()).or_default().insert(g.clone(), mean(&per_prompt));
            }
        }
        let label = step_label(ckpt);
        concept_rows.push(DriftRow { checkpoint: ckpt.clone(), label: label.clone(), values: concept });
        mean_rows.push(DriftRow { checkpoint: ckpt.clone(), label, values: pmean });
    }
    let group_names: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
    let table = |metric: &str, rows| DriftTable {
        metric: metric.into(),
        reference: Some(reference.to_string()),
        points: points.to_vec(),
        groups: group_names.clone(),
        rows,
        manifest: manifest.clone(),
    };
    (table("rel_delta", concept_rows), table("rel_delta_pair_mean", mean_rows))
}

/// `recovery@1200` → `recovery @ step 1200` (the figures' display label); other labels get none.
fn step_label(label: &str) -> Option<String> {
    let (run, step) = label.split_once('@')?;
    step.parse::<u64>().ok().map(|s| format!("{run} @ step {s}"))
}

/// Write a shard (`probe drift --shard K/N`'s `drift_shard.json`), atomically.
pub fn write_shard(path: &Path, s: &DriftShard) -> Result<()> {
    write_json(path, s)
}

/// Read a shard written by [`write_shard`]; the error names the file.
pub fn read_shard(path: &Path) -> Result<DriftShard> {
    let text = std::fs::read_to_string(path).map_err(|e| ProbeError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| ProbeError::Usage(format!("{}: not a drift shard: {e}", path.display())))
}

/// Write `drift.json` (per concept), `drift_pair_mean.json`, `drift.csv`, `drift_prompts.csv`,
/// `drift_pairs.csv` and `manifest.json` into `out`.
pub fn write(out: &Path, r: &DriftResult) -> Result<()> {
    write_json(&out.join("drift.json"), &r.table)?;
    write_json(&out.join("drift_pair_mean.json"), &r.pair_mean)?;
    let mut csv = Csv::new(&["checkpoint", "point", "group", "rel_delta", "rel_delta_pair_mean", "prompts", "inputs"]);
    let mut prompts_csv = Csv::new(&["checkpoint", "point", "group", "prompt", "rel_delta", "images"]);
    for (row, mrow) in r.table.rows.iter().zip(&r.pair_mean.rows) {
        for p in &r.table.points {
            for g in &r.table.groups {
                let cell: Vec<&DriftPairValue> =
                    r.pairs.iter().filter(|v| v.checkpoint == row.checkpoint && &v.point == p && &v.group == g).collect();
                let n = cell.iter().filter(|v| v.rel_delta.is_some()).count();
                let mut prompts: Vec<&str> = Vec::new();
                for v in &cell {
                    if !prompts.contains(&v.prompt.as_str()) {
                        prompts.push(&v.prompt);
                    }
                }
                let mut n_prompts = 0;
                for pr in &prompts {
                    let inputs: Vec<&DriftPairValue> = cell.iter().copied().filter(|v| v.prompt.as_str() == *pr).collect();
                    let value = per_concept(&inputs);
                    n_prompts += value.is_some() as usize;
                    prompts_csv.row([
                        row.checkpoint.clone(),
                        p.clone(),
                        g.clone(),
                        pr.to_string(),
                        num(value),
                        inputs.len().to_string(),
                    ]);
                }
                let v = row.values.get(p).and_then(|m| m.get(g)).copied().flatten();
                let mv = mrow.values.get(p).and_then(|m| m.get(g)).copied().flatten();
                csv.row([row.checkpoint.clone(), p.clone(), g.clone(), num(v), num(mv), n_prompts.to_string(), n.to_string()]);
            }
        }
    }
    csv.write(&out.join("drift.csv"))?;
    prompts_csv.write(&out.join("drift_prompts.csv"))?;
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
