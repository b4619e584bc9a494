//! The convenience API: tokenizer + preprocessing + model + post-processing.
//!
//! ```no_run
//! use sam3lab_model::predict::Predictor;
//! use sam3lab_model::hooks::Hooks;
//! # fn main() -> Result<(), sam3lab_model::ModelError> {
//! let dev = burn::prelude::Device::flex();
//! let p = Predictor::load("data/fixtures/sam3-tiny".as_ref(), None, &dev)?;
//! let img = p.encode_image_file("cat.png".as_ref())?;      // trunk + neck, once
//! for phrase in ["a cat", "a red ball"] {                   // heads only, per prompt
//!     let dets = p.segment(&img, phrase, &[], 0.5, &mut Hooks::none())?;
//!     println!("{phrase}: {} objects, presence {:.3}", dets.detections.len(), dets.presence_prob);
//! }
//! # Ok(()) }
//! ```
//!
//! # One way in for probes: `run_with_cache` / `run_with_hooks`
//!
//! ```no_run
//! use sam3lab_model::predict::Predictor;
//! use sam3lab_model::hooks::HookSpec;
//! # fn main() -> Result<(), sam3lab_model::ModelError> {
//! let p = Predictor::load("data/fixtures/sam3-tiny".as_ref(), None, &burn::prelude::Device::flex())?;
//! // One (image, prompt): outputs + every captured point; trunk, text and head points alike.
//! let (out, cache) = p.run_with_cache("cat.png", "a cat", &["trunk.blocks.0", "decoder.layers.*.q0"])?;
//! let q0 = cache.tensor::<2>("decoder.layers.1.q0")?;
//! // Edits too (any HookSpec); images × prompts with each image encoded once:
//! let spec = HookSpec::new().zero("decoder.layers.1.ca_text.head.0")?.capture("presence_logit")?;
//! let runs = p.run_with_hooks_batch(&["a.png", "b.png"], &["a cat", "a dog"], spec)?;
//! let (out_b_dog, cache_b_dog) = &runs[(1, 1)];
//! # Ok(()) }
//! ```
//!
//! Every name is checked against this model's [`HookRegistry`] first (a typo is an error naming
//! the nearest valid names; [`Predictor::validate_hooks`] turns that off). The spec decides which
//! encoders run under the hooks ([`Stages`]): the image encoder only when a pattern reaches a
//! `image`/`trunk.*`/`neck.*` point, the text encoder only for `text.*` points; otherwise their
//! features are computed once (per image / per prompt in the batched forms) without hooks. The
//! result is bit for bit what threading one [`Hooks`] through `encode_image`, `encode_prompt` and
//! `ground` gives (tested), the cache in the same forward order.
//!
//! Prompts: an empty (or whitespace-only) phrase is an error; a phrase longer than the text context is
//! truncated exactly like the reference (last kept id becomes EOT) with a warning on stderr that shows
//! the prompt shortened ([`shorten_prompt`]). Boxes must lie in [0, 1]; point prompts are refused (see
//! [`crate::geometry`]).
//!
//! Outputs: [`Predictor::ground`] (and so `segment`) returns [`ModelError::NonFinite`] naming every
//! output holding NaN or ±Inf ([`check_finite_outputs`]) instead of results that read "presence NaN";
//! with [`crate::checkpoint::set_allow_nonfinite`] (the CLI's `--allow-nonfinite`) it only warns.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use image::RgbImage;
use sam3lab_hooks::{ActivationCache, HookError, HookRegistry, HookSpec, Hooks};

use crate::ModelError;
use crate::geometry::BoxPrompt;
use crate::heads::{GroundingOutput, ImageFeatures, TextFeatures};
use crate::postprocess::{Detections, postprocess};
use crate::preprocess::{load_image, preprocess};
use crate::runs::{ImageRuns, TextCache};
use crate::sam3::{LoadInfo, Sam3};
use crate::tokenizer::Tokenizer;

/// An image encoded once: its features plus what post-processing needs.
#[derive(Clone, Debug)]
pub struct EncodedImage {
    pub features: ImageFeatures,
    /// `(height, width)` of the original image (boxes and masks are mapped back to it).
    pub image_hw: (usize, usize),
}

