//! Wall-clock of the cached presence-head retrain at SAM3's size: d = 256 (presence_token_out_norm +
//! the 256→256→256→1 presence_token_head = 132 353 trained parameters; the post's 132 609 adds the
//! frozen 256-d presence token), 2 500 positive + 2 500 negative q0 rows, 1 000 Adam steps at
//! lr 1e-4 (the post's §5 recipe, which took 162 s on an RTX 4090 end to end). The q0 rows are
//! random, positives shifted along a random direction so the BCE can fall; only the optimisation is
//! timed (capturing q0 needs one real forward per pair and is not included).
//!
//! `cargo run --release -p sam3lab-train --example presence_head_timing [BATCH ...]` (default 8 64).

use std::collections::BTreeSet;
use std::time::Instant;

use burn::prelude::Device;
use sam3lab_util::progress::NoProgress;
use sam3lab_runner::inputs::Label;
use sam3lab_train::params;
use sam3lab_train::retrain::{HEAD_PREFIX, PresenceHead, TrainSettings, train_cached};
use sam3lab_util::rng::Rng;

fn main() {
    let batches: Vec<usize> = {
        let v: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
        if v.is_empty() { vec![8, 64] } else { v }
    };
    let (d, n) = (256, 5000);
    let mut rng = Rng::new(0x5EED);
    let mut normal = move || rng.normal() as f32;
    let shift: Vec<f32> = (0..d).map(|_| normal() * 0.5).collect();
    let labels: Vec<Label> = (0..n).map(|i| if i % 2 == 0 { Label::Pos } else { Label::Neg }).collect();
    let q0: Vec<Vec<f32>> = labels
        .iter()
        .map(|l| (0..d).map(|j| normal() + if *l == Label::Pos { shift[j] } else { 0.0 }).collect())
        .collect();
    let device = Device::flex();
    for batch in batches {
        let head = PresenceHead::new(d, &device);
        let names: BTreeSet<String> = params::list(&head, HEAD_PREFIX).into_iter().map(|p| p.name).collect();
        let count: usize = params::list(&head, HEAD_PREFIX).iter().map(|p| p.shape.iter().product::<usize>()).sum();
        let settings = TrainSettings { steps: 1000, save_at: vec![], lr: 1e-4, pos_weight: 1.0, batch, seed: 0, log_every: 1000, device: device.clone() };
        let t = Instant::now();
        let (_, traj) = train_cached(&settings, head, &names, &q0, &labels, &NoProgress).unwrap();
        let secs = t.elapsed().as_secs_f64();
        let (a, b) = (&traj[0], traj.last().unwrap());
        println!(
            "d={d} params={count} pairs={n} batch={batch} steps=1000: {secs:.2} s ({:.2} ms/step, incl. 2 full-set evaluations); balanced BCE {:.3} → {:.3}",
            secs, // 1000 steps: seconds = ms per step
            a.balanced_loss,
            b.balanced_loss
        );
    }
}
