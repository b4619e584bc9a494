use sam3lab_sae::{Sparsity, TrainConfig, train};
#[test]
#[ignore]
fn speed() {
    let d = 256;
    let mut s = 1u64;
    let mut u = || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (s >> 11) as f64 / (1u64 << 53) as f64 };
    let n = 32768;
    let base: Vec<f32> = (0..16 * d).map(|_| if u() < 0.1 { u() as f32 } else { 0.0 }).collect();
    let rows: Vec<f32> = (0..n).flat_map(|i| { let b = (i * 7) % 16; base[b * d..(b + 1) * d].to_vec() }).map(|v| v + 0.01 * (u() as f32 - 0.5)).collect();
    for (name, sp, aux, rs) in [("topk aux off", Sparsity::Topk { k: 4 }, Some(0), None), ("topk aux on", Sparsity::Topk { k: 4 }, None, None), ("l1 rs off", Sparsity::L1 { coeff: 20.0 }, None, Some(0)), ("l1 rs on", Sparsity::L1 { coeff: 20.0 }, None, None)] {
        let mut c = TrainConfig::for_input(d, sp);
        c.steps = 60; c.log_every = 5; c.batch = 4096; c.aux_k = aux; c.resample_every = rs; c.dead_after_rows = Some(8192);
        let t0 = std::time::Instant::now();
        let t = train(&rows, d, &c, &mut |_, _| {}).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let l = t.log.last().unwrap();
        println!("{:?}", t.log.iter().map(|l| (l.step, l.dead, l.dead_in_window, l.resampled)).collect::<Vec<_>>());
        println!("{name}: {:.0} rows/s dead {:.3} aux {:.3} resampled {}", 60.0 * 4096.0 / secs, l.dead, l.aux, t.log.iter().map(|l| l.resampled).sum::<usize>());
    }
}
