//! The presence gate, prompt by prompt (post §1, Fig 1.1): σ(presence_logit) — SAM3's
//! `presence_logit_dec.sigmoid()`, the scalar the image processor multiplies into every query's
//! score before its 0.3 confidence threshold — for several checkpoints on the same (image, prompt)
//! pairs, written as the figures crate's [`PresenceBars`] so `sam3lab figures --kind fig11` draws it.
//!
//! One bar group per selected pair, in pair-file order, labelled with its prompt (a prompt that
//! occurs on several images is labelled `prompt · image`); one series per checkpoint. The
//! threshold line is the processor's confidence threshold ([`PROCESSOR_THRESHOLD`] unless given).
//! Each image is encoded once per checkpoint and each prompt once per checkpoint; one model is
//! loaded at a time.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use sam3lab_util::progress::Progress;
use sam3lab_results::{BarSeries, PresenceBars, SeriesRole};
use sam3lab_hooks::HookSpec;
use serde::Serialize;

use crate::{ProbeError, Result};
use crate::inputs::{Label, LabelFilter, Pairs, pair_image_records};
use crate::manifest::{Csv, Manifest, num, pairs_record, write_json};
use crate::model::{self, CkptSpec, host, sigmoid};
use crate::sweep;

/// SAM3's image processor keeps a query when σ(logit)·σ(presence) > 0.3 (`confidence_threshold`
/// in its eval config): the dotted line of Fig 1.1.
pub const PROCESSOR_THRESHOLD: f64 = 0.3;

pub struct PresenceRequest {
    /// One series each, in this order (labels unique).
    pub checkpoints: Vec<CkptSpec>,
    pub config: Option<PathBuf>,
    pub pairs: Pairs,
    pub label: LabelFilter,
    /// The checkpoint drawn as the base (parchment); default: one labelled `base`, if any.
    pub base: Option<String>,
    /// The threshold line (default [`PROCESSOR_THRESHOLD`]).
    pub threshold: f64,
    pub title: Option<String>,
    pub seed: u64,
    pub device: Device,
}

/// One (checkpoint, pair) reading.
#[derive(Clone, Debug, Serialize)]
pub struct PresenceValue {
    pub checkpoint: String,
    pub pair: usize,
    pub image: String,
    pub prompt: String,
    pub label: Label,
    /// The final presence logit (`presence_logit`, SAM3's `presence_logit_dec`).
    pub presence_logit: f32,
    /// σ(presence_logit), computed in f64.
    pub presence_sigma: f64,
}

#[derive(Debug)]
pub struct PresenceResult {
    /// Fig 1.1's input (`presence.json`), manifest included.
    pub bars: PresenceBars,
    /// Checkpoint-major, pairs in bar order.
    pub values: Vec<PresenceValue>,
    pub manifest: Manifest,
}

/// Bar labels: the prompt, made unique with the image (and then the pair index) where needed.
fn bar_labels(pairs: &[&crate::inputs::Pair]) -> Vec<String> {
    let with_image = |p: &crate::inputs::Pair| format!("{} · {}", p.prompt, p.image_raw);
    let mut out = Vec::with_capacity(pairs.len());
    for &p in pairs {
        let same_prompt = pairs.iter().filter(|q| q.prompt == p.prompt).count();
        let same_image = pairs.iter().filter(|q| q.prompt == p.prompt && q.image_raw == p.image_raw).count();
        out.push(if same_prompt == 1 {
            p.prompt.clone()
        } else if same_image == 1 {
            with_image(p)
        } else {
            format!("{} #{}", with_image(p), p.index)
        });
    }
    out
}

