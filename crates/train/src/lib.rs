//! sam3lab-train: SAM3's own fine-tuning in burn, equal to Meta's `sam3.train` to the gradient.
//!
//! It owns what turns a checkpoint into a fine-tuned one: the training [`targets`] of a batch of
//! find queries, Meta's one-to-one and one-to-many [`matcher`]s, the recipe's [`loss`] (boxes,
//! IoU-aware classification with presence, masks; final, auxiliary and one-to-many outputs), the
//! recipe-driven loop of `sam3lab train` ([`recipe`], [`data`], [`schedule`], [`engine`],
//! [`evaluate`]), parameter naming, selection by glob and freezing by original checkpoint name
//! ([`params`]), the presence-head retrain of `sam3lab retrain` (§5 "presence_only": BCE on the
//! presence logit, everything else frozen, full and cached-q0 modes; [`retrain`], reading its pairs
//! and writing its manifest through `sam3lab-probes`), and the training-parity harness against a
//! fixture recorded from Meta's code ([`parity`]). The train-mode forward itself lives with the
//! model (`Sam3::ground_train`): same modules, the DAC one-to-many queries on.

pub mod data;
pub mod engine;
pub mod error;
pub mod evaluate;
pub mod loss;
pub mod matcher;
pub mod params;
pub mod parity;
pub mod recipe;
pub mod retrain;
pub mod schedule;
pub mod targets;

pub use error::{Result, TrainError};
pub use loss::{LossConfig, LossOutput, compute_loss};
pub use recipe::Recipe;
pub use matcher::{HungarianMatcher, Indices, OneToManyMatcher};
pub use targets::{FindQuery, Instance, Targets};
