//! `sam3lab eval`: SA-Co/Gold evaluation. `score` reproduces SAM3's cgF1 evaluator on a COCO
//! results file; `predict` writes such a file by running a checkpoint (the adapter is
//! `sam3lab_steering::predict::predict_to_file`, the resumable writer `sam3lab_eval::predict`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use sam3lab_eval::{IouType, ScoreOptions};
use sam3lab_model::device::device_from_name;
use sam3lab_steering::predict::{PredictOptions, predict_to_file};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: EvalCmd,
}

#[derive(clap::Subcommand)]
enum EvalCmd {
    /// Score a COCO results file with the cgF1 family, as SAM3's evaluator (cgf1_eval.py) does.
    Score(ScoreArgs),
    /// Run a checkpoint over every (image, noun phrase) entry and write COCO results (resumable);
    /// --hook applies a training-free intervention (steering, ablation, patching), --subsample N
    /// --seed S runs a fixed seeded subsample.
    Predict(PredictArgs),
    /// Each concept's oracle ceiling: for every ground-truth instance the best IoU any query's mask
    /// reaches (scores ignored), averaged per noun phrase; with the refusal and detection rates of
    /// the training engine's evaluation (world v2's base criterion B5 reads it per narrow part).
    Oracle(OracleArgs),
}

#[derive(clap::Args)]
struct OracleArgs {
    /// SAM3 checkpoint: a .safetensors/.pt file, or a fixture directory.
    #[arg(long)]
    ckpt: PathBuf,
    /// Model config JSON (default: the fixture's, else SAM3's).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Ground truth (SA-Co/Gold / COCO JSON).
    #[arg(long, value_name = "GT.json")]
    gt: PathBuf,
    /// Folder the entries' file_name paths are relative to (default: the GT file's folder).
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// Pairs per forward.
    #[arg(long, default_value_t = 25)]
    batch: usize,
    /// Write the JSON result here (atomically).
    #[arg(long, value_name = "FILE.json")]
    out: PathBuf,
    /// Device: cpu (flex), wgpu, cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
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
    /// Keep predictions with score >= this (also the threshold of neg_correct). The reference evaluator
    /// uses 0.5 (sam3lab_eval::SCORE_THRESHOLD, also what probe patch/steer use); other values depart from it.
    #[arg(long, default_value_t = sam3lab_eval::SCORE_THRESHOLD)]
    score_threshold: f64,
    /// Write the flat JSON result here (atomically).
    #[arg(long, value_name = "FILE.json")]
    out: Option<PathBuf>,
    /// Score only N instance-exhaustive entries chosen with --seed from the first GT (the same ones
    /// `eval predict --subsample N --seed S` runs); other entries and their predictions are left out.
    #[arg(long, value_name = "N")]
    subsample: Option<usize>,
    /// Seed of --subsample.
    #[arg(long, default_value_t = 0, requires = "subsample")]
    seed: u64,
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
    /// A training-free intervention applied during the forward (repeatable, in order):
    /// zero:PATTERN, scale:PATTERN=S, add:PATTERN=FILE.safetensors[#KEY][@ALPHA] (steering) or
    /// patch:PATTERN=CKPT (the points' values from CKPT's forward on the same entry).
    #[arg(long = "hook", value_name = "SPEC")]
    hooks: Vec<String>,
    /// Run only N instance-exhaustive entries, chosen with --seed (the same N every time for the same
    /// GT, N and seed; the post's sweep: 2000 per subset, seed 0). Score with the same --subsample/--seed.
    #[arg(long, value_name = "N")]
    subsample: Option<usize>,
    /// Seed of --subsample.
    #[arg(long, default_value_t = 0, requires = "subsample")]
    seed: u64,
    /// Run only shard K of N (every N-th image, each with all its phrases): launch the N commands
    /// anywhere (a Slurm array, `xargs -P`, one per GPU), then `sam3lab merge --out F SHARDS…`.
    #[arg(long, value_name = "K/N")]
    shard: Option<sam3lab_eval::shard::Shard>,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match &args.cmd {
        EvalCmd::Score(a) => a.out.as_deref().map_or(Ok(()), |o| super::check_out_file("--out", o))?,
        EvalCmd::Predict(a) => super::check_out_file("--out", &a.out)?,
        EvalCmd::Oracle(a) => super::check_out_file("--out", &a.out)?,
    }
    match args.cmd {
        EvalCmd::Score(a) => score(a),
        EvalCmd::Predict(a) => predict(a),
        EvalCmd::Oracle(a) => oracle(a),
    }
}

