//! `sam3lab segment --ckpt FILE|FIXTURE_DIR --image FILE --prompt "TEXT" [--box cx,cy,w,h]…
//! [--neg-box cx,cy,w,h]… [--threshold T] [--config FILE] --out DIR`: segment every instance of a noun
//! phrase. Writes `DIR/detections.json` (boxes in original pixels, scores, presence logit and
//! probability, threshold, prompt, checkpoint and image sha256, model config) and `DIR/overlay.png`
//! (kept masks and boxes on the image), each atomically. Logic lives in `sam3lab_model::predict`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sam3lab_model::checkpoint::sha256_file;
use sam3lab_model::device::device_from_name;
use sam3lab_model::hooks::Hooks;
use sam3lab_model::predict::{Predictor, draw_overlay, png_bytes, write_atomic};
use sam3lab_model::preprocess::load_image;
use sam3lab_model::{BoxPrompt, GeometryPrompt, PointPrompt};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint: a .safetensors/.pt file, or a fixture directory (weights.safetensors + config.json).
    #[arg(long)]
    ckpt: PathBuf,
    /// Image file (PNG or JPEG).
    #[arg(long)]
    image: PathBuf,
    /// Noun phrase to segment, e.g. "a red car".
    #[arg(long)]
    prompt: String,
    /// Positive box prompt `cx,cy,w,h`, normalised to [0,1] of the image (repeatable).
    #[arg(long = "box", value_name = "CX,CY,W,H")]
    boxes: Vec<String>,
    /// Negative (exclusion) box prompt `cx,cy,w,h` (repeatable).
    #[arg(long = "neg-box", value_name = "CX,CY,W,H")]
    neg_boxes: Vec<String>,
    /// Point prompt `x,y` — not supported by SAM3's grounding path; given only to get a clear error.
    #[arg(long = "point", value_name = "X,Y", hide = true)]
    points: Vec<String>,
    /// Keep detections with σ(logit)·σ(presence) > this: the processor's keep rule (Sam3Processor's
    /// default 0.5; HF's processor and the post's Fig 1.1 line use 0.3). It is not the evaluator's rule
    /// (score ≥ 0.5, sam3lab_eval::SCORE_THRESHOLD) behind every neg_correct; detections.json records both.
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Model config JSON (a bare config or a fixture config.json); default: the fixture's, else SAM3's.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output directory (created).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Device: cpu (flex), wgpu, cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn parse_floats<const N: usize>(flag: &str, s: &str) -> anyhow::Result<[f32; N]> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if parts.len() != N {
        bail!(
            "--{flag} `{s}`: expected {N} comma-separated numbers, got {}",
            parts.len()
        );
    }
    let mut v = [0f32; N];
    for (slot, p) in v.iter_mut().zip(&parts) {
        *slot = p
            .parse()
            .with_context(|| format!("--{flag} `{s}`: `{p}` is not a number"))?;
    }
    Ok(v)
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    // Validate every input before the (slow) model load.
    let mut boxes = Vec::new();
    for (flag, list, positive) in [("box", &args.boxes, true), ("neg-box", &args.neg_boxes, false)] {
        for s in list {
            let b = BoxPrompt {
                cxcywh: parse_floats::<4>(flag, s)?,
                positive,
            };
            b.validate().with_context(|| format!("--{flag} `{s}`"))?;
            boxes.push(b);
        }
    }
    let points: Vec<PointPrompt> = args
        .points
        .iter()
        .map(|s| {
            Ok(PointPrompt {
                xy: parse_floats::<2>("point", s)?,
                positive: true,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    GeometryPrompt {
        boxes: boxes.clone(),
        points,
    }
    .validate()?;
    if !(0.0..=1.0).contains(&args.threshold) {
        bail!("--threshold {} is not in [0, 1]", args.threshold);
    }
    if args.prompt.trim().is_empty() {
        bail!("--prompt is empty: give a noun phrase such as \"a red car\"");
    }
    super::check_out_dir("--out", &args.out)?;
    let img = load_image(&args.image)?;
    let image_sha = sha256_file(&args.image)?;

    let device = device_from_name(&args.device)?;
    let p = Predictor::load(&args.ckpt, args.config.as_deref(), &device)?;
    let info = p.info.as_ref().expect("loaded from a checkpoint");
    let encoded = p.encode_image(&img, &mut Hooks::none());
    let text = p.encode_prompt(&args.prompt, &mut Hooks::none())?;
    let out = p.ground(&encoded, &text, &boxes, &mut Hooks::none())?;
    let dets = sam3lab_model::postprocess(&out, encoded.image_hw, args.threshold)?;

    let overlay = draw_overlay(&img, &dets);
    let overlay_path = args.out.join("overlay.png");
    write_atomic(&overlay_path, &png_bytes(&overlay)?)?;

    let report = json!({
        "sam3lab_version": env!("CARGO_PKG_VERSION"),
        "prompt": args.prompt,
        "prompt_truncated": text.truncated,
        "prompt_token_ids": text.ids,
        "boxes": boxes,
        "image": {
            "path": args.image.display().to_string(),
            "sha256": image_sha,
            "height": encoded.image_hw.0,
            "width": encoded.image_hw.1,
        },
        "checkpoint": { "path": info.path.display().to_string(), "sha256": info.sha256 },
        "config": info.config,
        "threshold": dets.threshold,
        "keep_rule": "score > threshold (the processor's rule; neg_correct elsewhere uses the evaluator's score >= eval_threshold)",
        "eval_threshold": sam3lab_eval::SCORE_THRESHOLD,
        "presence_logit": dets.presence_logit,
        "presence_prob": dets.presence_prob,
        "num_queries": out.scores.dims()[1],
        "box_format": "xyxy, original image pixels",
        "detections": dets.detections,
        "overlay": "overlay.png",
    });
    let json_path = args.out.join("detections.json");
    write_atomic(&json_path, (serde_json::to_string_pretty(&report)? + "\n").as_bytes())?;
    println!(
        "{}: {} detection(s) above {} (presence {:.4}); wrote {} and {}",
        super::shorten_prompt(&args.prompt),
        dets.detections.len(),
        args.threshold,
        dets.presence_prob,
        display(&json_path),
        display(&overlay_path)
    );
    for d in &dets.detections {
        let [x0, y0, x1, y1] = d.box_xyxy;
        println!(
            "  query {:3}  score {:.4}  box [{x0:.1}, {y0:.1}, {x1:.1}, {y1:.1}]  mask {} px",
            d.query, d.score, d.mask_area
        );
    }
    Ok(0)
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
