//! Metrics against hand computations, the activation-set contract, the SAE directory format,
//! feature ranking on constructed fire rates, and named errors on bad input.
mod common;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use common::*;
use sam3lab_sae::io::{self, SaeMeta};
use sam3lab_sae::{Activation, ActivationSet, Sae, SaeWeights, Sparsity, TrainConfig, evaluate, load_sets, rank, read_pairs, train_and_save};
use serde_json::json;

const P: &str = "decoder.layers.5.q0";

/// The hand case (d = 2, m = 2), see `metrics_match_hand_computation`.
fn hand_sae() -> SaeWeights {
    SaeWeights {
        d_in: 2,
        width: 2,
        w_enc: vec![1.0, 0.0, 0.0, 1.0],
        b_enc: vec![0.0, -10.0],
        w_dec: vec![1.0, 0.0, 0.0, 1.0],
        b_dec: vec![0.5, 0.0],
    }
}
const HAND_ROWS: [f32; 6] = [1.0, 2.0, -1.0, 0.5, 3.0, -1.0];

#[test]
fn metrics_match_hand_computation() {
    // pre = x − b_dec + b_enc: (0.5, −8), (−1.5, −9.5), (2.5, −11) → f = (0.5, 0), (0, 0), (2.5, 0)
    // x̂ = f W_dec + b_dec = (1, 0), (0.5, 0), (3, 0); x − x̂ = (0, 2), (−1.5, 0.5), (0, −1)
    // Σ‖x − x̂‖² = 4 + 2.5 + 1 = 7.5;  MSE = 7.5 / (3 rows · 2 dims) = 1.25
    // x̄ = (1, 0.5); Σ‖x − x̄‖² = 2.25 + 4 + 6.25 = 12.5;  EV = 1 − 7.5/12.5 = 0.4
    // L0 = (1 + 0 + 1)/3; L1 = (0.5 + 0 + 2.5)/3 = 1; feature 1 never fires → 1 dead of 2
    let sae = Sae::from_weights(&hand_sae(), Activation::Relu, &Device::flex()).unwrap();
    let m = evaluate(&sae, &HAND_ROWS, 2);
    assert_eq!(m.rows, 3);
    assert!((m.mse - 1.25).abs() < 1e-9, "{m:?}");
    assert!((m.explained_variance.unwrap() - 0.4).abs() < 1e-9, "{m:?}");
    assert!((m.l0 - 2.0 / 3.0).abs() < 1e-12 && (m.l1 - 1.0).abs() < 1e-9, "{m:?}");
    assert_eq!((m.dead_features, m.dead_fraction), (1, 0.5));
    // One row: no variance → EV undefined (null), not 1 or NaN.
    assert_eq!(evaluate(&sae, &HAND_ROWS[..2], 2).explained_variance, None);
}

#[test]
fn topk_keeps_k_largest_per_row() {
    let w = SaeWeights { d_in: 4, width: 4, w_enc: eye(4), b_enc: vec![0.0; 4], w_dec: eye(4), b_dec: vec![0.0; 4] };
    let sae = Sae::from_weights(&w, Activation::Topk { k: 2 }, &Device::flex()).unwrap();
    let x = Tensor::<2>::from_data(burn::tensor::TensorData::new(vec![3.0f32, -1.0, 2.0, 1.0, -5.0, -4.0, 0.5, -3.0], [2, 4]), &Device::flex());
    let f = sae.encode(x).to_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    // row 0 keeps 3 and 2; row 1 keeps 0.5 and (−3 → ReLU → 0)
    assert_eq!(f, vec![3.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.5, 0.0]);
}

fn eye(n: usize) -> Vec<f32> {
    (0..n * n).map(|i| if i / n == i % n { 1.0 } else { 0.0 }).collect()
}

