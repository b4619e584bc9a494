//! Writing a COCO results file by running a model over every (image, noun phrase) entry of a
//! ground-truth file, each image encoded once for all its noun phrases, resumably.
//!
//! With [`PredictConfig::subsample`], only a fixed, seeded subsample of the entries is run
//! ([`crate::subsample`]: the same N instance-exhaustive entries every time for the same file, N
//! and seed — the post's 2 000 per subset, seed 0).
//!
//! Progress is kept in `<out>.partial.jsonl`: a header line naming the ground truth (sha256), the
//! model identity and the threshold, then one line per finished entry
//! (`{"image_id": …, "predictions": [...]}`), flushed and synced after each image. A rerun with the
//! same header skips the finished entries (a torn last line from an interruption is dropped); a
//! different header is an error. When every entry is done, `<out>` (a JSON list, entries in
//! ground-truth order) and `<out>.meta.json` (provenance) are written atomically and the partial file
//! is removed.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use image::{GrayImage, RgbImage};
use sam3lab_util::progress::Progress;
use serde::{Deserialize, Serialize};

use crate::coco::{self, GtDataset, Prediction, Segmentation};
use crate::error::{EvalError, Result};
use crate::output::{sha256_hex, write_atomic};
use crate::rle::Rle;

/// One detection for one noun phrase.
#[derive(Clone, Debug)]
pub struct Detection {
    /// Confidence in [0, 1] (SAM3: box probability × presence probability).
    pub score: f64,
    /// Binary mask at the original image resolution (non-zero = inside).
    pub mask: GrayImage,
    /// Box `[x, y, w, h]` normalised by the image size, as SAM3's writer stores it; derived from the
    /// mask when `None`.
    pub bbox: Option<[f64; 4]>,
}

#[derive(Clone, Debug)]
pub struct PredictConfig {
    pub gt_path: PathBuf,
    pub images_dir: PathBuf,
    pub out: PathBuf,
    /// Detections with `score > threshold` are written (SAM3's eval writer uses 0.3).
    pub threshold: f64,
    /// Identifies the model (e.g. checkpoint path and sha256); a resume must use the same one.
    pub model_identity: String,
    /// Only run entries marked `is_instance_exhaustive` (the only ones the scorer uses).
    pub only_exhaustive: bool,
    /// Run only this seeded subsample of the entries (recorded in the progress header and the meta
    /// file; a resume must use the same one).
    pub subsample: Option<crate::subsample::Subsample>,
    /// Extra provenance written into `<out>.meta.json` (e.g. the intervention applied).
    pub extra_meta: Vec<(String, serde_json::Value)>,
    /// Run only this shard's images ([`crate::shard`]; `<out>` is then a shard file for
    /// [`crate::shard::merge`]).
    pub shard: Option<crate::shard::Shard>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PredictSummary {
    pub entries: usize,
    pub images: usize,
    /// Entries taken from an earlier, interrupted run.
    pub resumed_entries: usize,
    /// Images passed to the model in this run.
    pub model_calls: usize,
    pub predictions: usize,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct PartialHeader {
    sam3lab_partial_predictions: u32,
    gt_sha256: String,
    model: String,
    threshold: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subsample: Option<crate::subsample::Subsample>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shard: Option<crate::shard::Shard>,
}

#[derive(Serialize, Deserialize)]
struct PartialEntry {
    image_id: i64,
    predictions: Vec<Prediction>,
}

pub fn partial_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".partial.jsonl");
    PathBuf::from(s)
}

pub fn meta_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".meta.json");
    PathBuf::from(s)
}

/// Python's `round(x, 5)` for the values written (decimal rounding of the exact binary value).
fn round5(x: f64) -> f64 {
    format!("{x:.5}").parse().expect("formatted float parses")
}

