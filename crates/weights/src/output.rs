//! Writing result files: a heatmap as CSV, atomic writes, number formatting. (The heatmap type is
//! `sam3lab-results`'.)

use std::path::Path;

use serde::Serialize;

use crate::error::{Result, WeightsError};

pub use sam3lab_results::HeatmapTable;

/// CSV of a heatmap: first column the row label (header `corner`), then one column per `cols`
/// entry; empty cell for null. The title and source go in `#` lines above the header.
pub fn heatmap_csv(t: &HeatmapTable, corner: &str) -> String {
    let mut header = vec![corner.to_string()];
    header.extend(t.cols.iter().cloned());
    let mut table = sam3lab_util::csv::Table::new(&header).comment(&t.title).meta("source", &t.source);
    for (r, row) in t.rows.iter().zip(&t.values) {
        let mut cells = vec![r.clone()];
        cells.extend(row.iter().map(|v| fmt_opt(*v)));
        table.row(cells);
    }
    table.into_string()
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


/// What identifies a checkpoint in every result file: the path as given and the sha256 of its
/// bytes (`sam3lab-results`' one file identity).
pub use sam3lab_results::FileRecord as CheckpointId;

/// A checkpoint's identity (its sha256 is streamed once per opened file).
pub fn checkpoint_id(c: &sam3lab_checkpoint::Checkpoint) -> Result<CheckpointId> {
    Ok(CheckpointId { path: c.path().display().to_string(), sha256: c.sha256()?.to_string() })
}
