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
//! Prompts: an empty (or whitespace-only) phrase is an error; a phrase longer than the text context is
//! truncated exactly like the reference (last kept id becomes EOT) with a warning on stderr that shows
//! the prompt shortened ([`shorten_prompt`]). Boxes must lie in [0, 1]; point prompts are refused (see
//! [`crate::geometry`]).
//!
//! Outputs: [`Predictor::ground`] (and so `segment`) returns [`ModelError::NonFinite`] naming every
//! output holding NaN or ±Inf ([`check_finite_outputs`]) instead of results that read "presence NaN";
//! with [`crate::checkpoint::set_allow_nonfinite`] (the CLI's `--allow-nonfinite`) it only warns.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use image::RgbImage;
use sam3lab_hooks::Hooks;

use crate::ModelError;
use crate::geometry::BoxPrompt;
use crate::heads::{GroundingOutput, ImageFeatures, TextFeatures};
use crate::postprocess::{Detections, postprocess};
use crate::preprocess::{load_image, preprocess};
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
        })
    }

    pub fn from_model(model: Sam3, device: &Device) -> Self {
        Self {
            model,
            info: None,
            tokenizer: Tokenizer::clip(),
            device: device.clone(),
        }
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
    let io = |e: std::io::Error| ModelError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
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
