//! sam3lab-figures owns the research post's figures and tables: loaders for the numbers the post
//! publishes (`data/post02/*.csv`), the conversions from what the live probes write
//! (`weights diff`/`weights cosines` JSON, the activation-drift table of `probe drift`, per-prompt
//! presence sigmoids; the types are `sam3lab-results`', re-exported in [`schema`]) to figure
//! inputs, and plotters renderers that draw each figure the same way from either
//! source, as PNG and SVG with the embedded DejaVu Sans, plus a JSON sidecar holding exactly the
//! numbers drawn. Figures: Fig 1.1 ([`render::PresenceBarsPlot`]), Fig 6.1
//! ([`render::DriftSteps`]), Fig 6.2 ([`render::ScatterPlot`]), Fig 8.1
//! ([`render::ProjectionPlot`], coordinates from [`geometry::projection_from_cosines`] when only
//! norms and cosines are known) and heatmaps ([`render::Heatmap`]) for the §6 rel_Δ table,
//! Table 6.1 and Table 7.1.
//!
//! Input shapes (all JSON, unknown fields ignored):
//! - [`schema::DriftTable`] — `{"metric": "rel_delta", "reference": "base", "points": [hook
//!   points], "groups": [prompt groups], "rows": [{"checkpoint": "recovery@1200", "label": opt,
//!   "values": {point: {group: number|null}}}], "manifest": {...}}`. `RUN@STEP` checkpoints form
//!   Fig 6.1's curve. The post's §6 table loads into the same type.
//! - [`schema::PresenceBars`] — `{"prompts": [..], "series": [{"label", "role": "finetune"|"base",
//!   "values": [..]}], "threshold": 0.3}`.
//! - [`schema::GateScatter`] — `{"x_label", "y_label", "points": [{"label", "x", "y", "role":
//!   "fit"|"off_trend"|"reference"}]}`, or a drift table plus `{checkpoint: neg_correct %}`.
//! - [`schema::HeatmapTable`], [`schema::DiffReport`], [`schema::CosinesReport`],
//!   [`schema::Projection`] — as `sam3lab weights` writes them.

pub mod compose;
pub mod convert;
pub mod csv;
pub mod error;
pub mod geometry;
pub mod names;
pub mod published;
pub mod render;
pub mod schema;
pub mod style;
pub mod suite;

pub use error::{FigureError, Result};