/// A tokenized and encoded phrase.
#[derive(Clone, Debug)]
pub struct EncodedText {
    pub features: TextFeatures,
    pub prompt: String,
    /// Token ids fed to the text encoder (SOT … EOT, zero-padded).
    pub ids: Vec<u32>,
    /// True when the phrase did not fit the context and was cut.
    pub truncated: bool,
}

pub struct Predictor {
    pub model: Sam3,
    /// Present when loaded from a checkpoint.
    pub info: Option<LoadInfo>,
    pub tokenizer: &'static Tokenizer,
    pub device: Device,
    /// Check every hook name of [`Predictor::run_with_hooks`] & co. against the model's registry
    /// before running (default `true`; an unknown name is then an error naming the nearest valid
    /// names). With `false`, an unknown name just never fires.
    pub validate_hooks: bool,
    registry: OnceLock<HookRegistry>,
}

/// One forward's raw outputs and captured activations.
pub type Run = (GroundingOutput, ActivationCache);

/// The runs of a batched call, one per (image, prompt) pair, image-major:
/// `runs[(i, j)]` is image `i` with prompt `j`.
#[derive(Clone, Debug)]
pub struct Runs {
    pub images: usize,
    pub prompts: usize,
    /// Image-major: pair `(i, j)` is at `i * prompts + j`.
    pub runs: Vec<Run>,
}

impl Runs {
    pub fn get(&self, image: usize, prompt: usize) -> &Run {
        assert!(image < self.images && prompt < self.prompts, "run ({image}, {prompt}) of {}×{}", self.images, self.prompts);
        &self.runs[image * self.prompts + prompt]
    }

    /// Every run, image-major.
    pub fn iter(&self) -> std::slice::Iter<'_, Run> {
        self.runs.iter()
    }

    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// One captured point of every run, concatenated along the batch axis in image-major order:
    /// `(pairs, …)` for batch-1 runs. Errors (with the nearest captured names) when a run lacks it.
    pub fn stack<const D: usize>(&self, name: &str) -> Result<Tensor<D>, HookError> {
        let parts = self.runs.iter().map(|(_, c)| c.tensor::<D>(name)).collect::<Result<Vec<_>, _>>()?;
        Ok(Tensor::cat(parts, 0))
    }
}

impl std::ops::Index<(usize, usize)> for Runs {
    type Output = Run;
    fn index(&self, (image, prompt): (usize, usize)) -> &Run {
        self.get(image, prompt)
    }
}

impl<'a> IntoIterator for &'a Runs {
    type Item = &'a Run;
    type IntoIter = std::slice::Iter<'a, Run>;
    fn into_iter(self) -> Self::IntoIter {
        self.runs.iter()
    }
}

/// An image the top-level calls accept: an [`RgbImage`] or the path of a PNG/JPEG file (`&str`,
/// `String`, `Path`, `PathBuf`).
pub trait ImageInput {
    /// The pixels (a file is read and decoded; unreadable or non-image files are a clear error).
    fn rgb(&self) -> Result<Cow<'_, RgbImage>, ModelError>;
    /// How a cache manifest names this image.
    fn describe(&self) -> String;
}

impl ImageInput for RgbImage {
    fn rgb(&self) -> Result<Cow<'_, RgbImage>, ModelError> {
        Ok(Cow::Borrowed(self))
    }
    fn describe(&self) -> String {
        format!("<in-memory {}×{} RGB image>", self.width(), self.height())
    }
}

impl ImageInput for Path {
    fn rgb(&self) -> Result<Cow<'_, RgbImage>, ModelError> {
        Ok(Cow::Owned(load_image(self)?))
    }
    fn describe(&self) -> String {
        self.display().to_string()
    }
}

macro_rules! image_input_as_path {
    ($($t:ty),*) => {$(
        impl ImageInput for $t {
            fn rgb(&self) -> Result<Cow<'_, RgbImage>, ModelError> {
                Ok(Cow::Owned(load_image(Path::new(self))?))
            }
            fn describe(&self) -> String {
                Path::new(self).display().to_string()
            }
        }
    )*};
}
image_input_as_path!(str, String, PathBuf);