/// Token axes are flattened into rows, so the metrics of a (1, 3, 2) cache equal those of the (3, 2) rows;
/// a channel-first layout with `feature_axis` gives the same rows.
#[test]
fn activation_sets_flatten_token_axes_and_read_every_source_kind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_cache(&d.join("a.safetensors"), P, vec![1, 3, 2], HAND_ROWS.to_vec(), "sha-a", &[]);
    // (1, 2, 3) channel-first: element (0, f, t) = row t, feature f
    let cf: Vec<f32> = (0..2).flat_map(|f| (0..3).map(move |t| HAND_ROWS[t * 2 + f])).collect();
    write_cache(&d.join("cf.safetensors"), P, vec![1, 2, 3], cf, "sha-a", &[]);
    let tok = ActivationSet::load(d.join("a.safetensors").to_str().unwrap(), P, None).unwrap();
    assert_eq!((tok.n_rows(), tok.d, tok.rows.as_slice()), (3, 2, &HAND_ROWS[..]));
    let chf = ActivationSet::load(d.join("cf.safetensors").to_str().unwrap(), P, Some(1)).unwrap();
    assert_eq!(chf.rows, HAND_ROWS.to_vec());
    let sae = Sae::from_weights(&hand_sae(), Activation::Relu, &Device::flex()).unwrap();
    assert!((evaluate(&sae, &tok.rows, 2).mse - 1.25).abs() < 1e-9);

    // Directory (sorted by name, sidecar .json ignored), text list and jsonl list.
    let sub = d.join("set");
    std::fs::create_dir(&sub).unwrap();
    write_cache(&sub.join("b.safetensors"), P, vec![2, 2], vec![5.0, 6.0, 7.0, 8.0], "s", &[]);
    write_cache(&sub.join("a.safetensors"), P, vec![1, 2], vec![1.0, 2.0], "s", &[]);
    let ds = ActivationSet::load(sub.to_str().unwrap(), P, None).unwrap();
    assert_eq!(ds.rows, vec![1.0, 2.0, 5.0, 6.0, 7.0, 8.0]);
    assert_eq!(ds.files.len(), 2);
    std::fs::write(d.join("list.txt"), "# comment\nset/b.safetensors\n\nset/a.safetensors\n").unwrap();
    let ls = ActivationSet::load(d.join("list.txt").to_str().unwrap(), P, None).unwrap();
    assert_eq!(ls.rows, vec![5.0, 6.0, 7.0, 8.0, 1.0, 2.0]);
    std::fs::write(d.join("list.jsonl"), "{\"path\": \"set/a.safetensors\", \"label\": \"neg\", \"pair\": 3}\n").unwrap();
    let js = ActivationSet::load(d.join("list.jsonl").to_str().unwrap(), P, None).unwrap();
    assert_eq!(js.files[0].labels, vec![Some(sam3lab_sae::PairLabel::Neg)]);
    assert_eq!(js.files[0].pairs, vec![Some(3)]);
}

