//! `sam3lab eval`: SA-Co/Gold evaluation. `score` reproduces SAM3's cgF1 evaluator on a COCO
//! results file; `predict` writes such a file by running a checkpoint (logic in `sam3lab-eval`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use sam3lab_eval::{IouType, ScoreOptions};

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
    /// Ground-truth file; repeat for several annotators (oracle: best per entry; first one defines the entries).
    #[arg(long = "gt", required = true, value_name = "GT.json")]
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
    /// SAM3 checkpoint.
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
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match args.cmd {
        EvalCmd::Score(a) => score(a),
        EvalCmd::Predict(a) => predict(a),
    }
}

fn score(a: ScoreArgs) -> anyhow::Result<u8> {
    if !(0.0..=1.0).contains(&a.score_threshold) {
        anyhow::bail!("--score-threshold must be in [0, 1], got {}", a.score_threshold);
    }
    let iou_type: IouType = a.iou.parse().map_err(anyhow::Error::msg)?;
    let opts = ScoreOptions { iou_type, score_threshold: a.score_threshold };
    let gts: Vec<&Path> = a.gt.iter().map(|p| p.as_path()).collect();
    let (report, gt_ids, pred_id) = sam3lab_eval::score_files(&gts, &a.pred, &opts)?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", sam3lab_eval::format_table(&report));
    if let Some(out) = &a.out {
        let json = sam3lab_eval::report_json(&report, &gt_ids, &pred_id);
        sam3lab_eval::write_atomic(out, json.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(0)
}

fn predict(a: PredictArgs) -> anyhow::Result<u8> {
    for (flag, p) in [("--ckpt", &a.ckpt), ("--gt", &a.gt), ("--images", &a.images)] {
        if !p.exists() {
            anyhow::bail!("{flag} {}: no such file or directory", p.display());
        }
    }
    if !(0.0..1.0).contains(&a.threshold) {
        anyhow::bail!("--threshold must be in [0, 1), got {}", a.threshold);
    }
    let _ = (&a.out, a.only_exhaustive);
    // The writer (`sam3lab_eval::predict`) is ready and tested with a fake model; it takes a closure
    // `(image, noun phrases) -> detections per phrase`. sam3lab-model does not yet expose a
    // checkpoint loader + grounding entry point to build that closure from.
    anyhow::bail!(
        "`sam3lab eval predict` needs the SAM3 model, which sam3lab-model does not expose yet \
         (a checkpoint loader and an image-encode + ground + postprocess entry point). \
         Predictions written by SAM3's own pipeline can be scored now with `sam3lab eval score`."
    )
}
