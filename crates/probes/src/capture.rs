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
use serde::Serialize;

use crate::{ProbeError, Result};
use crate::inputs::{LabelFilter, Pairs, pair_image_records};
use crate::manifest::{Manifest, pairs_record, write_atomic, write_json};
use crate::model::{self, CkptSpec};
use crate::sweep;

pub struct CaptureRequest {
    pub checkpoints: Vec<CkptSpec>,
    pub config: Option<PathBuf>,
    pub pairs: Pairs,
    pub points: Vec<String>,
    pub label: LabelFilter,
    pub seed: u64,
    pub device: Device,
}

#[derive(Serialize)]
struct ListEntry<'a> {
    path: String,
    label: &'a str,
    pair: usize,
}

/// Capture every selected pair under every checkpoint into `out`; returns the manifest written.
pub fn run(req: &CaptureRequest, out: &Path, progress: &dyn Progress) -> Result<Manifest> {
    if req.checkpoints.is_empty() {
        return Err(ProbeError::Usage("give at least one --ckpt LABEL=CKPT".into()));
    }
    let selected = req.pairs.select(req.label)?;
    progress.set_len((selected.len() * req.checkpoints.len()) as u64);
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
        let mut list = String::new();
        let mut entries = Vec::new();
        // Each image is hashed once for the caches' identity.
        let mut identities: std::collections::HashMap<std::path::PathBuf, ImageIdentity> = std::collections::HashMap::new();
        sweep::for_each_pair(&[&m], &selected, &points, progress, |runs| {
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
            entries.push((pair.index, ListEntry { path: name, label: pair.label.as_str(), pair: pair.index }));
            Ok(())
        })?;
        entries.sort_by_key(|(i, _)| *i);
        for (_, e) in entries {
            list += &serde_json::to_string(&e).expect("list entry serialises");
            list.push('\n');
        }
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
    Ok(manifest)
}
