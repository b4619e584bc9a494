//! Loading checkpoints for probes and running one (image, prompt) forward with hooks.
//!
//! Image features are computed once per (image, checkpoint) and prompts once per (prompt,
//! checkpoint); a hooked forward re-encodes the image (or the prompt) only when one of its hook
//! points lives in the image (or text) encoder.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use image::RgbImage;
use sam3lab_hooks::{HookPattern, HookRegistry};
use sam3lab_model::GroundingOutput;
use sam3lab_model::predict::Predictor;

use crate::{RunError, Result};
use crate::inputs::is_label;
use crate::manifest::{CheckpointRecord, Manifest, file_record};

/// A checkpoint argument with its label or role.
#[derive(Clone, Debug)]
pub struct CkptSpec {
    pub label: String,
    pub path: PathBuf,
}

impl CkptSpec {
    pub fn new(label: &str, path: impl Into<PathBuf>) -> Self {
        Self { label: label.to_string(), path: path.into() }
    }

    /// Parse `LABEL=PATH` (the label must match `[A-Za-z0-9_.@+-]+`; `recovery@1200` marks step 1200
    /// of run `recovery`).
    pub fn parse_labeled(arg: &str) -> Result<Self> {
        match arg.split_once('=') {
            Some((l, p)) if is_label(l) && !p.is_empty() => Ok(Self::new(l, p)),
            Some((l, _)) if !is_label(l) => {
                Err(RunError::Usage(format!("checkpoint label `{l}` in `{arg}` must match [A-Za-z0-9_.@+-]+")))
            }
            _ => Err(RunError::Usage(format!("`{arg}` must be LABEL=CKPT (e.g. recovery@1200=ckpts/step1200.safetensors)"))),
        }
    }
}

/// A loaded checkpoint: the predictor, its identity and its hook registry.
pub struct Loaded {
    pub label: String,
    pub predictor: Predictor,
    pub record: CheckpointRecord,
    pub registry: HookRegistry,
    pub config: serde_json::Value,
}

/// Load a checkpoint (file or fixture directory) with an optional config override.
pub fn load(spec: &CkptSpec, config: Option<&Path>, device: &Device) -> Result<Loaded> {
    let predictor = Predictor::load(&spec.path, config, device)?;
    Ok(load_from_predictor(spec.clone(), predictor))
}

/// Wrap a predictor loaded from `spec` (its load info gives the identity).
pub fn load_from_predictor(spec: CkptSpec, predictor: Predictor) -> Loaded {
    let info = predictor.info.as_ref().expect("Predictor::load records its source");
    let record = CheckpointRecord {
        label: spec.label.clone(),
        path: spec.path.display().to_string(),
        weights: info.path.display().to_string(),
        sha256: info.sha256.clone(),
    };
    let config_json = serde_json::to_value(&info.config).expect("config serialises");
    let registry = sam3lab_model::hook_registry(&predictor.model.config);
    Loaded { label: spec.label, predictor, record, registry, config: config_json }
}

/// Every checkpoint of one probe must share the model config (activations are compared shape for shape).
pub fn check_same_config(models: &[&Loaded]) -> Result<()> {
    if let Some(first) = models.first() {
        for m in &models[1..] {
            if m.config != first.config {
                return Err(RunError::Usage(format!(
                    "checkpoints `{}` ({}) and `{}` ({}) have different model configs; a probe compares checkpoints of one architecture",
                    first.label, first.record.path, m.label, m.record.path
                )));
            }
        }
    }
    Ok(())
}

/// Fill a manifest's config, config file and checkpoints from loaded models.
pub fn describe(manifest: &mut Manifest, models: &[&Loaded], config: Option<&Path>) -> Result<()> {
    manifest.config = models.first().map(|m| m.config.clone()).unwrap_or_default();
    manifest.config_file = config.map(file_record).transpose()?;
    manifest.checkpoints = models.iter().map(|m| m.record.clone()).collect();
    Ok(())
}