fn oracle(a: OracleArgs) -> anyhow::Result<u8> {
    let device = device_from_name(&a.device)?;
    let (model, info) = sam3lab_model::Sam3::load(&a.ckpt, a.config.as_deref(), &device).with_context(|| format!("--ckpt {}", a.ckpt.display()))?;
    let mut spec = serde_json::json!({ "gt": a.gt });
    if let Some(i) = &a.images {
        spec["images"] = serde_json::json!(i);
    }
    let spec: sam3lab_train::recipe::StreamSpec = serde_json::from_value(spec)?;
    let mask = model.config.image_size;
    let set = sam3lab_train::data::load_stream("gt", &spec, mask).with_context(|| format!("--gt {}", a.gt.display()))?;
    let eval: sam3lab_train::evaluate::EvalSpec = serde_json::from_value(serde_json::json!({ "gt": a.gt, "every": 1, "batch": a.batch.max(1) }))?;
    let mut cache = sam3lab_train::data::ImageCache::default();
    let (row, by) = sam3lab_train::evaluate::evaluate_detailed(&model, &set, &eval, &mut cache, 0, &device)?;
    let per = sam3lab_train::evaluate::mean_by_phrase(&by);
    let counts = |p: &str| by.iter().filter(|(q, _)| q == p).count();
    let per_phrase: Vec<serde_json::Value> = per
        .iter()
        .map(|(p, v)| serde_json::json!({ "phrase": p, "best_query_iou": v, "instances": counts(p) }))
        .collect();
    let out = serde_json::json!({
        "checkpoint": { "path": info.path, "sha256": info.sha256 },
        "gt": a.gt,
        "rule": "per ground-truth instance: the largest IoU of any query's mask (logit > 0, upsampled to the input) with it, scores ignored; averaged per noun phrase",
        "eval": row,
        "per_phrase": per_phrase,
    });
    sam3lab_weights::write_atomic(&a.out, format!("{}\n", serde_json::to_string_pretty(&out)?).as_bytes())?;
    let w = per.iter().map(|(p, _)| p.chars().count()).max().unwrap_or(0).min(30);
    for (p, v) in &per {
        println!("{:<w$} {v:.3}  ({} instances)", super::shorten_cell(p), counts(p));
    }
    println!("wrote {}", a.out.display());
    Ok(0)
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
    if a.subsample == Some(0) {
        anyhow::bail!("--subsample must be at least 1");
    }
    let gts: Vec<&Path> = a.gt.iter().map(|p| p.as_path()).collect();
    let mut subsampled = None;
    let (report, gt_ids, pred_id) = match a.subsample {
        None => sam3lab_eval::score_files(&gts, &a.pred, &opts)?,
        Some(n) => {
            let sub = sam3lab_eval::Subsample { n, seed: a.seed };
            let (report, ids, pred, r) = sam3lab_eval::subsample::score_files(&gts, &a.pred, &opts, &sub)?;
            println!(
                "subsample: {} of {} instance-exhaustive entries of {} (n {n}, seed {}); {} predictions outside it left out",
                r.chosen,
                r.candidates,
                a.gt[0].display(),
                a.seed,
                r.dropped_predictions
            );
            subsampled = Some((sub, r));
            (report, ids, pred)
        }
    };
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", sam3lab_eval::format_table(&report));
    if let Some(out) = &a.out {
        let mut json = sam3lab_eval::report_json(&report, &gt_ids, &pred_id);
        if let Some((sub, r)) = &subsampled {
            // One more key at the end of the flat object: which entries were scored.
            let extra = serde_json::json!({"n": sub.n, "seed": sub.seed, "chosen": r.chosen, "candidates": r.candidates,
                "dropped_predictions": r.dropped_predictions});
            if let Some(body) = json.strip_suffix("\n}\n") {
                json = format!("{body},\n  \"subsample\": {extra}\n}}\n");
            }
        }
        sam3lab_eval::write_atomic(out, json.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(0)
}

fn predict(a: PredictArgs) -> anyhow::Result<u8> {
    let opts = PredictOptions {
        threshold: a.threshold,
        only_exhaustive: a.only_exhaustive,
        hooks: a.hooks,
        subsample: a.subsample.map(|n| sam3lab_eval::Subsample { n, seed: a.seed }),
        device: device_from_name(&a.device)?,
        shard: a.shard,
    };
    // A bar on stderr (drawn only when stderr is a terminal), counted in entries.
    let bar = crate::progress::Bar(indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr()));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} entries (eta {eta})")
            .expect("valid template"),
    );
    let summary = predict_to_file(&a.ckpt, a.config.as_deref(), &a.gt, &a.images, &a.out, &opts, &bar)?;
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
