//! SAE as practised: the 4 × d default width, dead-latent resampling for ReLU + L1, the AuxK loss
//! for TopK, and the dead fraction in the training log.
mod common;
use common::*;
use sam3lab_sae::{DEFAULT_WIDTH_FACTOR, Sae, SaeWeights, Sparsity, TrainConfig, Trained, default_width, train_from};

const D: usize = 16;

fn cfg(width: usize, sp: Sparsity, steps: usize) -> TrainConfig {
    let mut c = TrainConfig::new(width, sp);
    c.steps = steps;
    c.lr = 3e-3;
    c.batch = 256;
    c.seed = 1;
    c.log_every = 50;
    c
}

fn fire_counts(t: &Trained, rows: &[f32]) -> Vec<usize> {
    let sae = Sae::from_weights(&t.weights, t.activation, &burn::prelude::Device::flex()).unwrap();
    let m = t.weights.width;
    let mut c = vec![0; m];
    sam3lab_sae::metrics::for_each_chunk(&sae, rows, D, |_, _, f, _| {
        for r in f.chunks_exact(m) {
            for (j, &v) in r.iter().enumerate() {
                if v > 0.0 {
                    c[j] += 1;
                }
            }
        }
    });
    c
}

/// Seeded init (raw units): unit random decoder rows, W_enc = W_decᵀ, b_dec = mean row; the
/// encoder columns of `weak` latents scaled by `enc`, their b_enc set to `benc`.
fn init(rows: &[f32], m: usize, weak: std::ops::Range<usize>, enc: f32, benc: f32, seed: u64) -> SaeWeights {
    let mut rng = Rng::new(seed);
    let dirs = directions(m, D, 1.0, &mut rng);
    let w_dec: Vec<f32> = dirs.iter().flatten().map(|&v| v as f32).collect();
    let mut w_enc = vec![0f32; D * m];
    for j in 0..m {
        for i in 0..D {
            w_enc[i * m + j] = w_dec[j * D + i] * if weak.contains(&j) { enc } else { 1.0 };
        }
    }
    let n = rows.len() / D;
    let b_dec: Vec<f32> = (0..D).map(|i| rows.iter().skip(i).step_by(D).sum::<f32>() / n as f32).collect();
    let b_enc = (0..m).map(|j| if weak.contains(&j) { benc } else { 0.0 }).collect();
    SaeWeights { d_in: D, width: m, w_enc, b_enc, w_dec, b_dec }
}

#[test]
fn default_width_is_four_times_d() {
    assert_eq!(DEFAULT_WIDTH_FACTOR, 4);
    assert_eq!(default_width(256), 1024); // the post's SAE on decoder.layers.5.q0
    assert_eq!(TrainConfig::for_input(256, Sparsity::L1 { coeff: 1.0 }).width, 1024);
    assert_eq!(TrainConfig::for_input(16, Sparsity::Topk { k: 3 }).width, 64);
}

/// 24 planted features, 32 latents of which 8 are forced dead (b_enc = −1000: never fire, so under
/// ReLU + L1 they get no gradient and stay dead without resampling).
fn forced_dead_relu(resample_every: Option<usize>, steps: usize) -> (Trained, Vec<usize>) {
    let (_, rows) = standard_problem(24, 7);
    let mut c = cfg(32, Sparsity::L1 { coeff: 1.0 }, steps);
    c.resample_every = resample_every;
    let t = train_from(&init(&rows, 32, 0..8, 1.0, -1e3, 3), &rows, D, &c, &mut |_, _| {}).unwrap();
    let fc = fire_counts(&t, &rows);
    (t, fc)
}

#[test]
fn resampling_revives_forced_dead_latents() {
    // Without resampling the 8 latents never fire and the log says so.
    let (off, fc) = forced_dead_relu(Some(0), 400);
    assert_eq!(&fc[..8], &[0; 8], "forced-dead latents fired without resampling");
    assert!(off.log.iter().all(|l| l.resampled == 0));
    assert_eq!(off.log.last().unwrap().dead, 8.0 / 32.0);
    assert_eq!(off.config.resample_every, Some(0));

    // Default: resampling every steps/8 = 50 steps in the first half. The dead latents are
    // re-initialised at the first resampling and fire on real rows afterwards.
    let (on, fc) = forced_dead_relu(None, 400);
    assert_eq!(on.config.resample_every, Some(50));
    assert_eq!(on.config.dead_after_rows, Some(4000)); // one pass over the rows
    assert_eq!(on.log.iter().map(|l| l.resampled).sum::<usize>(), 8, "{:?}", on.log);
    assert!(fc[..8].iter().all(|&c| c > 50), "resampled latents fire on too few rows: {:?}", &fc[..8]);
    assert!(on.weights.b_enc[..8].iter().all(|&b| b > -10.0), "b_enc not reset: {:?}", &on.weights.b_enc[..8]);
    assert_eq!(on.log.last().unwrap().dead, 0.0);
    assert!(on.log.last().unwrap().recon < 0.9 * off.log.last().unwrap().recon);
    // The unit-norm constraint holds for resampled directions too.
    assert!(on.weights.decoder_norms().iter().all(|n| (n - 1.0).abs() < 1e-5));
    // Deterministic, resampling included.
    let (again, _) = forced_dead_relu(None, 400);
    assert_eq!(on.weights, again.weights);
    assert_eq!(on.log, again.log);
}

