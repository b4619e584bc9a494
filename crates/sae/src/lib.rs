//! sam3lab-sae: sparse autoencoders on cached SAM3 activations.
//!
//! This crate owns SAE training (ReLU + L1 with unit-norm decoder directions re-imposed after every
//! Adam step and dead latents resampled, and TopK with the AuxK loss; default width 4 × d — see the `train` module), its evaluation metrics (MSE, explained variance, L0, dead features — formulas
//! in [`metrics`]), the on-disk SAE format ([`io`]: a directory with `sae.safetensors` + `sae.json`),
//! and the feature ranking of the post's §9 ([`rank`]: fire rates on negative vs positive pairs per
//! checkpoint, ranked by their change between two checkpoints). Inputs are hook caches from
//! `sam3lab-hooks`, gathered into an [`ActivationSet`] by the contract in [`acts`]; [`synth`] writes
//! planted-feature caches to check recovery. Same seed and inputs → byte-identical SAE files.
//!
//! Normalisation: training rows are scaled by s = sqrt(d / mean‖x‖²) (so mean‖x‖² = d, making the L1
//! coefficient and learning rate comparable across hook points). Because f = act(W_enc(x − b_dec) + b_enc)
//! is positively homogeneous, the saved SAE keeps W_enc and the unit-norm W_dec and stores b_enc/s and
//! b_dec/s: it reads raw activations and its feature activations are in raw units (f_train / s).

pub mod acts;
mod error;
pub mod io;
pub mod metrics;
mod model;
pub mod pipeline;
pub mod rank;
pub mod synth;
pub mod train;

pub use acts::{ActivationSet, CacheFile, PairLabel, split_labeled};
pub use error::{Result, SaeError};
pub use io::SaeMeta;
pub use metrics::{Metrics, evaluate};
pub use model::{Activation, Sae, SaeWeights};
pub use pipeline::{LabeledSet, evaluate_sets, load_sets, train_and_save};
pub use rank::{Pair, RankReport, rank, read_pairs};
pub use train::{DEFAULT_WIDTH_FACTOR, Sparsity, StepLog, TrainConfig, Trained, default_width, train, train_from};
