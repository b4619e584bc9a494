//! `sam3lab bench train`: one training step (train-mode forward, Meta's matching and loss, backward,
//! AdamW) on the training fixture's batch, against the eval forward of the same batch measured in the
//! same run; `--full` adds one step of the full-size model at 1008², batch 1, trunk frozen (time and
//! peak memory). With `--reference-python PATH` it also runs `benches/reference/train_step.py` (Meta's
//! train-mode forward, matcher, loss, backward and AdamW on the same fixture) alternating with ours and
//! prints both sides per stage (forward, loss, backward = backward + AdamW step) and the ratio.

use std::path::PathBuf;
use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use sam3lab_hooks::Hooks;
use sam3lab_model::parity::Fixture;
use sam3lab_model::{GeometryPrompt, Sam3, Sam3Config};
use sam3lab_train::data::Batch;
use sam3lab_train::engine::forward;
use sam3lab_train::parity::fixture_batch;
use sam3lab_train::targets::{FindQuery, Instance, Targets};
use sam3lab_train::{LossConfig, compute_loss, params};

use crate::reference::{RefArgs, compare};
use crate::util::{gib, materialize, matmul_gflops, median, memory, set_threads};

/// PyTorch's step on the shipped training fixture's batch, as `bench train --reference-python` measured it.
const TRAIN_RECORD_MS: f64 = 85.6;
const TRAIN_RECORD: &str = "PyTorch 2.15 + Meta's sam3 (99d02f28) training step on the sam3-tiny-train batch (Sam3Image train mode, \
    Sam3LossWrapper, backward, AdamW; no activation checkpointing), 1 thread, median of 10, on this machine class (2 vCPU AMD \
    EPYC); measured with `bench train --reference-python` on 2026-12-05 (docs/benchmarks.md)";

/// The stages both sides report: train-mode forward, matching + loss, backward + AdamW step.
pub const STAGES: [&str; 3] = ["forward", "loss", "backward"];

pub struct TrainArgs {
    /// Training fixture whose weights and batch are used.
    pub fixture: PathBuf,
    pub iters: usize,
    pub warmup: usize,
    pub threads: usize,
    /// Also run one full-size step (SAM3 config, random weights, 1008², batch 1, trunk frozen):
    /// minutes on a CPU, several GiB.
    pub full: bool,
    /// With --full: burn's gradient checkpointing on (recompute memory-bound activations).
    pub checkpointing: bool,
    pub reference: RefArgs,
}

/// One step, timed per stage (ms): forward, matching + loss, backward + AdamW.
fn timed_step(model: Sam3, batch: &Batch, cfg: &LossConfig, optim: &mut burn::optim::ModuleOptimizer) -> anyhow::Result<(Sam3, [f64; 3])> {
    let s0 = Instant::now();
    let out = forward(&model, batch, &mut Hooks::none())?;
    let s1 = Instant::now();
    let loss = compute_loss(&out, &batch.targets, cfg).map_err(anyhow::Error::msg)?;
    let _ = loss.core.clone().into_data();
    let s2 = Instant::now();
    let grads = GradientsParams::from_grads(loss.core.backward(), &model);
    let model = optim.step(1e-4, model, grads);
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    Ok((model, [ms(s0, s1), ms(s1, s2), ms(s2, Instant::now())]))
}

fn step(model: Sam3, batch: &Batch, cfg: &LossConfig, optim: &mut burn::optim::ModuleOptimizer) -> anyhow::Result<Sam3> {
    let out = forward(&model, batch, &mut Hooks::none())?;
    let loss = compute_loss(&out, &batch.targets, cfg).map_err(anyhow::Error::msg)?;
    let grads = GradientsParams::from_grads(loss.core.backward(), &model);
    Ok(optim.step(1e-4, model, grads))
}

