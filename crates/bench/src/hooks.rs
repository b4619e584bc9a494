//! `sam3lab bench hooks`: what hooks cost. The whole fixture forward (image + text + heads) under five
//! hook settings, interleaved round-robin so drift hits every case alike, median of many runs, each
//! as a ratio to `none` measured in the same run:
//!
//! - `none`: `Hooks::none()`;
//! - `empty`: `Hooks::new(HookSpec::new())` (target: within 1 % of `none`);
//! - `one`: capture `decoder.layers.1.q0`;
//! - `all-no-heads`: capture every registered point except `….head.{h}` / `….attn_weights` (those
//!   switch attention to the explicit path), listed as exact names (target: within 10 %);
//! - `all`: capture `**`, per-head contributions and attention maps included (reported, no target).
//!
//! Each iteration builds its `Hooks` from the spec and drops the cache, as a user's loop would. The
//! fixture is tiny (a forward takes milliseconds), so the fixed per-tap overhead (names, lookups)
//! weighs more here than on the full-size model; the explicit attention path of `all`, on the other
//! hand, costs far more there (a global ViT block's map is 16 × 5184² floats).

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::*;
use sam3lab_model::hooks::{HookSpec, Hooks};
use sam3lab_model::{Sam3, hook_registry};

use crate::util::{load_fixture_inputs, median, set_threads};

pub struct HooksArgs {
    /// Fixture directory whose weights and inputs are run.
    pub fixture: PathBuf,
    /// Timed iterations per case (after warm-up).
    pub iters: usize,
    pub warmup: usize,
    /// CPU threads.
    pub threads: usize,
}

pub fn run(a: HooksArgs, ui: &dyn crate::Ui) -> anyhow::Result<u8> {
    set_threads(a.threads);
    if a.iters == 0 {
        anyhow::bail!("--iters must be at least 1");
    }
    let device = Device::flex();
    let (pixels, ids) = load_fixture_inputs(&a.fixture, &device)?;
    let (model, info) = Sam3::load(&a.fixture, None, &device)?;
    let reg = hook_registry(&model.config);
    let mut no_heads = HookSpec::new();
    for p in reg.points.iter().map(|p| p.name.as_str()) {
        if !p.contains(".head.") && !p.ends_with(".attn_weights") {
            no_heads = no_heads.capture(p)?;
        }
    }
    let cases: Vec<(&str, Option<HookSpec>)> = vec![
        ("none", None),
        ("empty", Some(HookSpec::new())),
        ("one", Some(HookSpec::new().capture("decoder.layers.1.q0")?)),
        ("all-no-heads", Some(no_heads)),
        ("all", Some(HookSpec::new().capture("**")?)),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(a.iters); cases.len()];
    let mut captured = vec![(0usize, 0usize); cases.len()];
    let pb = ui.bar((a.warmup + a.iters) as u64);
    for it in 0..a.warmup + a.iters {
        // Rotate which case goes first, so no case always runs right after the same neighbour.
        for r in 0..cases.len() {
            let k = (it + r) % cases.len();
            let spec = &cases[k].1;
            let s = Instant::now();
            let mut hooks = match spec {
                None => Hooks::none(),
                Some(spec) => Hooks::new(spec.clone()),
            };
            let out = model.forward(pixels.clone(), ids.clone(), &[], &mut hooks)?;
            let _ = out.scores.clone().into_data();
            let cache = hooks.finish()?;
            let t = s.elapsed().as_secs_f64() * 1e3;
            captured[k] = (cache.len(), cache.bytes());
            drop(cache);
            if it >= a.warmup {
                times[k].push(t);
            }
        }
        pb.inc(1);
    }
    pb.finish();
    let meds: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
    println!(
        "bench hooks: {} (weights sha256 {}…), whole forward, {} thread(s), {} interleaved iterations per case",
        a.fixture.display(),
        &info.sha256[..12],
        a.threads,
        a.iters
    );
    println!("  {:<13} {:>10} {:>9} {:>9} {:>10}  target", "case", "median ms", "vs none", "captured", "MiB");
    let targets = [None, Some(1.01), None, Some(1.10), None];
    let mut ok = true;
    for (k, (name, _)) in cases.iter().enumerate() {
        let r = meds[k] / meds[0];
        let target = match targets[k] {
            Some(t) => {
                ok &= r <= t;
                format!("≤ {t:.2} {}", if r <= t { "ok" } else { "OVER" })
            }
            None => String::new(),
        };
        println!(
            "  {:<13} {:>10.3} {:>9.4} {:>9} {:>10.2}  {target}",
            name,
            meds[k],
            r,
            captured[k].0,
            captured[k].1 as f64 / (1 << 20) as f64
        );
    }
    Ok(if ok { 0 } else { 1 })
}