impl<T: ImageInput + ?Sized> ImageInput for &T {
    fn rgb(&self) -> Result<Cow<'_, RgbImage>, ModelError> {
        (**self).rgb()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// Is this hook point computed by the image encoder (trunk + neck)?
pub fn is_image_point(name: &str) -> bool {
    name == "image" || name.starts_with("trunk.") || name.starts_with("neck.")
}

/// Is this hook point computed by the text encoder?
pub fn is_text_point(name: &str) -> bool {
    name.starts_with("text.")
}

/// Which encoders a hook spec reaches into: the top-level calls run an encoder under the hooks only
/// when some entry matches one of its points, and reuse its hook-free features otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stages {
    pub image: bool,
    pub text: bool,
}

impl Stages {
    /// The stages whose registered points any entry of `spec` matches.
    pub fn of(spec: &HookSpec, registry: &HookRegistry) -> Self {
        let hit = |stage: fn(&str) -> bool| {
            registry.points.iter().map(|p| p.name.as_str()).filter(|n| stage(n)).any(|n| spec.entries().iter().any(|(pat, _)| pat.matches(n)))
        };
        Self { image: hit(is_image_point), text: hit(is_text_point) }
    }

    /// The stages of exact hook names (a probe's resolved points).
    pub fn of_points(points: &[String]) -> Self {
        Self { image: points.iter().any(|p| is_image_point(p)), text: points.iter().any(|p| is_text_point(p)) }
    }
}

impl Predictor {
    /// Load a checkpoint (file or fixture directory), see [`Sam3::load`].
    pub fn load(ckpt: &Path, config_override: Option<&Path>, device: &Device) -> Result<Self, ModelError> {
        let (model, info) = Sam3::load(ckpt, config_override, device)?;
        Ok(Self {
            model,
            info: Some(info),
            tokenizer: Tokenizer::clip(),
            device: device.clone(),
            validate_hooks: true,
            registry: OnceLock::new(),
        })
    }

    pub fn from_model(model: Sam3, device: &Device) -> Self {
        Self {
            model,
            info: None,
            tokenizer: Tokenizer::clip(),
            device: device.clone(),
            validate_hooks: true,
            registry: OnceLock::new(),
        }
    }

    /// Every hook point of this model ([`crate::hook_registry`] of its config, built once).
    pub fn hook_registry(&self) -> &HookRegistry {
        self.registry.get_or_init(|| crate::hook_registry(&self.model.config))
    }

    /// Preprocess (resize to the model resolution, normalise) and run trunk + neck.
    pub fn encode_image(&self, img: &RgbImage, hooks: &mut Hooks) -> EncodedImage {
        let pixels = preprocess(img, self.model.config.image_size, &self.device);
        let features = self.model.encode_image(pixels, hooks);
        EncodedImage {
            features,
            image_hw: (img.height() as usize, img.width() as usize),
        }
    }

    /// [`Predictor::encode_image`] of a PNG/JPEG file (clear error for an unreadable or non-image file).
    pub fn encode_image_file(&self, path: &Path) -> Result<EncodedImage, ModelError> {
        Ok(self.encode_image(&load_image(path)?, &mut Hooks::none()))
    }

    /// Tokenize (CLIP BPE, the config's context length) and encode a phrase.
    pub fn encode_prompt(&self, prompt: &str, hooks: &mut Hooks) -> Result<EncodedText, ModelError> {
        let ctx = self.model.config.text.context_length;
        let (ids, truncated) = tokenize(self.tokenizer, prompt, ctx)?;
        if truncated {
            let n = self.tokenizer.encode_raw(prompt).len() + 2;
            eprintln!(
                "warning: prompt {} is {n} tokens with SOT/EOT, longer than the text context of {ctx}: \
                 truncated to its first {} tokens (as the reference does)",
                shorten_prompt(prompt),
                ctx - 2
            );
        }
        let t = Tensor::<2, Int>::from_data(
            TensorData::new(ids.iter().map(|&i| i as i64).collect::<Vec<_>>(), [1, ctx]),
            &self.device,
        );
        let features = self.model.encode_text(t, hooks);
        Ok(EncodedText {
            features,
            prompt: prompt.to_string(),
            ids,
            truncated,
        })
    }

    /// Raw model outputs for a phrase (+ boxes) against an encoded image.
    pub fn ground(
        &self,
        image: &EncodedImage,
        text: &EncodedText,
        boxes: &[BoxPrompt],
        hooks: &mut Hooks,
    ) -> Result<GroundingOutput, ModelError> {
        let out = self.model.ground(&image.features, &text.features, boxes, hooks)?;
        check_finite_outputs(&out)?;
        Ok(out)
    }

