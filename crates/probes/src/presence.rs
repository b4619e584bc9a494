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
//!
//! Sharded: [`run_shard`] measures the pairs of one shard's images and [`merge`] puts N shards back
//! together; both [`run`] and [`merge`] make their result through one `assemble` step from the
//! per-pair rows (the shard format: [`crate::shard`]), so merged shards give [`run`]'s bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use sam3lab_util::progress::Progress;
use sam3lab_results::{BarSeries, PresenceBars, SeriesRole};
use sam3lab_hooks::HookSpec;
use serde::{Deserialize, Serialize};

use crate::{ProbeError, Result};
use crate::inputs::{Label, LabelFilter, Pairs, pair_image_records, shard_pairs};
use crate::manifest::{Csv, Manifest, num, pairs_record, write_json};
use crate::model::{self, CkptSpec, host, sigmoid};
use crate::shard::{self, Measured, PairRow, Plan, PlanPair, Shard, ShardFile};
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
fn bar_labels(pairs: &[PlanPair]) -> Vec<String> {
    let with_image = |p: &PlanPair| format!("{} · {}", p.prompt, p.image);
    let mut out = Vec::with_capacity(pairs.len());
    for p in pairs {
        let same_prompt = pairs.iter().filter(|q| q.prompt == p.prompt).count();
        let same_image = pairs.iter().filter(|q| q.prompt == p.prompt && q.image == p.image).count();
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

/// The `probe` of a presence shard file.
pub const PROBE: &str = "presence";

/// One (checkpoint, pair) measurement: the presence logit's bits.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    /// The checkpoint's position among the run's checkpoints.
    pub checkpoint: usize,
    pub pair: usize,
    #[serde(with = "crate::shard::bits32")]
    pub presence_logit: f32,
}

impl PairRow for Row {
    fn pair(&self) -> usize {
        self.pair
    }
}

/// What the figure needs besides the measurements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// The series, in order.
    pub checkpoints: Vec<String>,
    /// The series drawn as the base, if any.
    pub base: Option<String>,
    #[serde(with = "crate::shard::bits")]
    pub threshold: f64,
    pub title: Option<String>,
}

/// A presence shard (`probe presence --shard K/N`'s `presence_shard.json`).
pub type PresenceShard = ShardFile<Context, Row>;

/// Run every checkpoint over the selected pairs.
pub fn run(req: &PresenceRequest, progress: &dyn Progress) -> Result<PresenceResult> {
    assemble(measure(req, None, progress)?)
}

/// Run shard `shard`: every checkpoint over the pairs of the images g ≡ K (mod N); [`merge`] of all
/// N shards gives what [`run`] gives.
pub fn run_shard(req: &PresenceRequest, shard: Shard, progress: &dyn Progress) -> Result<PresenceShard> {
    Ok(measure(req, Some(shard), progress)?.into_shard(PROBE, shard))
}

/// Put the shards (files or their directories, any order) of one run back together: what [`run`]
/// returns.
pub fn merge(shards: &[PathBuf]) -> Result<PresenceResult> {
    assemble(shard::merge_files(PROBE, shards)?)
}

fn measure(req: &PresenceRequest, shard: Option<Shard>, progress: &dyn Progress) -> Result<Measured<Context, Row>> {
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
    let mine = match shard {
        Some(s) => shard_pairs(&selected, s),
        None => selected.clone(),
    };
    progress.set_len((req.checkpoints.len() * mine.len()) as u64);

    let mut manifest = Manifest::new("sam3lab probe presence", req.seed);
    let mut rows: Vec<Row> = Vec::new();
    let mut config_json: Option<serde_json::Value> = None;
    for (c, spec) in req.checkpoints.iter().enumerate() {
        let m = model::load(spec, req.config.as_deref(), &req.device)?;
        match &config_json {
            None => config_json = Some(m.config.clone()),
            Some(cfg) if *cfg != m.config => {
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
        sweep::for_each_pair(&[&m], &mine, &[], progress, |runs| {
            let (out, _) = runs.run(0, HookSpec::new())?;
            rows.push(Row { checkpoint: c, pair: runs.pair.index, presence_logit: host(out.presence_logit)[0] });
            Ok(())
        })?;
    }
    let base = req.base.clone().or_else(|| labels.iter().find(|l| **l == "base").map(|l| l.to_string()));

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
    let context = Context {
        checkpoints: req.checkpoints.iter().map(|c| c.label.clone()).collect(),
        base,
        threshold: req.threshold,
        title: req.title.clone(),
    };
    Ok(Measured::new(manifest, context, Plan::of(&selected), rows))
}

/// The figure and table from the measurements: the one path by which [`run`] and [`merge`] make
/// their result.
fn assemble(m: Measured<Context, Row>) -> Result<PresenceResult> {
    let Measured { manifest, context: cx, plan, rows } = m;
    let logit: HashMap<(usize, usize), f32> = rows.iter().map(|r| ((r.checkpoint, r.pair), r.presence_logit)).collect();
    let mut values: Vec<PresenceValue> = Vec::new();
    let mut series: Vec<BarSeries> = Vec::new();
    for (c, label) in cx.checkpoints.iter().enumerate() {
        let mut row = Vec::with_capacity(plan.pairs.len());
        for p in &plan.pairs {
            let Some(&l) = logit.get(&(c, p.index)) else {
                return Err(ProbeError::Usage(format!("presence: no measurement of pair {} under checkpoint `{label}`", p.index)));
            };
            row.push(PresenceValue {
                checkpoint: label.clone(),
                pair: p.index,
                image: p.image.clone(),
                prompt: p.prompt.clone(),
                label: p.label,
                presence_logit: l,
                presence_sigma: sigmoid(l as f64),
            });
        }
        series.push(BarSeries { label: label.clone(), role: None, values: row.iter().map(|v| v.presence_sigma).collect() });
        values.extend(row);
    }
    // Roles: the base in parchment; with exactly one other series, that one in amber.
    if let Some(b) = &cx.base {
        for s in series.iter_mut() {
            s.role = if &s.label == b {
                Some(SeriesRole::Base)
            } else if cx.checkpoints.len() == 2 {
                Some(SeriesRole::Finetune)
            } else {
                None
            };
        }
    }
    let bars = PresenceBars {
        title: cx.title.clone(),
        prompts: bar_labels(&plan.pairs),
        series,
        threshold: Some(cx.threshold),
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
