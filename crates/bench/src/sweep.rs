//! `sam3lab bench sweep`: the shape of every probe of the post — one image encoded once, then N noun
//! phrases grounded against it (text encoder + grounding per phrase). Prints the image time, the
//! per-prompt time (min / median over all prompts of all repetitions) and the total per repetition.
//!
//! With `--reference-python PATH` it runs `benches/reference/sweep.py` (the same loop in PyTorch:
//! `backbone.forward_image` once, then `backbone.forward_text` + `forward_grounding` per phrase)
//! alternating with ours, and prints both sides per stage (image, text = all prompts' text, grounding
//! = all prompts' grounding) and the ratio. Default: the shipped fixture (milliseconds); `--full`: the
//! full-size SAM3 with random weights at 1008² (minutes per repetition, ~4 GiB).

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::TensorData;
use sam3lab_model::hooks::Hooks;
use sam3lab_model::{Sam3, Sam3Config};

use crate::reference::{RefArgs, compare, fmt_ms, min_median};
use crate::util::{faster_or_slower, load_fixture_inputs, materialize, matmul_gflops, prompt_ids, random_image, set_threads, sync};

pub struct SweepArgs {
    /// Fixture directory whose weights and image are used.
    pub fixture: PathBuf,
    /// The full-size SAM3 (random weights, 1008²) instead of a fixture: minutes, ~4 GiB.
    pub full: bool,
    /// Noun phrases grounded per repetition.
    pub prompts: usize,
    /// Timed repetitions without --reference-python (default 5 on a fixture, 1 with --full); with
    /// it, --reps sets the alternating repetitions.
    pub iters: Option<usize>,
    /// Untimed repetitions first (default 1 on a fixture, 0 with --full).
    pub warmup: Option<usize>,
    /// CPU threads (default 1 on a fixture, 2 with --full).
    pub threads: Option<usize>,
    /// Seed of the random image (--full).
    pub seed: u64,
    pub reference: RefArgs,
}

/// The stages both sides report, summed over the repetition's prompts for text and grounding.
pub const STAGES: [&str; 3] = ["image", "text", "grounding"];

/// `n` distinct noun phrases (a fixed list of everyday concepts, then numbered variants).
pub fn phrases(n: usize) -> Vec<String> {
    const BASE: [&str; 16] = [
        "a cat", "a dog", "a red car", "a wrist watch", "a person", "a bicycle", "a wooden chair", "a coffee mug",
        "a tree", "a traffic light", "a laptop", "a yellow umbrella", "a bird", "a clock face", "a pair of shoes", "a bottle",
    ];
    (0..n).map(|i| if i < BASE.len() { BASE[i].to_string() } else { format!("{} {}", BASE[i % BASE.len()], i / BASE.len() + 1) }).collect()
}

/// One repetition: the image once, then every phrase (tokenize + text encoder, grounding).
/// Returns (image ms, per-prompt (text ms, grounding ms)).
fn sweep_once(model: &Sam3, pixels: &Tensor<4>, phrases: &[String], ctx: usize, device: &Device) -> anyhow::Result<(f64, Vec<(f64, f64)>)> {
    let mut none = Hooks::none();
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    let s0 = Instant::now();
    let img = model.encode_image(pixels.clone(), &mut none);
    sync(&img.fpn[0]);
    let image_ms = ms(s0, Instant::now());
    let mut per = Vec::with_capacity(phrases.len());
    for p in phrases {
        let s1 = Instant::now();
        let txt = model.encode_text(prompt_ids(p, ctx, device)?, &mut none);
        sync(&txt.feats);
        let s2 = Instant::now();
        let out = model.ground(&img, &txt, &[], &mut none)?;
        sync(&out.scores);
        sync(&out.pred_masks);
        per.push((ms(s1, s2), ms(s2, Instant::now())));
    }
    Ok((image_ms, per))
}