#[test]
fn bad_activation_inputs_give_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    write_cache(&d.join("ok.safetensors"), P, vec![2, 4], vec![0.0; 8], "", &[]);
    // point missing: names the file, the point and the nearest captured name
    let e = ActivationSet::load(&s(&d.join("ok.safetensors")), "decoder.layers.5.q1", None).unwrap_err().to_string();
    assert!(e.contains("ok.safetensors") && e.contains("decoder.layers.5.q1") && e.contains(P), "{e}");
    // rank mismatch inside one set
    let m = d.join("mixed");
    std::fs::create_dir(&m).unwrap();
    write_cache(&m.join("a.safetensors"), P, vec![2, 4], vec![0.0; 8], "", &[]);
    write_cache(&m.join("b.safetensors"), P, vec![1, 2, 4], vec![0.0; 8], "", &[]);
    let e = ActivationSet::load(&s(&m), P, None).unwrap_err().to_string();
    assert!(e.contains("b.safetensors") && e.contains("rank 3") && e.contains("[1, 2, 4]"), "{e}");
    // d mismatch inside one set
    let w = d.join("width");
    std::fs::create_dir(&w).unwrap();
    write_cache(&w.join("a.safetensors"), P, vec![2, 4], vec![0.0; 8], "", &[]);
    write_cache(&w.join("b.safetensors"), P, vec![2, 3], vec![0.0; 6], "", &[]);
    let e = ActivationSet::load(&s(&w), P, None).unwrap_err().to_string();
    assert!(e.contains("b.safetensors") && e.contains("d = 3"), "{e}");
    // rank-1 tensor
    write_cache(&d.join("r1.safetensors"), P, vec![4], vec![0.0; 4], "", &[]);
    let e = ActivationSet::load(&s(&d.join("r1.safetensors")), P, None).unwrap_err().to_string();
    assert!(e.contains("at least 2 axes"), "{e}");
    // bad label value / wrong-length array / list-file conflict
    write_cache(&d.join("lab.safetensors"), P, vec![2, 4], vec![0.0; 8], "", &[("label", json!("maybe"))]);
    let e = ActivationSet::load(&s(&d.join("lab.safetensors")), P, None).unwrap_err().to_string();
    assert!(e.contains("extra.label") && e.contains("maybe"), "{e}");
    write_cache(&d.join("arr.safetensors"), P, vec![2, 4], vec![0.0; 8], "", &[("pair", json!([1, 2, 3]))]);
    let e = ActivationSet::load(&s(&d.join("arr.safetensors")), P, None).unwrap_err().to_string();
    assert!(e.contains("extra.pair") && e.contains("3 entries"), "{e}");
    write_cache(&d.join("neg.safetensors"), P, vec![1, 4], vec![0.0; 4], "", &[("label", json!("neg"))]);
    std::fs::write(d.join("c.jsonl"), "{\"path\": \"neg.safetensors\", \"label\": \"pos\"}\n").unwrap();
    let e = ActivationSet::load(&s(&d.join("c.jsonl")), P, None).unwrap_err().to_string();
    assert!(e.contains("neg.safetensors") && e.contains("list file says"), "{e}");
    // non-finite activations
    write_cache(&d.join("nan.safetensors"), P, vec![2, 4], vec![0.0, 0.0, 0.0, 0.0, 0.0, f32::NAN, 0.0, 0.0], "", &[]);
    let e = ActivationSet::load(&s(&d.join("nan.safetensors")), P, None).unwrap_err().to_string();
    assert!(e.contains("nan.safetensors") && e.contains("non-finite") && e.contains("row 1"), "{e}");
    // list naming a missing file; empty directory; not a cache
    std::fs::write(d.join("l.txt"), "nope.safetensors\n").unwrap();
    let e = ActivationSet::load(&s(&d.join("l.txt")), P, None).unwrap_err().to_string();
    assert!(e.contains("line 1") && e.contains("nope.safetensors"), "{e}");
    std::fs::create_dir(d.join("empty")).unwrap();
    let e = ActivationSet::load(&s(&d.join("empty")), P, None).unwrap_err().to_string();
    assert!(e.contains("no .safetensors"), "{e}");
    std::fs::write(d.join("junk.safetensors"), b"junk").unwrap();
    let e = ActivationSet::load(&s(&d.join("junk.safetensors")), P, None).unwrap_err().to_string();
    assert!(e.contains("junk.safetensors") && e.contains("not a safetensors"), "{e}");
}

/// Synthetic caches of the standard problem, split over files of 500 rows.
fn write_problem(dir: &Path, k: usize, seed: u64) -> (Vec<Vec<f64>>, Vec<f32>) {
    let (dirs, rows) = standard_problem(k, seed);
    std::fs::create_dir_all(dir).unwrap();
    for (i, chunk) in rows.chunks(500 * 16).enumerate() {
        write_cache(&dir.join(format!("c{i:02}.safetensors")), P, vec![chunk.len() / 16, 16], chunk.to_vec(), "ckpt-sha", &[]);
    }
    (dirs, rows)
}

fn small_cfg(seed: u64) -> TrainConfig {
    let mut c = TrainConfig::new(32, Sparsity::L1 { coeff: 1.0 });
    c.steps = 300;
    c.lr = 3e-3;
    c.batch = 256;
    c.seed = seed;
    c.log_every = 50;
    c
}

