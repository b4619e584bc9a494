//! `sam3lab_train::retrain` (the presence-head retrain behind `sam3lab retrain`, post §5) on the
//! fixture weights (`data/fixtures/sam3-tiny`) with small generated inputs: only the named tensors
//! move, the BCE falls, a reload of the written checkpoint gives the last trajectory row, the same
//! seed gives the same bytes, and the full mode's spilled image features train bit-identically.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::prelude::Device;
use sam3lab_util::progress::NoProgress;
use sam3lab_hooks::Hooks;
use sam3lab_model::predict::Predictor;
use sam3lab_probes::demo;
use sam3lab_runner::inputs::{self, Label};
use sam3lab_runner::model::sigmoid;
use sam3lab_train::retrain::{self, RetrainRequest};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny")
}

struct Setup {
    dir: tempfile::TempDir,
    inputs: demo::DemoInputs,
}

fn setup(images: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let inputs = demo::write_demo_inputs(dir.path(), images, 7).unwrap();
    Setup { dir, inputs }
}

fn dev() -> Device {
    Device::flex()
}

fn hidden() -> NoProgress {
    NoProgress
}

/// Every tensor of a safetensors file: name → (shape, raw bytes).
fn tensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors().into_iter().map(|(k, v)| (k, (v.shape().to_vec(), v.data().to_vec()))).collect()
}

fn retrain_req(s: &Setup, out: &Path, cached: bool, train: &[&str], steps: usize) -> RetrainRequest {
    RetrainRequest {
        ckpt: fixture(),
        config: None,
        train: train.iter().map(|t| t.to_string()).collect(),
        pairs: inputs::read_pairs(&s.inputs.pairs).unwrap(),
        steps,
        lr: 1e-2,
        pos_weight: 1.0,
        batch: 8,
        cached,
        seed: 3,
        log_every: 5,
        max_cached_images: 64,
        out: out.to_path_buf(),
        save_at: vec![],
        device: dev(),
    }
}

/// Keys whose bytes differ between the input and output checkpoints (all keys must be present in both).
fn changed_keys(a: &Path, b: &Path) -> BTreeSet<String> {
    let (x, y) = (tensors(a), tensors(b));
    assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>(), "same tensors");
    x.iter().filter(|(k, v)| y[*k] != **v).map(|(k, _)| k.clone()).collect()
}

/// Mean presence σ over positives and negatives with a checkpoint, by plain forwards.
fn presence_means(ckpt: &Path, config: Option<&Path>, pairs: &inputs::Pairs) -> (f64, f64) {
    let m = Predictor::load(ckpt, config, &dev()).unwrap();
    let mut s = [(0.0, 0usize); 2];
    for p in &pairs.pairs {
        let enc = m.encode_image_file(&p.image).unwrap();
        let d = m.segment(&enc, &p.prompt, &[], 0.5, &mut Hooks::none()).unwrap();
        let k = usize::from(p.label == Label::Neg);
        s[k].0 += sigmoid(d.presence_logit as f64);
        s[k].1 += 1;
    }
    (s[0].0 / s[0].1 as f64, s[1].0 / s[1].1 as f64)
}

