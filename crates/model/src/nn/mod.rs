//! Building blocks shared by every SAM3 module: torch-semantics multi-head attention with per-head
//! hook points, the reference's `MLP` (a ReLU stack), LayerNorm/Linear constructors, train-mode
//! dropout / drop-path ([`DropRate`]).

pub mod attention;
pub mod box_embed;
pub mod dropout;
pub mod long_attention;
pub mod pos2d;

use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

pub use attention::{AttnInput, HeadsInput, MultiheadAttention, OutProjection, attention_core};
pub use dropout::{DropRate, drop_path_schedule};

/// A hook-point name (or prefix) built only when a hook is active: with no hooks it is the empty
/// string (no allocation), which nothing reads, because every tap and `wants` returns before
/// looking at a name when [`Hooks::is_active`] is false.
#[inline(always)]
pub fn hook_name(hooks: &sam3lab_hooks::Hooks, name: impl FnOnce() -> String) -> String {
    if hooks.is_active() { name() } else { String::new() }
}

/// LayerNorm with SAM3's eps (1e-5 everywhere).
pub fn layer_norm(d: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(d).with_epsilon(1e-5).init(device)
}

pub fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).init(device)
}

/// The reference `MLP(input_dim, hidden_dim, output_dim, num_layers)`: `layers.{i}` Linears with ReLU
/// between them (none after the last).
#[derive(Module, Debug)]
pub struct Mlp {
    pub layers: Vec<Linear>,
}

impl Mlp {
    pub fn new(d_in: usize, hidden: usize, d_out: usize, num_layers: usize, device: &Device) -> Self {
        let mut dims = vec![d_in];
        dims.extend(std::iter::repeat_n(hidden, num_layers - 1));
        dims.push(d_out);
        let layers = dims.windows(2).map(|w| linear(w[0], w[1], device)).collect();
        Self { layers }
    }

    pub fn forward<const D: usize>(&self, mut x: Tensor<D>) -> Tensor<D> {
        let n = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(x);
            if i + 1 < n {
                x = relu(x);
            }
        }
        x
    }
}