    /// Detections (score > `threshold`) for a phrase (+ boxes), mapped to the original image.
    pub fn segment(
        &self,
        image: &EncodedImage,
        prompt: &str,
        boxes: &[BoxPrompt],
        threshold: f32,
        hooks: &mut Hooks,
    ) -> Result<Detections, ModelError> {
        let text = self.encode_prompt(prompt, hooks)?;
        let out = self.ground(image, &text, boxes, hooks)?;
        postprocess(&out, image.image_hw, threshold)
    }
}

/// The top-level calls: one forward (or images × prompts of them) with hooks, the outputs and the
/// captures back. See the [module docs](self) for how stages are routed.
impl Predictor {
    /// Run `image` with `prompt` and capture every point matching `names` (exact names or patterns
    /// such as `decoder.layers.*.q0`, `trunk.blocks.0`, `text.**`): `(outputs, cache)`.
    pub fn run_with_cache(&self, image: &(impl ImageInput + ?Sized), prompt: &str, names: &[&str]) -> Result<Run, ModelError> {
        self.run_with_hooks(image, prompt, HookSpec::new().capture_all(names)?)
    }

    /// Run `image` with `prompt` under `spec` (captures and edits): `(outputs, cache)`.
    pub fn run_with_hooks(&self, image: &(impl ImageInput + ?Sized), prompt: &str, spec: HookSpec) -> Result<Run, ModelError> {
        let mut runs = self.run_with_hooks_batch(std::slice::from_ref(&image), &[prompt], spec)?;
        Ok(runs.runs.pop().expect("one run"))
    }

    /// [`Predictor::run_with_cache`] for every (image, prompt) pair; each image is encoded once and
    /// each prompt once.
    pub fn run_with_cache_batch<I: ImageInput, P: AsRef<str>>(&self, images: &[I], prompts: &[P], names: &[&str]) -> Result<Runs, ModelError> {
        self.run_with_hooks_batch(images, prompts, HookSpec::new().capture_all(names)?)
    }

    /// [`Predictor::run_with_hooks`] for every (image, prompt) pair, image-major. Image features
    /// are computed once per image and text features once per prompt (under the hooks when the spec
    /// reaches into that encoder, whose captures then go into every run of that image / prompt).
    /// Each run gets its own cache; the first hook error (e.g. a replacement of the wrong shape)
    /// ends the call.
    pub fn run_with_hooks_batch<I: ImageInput, P: AsRef<str>>(&self, images: &[I], prompts: &[P], spec: HookSpec) -> Result<Runs, ModelError> {
        let registry = self.hook_registry();
        if self.validate_hooks {
            spec.validate(registry)?;
        }
        let stages = Stages::of(&spec, registry);
        // The text encoder under the hooks once per prompt (its captures go into every run of it).
        let mut texts = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            let mut hooks = if stages.text { Hooks::new(spec.clone()) } else { Hooks::none() };
            let text = self.encode_prompt(prompt.as_ref(), &mut hooks)?;
            texts.push((text, hooks.finish()?));
        }
        let models = [self];
        let mut plain = [TextCache::default()];
        let mut runs = Vec::with_capacity(images.len() * prompts.len());
        for image in images {
            let rgb = image.rgb()?;
            let mut on_image = ImageRuns::new(&models, &rgb, &mut plain);
            // The image encoder under the hooks once per image (its captures go into every run of it).
            let image_cache = if stages.image { on_image.encode(0, spec.clone())? } else { ActivationCache::default() };
            for (text, text_cache) in &texts {
                let mut hooks = Hooks::new(spec.clone());
                for cache in [&image_cache, text_cache] {
                    for name in cache.names_in_capture_order() {
                        hooks.cache_mut().insert(name, cache.get(name)?.clone());
                    }
                }
                let (out, mut cache) = on_image.ground(0, text, hooks)?;
                let m = &mut cache.manifest;
                m.checkpoint_sha256 = self.info.as_ref().map(|i| i.sha256.clone()).unwrap_or_default();
                m.config = serde_json::to_value(&self.model.config).unwrap_or_default();
                m.image = image.describe().into();
                m.prompt = text.prompt.clone();
                m.hook_spec = spec.describe();
                m.sam3lab_version = env!("CARGO_PKG_VERSION").to_string();
                runs.push((out, cache));
            }
        }
        Ok(Runs { images: images.len(), prompts: prompts.len(), runs })
    }

    /// A copy of this model with uniform noise in ±`amplitude` added to every weight, from a
    /// deterministic generator seeded by `seed` (same seed → same weights; no checkpoint `info`):
    /// a stand-in "fine-tune" for demos and tests on the shipped fixture.
    pub fn perturbed(&self, amplitude: f32, seed: u64) -> Predictor {
        let mut noise = Noise { amplitude, rng: sam3lab_util::rng::Rng::new(seed) };
        Predictor::from_model(self.model.clone().map(&mut noise), &self.device)
    }
}

