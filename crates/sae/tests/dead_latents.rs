//! SAE as practised: the 4 × d default width, dead-latent resampling for ReLU + L1, the AuxK loss
//! for TopK, and the dead fraction in the training log.
mod common;
use common::*;
use sam3lab_sae::{Sae, Sparsity, TrainConfig, Trained, train};

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

#[test]
fn explore_auxk() {
    let (_, rows) = standard_problem(16, 7);
    for m in [64, 128] {
        for k in [1, 2, 4] {
            for aux in [Some(0), None] {
                let mut c = cfg(m, Sparsity::Topk { k }, 600);
                c.aux_k = aux;
                let t = train(&rows, D, &c, &mut |_, _| {}).unwrap();
                let fc = fire_counts(&t, &rows);
                let dead = fc.iter().filter(|&&v| v == 0).count();
                let last = t.log.last().unwrap();
                println!("m {m} k {k} aux {aux:?}: dead(eval) {dead}/{m} log dead {:.3} aux {:.4} recon {:.4} first-dead {:?}", last.dead, last.aux, last.recon, t.log.iter().map(|l| (l.dead * 1000.0).round() / 1000.0).collect::<Vec<_>>());
            }
        }
    }
}
