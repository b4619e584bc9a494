//! The post's recipes (recipes/fixture/*.toml) run on the training fixture: each moves exactly the
//! tensors it should, runs are byte-reproducible and resumable, the data pipeline reproduces the
//! fixture's loss, and bad recipes fail naming the key at fault.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::Device;
use sam3lab_util::progress::NoProgress;
use sam3lab_model::parity::{HostTensor, read_safetensors};
use sam3lab_train::engine::run;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn recipe(name: &str) -> PathBuf {
    root().join("recipes/fixture").join(format!("{name}.toml"))
}

fn parent() -> BTreeMap<String, HostTensor> {
    read_safetensors(&root().join("data/fixtures/sam3-tiny-train/weights.safetensors")).unwrap()
}

fn train(name: &str, out: &Path) -> BTreeMap<String, HostTensor> {
    let s = run(&recipe(name), out, &Device::flex(), &NoProgress).unwrap();
    read_safetensors(s.checkpoints.last().unwrap()).unwrap()
}

/// Names of tensors whose values differ from the parent.
fn moved(after: &BTreeMap<String, HostTensor>) -> Vec<String> {
    let base = parent();
    let mut v = vec![];
    for (k, t) in after {
        let b = base.get(k).unwrap_or_else(|| panic!("checkpoint has `{k}`, the parent does not"));
        assert_eq!(b.shape, t.shape, "{k}");
        if b.data != t.data {
            v.push(k.clone());
        }
    }
    assert_eq!(after.len(), base.len(), "checkpoint holds every parameter of the parent");
    v
}

#[test]
fn frozen_te_and_replays_move_all_but_the_text_encoder() {
    for name in ["frozen_te", "lvis_replay", "lvis_replay_n100", "lvis_replay_neg", "recovery"] {
        let dir = tempfile::tempdir().unwrap();
        let after = train(name, dir.path());
        let m = moved(&after);
        assert!(m.iter().all(|k| !k.starts_with("backbone.language_backbone.")), "{name}: the frozen text encoder moved: {m:?}");
        let trainable = after.keys().filter(|k| !k.starts_with("backbone.language_backbone.")).count();
        // Tensors unused by a text-only forward (0.5x neck level, 3rd pixel-decoder stage, box/point
        // prompt projections, semantic head) get no gradient; all others move.
        assert!(m.len() * 10 > trainable * 8, "{name}: only {} of {trainable} trainable tensors moved", m.len());
        assert!(m.iter().any(|k| k.starts_with("backbone.vision_backbone.trunk.")), "{name}");
        assert!(m.contains(&"transformer.decoder.presence_token_out_norm.bias".to_string()), "{name}");
    }
}

#[test]
fn presence_only_moves_only_the_presence_head() {
    let dir = tempfile::tempdir().unwrap();
    let m = moved(&train("presence_only", dir.path()));
    assert!(!m.is_empty());
    assert!(m.iter().all(|k| k.starts_with("transformer.decoder.presence_token")), "{m:?}");
    assert_eq!(m.len(), 9, "all 9 presence tensors move: {m:?}");
}

#[test]
fn runs_are_reproducible_and_resumable() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    run(&recipe("frozen_te"), a.path(), &Device::flex(), &NoProgress).unwrap();
    // Interrupted after the step-1 checkpoint: the step-3 files are gone; a rerun resumes.
    run(&recipe("frozen_te"), b.path(), &Device::flex(), &NoProgress).unwrap();
    for f in ["step_000003.safetensors", "step_000003.json"] {
        std::fs::remove_file(b.path().join(f)).unwrap();
    }
    let s = run(&recipe("frozen_te"), b.path(), &Device::flex(), &NoProgress).unwrap();
    assert_eq!(s.resumed_from, Some(1));
    let ra = std::fs::read(a.path().join("step_000003.safetensors")).unwrap();
    let rb = std::fs::read(b.path().join("step_000003.safetensors")).unwrap();
    assert!(ra == rb, "resumed run differs from the uninterrupted one");
    let la = std::fs::read_to_string(a.path().join("loss.csv")).unwrap();
    let lb = std::fs::read_to_string(b.path().join("loss.csv")).unwrap();
    assert_eq!(la, lb);
    // A finished run resumes at its end and writes nothing new.
    let s = run(&recipe("frozen_te"), a.path(), &Device::flex(), &NoProgress).unwrap();
    assert_eq!(s.resumed_from, Some(3));
    assert!(s.checkpoints.is_empty());
}

