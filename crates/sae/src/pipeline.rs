//! What the CLI runs: load `LABEL=SOURCE` sets, train + save, evaluate per checkpoint label.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;

use crate::acts::{ActivationSet, split_labeled};
use crate::error::{Result, SaeError};
use crate::io::{self, FORMAT, SaeMeta, SourceRecord};
use crate::metrics::{Metrics, evaluate};
use crate::model::Sae;
use crate::train::{TrainConfig, train};

/// An activation set and the checkpoint label it was given on the command line (if any).
#[derive(Clone, Debug)]
pub struct LabeledSet {
    pub label: Option<String>,
    pub set: ActivationSet,
}

impl LabeledSet {
    /// The key its metrics are filed under: the label, else the source path.
    pub fn key(&self) -> String {
        self.label.clone().unwrap_or_else(|| self.set.source.clone())
    }
}

/// Parse and load every `[LABEL=]SOURCE` argument. Labels must be unique.
pub fn load_sets(args: &[String], point: &str, feature_axis: Option<usize>, require_labels: bool) -> Result<Vec<LabeledSet>> {
    let mut out: Vec<LabeledSet> = Vec::new();
    for a in args {
        let (label, source) = split_labeled(a);
        if require_labels && label.is_none() {
            return Err(SaeError::Source { source_arg: a.clone(), why: "expected LABEL=SOURCE (e.g. lvis_replay=caches/replay/)".into() });
        }
        if let Some(l) = &label {
            if out.iter().any(|s| s.label.as_deref() == Some(l)) {
                return Err(SaeError::Label { label: l.clone(), why: "given twice; list both sources in one list file instead".into() });
            }
        }
        let set = ActivationSet::load(&source, point, feature_axis)?;
        out.push(LabeledSet { label, set });
    }
    if let Some(first) = out.first() {
        for s in &out[1..] {
            if s.set.rank != first.set.rank {
                return Err(SaeError::Data {
                    path: s.set.files[0].path.clone(),
                    point: point.into(),
                    why: format!(
                        "rank {} differs from rank {} of source `{}`; every source must capture the point with the same layout",
                        s.set.rank, first.set.rank, first.set.source
                    ),
                });
            }
            if s.set.d != first.set.d {
                return Err(SaeError::Width {
                    what: format!("`{}` vs `{}` at point {point}", s.set.source, first.set.source),
                    expected: first.set.d,
                    found: s.set.d,
                });
            }
        }
    }
    Ok(out)
}

/// Metrics of `sae` on each set (by [`LabeledSet::key`]) and on all of them together ("all",
/// only when there is more than one set).
pub fn evaluate_sets(sae: &Sae, sets: &[LabeledSet]) -> Result<BTreeMap<String, Metrics>> {
    let mut out = BTreeMap::new();
    for s in sets {
        check_width(sae, s)?;
        out.insert(s.key(), evaluate(sae, &s.set.rows, s.set.d));
    }
    if sets.len() > 1 {
        let all: Vec<f32> = sets.iter().flat_map(|s| s.set.rows.iter().copied()).collect();
        out.insert("all".into(), evaluate(sae, &all, sae.d_in()));
    }
    Ok(out)
}

pub fn check_width(sae: &Sae, s: &LabeledSet) -> Result<()> {
    if s.set.d != sae.d_in() {
        return Err(SaeError::Width { what: format!("source `{}` at point {} (the SAE reads d = {})", s.set.source, s.set.point, sae.d_in()), expected: sae.d_in(), found: s.set.d });
    }
    Ok(())
}

/// Train on the rows of every set (concatenated in argument order), evaluate, and save to `out`.
pub fn train_and_save(
    sets: &[LabeledSet],
    point: &str,
    feature_axis: Option<usize>,
    cfg: &TrainConfig,
    out: &Path,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<SaeMeta> {
    let d = sets.first().map(|s| s.set.d).unwrap_or(0);
    let rows: Vec<f32> = sets.iter().flat_map(|s| s.set.rows.iter().copied()).collect();
    let trained = train(&rows, d, cfg, progress)?;
    let sae = Sae::from_weights(&trained.weights, trained.activation, &Device::flex())?;
    let metrics = evaluate_sets(&sae, sets)?;
    let meta = SaeMeta {
        format: FORMAT.into(),
        sam3lab_version: env!("CARGO_PKG_VERSION").into(),
        d_in: d,
        width: trained.config.width,
        activation: trained.activation,
        point: point.into(),
        feature_axis,
        act_scale: trained.act_scale,
        // The configuration as run: every automatic setting (dead window, resampling, k_aux) concrete.
        train: Some(trained.config.clone()),
        effective_batch: Some(trained.effective_batch),
        sources: sets.iter().map(|s| SourceRecord::of(s.label.as_deref(), &s.set)).collect(),
        metrics,
        log: trained.log,
        weights_sha256: String::new(),
    };
    io::save(out, &trained.weights, &meta)
}
