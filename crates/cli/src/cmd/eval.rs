//! `sam3lab eval`: SA-Co/Gold evaluation. `score` reproduces SAM3's cgF1 evaluator on a COCO
//! results file; `predict` writes such a file by running a checkpoint (logic in `sam3lab-eval`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use sam3lab_eval::image::GrayImage;
use sam3lab_eval::{Detection, IouType, PredictConfig, ScoreOptions};
use sam3lab_model::device::device_from_name;
use sam3lab_model::hooks::Hooks;
use sam3lab_model::predict::Predictor;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: EvalCmd,
}

#[derive(clap::Subcommand)]
enum EvalCmd {
    /// Score a COCO results file with the cgF1 family, as SAM3's evaluator (cgf1_eval.py) does.
    Score(ScoreArgs),
    /// Run a checkpoint over every (image, noun phrase) entry and write COCO results (resumable).
    Predict(PredictArgs),
}

#[derive(clap::Args)]
struct ScoreArgs {
    /// Ground-truth file(s): `--gt A B C` or `--gt A --gt B` for several annotators (oracle: best per entry;
    /// the first one defines the entries).
    #[arg(long = "gt", required = true, num_args = 1.., value_name = "GT.json")]
    gt: Vec<PathBuf>,
    /// Predictions: a JSON list of {image_id, segmentation (RLE), bbox?, score}.
    #[arg(long, value_name = "PRED.json")]
    pred: PathBuf,
    /// IoU on masks (segm) or boxes (bbox).
    #[arg(long, default_value = "segm", value_parser = ["segm", "bbox"])]
    iou: String,
    /// Keep predictions with score >= this. The reference evaluator uses 0.5; other values depart from it.
    #[arg(long, default_value_t = 0.5)]
    score_threshold: f64,
    /// Write the flat JSON result here (atomically).
    #[arg(long, value_name = "FILE.json")]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct PredictArgs {
    /// SAM3 checkpoint: a .safetensors/.pt file, or a fixture directory.
    #[arg(long)]
    ckpt: PathBuf,
    /// Ground truth listing the (image, noun phrase) entries.
    #[arg(long, value_name = "GT.json")]
    gt: PathBuf,
    /// Folder the entries' file_name paths are relative to.
    #[arg(long, value_name = "DIR")]
    images: PathBuf,
    /// Output COCO results file (progress is kept in OUT.partial.jsonl until done).
    #[arg(long, value_name = "PRED.json")]
    out: PathBuf,
    /// Write detections with score above this (SAM3's eval writer uses 0.3; scoring keeps >= 0.5).
    #[arg(long, default_value_t = 0.3)]
    threshold: f64,
    /// Skip entries that are not instance-exhaustive (the scorer ignores them).
    #[arg(long)]
    only_exhaustive: bool,
    /// Model config JSON (default: the fixture's, else SAM3's).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Device: cpu (flex), wgpu, cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match args.cmd {
        EvalCmd::Score(a) => score(a),
        EvalCmd::Predict(a) => predict(a),
    }
}

fn score(a: ScoreArgs) -> anyhow::Result<u8> {
    if !(0.0..=1.0).contains(&a.score_threshold) {
        anyhow::bail!(
            "--score-threshold must be in [0, 1], got {}",
            a.score_threshold
        );
    }
    let iou_type: IouType = a.iou.parse().map_err(anyhow::Error::msg)?;
    let opts = ScoreOptions {
        iou_type,
        score_threshold: a.score_threshold,
    };
    let gts: Vec<&Path> = a.gt.iter().map(|p| p.as_path()).collect();
    let (report, gt_ids, pred_id) = sam3lab_eval::score_files(&gts, &a.pred, &opts)?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", sam3lab_eval::format_table(&report));
    if let Some(out) = &a.out {
        let json = sam3lab_eval::report_json(&report, &gt_ids, &pred_id);
        sam3lab_eval::write_atomic(out, json.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(0)
}

fn predict(a: PredictArgs) -> anyhow::Result<u8> {
    for (flag, p) in [
        ("--ckpt", &a.ckpt),
        ("--gt", &a.gt),
        ("--images", &a.images),
    ] {
        if !p.exists() {
            anyhow::bail!("{flag} {}: no such file or directory", p.display());
        }
    }
    if !(0.0..1.0).contains(&a.threshold) {
        anyhow::bail!("--threshold must be in [0, 1), got {}", a.threshold);
    }
    let device = device_from_name(&a.device)?;
    let p = Predictor::load(&a.ckpt, a.config.as_deref(), &device)?;
    let info = p.info.as_ref().expect("loaded from a checkpoint");
    let config_json = serde_json::to_string(&info.config)?;
    // What must stay the same for a resume to be valid: weights and model config.
    let identity = format!(
        "{} sha256:{} config_sha256:{}",
        info.path.display(),
        info.sha256,
        sam3lab_eval::output::sha256_hex(config_json.as_bytes())
    );
    let cfg = PredictConfig {
        gt_path: a.gt.clone(),
        images_dir: a.images.clone(),
        out: a.out.clone(),
        threshold: a.threshold,
        model_identity: identity,
        only_exhaustive: a.only_exhaustive,
        progress: true,
    };
    let threshold = a.threshold as f32;
    let summary = sam3lab_eval::predict(&cfg, |img, phrases| {
        // Trunk + neck once per image; text encoder + heads per noun phrase.
        let encoded = p.encode_image(img, &mut Hooks::none());
        let (h, w) = encoded.image_hw;
        let mut out = Vec::with_capacity(phrases.len());
        for phrase in phrases {
            let dets = p.segment(&encoded, phrase, &[], threshold, &mut Hooks::none())?;
            out.push(
                dets.detections
                    .into_iter()
                    .map(|d| to_detection(d, h, w))
                    .collect::<anyhow::Result<Vec<_>>>()?,
            );
        }
        Ok(out)
    })?;
    println!(
        "{} entries on {} images ({} resumed, {} images run now): {} predictions above {}; wrote {} and {}",
        summary.entries,
        summary.images,
        summary.resumed_entries,
        summary.model_calls,
        summary.predictions,
        a.threshold,
        a.out.display(),
        sam3lab_eval::predict::meta_path(&a.out).display()
    );
    Ok(0)
}

/// A model detection in the writer's form: box as SAM3's eval writer stores it (xywh normalised
/// by the image size), mask at the original size.
fn to_detection(d: sam3lab_model::Detection, h: usize, w: usize) -> anyhow::Result<Detection> {
    let [x0, y0, x1, y1] = d.box_xyxy.map(f64::from);
    let (wf, hf) = (w as f64, h as f64);
    let bits: Vec<u8> = d.mask.data.iter().map(|&b| b as u8).collect();
    let mask = GrayImage::from_raw(d.mask.width as u32, d.mask.height as u32, bits)
        .context("model mask has the wrong number of pixels")?;
    Ok(Detection {
        score: d.score as f64,
        mask,
        bbox: Some([x0 / wf, y0 / hf, (x1 - x0) / wf, (y1 - y0) / hf]),
    })
}
