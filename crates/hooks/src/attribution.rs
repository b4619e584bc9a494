//! Attribution through a LayerNorm with its per-token statistics frozen.
//!
//! Per-head points `{module}.head.{h}` split an attention output exactly:
//! `{module}.out = Σ_h head.{h} + b_o` (`b_o` = the output projection's bias, shared by all heads).
//! Where that output lands decides how to read a head's contribution:
//!
//! - **Pre-norm stacks** (ViT trunk, text encoder, geometry encoder, fusion encoder, segmentation
//!   prompt attention): `x ← x + attn(norm(x))`, so each head's contribution adds *directly* into the
//!   residual stream; sums of captured head points are exact decompositions of the stream update.
//! - **The post-norm decoder**: `x ← norm2(x + self_attn)`, `x ← catext_norm(x + ca_text)`,
//!   `x ← norm1(x + ca_image)`, `x ← norm3(x + ffn)`. A head's contribution adds to the pre-norm sum
//!   `r = x + attn` *before* the LayerNorm, and LayerNorm is not linear in `r` (it divides by the
//!   per-token σ of the whole sum). A head's raw `….head.{h}` is therefore a *pre-norm*
//!   contribution; it is not what the next sublayer (or `decoder.layers.{i}.q0`) sees.
//!
//! [`FrozenLayerNorm`] makes the post-norm case additive: freeze the per-token σ (and the centring)
//! at the actual pre-norm sum `r`, then `LN(r) = Σ_k push(part_k) + β` holds exactly for any split
//! `r = Σ_k part_k` (e.g. the residual input, every head, the out-projection bias), because
//! `push(p) = γ ⊙ (p − mean(p)) / σ(r)` is linear in `p`. This is the usual "freeze the LayerNorm
//! scale" convention (TransformerLens' `fold_ln`/`apply_ln_to_stack`). Its limits: it is exact only for
//! the one LayerNorm it is frozen at (pushing further through the FFN and later norms is not linear),
//! and it says how a head moved the normalised output *at this input*, not what would happen if the
//! head were removed (σ would change: use a `zero` intervention on `….head.{h}` for that).
//!
//! Decoder layer `i`, self-attention (every input is a hook point; `norm2` comes from the model):
//! ```text
//! capture decoder.layers.{i}.{presence_in,in}, decoder.layers.{i}.self_attn.{out,head.*}
//! x   = cat([presence_in, in], axis 1)                      // (B, 1+Q, d), row 0 = presence token
//! r   = x + self_attn.out                                   // norm2's input
//! ln  = FrozenLayerNorm::from_layer_norm(&model.transformer.decoder.layers[i].norm2, r, 1e-5)
//! c_h = ln.push(self_attn.head.{h})                         // head h's share of norm2(r); row 0 → q0 path
//! Σ_h ln.push(head.{h}) + ln.push(x) + ln.push(b_o) + ln.bias() == norm2(r)
//! ```
//! For `ca_text` (`catext_norm`) and `ca_image` (`norm1`) the sublayer input `x` is the previous
//! norm's output, `layers[i].norm2.forward(r)` etc.; `crates/model/tests/hooks_api.rs` checks the
//! identity above on the fixture.

use burn::prelude::*;

/// A LayerNorm linearised at one input: `push(p) = γ ⊙ (p − mean(p)) / σ`, σ = √(var(r) + ε) of the
/// pre-norm input `r` it was frozen at (biased variance, per token, over the last axis, like
/// `torch.nn.LayerNorm`).
#[derive(Clone, Debug)]
pub struct FrozenLayerNorm<const D: usize> {
    /// `1/σ` per token, shape `(…, 1)`.
    inv_sigma: Tensor<D>,
    gamma: Tensor<1>,
    beta: Option<Tensor<1>>,
}

impl<const D: usize> FrozenLayerNorm<D> {
    /// Freeze at the pre-norm input `pre_norm` `(…, d)` with the norm's weight `gamma` `[d]`, bias
    /// `beta` `[d]` and `eps` (SAM3 uses 1e-5 everywhere).
    pub fn new(pre_norm: Tensor<D>, gamma: Tensor<1>, beta: Option<Tensor<1>>, eps: f64) -> Self {
        let var = pre_norm.var_bias(D - 1);
        let inv_sigma = var.add_scalar(eps).sqrt().recip();
        Self { inv_sigma, gamma, beta }
    }

