//! `sam3lab bench backbone`: the backbone forward (trunk + neck, and the text encoder) of a fixture
//! (default: fixture A) on one CPU thread, median over iterations in ms.
//!
//! Baselines measured in the same run: (1) a 256³ f32 matmul (machine speed) — the backbone's
//! analytic FLOP count divided by its time, as a fraction of that matmul rate, says how close the
//! forward runs to plain GEMM speed; (2) the same forward with every hook captured (`**`, which
//! forces the explicit per-head attention path) — the plain/hooked ratio is the saving of the fused
//! path and the price of capturing everything.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use sam3lab_model::Sam3Config;
use sam3lab_model::backbone::Backbone;
use sam3lab_model::checkpoint::load_into;
use sam3lab_model::device::device_from_name;
use sam3lab_model::hooks::Hooks;
use sam3lab_model::params::param_shapes;
use sam3lab_model::parity::Fixture;

use crate::util::{FixtureRun, fixture_inputs, gib, matmul_gflops, median, memory, set_threads, sync};

pub struct BackboneArgs {
    pub run: FixtureRun,
    /// Instead of the fixture: the full-size backbone (`Sam3Config::sam3()`, random weights, a
    /// 1008×1008 input), one timed forward, no capture-all baseline.
    pub full_size: bool,
}

/// Multiply-add FLOPs (×2) of the backbone forward: linears, convolutions and attention matmuls.
pub fn backbone_flops(cfg: &Sam3Config) -> f64 {
    let v = &cfg.vit;
    let g = cfg.grid();
    let n = (g * g) as f64;
    let c = v.embed_dim as f64;
    let hidden = cfg.vit_mlp_hidden() as f64;
    let mut f = 2.0 * n * c * (3 * v.patch_size * v.patch_size) as f64; // patch embed
    let last = *v.global_att_blocks.last().unwrap_or(&0);
    for i in 0..=last {
        f += 2.0 * n * c * (3.0 * c + c + 2.0 * hidden); // qkv, proj, fc1, fc2
        let (windows, tokens) = if v.global_att_blocks.contains(&i) {
            (1.0, n)
        } else {
            let nw = g.div_ceil(v.window_size) as f64;
            (nw * nw, (v.window_size * v.window_size) as f64)
        };
        f += windows * 4.0 * tokens * tokens * c; // QKᵀ and AV over all heads
    }
    // neck (4×: two ConvT + 1×1 + 3×3 at 4g; 2×: ConvT + 1×1 + 3×3 at 2g; 1×: 1×1 + 3×3 at g)
    let d = cfg.d_model as f64;
    let (n2, n4) = (4.0 * n, 16.0 * n);
    f += 2.0 * n2 * c * (c / 2.0) + 2.0 * n4 * (c / 2.0) * (c / 4.0) + 2.0 * n4 * (c / 4.0) * d + 2.0 * n4 * d * d * 9.0;
    f += 2.0 * n2 * c * (c / 2.0) + 2.0 * n2 * (c / 2.0) * d + 2.0 * n2 * d * d * 9.0;
    f += 2.0 * n * c * d + 2.0 * n * d * d * 9.0;
    // text
    let t = &cfg.text;
    let (l, w) = (t.context_length as f64, t.width as f64);
    f += t.layers as f64 * (2.0 * l * w * (4.0 * w + 2.0 * cfg.text_mlp_hidden() as f64) + 4.0 * l * l * w);
    f += 2.0 * l * w * d;
    f
}

