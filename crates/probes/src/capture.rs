//! Per-forward activation caches over a pair file, one directory per checkpoint label, in the form
//! the SAE reads (`/work/notes/sae-contract.md`): `OUT/LABEL/pair_NNNNN.safetensors` (batch 1, one
//! file per pair, written by `ActivationCache::save` with the manifest in its metadata, including
//! `extra.pair` = the pair's 0-based index and `extra.label` = its label), plus `OUT/LABEL/list.jsonl`
//! (`{"path", "label", "pair"}` per file) and `OUT/manifest.json`. Pass `LABEL=OUT/LABEL` (or the
//! list file) to `sam3lab sae train|rank --acts`.
//!
//! One model is loaded at a time; each image is encoded once per checkpoint.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use sam3lab_util::progress::Progress;
use sam3lab_hooks::{HookSpec, ImageIdentity};
use sam3lab_eval::shard::Shard;
use serde::{Deserialize, Serialize};

use crate::{ProbeError, Result};
use crate::inputs::{LabelFilter, Pairs, pair_image_records, shard_pairs};
use crate::manifest::{Manifest, pairs_record, write_atomic, write_json};
use crate::model::{self, CkptSpec};
use crate::sweep;

pub struct CaptureRequest {
    pub checkpoints: Vec<CkptSpec>,
    pub config: Option<PathBuf>,
    pub pairs: Pairs,
    pub points: Vec<String>,
    pub label: LabelFilter,
    /// Run only this shard's images (see [`crate::inputs::shard_pairs`]); `OUT/shard.json` records it
    /// and [`merge`] puts N shards back together.
    pub shard: Option<Shard>,
    pub seed: u64,
    pub device: Device,
}

#[derive(Serialize, Deserialize)]
struct ListEntry {
    path: String,
    label: String,
    pair: usize,
}

/// What a shard of a capture run holds (`OUT/shard.json`); its `manifest.json` is the whole run's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaptureShard {
    pub format: String,
    pub shard: Shard,
    /// The pair indices this shard captured.
    pub pairs: Vec<usize>,
}

/// The `format` of `OUT/shard.json`.
pub const CAPTURE_SHARD_FORMAT: &str = "sam3lab capture shard 1";

/// What a capture run wrote.
#[derive(Clone, Debug)]
pub struct Captured {
    /// The manifest written (a shard's is the whole run's).
    pub manifest: Manifest,
    /// Pairs captured by this run (a shard: its own).
    pub pairs: usize,
}

/// Capture every selected pair under every checkpoint into `out`.
pub fn run(req: &CaptureRequest, out: &Path, progress: &dyn Progress) -> Result<Captured> {
    if req.checkpoints.is_empty() {
        return Err(ProbeError::Usage("give at least one --ckpt LABEL=CKPT".into()));
    }
    let selected = req.pairs.select(req.label)?;
    let mine = match req.shard {
        Some(s) => shard_pairs(&selected, s),
        None => selected.clone(),
    };
    progress.set_len((mine.len() * req.checkpoints.len()) as u64);
    let mut manifest = Manifest::new("sam3lab probe capture", req.seed);
    let mut records = Vec::new();
    let mut points = Vec::new();
    for spec in &req.checkpoints {
        if records.iter().any(|r: &crate::manifest::CheckpointRecord| r.label == spec.label) {
            return Err(ProbeError::Usage(format!("checkpoint label `{}` is given twice", spec.label)));
        }
        let m = model::load(spec, req.config.as_deref(), &req.device)?;
        points = model::resolve_points(&m.registry, &req.points)?;
        if records.is_empty() {
            model::describe(&mut manifest, &[&m], req.config.as_deref())?;
        } else if m.config != manifest.config {
            return Err(ProbeError::Usage(format!("checkpoint `{}` has a different model config than `{}`", spec.label, records[0].label)));
        }
        records.push(m.record.clone());
        let dir = out.join(&spec.label);
        let mut entries = Vec::new();
        // Each image is hashed once for the caches' identity.
        let mut identities: std::collections::HashMap<std::path::PathBuf, ImageIdentity> = std::collections::HashMap::new();
        sweep::for_each_pair(&[&m], &mine, &points, progress, |runs| {
            let pair = runs.pair;
            let identity = match identities.get(&pair.image) {
                Some(i) => i.clone(),
                None => {
                    let i = ImageIdentity::from_file(&pair.image)?;
                    identities.insert(pair.image.clone(), i.clone());
                    i
                }
            };
            let mut hs = HookSpec::new();
            for p in &points {
                hs = hs.capture(p)?;
            }
            let described = hs.describe();
            let (_, mut cache) = runs.run(0, hs)?;
            cache.manifest.checkpoint_sha256 = m.record.sha256.clone();
            cache.manifest.config = m.config.clone();
            cache.manifest.image = identity;
            cache.manifest.prompt = pair.prompt.clone();
            cache.manifest.hook_spec = described;
            cache.manifest.sam3lab_version = crate::manifest::SAM3LAB_VERSION.into();
            cache.manifest.seed = None;
            let extra = &mut cache.manifest.extra;
            extra.insert("probe".into(), "capture".into());
            extra.insert("checkpoint_label".into(), spec.label.clone().into());
            extra.insert("label".into(), pair.label.as_str().into());
            extra.insert("pair".into(), pair.index.into());
            extra.insert("pairs_file".into(), req.pairs.path.display().to_string().into());
            let name = format!("pair_{:05}.safetensors", pair.index);
            cache.save(&dir.join(&name))?;
            entries.push((pair.index, ListEntry { path: name, label: pair.label.as_str().into(), pair: pair.index }));
            Ok(())
        })?;
        entries.sort_by_key(|(i, _)| *i);
        let list = list_jsonl(entries.into_iter().map(|(_, e)| e));
        write_atomic(&dir.join("list.jsonl"), list.as_bytes())?;
    }
    manifest.checkpoints = records;
    manifest.points = points;
    manifest.images = pair_image_records(&selected)?;
    manifest.pairs = Some(pairs_record(&req.pairs, selected.len()));
    manifest.option("label", req.label.as_str());
    manifest.notes = vec![
        "one cache per (checkpoint, pair): OUT/LABEL/pair_NNNNN.safetensors, batch 1, extra.pair = 0-based pair index, extra.label = pos|neg".into(),
    ];
    write_json(&out.join("manifest.json"), &manifest)?;
    if let Some(shard) = req.shard {
        let s = CaptureShard { format: CAPTURE_SHARD_FORMAT.into(), shard, pairs: mine.iter().map(|p| p.index).collect() };
        write_json(&out.join("shard.json"), &s)?;
    }
    Ok(Captured { manifest, pairs: mine.len() })
}

