//! sam3lab-sae: sparse autoencoders on cached SAM3 activations.
//!
//! This crate owns SAE training (ReLU + L1 with unit-norm decoder directions re-imposed after every
//! Adam step, and TopK), its evaluation metrics (MSE, explained variance, L0, dead features — formulas
//! in [`metrics`]), the on-disk SAE format (a directory with `sae.safetensors` + `sae.json`), and the
//! feature ranking of the post's §9 (fire rates on negative vs positive pairs per checkpoint, ranked by
//! their change between two checkpoints). Inputs are hook caches from `sam3lab-hooks`, gathered into
//! an [`ActivationSet`] by the contract in [`acts`]; everything is deterministic given the seed.

pub mod acts;
mod error;
pub mod metrics;
mod model;
mod rng;
pub mod train;

pub use acts::{ActivationSet, CacheFile, PairLabel, split_labeled};
pub use error::{Result, SaeError};
pub use metrics::{Metrics, evaluate};
pub use model::{Activation, Sae, SaeWeights};
pub use train::{Sparsity, StepLog, TrainConfig, Trained, train};
