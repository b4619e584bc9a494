//! Parameter names and selection live with the training engine (`sam3lab_train::params`); this
//! module re-exports them for the probes.

pub use sam3lab_train::params::*;
