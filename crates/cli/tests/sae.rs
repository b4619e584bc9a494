//! `sam3lab sae train|eval|rank` end to end on synthetic caches (small: d = 16, m = 32, 2000 rows).

use std::path::Path;
use std::process::Command;

use burn::prelude::*;
use sam3lab_hooks::{ActivationCache, DynTensor};
use serde_json::{Value, json};

const P: &str = "decoder.layers.5.q0";

fn sam3lab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sam3lab")).args(args).output().expect("run sam3lab");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn write_cache(path: &Path, shape: Vec<usize>, values: Vec<f32>, sha: &str, extra: Value) {
    let mut c = ActivationCache::default();
    c.insert(P, DynTensor::from_vec(values, shape, &Device::flex()));
    c.manifest.checkpoint_sha256 = sha.into();
    if let Value::Object(m) = extra {
        c.manifest.extra = m.into_iter().collect();
    }
    c.save(path).unwrap();
}

/// 2000 rows = sparse sums of 16 fixed unit directions in d = 16 plus an offset, in 4 cache files.
fn write_sparse_set(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = sam3lab_util::rng::Rng::new(7);
    let mut u = move || rng.u01();
    let dirs: Vec<Vec<f64>> = (0..16)
        .map(|_| {
            let v: Vec<f64> = (0..16).map(|_| u() - 0.5).collect();
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.into_iter().map(|x| x / n).collect()
        })
        .collect();
    for f in 0..4 {
        let mut vals = Vec::new();
        for _ in 0..500 {
            let mut x: Vec<f64> = (0..16).map(|i| 0.2 * i as f64 / 16.0).collect();
            for e in &dirs {
                if u() < 0.125 {
                    let a = 0.5 + u();
                    x.iter_mut().zip(e).for_each(|(xi, ei)| *xi += a * ei);
                }
            }
            vals.extend(x.into_iter().map(|v| v as f32));
        }
        write_cache(&dir.join(format!("c{f}.safetensors")), vec![500, 16], vals, "sha-synthetic", json!({}));
    }
}

#[test]
fn train_eval_are_deterministic_and_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    write_sparse_set(&t.join("acts"));
    let acts = format!("base={}", t.join("acts").display());
    let train = |out: &str, extra: &[&str]| {
        let o = t.join(out);
        let mut a = vec!["sae", "train", "--acts", &acts, "--point", P, "--width", "32", "--steps", "300", "--lr", "3e-3", "--batch", "256", "--seed", "3", "--out", o.to_str().unwrap()];
        a.extend_from_slice(extra);
        let (code, so, se) = sam3lab(&a);
        assert_eq!(code, 0, "stdout {so}\nstderr {se}");
        so
    };
    let so = train("a", &["--l1", "1.0"]);
    assert!(so.contains("rows/s") && so.contains("explained_variance"), "{so}");
    train("b", &["--l1", "1.0"]);
    train("k", &["--topk", "3"]);
    for f in ["sae.safetensors", "sae.json"] {
        assert_eq!(std::fs::read(t.join("a").join(f)).unwrap(), std::fs::read(t.join("b").join(f)).unwrap(), "{f} differs for the same seed");
    }
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(t.join("a/sae.json")).unwrap()).unwrap();
    assert_eq!(meta["train"]["seed"], 3);
    assert_eq!(meta["sources"][0]["checkpoints"][0]["checkpoint_sha256"], "sha-synthetic");
    let ev = meta["metrics"]["base"]["explained_variance"].as_f64().unwrap();
    assert!(ev > 0.8, "explained variance {ev}");
    let (sae, _) = sam3lab_sae::io::load(&t.join("a"), &Device::flex()).unwrap();
    assert!(sae.to_weights().decoder_norms().iter().all(|n| (n - 1.0).abs() < 1e-5));
    let kmeta: Value = serde_json::from_str(&std::fs::read_to_string(t.join("k/sae.json")).unwrap()).unwrap();
    assert_eq!(kmeta["activation"], json!({"kind": "topk", "k": 3}));
    assert!((kmeta["metrics"]["base"]["l0"].as_f64().unwrap() - 3.0).abs() < 0.05);

    // eval on the same rows reproduces the training-time metrics
    let m = t.join("m.json");
    let (code, so, se) = sam3lab(&["sae", "eval", "--sae", t.join("a").to_str().unwrap(), "--acts", &acts, "--out", m.to_str().unwrap()]);
    assert_eq!(code, 0, "{so}{se}");
    let ev2: Value = serde_json::from_str(&std::fs::read_to_string(&m).unwrap()).unwrap();
    assert_eq!(ev2["metrics"]["base"], meta["metrics"]["base"]);
    assert_eq!(ev2["sae"]["weights_sha256"], meta["weights_sha256"]);
}

