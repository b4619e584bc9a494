//! Train-mode dropout and drop-path (the reference's `nn.Dropout`, `nn.MultiheadAttention(dropout)`
//! and timm `DropPath`), on the training fixture: rates 0 change nothing, a seed repeats a forward
//! bit for bit and another seed changes it, eval forwards never drop, one dropout site zeroes ≈ p of
//! its elements and scales the rest by 1/(1−p), drop-path drops whole residual branches per image
//! at the linearly increasing per-block rate, and a recipe with dropout stays "same seed → same
//! bytes" across a resume. (The rate-0 train forward equal to the reference is `train_parity.rs`.)

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use burn::prelude::*;
use sam3lab_util::progress::NoProgress;
use sam3lab_model::hooks::{HookSpec, Hooks};
use sam3lab_model::parity::Fixture;
use sam3lab_model::{GeometryPrompt, Sam3, TrainOutput};
use sam3lab_train::data::Batch;
use sam3lab_train::engine::{forward, run, seed_micro_batch};
use sam3lab_train::parity::fixture_batch;

/// burn's CPU generator is one per process: the tests that seed it (or train) run one at a time.
static RNG: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture() -> PathBuf {
    root().join("data/fixtures/sam3-tiny-train")
}

/// The fixture model on `dev` with the given rates: (geometry, fusion, decoder, scoring) dropout and
/// the trunk's drop-path rate.
fn model(dev: &Device, dropout: [f64; 4], drop_path: f64) -> Sam3 {
    let (mut m, _) = Sam3::load(&fixture(), None, dev).unwrap();
    let c = &mut m.config;
    [c.geometry.dropout, c.fusion.dropout, c.decoder.dropout, c.scoring.dropout] = dropout;
    c.vit.drop_path_rate = drop_path;
    c.validate().unwrap();
    m
}

fn batch(dev: &Device) -> Batch {
    fixture_batch(&Fixture::load(&fixture()).unwrap(), dev).unwrap()
}

fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Every number of a train-mode output, in a fixed order.
fn flat(o: &TrainOutput) -> Vec<f32> {
    let mut v = vec![];
    for l in &o.layers {
        for q in [&l.o2o, &l.o2m] {
            v.extend(vals(q.pred_logits.clone()));
            v.extend(vals(q.pred_boxes.clone()));
            if let Some(m) = &q.pred_masks {
                v.extend(vals(m.clone()));
            }
        }
        v.extend(vals(l.presence_logit.clone()));
    }
    v
}

fn train_forward(m: &Sam3, b: &Batch, seed: u64) -> Vec<f32> {
    seed_micro_batch(&b.pixels.device(), seed, 0, 0);
    flat(&forward(m, b, &mut Hooks::none()).unwrap())
}

/// The eval-mode forward of the same queries (no DAC, no dropout).
fn eval_forward(m: &Sam3, b: &Batch) -> Vec<f32> {
    let mut h = Hooks::none();
    let img = m.encode_image(b.pixels.clone(), &mut h).select(&b.img_ids);
    let txt = m.encode_text(b.input_ids.clone(), &mut h).select(&b.text_ids);
    let o = m.ground_geometry(&img, &txt, &GeometryPrompt::default(), &mut h).unwrap();
    [o.pred_logits.into_data(), o.pred_boxes.into_data(), o.pred_masks.into_data(), o.presence_logit.into_data()]
        .into_iter()
        .flat_map(|d| d.convert::<f32>().try_to_vec::<f32>().unwrap())
        .collect()
}

const ON: [f64; 4] = [0.1; 4];

/// Hooks that replace `site` by zeros (or by ones) and capture `out`.
fn edit_and_capture(site: &str, ones: bool, out: &str) -> Hooks {
    let spec = HookSpec::new().capture(out).unwrap();
    Hooks::new(if ones { spec.map(site, |_, v| v.map_values(|t| t.ones_like())).unwrap() } else { spec.zero(site).unwrap() })
}

#[test]
fn zero_rates_draw_nothing_and_eval_never_drops() {
    let _g = lock();
    let ad = Device::flex().autodiff();
    let b = batch(&ad);
    let off = model(&ad, [0.0; 4], 0.0);
    let on = model(&ad, ON, 0.1);
    // Rates 0: the seed does not matter (nothing is drawn).
    let a = train_forward(&off, &b, 1);
    assert!(a == train_forward(&off, &b, 2), "a rate-0 train forward depends on the seed");
    // The eval forward ignores the rates, on the autodiff device too.
    assert!(eval_forward(&on, &b) == eval_forward(&off, &b), "dropout reached the eval forward");
    // Off an autodiff device the train forward does not drop either (burn's Dropout rule).
    let plain = Device::flex();
    let bp = batch(&plain);
    assert!(
        train_forward(&model(&plain, ON, 0.1), &bp, 1) == train_forward(&model(&plain, [0.0; 4], 0.0), &bp, 1),
        "dropout acted without autodiff"
    );
}