/// Read finished entries of an earlier run; truncate a torn last line.
fn resume(
    path: &Path,
    header: &PartialHeader,
    known: &HashMap<i64, usize>,
) -> Result<HashMap<i64, Vec<Prediction>>> {
    let bytes = coco::read_bytes(path)?;
    let mut done = HashMap::new();
    let mut good_len = 0usize;
    let mut pos = 0usize;
    let mut line_no = 0usize;
    while pos < bytes.len() {
        let Some(nl) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            break; // torn last line: dropped below
        };
        let line = &bytes[pos..pos + nl];
        line_no += 1;
        if line_no == 1 {
            let found: PartialHeader = serde_json::from_slice(line).map_err(|e| {
                EvalError::invalid(format!(
                    "{}: line 1 is not a progress header ({e}); delete the file to start over",
                    path.display()
                ))
            })?;
            if &found != header {
                return Err(EvalError::invalid(format!(
                    "{}: progress was recorded for a different run (ground truth sha256 {}, model {:?}, threshold {}, subsample {:?}); this run has sha256 {}, model {:?}, threshold {}, subsample {:?}. Delete the file to start over",
                    path.display(),
                    found.gt_sha256,
                    found.model,
                    found.threshold,
                    found.subsample,
                    header.gt_sha256,
                    header.model,
                    header.threshold,
                    header.subsample
                )));
            }
        } else {
            let entry: PartialEntry = match serde_json::from_slice(line) {
                Ok(e) => e,
                // A damaged final line can only come from an interruption: redo that entry.
                Err(_) if pos + nl + 1 == bytes.len() => break,
                Err(e) => {
                    return Err(EvalError::invalid(format!(
                        "{}: line {line_no} is damaged ({e}); delete the file to start over",
                        path.display()
                    )));
                }
            };
            if !known.contains_key(&entry.image_id) {
                return Err(EvalError::invalid(format!(
                    "{}: line {line_no} is for image_id {} which is not an entry of the ground truth",
                    path.display(),
                    entry.image_id
                )));
            }
            if done.insert(entry.image_id, entry.predictions).is_some() {
                return Err(EvalError::invalid(format!(
                    "{}: image_id {} recorded twice",
                    path.display(),
                    entry.image_id
                )));
            }
        }
        pos += nl + 1;
        good_len = pos;
    }
    if line_no == 0 {
        good_len = 0; // not even a header: start over
    }
    if good_len < bytes.len() {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| EvalError::io(path, e))?;
        f.set_len(good_len as u64)
            .map_err(|e| EvalError::io(path, e))?;
    }
    Ok(done)
}

/// Turn the model's detections for one entry into COCO predictions.
fn to_predictions(
    image_id: i64,
    dets: &[Detection],
    h: u32,
    w: u32,
    threshold: f64,
    at: &dyn Fn() -> String,
) -> Result<Vec<Prediction>> {
    let mut out = Vec::new();
    for (k, d) in dets.iter().enumerate() {
        if d.mask.dimensions() != (w, h) {
            return Err(EvalError::invalid(format!(
                "{}: detection {k} has a {}x{} (w x h) mask but the image is {w}x{h}",
                at(),
                d.mask.width(),
                d.mask.height()
            )));
        }
        if !d.score.is_finite() {
            return Err(EvalError::invalid(format!(
                "{}: detection {k} has a non-finite score",
                at()
            )));
        }
        if d.score <= threshold {
            continue;
        }
        let rle = Rle::from_row_major(h, w, d.mask.as_raw());
        let bbox = d.bbox.unwrap_or_else(|| {
            let b = rle.to_bbox();
            [
                b[0] / w as f64,
                b[1] / h as f64,
                b[2] / w as f64,
                b[3] / h as f64,
            ]
        });
        out.push(Prediction {
            image_id,
            category_id: Some(1),
            segmentation: Some(Segmentation::from_rle(&rle)),
            bbox: Some(bbox.iter().map(|&v| round5(v)).collect()),
            score: round5(d.score),
        });
    }
    Ok(out)
}

