//! Temporary profiling of one ViT-L block at 1008² (window and global) on flex.
use std::time::Instant;
use burn::prelude::*;
use burn::tensor::activation::gelu;
use sam3lab_model::hooks::Hooks;
use sam3lab_model::vit::{Vit, rope_table, window_partition, window_unpartition};
use sam3lab_model::Sam3Config;

fn sync<const D: usize>(t: &Tensor<D>) { let _ = t.clone().slice([0..1]).into_data(); }

fn main() {
    if std::env::args().any(|a| a == "tune") { sam3lab_model::device::tune_cpu_allocator(); }
    if std::env::args().any(|a| a == "alt") { alternatives(); return; }
    let dev = Device::flex();
    let mut cfg = Sam3Config::sam3().vit;
    cfg.depth = 2;
    cfg.global_att_blocks = vec![1];
    let vit = Vit::new(&cfg, &dev);
    let x = Tensor::<4>::random([1, 72, 72, 1024], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    sync(&x);
    let mut h = Hooks::none();
    let t = |name: &str, s: Instant| println!("{name:>24}: {:8.1} ms", s.elapsed().as_secs_f64() * 1e3);
    for (i, blk) in vit.blocks.iter().enumerate() {
        let ws = blk.window_size;
        println!("block {i} window {ws}");
        let s = Instant::now(); let y = blk.norm1.forward(x.clone()); sync(&y); t("norm1", s);
        let (inp, n) = if ws > 0 {
            let s = Instant::now(); let (w, _) = window_partition(y.clone(), ws); sync(&w); t("partition", s);
            (w, ws * ws)
        } else { (y.clone().reshape([1, 5184, 1024]), 5184) };
        let rope = if ws > 0 { rope_table(64, ws, ws, 1e4, 1.0, &dev) } else { rope_table(64, 72, 72, 1e4, 1.0 / 3.0, &dev) };
        let s = Instant::now(); let q = blk.attn.qkv.forward(inp.clone()); sync(&q); t("qkv linear", s);
        let s = Instant::now(); let o = blk.attn.forward("x", inp.clone(), rope.clone(), &mut h); sync(&o); t("attn total", s);
        if ws > 0 {
            let s = Instant::now(); let u = window_unpartition(o.clone(), ws, (72, 72), (72, 72), 1); sync(&u); t("unpartition", s);
        }
        let _ = n;
        let s = Instant::now(); let z = blk.mlp.fc1.forward(x.clone()); sync(&z); t("fc1", s);
        let s = Instant::now(); let g = gelu(z.clone()); sync(&g); t("gelu", s);
        let s = Instant::now(); let f = blk.mlp.fc2.forward(g.clone()); sync(&f); t("fc2", s);
        let s = Instant::now(); let a = x.clone() + f.clone(); sync(&a); t("residual add", s);
        let s = Instant::now(); let r = blk.forward(i, x.clone(), rope, 1, &mut h); sync(&r); t("whole block", s);
    }
}

#[allow(dead_code)]
pub fn alternatives() {
    use burn::tensor::activation::softmax;
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    let dev = Device::flex();
    let t = |name: &str, s: Instant| println!("{name:>32}: {:8.1} ms", s.elapsed().as_secs_f64() * 1e3);
    let x4 = Tensor::<4>::random([1, 72, 72, 1024], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    let w = Tensor::<2>::random([1024, 4736], burn::tensor::Distribution::Normal(0.0, 0.02), &dev);
    let b = Tensor::<1>::zeros([4736], &dev);
    sync(&x4);
    for _ in 0..2 {
        let s = Instant::now(); let y = burn::tensor::module::linear(x4.clone(), w.clone(), Some(b.clone())); sync(&y); t("fc1 4D", s);
        let x2 = x4.clone().reshape([5184, 1024]);
        let s = Instant::now(); let y = burn::tensor::module::linear(x2.clone(), w.clone(), Some(b.clone())); sync(&y); t("fc1 2D", s);
        let s = Instant::now(); let y = x2.clone().matmul(w.clone()); sync(&y); t("fc1 2D matmul no bias", s);
    }
    // global attention 16 heads x 5184 x 64
    let q = Tensor::<4>::random([1, 16, 5184, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    let k = Tensor::<4>::random([1, 16, 5184, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    let v = Tensor::<4>::random([1, 16, 5184, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    sync(&v);
    let opts = AttentionModuleOptions { scale: None, softcap: None, is_causal: false };
    let s = Instant::now(); let o = attention(q.clone(), k.clone(), v.clone(), None, None, opts); sync(&o); t("global fused", s);
    let s = Instant::now();
    let mut outs = vec![];
    for h in 0..16 {
        let qh = q.clone().slice([0..1, h..h + 1]);
        let kh = k.clone().slice([0..1, h..h + 1]);
        let vh = v.clone().slice([0..1, h..h + 1]);
        let sc = qh.matmul(kh.swap_dims(2, 3)).mul_scalar(0.125);
        outs.push(softmax(sc, 3).matmul(vh));
    }
    let o2 = Tensor::cat(outs, 1); sync(&o2); t("global explicit per head", s);
    let d = (o - o2).abs().max().into_scalar::<f32>(); println!("   diff {d}");
    // window attention 9 windows x 16 heads x 576 x 64
    let q = Tensor::<4>::random([9, 16, 576, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    let k = Tensor::<4>::random([9, 16, 576, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    let v = Tensor::<4>::random([9, 16, 576, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    sync(&v);
    let s = Instant::now(); let o = attention(q.clone(), k.clone(), v.clone(), None, None, opts); sync(&o); t("window fused", s);
    let s = Instant::now();
    let sc = q.clone().matmul(k.clone().swap_dims(2, 3)).mul_scalar(0.125);
    let o2 = softmax(sc, 3).matmul(v.clone()); sync(&o2); t("window explicit", s);
    let d = (o - o2).abs().max().into_scalar::<f32>(); println!("   diff {d}");
    let g = Tensor::<3>::random([1, 5184, 4736], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
    sync(&g);
    let s = Instant::now(); let y = gelu(g.clone()); sync(&y); t("gelu 5184x4736", s);
    let s = Instant::now(); let y = g.clone().exp(); sync(&y); t("exp 5184x4736", s);
    let s = Instant::now(); let y = g.clone() + g.clone(); sync(&y); t("add 5184x4736", s);
    let s = Instant::now(); let y = g.clone().mul_scalar(0.5); sync(&y); t("mul_scalar 5184x4736", s);
}
