//! [`PresenceBars`]: per-prompt presence sigmoids (Fig 1.1).

use serde::{Deserialize, Serialize};

/// Fig. 1.1 input (`probe presence` writes it): per-prompt presence sigmoids for one or more
/// checkpoints.
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
    /// At least one prompt and series, one value per prompt in each series, values and threshold
    /// in [0, 1]. The error is the message, for the caller to prefix.
    pub fn check(&self) -> Result<(), String> {
        if self.prompts.is_empty() || self.series.is_empty() {
            return Err("needs at least one prompt and one series".into());
        }
        for s in &self.series {
            if s.values.len() != self.prompts.len() {
                return Err(format!(
                    "series `{}` has {} values for {} prompts",
                    s.label,
                    s.values.len(),
                    self.prompts.len()
                ));
            }
            if let Some(v) = s.values.iter().find(|v| !(0.0..=1.0).contains(*v)) {
                return Err(format!("series `{}` holds {v}, outside a sigmoid's [0, 1]", s.label));
            }
        }
        if let Some(t) = self.threshold
            && !(0.0..=1.0).contains(&t)
        {
            return Err(format!("threshold {t} is outside [0, 1]"));
        }
        Ok(())
    }
}