#[test]
fn a_seed_repeats_a_train_forward_and_another_seed_changes_it() {
    let _g = lock();
    let ad = Device::flex().autodiff();
    let b = batch(&ad);
    let on = model(&ad, ON, 0.1);
    let off = train_forward(&model(&ad, [0.0; 4], 0.0), &b, 7);
    let a = train_forward(&on, &b, 7);
    let a2 = train_forward(&on, &b, 7);
    let c = train_forward(&on, &b, 8);
    assert!(a.iter().all(|x| x.is_finite()));
    assert!(a == a2, "the same seed gave different train forwards");
    assert!(a != c, "two seeds gave the same train forward");
    assert!(a != off, "dropout 0.1 changed nothing");
    // Each kind of site acts on its own: every single rate changes the output.
    for (k, what) in ["geometry", "fusion", "decoder", "scoring"].iter().enumerate() {
        let mut r = [0.0; 4];
        r[k] = 0.1;
        assert!(train_forward(&model(&ad, r, 0.0), &b, 7) != off, "{what}.dropout changed nothing");
    }
    assert!(train_forward(&model(&ad, [0.0; 4], 0.1), &b, 7) != off, "drop_path changed nothing");
}

/// `fusion.layers.0` = `x + dropout3(ffn.out)` (pre-norm, no norm after): with `ffn.out` replaced by
/// zeros and then by ones under the same seed (so every earlier mask is the same), the difference of
/// the layer outputs is the dropout of a tensor of ones.
#[test]
fn a_dropout_site_zeroes_p_and_scales_survivors() {
    let _g = lock();
    let ad = Device::flex().autodiff();
    let b = batch(&ad);
    let p = 0.3;
    let m = model(&ad, [0.0, p, 0.0, 0.0], 0.0);
    let site = "fusion.layers.0.ffn.out";
    let run_with = |ones: bool| -> Vec<f32> {
        let mut h = edit_and_capture(site, ones, "fusion.layers.0");
        seed_micro_batch(&ad, 11, 0, 0);
        forward(&m, &b, &mut h).unwrap();
        vals(h.finish().unwrap().tensor::<3>("fusion.layers.0").unwrap())
    };
    let (zero, one) = (run_with(false), run_with(true));
    let diff: Vec<f32> = one.iter().zip(&zero).map(|(a, z)| a - z).collect();
    let scale = (1.0 / (1.0 - p)) as f32;
    let mut dropped = 0usize;
    for &d in &diff {
        if d.abs() < 1e-3 {
            dropped += 1;
        } else {
            assert!((d - scale).abs() < 1e-4, "a survivor is {d}, not 1/(1-p) = {scale}");
        }
    }
    let frac = dropped as f64 / diff.len() as f64;
    // ~6k elements: the binomial σ is ~0.006.
    assert!((frac - p).abs() < 0.03, "zeroed fraction {frac:.4} for p = {p} over {} elements", diff.len());
}

/// Drop-path: block `i` of the 4-block trunk drops each residual branch per image with rate
/// `r·i/3`. With block i's `mlp.out` replaced by zeros, then by ones, under the same seed, the
/// difference of the block outputs is `drop_path(ones)`: per image all 0 or all 1/(1−r·i/3).
#[test]
fn drop_path_drops_whole_branches_per_image_at_linear_rates() {
    let _g = lock();
    let ad = Device::flex().autodiff();
    let b = batch(&ad);
    let r = 0.9;
    let m = model(&ad, [0.0; 4], r);
    let depth = m.config.vit.depth;
    assert_eq!(depth, 4);
    let seeds = 60u64;
    for i in 0..depth {
        let rate = r * i as f64 / (depth - 1) as f64;
        let site = format!("trunk.blocks.{i}.mlp.out");
        let out = format!("trunk.blocks.{i}");
        let block = |ones: bool, seed: u64| -> Vec<f32> {
            let mut h = edit_and_capture(&site, ones, &out);
            seed_micro_batch(&ad, seed, 0, 0);
            let _ = m.encode_image_train(b.pixels.clone(), &mut h);
            vals(h.finish().unwrap().tensor::<4>(&out).unwrap())
        };
        let (mut dropped, mut samples) = (0usize, 0usize);
        for seed in 0..seeds {
            let (zero, one) = (block(false, seed), block(true, seed));
            let per = zero.len() / b.pixels.dims()[0];
            for (zi, oi) in zero.chunks(per).zip(one.chunks(per)) {
                let d: Vec<f32> = oi.iter().zip(zi).map(|(a, z)| a - z).collect();
                samples += 1;
                if d.iter().all(|x| x.abs() < 1e-3) {
                    dropped += 1;
                } else {
                    let keep = (1.0 / (1.0 - rate)) as f32;
                    let tol = 1e-4 * keep.max(1.0) * 4.0;
                    assert!(d.iter().all(|x| (x - keep).abs() < tol), "block {i}: a kept branch is not ×{keep} everywhere");
                }
            }
        }
        let frac = dropped as f64 / samples as f64;
        if i == 0 {
            assert_eq!(dropped, 0, "block 0 (rate 0) dropped a branch");
        } else {
            // 120 samples: σ ≤ 0.046.
            assert!((frac - rate).abs() < 0.15, "block {i}: dropped {frac:.3} of branches, rate {rate:.3}");
        }
    }
}

