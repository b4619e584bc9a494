#![allow(non_snake_case)] // `boxRPB_embed_{x,y}` are checkpoint names.
//! The DETR-style decoder (`transformer.decoder`, reference `TransformerDecoder` +
//! `TransformerDecoderLayer`) with the presence token.
//!
//! Queries start from `query_embed`, reference boxes from `sigmoid(reference_points)`, the presence
//! token from `presence_token`. Each layer (post-norm) runs on `[presence, queries]` (presence in
//! row 0, zero query position, zero boxRPB row):
//! `x = norm2(x + SA(x+qp, x+qp, x))`, `x = catext_norm(x + CA_text(x+qp, prompt, prompt, prompt_mask))`,
//! `x = norm1(x + CA_image(x+qp, memory+pos, memory, bias=[0; boxRPB]))`, `x = norm3(x + FFN(x))`.
//! After each layer the queries are normed by the decoder `norm` (`hs_i`), boxes are refined with the
//! shared `bbox_embed` (`ref ← σ(inv_σ(ref) + bbox_embed(hs_i))`, eps 1e-3), and the presence logit is
//! `presence_token_head(presence_token_out_norm(p))` — NOT clamped (the reference's `clamp` result
//! is discarded).
//!
//! Train mode (`dac = true`, Meta's DAC one-to-many queries): the Q query embeddings and reference
//! boxes are repeated to 2Q; only `[presence; first Q]` go through self-attention, the second (o2m)
//! half skips it and rejoins before `norm2`; everything else runs on all 2Q. Each layer's box output
//! is `σ(inv_σ(ref_in) + bbox_embed(hs))` where `ref_in` is the previous layer's box output *with* its
//! gradient (as the reference recomputes boxes from its `intermediate_ref_boxes`), while the
//! conditioning of the next layer (query position, boxRPB) sees it detached. Train-mode dropout
//! (the config's `decoder.dropout`, reference `TransformerDecoderLayer`) acts on the three attentions'
//! weights, on each residual branch before it is added (`dropout2` self-attention, `catext_dropout`,
//! `dropout1` image cross-attention, `dropout4` FFN; after the branch's `.out` tap) and after the
//! FFN's ReLU (`dropout3`); the eval forward passes [`DropRate::OFF`].
//!
//! The boxRPB bias ("log" mode) for query q, head h at cell (i, j):
//! `Ey[q, i, h] + Ex[q, j, h]`, `E = MLP(2→d→heads)` of `s(c − (x0, x1))` with c = j/W (or i/H) and
//! `s(δ) = sign(8δ)·log2(|8δ|+1)/3`.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Bool, TensorData};
use sam3lab_hooks::Hooks;

use crate::Sam3Config;
use crate::nn::box_embed::gen_sineembed_for_position;
use crate::nn::{DropRate, Mlp, MultiheadAttention, layer_norm, linear};

/// One post-norm decoder layer under torch names.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Image cross-attention (hook name `ca_image`).
    pub cross_attn: MultiheadAttention,
    pub norm1: LayerNorm,
    pub ca_text: MultiheadAttention,
    pub catext_norm: LayerNorm,
    pub self_attn: MultiheadAttention,
    pub norm2: LayerNorm,
    pub linear1: Linear,
    pub linear2: Linear,
    pub norm3: LayerNorm,
}

impl DecoderLayer {
    pub fn new(d: usize, heads: usize, ffn: usize, device: &Device) -> Self {
        Self {
            cross_attn: MultiheadAttention::new(d, heads, device),
            norm1: layer_norm(d, device),
            ca_text: MultiheadAttention::new(d, heads, device),
            catext_norm: layer_norm(d, device),
            self_attn: MultiheadAttention::new(d, heads, device),
            norm2: layer_norm(d, device),
            linear1: linear(d, ffn, device),
            linear2: linear(ffn, d, device),
            norm3: layer_norm(d, device),
        }
    }