/// Adds uniform noise in ±amplitude to every float parameter (sam3lab's seeded stream, independent
/// of burn's RNG).
struct Noise {
    amplitude: f32,
    rng: sam3lab_util::rng::Rng,
}

impl ModuleMapper for Noise {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| {
            let dims = t.dims();
            let n = dims.iter().product::<usize>();
            let values: Vec<f32> = (0..n)
                .map(|_| self.rng.range(-1.0, 1.0) as f32 * self.amplitude)
                .collect();
            let device = t.device();
            t + Tensor::<D>::from_data(TensorData::new(values, dims), &device)
        })
    }
}

/// Characters of a prompt shown in messages before it is cut with an ellipsis.
pub const PROMPT_SHOWN_CHARS: usize = 60;

/// A prompt for a message: quoted, and cut to its first [`PROMPT_SHOWN_CHARS`] characters with
/// `…` and its total length when longer (a pasted paragraph never floods stderr).
pub fn shorten_prompt(prompt: &str) -> String {
    let n = prompt.chars().count();
    if n <= PROMPT_SHOWN_CHARS {
        format!("{prompt:?}")
    } else {
        let head: String = prompt.chars().take(PROMPT_SHOWN_CHARS).collect();
        format!("{head:?}… ({n} characters)")
    }
}

/// Whether a tensor holds NaN or ±Inf, with one scalar read back: `t − t` is 0 where `t` is finite
/// and NaN elsewhere, so its sum is finite exactly when every element is.
fn has_nonfinite<const D: usize>(t: &Tensor<D>) -> bool {
    let z = (t.clone() - t.clone()).sum();
    let v = z.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
    !v.first().is_some_and(|x| x.is_finite())
}

/// (NaN, ±Inf, total) of a tensor, on the host.
fn count_nonfinite_host<const D: usize>(t: &Tensor<D>) -> (usize, usize, usize) {
    let v = t.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
    (v.iter().filter(|x| x.is_nan()).count(), v.iter().filter(|x| x.is_infinite()).count(), v.len())
}

/// Refuse a forward whose outputs hold NaN or ±Inf: [`ModelError::NonFinite`] naming each such
/// output with its counts. With [`crate::checkpoint::set_allow_nonfinite`] it warns on stderr and
/// returns `Ok` (debugging).
pub fn check_finite_outputs(out: &GroundingOutput) -> Result<(), ModelError> {
    let mut bad = Vec::new();
    let mut see = |name: &str, nonfinite: bool, counts: &dyn Fn() -> (usize, usize, usize)| {
        if nonfinite {
            let (nan, inf, n) = counts();
            bad.push(format!("{name} ({nan} NaN, {inf} Inf of {n})"));
        }
    };
    see("presence_logit", has_nonfinite(&out.presence_logit), &|| count_nonfinite_host(&out.presence_logit));
    see("scores", has_nonfinite(&out.scores), &|| count_nonfinite_host(&out.scores));
    see("pred_logits", has_nonfinite(&out.pred_logits), &|| count_nonfinite_host(&out.pred_logits));
    see("pred_boxes", has_nonfinite(&out.pred_boxes), &|| count_nonfinite_host(&out.pred_boxes));
    see("pred_masks", has_nonfinite(&out.pred_masks), &|| count_nonfinite_host(&out.pred_masks));
    see("semantic_seg", has_nonfinite(&out.semantic_seg), &|| count_nonfinite_host(&out.semantic_seg));
    if bad.is_empty() {
        return Ok(());
    }
    let what = format!(
        "{} — the weights or a hook edit produced NaN/±Inf (rerun with --allow-nonfinite to see the values anyway)",
        bad.join(", ")
    );
    if crate::checkpoint::nonfinite_allowed() {
        eprintln!("warning: non-finite model output (allowed by --allow-nonfinite): {what}");
        Ok(())
    } else {
        Err(ModelError::NonFinite(what))
    }
}