#[test]
fn the_data_pipeline_reproduces_the_fixture_loss() {
    // All three fixture pairs in one batch: the loss terms that do not depend on how the masks were
    // drawn equal the reference's (recorded in the training fixture) to float noise.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(recipe("frozen_te")).unwrap();
    let text = text
        .replace("steps = 3", "steps = 1")
        .replace("batch_size = 2", "batch_size = 3")
        .replace("checkpoints = [1, 3]", "checkpoints = []")
        .replace("positives.json", "gt.json");
    let r = recipe("frozen_te").with_file_name("tmp_all_pairs.toml");
    let r = dir.path().join(r.file_name().unwrap());
    let text = text.replace("../../", &format!("{}/", root().display()));
    std::fs::write(&r, text).unwrap();
    let s = run(&r, &dir.path().join("out"), &Device::flex(), &NoProgress).unwrap();
    let fx = read_safetensors(&root().join("data/fixtures/sam3-tiny-train/expected.safetensors")).unwrap();
    for k in ["loss_bbox", "loss_giou", "loss_ce", "presence_loss", "loss_bbox_o2m", "loss_ce_aux_0", "presence_loss_aux_0"] {
        let want = fx[&format!("loss.{k}")].data[0];
        let got = s.last_loss[k];
        assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "{k}: {got} vs {want}");
    }
}

