//! [`DriftTable`]: activation drift per checkpoint, point and prompt group.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::did_you_mean;

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
    /// Non-empty points, groups and rows; no checkpoint twice; every cell's point and group
    /// declared; finite values. The error is the message, for the caller to prefix.
    pub fn check(&self) -> Result<(), String> {
        if self.points.is_empty() || self.groups.is_empty() || self.rows.is_empty() {
            return Err("drift table needs non-empty `points`, `groups` and `rows`".into());
        }
        let mut seen = BTreeSet::new();
        for row in &self.rows {
            if !seen.insert(row.checkpoint.as_str()) {
                return Err(format!("checkpoint `{}` appears twice", row.checkpoint));
            }
            for (point, by_group) in &row.values {
                if !self.points.contains(point) {
                    return Err(format!(
                        "row `{}` has point `{point}`, which is not in `points` ({}){}",
                        row.checkpoint,
                        self.points.join(", "),
                        did_you_mean(point, &self.points)
                    ));
                }
                for (group, v) in by_group {
                    if !self.groups.contains(group) {
                        return Err(format!(
                            "row `{}` point `{point}` has group `{group}`, which is not in `groups` ({}){}",
                            row.checkpoint,
                            self.groups.join(", "),
                            did_you_mean(group, &self.groups)
                        ));
                    }
                    if let Some(v) = v
                        && !v.is_finite()
                    {
                        return Err(format!("row `{}` {point}/{group} is not finite", row.checkpoint));
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
        self.row(checkpoint)?.values.get(point)?.get(group).copied().flatten()
    }

    /// Checks that `point` is one of the table's points, naming the nearest one otherwise.
    pub fn check_point(&self, point: &str) -> Result<(), String> {
        if self.points.iter().any(|p| p == point) {
            Ok(())
        } else {
            Err(format!(
                "no point `{point}` (points: {}){}",
                self.points.join(", "),
                did_you_mean(point, &self.points)
            ))
        }
    }

    /// Checks that `group` is one of the table's prompt groups, naming the nearest one otherwise.
    pub fn check_group(&self, group: &str) -> Result<(), String> {
        if self.groups.iter().any(|g| g == group) {
            Ok(())
        } else {
            Err(format!(
                "no group `{group}` (groups: {}){}",
                self.groups.join(", "),
                did_you_mean(group, &self.groups)
            ))
        }
    }
}
