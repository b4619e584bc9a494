//! `sam3lab bench forward` and `sam3lab bench full`: whole-model forward timings.
//!
//! - `forward`: the whole forward of a fixture (default: the shipped fixture A) on one CPU thread,
//!   median over iterations, per stage (trunk+neck, text, heads), as a ratio to the reference's time
//!   on this machine class (11.2 ms, PyTorch CPU, one thread, measured 2026-12-05).
//! - `full`: one forward of the FULL-size model (`Sam3Config::sam3()`, random weights, a 1008×1008
//!   input, 2 threads): seconds per stage and peak RSS (`VmHWM`), as ratios to the reference's 36.9 s
//!   and 4.70 GiB (measured 2026-12-05).
//!
//! With `--reference-python PATH` both run `benches/reference/forward.py` / `full.py` under that
//! interpreter in the same invocation, alternating with ours, and print both sides' min/median per
//! stage (image, text, grounding) and the ratio (see [`crate::reference`]); without it the ratio line
//! names the recorded number it compares against.
//!
//! Both also time a fixed 256³ f32 matmul in the same run (machine-speed baseline), so numbers from
//! different machines can be put side by side.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use sam3lab_model::hooks::Hooks;
use sam3lab_model::{Sam3, Sam3Config};

use crate::reference::{RefArgs, compare, recorded_line};
use crate::util::{FixtureRun, cpu_seconds, gib, load_fixture_inputs, materialize, matmul_gflops, median, memory, random_image, set_threads, sync};

/// The stages both sides report: image (trunk + neck), text, grounding (the heads).
pub const STAGES: [&str; 3] = ["image", "text", "grounding"];

/// Where the default recorded numbers come from.
pub const FORWARD_RECORD_MS: f64 = 11.2;
const FORWARD_RECORD: &str = "PyTorch 2.15 + Meta's sam3 (99d02f28) CPU forward of fixture A, 1 thread, median of 20, on \
    this machine class (2 vCPU AMD EPYC); measured with `bench forward --reference-python` on 2026-12-05 (docs/benchmarks.md)";
pub const FULL_RECORD_S: f64 = 36.9;
const FULL_RECORD: &str = "PyTorch 2.15 + Meta's sam3 (99d02f28) CPU forward, random weights, 1008², 2 threads, on this \
    machine class (2 vCPU AMD EPYC); measured with `bench full --reference-python` on 2026-12-05 (docs/benchmarks.md)";
pub const FULL_RECORD_GIB: f64 = 4.70;

/// The provenance of a recorded reference number: the default's, or "given on the command line".
fn provenance(value: f64, default: f64, default_provenance: &'static str, flag: &str) -> String {
    if value == default { default_provenance.to_string() } else { format!("given with {flag}") }
}

pub struct ForwardArgs {
    pub run: FixtureRun,
    /// A recorded PyTorch time for the same forward (ms), used when --reference-python is not given.
    pub reference_ms: f64,
    pub reference: RefArgs,
}

pub struct FullArgs {
    /// CPU threads.
    pub threads: usize,
    /// A recorded PyTorch time for one forward (s), used when --reference-python is not given.
    pub reference_s: f64,
    /// A recorded PyTorch peak resident memory (GiB).
    pub reference_gib: f64,
    /// Seed of the random input image.
    pub seed: u64,
    /// Also time each head stage separately (a second heads pass).
    pub profile_heads: bool,
    pub reference: RefArgs,
}

/// One forward of `model` on `(pixels, ids)`: (image, text, grounding) ms.
pub fn forward_stages(model: &Sam3, pixels: &Tensor<4>, ids: &Tensor<2, Int>) -> anyhow::Result<[f64; 3]> {
    let mut none = Hooks::none();
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
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    Ok([ms(s0, s1), ms(s1, s2), ms(s2, s3)])
}

