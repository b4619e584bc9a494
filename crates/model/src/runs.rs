//! The one loop under every multi-run API: one image under one or more models. The image is
//! encoded once per model (when a run first needs it, or under hooks by [`ImageRuns::encode`]) and
//! each prompt once per model (through the caller's [`TextCache`]s, kept across images); every run
//! then grounds on those features. `Predictor::run_with_hooks_batch` (and so `run_with_cache`) is
//! a use of it with one model; the probes' runner (`sam3lab-runner`) drives it over (image,
//! prompt) streams and several checkpoints in lockstep.

use std::collections::HashMap;

use image::RgbImage;
use sam3lab_hooks::{ActivationCache, HookSpec, Hooks};

use crate::ModelError;
use crate::heads::GroundingOutput;
use crate::predict::{EncodedImage, EncodedText, Predictor, Stages};

/// Per-model cache of prompts encoded without hooks (text features are small; prompts repeat
/// across images).
#[derive(Default)]
pub struct TextCache {
    map: HashMap<String, EncodedText>,
}

impl TextCache {
    pub fn get(&mut self, model: &Predictor, prompt: &str) -> Result<EncodedText, ModelError> {
        if let Some(t) = self.map.get(prompt) {
            return Ok(t.clone());
        }
        let t = model.encode_prompt(prompt, &mut Hooks::none())?;
        self.map.insert(prompt.to_string(), t.clone());
        Ok(t)
    }
}

/// One image under several models (see the module doc).
pub struct ImageRuns<'a> {
    models: &'a [&'a Predictor],
    rgb: &'a RgbImage,
    encoded: Vec<Option<EncodedImage>>,
    texts: &'a mut [TextCache],
}

impl<'a> ImageRuns<'a> {
    /// `texts` holds one prompt cache per model.
    pub fn new(models: &'a [&'a Predictor], rgb: &'a RgbImage, texts: &'a mut [TextCache]) -> Self {
        assert_eq!(models.len(), texts.len(), "one text cache per model");
        Self { models, rgb, encoded: models.iter().map(|_| None).collect(), texts }
    }

    /// Encode the image for model `k` under `spec` (the image encoder's edits and captures); every
    /// later run of `k` on this image grounds on this encoding. Returns the image encoder's captures.
    pub fn encode(&mut self, k: usize, spec: HookSpec) -> Result<ActivationCache, ModelError> {
        let mut hooks = Hooks::new(spec);
        self.encoded[k] = Some(self.models[k].encode_image(self.rgb, &mut hooks));
        Ok(hooks.finish()?)
    }

    /// Model `k`'s encoding of the image (encoded without hooks if nothing encoded it yet).
    pub fn encoded(&mut self, k: usize) -> &EncodedImage {
        let (model, rgb) = (self.models[k], self.rgb);
        self.encoded[k].get_or_insert_with(|| model.encode_image(rgb, &mut Hooks::none()))
    }

    /// Ground model `k` on this image and `text` under `hooks` (which may already hold captures of
    /// an earlier stage), and finish them.
    pub fn ground(&mut self, k: usize, text: &EncodedText, mut hooks: Hooks) -> Result<(GroundingOutput, ActivationCache), ModelError> {
        let model = self.models[k];
        let out = model.ground(self.encoded(k), text, &[], &mut hooks)?;
        Ok((out, hooks.finish()?))
    }

    /// Forward model `k` on `prompt` under `spec`; `stages` are the encoders the spec reaches, re-run
    /// under the hooks for this call (the others' features are reused: the image's encoding, the
    /// prompt's cached one).
    pub fn run(&mut self, k: usize, prompt: &str, spec: HookSpec, stages: Stages) -> Result<(GroundingOutput, ActivationCache), ModelError> {
        let model = self.models[k];
        let mut hooks = Hooks::new(spec);
        let hooked_image = stages.image.then(|| model.encode_image(self.rgb, &mut hooks));
        let text = if stages.text { model.encode_prompt(prompt, &mut hooks)? } else { self.texts[k].get(model, prompt)? };
        let image = match &hooked_image {
            Some(e) => e,
            None => self.encoded(k),
        };
        let out = model.ground(image, &text, &[], &mut hooks)?;
        Ok((out, hooks.finish()?))
    }
}