fn bad(edit: impl Fn(String) -> String) -> String {
    let dir = tempfile::tempdir().unwrap();
    let text = edit(std::fs::read_to_string(recipe("lvis_replay")).unwrap()).replace("../../", &format!("{}/", root().display()));
    let r = dir.path().join("r.toml");
    std::fs::write(&r, text).unwrap();
    match run(&r, &dir.path().join("out"), &Device::flex(), &NoProgress) {
        Ok(_) => panic!("a bad recipe ran"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_recipes_name_the_fault() {
    let e = bad(|t| t.replace("[data.replay]", "[data.replay]\nevry = 3"));
    assert!(e.contains("evry"), "{e}");
    let e = bad(|t| t.replace("backbone.language_backbone.**", "backbone.langauge_backbone.**"));
    assert!(e.contains("langauge") && e.contains("backbone.language_backbone"), "{e}");
    let e = bad(|t| t.replace("primary = true", ""));
    assert!(e.contains("primary"), "{e}");
    let e = bad(|t| t.replace("train-set/gt.json", "train-set/missing.json"));
    assert!(e.contains("missing.json"), "{e}");
    let e = bad(|t| t.replace("only = \"positives\"", "only = \"negatives\"").replace("train-set/gt.json", "train-set/positives.json"));
    assert!(e.contains("empty") && e.contains("replay"), "{e}");
}

#[test]
fn the_world_recipes_parse() {
    // Their data comes from `sam3lab world gen`; the structure is checked here, the runs by the
    // world's own commands.
    let dir = root().join("recipes/world");
    let mut names = vec![];
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let r = sam3lab_train::Recipe::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(!r.description.is_empty());
        names.push(p.file_stem().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    assert_eq!(names, ["b5_long_unfrozen", "frozen_te", "lvis_replay", "lvis_replay_n100", "lvis_replay_neg", "presence_only", "pretrain_stage1", "pretrain_stage2", "pretrain_stage3", "recovery"]);
}

#[test]
fn the_post_recipes_for_the_real_model_parse() {
    // Their data and checkpoints are the user's; the structure (keys, streams, schedule) is checked.
    let dir = root().join("recipes/post");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let r = sam3lab_train::Recipe::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(!r.description.is_empty());
        n += 1;
    }
    assert_eq!(n, 6);
    let rec = sam3lab_train::Recipe::load(&dir.join("recovery.toml")).unwrap();
    assert_eq!(rec.checkpoint_steps(), vec![50, 100, 200, 400, 800, 1200, 1600, 2000]);
    assert_eq!(rec.schedule.factor(25, 2000), 0.5);
    assert_eq!(rec.schedule.factor(1000, 2000), 5.0);
}

/// The lvis_replay recipe with absolute paths, 3 steps (the replay stream is due at step 2),
/// checkpoints after steps 1 and 3, edited by `edit`, run into `dir/name`.
fn replica_run(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> (PathBuf, sam3lab_train::engine::RunSummary) {
    let text = std::fs::read_to_string(recipe("lvis_replay")).unwrap().replace("../../", &format!("{}/", root().display()));
    let text = edit(text.replace("steps = 4", "steps = 3").replace("checkpoints = [2, 4]", "checkpoints = [1, 3]"));
    let r = dir.join(format!("{name}.toml"));
    std::fs::write(&r, text).unwrap();
    let out = dir.join(name);
    let s = run(&r, &out, &Device::flex(), &NoProgress).unwrap();
    (out, s)
}

fn two_replicas(t: String) -> String {
    t.replace("seed = 0", "seed = 0\ndevices = [\"cpu\", \"cpu\"]")
}

/// Largest |a − b| over every tensor of two checkpoints.
fn worst_diff(a: &BTreeMap<String, HostTensor>, b: &BTreeMap<String, HostTensor>) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().flat_map(|(k, t)| t.data.iter().zip(&b[k].data).map(|(x, y)| (x - y).abs())).fold(0f32, f32::max)
}

/// Two CPU replicas, each running its half of every batch (losses normalised by the whole batch,
/// gradients all-reduced, one AdamW step per replica), give the one-device run up to float
/// rounding — with an even split (batch 2), an uneven one with accumulation (batch 3 = 2 + 1,
/// grad_accum 2), and a replica with nothing to do (batch 1). The loss log agrees too (the F1
/// metrics from the shards' summed counts, exactly).
#[test]
fn two_cpu_replicas_split_the_batch_and_equal_one_device() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (tag, edit) in [
        ("even", (|t: String| t) as fn(String) -> String),
        ("uneven", |t: String| t.replace("batch_size = 2", "batch_size = 3\ngrad_accum = 2")),
        ("idle", |t: String| t.replace("batch_size = 2", "batch_size = 1")),
    ] {
        let (a, sa) = replica_run(d, &format!("{tag}-one"), edit);
        let (b, sb) = replica_run(d, &format!("{tag}-two"), |t| two_replicas(edit(t)));
        let (wa, wb) = (read_safetensors(sa.checkpoints.last().unwrap()).unwrap(), read_safetensors(sb.checkpoints.last().unwrap()).unwrap());
        // Measured 2026-12: 0 (even: the two halves' sums round like the whole's on these batches)
        // up to ~1e-8; an AdamW step moves a weight by ~1e-4 (lr), so 2e-6 is rounding, not a
        // different update.
        let worst = worst_diff(&wa, &wb);
        eprintln!("{tag}: largest weight difference, two replicas vs one device, 3 steps: {worst:e}");
        assert!(worst < 2e-6, "{tag}: two replicas differ from one device by {worst}");
        assert!(!moved(&wa).is_empty(), "{tag}: nothing trained");
        let (ra, rb) = (loss_rows(&a), loss_rows(&b));
        assert_eq!(ra.len(), rb.len());
        for (x, y) in ra.iter().zip(&rb) {
            assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>(), "{tag}: the logged terms differ");
            for (k, v) in x {
                let tol = if k.contains("_f1") || k.contains("_acc") { 1e-6 } else { 1e-5 * v.abs().max(1.0) };
                assert!((v - y[k]).abs() <= tol, "{tag} step {}: {k} = {v} on one device, {} on two replicas", x["step"], y[k]);
            }
        }
    }
}

/// A two-replica run interrupted after its step-1 checkpoint resumes (every replica from the
/// checkpoint and its optimiser state) to the bytes of the uninterrupted run: weights, manifest, log.
#[test]
fn a_two_replica_run_resumes_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = replica_run(dir.path(), "a", two_replicas);
    let (b, _) = replica_run(dir.path(), "b", two_replicas);
    for f in ["step_000003.safetensors", "step_000003.json"] {
        std::fs::remove_file(b.join(f)).unwrap();
    }
    let (_, s) = replica_run(dir.path(), "b", two_replicas);
    assert_eq!(s.resumed_from, Some(1));
    // (The optimiser files are not compared: burn writes their entries in hash-map order, so two
    // uninterrupted one-device runs already differ there; the weights after the resumed steps are
    // what depend on the state read back.)
    for f in ["step_000003.safetensors", "step_000003.json"] {
        assert!(std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(), "{f}: the resumed run differs");
    }
    let log = |p: &Path| std::fs::read_to_string(p.join("loss.csv")).unwrap().lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(log(&a), log(&b));
}