pub fn run_forward(a: ForwardArgs) -> anyhow::Result<u8> {
    set_threads(a.run.threads);
    let device = Device::flex();
    let (pixels, ids) = load_fixture_inputs(&a.run.fixture, &device)?;
    let (model, info) = Sam3::load(&a.run.fixture, None, &device)?;
    let gflops = matmul_gflops(&device);
    let (mut tot, mut t_img, mut t_txt, mut t_heads) = (vec![], vec![], vec![], vec![]);
    for it in 0..a.run.warmup + a.run.iters {
        let [i, t, h] = forward_stages(&model, &pixels, &ids)?;
        if it >= a.run.warmup {
            tot.push(i + t + h);
            t_img.push(i);
            t_txt.push(t);
            t_heads.push(h);
        }
    }
    let ms = median(&mut tot);
    println!(
        "bench forward: {} (weights sha256 {}…), {} thread(s), {} iterations",
        a.run.fixture.display(),
        &info.sha256[..12],
        a.run.threads,
        a.run.iters
    );
    println!("  machine baseline: 256³ f32 matmul {gflops:.1} GFLOP/s");
    println!(
        "  stages (median ms): trunk+neck {:.2}, text {:.2}, heads {:.2}",
        median(&mut t_img),
        median(&mut t_txt),
        median(&mut t_heads)
    );
    println!(
        "  whole forward: median {ms:.2} ms (min {:.2})",
        tot.first().copied().unwrap_or(f64::NAN)
    );
    let script_args = vec![
        "--fixture".to_string(),
        a.run.fixture.display().to_string(),
        "--threads".to_string(),
        a.run.threads.to_string(),
        "--warmup".to_string(),
        a.run.warmup.to_string(),
    ];
    let ours = || forward_stages(&model, &pixels, &ids).map(|s| s.to_vec());
    if compare(&a.reference, "forward.py", &script_args, a.run.iters.min(20), &STAGES, ours)?.is_none() {
        let prov = provenance(a.reference_ms, FORWARD_RECORD_MS, FORWARD_RECORD, "--reference-ms");
        println!("{}", recorded_line(ms, a.reference_ms, "ms", &prov));
    }
    Ok(0)
}

