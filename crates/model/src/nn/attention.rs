//! Attention with `torch.nn.MultiheadAttention` semantics and hook points for every head.
//!
//! Per design doc §3, the output projection splits over heads:
//! `out = Σ_h o_h · W_oᵀ[:, h·d:(h+1)·d] + b_o`. When a hook asks for `{module}.head.{h}` or
//! `{module}.attn_weights`, attention runs the explicit path (scores → softmax → per-head
//! contributions, each a hook point, then summed with the shared bias); otherwise it uses burn's
//! fused attention kernel (or, for long unmasked sequences on the CPU, [`super::long_attention`]),
//! so unused head hooks cost nothing.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::Bool;
use burn::tensor::activation::softmax;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use sam3lab_hooks::Hooks;

use super::{DropRate, linear};

/// `nn.MultiheadAttention` parameters under their torch names: `in_proj_weight` `[3E, E]` (rows
/// q | k | v, torch layout), `in_proj_bias` `[3E]`, `out_proj` (a Linear).
#[derive(Module, Debug)]
pub struct MultiheadAttention {
    pub in_proj_weight: Param<Tensor<2>>,
    pub in_proj_bias: Param<Tensor<1>>,
    pub out_proj: Linear,
    pub num_heads: usize,
}

impl MultiheadAttention {
    pub fn new(d: usize, num_heads: usize, device: &Device) -> Self {
        let bound = (1.0 / d as f64).sqrt();
        let w = Tensor::<2>::random([3 * d, d], burn::tensor::Distribution::Uniform(-bound, bound), device);
        Self {
            in_proj_weight: Param::from_tensor(w),
            in_proj_bias: Param::from_tensor(Tensor::zeros([3 * d], device)),
            out_proj: linear(d, d, device),
            num_heads,
        }
    }

    pub fn d_model(&self) -> usize {
        self.in_proj_weight.dims()[1]
    }

    /// Project with block `i` (0 = q, 1 = k, 2 = v) of the fused in-projection.
    fn project(&self, x: Tensor<3>, i: usize) -> Tensor<3> {
        let e = self.d_model();
        let w = self.in_proj_weight.val().slice([i * e..(i + 1) * e]); // (E_out, E_in), contiguous rows
        let b = self.in_proj_bias.val().slice([i * e..(i + 1) * e]);
        let [bb, l, e_in] = x.dims();
        if bb * l < e && !x.device().is_autodiff() {
            // Few tokens (the text encoder's 32, the decoder's queries): W·xᵀ reads the weight block
            // in place, where x·Wᵀ makes the CPU backend copy the transposed block on every call
            // (measured 5× slower for 32 tokens at width 1024). Same product.
            let y = w.matmul(x.reshape([bb * l, e_in]).transpose()).transpose();
            return (y + b.unsqueeze::<2>()).reshape([bb, l, e]);
        }
        burn::tensor::module::linear(x, w.transpose(), Some(b))
    }

    /// Batch-first attention over `input` ([`AttnInput`]). Taps `{name}.attn_weights`,
    /// `{name}.head.{h}` (on demand) and `{name}.out`. Returns `(B, Lq, E)`.
    pub fn forward(&self, name: &str, input: AttnInput, hooks: &mut Hooks) -> Tensor<3> {
        let h = self.num_heads;
        let AttnInput { query, key, value, key_padding_mask, bias, causal, dropout } = input;
        let q = split_heads(self.project(query, 0), h);
        let k = split_heads(self.project(key, 1), h);
        let v = split_heads(self.project(value, 2), h);
        let mask = key_padding_mask.map(|m| {
            let [b, lk] = m.dims();
            let lq = q.dims()[2];
            m.reshape([b, 1, 1, lk]).expand([b, h, lq, lk])
        });
        let out = OutProjection { weight: self.out_proj.weight.val(), bias: self.out_proj.bias.as_ref().map(|b| b.val()) };
        attention_core(name, HeadsInput { q, k, v, mask, bias, causal, dropout }, &out, hooks)
    }
}

/// One attention call's inputs, in burn's `MhaInput` style: batch-first `query` `(B, Lq, E)` and
/// `key`/`value` `(B, Lk, E)`, with the optional parts set by the builder methods.
pub struct AttnInput {
    pub query: Tensor<3>,
    pub key: Tensor<3>,
    pub value: Tensor<3>,
    /// `(B, Lk)`, true = padding (an ignored key).
    pub key_padding_mask: Option<Tensor<2, Bool>>,
    /// `(B, H, Lq, Lk)` added to the logits (the decoder's boxRPB).
    pub bias: Option<Tensor<4>>,
    /// Mask keys after the query (the text encoder).
    pub causal: bool,
    /// Train-mode dropout on the attention weights (torch `nn.MultiheadAttention(dropout=p)`: after
    /// the softmax, before the weighted sum of values); [`DropRate::OFF`] in every eval forward.
    pub dropout: DropRate,
}