/// Run `model` over the entries of `cfg.gt_path` and write `cfg.out`. `model(image, phrases)` must
/// return one list of detections per phrase. Progress is counted in entries.
pub fn predict<F>(cfg: &PredictConfig, progress: &dyn Progress, mut model: F) -> Result<PredictSummary>
where
    F: FnMut(&RgbImage, &[String]) -> anyhow::Result<Vec<Vec<Detection>>>,
{
    let gt_bytes = coco::read_bytes(&cfg.gt_path)?;
    let gt: GtDataset = coco::parse_gt(&cfg.gt_path, &gt_bytes)?;
    let gt_sha256 = sha256_hex(&gt_bytes);
    let gt_name = cfg.gt_path.display().to_string();

    let selected: Vec<usize> = match &cfg.subsample {
        // Candidates are instance-exhaustive entries only, so --only-exhaustive changes nothing.
        Some(sub) => sub.select(&gt),
        None => (0..gt.images.len())
            .filter(|&i| !cfg.only_exhaustive || gt.images[i].is_instance_exhaustive)
            .collect(),
    };
    let mut known: HashMap<i64, usize> = HashMap::new();
    for &i in &selected {
        let img = &gt.images[i];
        if known.insert(img.id, i).is_some() {
            return Err(EvalError::invalid(format!(
                "{gt_name}: image id {} appears more than once in images[]",
                img.id
            )));
        }
        if img.text_input.as_deref().is_none_or(str::is_empty) {
            return Err(EvalError::invalid(format!(
                "{gt_name}: entry id {} has no text_input (noun phrase)",
                img.id
            )));
        }
    }
    // Entries grouped by image file, files in order of first appearance.
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<&str, usize> = HashMap::new();
    for &i in &selected {
        let f = gt.images[i].file_name.as_str();
        let g = *group_of.entry(f).or_insert_with(|| {
            groups.push((f.to_string(), Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    // A shard keeps every N-th image (with all its phrases) and only those images' entries.
    let all_selected = selected.clone();
    let (groups, selected) = match cfg.shard {
        None => (groups, selected),
        Some(sh) => {
            let groups: Vec<(String, Vec<usize>)> = groups.into_iter().enumerate().filter(|(g, _)| sh.owns(*g)).map(|(_, x)| x).collect();
            let mine: std::collections::HashSet<usize> = groups.iter().flat_map(|(_, v)| v.iter().copied()).collect();
            let selected = selected.into_iter().filter(|i| mine.contains(i)).collect();
            (groups, selected)
        }
    };

    let header = PartialHeader {
        sam3lab_partial_predictions: 1,
        gt_sha256: gt_sha256.clone(),
        model: cfg.model_identity.clone(),
        threshold: cfg.threshold,
        subsample: cfg.subsample,
        shard: cfg.shard,
    };
    let partial = partial_path(&cfg.out);
    let mut done = if partial.exists() {
        resume(&partial, &header, &known)?
    } else {
        HashMap::new()
    };
    let resumed_entries = done.len();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&partial)
        .map_err(|e| EvalError::io(&partial, e))?;
    if file
        .metadata()
        .map_err(|e| EvalError::io(&partial, e))?
        .len()
        == 0
    {
        let mut line = serde_json::to_vec(&header).expect("header serialises");
        line.push(b'\n');
        file.write_all(&line)
            .map_err(|e| EvalError::io(&partial, e))?;
        file.sync_data().map_err(|e| EvalError::io(&partial, e))?;
    }

    progress.set_len(selected.len() as u64);
    progress.set_message("predict");
    progress.set_position(resumed_entries as u64);

    let mut model_calls = 0usize;
    for (file_name, idxs) in &groups {
        let todo: Vec<usize> = idxs
            .iter()
            .copied()
            .filter(|i| !done.contains_key(&gt.images[*i].id))
            .collect();
        if todo.is_empty() {
            continue;
        }
        let path = cfg.images_dir.join(file_name);
        let image = image::open(&path)
            .map_err(|e| {
                EvalError::invalid(format!(
                    "{}: cannot read image for entry id {}: {e}",
                    path.display(),
                    gt.images[todo[0]].id
                ))
            })?
            .to_rgb8();
        let (w, h) = image.dimensions();
        for &i in &todo {
            let e = &gt.images[i];
            if (e.height, e.width) != (h, w) {
                return Err(EvalError::invalid(format!(
                    "{}: image is {w}x{h} (w x h) but entry id {} in {gt_name} says {}x{}",
                    path.display(),
                    e.id,
                    e.width,
                    e.height
                )));
            }
        }
        let phrases: Vec<String> = todo
            .iter()
            .map(|&i| gt.images[i].text_input.clone().expect("checked"))
            .collect();
        let dets = model(&image, &phrases).map_err(|source| EvalError::Model {
            file_name: file_name.clone(),
            source,
        })?;
        model_calls += 1;
        if dets.len() != phrases.len() {
            return Err(EvalError::invalid(format!(
                "model returned {} detection lists for {} noun phrases on {file_name}",
                dets.len(),
                phrases.len()
            )));
        }
        let mut buf = BufWriter::new(&mut file);
        for (&i, d) in todo.iter().zip(&dets) {
            let e = &gt.images[i];
            let at = || {
                format!(
                    "{file_name} / {:?} (entry id {})",
                    e.text_input.as_deref().unwrap_or(""),
                    e.id
                )
            };
            let preds = to_predictions(e.id, d, h, w, cfg.threshold, &at)?;
            let mut line = serde_json::to_vec(&PartialEntry {
                image_id: e.id,
                predictions: preds.clone(),
            })
            .expect("entry serialises");
            line.push(b'\n');
            buf.write_all(&line)
                .map_err(|e| EvalError::io(&partial, e))?;
            done.insert(e.id, preds);
        }
        buf.flush().map_err(|e| EvalError::io(&partial, e))?;
        drop(buf);
        file.sync_data().map_err(|e| EvalError::io(&partial, e))?;
        progress.inc(todo.len() as u64);
    }
    progress.finish();

    // Final file: entries in ground-truth order.
    let mut text = String::from("[");
    let mut count = 0usize;
    for &i in &selected {
        for p in &done[&gt.images[i].id] {
            text.push_str(if count == 0 { "\n" } else { ",\n" });
            text.push_str(&serde_json::to_string(p).expect("prediction serialises"));
            count += 1;
        }
    }
    text.push_str("\n]\n");
    write_atomic(&cfg.out, text.as_bytes())?;
    let mut meta = serde_json::json!({
        "gt_file": gt_name,
        "gt_sha256": gt_sha256,
        "images_dir": cfg.images_dir.display().to_string(),
        "model": cfg.model_identity,
        "threshold": cfg.threshold,
        "only_exhaustive": cfg.only_exhaustive,
        "num_entries": selected.len(),
        "num_predictions": count,
        "pred_sha256": sha256_hex(text.as_bytes()),
        "sam3lab_version": env!("CARGO_PKG_VERSION"),
    });
    if let Some(sub) = &cfg.subsample {
        meta["subsample"] = serde_json::json!({
            "n": sub.n,
            "seed": sub.seed,
            "candidates": crate::subsample::Subsample::candidates(&gt),
            "chosen": all_selected.len(),
            "image_ids": all_selected.iter().map(|&i| gt.images[i].id).collect::<Vec<_>>(),
        });
    }
    for (k, v) in &cfg.extra_meta {
        meta[k.as_str()] = v.clone();
    }
    if let Some(sh) = &cfg.shard {
        // The whole run's entry order and this shard's entries, for `merge`; the whole run's count.
        meta["num_entries"] = all_selected.len().into();
        meta["shard"] = serde_json::json!({
            "k": sh.k,
            "n": sh.n,
            "entry_ids": all_selected.iter().map(|&i| gt.images[i].id).collect::<Vec<_>>(),
            "own_ids": selected.iter().map(|&i| gt.images[i].id).collect::<Vec<_>>(),
        });
    }
    write_atomic(
        &meta_path(&cfg.out),
        format!("{}\n", serde_json::to_string_pretty(&meta).expect("meta")).as_bytes(),
    )?;
    std::fs::remove_file(&partial).map_err(|e| EvalError::io(&partial, e))?;
    Ok(PredictSummary {
        entries: selected.len(),
        images: groups.len(),
        resumed_entries,
        model_calls,
        predictions: count,
    })
}
