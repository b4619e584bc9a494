//! The post's §9 "layer-level cosine probe" (sam3-post02): does the negatives fine-tune's shift of
//! the presence token point back toward base? Per decoder layer, cos(q0(ft_neg) − q0(ft),
//! q0(base) − q0(ft)), averaged over image × prompt pairs. Run from the repo root:
//! `cargo run --release -p sam3lab-model --example q0_toward_base [-- BASE FT FT_NEG]`
//! (checkpoints; without them: the shipped fixture as base and two noisy copies of it as the fine-tunes).

use burn::prelude::*;
use sam3lab_model::{hooks::cosine, predict::Predictor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let load = |ckpt: &str| Predictor::load(ckpt.as_ref(), None, &Device::flex());
    let fixture = || load("data/fixtures/sam3-tiny");
    let [base, ft, ft_neg] = match &args[..] {
        [b, f, n] => [load(b)?, load(f)?, load(n)?],
        _ => [fixture()?, fixture()?.perturbed(0.02, 1), fixture()?.perturbed(0.02, 2)], // stand-in fine-tunes
    };
    let images = ["data/examples/fixture-a.png", "data/fixtures/train-set/image_0.png", "data/fixtures/train-set/image_1.png"];
    let prompts = ["a watch", "a red cat", "a dog"];
    let q0 = |p: &Predictor| p.run_with_cache_batch(&images, &prompts, &["decoder.layers.*.q0"]);
    let (b, f, n) = (q0(&base)?, q0(&ft)?, q0(&ft_neg)?);
    for l in 0..base.model.config.decoder.num_layers {
        let name = format!("decoder.layers.{l}.q0");
        let (b, f, n) = (b.stack::<2>(&name)?, f.stack::<2>(&name)?, n.stack::<2>(&name)?); // (pairs, d)
        let cos = cosine(n - f.clone(), b - f); // (pairs, 1)
        println!("{name}  cos toward base = {:+.3} (mean over {} pairs)", cos.clone().mean().into_scalar::<f32>(), cos.dims()[0]);
    }
    Ok(())
}
