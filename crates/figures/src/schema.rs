//! The typed inputs every renderer takes. Published data (`data/post02/*.csv`) and live probe
//! output (`sam3lab weights …`, `sam3lab probe drift`) are both parsed into these types, so a
//! figure is drawn the same way whichever side its numbers came from.
//!
//! The weight-probe shapes ([`HeatmapTable`], [`CosinesReport`], [`DiffReport`]) mirror
//! `/work/notes/heatmap-schema.md` (owned by `sam3lab-weights`); they are re-declared here so the
//! figures crate does not pull in the checkpoint readers. Unknown fields are ignored everywhere so
//! that additions on the producer side do not break plotting. The activation-probe shapes
//! ([`DriftTable`], [`PresenceBars`], [`GateScatter`]) are defined here and documented in the
//! crate docs.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{FigureError, Result};

/// A checkpoint identity as the weights tools write it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointRef {
    pub path: String,
    pub sha256: String,
}

/// Generic heatmap: `values[r][c]` is the cell for `rows[r]` × `cols[c]`; `null` = undefined (drawn
/// as "–", never as 0). Row and column order are kept as given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeatmapTable {
    pub title: String,
    /// Provenance, printed small under the plot.
    #[serde(default)]
    pub source: String,
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    pub values: Vec<Vec<Option<f64>>>,
    /// Optional colour scale; default: sequential over the data range, or diverging on [−1, 1]
    /// when every value lies in [−1, 1] and one is negative (cosines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<Scale>,
    /// Digits printed in each cell (default 3, or 2 for a diverging scale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimals: Option<usize>,
    /// Titles for the row labels (printed above them) and the column headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub col_title: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleKind {
    Sequential,
    Diverging,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    pub kind: ScaleKind,
    pub min: f64,
    pub max: f64,
}

impl HeatmapTable {
    /// A table of cosines between weight-delta directions, in the one style every such table uses:
    /// diverging scale on [−1, 1], two decimals, rows titled by their ‖Δ‖ relative to the base.
    pub fn cosines(
        title: String,
        source: String,
        rows: Vec<String>,
        cols: Vec<String>,
        values: Vec<Vec<Option<f64>>>,
    ) -> Self {
        HeatmapTable {
            title,
            source,
            rows,
            cols,
            values,
            scale: Some(Scale {
                kind: ScaleKind::Diverging,
                min: -1.0,
                max: 1.0,
            }),
            decimals: Some(2),
            row_title: Some("trajectory (‖Δ‖ rel base)".into()),
            col_title: None,
        }
    }

    pub fn validate(&self, input: &str) -> Result<()> {
        if self.rows.is_empty() || self.cols.is_empty() {
            return Err(FigureError::invalid(
                input,
                "heatmap needs at least one row and one column",
            ));
        }
        if self.values.len() != self.rows.len() {
            return Err(FigureError::invalid(
                input,
                format!(
                    "`values` has {} rows but `rows` names {}",
                    self.values.len(),
                    self.rows.len()
                ),
            ));
        }
        for (r, row) in self.values.iter().enumerate() {
            if row.len() != self.cols.len() {
                return Err(FigureError::invalid(
                    input,
                    format!(
                        "`values[{r}]` (row `{}`) has {} entries but `cols` names {}",
                        self.rows[r],
                        row.len(),
                        self.cols.len()
                    ),
                ));
            }
            if let Some(v) = row.iter().flatten().find(|v| !v.is_finite()) {
                return Err(FigureError::invalid(
                    input,
                    format!("row `{}` holds a non-finite value {v}", self.rows[r]),
                ));
            }
        }
        if let Some(s) = self.scale
            && !(s.min.is_finite() && s.max.is_finite() && s.max > s.min)
        {
            return Err(FigureError::invalid(
                input,
                format!("scale needs min < max, got {} .. {}", s.min, s.max),
            ));
        }
        Ok(())
    }
}

