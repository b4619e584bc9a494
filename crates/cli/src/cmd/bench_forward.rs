//! `sam3lab bench forward` and `sam3lab bench full`: whole-model forward timings.
//!
//! - `forward`: the whole forward of a fixture (default: the shipped fixture A) on one CPU thread,
//!   median over iterations, per stage (trunk+neck, text, heads), as a ratio to the reference's time
//!   on this machine class (20.7 ms, PyTorch CPU, one thread).
//! - `full`: one forward of the FULL-size model (`Sam3Config::sam3()`, random weights, a 1008×1008
//!   input, 2 threads): seconds per stage and peak RSS (`VmHWM`), as ratios to the reference's 106 s
//!   and 4.67 GiB.
//!
//! Both also time a fixed 256³ f32 matmul in the same run (machine-speed baseline), so numbers from
//! different machines can be put side by side.

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use sam3lab_model::device::set_cpu_threads;
use sam3lab_model::hooks::Hooks;
use sam3lab_model::parity::Fixture;
use sam3lab_model::{Sam3, Sam3Config};

#[derive(clap::Args)]
pub struct ForwardArgs {
    /// Fixture directory whose weights and inputs are run.
    #[arg(long, default_value = "data/fixtures/sam3-tiny")]
    fixture: PathBuf,
    /// Timed iterations (after warm-up).
    #[arg(long, default_value_t = 50)]
    iters: usize,
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// CPU threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The reference's time for the same forward (ms).
    #[arg(long, default_value_t = 20.7)]
    reference_ms: f64,
}