#[test]
fn saved_sae_is_byte_identical_per_seed_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let acts = dir.path().join("acts");
    let (dirs, rows) = write_problem(&acts, 16, 21);
    let sets = load_sets(&[format!("base={}", acts.display())], P, None, false).unwrap();
    let out = |n: &str| dir.path().join(n);
    let ma = train_and_save(&sets, P, None, &small_cfg(5), &out("a"), &mut |_, _| {}).unwrap();
    train_and_save(&sets, P, None, &small_cfg(5), &out("b"), &mut |_, _| {}).unwrap();
    train_and_save(&sets, P, None, &small_cfg(6), &out("c"), &mut |_, _| {}).unwrap();
    let bytes = |d: &PathBuf, f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(bytes(&out("a"), "sae.safetensors"), bytes(&out("b"), "sae.safetensors"));
    assert_eq!(bytes(&out("a"), "sae.json"), bytes(&out("b"), "sae.json"));
    assert_ne!(bytes(&out("a"), "sae.safetensors"), bytes(&out("c"), "sae.safetensors"));

    // Round trip; the manifest names the seed, point, sources and checkpoint sha256.
    let (sae, meta) = io::load(&out("a"), &Device::flex()).unwrap();
    // (serde_json parses floats to within an ulp, so compare the identity fields exactly)
    assert_eq!((&meta.weights_sha256, &meta.train, &meta.sources), (&ma.weights_sha256, &ma.train, &ma.sources));
    assert_eq!(meta.log.len(), 6);
    assert_eq!(meta.train.as_ref().unwrap().seed, 5);
    assert_eq!(meta.point, P);
    assert_eq!(meta.sources[0].label.as_deref(), Some("base"));
    assert_eq!(meta.sources[0].checkpoints[0].checkpoint_sha256, "ckpt-sha");
    assert_eq!(meta.sources[0].files.len(), 8);
    let w = sae.to_weights();
    assert!(w.decoder_norms().iter().all(|n| (n - 1.0).abs() < 1e-5));

    // The metrics in sae.json equal a direct host computation from the saved weights on the raw rows.
    let (sse, sst) = direct_sse_sst(&w, &rows);
    let m = &meta.metrics["base"];
    assert_eq!(m.rows, 4000);
    assert!((m.mse - sse / (4000.0 * 16.0)).abs() < 1e-6 * m.mse.max(1e-9), "{} vs {}", m.mse, sse / 64000.0);
    assert!((m.explained_variance.unwrap() - (1.0 - sse / sst)).abs() < 1e-6);
    assert!(m.explained_variance.unwrap() > 0.8, "{m:?}");
    let _ = dirs;

    // A torn pair (weights edited after the manifest) is refused.
    let mut wb = bytes(&out("b"), "sae.safetensors");
    let n = wb.len();
    wb[n - 1] ^= 1;
    std::fs::write(out("b").join("sae.safetensors"), wb).unwrap();
    let e = io::load(&out("b"), &Device::flex()).unwrap_err().to_string();
    assert!(e.contains("sha256") && e.contains("sae.safetensors"), "{e}");
    let e = io::load(&dir.path().join("nope"), &Device::flex()).unwrap_err().to_string();
    assert!(e.contains("sae.json"), "{e}");
}

/// Σ‖x − x̂‖² and Σ‖x − x̄‖² in f64 with a plain loop (independent of the burn forward).
fn direct_sse_sst(w: &SaeWeights, rows: &[f32]) -> (f64, f64) {
    let (d, m) = (w.d_in, w.width);
    let n = rows.len() / d;
    let mut mean = vec![0f64; d];
    for r in rows.chunks(d) {
        for i in 0..d {
            mean[i] += r[i] as f64 / n as f64;
        }
    }
    let (mut sse, mut sst) = (0.0, 0.0);
    for r in rows.chunks(d) {
        let f: Vec<f64> = (0..m)
            .map(|j| {
                let pre: f64 = (0..d).map(|i| (r[i] - w.b_dec[i]) as f64 * w.w_enc[i * m + j] as f64).sum::<f64>() + w.b_enc[j] as f64;
                pre.max(0.0)
            })
            .collect();
        for i in 0..d {
            let xh: f64 = (0..m).map(|j| f[j] * w.w_dec[j * d + i] as f64).sum::<f64>() + w.b_dec[i] as f64;
            sse += (r[i] as f64 - xh).powi(2);
            sst += (r[i] as f64 - mean[i]).powi(2);
        }
    }
    (sse, sst)
}

