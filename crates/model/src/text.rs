//! The text encoder (`backbone.language_backbone`, reference `sam3/model/text_encoder_ve.py`).
//!
//! CLIP-style: `token_embedding + positional_embedding[:L]`, then pre-LN residual blocks
//! (`x += attn(ln_1 x)` with a causal mask over ALL L positions — padding included, no key-padding
//! mask — and `x += c_proj(gelu(c_fc(ln_2 x)))`), `ln_final`, then `resizer` to `d_model`.
//! `text_projection` is a checkpoint tensor the reference multiplies and throws away: it is loaded
//! here but never computed.
//!
//! Hook layouts: `text.input_ids`, `text.padding_mask` `(B, L)` (float; 1 = padding; read-only:
//! editing them changes nothing), `text.token_embedding` (the embedding lookup before the position
//! add), `text.blocks.{i}`, `text.blocks.{i}.mlp.out`, `text.ln_final` `(B, L, W)`, the attention
//! points `text.blocks.{i}.attn.{out, head.{h}, attn_weights}`, and `text.out` `(B, L, d)`.

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::activation::gelu;
use burn::tensor::{Bool, Int};
use sam3lab_hooks::Hooks;

use crate::config::{TEXT_PROJECTION_DIM, TextConfig};
use crate::nn::{AttnInput, MultiheadAttention, layer_norm, linear};

#[derive(Module, Debug)]
pub struct TextMlp {
    pub c_fc: Linear,
    pub c_proj: Linear,
}

#[derive(Module, Debug)]
pub struct ResidualAttentionBlock {
    pub attn: MultiheadAttention,
    pub ln_1: LayerNorm,
    pub ln_2: LayerNorm,
    pub mlp: TextMlp,
}

#[derive(Module, Debug)]
pub struct TextTower {
    pub resblocks: Vec<ResidualAttentionBlock>,
}

/// open_clip's `TextTransformer` (SAM3 uses its token outputs, no pooling).
#[derive(Module, Debug)]
pub struct TextTransformer {
    pub token_embedding: Embedding,
    /// `(context_length, W)`, torch layout.
    pub positional_embedding: Param<Tensor<2>>,
    pub transformer: TextTower,
    pub ln_final: Option<LayerNorm>,
    /// `(W, 512)`, loaded for checkpoint fidelity only (its product is discarded by the reference).
    pub text_projection: Param<Tensor<2>>,
    pub causal: bool,
}

#[derive(Module, Debug)]
pub struct LanguageBackbone {
    pub encoder: TextTransformer,
    pub resizer: Linear,
}

/// What the text encoder hands the rest of the model.
#[derive(Clone, Debug)]
pub struct TextOutput {
    /// `language_features` batch-first `(B, L, d)` (the reference keeps them `(L, B, d)`).
    pub features: Tensor<3>,
    /// `(B, L)`, true = padding (token id 0).
    pub padding_mask: Tensor<2, Bool>,
    /// The raw token embeddings `(B, L, W)` (the reference's `language_embeds`).
    pub embeds: Tensor<3>,
}

impl LanguageBackbone {
    pub fn new(cfg: &TextConfig, d_model: usize, device: &Device) -> Self {
        let w = cfg.width;
        let hidden = (w as f64 * cfg.mlp_ratio) as usize;
        let resblocks = (0..cfg.layers)
            .map(|_| ResidualAttentionBlock {
                attn: MultiheadAttention::new(w, cfg.heads, device),
                ln_1: layer_norm(w, device),
                ln_2: layer_norm(w, device),
                mlp: TextMlp { c_fc: linear(w, hidden, device), c_proj: linear(hidden, w, device) },
            })
            .collect();
        // open_clip init: token emb N(0, 0.02), positional N(0, 0.01), projection N(0, W^-0.5)
        // (the reference leaves the last two `torch.empty`: a random init must not be garbage).
        let token_embedding = EmbeddingConfig::new(cfg.vocab_size, w)
            .with_initializer(Initializer::Normal { mean: 0.0, std: 0.02 })
            .init(device);
        let encoder = TextTransformer {
            token_embedding,
            positional_embedding: Initializer::Normal { mean: 0.0, std: 0.01 }.init([cfg.context_length, w], device),
            transformer: TextTower { resblocks },
            ln_final: cfg.use_ln_post.then(|| layer_norm(w, device)),
            text_projection: Initializer::Normal { mean: 0.0, std: (w as f64).powf(-0.5) }
                .init([w, TEXT_PROJECTION_DIM], device),
            causal: cfg.causal_mask,
        };
        Self { encoder, resizer: linear(w, d_model, device) }
    }

    /// `input_ids` `(B, L)` with `L ≤ context_length` → [`TextOutput`].
    pub fn forward(&self, input_ids: Tensor<2, Int>, hooks: &mut Hooks) -> TextOutput {
        let [b, l] = input_ids.dims();
        let e = &self.encoder;
        let ctx = e.positional_embedding.dims()[0];
        assert!(l <= ctx, "text: {l} token ids exceed the context length {ctx} (tokenize with truncation)");
        if hooks.is_active() {
            hooks.tap(|| point!("text.input_ids"), input_ids.clone().float());
        }
        let padding_mask = input_ids.clone().equal_elem(0);
        let embeds = hooks.tap(|| point!("text.token_embedding"), e.token_embedding.forward(input_ids));
        let w = embeds.dims()[2];
        let pos = e.positional_embedding.val().slice([0..l]).reshape([1, l, w]);
        let mut x = embeds.clone() + pos;
        for (i, blk) in e.transformer.resblocks.iter().enumerate() {
            let name = if hooks.is_active() { point!(prefix "text.blocks.{i}.attn", i) } else { String::new() };
            let y = blk.ln_1.forward(x.clone());
            let a = blk.attn.forward(&name, AttnInput::new(y.clone(), y.clone(), y).causal(e.causal), hooks);
            x = x + a;
            let m = blk.mlp.c_proj.forward(gelu(blk.mlp.c_fc.forward(blk.ln_2.forward(x.clone()))));
            let m = hooks.tap(|| point!("text.blocks.{i}.mlp.out", i), m);
            x = hooks.tap(|| point!("text.blocks.{i}", i), x + m);
        }
        let x = match &e.ln_final {
            Some(n) => n.forward(x),
            None => x,
        };
        let x = hooks.tap(|| point!("text.ln_final"), x);
        let features = hooks.tap(|| point!("text.out"), self.resizer.forward(x));
        if hooks.is_active() {
            hooks.tap(|| point!("text.padding_mask"), padding_mask.clone().float());
        }
        debug_assert_eq!(features.dims()[0], b);
        TextOutput { features, padding_mask, embeds }
    }
}