/// Expand hook names / patterns against a registry (in forward order per pattern, duplicates dropped).
pub fn resolve_points(registry: &HookRegistry, patterns: &[String]) -> Result<Vec<String>> {
    if patterns.is_empty() {
        return Err(RunError::Usage("no hook points given".into()));
    }
    let mut out: Vec<String> = Vec::new();
    for p in patterns {
        let pat: HookPattern = p.parse()?;
        for hit in registry.expand(&pat)? {
            let s = hit.as_str().to_string();
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// Split a comma-separated list argument (`a,b , c`) into its non-empty parts.
pub fn split_list(args: &[String]) -> Vec<String> {
    args.iter().flat_map(|a| a.split(',')).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// Is this hook point computed by the image encoder (trunk + neck)?
pub fn is_image_point(p: &str) -> bool {
    sam3lab_model::predict::is_image_point(p)
}

/// Is this hook point computed by the text encoder?
pub fn is_text_point(p: &str) -> bool {
    sam3lab_model::predict::is_text_point(p)
}

/// Which encoders a hook spec must run through (the model's one definition).
pub use sam3lab_model::predict::Stages;

/// Per-checkpoint cache of encoded prompts (the model's, `sam3lab_model::runs`).
pub use sam3lab_model::runs::TextCache;

/// What a forward decided, as the post reads it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    pub presence_logit: f32,
    /// σ(presence_logit), the gate.
    pub presence_sigma: f64,
    /// Queries the evaluator keeps: score ≥ [`sam3lab_eval::SCORE_THRESHOLD`] (0.5, Meta's
    /// `CGF1Eval`). A pair is *refused* when this is 0.
    pub kept: usize,
    pub max_score: f32,
    /// Every query's score σ(pred_logit)·σ(presence).
    #[serde(skip)]
    pub scores: Vec<f32>,
}

impl Outcome {
    /// The decision read off a presence logit and the per-query scores (keep rule:
    /// [`sam3lab_eval::is_kept`]).
    pub fn from_scores(presence_logit: f32, scores: Vec<f32>) -> Outcome {
        let kept = sam3lab_eval::kept_count(scores.iter().map(|&s| s as f64));
        let max_score = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        Outcome { presence_logit, presence_sigma: sigmoid(presence_logit as f64), kept, max_score, scores }
    }

    /// The scores as the evaluator reads them.
    pub fn scores_f64(&self) -> impl Iterator<Item = f64> + '_ {
        self.scores.iter().map(|&s| s as f64)
    }
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Read the decision off a batch-1 output (see [`Outcome::from_scores`]).
pub fn outcome(out: &GroundingOutput) -> Outcome {
    let scores = host(out.scores.clone());
    let presence_logit = host(out.presence_logit.clone())[0];
    Outcome::from_scores(presence_logit, scores)
}

/// `neg_correct` over negative pairs' outcomes: [`sam3lab_eval::neg_correct`], the evaluator's
/// definition (share with no query scoring ≥ 0.5); `None` without pairs.
pub fn neg_correct<'a>(negatives: impl IntoIterator<Item = &'a Outcome>) -> Option<f64> {
    sam3lab_eval::neg_correct(negatives.into_iter().map(Outcome::scores_f64))
}

/// Positive recall over positive pairs' outcomes: [`sam3lab_eval::pos_recall`] (share with at least
/// one query scoring ≥ 0.5); `None` without pairs.
pub fn pos_recall<'a>(positives: impl IntoIterator<Item = &'a Outcome>) -> Option<f64> {
    sam3lab_eval::pos_recall(positives.into_iter().map(Outcome::scores_f64))
}

/// The keep rule as recorded in manifests and result notes.
pub fn keep_rule() -> String {
    format!(
        "kept = queries with σ(pred_logit)·σ(presence_logit) >= {} (sam3lab_eval::SCORE_THRESHOLD, Meta's CGF1Eval); \
         neg_correct = negative pairs with 0 kept / negative pairs; pos_recall = positive pairs with >= 1 kept / positive pairs",
        sam3lab_eval::SCORE_THRESHOLD
    )
}

/// A tensor's values on the host.
pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 tensor data")
}

/// Load an image for a probe (clear error naming the file).
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    Ok(sam3lab_model::preprocess::load_image(path)?)
}
