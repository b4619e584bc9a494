//! Probe: how alike is the presence token `q0` for two prompts on one image, layer by layer?
//! `decoder.layers.{i}.q0` is what the presence head reads (after the last layer). Run from the repo
//! root: `cargo run --release -p sam3lab-model --example q0_cosine [-- CKPT_FILE_OR_FIXTURE_DIR]`.

use burn::prelude::*;
use sam3lab_model::{hooks::cosine, predict::Predictor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ckpt = std::env::args().nth(1).unwrap_or("data/fixtures/sam3-tiny".into()); // fixture dir, .pt or .safetensors
    let p = Predictor::load(ckpt.as_ref(), None, &Device::flex())?;
    let prompts = ["a red cat", "a blue sky"];
    // Every (image, prompt) pair (an image is a path or an RgbImage): trunk + neck once per image, every
    // name checked against the model first, one (output, cache) per pair.
    let runs = p.run_with_cache_batch(&["data/examples/fixture-a.png"], &prompts, &["decoder.layers.*.q0"])?;
    let logits: Vec<f32> = runs.iter().map(|(out, _)| out.presence_logit.clone().into_scalar()).collect();
    println!("presence logits {prompts:?}: {logits:+.4?}");
    let ((_, a), (_, b)) = (&runs[(0, 0)], &runs[(0, 1)]);
    for name in a.names_in_capture_order() {
        println!("{name}  cosine = {:+.4}", cosine(a.tensor::<2>(name)?, b.tensor::<2>(name)?).into_scalar::<f32>());
    }
    Ok(())
}