/// `weights cosines` output (`cosines.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CosinesReport {
    pub param: String,
    #[serde(default)]
    pub numel: Option<u64>,
    #[serde(default)]
    pub base: Option<CheckpointRef>,
    #[serde(default)]
    pub base_norm: Option<f64>,
    pub trajectories: Vec<TrajectoryReport>,
    pub cosine: Vec<Vec<Option<f64>>>,
    #[serde(default)]
    pub projection: Option<Projection>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryReport {
    pub label: String,
    #[serde(default)]
    pub from: Option<CheckpointRef>,
    #[serde(default)]
    pub to: Option<CheckpointRef>,
    #[serde(default)]
    pub delta_norm: Option<f64>,
    /// ‖Δ‖ / ‖param in base‖; `null` when the base value is all zeros.
    pub rel_base: Option<f64>,
}

/// Fig. 8.1: arrows in the plane spanned by the unit `axis` trajectory and the part of the `toward`
/// trajectory orthogonal to it, in units of ‖param in base‖.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    pub axis: String,
    pub toward: String,
    pub points: Vec<ProjectionPoint>,
    /// The label of the origin (the checkpoint every `rel_base` is measured in); absent: `base`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectionPoint {
    pub label: String,
    pub origin: [f64; 2],
    pub tip: [f64; 2],
}

impl Projection {
    pub fn validate(&self, input: &str) -> Result<()> {
        if self.points.is_empty() {
            return Err(FigureError::invalid(input, "projection has no points"));
        }
        for p in &self.points {
            if p.origin.iter().chain(&p.tip).any(|v| !v.is_finite()) {
                return Err(FigureError::invalid(
                    input,
                    format!("projection point `{}` is not finite", p.label),
                ));
            }
        }
        Ok(())
    }
}

/// One `weights diff` BASE → OTHER report (`diff.json`). Only what the figures need is declared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiffReport {
    pub base: CheckpointRef,
    pub other: CheckpointRef,
    #[serde(default)]
    pub label: Option<String>,
    pub groups: Vec<GroupDiff>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupDiff {
    pub group: String,
    #[serde(default)]
    pub numel: Option<u64>,
    #[serde(default)]
    pub tensors: Option<u64>,
    pub rel_change_weighted: Option<f64>,
    #[serde(default)]
    pub rel_change_aggregate: Option<f64>,
}

/// Activation drift (`sam3lab probe drift`, and the post's §6 table): for each checkpoint, each
/// probed point and each prompt group, the relative drift of its activations from the reference
/// checkpoint, ‖act_ckpt − act_ref‖ / ‖act_ref‖.
///
/// ```json
/// {"metric": "rel_delta", "reference": "base",
///  "points": ["fusion.layers.4", "decoder.layers.5.q0", "decoder.layers.5.mean"],
///  "groups": ["watch", "lvis", "saco"],
///  "rows": [{"checkpoint": "recovery@1200", "label": "recovery @ step 1200",
///            "values": {"fusion.layers.4": {"watch": 0.774, "lvis": 0.798, "saco": 0.783}}}],
///  "manifest": {"config": "…", "checkpoints": [{"label": "…", "path": "…", "sha256": "…"}]}}
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftTable {
    #[serde(default = "default_metric")]
    pub metric: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub points: Vec<String>,
    pub groups: Vec<String>,
    pub rows: Vec<DriftRow>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub manifest: serde_json::Value,
}