/// Gradient checkpointing recomputes instead of keeping: the same numbers.
#[test]
fn gradient_checkpointing_changes_no_number() {
    let dir = tempfile::tempdir().unwrap();
    let (_, sa) = replica_run(dir.path(), "a", |t| t);
    let (_, sc) = replica_run(dir.path(), "c", |t| t.replace("seed = 0", "seed = 0\ngradient_checkpointing = true"));
    let worst = worst_diff(&read_safetensors(sa.checkpoints.last().unwrap()).unwrap(), &read_safetensors(sc.checkpoints.last().unwrap()).unwrap());
    assert!(worst < 2e-6, "checkpointing changed the result by {worst}");
}

/// Replica devices are checked before any work: a name that is no device, a GPU this build lacks
/// and a GPU named twice are refused naming the recipe key.
#[test]
fn bad_replica_devices_name_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    for (devices, want) in [
        ("[\"cpu\", \"tpu\"]", "`tpu` is not a device name"),
        ("[\"cpu\", \"cuda:1\"]", "--features cuda"),
        ("[\"cuda:0\", \"cuda\"]", "named twice"),
    ] {
        let text = std::fs::read_to_string(recipe("frozen_te")).unwrap().replace("../../", &format!("{}/", root().display()));
        let r = dir.path().join("r.toml");
        std::fs::write(&r, text.replace("seed = 0", &format!("seed = 0\ndevices = {devices}"))).unwrap();
        let e = run(&r, &dir.path().join("out"), &Device::flex(), &NoProgress).unwrap_err().to_string();
        assert!(e.contains("devices") && e.contains(want), "{devices}: {e}");
    }
}

/// Why the CPU replicas reduce by hand: burn 0.22.1's collectives do not run on its CPU backend.
/// `DistributedContext::init` over flex devices panics in burn-dispatch (flex is not in its
/// distributed backend list). When a burn upgrade makes this fail, the engine can use
/// `all_reduce` on the CPU too (`Reduce::Collective` in engine.rs).
#[test]
fn burns_collectives_do_not_run_on_the_cpu_backend() {
    use burn::tensor::distributed::{DistributedConfig, DistributedContext, ReduceOperation};
    let init = std::panic::catch_unwind(|| {
        let _ctx = DistributedContext::init(vec![Device::flex(), Device::flex()], DistributedConfig { all_reduce_op: ReduceOperation::Sum });
    });
    let reduce = std::panic::catch_unwind(|| {
        let t = burn::tensor::Tensor::<1>::ones([4], &Device::flex());
        burn::tensor::distributed::all_reduce(t, ReduceOperation::Sum, vec![Device::flex()]).resolve()
    });
    let msg = |e: Box<dyn std::any::Any + Send>| e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
    let init = init.expect_err("DistributedContext::init now works on the CPU: switch the CPU replicas to burn's all_reduce");
    assert!(msg(init).contains("not supported"), "unexpected panic");
    let reduce = reduce.expect_err("all_reduce now works on the CPU: switch the CPU replicas to it");
    assert!(msg(reduce).contains("not supported"), "unexpected panic");
}

#[test]
fn evaluation_during_a_run_matches_a_direct_forward() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(recipe("frozen_te")).unwrap().replace("../../", &format!("{}/", root().display()));
    let text = format!("{text}\n[eval]\ngt = \"{}/data/fixtures/train-set/gt.json\"\nevery = 1\n", root().display());
    let r = dir.path().join("r.toml");
    std::fs::write(&r, text).unwrap();
    run(&r, &dir.path().join("out"), &Device::flex(), &NoProgress).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("out/eval.csv")).unwrap();
    let rows: Vec<Vec<String>> = csv.lines().skip(1).map(|l| l.split(',').map(str::to_string).collect()).collect();
    assert_eq!(rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), ["0", "1", "2", "3"], "{csv}");
    // Step 0 is the fixture model itself: recompute presence accuracy and the mean max scores from
    // the fixture's own inputs (2 positives, 1 negative).
    let fx = sam3lab_model::parity::Fixture::load(&root().join("data/fixtures/sam3-tiny-train")).unwrap();
    let dev = Device::flex();
    let batch = sam3lab_train::parity::fixture_batch(&fx, &dev).unwrap();
    let (m, _) = sam3lab_model::Sam3::load(&fx.dir, None, &dev).unwrap();
    let mut h = sam3lab_hooks::Hooks::none();
    let img = m.encode_image(batch.pixels.clone(), &mut h).select(&batch.img_ids);
    let txt = m.encode_text(batch.input_ids.clone(), &mut h).select(&batch.text_ids);
    let o = m.ground_geometry(&img, &txt, &sam3lab_model::GeometryPrompt::default(), &mut h).unwrap();
    let pres: Vec<f32> = o.presence_logit.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let sc: Vec<f32> = o.scores.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let q = sc.len() / 3;
    let maxes: Vec<f64> = (0..3).map(|k| sc[k * q..(k + 1) * q].iter().copied().fold(f32::MIN, f32::max) as f64).collect();
    let positive = [true, true, false];
    let acc = (0..3).filter(|&k| (pres[k] >= 0.0) == positive[k]).count() as f64 / 3.0;
    let f = |i: usize| rows[0][i].parse::<f64>().unwrap();
    assert!((f(4) - acc).abs() < 1e-6, "presence_acc {} vs {acc}", f(4));
    assert!((f(7) - (maxes[0] + maxes[1]) / 2.0).abs() < 1e-4, "pos max {} vs {:?}", f(7), maxes);
    assert!((f(8) - maxes[2]).abs() < 1e-4, "neg max {} vs {:?}", f(8), maxes);
    let nc = if maxes[2] >= 0.5 { 0.0 } else { 1.0 };
    assert_eq!(f(2), nc);
}