fn list_jsonl(entries: impl Iterator<Item = ListEntry>) -> String {
    let mut list = String::new();
    for e in entries {
        list += &serde_json::to_string(&e).expect("list entry serialises");
        list.push('\n');
    }
    list
}

/// Put the N shard directories of one capture run (any order) back together in `out`: the shards
/// must carry the same manifest (checkpoints, points, pair file, images, options) and every K once.
/// Every cache file is copied, and each label's `list.jsonl` and `manifest.json` are written as the
/// unsharded run writes them, byte for byte. Returns the number of caches.
pub fn merge(shards: &[PathBuf], out: &Path) -> Result<usize> {
    let read = |p: &Path| -> Result<String> { std::fs::read_to_string(p).map_err(|e| ProbeError::io(p, e)) };
    let mut parts: Vec<(CaptureShard, String, &PathBuf)> = Vec::new();
    for d in shards {
        let f = d.join("shard.json");
        let s: CaptureShard = serde_json::from_str(&read(&f)?)
            .map_err(|e| ProbeError::input(&f, None, format!("not a capture shard: {e}")))?;
        if s.format != CAPTURE_SHARD_FORMAT {
            return Err(ProbeError::input(&f, None, format!("format `{}`, expected `{CAPTURE_SHARD_FORMAT}`", s.format)));
        }
        parts.push((s, read(&d.join("manifest.json"))?, d));
    }
    let Some((first, manifest_text, _)) = parts.first().cloned() else {
        return Err(ProbeError::Usage("no capture shards given".into()));
    };
    let n = first.shard.n;
    for (s, m, d) in &parts {
        if s.shard.n != n || *m != manifest_text {
            return Err(ProbeError::Usage(format!(
                "{}: shard {}/{} is not from the same run as shard {}/{} (shard count or manifest differ)",
                d.display(),
                s.shard.k,
                s.shard.n,
                first.shard.k,
                first.shard.n
            )));
        }
    }
    let labelled: Vec<(Shard, String)> = parts.iter().map(|(s, _, d)| (s.shard, d.display().to_string())).collect();
    sam3lab_eval::shard::check_complete(&labelled).map_err(|e| ProbeError::Usage(format!("capture shards: {e}")))?;
    parts.sort_by_key(|(s, _, _)| s.shard.k);
    let manifest: Manifest = serde_json::from_str(&manifest_text)
        .map_err(|e| ProbeError::input(&parts[0].2.join("manifest.json"), None, e.to_string()))?;
    let mut count = 0;
    for c in &manifest.checkpoints {
        let mut entries: Vec<ListEntry> = Vec::new();
        for (_, _, d) in &parts {
            let dir = d.join(&c.label);
            let list = dir.join("list.jsonl");
            for (i, line) in read(&list)?.lines().enumerate() {
                let e: ListEntry = serde_json::from_str(line).map_err(|e| ProbeError::input(&list, Some(i + 1), e.to_string()))?;
                // The cache and the manifest sidecar `ActivationCache::save` writes beside it.
                let cache = PathBuf::from(&e.path);
                for f in [cache.clone(), sam3lab_hooks::manifest_path(&cache)] {
                    let src = dir.join(&f);
                    if src.exists() || f == cache {
                        let bytes = std::fs::read(&src).map_err(|e| ProbeError::io(&src, e))?;
                        write_atomic(&out.join(&c.label).join(&f), &bytes)?;
                    }
                }
                entries.push(e);
                count += 1;
            }
        }
        entries.sort_by_key(|e| e.pair);
        write_atomic(&out.join(&c.label).join("list.jsonl"), list_jsonl(entries.into_iter()).as_bytes())?;
    }
    write_atomic(&out.join("manifest.json"), manifest_text.as_bytes())?;
    Ok(count)
}
