//! The typed inputs every renderer takes. Published data (`data/post02/*.csv`) and live probe
//! output (`sam3lab weights …`, `sam3lab probe drift`, `probe presence`, …) are both parsed into
//! these types, so a figure is drawn the same way whichever side its numbers came from.
//!
//! What the producers write ([`HeatmapTable`], [`DriftTable`], [`PresenceBars`], [`DiffReport`],
//! [`CosinesReport`], [`Projection`]) is declared once, in `sam3lab-results`, and re-exported
//! here; [`Validate`] checks a value and names the input at fault. Unknown fields are ignored
//! everywhere. The Fig 6.2 input ([`GateScatter`]), which only this crate builds, is declared here.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{FigureError, Result};

pub use sam3lab_results::{
    BarSeries, CosinesReport, DiffReport, DriftRow, DriftTable, FileRecord, GroupDiff, HeatmapTable,
    PresenceBars, Projection, ProjectionPoint, Scale, ScaleKind, SeriesRole, TrajectoryReport,
    did_you_mean,
};

/// A figure input's shape check, with the input named in the error.
pub trait Validate {
    fn validate(&self, input: &str) -> Result<()>;
}

fn named(input: &str, r: std::result::Result<(), String>) -> Result<()> {
    r.map_err(|msg| FigureError::invalid(input, msg))
}

impl Validate for HeatmapTable {
    fn validate(&self, input: &str) -> Result<()> {
        named(input, self.check())
    }
}

impl Validate for DriftTable {
    fn validate(&self, input: &str) -> Result<()> {
        named(input, self.check())
    }
}

impl Validate for PresenceBars {
    fn validate(&self, input: &str) -> Result<()> {
        named(input, self.check())
    }
}

impl Validate for Projection {
    fn validate(&self, input: &str) -> Result<()> {
        named(input, self.check())
    }
}

/// A drift table's point and group lookups, with the input named in the error.
pub trait DriftTableExt {
    /// Checks that `point` is one of the table's points, naming the nearest one otherwise.
    fn require_point(&self, point: &str, input: &str) -> Result<()>;
    fn require_group(&self, group: &str, input: &str) -> Result<()>;
}

impl DriftTableExt for DriftTable {
    fn require_point(&self, point: &str, input: &str) -> Result<()> {
        named(input, self.check_point(point))
    }

    fn require_group(&self, group: &str, input: &str) -> Result<()> {
        named(input, self.check_group(group))
    }
}

/// Fig. 6.2 input: one point per recipe, x = activation drift at the gate's input, y = SA-Co
/// neg_correct (percent). `role` says how the point enters the figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateScatter {
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<ScatterPoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScatterPoint {
    pub label: String,
    pub x: f64,
    pub y: f64,
    pub role: PointRole,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointRole {
    /// Data-side recipe: part of the least-squares trend.
    Fit,
    /// Marked as breaking the trend (the gate-only retrain).
    OffTrend,
    /// Plotted for orientation, not fitted.
    Reference,
}

impl GateScatter {
    pub fn validate(&self, input: &str) -> Result<()> {
        if self
            .points
            .iter()
            .filter(|p| p.role == PointRole::Fit)
            .count()
            < 2
        {
            return Err(FigureError::invalid(
                input,
                "the trend needs at least two points with role `fit`",
            ));
        }
        if let Some(p) = self
            .points
            .iter()
            .find(|p| !(p.x.is_finite() && p.y.is_finite()))
        {
            return Err(FigureError::invalid(
                input,
                format!("point `{}` is not finite", p.label),
            ));
        }
        Ok(())
    }
}

/// Reads and parses a JSON file into `T`, naming the file and the expected shape on error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &'static str) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|cause| FigureError::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    serde_json::from_str(&text).map_err(|cause| FigureError::Json {
        path: path.to_path_buf(),
        what,
        cause,
    })
}