/// Run every checkpoint over the selected pairs.
pub fn run(req: &PresenceRequest, progress: &dyn Progress) -> Result<PresenceResult> {
    if req.checkpoints.is_empty() {
        return Err(ProbeError::Usage("give at least one --ckpt LABEL=CKPT".into()));
    }
    let mut labels: Vec<&str> = Vec::new();
    for c in &req.checkpoints {
        if labels.contains(&c.label.as_str()) {
            return Err(ProbeError::Usage(format!("checkpoint label `{}` is given twice", c.label)));
        }
        labels.push(&c.label);
    }
    if let Some(b) = &req.base
        && !labels.contains(&b.as_str())
    {
        return Err(ProbeError::Usage(format!("--base `{b}` is not one of the --ckpt labels ({})", labels.join(", "))));
    }
    if !(0.0..=1.0).contains(&req.threshold) {
        return Err(ProbeError::Usage(format!("--threshold {} is not in [0, 1]", req.threshold)));
    }
    let selected = req.pairs.select(req.label)?;
    progress.set_len((req.checkpoints.len() * selected.len()) as u64);

    let mut manifest = Manifest::new("sam3lab probe presence", req.seed);
    let mut values: Vec<PresenceValue> = Vec::new();
    let mut series: Vec<BarSeries> = Vec::new();
    let mut config_json: Option<serde_json::Value> = None;
    for spec in &req.checkpoints {
        let m = model::load(spec, req.config.as_deref(), &req.device)?;
        match &config_json {
            None => config_json = Some(m.config.clone()),
            Some(c) if *c != m.config => {
                return Err(ProbeError::Usage(format!(
                    "checkpoint `{}` ({}) has a different model config than `{}`; the figure compares one architecture",
                    spec.label,
                    spec.path.display(),
                    req.checkpoints[0].label
                )));
            }
            Some(_) => {}
        }
        manifest.checkpoints.push(m.record.clone());
        let mut by_pair: Vec<Option<PresenceValue>> = vec![None; selected.len()];
        sweep::for_each_pair(&[&m], &selected, &[], progress, |runs| {
            let (out, _) = runs.run(0, HookSpec::new())?;
            let logit = host(out.presence_logit)[0];
            let pair = runs.pair;
            let slot = selected.iter().position(|p| p.index == pair.index).expect("selected pair");
            by_pair[slot] = Some(PresenceValue {
                checkpoint: spec.label.clone(),
                pair: pair.index,
                image: pair.image_raw.clone(),
                prompt: pair.prompt.clone(),
                label: pair.label,
                presence_logit: logit,
                presence_sigma: sigmoid(logit as f64),
            });
            Ok(())
        })?;
        let row: Vec<PresenceValue> = by_pair.into_iter().map(|v| v.expect("every pair run")).collect();
        series.push(BarSeries { label: spec.label.clone(), role: None, values: row.iter().map(|v| v.presence_sigma).collect() });
        values.extend(row);
    }
    // Roles: the base in parchment; with exactly one other series, that one in amber.
    let base = req.base.clone().or_else(|| labels.iter().find(|l| **l == "base").map(|l| l.to_string()));
    if let Some(b) = &base {
        for s in series.iter_mut() {
            s.role = if &s.label == b {
                Some(SeriesRole::Base)
            } else if req.checkpoints.len() == 2 {
                Some(SeriesRole::Finetune)
            } else {
                None
            };
        }
    }

    manifest.config = config_json.unwrap_or_default();
    manifest.config_file = req.config.as_deref().map(crate::manifest::file_record).transpose()?;
    manifest.points = vec!["presence_logit".into()];
    manifest.images = pair_image_records(&selected)?;
    manifest.pairs = Some(pairs_record(&req.pairs, selected.len()));
    manifest.option("label", req.label.as_str());
    manifest.option("threshold", req.threshold);
    manifest.option("base", &base);
    manifest.option("bars", selected.iter().map(|p| p.index).collect::<Vec<_>>());
    manifest.notes = vec![
        "value = σ(presence_logit) of the final decoder layer (SAM3's presence_logit_dec.sigmoid()), one per (checkpoint, pair); computed in f64 from the f32 logit".into(),
        "threshold = the line drawn: the image processor's confidence threshold (0.3 by default) on σ(logit)·σ(presence); a gate below it refuses every query on its own".into(),
        "bars follow the pair file's order (after the label filter); options.bars lists their pair indices".into(),
    ];
    let bars = PresenceBars {
        title: req.title.clone(),
        prompts: bar_labels(&selected),
        series,
        threshold: Some(req.threshold),
        manifest: serde_json::to_value(&manifest).expect("manifest serialises"),
    };
    bars.check().map_err(|e| ProbeError::Usage(format!("presence bars invalid: presence.json: {e}")))?;
    Ok(PresenceResult { bars, values, manifest })
}

/// Write `presence.json` (Fig 1.1's input), `presence.csv` and `manifest.json` into `out`.
pub fn write(out: &Path, r: &PresenceResult) -> Result<()> {
    write_json(&out.join("presence.json"), &r.bars)?;
    let mut csv = Csv::new(&["checkpoint", "pair", "image", "prompt", "label", "presence_logit", "presence_sigma"]);
    for v in &r.values {
        csv.row([
            v.checkpoint.clone(),
            v.pair.to_string(),
            v.image.clone(),
            v.prompt.clone(),
            v.label.as_str().to_string(),
            num(Some(v.presence_logit as f64)),
            num(Some(v.presence_sigma)),
        ]);
    }
    csv.write(&out.join("presence.csv"))?;
    write_json(&out.join("manifest.json"), &r.manifest)
}