/// Run a fixture recipe edited by `edit` (paths made absolute first) and read its last checkpoint.
fn one_step(name: &str, edit: impl Fn(String) -> String) -> BTreeMap<String, HostTensor> {
    let dir = tempfile::tempdir().unwrap();
    let text = edit(std::fs::read_to_string(recipe(name)).unwrap().replace("../../", &format!("{}/", root().display())));
    let r = dir.path().join("r.toml");
    std::fs::write(&r, text).unwrap();
    let s = run(&r, &dir.path().join("out"), &Device::flex(), &NoProgress).unwrap();
    read_safetensors(s.checkpoints.last().unwrap()).unwrap()
}

/// Meta's weight-decay exclusions (`optim.no_weight_decay`, `no_weight_decay_layer_norm`): one
/// AdamW step with and without them from the same parent. burn's AdamW is decoupled
/// (θ ← θ·(1 − lr·wd) − lr·u, u the same in both runs), so an excluded tensor must end exactly
/// lr·wd·θ₀ higher than its decayed twin, and every other tensor must be bit-identical.
#[test]
fn weight_decay_exclusions_follow_adamw_by_hand() {
    let (lr, wd) = (1e-2f64, 0.5f64);
    let step = |extra: &str| {
        one_step("presence_only", |t| {
            t.replace("steps = 4", "steps = 1")
                .replace("checkpoints = [4]", "checkpoints = [1]")
                .replace("lr = 1e-4", &format!("lr = {lr}"))
                .replace("weight_decay = 0.0", &format!("weight_decay = {wd}{extra}"))
        })
    };
    let decayed = step("");
    let excluded = step("\nno_weight_decay = [\"**.*bias*\"]\nno_weight_decay_layer_norm = true");
    let base = parent();
    let mut checked = vec![];
    for (k, a) in &decayed {
        let b = &excluded[k];
        let is_excluded = k.ends_with(".bias") || k.starts_with("transformer.decoder.presence_token_out_norm.");
        let trained = k.starts_with("transformer.decoder.presence_token");
        if !(trained && is_excluded) {
            assert_eq!(a.data, b.data, "{k}: not excluded, yet the two runs differ");
            continue;
        }
        for ((x0, xa), xb) in base[k].data.iter().zip(&a.data).zip(&b.data) {
            let want = lr * wd * *x0 as f64;
            let got = (*xb - *xa) as f64;
            assert!((got - want).abs() <= 1e-6 + 1e-4 * want.abs(), "{k}: θ_excluded − θ_decayed = {got}, lr·wd·θ₀ = {want}");
        }
        checked.push(k.clone());
    }
    // The presence head: its out-norm (LayerNorm weight + bias) and the MLP's biases.
    assert!(checked.contains(&"transformer.decoder.presence_token_out_norm.weight".to_string()), "{checked:?}");
    assert!(checked.iter().filter(|k| k.ends_with(".bias")).count() >= 3, "{checked:?}");
    // A pattern that matches nothing is an error naming the key.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(recipe("presence_only")).unwrap().replace("../../", &format!("{}/", root().display())).replace("weight_decay = 0.0", "weight_decay = 0.0\nno_weight_decay = [\"**.*biass*\"]");
    let r = dir.path().join("r.toml");
    std::fs::write(&r, text).unwrap();
    let e = run(&r, &dir.path().join("out"), &Device::flex(), &NoProgress).err().expect("a pattern matching nothing ran").to_string();
    assert!(e.contains("optim.no_weight_decay") && e.contains("biass"), "{e}");
}