pub fn run(a: TrainArgs, ui: &dyn crate::Ui) -> anyhow::Result<u8> {
    set_threads(a.threads);
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let fx = Fixture::load(&a.fixture)?;
    let batch = fixture_batch(&fx, &ad)?;
    let loss_cfg = LossConfig::from_reference_json(fx.config_json.get("loss").unwrap_or(&serde_json::Value::Null)).map_err(anyhow::Error::msg)?;
    let gflops = matmul_gflops(&device);

    // Baseline: the eval-mode forward of the same batch (same images, phrases and queries).
    let (plain, _) = Sam3::load(&a.fixture, None, &device)?;
    let plain_batch = fixture_batch(&fx, &device)?;
    let mut fwd = vec![];
    for it in 0..a.warmup + a.iters {
        let s = Instant::now();
        let b = &plain_batch;
        let image = plain.encode_image(b.pixels.clone(), &mut Hooks::none()).select(&b.img_ids);
        let text = plain.encode_text(b.input_ids.clone(), &mut Hooks::none()).select(&b.text_ids);
        let o = plain.ground_geometry(&image, &text, &GeometryPrompt::default(), &mut Hooks::none())?;
        let _ = o.scores.into_data();
        if it >= a.warmup {
            fwd.push(s.elapsed().as_secs_f64() * 1e3);
        }
    }
    let (model, _) = Sam3::load(&a.fixture, None, &ad)?;
    let mut model = params::set_trainable(model, "", &|_| true).train();
    let mut optim = AdamWConfig::new().with_epsilon(1e-8).with_weight_decay(0.01).init();
    let mut st = vec![];
    for it in 0..a.warmup + a.iters {
        let s = Instant::now();
        model = step(model, &batch, &loss_cfg, &mut optim)?;
        if it >= a.warmup {
            st.push(s.elapsed().as_secs_f64() * 1e3);
        }
    }
    let (f, s) = (median(&mut fwd), median(&mut st));
    println!("bench train: {} ({} find queries), {} thread(s), matmul {gflops:.1} GFLOP/s", a.fixture.display(), batch.img_ids.len(), a.threads);
    println!("  eval forward of the batch (baseline, this run): {f:8.2} ms median of {}", a.iters);
    println!("  training step (fwd + match + loss + bwd + AdamW): {s:8.2} ms median of {}", a.iters);
    println!("  ratio step / forward: {:.2}x", s / f);
    let script_args = vec![
        "--fixture".to_string(),
        a.fixture.display().to_string(),
        "--threads".to_string(),
        a.threads.to_string(),
        "--warmup".to_string(),
        a.warmup.to_string(),
    ];
    let mut slot = Some(model);
    let ours = || {
        let (m, t) = timed_step(slot.take().expect("model"), &batch, &loss_cfg, &mut optim)?;
        slot = Some(m);
        Ok(t.to_vec())
    };
    if compare(&a.reference, "train_step.py", &script_args, a.iters.min(10), &STAGES, ours)?.is_none() {
        // Only the shipped training fixture was measured; another batch gets no ratio.
        let shipped = a.fixture.ends_with("sam3-tiny-train");
        if shipped {
            println!(
                "{}",
                crate::reference::recorded_line(s, TRAIN_RECORD_MS, "ms", TRAIN_RECORD)
            );
        } else {
            println!("  PyTorch: not run here and no recorded number for this fixture (pass --reference-python to measure it)");
        }
    }
    if a.full {
        full_step(a.checkpointing, ui)?;
    }
    Ok(0)
}

/// One full-size step, batch 1 at 1008², the vision trunk frozen.
fn full_step(checkpointing: bool, ui: &dyn crate::Ui) -> anyhow::Result<()> {
    let cfg = Sam3Config::sam3();
    let ad = Device::flex().autodiff();
    let ad = if checkpointing { ad.gradient_checkpointing() } else { ad };
    let pb = ui.spinner("full-size SAM3: init");
    let model = Sam3::new(&cfg, &ad);
    materialize(&model);
    let model = params::set_trainable(model, "", &|n| !n.starts_with("backbone.vision_backbone.trunk.")).train();
    let r = cfg.image_size;
    let mut mask = vec![0u8; r * r];
    for i in r / 4..r / 2 {
        for j in r / 4..r / 2 {
            mask[i * r + j] = 1;
        }
    }
    let q = FindQuery {
        image: 0,
        text: 0,
        instances: vec![Instance { box_cxcywh: [0.375, 0.375, 0.25, 0.25], mask: Some(mask), object_id: 0 }],
        is_exhaustive: true,
    };
    let targets = Targets::from_queries(&[q], r).map_err(anyhow::Error::msg)?;
    let (tok, _) = sam3lab_model::tokenizer::Tokenizer::clip().encode("a red cat", cfg.text.context_length);
    let pixels: Vec<f32> = (0..3 * r * r).map(|k| ((k % 97) as f32 / 48.5) - 1.0).collect();
    let batch = Batch {
        pixels: Tensor::from_data(TensorData::new(pixels, [1, 3, r, r]), &ad),
        input_ids: Tensor::from_data(TensorData::new(tok.iter().map(|&t| t as i64).collect::<Vec<_>>(), [1, cfg.text.context_length]), &ad),
        img_ids: vec![0],
        text_ids: vec![0],
        targets,
        pair_ids: vec!["synthetic:0".into()],
        geometry: Default::default(),
    };
    let mut optim = AdamWConfig::new().with_epsilon(1e-8).init();
    pb.set_message("full-size SAM3: one training step (trunk frozen)");
    let s = Instant::now();
    let _ = step(model, &batch, &LossConfig::default(), &mut optim)?;
    let t = s.elapsed().as_secs_f64();
    pb.finish();
    let (peak, _) = memory();
    println!("  full-size step (1008², batch 1, trunk frozen, random weights, gradient checkpointing {}): {t:.1} s, peak RSS {:.2} GiB (process, incl. model and AdamW state)", if checkpointing { "on" } else { "off" }, gib(peak));
    Ok(())
}
