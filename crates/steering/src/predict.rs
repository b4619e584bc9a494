//! The model-to-evaluator adapter: run a SAM3 checkpoint over every (image, noun phrase) entry of a
//! SA-Co/Gold ground truth and write SAM3's COCO results file (resumable, via
//! [`sam3lab_eval::predict`]), optionally under training-free interventions ([`crate::intervention`]).
//! `sam3lab eval predict` is a thin wrapper over [`predict_to_file`]; anything else (a recipe, a
//! test) can call it in-process.

use std::path::Path;

use anyhow::{Context, bail};
use burn::prelude::Device;
use sam3lab_eval::image::GrayImage;
use sam3lab_eval::{Detection, PredictConfig, PredictSummary, Subsample};
use sam3lab_model::postprocess;
use sam3lab_model::predict::{Predictor, Stages};
use sam3lab_probes::model::{self as runner_model, CkptSpec, Loaded, TextCache};
use sam3lab_probes::sweep::ImageRuns;
use sam3lab_util::progress::Progress;

use crate::intervention::Intervention;

/// How [`predict_to_file`] runs.
#[derive(Clone, Debug)]
pub struct PredictOptions {
    /// Write detections with score above this, in `[0, 1)` (SAM3's eval writer uses 0.3; scoring
    /// keeps >= 0.5).
    pub threshold: f64,
    /// Skip entries that are not instance-exhaustive (the scorer ignores them).
    pub only_exhaustive: bool,
    /// Training-free interventions, `--hook` specs applied in order (see [`crate::intervention`]).
    pub hooks: Vec<String>,
    /// Run only this seeded subsample of the instance-exhaustive entries (`n` >= 1).
    pub subsample: Option<Subsample>,
    pub device: Device,
    /// Run only this shard of the images (`--shard K/N`; merge the shards with `sam3lab merge`).
    pub shard: Option<sam3lab_eval::shard::Shard>,
}

impl Default for PredictOptions {
    fn default() -> Self {
        Self { threshold: 0.3, only_exhaustive: false, hooks: Vec::new(), subsample: None, device: Device::flex(), shard: None }
    }
}

/// Run checkpoint `ckpt` (model config `config`, default the fixture's, else SAM3's) over the
/// entries of `gt` (images relative to `images`) and write COCO results to `out` (progress in
/// `OUT.partial.jsonl` until done, provenance in [`sam3lab_eval::predict::meta_path`]).
pub fn predict_to_file(
    ckpt: &Path,
    config: Option<&Path>,
    gt: &Path,
    images: &Path,
    out: &Path,
    opts: &PredictOptions,
    progress: &dyn Progress,
) -> anyhow::Result<PredictSummary> {
    for (flag, p) in [("--ckpt", ckpt), ("--gt", gt), ("--images", images)] {
        if !p.exists() {
            bail!("{flag} {}: no such file or directory", p.display());
        }
    }
    if !(0.0..1.0).contains(&opts.threshold) {
        bail!("--threshold must be in [0, 1), got {}", opts.threshold);
    }
    if opts.subsample.is_some_and(|s| s.n == 0) {
        bail!("--subsample must be at least 1");
    }
    let device = &opts.device;
    let target = runner_model::load(&CkptSpec::new("target", ckpt), config, device)?;
    let info = target.predictor.info.as_ref().expect("loaded from a checkpoint");
    let config_json = serde_json::to_string(&info.config)?;
    let intervention = Intervention::build(&opts.hooks, &target.registry, &target.config, config, device)?;
    // What must stay the same for a resume to be valid: weights, model config and interventions.
    let mut identity = format!(
        "{} sha256:{} config_sha256:{}",
        info.path.display(),
        info.sha256,
        sam3lab_eval::output::sha256_hex(config_json.as_bytes())
    );
    let mut extra_meta = Vec::new();
    if !intervention.is_empty() {
        identity.push_str(&format!(" hooks:{}", intervention.description));
        extra_meta.push(("intervention".to_string(), intervention.description.clone()));
    }
    let cfg = PredictConfig {
        gt_path: gt.to_path_buf(),
        images_dir: images.to_path_buf(),
        out: out.to_path_buf(),
        threshold: opts.threshold,
        model_identity: identity,
        only_exhaustive: opts.only_exhaustive,
        subsample: opts.subsample,
        extra_meta,
        shard: opts.shard,
    };
    let threshold = opts.threshold as f32;
    // The runner's loop over [sources…, target]: each image encoded once per model (under the
    // image-encoder edits and captures where there are any), each noun phrase once per model.
    let mut models: Vec<&Loaded> = intervention.sources().iter().collect();
    models.push(&target);
    let t = models.len() - 1;
    let predictors: Vec<&Predictor> = models.iter().map(|m| &m.predictor).collect();
    let mut texts: Vec<TextCache> = models.iter().map(|_| TextCache::default()).collect();
    let summary = sam3lab_eval::predict(&cfg, progress, |img, phrases| {
        let mut runs = ImageRuns::new(&predictors, img, &mut texts);
        let image_caches = intervention.encode_sources(&mut runs)?;
        if intervention.stages.image {
            runs.encode(t, intervention.spec(&image_caches, None)?)?;
        }
        let (h, w) = (img.height() as usize, img.width() as usize);
        let mut out = Vec::with_capacity(phrases.len());
        for phrase in phrases {
            let caches = intervention.run_sources(&mut runs, phrase)?;
            let spec = intervention.spec(&image_caches, Some(&caches))?;
            let stages = Stages { image: false, text: intervention.stages.text };
            let (grounded, _) = runs.run(t, phrase, spec, stages)?;
            let dets = postprocess(&grounded, (h, w), threshold)?;
            out.push(dets.detections.into_iter().map(|d| to_detection(d, h, w)).collect::<anyhow::Result<Vec<_>>>()?);
        }
        Ok(out)
    })?;
    Ok(summary)
}

/// A model detection in the writer's form: box as SAM3's eval writer stores it (xywh normalised
/// by the image size), mask at the original size.
fn to_detection(d: sam3lab_model::Detection, h: usize, w: usize) -> anyhow::Result<Detection> {
    let [x0, y0, x1, y1] = d.box_xyxy.map(f64::from);
    let (wf, hf) = (w as f64, h as f64);
    let bits: Vec<u8> = d.mask.data.iter().map(|&b| b as u8).collect();
    let mask = GrayImage::from_raw(d.mask.width as u32, d.mask.height as u32, bits)
        .context("model mask has the wrong number of pixels")?;
    Ok(Detection { score: d.score as f64, mask, bbox: Some([x0 / wf, y0 / hf, (x1 - x0) / wf, (y1 - y0) / hf]) })
}
