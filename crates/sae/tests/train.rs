mod common;
use common::*;
use sam3lab_sae::{Sparsity, TrainConfig, train};

fn run(k: usize, sp: Sparsity, steps: usize, lr: f64, seed: u64, dseed: u64) -> f64 {
    let d = 16;
    let mut rng = Lcg::new(42 + dseed);
    let dirs = directions(k, d, &mut rng);
    let offset: Vec<f64> = (0..d).map(|i| 0.3 * (i as f64).sin()).collect();
    let rows = sparse_rows(&dirs, 4000, 2.0 / k as f64, 0.01, &offset, &mut rng);
    let mut cfg = TrainConfig::new(32, sp);
    cfg.steps = steps;
    cfg.lr = lr;
    cfg.batch = 256;
    cfg.seed = seed;
    let mut mx: f64 = 0.0;
    for a in 0..k { for b in 0..a { let c: f64 = dirs[a].iter().zip(&dirs[b]).map(|(x, y)| x * y).sum(); mx = mx.max(c.abs()); } }
    eprint!("[maxcos {mx:.2}] ");
    let tr = train(&rows, d, &cfg, &mut |_, _| {}).unwrap();
    best_matches(&dirs, &tr.weights.w_dec, d).into_iter().fold(9.0, f64::min)
}

#[test]
fn explore() {
    for (k, sp) in [(16, Sparsity::Topk { k: 3 })] {
        let v: Vec<String> = (0..6).map(|s| format!("{:.3}", run(k, sp, 1500, 3e-3, s, 2))).collect();
        eprintln!("K={k} {sp:?} data2: {v:?}");
        let v: Vec<String> = (0..6).map(|s| format!("{:.3}", run(k, sp, 1500, 3e-3, 2, s))).collect();
        eprintln!("K={k} {sp:?} sae2: {v:?}");
    }
}