impl AttnInput {
    pub fn new(query: Tensor<3>, key: Tensor<3>, value: Tensor<3>) -> Self {
        Self { query, key, value, key_padding_mask: None, bias: None, causal: false, dropout: DropRate::OFF }
    }

    pub fn key_padding_mask(mut self, mask: Option<Tensor<2, Bool>>) -> Self {
        self.key_padding_mask = mask;
        self
    }

    pub fn bias(mut self, bias: Option<Tensor<4>>) -> Self {
        self.bias = bias;
        self
    }

    pub fn causal(mut self, causal: bool) -> Self {
        self.causal = causal;
        self
    }

    pub fn dropout(mut self, dropout: DropRate) -> Self {
        self.dropout = dropout;
        self
    }
}

/// Already-projected heads for [`attention_core`]: `q` `(B,H,Lq,d)`, `k`/`v` `(B,H,Lk,d)`; `mask`
/// `(B,H,Lq,Lk)` true = masked; `bias` additive; `dropout` as in [`AttnInput`].
pub struct HeadsInput {
    pub q: Tensor<4>,
    pub k: Tensor<4>,
    pub v: Tensor<4>,
    pub mask: Option<Tensor<4, Bool>>,
    pub bias: Option<Tensor<4>>,
    pub causal: bool,
    pub dropout: DropRate,
}

impl HeadsInput {
    /// Plain heads: no mask, no bias, not causal, no dropout (the ViT's attention).
    pub fn new(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Self {
        Self { q, k, v, mask: None, bias: None, causal: false, dropout: DropRate::OFF }
    }
}

/// An attention's output projection in burn layout: `weight` `[H·d, E]` (`Linear::weight`), `bias`.
pub struct OutProjection {
    pub weight: Tensor<2>,
    pub bias: Option<Tensor<1>>,
}

/// `(B, L, H·d)` → `(B, H, L, d)`.
pub fn split_heads(x: Tensor<3>, h: usize) -> Tensor<4> {
    let [b, l, e] = x.dims();
    x.reshape([b, l, h, e / h]).swap_dims(1, 2)
}

/// `(B, H, L, d)` → `(B, L, H·d)`.
pub fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [b, h, l, d] = x.dims();
    x.swap_dims(1, 2).reshape([b, l, h * d])
}

/// Scaled dot-product attention over already-projected heads plus the output projection, with hooks.
///
/// When `dropout` is active the explicit path runs (burn's fused kernel has no dropout); the weights
/// are tapped before it.
pub fn attention_core(name: &str, input: HeadsInput, out: &OutProjection, hooks: &mut Hooks) -> Tensor<3> {
    let HeadsInput { q, k, v, mask, bias, causal, dropout: drop } = input;
    let (out_w, out_b) = (&out.weight, out.bias.clone());
    let [_, heads, _, d] = q.dims();
    let explicit = drop.active(&q.device())
        || (hooks.is_active()
            && (hooks.wants(&point!(suffix name, ".attn_weights"))
                || (0..heads).any(|i| hooks.wants(&point!(suffix name, ".head.{h}", i)))));
    let out = if !explicit {
        let o = if mask.is_none() && bias.is_none() && !causal && super::long_attention::applies(&q, &k) {
            super::long_attention::attention(q, k, v)
        } else {
            attention(q, k, v, mask, bias, AttentionModuleOptions { scale: None, softcap: None, is_causal: causal })
        };
        burn::tensor::module::linear(merge_heads(o), out_w.clone(), out_b)
    } else {
        let mut scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (d as f64).sqrt());
        if let Some(b) = bias {
            scores = scores + b;
        }
        if causal {
            let [b, h, lq, lk] = scores.dims();
            let tri = Tensor::<2, Bool>::tril_mask([lq, lk], 0, &scores.device());
            scores = scores.mask_fill(tri.reshape([1, 1, lq, lk]).expand([b, h, lq, lk]), f32::NEG_INFINITY);
        }
        if let Some(m) = mask {
            scores = scores.mask_fill(m, f32::NEG_INFINITY);
        }
        let weights = hooks.tap_named(&point!(suffix name, ".attn_weights"), softmax(scores, 3));
        let o = drop.apply(weights).matmul(v); // (B,H,Lq,d)
        let [b, _, lq, _] = o.dims();
        let mut sum: Option<Tensor<3>> = None;
        for i in 0..heads {
            let o_h = o.clone().slice([0..b, i..i + 1]).reshape([b, lq, d]);
            let w_h = out_w.clone().slice([i * d..(i + 1) * d]).unsqueeze::<3>();
            let contrib = hooks.tap_named(&point!(suffix name, ".head.{h}", i), o_h.matmul(w_h));
            sum = Some(match sum {
                None => contrib,
                Some(s) => s + contrib,
            });
        }
        let sum = sum.expect("at least one head");
        match out_b {
            Some(bias) => sum + bias.unsqueeze::<3>(),
            None => sum,
        }
    };
    hooks.tap(|| point!(suffix name, ".out"), out)
}
