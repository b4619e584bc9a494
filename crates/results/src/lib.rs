//! sam3lab-results owns the shapes of sam3lab's result files: every JSON type a producer writes
//! (`probe drift`, `probe heads`, `probe patch`, `probe steer`, `probe presence`, `weights diff`,
//! `weights cosines`, `surgery`) and the `figures` command reads, declared once here so producers and
//! the renderer share them without depending on each other, and the provenance records those
//! files carry (the identity of a file — path as given and sha256 — a labelled checkpoint, the probe
//! manifest, a pair file).
//!
//! Types only: serde derives, shape checks (`check*`, returning the message for the caller to
//! wrap with its file name) and small lookups. No I/O, no model, no plotting; the only sam3lab
//! dependency is `sam3lab-util` (for nearest-name suggestions). Field order and `skip_serializing_if`
//! attributes are part of the file format: the same value serialises to the same bytes.
//!
//! - [`HeatmapTable`] — a labelled matrix (Table 6.1, Table 7.1, the §6 rel_Δ table, the head
//!   heatmaps, the patch and steer tables).
//! - [`DriftTable`] — activation drift per checkpoint × point × prompt group (`probe drift`, §6).
//! - [`PresenceBars`] — per-prompt presence sigmoids (`probe presence`, Fig 1.1).
//! - [`DiffReport`], [`CosinesReport`], [`Projection`] — `weights diff` / `weights cosines`.
//! - [`provenance`] — [`FileRecord`], [`CheckpointRecord`], [`Manifest`], [`PairsRecord`].

pub mod drift;
pub mod heatmap;
pub mod presence;
pub mod provenance;
pub mod weights;

pub use drift::{DriftRow, DriftTable};
pub use heatmap::{HeatmapTable, Scale, ScaleKind};
pub use presence::{BarSeries, PresenceBars, SeriesRole};
pub use provenance::{CheckpointRecord, FileRecord, Manifest, PairsRecord, SAM3LAB_VERSION};
pub use weights::{
    CosinesReport, DiffReport, GroupDiff, GroupRule, Projection, ProjectionPoint, TensorDiff,
    TrajectoryReport,
};

/// `; did you mean `x`?` for the closest name by edit distance, or nothing when none is close.
pub fn did_you_mean(name: &str, options: &[String]) -> String {
    options
        .iter()
        .map(|o| (sam3lab_util::edit_distance(name, o), o))
        .min()
        .filter(|(d, o)| *d <= (o.len().max(name.len()) / 3).max(2))
        .map(|(_, o)| format!("; did you mean `{o}`?"))
        .unwrap_or_default()
}
