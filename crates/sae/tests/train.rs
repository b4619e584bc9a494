//! Training behaviour: loss goes down, the unit-norm constraint holds, known features are recovered,
//! normalisation is folded correctly, and a seed fixes the output bytes.
mod common;
use common::*;
use sam3lab_sae::{Sparsity, TrainConfig, Trained, train};

const D: usize = 16;

fn cfg(sp: Sparsity, steps: usize, seed: u64) -> TrainConfig {
    let mut c = TrainConfig::new(32, sp);
    c.steps = steps;
    c.lr = 3e-3;
    c.batch = 256;
    c.seed = seed;
    c.log_every = 50;
    c
}

fn fit(rows: &[f32], c: &TrainConfig) -> Trained {
    train(rows, D, c, &mut |_, _| {}).unwrap()
}

fn max_norm_dev(t: &Trained) -> f64 {
    t.weights.decoder_norms().iter().map(|n| (n - 1.0).abs()).fold(0.0, f64::max)
}

#[test]
fn loss_decreases_relu_l1_and_topk() {
    let (_, rows) = standard_problem(16, 1);
    for sp in [Sparsity::L1 { coeff: 1.0 }, Sparsity::Topk { k: 3 }] {
        let t = fit(&rows, &cfg(sp, 600, 0));
        let (first, last) = (&t.log[0], t.log.last().unwrap());
        assert_eq!(last.step, 600);
        assert!(last.loss < 0.5 * first.loss, "{sp:?}: loss {} → {}", first.loss, last.loss);
        assert!(last.recon < first.recon, "{sp:?}: recon {} → {}", first.recon, last.recon);
        // Mostly monotone: no window after the first quarter is above the first window.
        assert!(t.log.iter().skip(3).all(|w| w.loss < first.loss), "{sp:?}: {:?}", t.log);
    }
}

#[test]
fn decoder_directions_stay_unit_norm() {
    let (_, rows) = standard_problem(16, 2);
    for (sp, project, lr) in [
        (Sparsity::L1 { coeff: 1.0 }, true, 3e-3),
        (Sparsity::L1 { coeff: 1.0 }, false, 3e-2), // large steps, no projection: renormalisation alone
        (Sparsity::Topk { k: 3 }, true, 3e-3),
    ] {
        for steps in [1, 7, 300] {
            let mut c = cfg(sp, steps, 3);
            c.project_decoder_grad = project;
            c.lr = lr;
            let t = fit(&rows, &c);
            let dev = max_norm_dev(&t);
            assert!(dev < 1e-5, "{sp:?} project={project} steps={steps}: max |‖row‖−1| = {dev}");
        }
    }
}

/// Random unit rows (what an untrained SAE has) do NOT match the true features: the 0.9 bar discriminates.
#[test]
fn recovery_bar_rejects_random_dictionary() {
    let (dirs, _) = standard_problem(16, 5);
    let mut rng = Rng::new(99);
    let random: Vec<f32> = directions(32, D, 1.0, &mut rng).into_iter().flatten().map(|v| v as f32).collect();
    let worst = best_matches(&dirs, &random, D).into_iter().fold(9.0, f64::min);
    assert!(worst < 0.9, "a random dictionary already matches every feature (min cos {worst})");
    // and one step of training does not either
    let (dirs, rows) = standard_problem(16, 5);
    let t = fit(&rows, &cfg(Sparsity::L1 { coeff: 1.0 }, 1, 0));
    let worst = best_matches(&dirs, &t.weights.w_dec, D).into_iter().fold(9.0, f64::min);
    assert!(worst < 0.9, "one step already recovers every feature (min cos {worst})");
}

fn assert_recovers(k: usize, sp: Sparsity, data_seed: u64) {
    let (dirs, rows) = standard_problem(k, data_seed);
    let t = fit(&rows, &cfg(sp, 1500, 0));
    let cos = best_matches(&dirs, &t.weights.w_dec, D);
    let worst = cos.iter().cloned().fold(9.0, f64::min);
    assert!(worst > 0.9, "{sp:?} K={k}: a true feature is matched only with cos {worst:.3}; all: {cos:.3?}");
    assert!(max_norm_dev(&t) < 1e-5);
}

#[test]
fn recovers_known_features_relu_l1() {
    assert_recovers(16, Sparsity::L1 { coeff: 1.0 }, 11);
}

#[test]
fn recovers_known_features_topk() {
    assert_recovers(16, Sparsity::Topk { k: 3 }, 11);
}

/// Overcomplete dictionary (24 directions in d = 16).
#[test]
fn recovers_overcomplete_features_relu_l1() {
    assert_recovers(24, Sparsity::L1 { coeff: 1.0 }, 12);
}

/// Scaling the data by 100 leaves the normalised training problem unchanged; the saved SAE must then
/// have the same W_enc/W_dec and biases (and feature activations) 100× larger.
#[test]
fn normalisation_is_folded_into_biases() {
    let (_, rows) = standard_problem(16, 3);
    let big: Vec<f32> = rows.iter().map(|v| v * 100.0).collect();
    let c = cfg(Sparsity::L1 { coeff: 1.0 }, 40, 4);
    let (a, b) = (fit(&rows, &c), fit(&big, &c));
    assert!((b.act_scale * 100.0 / a.act_scale - 1.0).abs() < 1e-6, "{} vs {}", a.act_scale, b.act_scale);
    let close = |x: &[f32], y: &[f32], k: f32, what: &str| {
        let err = x.iter().zip(y).map(|(p, q)| (p * k - q).abs() / (1e-3 + q.abs())).fold(0.0f32, f32::max);
        assert!(err < 1e-2, "{what}: max rel err {err}");
    };
    close(&a.weights.w_dec, &b.weights.w_dec, 1.0, "W_dec");
    close(&a.weights.w_enc, &b.weights.w_enc, 1.0, "W_enc");
    close(&a.weights.b_dec, &b.weights.b_dec, 100.0, "b_dec");
    close(&a.weights.b_enc, &b.weights.b_enc, 100.0, "b_enc");
    // And without normalisation the scale is exactly 1.
    let mut c2 = c.clone();
    c2.normalize = false;
    assert_eq!(fit(&rows, &c2).act_scale, 1.0);
}

#[test]
fn same_seed_same_weights_different_seed_different() {
    let (_, rows) = standard_problem(16, 4);
    let c = cfg(Sparsity::Topk { k: 3 }, 60, 7);
    let (a, b) = (fit(&rows, &c), fit(&rows, &c));
    assert_eq!(a.weights, b.weights);
    assert_eq!(a.log, b.log);
    let mut c3 = c.clone();
    c3.seed = 8;
    assert_ne!(a.weights.w_dec, fit(&rows, &c3).weights.w_dec);
}

#[test]
fn bad_config_is_a_named_error() {
    let (_, rows) = standard_problem(16, 4);
    let err = |c: TrainConfig| train(&rows, D, &c, &mut |_, _| {}).err().expect("must fail").to_string();
    assert!(err(cfg(Sparsity::Topk { k: 33 }, 10, 0)).contains("k = 33"));
    assert!(err(cfg(Sparsity::L1 { coeff: -1.0 }, 10, 0)).contains("L1 coefficient"));
    let mut c = cfg(Sparsity::L1 { coeff: 1.0 }, 10, 0);
    c.lr = 0.0;
    assert!(err(c).contains("learning rate"));
    let e = train(&[], D, &cfg(Sparsity::L1 { coeff: 1.0 }, 10, 0), &mut |_, _| {}).err().unwrap().to_string();
    assert!(e.contains("empty"), "{e}");
}