/// Meta's layer-wise LR decay over the ViT trunk (`optim.layer_decay`). At AdamW's first step the
/// update is lr·ĝ/(|ĝ|+ε) of the same gradients in both runs, so with weight decay 0 each trunk
/// tensor's step must be exactly value^(depth+1−layer) times its step without layer decay (block k:
/// layer k+1; patch embedding and ln_pre: layer 0), the overridden `pos_embed` unchanged, and
/// every tensor outside the trunk bit-identical.
#[test]
fn layer_decay_scales_each_trunk_layer_like_metas_modifier() {
    let step = |extra: &str| {
        one_step("frozen_te", |t| {
            t.replace("steps = 3", "steps = 1")
                .replace("checkpoints = [1, 3]", "checkpoints = [1]")
                .replace("weight_decay = 0.1", "weight_decay = 0.0")
                .replace("lr = 1e-4", "lr = 1e-2")
                .replace("kind = \"inverse_sqrt\"\nwarmup = 1\ntimescale = 2", "kind = \"constant\"") // step 0 at full rate
                .replace("[schedule]", &format!("{extra}\n[schedule]"))
        })
    };
    let plain = step("");
    let decayed = step("[optim.layer_decay]\nvalue = 0.5\noverrides = [{ pattern = \"**.pos_embed\", value = 1.0 }]\n");
    let base = parent();
    let depth = 4; // the fixture's vit.depth
    let mut seen = BTreeMap::new();
    for (k, a) in &plain {
        let b = &decayed[k];
        let Some(rest) = k.strip_prefix("backbone.vision_backbone.trunk.") else {
            assert_eq!(a.data, b.data, "{k}: outside the trunk, yet the runs differ");
            continue;
        };
        let layer = if rest.starts_with("pos_embed") {
            None
        } else if rest.starts_with("patch_embed") || rest.starts_with("ln_pre") {
            Some(0)
        } else {
            let blk: usize = rest.strip_prefix("blocks.").and_then(|r| r.split('.').next()).and_then(|x| x.parse().ok()).unwrap_or_else(|| panic!("{k}"));
            Some(blk + 1)
        };
        let scale = layer.map_or(1.0, |l| 0.5f64.powi((depth + 1 - l) as i32));
        let (mut worst, mut moved) = (0.0f64, false);
        for ((x0, xa), xb) in base[k].data.iter().zip(&a.data).zip(&b.data) {
            let (da, db) = ((*xa - *x0) as f64, (*xb - *x0) as f64);
            worst = worst.max((db - scale * da).abs() - (1e-7 + 1e-3 * (scale * da).abs()));
            moved |= da.abs() > 1e-6;
        }
        assert!(worst <= 0.0, "{k}: step is not {scale}× the undecayed step (excess {worst:e})");
        if moved {
            *seen.entry(layer).or_insert(0) += 1; // only tensors that moved make the check bite
        }
    }
    for l in [None, Some(0), Some(1), Some(depth)] {
        assert!(seen.contains_key(&l), "no moved trunk tensor in layer {l:?}: {seen:?}");
    }
}

/// The rows of a run's `loss.csv` as (column → value) maps, one per logged step.
fn loss_rows(dir: &Path) -> Vec<BTreeMap<String, f64>> {
    let csv = std::fs::read_to_string(dir.join("loss.csv")).unwrap();
    let mut lines = csv.lines().filter(|l| !l.starts_with('#'));
    let head: Vec<String> = lines.next().unwrap().split(',').map(str::to_string).collect();
    lines.map(|l| head.iter().cloned().zip(l.split(',').map(|v| v.parse::<f64>().unwrap())).collect()).collect()
}

/// Run the fixture's frozen_te recipe edited by `edit` (paths absolute, lr 0 so every step sees the
/// parent model, every step logged) into `dir/name`, returning its loss rows.
fn frozen_te_variant(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> Vec<BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(recipe("frozen_te")).unwrap().replace("../../", &format!("{}/", root().display()));
    let text = edit(text.replace("lr = 1e-4", "lr = 0.0").replace("checkpoints = [1, 3]", "checkpoints = []"));
    let r = dir.join(format!("{name}.toml"));
    std::fs::write(&r, text).unwrap();
    run(&r, &dir.join(name), &Device::flex(), &NoProgress).unwrap();
    loss_rows(&dir.join(name))
}