    /// Freeze a burn `LayerNorm` (its ε is private in burn: pass it).
    pub fn from_layer_norm(norm: &burn::nn::LayerNorm, pre_norm: Tensor<D>, eps: f64) -> Self {
        Self::new(pre_norm, norm.gamma.val(), norm.beta.as_ref().map(|b| b.val()), eps)
    }

    fn broadcast(&self, v: Tensor<1>) -> Tensor<D> {
        let d = v.dims()[0];
        let mut dims = [1usize; D];
        dims[D - 1] = d;
        v.reshape(dims)
    }

    /// One additive component of the pre-norm input, pushed through the frozen norm (no β).
    pub fn push(&self, part: Tensor<D>) -> Tensor<D> {
        let centred = part.clone() - part.mean_dim(D - 1);
        centred * self.inv_sigma.clone() * self.broadcast(self.gamma.clone())
    }

    /// The norm's own bias β broadcast to rank `D` (zeros when the norm has none): the term that
    /// belongs to no component.
    pub fn bias(&self) -> Tensor<D> {
        match &self.beta {
            Some(b) => self.broadcast(b.clone()),
            None => self.broadcast(self.gamma.zeros_like()),
        }
    }

    /// `1/σ` per token `(…, 1)`.
    pub fn inv_sigma(&self) -> Tensor<D> {
        self.inv_sigma.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn t(v: Vec<f32>, s: [usize; 3]) -> Tensor<3> {
        Tensor::from_data(TensorData::new(v, s), &Device::flex())
    }
    fn v1(v: Vec<f32>) -> Tensor<1> {
        let n = v.len();
        Tensor::from_data(TensorData::new(v, [n]), &Device::flex())
    }
    fn vals(x: Tensor<3>) -> Vec<f32> {
        x.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn hand_derived_token() {
        // r = [1, 2, 3, 6]: mean 3, biased var (4 + 1 + 0 + 9) / 4 = 3.5.
        let r = t(vec![1., 2., 3., 6.], [1, 1, 4]);
        let gamma = v1(vec![1., 2., 1., 1.]);
        let beta = v1(vec![0.5, 0., 0., -1.]);
        let ln = FrozenLayerNorm::new(r, gamma, Some(beta), 0.0);
        let s = 3.5f32.sqrt();
        // Component [1, 0, 0, 0]: centred [0.75, -0.25, -0.25, -0.25].
        let a = vals(ln.push(t(vec![1., 0., 0., 0.], [1, 1, 4])));
        let want_a = [0.75 / s, -0.5 / s, -0.25 / s, -0.25 / s];
        // Rest [0, 2, 3, 6]: mean 2.75, centred [-2.75, -0.75, 0.25, 3.25].
        let b = vals(ln.push(t(vec![0., 2., 3., 6.], [1, 1, 4])));
        let want_b = [-2.75 / s, -1.5 / s, 0.25 / s, 3.25 / s];
        let beta = vals(ln.bias());
        // LN(r) = γ (r − 3)/σ + β = [-2/σ + 0.5, 2·(-1)/σ, 0, 3/σ − 1].
        let want_ln = [-2. / s + 0.5, -2. / s, 0., 3. / s - 1.];
        for k in 0..4 {
            assert!((a[k] - want_a[k]).abs() < 1e-6 && (b[k] - want_b[k]).abs() < 1e-6, "{a:?} {b:?}");
            assert!((a[k] + b[k] + beta[k] - want_ln[k]).abs() < 1e-6);
        }
    }

    #[test]
    fn parts_sum_to_burn_layer_norm() {
        let dev = Device::flex();
        let d = 8;
        let parts: Vec<Tensor<3>> = (0..4)
            .map(|k| Tensor::random([2, 5, d], burn::tensor::Distribution::Normal(k as f64, 1.0 + k as f64), &dev))
            .collect();
        let r = parts.iter().cloned().reduce(|a, b| a + b).unwrap();
        let mut norm = burn::nn::LayerNormConfig::new(d).with_epsilon(1e-5).init(&dev);
        norm.gamma = burn::module::Param::from_tensor(Tensor::random([d], burn::tensor::Distribution::Normal(1.0, 0.5), &dev));
        norm.beta = Some(burn::module::Param::from_tensor(Tensor::random([d], burn::tensor::Distribution::Normal(0.0, 0.5), &dev)));
        let ln = FrozenLayerNorm::from_layer_norm(&norm, r.clone(), 1e-5);
        let sum = parts.into_iter().map(|p| ln.push(p)).reduce(|a, b| a + b).unwrap() + ln.bias();
        let got = vals(sum);
        let want = vals(norm.forward(r));
        let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(err < 1e-5, "max error {err}");
    }
}
