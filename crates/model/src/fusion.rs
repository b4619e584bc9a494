//! The fusion encoder (`transformer.encoder`, reference `TransformerEncoderFusion`) and the pre-norm
//! encoder layer it shares with the geometry encoder (`TransformerEncoderLayer`).
//!
//! Per layer (pre-norm): `x += SA(q=k=LN1(x)[+pos], v=LN1(x))`, `x += CA(q=LN2(x), k=memory[+pos],
//! v=memory)`, `x += FFN(LN3(x))`. The fusion encoder adds the image position map to the self-attention
//! queries/keys and cross-attends to the prompt (with its padding mask, no position); the geometry
//! encoder does the opposite (no position in self-attention, image position on the cross-attention keys).
//! There is no final norm and the prompt is not updated.

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::Bool;
use burn::tensor::activation::relu;
use sam3lab_hooks::Hooks;

use crate::Sam3Config;
use crate::nn::{AttnInput, DropRate, MultiheadAttention, layer_norm, linear};

/// Reference `TransformerEncoderLayer` (pre-norm path) under its torch field names.
#[derive(Module, Debug)]
pub struct EncoderLayer {
    pub self_attn: MultiheadAttention,
    /// Cross-attention (torch `cross_attn_image`): to the prompt in fusion, to the image in geometry.
    pub cross_attn_image: MultiheadAttention,
    pub linear1: Linear,
    pub linear2: Linear,
    pub norm1: LayerNorm,
    pub norm2: LayerNorm,
    pub norm3: LayerNorm,
}

/// Where the layer adds position encodings and which masks it uses.
pub struct LayerInputs<'a> {
    /// Added to the self-attention queries and keys (fusion: the image position map).
    pub self_pos: Option<&'a Tensor<3>>,
    /// Key padding mask of the self-attention (geometry: the prompt-token mask).
    pub self_kpm: Option<&'a Tensor<2, Bool>>,
    /// Cross-attention memory `(B, M, d)`.
    pub memory: &'a Tensor<3>,
    /// Added to the cross-attention keys (geometry: the image position map).
    pub memory_pos: Option<&'a Tensor<3>>,
    /// Key padding mask over the memory (fusion: the prompt mask).
    pub memory_kpm: Option<&'a Tensor<2, Bool>>,
}

impl EncoderLayer {
    pub fn new(d: usize, heads: usize, ffn: usize, device: &Device) -> Self {
        Self {
            self_attn: MultiheadAttention::new(d, heads, device),
            cross_attn_image: MultiheadAttention::new(d, heads, device),
            linear1: linear(d, ffn, device),
            linear2: linear(ffn, d, device),
            norm1: layer_norm(d, device),
            norm2: layer_norm(d, device),
            norm3: layer_norm(d, device),
        }
    }

    /// `x` `(B, S, d)` → `(B, S, d)`. `name` is the layer's hook prefix (`fusion.layers.3`); the
    /// attentions are `{name}.self_attn` / `{name}.cross_attn`, the FFN output `{name}.ffn.out`.
    ///
    /// `drop` is the train-mode dropout (reference `forward_pre`): on both attentions' weights
    /// (`nn.MultiheadAttention(dropout)`), on each residual branch before it is added (`dropout1`,
    /// `dropout2`, `dropout3`, after the branch's `.out` tap) and after the FFN's ReLU (`dropout`).
    pub fn forward(&self, name: &str, x: Tensor<3>, inp: &LayerInputs<'_>, drop: DropRate, hooks: &mut Hooks) -> Tensor<3> {
        let a = self.norm1.forward(x.clone());
        let qk = match inp.self_pos {
            Some(p) => a.clone() + p.clone(),
            None => a.clone(),
        };
        let sa = self.self_attn.forward(
            &crate::nn::hook_name(hooks, || point!(segment name, ".self_attn")),
            AttnInput::new(qk.clone(), qk, a).key_padding_mask(inp.self_kpm.cloned()).dropout(drop),
            hooks,
        );
        let x = x + drop.apply(sa);
        let b = self.norm2.forward(x.clone());
        let k = match inp.memory_pos {
            Some(p) => inp.memory.clone() + p.clone(),
            None => inp.memory.clone(),
        };
        let ca = self.cross_attn_image.forward(
            &crate::nn::hook_name(hooks, || point!(segment name, ".cross_attn")),
            AttnInput::new(b, k, inp.memory.clone()).key_padding_mask(inp.memory_kpm.cloned()).dropout(drop),
            hooks,
        );
        let x = x + drop.apply(ca);
        let c = self.norm3.forward(x.clone());
        let f = self.linear2.forward(drop.apply(relu(self.linear1.forward(c))));
        let f = hooks.tap(|| point!(suffix name, ".ffn.out"), f);
        x + drop.apply(f)
    }
}

/// What the fusion encoder reads besides the image tokens: `pos` their sine map `(B, HW, d)`,
/// `prompt` `(B, P, d)` with `prompt_mask` `(B, P)` (true = padding), and the train-mode dropout of
/// every layer (see [`EncoderLayer::forward`]; [`DropRate::OFF`] in eval mode).
pub struct FusionInput<'a> {
    pub pos: &'a Tensor<3>,
    pub prompt: &'a Tensor<3>,
    pub prompt_mask: &'a Tensor<2, Bool>,
    pub dropout: DropRate,
}

/// `transformer.encoder`: image tokens attend to themselves (with position) and to the prompt.
#[derive(Module, Debug)]
pub struct FusionEncoder {
    pub layers: Vec<EncoderLayer>,
}

impl FusionEncoder {
    pub fn new(cfg: &Sam3Config, device: &Device) -> Self {
        let f = &cfg.fusion;
        Self {
            layers: (0..f.num_layers)
                .map(|_| EncoderLayer::new(cfg.d_model, f.num_heads, f.dim_feedforward, device))
                .collect(),
        }
    }

    /// `img` `(B, HW, d)` (the 1× level, row-major) through every layer with `input`
    /// ([`FusionInput`]) → memory `(B, HW, d)`.
    pub fn forward(&self, img: Tensor<3>, input: &FusionInput<'_>, hooks: &mut Hooks) -> Tensor<3> {
        let &FusionInput { pos, prompt, prompt_mask, dropout: drop } = input;
        let inp = LayerInputs {
            self_pos: Some(pos),
            self_kpm: None,
            memory: prompt,
            memory_pos: None,
            memory_kpm: Some(prompt_mask),
        };
        let mut x = img;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&crate::nn::hook_name(hooks, || point!(prefix "fusion.layers.{i}", i)), x, &inp, drop, hooks);
            x = hooks.tap(|| point!("fusion.layers.{i}", i), x);
        }
        hooks.tap(|| point!("fusion.memory"), x)
    }
}
