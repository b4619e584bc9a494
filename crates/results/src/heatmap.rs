//! [`HeatmapTable`]: a labelled matrix with an optional colour scale.

use serde::{Deserialize, Serialize};

/// Generic heatmap: `values[r][c]` is the cell for `rows[r]` × `cols[c]`; `null` = undefined (drawn
/// as "–", never as 0). Row and column order are kept as given. Written by `weights diff`
/// (`table.json`, Table 6.1), `weights cosines` (`cosine_table.json`, Table 7.1), `probe heads`,
/// `probe patch` and `probe steer`; rendered by `figures --kind heatmap`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeatmapTable {
    /// Human title of the plot.
    pub title: String,
    /// Provenance (the tool and checkpoint identities, or the post's table), printed small under
    /// the plot.
    #[serde(default)]
    pub source: String,
    /// Row labels, in display order.
    pub rows: Vec<String>,
    /// Column labels, in display order.
    pub cols: Vec<String>,
    /// `rows.len()` lists of `cols.len()` cells.
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
    /// A plain table: no scale, decimals or axis titles (the renderer's defaults apply).
    pub fn plain(
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
            scale: None,
            decimals: None,
            row_title: None,
            col_title: None,
        }
    }

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
            scale: Some(Scale {
                kind: ScaleKind::Diverging,
                min: -1.0,
                max: 1.0,
            }),
            decimals: Some(2),
            row_title: Some("trajectory (‖Δ‖ rel base)".into()),
            ..Self::plain(title, source, rows, cols, values)
        }
    }

    /// The shape invariants: at least one row and column, one value per column in every row, finite
    /// values, a scale with min < max. The error is the message, for the caller to prefix with the
    /// input's name.
    pub fn check(&self) -> Result<(), String> {
        if self.rows.is_empty() || self.cols.is_empty() {
            return Err("heatmap needs at least one row and one column".into());
        }
        if self.values.len() != self.rows.len() {
            return Err(format!(
                "`values` has {} rows but `rows` names {}",
                self.values.len(),
                self.rows.len()
            ));
        }
        for (r, row) in self.values.iter().enumerate() {
            if row.len() != self.cols.len() {
                return Err(format!(
                    "`values[{r}]` (row `{}`) has {} entries but `cols` names {}",
                    self.rows[r],
                    row.len(),
                    self.cols.len()
                ));
            }
            if let Some(v) = row.iter().flatten().find(|v| !v.is_finite()) {
                return Err(format!("row `{}` holds a non-finite value {v}", self.rows[r]));
            }
        }
        if let Some(s) = self.scale
            && !(s.min.is_finite() && s.max.is_finite() && s.max > s.min)
        {
            return Err(format!("scale needs min < max, got {} .. {}", s.min, s.max));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_table_serialises_without_the_optional_fields() {
        let t = HeatmapTable::plain("t".into(), "s".into(), vec!["r".into()], vec!["c".into()], vec![vec![None]]);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"title":"t","source":"s","rows":["r"],"cols":["c"],"values":[[null]]}"#
        );
        assert!(t.check().is_ok());
    }

    #[test]
    fn check_names_the_ragged_row() {
        let mut t = HeatmapTable::cosines("t".into(), String::new(), vec!["a".into(), "b".into()], vec!["x".into()], vec![vec![Some(1.0)], vec![]]);
        assert_eq!(t.check().unwrap_err(), "`values[1]` (row `b`) has 0 entries but `cols` names 1");
        t.values[1] = vec![Some(f64::NAN)];
        assert!(t.check().unwrap_err().contains("non-finite"));
    }
}