/// 24 planted features, 32 latents of which 16 have encoder columns scaled by 0.01: their
/// pre-activations are positive on about half the rows but never among the top k = 2, so TopK
/// gives them no gradient and they stay dead unless the AuxK loss trains them on the residual.
fn weak_topk(aux_k: Option<usize>) -> (Trained, Vec<usize>) {
    let (_, rows) = standard_problem(24, 7);
    let mut c = cfg(32, Sparsity::Topk { k: 2 }, 600);
    c.aux_k = aux_k;
    let t = train_from(&init(&rows, 32, 0..16, 0.01, 0.0, 3), &rows, D, &c, &mut |_, _| {}).unwrap();
    let fc = fire_counts(&t, &rows);
    (t, fc)
}

#[test]
fn auxk_lowers_the_dead_fraction_of_topk() {
    let dead = |fc: &[usize]| fc.iter().filter(|&&c| c == 0).count();
    let (off, fc_off) = weak_topk(Some(0));
    let (on, fc_on) = weak_topk(None);
    assert_eq!(on.config.aux_k, Some(8)); // default: d/2 rounded up to a power of two
    assert_eq!(on.config.aux_coeff, 1.0 / 32.0);
    assert!(dead(&fc_off) >= 14, "without AuxK only {} of 32 dead: the setup does not force dead latents", dead(&fc_off));
    assert!(dead(&fc_on) <= 8, "with AuxK still {} of 32 dead", dead(&fc_on));
    let (l_off, l_on) = (off.log.last().unwrap(), on.log.last().unwrap());
    assert!(l_on.dead < l_off.dead - 0.2, "log dead: {} with AuxK vs {} without", l_on.dead, l_off.dead);
    assert!(l_on.recon < 0.8 * l_off.recon, "recon {} with AuxK vs {} without", l_on.recon, l_off.recon);
    // The AuxK term is logged: non-zero while latents are dead, zero when switched off.
    assert!(off.log.iter().all(|l| l.aux == 0.0));
    assert!(on.log[0].aux > 0.0, "{:?}", on.log[0]);
    // Deterministic with AuxK.
    let (again, _) = weak_topk(None);
    assert_eq!(on.weights, again.weights);
    assert_eq!(on.log, again.log);
}

#[test]
fn dead_fraction_is_in_the_training_log_of_sae_json() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, rows) = standard_problem(16, 3);
    write_cache(&tmp.path().join("acts.safetensors"), "p", vec![4000, D], rows, "sha", &[]);
    let sets = sam3lab_sae::load_sets(&[tmp.path().join("acts.safetensors").display().to_string()], "p", None, false).unwrap();
    for (name, sp) in [("l1", Sparsity::L1 { coeff: 1.0 }), ("topk", Sparsity::Topk { k: 3 })] {
        let out = tmp.path().join(name);
        let c = cfg(32, sp, 100);
        sam3lab_sae::train_and_save(&sets, "p", None, &c, &out, &mut |_, _| {}).unwrap();
        let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("sae.json")).unwrap()).unwrap();
        let log = meta["log"].as_array().unwrap();
        assert_eq!(log.len(), 2);
        for w in log {
            for key in ["dead", "dead_in_window", "aux", "resampled"] {
                assert!(w.get(key).is_some(), "{name}: no `{key}` in log window {w}");
            }
            let dead = w["dead"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&dead), "{w}");
        }
        // The configuration as run, automatic settings made concrete.
        let t = &meta["train"];
        assert_eq!(t["dead_after_rows"], 4000);
        let (every, aux_k) = if name == "l1" { (12, 0) } else { (0, 8) };
        assert_eq!((t["resample_every"].as_u64().unwrap(), t["aux_k"].as_u64().unwrap()), (every, aux_k), "{name}: {t}");
    }
}

#[test]
fn bad_dead_latent_settings_are_named_errors() {
    let (_, rows) = standard_problem(16, 4);
    let err = |c: TrainConfig| sam3lab_sae::train(&rows, D, &c, &mut |_, _| {}).err().expect("must fail").to_string();
    let mut c = cfg(32, Sparsity::Topk { k: 3 }, 10);
    c.aux_k = Some(33);
    assert!(err(c).contains("k_aux = 33"));
    let mut c = cfg(32, Sparsity::Topk { k: 3 }, 10);
    c.aux_coeff = -1.0;
    assert!(err(c).contains("AuxK coefficient"));
    let mut c = cfg(32, Sparsity::L1 { coeff: 1.0 }, 10);
    c.dead_after_rows = Some(0);
    assert!(err(c).contains("dead_after_rows"));
    let w = init(&rows, 16, 0..0, 1.0, 0.0, 1);
    let e = train_from(&w, &rows, D, &cfg(32, Sparsity::L1 { coeff: 1.0 }, 10), &mut |_, _| {}).err().unwrap().to_string();
    assert!(e.contains("m = 16"), "{e}");
}