    /// `x` `(B, 1+Q, d)` (row 0 = presence), `qp` `(B, 1+Q, d)` (row 0 zero), `bias` `(B, H, 1+Q, HW)`.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        i: usize,
        x: Tensor<3>,
        qp: &Tensor<3>,
        prompt: &Tensor<3>,
        prompt_mask: &Tensor<2, Bool>,
        memory: &Tensor<3>,
        memory_k: &Tensor<3>,
        bias: Tensor<4>,
        dac: bool,
        drop: DropRate,
        hooks: &mut Hooks,
    ) -> Tensor<3> {
        // DAC: self-attention over [presence; o2o] only; the o2m half rejoins before norm2.
        let [b, n, d] = x.dims();
        let n_sa = if dac { 1 + (n - 1) / 2 } else { n };
        let (xs, qps) = if dac {
            (x.clone().slice([0..b, 0..n_sa]), qp.clone().slice([0..b, 0..n_sa]))
        } else {
            (x.clone(), qp.clone())
        };
        let q = xs.clone() + qps;
        let sa = self.self_attn.forward_drop(
            &crate::nn::hook_name(hooks, || format!("decoder.layers.{i}.self_attn")),
            q.clone(),
            q,
            xs.clone(),
            None,
            None,
            false,
            drop,
            hooks,
        );
        let sa = drop.apply(sa);
        let x = if dac {
            Tensor::cat(vec![xs + sa, x.slice([0..b, n_sa..n])], 1)
        } else {
            x + sa
        };
        debug_assert_eq!(x.dims()[2], d);
        let x = self.norm2.forward(x);
        let ct = self.ca_text.forward_drop(
            &crate::nn::hook_name(hooks, || format!("decoder.layers.{i}.ca_text")),
            x.clone() + qp.clone(),
            prompt.clone(),
            prompt.clone(),
            Some(prompt_mask.clone()),
            None,
            false,
            drop,
            hooks,
        );
        let x = self.catext_norm.forward(x + drop.apply(ct));
        let ci = self.cross_attn.forward_drop(
            &crate::nn::hook_name(hooks, || format!("decoder.layers.{i}.ca_image")),
            x.clone() + qp.clone(),
            memory_k.clone(),
            memory.clone(),
            None,
            Some(bias),
            false,
            drop,
            hooks,
        );
        let x = self.norm1.forward(x + drop.apply(ci));
        let f = self.linear2.forward(drop.apply(relu(self.linear1.forward(x.clone()))));
        let f = hooks.tap(|| format!("decoder.layers.{i}.ffn.out"), f);
        self.norm3.forward(x + drop.apply(f))
    }
}

/// `transformer.decoder.*` under torch names.
#[allow(non_snake_case)]
#[derive(Module, Debug)]
pub struct Decoder {
    pub layers: Vec<DecoderLayer>,
    pub norm: LayerNorm,
    pub bbox_embed: Mlp,
    pub query_embed: Embedding,
    pub reference_points: Embedding,
    pub boxRPB_embed_x: Mlp,
    pub boxRPB_embed_y: Mlp,
    pub presence_token: Embedding,
    pub presence_token_head: Mlp,
    pub presence_token_out_norm: LayerNorm,
    pub ref_point_head: Mlp,
}

/// Per-layer results of the decoder (batch-first).
pub struct DecoderOutput {
    /// `hs_i = norm(queries_i)` per layer, `(B, Q, d)`.
    pub hs: Vec<Tensor<3>>,
    /// Refined boxes per layer, `(B, Q, 4)` cxcywh (= the reference's per-layer `pred_boxes`).
    pub pred_boxes: Vec<Tensor<3>>,
    /// Presence logit per layer, `(B, 1)`.
    pub presence_logits: Vec<Tensor<2>>,
}

