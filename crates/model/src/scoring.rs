//! Dot-product scoring (`dot_prod_scoring`, reference `DotProductScoring`): how well each query
//! matches the prompt.
//!
//! `P' = out_norm(P + L2(relu(L1(P))))` over the prompt before the fusion encoder, mean-pooled over its
//! valid tokens (`scoring.pooled_prompt`), projected by `prompt_proj`; each layer's normed queries go
//! through `hs_proj`; `logit = ⟨hs_proj(hs), prompt_proj(pooled)⟩ / √d_proj`, clamped to ±clamp_max_val
//! (12). The image model's `pred_logits` do NOT include the presence score.

use burn::module::Module;
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::Bool;
use burn::tensor::activation::relu;
use sam3lab_hooks::Hooks;

use crate::Sam3Config;
use crate::nn::{DropRate, layer_norm, linear};

/// The reference `MLP(d, hidden, d, 2, residual=True, out_norm=LayerNorm(d))`.
#[derive(Module, Debug)]
pub struct PromptMlp {
    pub layers: Vec<Linear>,
    pub out_norm: LayerNorm,
}

impl PromptMlp {
    /// `drop`: the reference `MLP`'s train-mode dropout after the hidden ReLU (`drop`).
    pub fn forward(&self, x: Tensor<3>, drop: DropRate) -> Tensor<3> {
        let h = self.layers[1].forward(drop.apply(relu(self.layers[0].forward(x.clone()))));
        self.out_norm.forward(x + h)
    }
}

#[derive(Module, Debug)]
pub struct DotProductScoring {
    pub prompt_mlp: PromptMlp,
    pub prompt_proj: Linear,
    pub hs_proj: Linear,
    pub clamp_max_val: f64,
}

impl DotProductScoring {
    pub fn new(cfg: &Sam3Config, device: &Device) -> Self {
        let d = cfg.d_model;
        let hidden = cfg.scoring.prompt_mlp_hidden;
        Self {
            prompt_mlp: PromptMlp {
                layers: vec![linear(d, hidden, device), linear(hidden, d, device)],
                out_norm: layer_norm(d, device),
            },
            prompt_proj: linear(d, d, device),
            hs_proj: linear(d, d, device),
            clamp_max_val: cfg.scoring.clamp_max_val,
        }
    }

    /// The projected pooled prompt `(B, d_proj)`, shared by every layer's scores.
    pub fn prompt_vector(&self, prompt: &Tensor<3>, prompt_mask: &Tensor<2, Bool>, hooks: &mut Hooks) -> Tensor<2> {
        self.prompt_vector_drop(prompt, prompt_mask, DropRate::OFF, hooks)
    }

    /// [`Self::prompt_vector`] with train-mode dropout `drop` in the prompt MLP.
    pub fn prompt_vector_drop(&self, prompt: &Tensor<3>, prompt_mask: &Tensor<2, Bool>, drop: DropRate, hooks: &mut Hooks) -> Tensor<2> {
        let p = hooks.tap(|| point!("scoring.prompt_mlp"), self.prompt_mlp.forward(prompt.clone(), drop));
        let [b, l, d] = p.dims();
        let valid = prompt_mask.clone().bool_not().float().reshape([b, l, 1]);
        let n = valid.clone().sum_dim(1).clamp_min(1.0).reshape([b, 1]);
        let pooled = (p * valid).sum_dim(1).reshape([b, d]) / n;
        let pooled = hooks.tap(|| point!("scoring.pooled_prompt"), pooled);
        self.prompt_proj.forward(pooled)
    }

    /// Score logits `(B, Q, 1)` of normed queries `hs` `(B, Q, d)` against [`Self::prompt_vector`].
    pub fn logits(&self, hs: Tensor<3>, g: &Tensor<2>) -> Tensor<3> {
        let h = self.hs_proj.forward(hs);
        let [b, _, dp] = h.dims();
        let s = h
            .matmul(g.clone().reshape([b, dp, 1]))
            .mul_scalar((1.0 / (dp as f64).sqrt()) as f32);
        let c = self.clamp_max_val;
        s.clamp(-c, c)
    }
}