#[test]
fn retraining_moves_only_the_named_tensors_and_lowers_the_bce() {
    let s = setup(3);
    let input = fixture().join("weights.safetensors");
    let config = fixture().join("config.json");
    let head: BTreeSet<String> = [
        "presence_token_out_norm.weight",
        "presence_token_out_norm.bias",
        "presence_token_head.layers.0.weight",
        "presence_token_head.layers.0.bias",
        "presence_token_head.layers.1.weight",
        "presence_token_head.layers.1.bias",
        "presence_token_head.layers.2.weight",
        "presence_token_head.layers.2.bias",
    ]
    .iter()
    .map(|n| format!("transformer.decoder.{n}"))
    .collect();

    // Cached mode with the post's glob: the presence token matches but stays frozen.
    let out_c = s.dir.path().join("cached.safetensors");
    let (rc, _) = retrain::run(&retrain_req(&s, &out_c, true, &["transformer.decoder.presence_token*"], 60), &hidden()).unwrap();
    assert_eq!(changed_keys(&input, &out_c), head);
    assert_eq!(rc.frozen_by_cached_mode, vec!["transformer.decoder.presence_token.weight".to_string()]);
    let (first, last) = (&rc.trajectory[0], rc.trajectory.last().unwrap());
    assert_eq!((first.step, last.step), (0, 60));
    assert!(last.balanced_loss < first.balanced_loss - 0.05, "BCE {} → {}", first.balanced_loss, last.balanced_loss);
    // The written checkpoint is the trained one: its presence σ means equal the last trajectory row.
    let pairs = inputs::read_pairs(&s.inputs.pairs).unwrap();
    let (pos, neg) = presence_means(&out_c, Some(&config), &pairs);
    assert!((pos - last.pos_sigma).abs() < 1e-5 && (neg - last.neg_sigma).abs() < 1e-5, "{pos} {neg} vs {last:?}");

    // Same seed → same bytes.
    let bytes = (std::fs::read(&out_c).unwrap(), std::fs::read(retrain::manifest_path(&out_c)).unwrap());
    retrain::run(&retrain_req(&s, &out_c, true, &["transformer.decoder.presence_token*"], 60), &hidden()).unwrap();
    assert!(std::fs::read(&out_c).unwrap() == bytes.0, "checkpoint bytes differ between two runs");
    assert!(std::fs::read(retrain::manifest_path(&out_c)).unwrap() == bytes.1, "manifest bytes differ");

    // Full mode: the presence token trains too; nothing else moves.
    let out_f = s.dir.path().join("full.safetensors");
    let (rf, _) = retrain::run(&retrain_req(&s, &out_f, false, &["transformer.decoder.presence_token*"], 10), &hidden()).unwrap();
    let mut want = head.clone();
    want.insert("transformer.decoder.presence_token.weight".into());
    assert_eq!(changed_keys(&input, &out_f), want);
    assert!(rf.trajectory.last().unwrap().balanced_loss < rf.trajectory[0].balanced_loss);
    // Step 0 of the cached mode (head(norm(q0)) on captured q0) equals the full forward's.
    for (a, b) in [(first.pos_sigma, rf.trajectory[0].pos_sigma), (first.neg_bce, rf.trajectory[0].neg_bce)] {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }

    // A glob that matches nothing names the closest parameters; an unknown one in cached mode too.
    let e = retrain::run(&retrain_req(&s, &out_f, false, &["transformer.decoder.presense_token*"], 1), &hidden())
        .unwrap_err()
        .to_string();
    assert!(e.contains("presense_token*") && e.contains("transformer.decoder.presence_token"), "{e}");
    let e = retrain::run(&retrain_req(&s, &out_f, true, &["transformer.decoder.norm.*"], 1), &hidden()).unwrap_err().to_string();
    assert!(e.contains("--cached"), "{e}");
}

/// Full mode with more distinct images than `max_cached_images` (the post's ~5,000 images against a
/// bounded cache): the trunk + neck still run once per image for the whole run — the overflow is
/// spilled to disk and read back — and the result is bit-identical to keeping every image in memory.
#[test]
fn full_retrain_encodes_each_image_once_and_spills_the_overflow() {
    let s = setup(3);
    let pairs = inputs::read_pairs(&s.inputs.pairs).unwrap();
    let distinct: BTreeSet<&Path> = pairs.pairs.iter().map(|p| p.image.as_path()).collect();
    assert!(distinct.len() >= 3, "{} images", distinct.len());
    let glob = ["transformer.decoder.presence_token*"];
    let run = |name: &str, cap: usize| {
        let out = s.dir.path().join(name);
        let req = RetrainRequest { max_cached_images: cap, ..retrain_req(&s, &out, false, &glob, 12) };
        let (_, t) = retrain::run(&req, &hidden()).unwrap();
        (std::fs::read(&out).unwrap(), std::fs::read(retrain::manifest_path(&out)).unwrap(), t)
    };
    let (ckpt_mem, _, t_mem) = run("mem.safetensors", 64);
    assert_eq!(t_mem.image_encodes, distinct.len());
    assert_eq!((t_mem.spilled_images, t_mem.spilled_bytes), (0, 0));
    let (ckpt_spill, _, t_spill) = run("spill.safetensors", 1);
    assert_eq!(t_spill.image_encodes, distinct.len(), "one trunk + neck run per image, not per use");
    assert_eq!(t_spill.spilled_images, distinct.len() - 1);
    assert!(t_spill.spilled_bytes > 0);
    assert!(ckpt_spill == ckpt_mem, "spilled features must give the same training");
    // the spill directory is gone
    let left: Vec<String> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("spill-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// `save_at`: the checkpoint written after step k of a longer run equals a run of k steps (same
/// seed: the sampling and the optimiser's path do not depend on the total), in both modes.
#[test]
fn save_at_writes_the_k_step_checkpoint() {
    let s = setup(2);
    for cached in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let glob: &[&str] = &["transformer.decoder.presence_token*"];
        let long = dir.path().join("long/final.safetensors");
        std::fs::create_dir_all(long.parent().unwrap()).unwrap();
        let req = RetrainRequest { save_at: vec![3], ..retrain_req(&s, &long, cached, glob, 6) };
        retrain::run(&req, &NoProgress).unwrap();
        let short = dir.path().join("short.safetensors");
        retrain::run(&retrain_req(&s, &short, cached, glob, 3), &NoProgress).unwrap();
        let mid = retrain::intermediate_path(&long, 3);
        assert_eq!(tensors(&mid), tensors(&short), "cached {cached}: step 3 of 6 differs from a 3-step run");
        assert_ne!(tensors(&mid), tensors(&long), "cached {cached}");
        let bad = RetrainRequest { save_at: vec![6], ..retrain_req(&s, &long, cached, glob, 6) };
        assert!(retrain::run(&bad, &NoProgress).unwrap_err().to_string().contains("--save-at 6"));
    }
}