impl Decoder {
    pub fn new(cfg: &Sam3Config, device: &Device) -> Self {
        let d = cfg.d_model;
        let c = &cfg.decoder;
        Self {
            layers: (0..c.num_layers)
                .map(|_| DecoderLayer::new(d, c.num_heads, c.dim_feedforward, device))
                .collect(),
            norm: layer_norm(d, device),
            bbox_embed: Mlp::new(d, d, 4, 3, device),
            query_embed: EmbeddingConfig::new(c.num_queries, d).init(device),
            reference_points: EmbeddingConfig::new(c.num_queries, 4).init(device),
            boxRPB_embed_x: Mlp::new(2, d, c.num_heads, 2, device),
            boxRPB_embed_y: Mlp::new(2, d, c.num_heads, 2, device),
            presence_token: EmbeddingConfig::new(1, d).init(device),
            presence_token_head: Mlp::new(d, d, 1, 3, device),
            presence_token_out_norm: layer_norm(d, device),
            ref_point_head: Mlp::new(2 * d, d, d, 2, device),
        }
    }

    /// Run all layers. `memory`/`pos` `(B, HW, d)` over an `hw` grid; `prompt` `(B, P, d)` with its
    /// mask. `dac` = train mode's one-to-many half (2Q queries, see the module docs); `drop` the
    /// train-mode dropout of every layer ([`DropRate::OFF`] in eval mode).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        memory: &Tensor<3>,
        pos: &Tensor<3>,
        hw: (usize, usize),
        prompt: &Tensor<3>,
        prompt_mask: &Tensor<2, Bool>,
        dac: bool,
        drop: DropRate,
        hooks: &mut Hooks,
    ) -> DecoderOutput {
        let [b, _, d] = memory.dims();
        let q0 = self.query_embed.weight.dims()[0];
        let reps = if dac { 2 } else { 1 };
        let q = q0 * reps;
        let mut tgt = self.query_embed.weight.val().repeat_dim(0, reps).unsqueeze_dim::<3>(0).expand([b, q, d]);
        let mut refb = sigmoid(self.reference_points.weight.val())
            .repeat_dim(0, reps)
            .unsqueeze_dim::<3>(0)
            .expand([b, q, 4]);
        // The previous layer's box output with its gradient (the reference's `intermediate_ref_boxes`).
        let mut ref_chain = refb.clone();
        let mut pres = self.presence_token.weight.val().unsqueeze_dim::<3>(0).expand([b, 1, d]);
        let memory_k = memory.clone() + pos.clone();
        let zeros_qp = Tensor::<3>::zeros([b, 1, d], &memory.device());

        let mut out = DecoderOutput {
            hs: vec![],
            pred_boxes: vec![],
            presence_logits: vec![],
        };
        let mut refs_in = Vec::new();
        let mut means = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            tgt = hooks.tap(|| format!("decoder.layers.{i}.in"), tgt);
            pres = hooks.tap(|| format!("decoder.layers.{i}.presence_in"), pres);
            refb = hooks.tap(|| format!("decoder.layers.{i}.ref_boxes"), refb);
            if hooks.is_active() && hooks.edits(&format!("decoder.layers.{i}.ref_boxes")) {
                ref_chain = refb.clone(); // an edited reference box also feeds the box output
            }
            if hooks.wants("decoder.ref_boxes_all") {
                refs_in.push(refb.clone());
            }
            let qp = self.ref_point_head.forward(gen_sineembed_for_position(refb.clone(), d));
            let qp = hooks.tap(|| format!("decoder.layers.{i}.query_pos"), qp);
            let rpb = self.rpb_matrix(&refb, hw);
            let rpb = hooks.tap(|| format!("decoder.layers.{i}.rpb_bias"), rpb);
            let [_, nh, _, l] = rpb.dims();
            let bias = Tensor::cat(vec![Tensor::zeros([b, nh, 1, l], &rpb.device()), rpb], 2);
            let qpf = Tensor::cat(vec![zeros_qp.clone(), qp], 1);
            let x = Tensor::cat(vec![pres, tgt], 1);

            let x = layer.forward(i, x, &qpf, prompt, prompt_mask, memory, &memory_k, bias, dac, drop, hooks);
            let x = hooks.tap(|| format!("decoder.layers.{i}.out"), x);
            let q0 = x.clone().slice([0..b, 0..1]).reshape([b, d]);
            let q0 = hooks.tap(|| format!("decoder.layers.{i}.q0"), q0);
            let queries = hooks.tap(
                || format!("decoder.layers.{i}.queries"),
                x.clone().slice([0..b, 1..1 + q]),
            );
            // Read-only readout of the (possibly edited) layer output, tapped after the loop.
            if hooks.is_active() && hooks.wants(&format!("decoder.layers.{i}.mean")) {
                let edited = hooks.edits(&format!("decoder.layers.{i}.q0"))
                    || hooks.edits(&format!("decoder.layers.{i}.queries"));
                let full = if edited {
                    Tensor::cat(vec![q0.clone().unsqueeze_dim(1), queries.clone()], 1)
                } else {
                    x
                };
                means.push((i, full));
            }
            pres = q0.unsqueeze_dim(1);
            tgt = queries;

            let hs = hooks.tap(
                || format!("decoder.layers.{i}.hs_normed"),
                self.norm.forward(tgt.clone()),
            );
            let new_ref = sigmoid(inverse_sigmoid(ref_chain) + self.bbox_embed.forward(hs.clone()));
            let new_ref = hooks.tap(|| format!("decoder.layers.{i}.pred_boxes"), new_ref);
            let pl = self
                .presence_token_head
                .forward(self.presence_token_out_norm.forward(pres.clone()))
                .reshape([b, 1]);
            let pl = hooks.tap(|| format!("decoder.layers.{i}.presence_logit"), pl);

            out.hs.push(hs);
            out.pred_boxes.push(new_ref.clone());
            out.presence_logits.push(pl);
            ref_chain = new_ref.clone();
            refb = new_ref.detach();
        }
        self.tap_readouts(&out, means, refs_in, hooks);
        out
    }

    /// The hook-only readouts, computed after the layer loop from what it kept (none of them feeds
    /// the forward; each is computed only when a hook wants it): per layer the mean over its output
    /// tokens (`mean`, of the possibly edited `q0`/`queries`) and the xyxy boxes
    /// (`pred_boxes_xyxy`), then every layer's input reference boxes (`ref_boxes_all`).
    fn tap_readouts(&self, out: &DecoderOutput, means: Vec<(usize, Tensor<3>)>, refs_in: Vec<Tensor<3>>, hooks: &mut Hooks) {
        if !hooks.is_active() {
            return;
        }
        for (i, full) in means {
            let [b, _, d] = full.dims();
            let _ = hooks.tap(|| format!("decoder.layers.{i}.mean"), full.mean_dim(1).reshape([b, d]));
        }
        for (i, boxes) in out.pred_boxes.iter().enumerate() {
            if hooks.wants(&format!("decoder.layers.{i}.pred_boxes_xyxy")) {
                let _ = hooks.tap(|| format!("decoder.layers.{i}.pred_boxes_xyxy"), cxcywh_to_xyxy(boxes.clone()));
            }
        }
        if !refs_in.is_empty() {
            let _ = hooks.tap(|| "decoder.ref_boxes_all".into(), Tensor::stack::<4>(refs_in, 1));
        }
    }

    /// The boxRPB attention bias `(B, heads, Q, H·W)` for reference boxes `(B, Q, 4)` (cxcywh).
    pub fn rpb_matrix(&self, refb: &Tensor<3>, (h, w): (usize, usize)) -> Tensor<4> {
        let [b, q, _] = refb.dims();
        let device = refb.device();
        let xyxy = cxcywh_to_xyxy(refb.clone());
        let axis = |n: usize, c0: usize| -> Tensor<4> {
            let coords: Vec<f32> = (0..n).map(|k| k as f32 / n as f32).collect();
            let c = Tensor::<1>::from_data(TensorData::new(coords, [n]), &device).reshape([1, 1, n, 1]);
            let lo = xyxy.clone().slice([0..b, 0..q, c0..c0 + 1]).reshape([b, q, 1, 1]);
            let hi = xyxy.clone().slice([0..b, 0..q, c0 + 2..c0 + 3]).reshape([b, q, 1, 1]);
            let deltas = Tensor::cat(vec![c.clone() - lo, c - hi], 3); // (B, Q, n, 2)
            log_scale(deltas)
        };
        let ex = self.boxRPB_embed_x.forward(axis(w, 0)); // (B, Q, W, heads)
        let ey = self.boxRPB_embed_y.forward(axis(h, 1)); // (B, Q, H, heads)
        let nh = ex.dims()[3];
        let bias = ey.unsqueeze_dim::<5>(3) + ex.unsqueeze_dim::<5>(2); // (B, Q, H, W, heads)
        bias.reshape([b, q, h * w, nh]).permute([0, 3, 1, 2])
    }
}

