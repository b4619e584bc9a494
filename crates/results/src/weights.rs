//! What the weight-space tools write: `weights diff` ([`DiffReport`]) and `weights cosines`
//! ([`CosinesReport`], with the Fig 8.1 [`Projection`]).
//!
//! The producer always writes every field. Fields a reader can do without are `Option` with
//! `#[serde(default)]` (or an empty list), so `figures` also reads a hand-written file that holds
//! only what a figure draws; `Some` serialises exactly as the bare value.

use serde::{Deserialize, Serialize};

use crate::FileRecord;

/// One module group: a name and the regex its tensors' (normalised) names match.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupRule {
    pub group: String,
    pub regex: String,
}

/// One tensor's row of `diff.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorDiff {
    pub name: String,
    pub numel: u64,
    /// ‖base‖_F.
    pub base_norm: f64,
    /// ‖other − base‖_F.
    pub delta_norm: f64,
    /// delta_norm / base_norm; 0 when both are 0; `null` when only the base is 0.
    pub rel_change: Option<f64>,
}

/// One module group's row of `diff.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupDiff {
    pub group: String,
    /// Parameters in the group.
    #[serde(default)]
    pub numel: Option<u64>,
    /// Tensors in the group.
    #[serde(default)]
    pub tensors: Option<usize>,
    /// Σ numel·rel_change / Σ numel over the group's tensors with a defined rel_change.
    pub rel_change_weighted: Option<f64>,
    /// √(Σ‖Δ‖²) / √(Σ‖base‖²) over the group: the group as one flat vector.
    #[serde(default)]
    pub rel_change_aggregate: Option<f64>,
}

/// Everything `diff.json` holds for one BASE → OTHER pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiffReport {
    pub base: FileRecord,
    pub other: FileRecord,
    /// The column label of this pair in Table 6.1 (a reader falls back to OTHER's file stem).
    #[serde(default)]
    pub label: Option<String>,
    /// The group definitions used.
    #[serde(default)]
    pub group_rules: Vec<GroupRule>,
    /// Sorted by name.
    #[serde(default)]
    pub tensors: Vec<TensorDiff>,
    /// In `group_rules` order.
    pub groups: Vec<GroupDiff>,
}

/// One trajectory's row of `cosines.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryReport {
    pub label: String,
    #[serde(default)]
    pub from: Option<FileRecord>,
    #[serde(default)]
    pub to: Option<FileRecord>,
    /// ‖TO[param] − FROM[param]‖₂.
    #[serde(default)]
    pub delta_norm: Option<f64>,
    /// delta_norm / ‖param in base‖; `null` when the base value is all zeros.
    pub rel_base: Option<f64>,
}

/// One arrow of Fig. 8.1, in units of ‖param in base‖.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectionPoint {
    pub label: String,
    pub origin: [f64; 2],
    pub tip: [f64; 2],
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

impl Projection {
    /// At least one point, all coordinates finite. The error is the message, for the caller to
    /// prefix.
    pub fn check(&self) -> Result<(), String> {
        if self.points.is_empty() {
            return Err("projection has no points".into());
        }
        if let Some(p) = self.points.iter().find(|p| p.origin.iter().chain(&p.tip).any(|v| !v.is_finite())) {
            return Err(format!("projection point `{}` is not finite", p.label));
        }
        Ok(())
    }
}

/// Everything `cosines.json` holds: one parameter's movement under several trajectories.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CosinesReport {
    pub param: String,
    #[serde(default)]
    pub numel: Option<u64>,
    #[serde(default)]
    pub base: Option<FileRecord>,
    /// ‖param in base‖₂ (the unit of `rel_base` and of the projection).
    #[serde(default)]
    pub base_norm: Option<f64>,
    pub trajectories: Vec<TrajectoryReport>,
    /// cos(Δ_s, Δ_t) in trajectory order; `null` where a delta is zero.
    pub cosine: Vec<Vec<Option<f64>>>,
    #[serde(default)]
    pub projection: Option<Projection>,
}