/// Identity SAE on d = m = 4: feature j fires exactly when x_j > 0, so fire rates are set by construction.
fn identity_sae(dir: &Path) -> (Sae, SaeMeta) {
    let w = SaeWeights { d_in: 4, width: 4, w_enc: eye(4), b_enc: vec![0.0; 4], w_dec: eye(4), b_dec: vec![0.0; 4] };
    let meta = SaeMeta {
        format: io::FORMAT.into(),
        sam3lab_version: "test".into(),
        d_in: 4,
        width: 4,
        activation: Activation::Relu,
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
    io::save(dir, &w, &meta).unwrap();
    io::load(dir, &Device::flex()).unwrap()
}

/// Per checkpoint: how many of the 20 negatives / 20 positives each feature fires on.
struct Plan {
    label: &'static str,
    sha: &'static str,
    neg: [usize; 4],
    pos: [usize; 4],
}

/// Pairs 0..20 negative, 20..40 positive; one cache per forward with `extra.pair` (+ `extra.label`).
fn write_rank_problem(root: &Path, plans: &[Plan]) -> PathBuf {
    let pairs: String = (0..40)
        .map(|i| format!("{}\n", json!({"image": format!("img{i}.jpg"), "prompt": "a watch", "label": if i < 20 { "neg" } else { "pos" }})))
        .collect();
    std::fs::write(root.join("pairs.jsonl"), pairs).unwrap();
    for p in plans {
        let d = root.join(p.label);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..40 {
            let (k, counts) = if i < 20 { (i, &p.neg) } else { (i - 20, &p.pos) };
            // feature j fires on the first counts[j] items of its group
            let x: Vec<f32> = (0..4).map(|j| if k < counts[j] { 1.0 + j as f32 } else { -1.0 }).collect();
            let label = if i < 20 { "neg" } else { "pos" };
            write_cache(&d.join(format!("f{i:02}.safetensors")), P, vec![1, 4], x, p.sha, &[("pair", json!(i)), ("label", json!(label))]);
        }
    }
    root.join("pairs.jsonl")
}

#[test]
fn rank_puts_the_constructed_feature_first() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Feature 2 is the post's "base-recovery" feature: 100 % of base negatives, 75 % in lvis_replay,
    // 95 % in lvis_replay_neg, 10 % of positives throughout. Feature 1's raw rate moves more (50 → 80 %)
    // but equally on positives, so its selectivity does not change; feature 3 loses selectivity.
    let plans = [
        Plan { label: "base", sha: "sha-base", neg: [20, 10, 20, 6], pos: [20, 10, 2, 2] },
        Plan { label: "lvis_replay", sha: "sha-replay", neg: [20, 10, 15, 6], pos: [20, 10, 2, 2] },
        Plan { label: "lvis_replay_neg", sha: "sha-neg", neg: [20, 16, 19, 4], pos: [20, 16, 2, 2] },
    ];
    let pairs_path = write_rank_problem(root, &plans);
    let (sae, meta) = identity_sae(&root.join("sae"));
    let args: Vec<String> = plans.iter().map(|p| format!("{}={}", p.label, root.join(p.label).display())).collect();
    let sets = load_sets(&args, P, None, true).unwrap();
    let (pairs, sha) = read_pairs(&pairs_path).unwrap();
    let pa = Some((pairs_path.as_path(), pairs.as_slice(), sha.as_str()));
    let r = rank(&sae, &meta, &root.join("sae"), &sets, pa, Some("lvis_replay"), Some("lvis_replay_neg")).unwrap();
    // Independent expectation from the construction: score_j = (n_to − p_to)/20 − (n_from − p_from)/20.
    let expect = |j: usize| (plans[2].neg[j] as f64 - plans[2].pos[j] as f64 - plans[1].neg[j] as f64 + plans[1].pos[j] as f64) / 20.0;
    assert_eq!(r.features[0].feature, 2, "{:?}", r.features);
    assert!((r.features[0].score - expect(2)).abs() < 1e-12);
    let order: Vec<usize> = r.features.iter().map(|f| f.feature).collect();
    assert_eq!(order, vec![2, 0, 1, 3]); // 0.2, 0 (ties by index), 0, −0.1
    for f in &r.features {
        assert!((f.score - expect(f.feature)).abs() < 1e-12, "feature {}: {} vs {}", f.feature, f.score, expect(f.feature));
    }
    let f2 = &r.features[0].rates;
    assert_eq!((f2[0].fire_neg, f2[1].fire_neg, f2[2].fire_neg), (1.0, 0.75, 0.95));
    assert_eq!(f2[1].fire_pos, 0.1);
    assert!((f2[2].mean_neg - 19.0 * 3.0 / 20.0).abs() < 1e-9); // fires with value 3 on 19 of 20
    assert_eq!((r.checkpoints[1].rows_neg, r.checkpoints[1].rows_pos, r.checkpoints[1].pairs), (20, 20, 40));
    assert_eq!(r.checkpoints[2].source.checkpoints[0].checkpoint_sha256, "sha-neg");
    assert_eq!(r.pairs.as_ref().unwrap().count, 40);

    r.write(&root.join("out")).unwrap();
    let csv = std::fs::read_to_string(root.join("out/rank.csv")).unwrap();
    let data: Vec<&str> = csv.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(data.len(), 5);
    assert!(data[0].starts_with("rank,feature,score,base.fire_neg"), "{}", data[0]);
    let first: Vec<f64> = data[1].split(',').map(|c| c.parse().unwrap()).collect();
    assert_eq!(first.len(), 3 + 3 * 4);
    assert_eq!((first[0], first[1]), (1.0, 2.0));
    assert!((first[2] - 0.2).abs() < 1e-12 && first[3] == 1.0 && first[7] == 0.75 && first[11] == 0.95, "{}", data[1]);
    assert!(csv.contains("sha-replay") && csv.contains(&meta.weights_sha256));
    let back: sam3lab_sae::RankReport = serde_json::from_str(&std::fs::read_to_string(root.join("out/rank.json")).unwrap()).unwrap();
    assert_eq!((back.from.as_str(), back.to.as_str(), back.features.len()), ("lvis_replay", "lvis_replay_neg", 4));
    assert_eq!(back.features[0].rates, r.features[0].rates);

    // Without --pairs the labels come from extra.label: same answer.
    let r2 = rank(&sae, &meta, &root.join("sae"), &sets, None, Some("lvis_replay"), Some("lvis_replay_neg")).unwrap();
    assert_eq!(r2.features, r.features);

    // Unknown label / missing --from with three labels.
    let e = rank(&sae, &meta, &root.join("sae"), &sets, pa, Some("lvis_replay"), Some("lvis_repaly_neg")).unwrap_err().to_string();
    assert!(e.contains("unknown checkpoint label `lvis_repaly_neg`") && e.contains("lvis_replay_neg"), "{e}");
    let e = rank(&sae, &meta, &root.join("sae"), &sets, pa, None, None).unwrap_err().to_string();
    assert!(e.contains("--from") && e.contains("base"), "{e}");
}