/// Identity SAE (d = m = 4): feature j fires iff x_j > 0.
fn identity_sae(dir: &Path) {
    let eye: Vec<f32> = (0..16).map(|i| if i / 4 == i % 4 { 1.0 } else { 0.0 }).collect();
    let w = sam3lab_sae::SaeWeights { d_in: 4, width: 4, w_enc: eye.clone(), b_enc: vec![0.0; 4], w_dec: eye, b_dec: vec![0.0; 4] };
    let meta = sam3lab_sae::SaeMeta {
        format: sam3lab_sae::io::FORMAT.into(),
        sam3lab_version: "test".into(),
        d_in: 4,
        width: 4,
        activation: sam3lab_sae::Activation::Relu,
        point: P.into(),
        feature_axis: None,
        act_scale: 1.0,
        train: None,
        effective_batch: None,
        sources: vec![],
        metrics: Default::default(),
        log: vec![],
        weights_sha256: String::new(),
    };
    sam3lab_sae::io::save(dir, &w, &meta).unwrap();
}

#[test]
fn rank_finds_the_feature_whose_negative_firing_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    identity_sae(&t.join("sae"));
    // 20 neg + 20 pos pairs; feature 3 fires on 15/20 negatives in `replay`, 19/20 in `replay_neg`,
    // 2/20 positives in both; feature 1 fires on everything.
    let pairs: String = (0..40).map(|i| format!("{}\n", json!({"image": format!("i{i}.jpg"), "prompt": "p", "label": if i < 20 {"neg"} else {"pos"}}))).collect();
    std::fs::write(t.join("pairs.jsonl"), pairs).unwrap();
    for (label, n3) in [("replay", 15), ("replay_neg", 19)] {
        let d = t.join(label);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..40usize {
            let fires3 = if i < 20 { i < n3 } else { i - 20 < 2 };
            let x = vec![-1.0, 1.0, -1.0, if fires3 { 2.0 } else { -2.0 }];
            // per-forward caches listed in a jsonl file that carries the pair ids
            write_cache(&d.join(format!("f{i}.safetensors")), vec![1, 4], x, &format!("sha-{label}"), json!({}));
        }
        let list: String = (0..40).map(|i| format!("{}\n", json!({"path": format!("f{i}.safetensors"), "pair": i}))).collect();
        std::fs::write(d.join("list.jsonl"), list).unwrap();
    }
    let sae = t.join("sae");
    let out = t.join("rank");
    let a = format!("replay={}", t.join("replay/list.jsonl").display());
    let b = format!("replay_neg={}", t.join("replay_neg/list.jsonl").display());
    let pairs = t.join("pairs.jsonl");
    let (code, so, se) = sam3lab(&["sae", "rank", "--sae", sae.to_str().unwrap(), "--acts", &a, &b, "--pairs", pairs.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{so}{se}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(out.join("rank.json")).unwrap()).unwrap();
    assert_eq!(r["features"][0]["feature"], 3, "{so}");
    assert!((r["features"][0]["score"].as_f64().unwrap() - 0.2).abs() < 1e-12);
    assert_eq!(r["features"][0]["rates"][0]["fire_neg"], 0.75);
    assert_eq!(r["features"][0]["rates"][1]["fire_neg"], 0.95);
    assert_eq!(r["checkpoints"][1]["source"]["checkpoints"][0]["checkpoint_sha256"], "sha-replay_neg");
    assert!(r["pairs"]["sha256"].as_str().unwrap().len() == 64);
    let csv = std::fs::read_to_string(out.join("rank.csv")).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("1,3,")), "{csv}");

    // unknown label → exit 2 naming it and the known ones
    let (code, _, se) = sam3lab(&["sae", "rank", "--sae", sae.to_str().unwrap(), "--acts", &a, &b, "--from", "replay", "--to", "replay-neg", "--out", t.join("r2").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(se.contains("unknown checkpoint label `replay-neg`") && se.contains("replay_neg"), "{se}");
    assert!(!t.join("r2/rank.json").exists());
}

#[test]
fn bad_inputs_exit_2_with_named_errors_and_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    write_cache(&t.join("a.safetensors"), vec![8, 4], vec![0.5; 32], "", json!({}));
    let o = t.join("out");
    let run = |point: &str, acts: &str, extra: &[&str]| {
        let mut a = vec!["sae", "train", "--acts", acts, "--point", point, "--width", "8", "--steps", "5", "--out", o.to_str().unwrap()];
        a.extend_from_slice(extra);
        sam3lab(&a)
    };
    let acts = t.join("a.safetensors");
    let acts = acts.to_str().unwrap();
    let (code, _, se) = run("decoder.layers.5.q1", acts, &["--l1", "1"]);
    assert_eq!(code, 2);
    assert!(se.contains("a.safetensors") && se.contains("decoder.layers.5.q1") && se.contains(P), "{se}");
    let (code, _, se) = run(P, t.join("missing").to_str().unwrap(), &["--l1", "1"]);
    assert_eq!(code, 2);
    assert!(se.contains("missing"), "{se}");
    let (code, _, se) = run(P, acts, &["--l1", "1", "--topk", "2"]);
    assert_eq!(code, 2, "{se}");
    let (code, _, se) = run(P, acts, &["--topk", "9"]);
    assert_eq!(code, 2);
    assert!(se.contains("k = 9"), "{se}");
    // rank-mismatched activations across two sources
    write_cache(&t.join("b.safetensors"), vec![2, 2, 4], vec![0.5; 16], "", json!({}));
    let (code, _, se) = run(P, acts, &["--l1", "1", "--acts", t.join("b.safetensors").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(se.contains("b.safetensors") && se.contains("rank 3 differs from rank 2"), "{se}");
    write_cache(&t.join("c.safetensors"), vec![2, 3], vec![0.5; 6], "", json!({}));
    let (code, _, se) = run(P, acts, &["--l1", "1", "--acts", t.join("c.safetensors").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(se.contains("d = 3") && se.contains("d = 4"), "{se}");
    assert!(!o.join("sae.json").exists() && !o.join("sae.safetensors").exists());
}

#[test]
fn synth_train_match_recovers_planted_directions() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().to_str().unwrap().to_string();
    let (code, so, se) = sam3lab(&["sae", "synth", "--d", "16", "--features", "16", "--rows", "3000", "--rows-per-file", "1000", "--active", "2", "--seed", "4", "--out", &t]);
    assert_eq!(code, 0, "{so}{se}");
    assert_eq!(std::fs::read_dir(format!("{t}/acts")).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "safetensors")).count(), 3);
    let (code, so, se) = sam3lab(&["sae", "train", "--acts", &format!("{t}/acts"), "--point", P, "--width", "32", "--topk", "3", "--steps", "1500", "--lr", "3e-3", "--batch", "256", "--out", &format!("{t}/sae")]);
    assert_eq!(code, 0, "{so}{se}");
    let (code, so, _) = sam3lab(&["sae", "match", "--sae", &format!("{t}/sae"), "--directions", &format!("{t}/directions.safetensors"), "--require", "0.9"]);
    assert_eq!(code, 0, "{so}");
    assert!(so.contains("> 0.9: 16/16"), "{so}");
    // the check can fail: nothing is matched at cos ≥ 0.999999
    let (code, so, _) = sam3lab(&["sae", "match", "--sae", &format!("{t}/sae"), "--directions", &format!("{t}/directions.safetensors"), "--require", "0.999999"]);
    assert_eq!(code, 1, "{so}");
    assert!(so.contains("FAIL"), "{so}");
}