pub fn run_full(a: FullArgs, ui: &dyn crate::Ui) -> anyhow::Result<u8> {
    set_threads(a.threads);
    let device = Device::flex();
    let cfg = Sam3Config::sam3();
    let gflops = matmul_gflops(&device);
    let s = cfg.image_size;

    let pb = ui.spinner("initialising the full-size model (random weights)");
    let t = Instant::now();
    let model = Sam3::new(&cfg, &device);
    materialize(&model); // else the stages below would time the lazy random initialisation
    let t_init = t.elapsed().as_secs_f64();
    pb.finish();
    let (_, rss_model) = memory();

    let pixels = Tensor::<4>::from_data(TensorData::new(random_image(a.seed, s), [1, 3, s, s]), &device);
    let ids = crate::util::prompt_ids("a red cat", cfg.text.context_length, &device)?;

    let mut none = Hooks::none();
    let pb = ui.spinner("trunk + neck (1008×1008)");
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let img = model.encode_image(pixels.clone(), &mut none);
    sync(&img.fpn[0]);
    let t1 = Instant::now();
    pb.set_message("text encoder");
    let txt = model.encode_text(ids.clone(), &mut none);
    sync(&txt.feats);
    let t2 = Instant::now();
    pb.set_message("heads (geometry, fusion, decoder, scoring, masks)");
    let out = model.ground(&img, &txt, &[], &mut none)?;
    sync(&out.scores);
    sync(&out.pred_masks);
    let t3 = Instant::now();
    pb.finish();
    let cpu = cpu_seconds().zip(cpu0).map(|(a, b)| a - b);
    let (hwm, _) = memory();
    let profile = if a.profile_heads {
        Some(profile_heads(&model, &img, &txt))
    } else {
        None
    };
    drop((img, txt));

    let secs = (t3 - t0).as_secs_f64();
    let peak = gib(hwm);
    let finite = out
        .scores
        .clone()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map(|v| v.iter().all(|x| x.is_finite()))
        .unwrap_or(false);
    println!(
        "bench full: Sam3Config::sam3() ({} params), random weights, 1×3×{s}×{s}, {} thread(s)",
        count_params(&model),
        a.threads
    );
    println!("  machine baseline: 256³ f32 matmul {gflops:.1} GFLOP/s");
    println!("  init {t_init:.1} s; RSS after init {:.2} GiB", gib(rss_model));
    println!(
        "  stages: trunk+neck {:.1} s, text {:.2} s, heads {:.1} s; outputs finite: {finite}",
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
        (t3 - t2).as_secs_f64()
    );
    println!("  forward {secs:.1} s");
    let flops = crate::flops::reference("full")?;
    let gemm = crate::flops::large_gemm_gflops(&device);
    let ms = |x: Instant, y: Instant| (y - x).as_secs_f64() * 1e3;
    let our_ms = [ms(t0, t1), ms(t1, t2), ms(t2, t3)];
    println!(
        "  arithmetic (PyTorch's FlopCounterMode count of this forward, data/fixtures/flops-reference.json): image {:.0} GFLOP, text {:.1}, grounding {:.0}; this machine's large-GEMM rate (1024³ f32 matmul, this run) {gemm:.1} GFLOP/s",
        flops.image / 1e9,
        flops.text / 1e9,
        flops.grounding / 1e9
    );
    println!("{}", crate::flops::achieved_line("ours", &flops.stages(), &our_ms, gemm));
    if a.reference.reference_python.is_none() {
        let prov = provenance(a.reference_s, FULL_RECORD_S, FULL_RECORD, "--reference-s");
        println!("{}", recorded_line(secs, a.reference_s, "s", &prov));
    }
    if let Some(c) = cpu {
        println!(
            "  CPU time of the forward {c:.1} s = {:.2} cores busy on average",
            c / secs
        );
        if a.threads > 1 && c / secs < 0.75 * a.threads as f64 {
            println!(
                "  note: fewer than {} cores were busy: the machine is shared, or burn-flex was built without its \
                 `rayon` feature (the workspace's burn features decide; then every op runs on one thread)",
                a.threads
            );
        }
    }
    let prov = provenance(a.reference_gib, FULL_RECORD_GIB, FULL_RECORD, "--reference-gib");
    println!(
        "  peak RSS (VmHWM) {peak:.2} GiB vs a recorded {:.2} GiB ({prov}; not this run): ratio {:.3}",
        a.reference_gib,
        peak / a.reference_gib
    );
    if let Some(p) = profile {
        let total: f64 = p.iter().map(|(_, t)| t).sum();
        println!(
            "  heads profile (second pass, s): {}",
            p.iter()
                .map(|(k, t)| format!("{k} {t:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!("  heads profile total {total:.2} s");
    }
    let script_args = vec!["--full".to_string(), "--threads".to_string(), a.threads.to_string(), "--seed".to_string(), a.seed.to_string()];
    // The forward timed above is our first repetition; later ones run afresh.
    let mut first = Some(our_ms.to_vec());
    let ours = || match first.take() {
        Some(f) => Ok(f),
        None => forward_stages(&model, &pixels, &ids).map(|s| s.to_vec()),
    };
    if let Some(c) = compare(&a.reference, "full.py", &script_args, 1, &STAGES, ours)? {
        let medians: Vec<f64> = (0..STAGES.len()).map(|k| c.stat(Some(k)).1.1).collect();
        println!("{}", crate::flops::achieved_line("PyTorch (median of this run)", &flops.stages(), &medians, gemm));
    }
    Ok(if finite { 0 } else { 1 })
}

/// The heads pipeline of `Sam3::ground_geometry` stage by stage (text-only prompt), with timings.
fn profile_heads(
    model: &Sam3,
    img: &sam3lab_model::ImageFeatures,
    txt: &sam3lab_model::TextFeatures,
) -> Vec<(String, f64)> {
    use burn::tensor::activation::relu;
    use burn::tensor::module::interpolate;
    use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
    let cfg = &model.config;
    let mut h = Hooks::none();
    let mut out = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &str, out: &mut Vec<(String, f64)>| {
        out.push((name.to_string(), clock.elapsed().as_secs_f64()));
        clock = Instant::now();
    };
    let [b, d, hh, ww] = img.fpn[2].dims();
    let x = img.fpn[2].clone().reshape([b, d, hh * ww]).swap_dims(1, 2);
    let pos = img.pos[2]
        .clone()
        .expand([b, d, hh, ww])
        .reshape([b, d, hh * ww])
        .swap_dims(1, 2);
    let (geo, gm) = model
        .geometry_encoder
        .forward(
            &sam3lab_model::GeometryPrompt::default(),
            &x,
            &pos,
            (hh, ww),
            cfg,
            sam3lab_model::nn::DropRate::OFF,
            &mut h,
        )
        .expect("geometry");
    sync(&geo);
    lap("geometry", &mut out);
    let prompt = Tensor::cat(vec![txt.feats.clone(), geo], 1);
    let pm = Tensor::cat(vec![txt.padding_mask.clone(), gm], 1);
    let off = sam3lab_model::nn::DropRate::OFF;
    let fusion = sam3lab_model::fusion::FusionInput { pos: &pos, prompt: &prompt, prompt_mask: &pm, dropout: off };
    let memory = model.transformer.encoder.forward(x, &fusion, &mut h);
    sync(&memory);
    lap("fusion", &mut out);
    let dec = model
        .transformer
        .decoder
        .forward(
            &sam3lab_model::decoder::DecoderInput { memory: &memory, pos: &pos, hw: (hh, ww), prompt: &prompt, prompt_mask: &pm, dac: false, dropout: off },
            &mut h,
        );
    sync(dec.hs.last().unwrap());
    lap("decoder", &mut out);
    let g = model.dot_prod_scoring.prompt_vector(&prompt, &pm, &mut h);
    sync(&model.dot_prod_scoring.logits(dec.hs.last().unwrap().clone(), &g));
    lap("scoring", &mut out);
    let seg = &model.segmentation_head;
    let ca = seg.cross_attend_prompt.forward(
        "p",
        sam3lab_model::nn::AttnInput::new(seg.cross_attn_norm.forward(memory.clone()), prompt.clone(), prompt.clone())
            .key_padding_mask(Some(pm.clone())),
        &mut h,
    );
    let mut prev = (memory + ca).swap_dims(1, 2).reshape([b, d, hh, ww]);
    sync(&prev);
    lap("seg.prompt_cross_attn", &mut out);
    for (k, feat) in img.fpn[..2].iter().rev().enumerate() {
        let [_, _, fh, fw] = feat.dims();
        let up = interpolate(
            prev,
            InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([fh, fw]),
        );
        let y = seg.pixel_decoder.conv_layers[k].forward(feat.clone() + up);
        sync(&y);
        lap(&format!("seg.conv3x3@{fh}"), &mut out);
        prev = relu(seg.pixel_decoder.norms[k].forward(y));
        sync(&prev);
        lap(&format!("seg.groupnorm@{fh}"), &mut out);
    }
    let inst = seg.instance_seg_head.forward(prev.clone());
    sync(&inst);
    lap("seg.instance_head", &mut out);
    let me = seg.mask_predictor.mask_embed.forward(dec.hs.last().unwrap().clone());
    let [_, _, h4, w4] = inst.dims();
    let q = me.dims()[1];
    sync(&me.matmul(inst.reshape([b, d, h4 * w4])).reshape([b, q, h4, w4]));
    lap("seg.masks", &mut out);
    sync(&seg.semantic_seg_head.forward(prev));
    lap("seg.semantic", &mut out);
    out
}

fn count_params(m: &Sam3) -> usize {
    burn::module::Module::num_params(m)
}