#[test]
fn rank_refuses_inconsistent_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let plans = [
        Plan { label: "a", sha: "sha-a", neg: [20, 0, 0, 0], pos: [0; 4] },
        Plan { label: "b", sha: "sha-b", neg: [20, 0, 0, 0], pos: [0; 4] },
    ];
    let pairs_path = write_rank_problem(root, &plans);
    let (sae, meta) = identity_sae(&root.join("sae"));
    let sd = root.join("sae");
    let load = |args: &[String]| load_sets(args, P, None, true).unwrap();
    let args = vec![format!("a={}", root.join("a").display()), format!("b={}", root.join("b").display())];
    let (pairs, sha) = read_pairs(&pairs_path).unwrap();
    let pa = Some((pairs_path.as_path(), pairs.as_slice(), sha.as_str()));
    assert!(rank(&sae, &meta, &sd, &load(&args), pa, None, None).is_ok());

    // a pair file whose label contradicts the cache's extra.label
    let flipped = root.join("flipped.jsonl");
    let text = std::fs::read_to_string(&pairs_path).unwrap().replacen("\"neg\"", "\"pos\"", 1);
    std::fs::write(&flipped, text).unwrap();
    let (fp, fsha) = read_pairs(&flipped).unwrap();
    let e = rank(&sae, &meta, &sd, &load(&args), Some((flipped.as_path(), fp.as_slice(), fsha.as_str())), None, None).unwrap_err().to_string();
    assert!(e.contains("f00.safetensors") && e.contains("pair 0") && e.contains("\"neg\""), "{e}");

    // a pair index past the end of the pairs file
    let short = root.join("short.jsonl");
    std::fs::write(&short, std::fs::read_to_string(&pairs_path).unwrap().lines().take(10).collect::<Vec<_>>().join("\n")).unwrap();
    let (sp, ssha) = read_pairs(&short).unwrap();
    let e = rank(&sae, &meta, &sd, &load(&args), Some((short.as_path(), sp.as_slice(), ssha.as_str())), None, None).unwrap_err().to_string();
    assert!(e.contains("pair index 10") && e.contains("10 pairs"), "{e}");

    // a malformed pairs line
    std::fs::write(root.join("bad.jsonl"), "{\"image\": \"x\", \"prompt\": \"y\", \"label\": \"maybe\"}\n").unwrap();
    let e = read_pairs(&root.join("bad.jsonl")).unwrap_err().to_string();
    assert!(e.contains("bad.jsonl line 1"), "{e}");

    // different pair coverage between checkpoints
    std::fs::remove_file(root.join("b/f05.safetensors")).unwrap();
    let e = rank(&sae, &meta, &sd, &load(&args), pa, None, None).unwrap_err().to_string();
    assert!(e.contains("`b`") && e.contains("pair 5"), "{e}");

    // one label mixing two checkpoints
    write_cache(&root.join("a/zz.safetensors"), P, vec![1, 4], vec![1.0; 4], "sha-other", &[("pair", json!(0)), ("label", json!("neg"))]);
    let e = rank(&sae, &meta, &sd, &load(&args), pa, None, None).unwrap_err().to_string();
    assert!(e.contains("mixes checkpoints") && e.contains("zz.safetensors"), "{e}");
    std::fs::remove_file(root.join("a/zz.safetensors")).unwrap();

    // no label at all, and an SAE of another width
    let nl = root.join("nolabel");
    std::fs::create_dir(&nl).unwrap();
    write_cache(&nl.join("x.safetensors"), P, vec![1, 4], vec![1.0; 4], "", &[]);
    let e = rank(&sae, &meta, &sd, &load(&[args[0].clone(), format!("n={}", nl.display())]), None, None, None).unwrap_err().to_string();
    assert!(e.contains("x.safetensors") && e.contains("no label"), "{e}");
    let w3 = root.join("w3");
    std::fs::create_dir(&w3).unwrap();
    write_cache(&w3.join("x.safetensors"), P, vec![1, 3], vec![1.0; 3], "", &[("label", json!("neg"))]);
    let e = rank(&sae, &meta, &sd, &load(&[format!("w={}", w3.display()), format!("v={}", w3.display())]), None, None, None).unwrap_err().to_string();
    assert!(e.contains("d = 3") && e.contains("d = 4"), "{e}");
    // label without LABEL= and duplicate labels
    let e = load_sets(&[root.join("a").display().to_string()], P, None, true).unwrap_err().to_string();
    assert!(e.contains("LABEL=SOURCE"), "{e}");
    let e = load_sets(&[args[0].clone(), args[0].clone()], P, None, true).unwrap_err().to_string();
    assert!(e.contains("`a`") && e.contains("twice"), "{e}");
}