fn default_metric() -> String {
    "rel_delta".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftRow {
    /// Checkpoint label; `NAME@STEP` marks an intermediate checkpoint of run NAME.
    pub checkpoint: String,
    /// Optional display label (defaults to `checkpoint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// point → group → value; a missing entry or `null` is "not measured".
    pub values: BTreeMap<String, BTreeMap<String, Option<f64>>>,
}

impl DriftTable {
    pub fn validate(&self, input: &str) -> Result<()> {
        if self.points.is_empty() || self.groups.is_empty() || self.rows.is_empty() {
            return Err(FigureError::invalid(
                input,
                "drift table needs non-empty `points`, `groups` and `rows`",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for row in &self.rows {
            if !seen.insert(row.checkpoint.as_str()) {
                return Err(FigureError::invalid(
                    input,
                    format!("checkpoint `{}` appears twice", row.checkpoint),
                ));
            }
            for (point, by_group) in &row.values {
                if !self.points.contains(point) {
                    return Err(FigureError::invalid(
                        input,
                        format!(
                            "row `{}` has point `{point}`, which is not in `points` ({}){}",
                            row.checkpoint,
                            self.points.join(", "),
                            did_you_mean(point, &self.points)
                        ),
                    ));
                }
                for (group, v) in by_group {
                    if !self.groups.contains(group) {
                        return Err(FigureError::invalid(
                            input,
                            format!(
                                "row `{}` point `{point}` has group `{group}`, which is not in `groups` ({}){}",
                                row.checkpoint,
                                self.groups.join(", "),
                                did_you_mean(group, &self.groups)
                            ),
                        ));
                    }
                    if let Some(v) = v
                        && !v.is_finite()
                    {
                        return Err(FigureError::invalid(
                            input,
                            format!("row `{}` {point}/{group} is not finite", row.checkpoint),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn row(&self, checkpoint: &str) -> Option<&DriftRow> {
        self.rows.iter().find(|r| r.checkpoint == checkpoint)
    }

    pub fn value(&self, checkpoint: &str, point: &str, group: &str) -> Option<f64> {
        self.row(checkpoint)?
            .values
            .get(point)?
            .get(group)
            .copied()
            .flatten()
    }

    /// Checks that `point` is one of the table's points, naming the nearest one otherwise.
    pub fn require_point(&self, point: &str, input: &str) -> Result<()> {
        if self.points.iter().any(|p| p == point) {
            Ok(())
        } else {
            Err(FigureError::invalid(
                input,
                format!(
                    "no point `{point}` (points: {}){}",
                    self.points.join(", "),
                    did_you_mean(point, &self.points)
                ),
            ))
        }
    }

    pub fn require_group(&self, group: &str, input: &str) -> Result<()> {
        if self.groups.iter().any(|g| g == group) {
            Ok(())
        } else {
            Err(FigureError::invalid(
                input,
                format!(
                    "no group `{group}` (groups: {}){}",
                    self.groups.join(", "),
                    did_you_mean(group, &self.groups)
                ),
            ))
        }
    }
}

/// Fig. 1.1 input: per-prompt presence sigmoids for one or more checkpoints.
///
/// `{"prompts": ["harem pants", …], "series": [{"label": "watch FT", "role": "finetune",
/// "values": [0.999, …]}, {"label": "base SAM3", "role": "base", "values": [0.01, …]}],
/// "threshold": 0.3}`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresenceBars {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub prompts: Vec<String>,
    pub series: Vec<BarSeries>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub manifest: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BarSeries {
    pub label: String,
    /// `finetune` (amber), `base` (parchment) or absent (first series amber, second parchment,
    /// then the categorical palette).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<SeriesRole>,
    pub values: Vec<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesRole {
    Finetune,
    Base,
}

impl PresenceBars {
    pub fn validate(&self, input: &str) -> Result<()> {
        if self.prompts.is_empty() || self.series.is_empty() {
            return Err(FigureError::invalid(
                input,
                "needs at least one prompt and one series",
            ));
        }
        for s in &self.series {
            if s.values.len() != self.prompts.len() {
                return Err(FigureError::invalid(
                    input,
                    format!(
                        "series `{}` has {} values for {} prompts",
                        s.label,
                        s.values.len(),
                        self.prompts.len()
                    ),
                ));
            }
            if let Some(v) = s.values.iter().find(|v| !(0.0..=1.0).contains(*v)) {
                return Err(FigureError::invalid(
                    input,
                    format!("series `{}` holds {v}, outside a sigmoid's [0, 1]", s.label),
                ));
            }
        }
        if let Some(t) = self.threshold
            && !(0.0..=1.0).contains(&t)
        {
            return Err(FigureError::invalid(
                input,
                format!("threshold {t} is outside [0, 1]"),
            ));
        }
        Ok(())
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

/// `, did you mean `x`?` for the closest name by edit distance, or nothing when none is close.
pub fn did_you_mean(name: &str, options: &[String]) -> String {
    options
        .iter()
        .map(|o| (edit_distance(name, o), o))
        .min()
        .filter(|(d, o)| *d <= (o.len().max(name.len()) / 3).max(2))
        .map(|(_, o)| format!("; did you mean `{o}`?"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    sam3lab_util::edit_distance(a, b)
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