/// Distinct overlay colours (cycled).
const PALETTE: [[u8; 3]; 8] = [
    [230, 25, 75],
    [60, 180, 75],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
];

/// The original image with every kept mask blended in (45 % colour) and its box outlined.
pub fn draw_overlay(img: &RgbImage, dets: &Detections) -> RgbImage {
    let mut out = img.clone();
    let (w, h) = (out.width() as usize, out.height() as usize);
    for (k, d) in dets.detections.iter().enumerate() {
        let c = PALETTE[k % PALETTE.len()];
        if d.mask.width == w && d.mask.height == h {
            for y in 0..h {
                for x in 0..w {
                    if d.mask.get(y, x) {
                        let p = out.get_pixel_mut(x as u32, y as u32);
                        for ch in 0..3 {
                            p.0[ch] = (0.55 * p.0[ch] as f32 + 0.45 * c[ch] as f32).round() as u8;
                        }
                    }
                }
            }
        }
    }
    let t = (w.min(h) / 150).max(1) as i64; // outline thickness
    for (k, d) in dets.detections.iter().enumerate() {
        let c = image::Rgb(PALETTE[k % PALETTE.len()]);
        let [x0, y0, x1, y1] = d.box_xyxy.map(|v| v.round() as i64);
        let mut put = |x: i64, y: i64| {
            if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
                out.put_pixel(x as u32, y as u32, c);
            }
        };
        for i in 0..t {
            for x in x0..=x1 {
                put(x, y0 + i);
                put(x, y1 - i);
            }
            for y in y0..=y1 {
                put(x0 + i, y);
                put(x1 - i, y);
            }
        }
    }
    out
}

/// PNG-encode an RGB image.
pub fn png_bytes(img: &RgbImage) -> Result<Vec<u8>, ModelError> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .map_err(|e| ModelError::Image {
            path: "<overlay>".into(),
            why: format!("PNG encoding failed: {e}"),
        })?;
    Ok(buf.into_inner())
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader never sees a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    sam3lab_util::write_atomic(path, bytes).map_err(|e| ModelError::Io { path: path.display().to_string(), source: e })
}

/// Token ids for a phrase: empty/whitespace-only → error; `(ids, truncated)`.
pub fn tokenize(tok: &Tokenizer, prompt: &str, context_length: usize) -> Result<(Vec<u32>, bool), ModelError> {
    if prompt.trim().is_empty() {
        return Err(ModelError::Prompt(
            "the text prompt is empty: give a noun phrase such as \"a red car\"".into(),
        ));
    }
    let (ids, truncated) = tok.encode(prompt, context_length);
    if ids.iter().skip(1).take_while(|&&i| i != 0).count() <= 1 {
        return Err(ModelError::Prompt(format!(
            "the text prompt {} has no tokens after cleaning",
            shorten_prompt(prompt)
        )));
    }
    Ok((ids, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_long_prompts() {
        let tok = Tokenizer::clip();
        let e = tokenize(tok, "   ", 16).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let (ids, tr) = tokenize(tok, "a red car", 16).unwrap();
        assert!(!tr && ids.len() == 16 && ids[0] == 49406);
        let long = "cat ".repeat(40);
        let (ids, tr) = tokenize(tok, &long, 16).unwrap();
        assert!(tr, "40 words must not fit 16 tokens");
        assert_eq!(ids.len(), 16);
        assert_eq!(ids[15], 49407, "the last kept id is EOT like the reference");
        assert!(ids.iter().all(|&i| i != 0), "no padding after truncation");
    }

    #[test]
    fn long_prompts_are_shortened_in_messages() {
        assert_eq!(shorten_prompt("a red car"), "\"a red car\"");
        let long = "cat ".repeat(500);
        let short = shorten_prompt(&long);
        assert!(short.len() < 100, "{short}");
        assert!(short.ends_with("… (2000 characters)"), "{short}");
        assert!(short.starts_with("\"cat cat"), "{short}");
        // multi-byte characters are cut on character boundaries
        assert!(shorten_prompt(&"é".repeat(200)).contains("(200 characters)"));
    }
}