pub fn run_backbone(a: BackboneArgs, ui: &dyn crate::Ui) -> anyhow::Result<u8> {
    set_threads(a.run.threads);
    let device = device_from_name("cpu")?;
    if a.full_size {
        return run_full_size(&a, &device, ui);
    }
    let fx = Fixture::load(&a.run.fixture)?;
    let cfg = fx.config.clone();
    let mut model = Backbone::new(&cfg, &device);
    let weights = a.run.fixture.join("weights.safetensors");
    load_into(&mut model, &weights, &param_shapes(&cfg), "backbone.")?;
    let (pixels, ids) = fixture_inputs(&fx, &device)?;
    let gflops = matmul_gflops(&device);

    let run = |hooked: bool| -> anyhow::Result<(f64, f64, f64)> {
        let (mut tot, mut img, mut txt) = (vec![], vec![], vec![]);
        for it in 0..a.run.warmup + a.run.iters {
            let mut hooks = if hooked { Hooks::capture(&["**"])? } else { Hooks::none() };
            let s0 = Instant::now();
            let v = model.forward_image(pixels.clone(), &mut hooks);
            sync(&v.fpn[0]);
            let s1 = Instant::now();
            let t = model.forward_text(ids.clone(), &mut hooks);
            sync(&t.features);
            let s2 = Instant::now();
            if it >= a.run.warmup {
                tot.push((s2 - s0).as_secs_f64() * 1e3);
                img.push((s1 - s0).as_secs_f64() * 1e3);
                txt.push((s2 - s1).as_secs_f64() * 1e3);
            }
        }
        Ok((median(&mut tot), median(&mut img), median(&mut txt)))
    };
    let (ms, ms_img, ms_txt) = run(false)?;
    let (ms_hooked, _, _) = run(true)?;
    let flops = backbone_flops(&cfg);
    let achieved = flops / (ms * 1e-3) / 1e9;
    println!(
        "bench backbone: {} ({}x{} image, ViT {}x{} blocks, text {} layers), {} thread(s), {} iterations",
        a.run.fixture.display(),
        cfg.image_size,
        cfg.image_size,
        cfg.vit.depth,
        cfg.vit.embed_dim,
        cfg.text.layers,
        a.run.threads,
        a.run.iters
    );
    println!("  backbone forward: median {ms:.3} ms (trunk+neck {ms_img:.3} ms, text {ms_txt:.3} ms)");
    println!(
        "  baseline 256³ f32 matmul {gflops:.1} GFLOP/s; backbone {:.1} MFLOP → {achieved:.2} GFLOP/s = {:.3} of the matmul rate",
        flops / 1e6,
        achieved / gflops
    );
    println!("  baseline capture-all forward (explicit per-head attention): {ms_hooked:.3} ms; plain/hooked = {:.3}", ms / ms_hooked);
    Ok(0)
}

fn run_full_size(a: &BackboneArgs, device: &Device, ui: &dyn crate::Ui) -> anyhow::Result<u8> {
    let cfg = Sam3Config::sam3();
    let gflops = matmul_gflops(device);
    let s = cfg.image_size;
    let t = Instant::now();
    let model = Backbone::new(&cfg, device);
    let t_init = t.elapsed().as_secs_f64();
    let pixels = Tensor::<4>::random([1, 3, s, s], burn::tensor::Distribution::Uniform(-1.0, 1.0), device);
    let (ids, _) = sam3lab_model::tokenizer::Tokenizer::clip().encode("a red cat", cfg.text.context_length);
    let ids = Tensor::<2, Int>::from_data(
        TensorData::new(ids.iter().map(|&v| v as i64).collect::<Vec<_>>(), [1, cfg.text.context_length]),
        device,
    );
    let pb = ui.spinner("full-size backbone forward (1008×1008)");
    let mut none = Hooks::none();
    let s0 = Instant::now();
    let v = model.forward_image(pixels, &mut none);
    sync(&v.fpn[0]);
    let s1 = Instant::now();
    let tx = model.forward_text(ids, &mut none);
    sync(&tx.features);
    let s2 = Instant::now();
    pb.finish();
    let (hwm, rss) = memory();
    let (hwm, rss) = (gib(hwm), gib(rss));
    let secs = (s2 - s0).as_secs_f64();
    let flops = backbone_flops(&cfg);
    println!("bench backbone --full-size: Sam3Config::sam3() backbone, random weights, 1×3×{s}×{s}, {} thread(s)", a.run.threads);
    println!("  init {t_init:.1} s; trunk+neck {:.1} s, text {:.2} s; total {secs:.1} s", (s1 - s0).as_secs_f64(), (s2 - s1).as_secs_f64());
    println!(
        "  baseline 256³ f32 matmul {gflops:.1} GFLOP/s; backbone {:.0} GFLOP → {:.1} GFLOP/s = {:.3} of the matmul rate",
        flops / 1e9,
        flops / secs / 1e9,
        flops / secs / 1e9 / gflops
    );
    println!("  peak RSS (VmHWM) {hwm:.2} GiB, RSS now {rss:.2} GiB");
    Ok(0)
}