/// `sign(8δ)·log2(|8δ|+1)/log2(8)`.
fn log_scale(d: Tensor<4>) -> Tensor<4> {
    let d8 = d.mul_scalar(8.0);
    d8.clone().sign()
        * d8.abs()
            .add_scalar(1.0)
            .log()
            .div_scalar(std::f32::consts::LN_2)
            .div_scalar(3.0)
}

/// Reference `inverse_sigmoid(x, eps=1e-3)`: `x ← clamp(x, 0, 1)`, `log(max(x, eps) / max(1−x, eps))`.
pub fn inverse_sigmoid<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let x = x.clamp(0.0, 1.0);
    let x1 = x.clone().clamp_min(1e-3);
    let x2 = x.neg().add_scalar(1.0).clamp_min(1e-3);
    (x1 / x2).log()
}

/// `(…, 4)` cxcywh → xyxy.
pub fn cxcywh_to_xyxy(x: Tensor<3>) -> Tensor<3> {
    let [b, q, _] = x.dims();
    let c = |k: usize| x.clone().slice([0..b, 0..q, k..k + 1]);
    let (cx, cy, w, h) = (c(0), c(1), c(2), c(3));
    Tensor::cat(
        vec![
            cx.clone() - w.clone().mul_scalar(0.5),
            cy.clone() - h.clone().mul_scalar(0.5),
            cx + w.mul_scalar(0.5),
            cy + h.mul_scalar(0.5),
        ],
        2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_sigmoid_clamps_like_reference() {
        let dev = Device::flex();
        let x = Tensor::<1>::from_data(TensorData::new(vec![0.0f32, 0.5, 0.9, 1.0, 1.5, -0.2], [6]), &dev);
        let v = inverse_sigmoid(x)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        let e = [
            (1e-3f64 / 1.0).ln(),
            0.0,
            (0.9f64 / (1.0 - 0.9f32 as f64)).ln(),
            (1.0f64 / 1e-3).ln(),
        ];
        for (a, b) in v.iter().zip(e) {
            assert!((*a as f64 - b).abs() < 1e-4, "{v:?}");
        }
        assert!((v[4] - v[3]).abs() < 1e-6 && (v[5] - v[0]).abs() < 1e-6, "{v:?}");
    }

    #[test]
    fn log_scale_values() {
        let dev = Device::flex();
        let d = Tensor::<4>::from_data(TensorData::new(vec![0.0f32, 0.125, -0.875, 1.0], [1, 1, 1, 4]), &dev);
        let v = log_scale(d).into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        // 8δ = 0, 1, -7, 8 → 0, log2(2)/3, -log2(8)/3, log2(9)/3
        let e = [0.0, 1.0 / 3.0, -1.0, 9f64.log2() / 3.0];
        for (a, b) in v.iter().zip(e) {
            assert!((*a as f64 - b).abs() < 1e-6, "{v:?}");
        }
    }
}