pub fn run(a: SweepArgs, ui: &dyn crate::Ui) -> anyhow::Result<u8> {
    anyhow::ensure!(a.prompts > 0, "--prompts must be at least 1");
    let threads = a.threads.unwrap_or(if a.full { 2 } else { 1 });
    let iters = a.iters.unwrap_or(if a.full { 1 } else { 5 }).max(1);
    let warmup = a.warmup.unwrap_or(if a.full { 0 } else { 1 });
    set_threads(threads);
    let device = Device::flex();
    let gflops = matmul_gflops(&device);
    let (model, pixels, what) = if a.full {
        let cfg = Sam3Config::sam3();
        let pb = ui.spinner("initialising the full-size model (random weights)");
        let model = Sam3::new(&cfg, &device);
        materialize(&model);
        pb.finish();
        let s = cfg.image_size;
        let pixels = Tensor::<4>::from_data(TensorData::new(random_image(a.seed, s), [1, 3, s, s]), &device);
        let what = format!("Sam3Config::sam3() ({} params), random weights, 1×3×{s}×{s}", burn::module::Module::num_params(&model));
        (model, pixels, what)
    } else {
        let (pixels, _) = load_fixture_inputs(&a.fixture, &device)?;
        let (model, info) = Sam3::load(&a.fixture, None, &device)?;
        let [_, _, h, w] = pixels.dims();
        (model, pixels, format!("{} (weights sha256 {}…), 1×3×{h}×{w}", a.fixture.display(), &info.sha256[..12]))
    };
    let ctx = model.config.text.context_length;
    let phrases = phrases(a.prompts);

    let pb = ui.spinner("sweep");
    for _ in 0..warmup {
        sweep_once(&model, &pixels, &phrases, ctx, &device)?;
    }
    let (mut image, mut per_prompt, mut text, mut ground, mut total) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..iters {
        let (i, per) = sweep_once(&model, &pixels, &phrases, ctx, &device)?;
        let (t, g): (f64, f64) = per.iter().fold((0.0, 0.0), |(t, g), (a, b)| (t + a, g + b));
        image.push(i);
        text.push(t);
        ground.push(g);
        total.push(i + t + g);
        per_prompt.extend(per.iter().map(|(a, b)| a + b));
    }
    pb.finish();
    let n = phrases.len();
    println!("bench sweep: {what}, {n} prompts, {threads} thread(s), {iters} repetition(s) after {warmup} warm-up");
    println!("  machine baseline: 256³ f32 matmul {gflops:.1} GFLOP/s");
    println!("  prompts: {}", phrases.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(", "));
    let mm = |v: &[f64]| {
        let (lo, med) = min_median(v);
        format!("min {} / median {}", fmt_ms(lo), fmt_ms(med))
    };
    println!("  image (encoded once): {}", mm(&image));
    println!("  per prompt (text + grounding), over {} prompt runs: {}", per_prompt.len(), mm(&per_prompt));
    println!("  all {n} prompts: text {}; grounding {}", mm(&text), mm(&ground));
    println!("  total (image + {n} prompts): {}", mm(&total));
    let (_, img_med) = min_median(&image);
    let (_, tot_med) = min_median(&total);
    println!(
        "  encoding once saves {:.1} % against {n} whole forwards (≈ {} by this run's medians)",
        100.0 * (1.0 - tot_med / (tot_med + (n as f64 - 1.0) * img_med)),
        fmt_ms(tot_med + (n as f64 - 1.0) * img_med)
    );

    let mut script_args = if a.full { vec!["--full".to_string(), "--seed".to_string(), a.seed.to_string()] } else { vec!["--fixture".to_string(), a.fixture.display().to_string()] };
    script_args.extend([
        "--threads".to_string(),
        threads.to_string(),
        "--warmup".to_string(),
        warmup.to_string(),
        "--prompts-json".to_string(),
        serde_json::to_string(&phrases)?,
    ]);
    let ours = || {
        let (i, per) = sweep_once(&model, &pixels, &phrases, ctx, &device)?;
        Ok(vec![i, per.iter().map(|p| p.0).sum(), per.iter().map(|p| p.1).sum()])
    };
    match compare(&a.reference, "sweep.py", &script_args, iters, &STAGES, ours)? {
        Some(c) => {
            // Per prompt: (text + grounding) of a repetition / N, min / median over the repetitions.
            let per = |rows: &[Vec<f64>]| min_median(&rows.iter().map(|r| (r[1] + r[2]) / n as f64).collect::<Vec<_>>());
            let ((omin, omed), (rmin, rmed)) = (per(&c.ours), per(&c.reference));
            println!(
                "    {:<12} {:>24} {:>24}   ours/PyTorch = {:.3} ({})",
                "per prompt",
                format!("{} / {}", fmt_ms(omin), fmt_ms(omed)),
                format!("{} / {}", fmt_ms(rmin), fmt_ms(rmed)),
                omed / rmed,
                faster_or_slower(omed, rmed)
            );
        }
        None => println!("  PyTorch: not measured (no --reference-python), and no recorded number exists for this sweep: no ratio"),
    }
    Ok(0)
}
