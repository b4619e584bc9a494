// Temporary M2 probe (deleted after use): flex fused attention vs chunked explicit attention.
use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use std::time::Instant;

fn sync<const D: usize>(t: &Tensor<D>) { let _ = t.clone().slice([0..1]).into_data(); }

fn main() {
    let dev = Device::flex();
    let (b, h, l, d) = (1, 8, 5184, 32);
    let q = Tensor::<4>::random([b, h, l, d], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    let k = Tensor::<4>::random([b, h, l, d], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    let v = Tensor::<4>::random([b, h, l, d], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    for _ in 0..2 {
        let t = Instant::now();
        let o1 = attention(q.clone(), k.clone(), v.clone(), None, None, AttentionModuleOptions { scale: None, softcap: None, is_causal: false });
        sync(&o1);
        let t1 = t.elapsed().as_secs_f64();
        for chunk in [512usize, 1024, 2592] {
            let t = Instant::now();
            let kt = k.clone().swap_dims(2, 3);
            let mut outs = vec![];
            let mut s = 0;
            while s < l {
                let e = (s + chunk).min(l);
                let qc = q.clone().slice([0..b, 0..h, s..e]);
                let sc = qc.matmul(kt.clone()).mul_scalar(1.0 / (d as f32).sqrt());
                outs.push(softmax(sc, 3).matmul(v.clone()));
                s = e;
            }
            let o2 = Tensor::cat(outs, 2);
            sync(&o2);
            let t2 = t.elapsed().as_secs_f64();
            let diff: f32 = (o1.clone() - o2).abs().max().into_scalar();
            println!("fused {t1:.3}s  chunked({chunk}) {t2:.3}s  max|diff| {diff:e}");
        }
    }
}