fn recipe_with(extra: &str, seed: u64, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("recipes/fixture/frozen_te.toml"))
        .unwrap()
        .replace("../../", &format!("{}/", root().display()))
        .replace("seed = 0", &format!("seed = {seed}"))
        .replace("[model]\n", &format!("[model]\n{extra}"));
    let p = dir.join("r.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_recipe_with_dropout_is_seeded_and_resumable() {
    let _g = lock();
    let tmp = tempfile::tempdir().unwrap();
    let mk = |name: &str, extra: &str, seed: u64| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        (recipe_with(extra, seed, &d), d.join("out"))
    };
    let on = "dropout = 0.1\ndrop_path = 0.1\n";
    let go = |(r, out): &(PathBuf, PathBuf)| run(r, out, &Device::flex(), &NoProgress).unwrap();
    let a = mk("a", on, 0);
    let b = mk("b", on, 0);
    let c = mk("c", on, 1);
    let off = mk("off", "", 0);
    go(&a);
    go(&off);
    go(&c);
    // b: interrupted after step 1, then resumed.
    go(&b);
    for f in ["step_000003.safetensors", "step_000003.json"] {
        std::fs::remove_file(b.1.join(f)).unwrap();
    }
    assert_eq!(go(&b).resumed_from, Some(1));
    let bytes = |x: &(PathBuf, PathBuf)| std::fs::read(x.1.join("step_000003.safetensors")).unwrap();
    assert!(bytes(&a) == bytes(&b), "a resumed dropout run differs from the uninterrupted one");
    // The loss logs agree but for the recipe's path on their first line.
    let log = |x: &(PathBuf, PathBuf)| std::fs::read_to_string(x.1.join("loss.csv")).unwrap().lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(log(&a), log(&b));
    assert!(bytes(&a) != bytes(&off), "recipe dropout changed nothing");
    // The data order depends on the seed too; the point is only that the run is not fixed.
    assert!(bytes(&a) != bytes(&c), "another seed gave the same run");
    // The run's config carries the rates.
    let cfg = std::fs::read_to_string(a.1.join("config.json")).unwrap();
    assert!(cfg.contains("\"drop_path_rate\": 0.1") && cfg.contains("\"dropout\": 0.1"), "{cfg}");
    assert!(!std::fs::read_to_string(off.1.join("config.json")).unwrap().contains("dropout"));
}

/// The masks depend on (seed, step, micro-batch, replica): a micro-batch of one query goes whole to
/// replica 0, whose shard seed is the micro-batch's own, so two CPU replicas equal one device here;
/// and gradient checkpointing reuses the forward's masks (float noise only, as without dropout in
/// `recipes.rs`).
#[test]
fn dropout_masks_do_not_depend_on_replicas_or_checkpointing() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(root().join("recipes/fixture/lvis_replay.toml"))
        .unwrap()
        .replace("../../", &format!("{}/", root().display()))
        .replace("batch_size = 2", "batch_size = 1\ngrad_accum = 2")
        .replace("steps = 4", "steps = 2")
        .replace("checkpoints = [2, 4]", "checkpoints = []")
        .replace("[model]\n", "[model]\ndropout = 0.1\ndrop_path = 0.1\n");
    let go = |name: &str, text: String| {
        let r = dir.path().join(format!("{name}.toml"));
        std::fs::write(&r, text).unwrap();
        let s = run(&r, &dir.path().join(name), &Device::flex(), &NoProgress).unwrap();
        sam3lab_model::parity::read_safetensors(s.checkpoints.last().unwrap()).unwrap()
    };
    let one = go("one", base.clone());
    let two = go("two", base.replace("seed = 0", "seed = 0\ndevices = [\"cpu\", \"cpu\"]"));
    let ckpt = go("ckpt", base.replace("seed = 0", "seed = 0\ngradient_checkpointing = true"));
    let parent = sam3lab_model::parity::read_safetensors(&fixture().join("weights.safetensors")).unwrap();
    let worst = |b: &std::collections::BTreeMap<String, sam3lab_model::parity::HostTensor>| {
        one.iter().flat_map(|(k, t)| t.data.iter().zip(&b[k].data).map(|(x, y)| (x - y).abs())).fold(0f32, f32::max)
    };
    assert!(worst(&two) < 2e-6, "replicas vs accumulation differ by {}", worst(&two));
    assert!(worst(&ckpt) < 2e-6, "checkpointing changed a dropout run by {}", worst(&ckpt));
    assert!(worst(&parent) > 0.0, "nothing trained");
}

#[test]
fn bad_rates_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let r = recipe_with("dropout = 1.0\n", 0, tmp.path());
    let e = run(&r, &tmp.path().join("out"), &Device::flex(), &NoProgress).unwrap_err().to_string();
    assert!(e.contains("dropout") && e.contains("[0, 1)"), "{e}");
}