#[test]
fn an_extra_stream_adds_its_batch_to_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let negatives = format!("{}/data/fixtures/train-set/negatives.json", root().display());
    let with_extra = |size: &str| {
        let neg = negatives.clone();
        let size = size.to_string();
        move |t: String| format!("{}\n[data.negatives]\ngt = \"{neg}\"\nevery = 2\nextra = true\n{size}\n", t.replace("steps = 3", "steps = 2"))
    };
    // The primary stream alone, and the negatives stream alone (its one pair) at batch sizes 2 and 1.
    let primary = frozen_te_variant(d, "primary", |t| t.replace("steps = 3", "steps = 2"));
    let neg2 = frozen_te_variant(d, "neg2", |t| t.replace("steps = 3", "steps = 1").replace("positives.json", "negatives.json"));
    let neg1 = frozen_te_variant(d, "neg1", |t| t.replace("steps = 3", "steps = 1").replace("positives.json", "negatives.json").replace("batch_size = 2", "batch_size = 1"));
    // Both streams, the negatives an extra batch every 2nd step (its own batch size, or the recipe's).
    let both2 = frozen_te_variant(d, "both2", with_extra(""));
    let both1 = frozen_te_variant(d, "both1", with_extra("batch_size = 1"));
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * a.abs().max(1.0);
    for (both, neg) in [(&both2, &neg2), (&both1, &neg1)] {
        // Step 1: not due, the primary batch alone.
        assert_eq!(both[0], primary[0], "step 1 differs from the primary stream's");
        // Step 2: the primary batch plus the extra batch, every loss term the sum of the two.
        for (k, v) in &both[1] {
            if k == "step" || k == "lr" || k == "grad_norm" || k.ends_with("_f1") || k.ends_with("_acc") {
                continue;
            }
            let want = primary[1][k] + neg[0][k];
            assert!(close(*v, want), "{k}: {v} vs {} + {} (primary + negatives)", primary[1][k], neg[0][k]);
        }
        assert!(neg[0]["core_loss"] > 0.0 && both[1]["core_loss"] > primary[1]["core_loss"] * 1.0001);
    }
    // The gradient is the sum too: two accumulated batch slots (primary, then the negatives replacing
    // the 2nd) average the same two gradients, so its norm is half the extra step's.
    let accum = frozen_te_variant(d, "accum", |t| {
        format!("{}\n[data.negatives]\ngt = \"{negatives}\"\nevery = 2\n", t.replace("steps = 3", "steps = 1").replace("batch_size = 2", "batch_size = 2\ngrad_accum = 2"))
    });
    assert!(close(accum[0]["core_loss"] * 2.0, both2[1]["core_loss"]), "{} vs {}", accum[0]["core_loss"], both2[1]["core_loss"]);
    assert!(close(accum[0]["grad_norm"] * 2.0, both2[1]["grad_norm"]), "grad norm {} vs {}", accum[0]["grad_norm"], both2[1]["grad_norm"]);
}

#[test]
fn a_run_with_an_extra_stream_resumes_to_the_same_bytes() {
    // lvis_replay_neg with its negatives as an extra batch (3-pair stream, so its cursor matters).
    let edit = |t: String| {
        t.replace("[data.negatives]\ngt = \"", "[data.negatives]\nextra = true\nbatch_size = 1\ngt = \"")
            .replace("train-set/negatives.json", "train-set/gt.json")
            .replace("checkpoints = [4]", "checkpoints = [1, 4]")
    };
    let dir = tempfile::tempdir().unwrap();
    let text = edit(std::fs::read_to_string(recipe("lvis_replay_neg")).unwrap().replace("../../", &format!("{}/", root().display())));
    assert!(text.contains("extra = true"), "the edit did not apply");
    let r = dir.path().join("r.toml");
    std::fs::write(&r, text).unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run(&r, &a, &Device::flex(), &NoProgress).unwrap();
    run(&r, &b, &Device::flex(), &NoProgress).unwrap();
    for f in ["step_000004.safetensors", "step_000004.json"] {
        std::fs::remove_file(b.join(f)).unwrap();
    }
    let s = run(&r, &b, &Device::flex(), &NoProgress).unwrap();
    assert_eq!(s.resumed_from, Some(1));
    for f in ["step_000004.safetensors", "loss.csv"] {
        assert!(std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(), "{f}: the resumed run differs");
    }
    // The extra stream moved its cursor: 2 due steps (2 and 4) × 1 pair.
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.join("step_000004.json")).unwrap()).unwrap();
    assert_eq!(m["state"]["cursors"]["negatives"]["next"], 2, "{}", m["state"]);
    assert_eq!(m["state"]["batches"], 4, "an extra batch is not a batch slot");
}