#[derive(clap::Args)]
pub struct FullArgs {
    /// CPU threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The reference's time for one forward (s).
    #[arg(long, default_value_t = 106.0)]
    reference_s: f64,
    /// The reference's peak resident memory (GiB).
    #[arg(long, default_value_t = 4.67)]
    reference_gib: f64,
    /// Seed of the random input image.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// Force completion of pending work (flex is eager; this also covers lazy backends).
fn sync<const D: usize>(t: &Tensor<D>) {
    let _ = t.clone().slice([0..1]).into_data();
}

/// GFLOP/s of a 256³ f32 matmul on `device` (median of 20): the in-run machine baseline.
fn matmul_gflops(device: &Device) -> f64 {
    let n = 256;
    let a = Tensor::<2>::ones([n, n], device).mul_scalar(0.5);
    let b = Tensor::<2>::ones([n, n], device).mul_scalar(0.25);
    sync(&a.clone().matmul(b.clone()));
    let mut t: Vec<f64> = (0..20)
        .map(|_| {
            let s = Instant::now();
            sync(&a.clone().matmul(b.clone()));
            s.elapsed().as_secs_f64()
        })
        .collect();
    2.0 * (n * n * n) as f64 / median(&mut t) / 1e9
}

/// `(VmHWM, VmRSS)` of this process in bytes (Linux `/proc/self/status`).
pub fn memory() -> (Option<u64>, Option<u64>) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()).map(|kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn gib(b: Option<u64>) -> f64 {
    b.map(|b| b as f64 / (1u64 << 30) as f64).unwrap_or(f64::NAN)
}

pub fn run_forward(a: ForwardArgs) -> anyhow::Result<u8> {
    if !set_cpu_threads(a.threads) {
        eprintln!("warning: RAYON_NUM_THREADS is already set to something else; it wins over --threads {}", a.threads);
    }
    let device = Device::flex();
    let fx = Fixture::load(&a.fixture)?;
    let (model, info) = Sam3::load(&a.fixture, None, &device)?;
    let px = fx.input("pixel_values")?;
    let ids = fx.input("input_ids")?;
    let pixels = Tensor::<4>::from_data(TensorData::new(px.data.clone(), px.shape.clone()), &device);
    let ids = Tensor::<2, Int>::from_data(
        TensorData::new(ids.data.iter().map(|&v| v as i64).collect::<Vec<_>>(), ids.shape.clone()),
        &device,
    );
    let gflops = matmul_gflops(&device);
    let mut none = Hooks::none();
    let (mut tot, mut t_img, mut t_txt, mut t_heads) = (vec![], vec![], vec![], vec![]);
    for it in 0..a.warmup + a.iters {
        let s0 = Instant::now();
        let img = model.encode_image(pixels.clone(), &mut none);
        sync(&img.fpn[0]);
        let s1 = Instant::now();
        let txt = model.encode_text(ids.clone(), &mut none);
        sync(&txt.feats);
        let s2 = Instant::now();
        let out = model.ground(&img, &txt, &[], &mut none)?;
        sync(&out.scores);
        sync(&out.pred_masks);
        let s3 = Instant::now();
        if it >= a.warmup {
            tot.push((s3 - s0).as_secs_f64() * 1e3);
            t_img.push((s1 - s0).as_secs_f64() * 1e3);
            t_txt.push((s2 - s1).as_secs_f64() * 1e3);
            t_heads.push((s3 - s2).as_secs_f64() * 1e3);
        }
    }
    let ms = median(&mut tot);
    println!("bench forward: {} (weights sha256 {}…), {} thread(s), {} iterations", a.fixture.display(), &info.sha256[..12], a.threads, a.iters);
    println!("  machine baseline: 256³ f32 matmul {gflops:.1} GFLOP/s");
    println!(
        "  stages (median ms): trunk+neck {:.2}, text {:.2}, heads {:.2}",
        median(&mut t_img),
        median(&mut t_txt),
        median(&mut t_heads)
    );
    println!("  whole forward: median {ms:.2} ms (min {:.2})", tot.first().copied().unwrap_or(f64::NAN));
    println!(
        "  vs reference {:.1} ms: ratio ours/reference = {:.3} ({})",
        a.reference_ms,
        ms / a.reference_ms,
        if ms <= a.reference_ms { format!("{:.2}× faster", a.reference_ms / ms) } else { format!("{:.2}× slower", ms / a.reference_ms) }
    );
    Ok(0)
}

fn spinner(msg: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    pb
}

pub fn run_full(a: FullArgs) -> anyhow::Result<u8> {
    if !set_cpu_threads(a.threads) {
        eprintln!("warning: RAYON_NUM_THREADS is already set to something else; it wins over --threads {}", a.threads);
    }
    let device = Device::flex();
    let cfg = Sam3Config::sam3();
    let gflops = matmul_gflops(&device);
    let s = cfg.image_size;

    let pb = spinner("initialising the full-size model (random weights)");
    let t = Instant::now();
    let model = Sam3::new(&cfg, &device);
    let t_init = t.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let (_, rss_model) = memory();

    // Deterministic pseudo-random image in [-1, 1] (an LCG, so the bytes do not depend on burn's RNG).
    let mut state = a.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let pixels: Vec<f32> = (0..3 * s * s)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let pixels = Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, s, s]), &device);
    let ctx = cfg.text.context_length;
    let (ids, _) = sam3lab_model::predict::tokenize(sam3lab_model::tokenizer::Tokenizer::clip(), "a red cat", ctx)?;
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids.iter().map(|&v| v as i64).collect::<Vec<_>>(), [1, ctx]), &device);

    let mut none = Hooks::none();
    let pb = spinner("trunk + neck (1008×1008)");
    let t0 = Instant::now();
    let img = model.encode_image(pixels, &mut none);
    sync(&img.fpn[0]);
    let t1 = Instant::now();
    pb.set_message("text encoder");
    let txt = model.encode_text(ids, &mut none);
    sync(&txt.feats);
    let t2 = Instant::now();
    pb.set_message("heads (geometry, fusion, decoder, scoring, masks)");
    let out = model.ground(&img, &txt, &[], &mut none)?;
    sync(&out.scores);
    sync(&out.pred_masks);
    let t3 = Instant::now();
    pb.finish_and_clear();
    drop((img, txt));
    let (hwm, _) = memory();

    let secs = (t3 - t0).as_secs_f64();
    let peak = gib(hwm);
    let finite = out.scores.clone().into_data().convert::<f32>().try_to_vec::<f32>().map(|v| v.iter().all(|x| x.is_finite())).unwrap_or(false);
    println!("bench full: Sam3Config::sam3() ({} params), random weights, 1×3×{s}×{s}, {} thread(s)", count_params(&model), a.threads);
    println!("  machine baseline: 256³ f32 matmul {gflops:.1} GFLOP/s");
    println!("  init {t_init:.1} s; RSS after init {:.2} GiB", gib(rss_model));
    println!(
        "  stages: trunk+neck {:.1} s, text {:.2} s, heads {:.1} s; outputs finite: {finite}",
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        (t3 - t2).as_secs_f64()
    );
    println!(
        "  forward {secs:.1} s vs reference {:.0} s: ratio {:.3} ({})",
        a.reference_s,
        secs / a.reference_s,
        if secs <= a.reference_s { format!("{:.2}× faster", a.reference_s / secs) } else { format!("{:.2}× slower", secs / a.reference_s) }
    );
    println!(
        "  peak RSS (VmHWM) {peak:.2} GiB vs reference {:.2} GiB: ratio {:.3}",
        a.reference_gib,
        peak / a.reference_gib
    );
    Ok(if finite { 0 } else { 1 })
}

fn count_params(m: &Sam3) -> usize {
    burn::module::Module::num_params(m)
}
