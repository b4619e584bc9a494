//! Result files: the heatmap table shared with the figures crate, atomic writes, CSV helpers.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Result, WeightsError};

/// A labelled matrix the figures crate renders as a heatmap (Table 6.1 groups × recipes, the
/// Table 7.1 cosine matrix). Schema documented in `notes/heatmap-schema.md`:
/// `values[r][c]` is the cell of `rows[r]` × `cols[c]`; `null` = undefined (draw blank, not 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeatmapTable {
    /// Human title of the plot.
    pub title: String,
    /// Provenance: the tool and checkpoint identities, or the post's table for published numbers.
    pub source: String,
    /// Row labels, in display order.
    pub rows: Vec<String>,
    /// Column labels, in display order.
    pub cols: Vec<String>,
    /// `rows.len()` lists of `cols.len()` cells.
    pub values: Vec<Vec<Option<f64>>>,
}

impl HeatmapTable {
    /// Check the shape invariant (every row has one value per column).
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.values.len() != self.rows.len() {
            return Err(format!(
                "{} value rows for {} row labels",
                self.values.len(),
                self.rows.len()
            ));
        }
        for (r, row) in self.values.iter().enumerate() {
            if row.len() != self.cols.len() {
                return Err(format!(
                    "row '{}' has {} values for {} columns",
                    self.rows[r],
                    row.len(),
                    self.cols.len()
                ));
            }
        }
        Ok(())
    }

    /// CSV: first column the row label, then one column per `cols` entry; empty cell for null.
    pub fn to_csv(&self, corner: &str) -> String {
        let mut header = vec![corner.to_string()];
        header.extend(self.cols.iter().cloned());
        let mut t = sam3lab_util::csv::Table::new(&header).comment(&self.title).meta("source", &self.source);
        for (r, row) in self.rows.iter().zip(&self.values) {
            let mut cells = vec![r.clone()];
            cells.extend(row.iter().map(|v| fmt_opt(*v)));
            t.row(cells);
        }
        t.into_string()
    }
}

/// Shortest round-trip formatting (deterministic), empty for `None`.
pub use sam3lab_util::csv::num as fmt_opt;

/// Write `bytes` to `path` via a temporary file in the same directory and a rename, so a reader
/// never sees a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    sam3lab_util::write_atomic(path, bytes).map_err(|e| WeightsError::io(path, e))
}

/// Pretty JSON with a trailing newline, written atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value).expect("serialisable");
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

pub(crate) use sam3lab_util::tmp_path;
