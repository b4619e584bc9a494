//! Probe: how alike is the presence token `q0` for two prompts on one image, layer by layer?
//! `decoder.layers.{i}.q0` is what the presence head reads (after the last layer). Run from the repo
//! root: `cargo run --release -p sam3lab-model --example q0_cosine [CKPT_FILE_OR_FIXTURE_DIR]`.

use burn::prelude::*;
use image::{Rgb, RgbImage};
use sam3lab_model::hook_registry;
use sam3lab_model::hooks::{HookSpec, Hooks};
use sam3lab_model::predict::Predictor;

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ckpt = std::env::args().nth(1).unwrap_or_else(|| "data/fixtures/sam3-tiny".into());
    let p = Predictor::load(ckpt.as_ref(), None, &Device::flex())?;
    // Any RGB image will do (or `sam3lab_model::preprocess::load_image(path)?`): a red square on a gradient.
    let img = RgbImage::from_fn(128, 96, |x, y| {
        let square = (40..90).contains(&x) && (20..70).contains(&y);
        if square { Rgb([220, 30, 30]) } else { Rgb([(2 * x) as u8, (2 * y) as u8, 128]) }
    });
    let image = p.encode_image(&img, &mut Hooks::none()); // trunk + neck once, reused for every prompt
    let spec = HookSpec::new().capture("decoder.layers.*.q0")?;
    let layers = p.model.config.decoder.num_layers;
    let mut q0s = Vec::new(); // per prompt: per layer, the (d,) vector
    for prompt in ["a red square", "a blue sky"] {
        // `validated` checks every name against this model's hook points (typos fail here).
        let mut hooks = Hooks::validated(spec.clone(), &hook_registry(&p.model.config))?;
        let text = p.encode_prompt(prompt, &mut hooks)?;
        let out = p.ground(&image, &text, &[], &mut hooks)?;
        let cache = hooks.finish()?;
        let per_layer: Result<Vec<Vec<f32>>, _> =
            (0..layers).map(|i| cache.get(&format!("decoder.layers.{i}.q0")).map(|t| t.to_vec())).collect();
        q0s.push(per_layer?);
        println!("{prompt:>14}: presence logit {:+.4}", out.presence_logit.into_scalar::<f32>());
    }
    for i in 0..layers {
        println!("decoder.layers.{i}.q0  cosine = {:+.4}", cosine(&q0s[0][i], &q0s[1][i]));
    }
    Ok(())
}
