//! The simple-FPN neck (`backbone.vision_backbone.convs.{i}`, reference `sam3/model/necks.py`).
//!
//! From the trunk output `(B, C, g, g)`, one level per scale factor: 4× = ConvT2×2(C→C/2), GELU,
//! ConvT2×2(C/2→C/4); 2× = ConvT2×2(C→C/2); 1× = identity; 0.5× = MaxPool2×2; each followed by a
//! 1×1 conv to `d_model` and a 3×3 conv (padding 1). No norm, no other activation. SAM3 drops the
//! last `scalp` levels (the 0.5× one): the model never computes them unless a hook asks for
//! `neck.fpn.{i}` of a dropped level.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;

/// One neck level. Only the transposed convolutions of its scale are present (`None` otherwise),
/// so the parameter paths are exactly the reference's `Sequential` child names.
#[derive(Module, Debug)]
pub struct NeckLevel {
    pub dconv_2x2_0: Option<ConvTranspose2d>,
    pub dconv_2x2_1: Option<ConvTranspose2d>,
    pub dconv_2x2: Option<ConvTranspose2d>,
    pub conv_1x1: Conv2d,
    pub conv_3x3: Conv2d,
    /// The 0.5× level's max-pool (no parameters).
    pub maxpool: bool,
}

fn convt(c_in: usize, c_out: usize, device: &Device) -> ConvTranspose2d {
    ConvTranspose2dConfig::new([c_in, c_out], [2, 2]).with_stride([2, 2]).init(device)
}

/// The neck scales this port supports (the reference raises on anything else).
pub fn check_supported(scales: &[f64]) -> Result<(), String> {
    match scales.iter().find(|s| ![4.0, 2.0, 1.0, 0.5].contains(*s)) {
        Some(s) => Err(format!("neck scale factor {s} is not supported (4, 2, 1, 0.5)")),
        None => Ok(()),
    }
}

impl NeckLevel {
    pub fn new(scale: f64, c: usize, d: usize, device: &Device) -> Self {
        let (mut d0, mut d1, mut d2) = (None, None, None);
        let c_mid = if scale == 4.0 {
            d0 = Some(convt(c, c / 2, device));
            d1 = Some(convt(c / 2, c / 4, device));
            c / 4
        } else if scale == 2.0 {
            d2 = Some(convt(c, c / 2, device));
            c / 2
        } else {
            c
        };
        Self {
            dconv_2x2_0: d0,
            dconv_2x2_1: d1,
            dconv_2x2: d2,
            conv_1x1: Conv2dConfig::new([c_mid, d], [1, 1]).init(device),
            conv_3x3: Conv2dConfig::new([d, d], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device),
            maxpool: scale == 0.5,
        }
    }

    /// `(B, C, g, g)` → `(B, d, s·g, s·g)`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = x;
        if let (Some(a), Some(b)) = (&self.dconv_2x2_0, &self.dconv_2x2_1) {
            x = b.forward(gelu(a.forward(x)));
        }
        if let Some(a) = &self.dconv_2x2 {
            x = a.forward(x);
        }
        if self.maxpool {
            x = max_pool2d(x, MaxPoolOptions::new([2, 2]).with_stride([2, 2]));
        }
        self.conv_3x3.forward(self.conv_1x1.forward(x))
    }
}