#[test]
fn bad_extra_streams_name_the_fault() {
    let e = bad(|t| t.replace("primary = true", "primary = true\nextra = true"));
    assert!(e.contains("extra") && e.contains("narrow"), "{e}");
    let e = bad(|t| t.replace("[data.replay]", "[data.replay]\nbatch_size = 3"));
    assert!(e.contains("batch_size") && e.contains("extra"), "{e}");
}

#[test]
fn a_shared_objective_sets_the_loss_and_refuses_local_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("objective.toml"), "loss_ce = 100.0\npresence_loss = 100.0\n").unwrap();
    let base = std::fs::read_to_string(recipe("frozen_te")).unwrap().replace("../../", &format!("{}/", root().display()));
    let write = |name: &str, extra: &str| {
        let p = d.join(name);
        std::fs::write(&p, format!("{base}\n{extra}")).unwrap();
        p
    };
    // Resolved relative to the recipe, its keys the loss weights (the others Meta's defaults).
    let r = sam3lab_train::Recipe::load(&write("shared.toml", "[loss]\nfrom = \"objective.toml\"\n")).unwrap();
    let inline = sam3lab_train::Recipe::load(&write("inline.toml", "[loss]\nloss_ce = 100.0\npresence_loss = 100.0\n")).unwrap();
    assert_eq!(r.loss, inline.loss);
    assert_ne!(r.loss, sam3lab_train::Recipe::load(&recipe("frozen_te")).unwrap().loss);
    assert_eq!(r.loss_from.as_ref().unwrap().0, d.join("objective.toml"));
    // A key beside `from` is an error naming it; so is a missing file and an unknown objective key.
    let e = sam3lab_train::Recipe::load(&write("tweak.toml", "[loss]\nfrom = \"objective.toml\"\nloss_mask = 1.0\n")).unwrap_err().to_string();
    assert!(e.contains("loss_mask") && e.contains("from"), "{e}");
    let e = sam3lab_train::Recipe::load(&write("missing.toml", "[loss]\nfrom = \"nowhere.toml\"\n")).unwrap_err().to_string();
    assert!(e.contains("nowhere.toml"), "{e}");
    std::fs::write(d.join("typo.toml"), "loss_cee = 1.0\n").unwrap();
    let e = sam3lab_train::Recipe::load(&write("typo_user.toml", "[loss]\nfrom = \"typo.toml\"\n")).unwrap_err().to_string();
    assert!(e.contains("loss_cee") && e.contains("typo.toml"), "{e}");
    // The same run as the inline block (same bytes); a changed objective is another run (no resume).
    let shared = d.join("shared.toml");
    let (a, b) = (d.join("a"), d.join("b"));
    run(&shared, &a, &Device::flex(), &NoProgress).unwrap();
    run(&d.join("inline.toml"), &b, &Device::flex(), &NoProgress).unwrap();
    assert!(std::fs::read(a.join("step_000003.safetensors")).unwrap() == std::fs::read(b.join("step_000003.safetensors")).unwrap());
    std::fs::write(d.join("objective.toml"), "loss_ce = 20.0\npresence_loss = 100.0\n").unwrap();
    let e = run(&shared, &a, &Device::flex(), &NoProgress).unwrap_err().to_string();
    assert!(e.contains("another recipe"), "{e}");
}

#[test]
fn the_world_recipes_share_one_objective() {
    let obj = root().join("data/world/objective.toml");
    for e in std::fs::read_dir(root().join("recipes/world")).unwrap() {
        let p = e.unwrap().path();
        let r = sam3lab_train::Recipe::load(&p).unwrap();
        let from = r.loss_from.as_ref().unwrap_or_else(|| panic!("{}: no `[loss] from`", p.display()));
        assert_eq!(std::fs::canonicalize(&from.0).unwrap(), std::fs::canonicalize(&obj).unwrap(), "{}", p.display());
    }
}
