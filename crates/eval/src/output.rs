//! Writing results: the flat JSON object (reference keys first, in the reference's order), the
//! readable table, file identities, and atomic writes.

use std::path::Path;



use crate::error::{EvalError, Result};
use crate::score::ScoreReport;

/// A file that produced a result: its path as given and the sha256 of its bytes.
#[derive(Clone, Debug)]
pub struct FileIdentity {
    pub path: String,
    pub sha256: String,
}

impl FileIdentity {
    pub fn of(path: &Path, bytes: &[u8]) -> FileIdentity {
        FileIdentity {
            path: path.display().to_string(),
            sha256: sha256_hex(bytes),
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    sam3lab_util::sha256_hex(bytes)
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader never sees a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    sam3lab_util::write_atomic(path, bytes).map_err(|e| EvalError::io(path, e))
}

fn num(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

/// The flat JSON object: the reference's 26 keys, then the post's figures, counts and provenance.
/// Keys are written in this fixed order (same inputs → same bytes).
pub fn report_json(report: &ScoreReport, gts: &[FileIdentity], pred: &FileIdentity) -> String {
    use serde_json::Value;
    let mut fields: Vec<(String, Value)> = report
        .metrics
        .iter()
        .map(|(k, v)| (k.clone(), num(*v)))
        .collect();
    let post = report.post.as_ref();
    let opt = |v: Option<f64>| v.map(num).unwrap_or(Value::Null);
    fields.push(("neg_correct".into(), opt(post.and_then(|p| p.neg_correct))));
    fields.push((
        "pos_mean_IoU".into(),
        opt(post.and_then(|p| p.pos_mean_iou)),
    ));
    fields.push((
        "mean_mask_IoU".into(),
        opt(post.and_then(|p| p.mean_mask_iou)),
    ));
    let a = &report.accumulated;
    for (k, v) in [
        ("num_entries_scored", report.entries.len() as i64),
        ("num_positive_entries", report.num_positive as i64),
        ("num_negative_entries", report.num_negative as i64),
        ("num_entries_excluded", report.num_excluded as i64),
        ("IL_TP", a.il_tp),
        ("IL_FP", a.il_fp),
        ("IL_TN", a.il_tn),
        ("IL_FN", a.il_fn),
    ] {
        fields.push((k.into(), Value::from(v)));
    }
    fields.push(("iou_type".into(), Value::from(report.iou_type.as_str())));
    fields.push(("score_threshold".into(), num(report.score_threshold)));
    fields.push((
        "gt_files".into(),
        Value::from(gts.iter().map(|g| g.path.clone()).collect::<Vec<_>>()),
    ));
    fields.push((
        "gt_sha256".into(),
        Value::from(gts.iter().map(|g| g.sha256.clone()).collect::<Vec<_>>()),
    ));
    fields.push(("pred_file".into(), Value::from(pred.path.clone())));
    fields.push(("pred_sha256".into(), Value::from(pred.sha256.clone())));
    fields.push((
        "sam3lab_version".into(),
        Value::from(env!("CARGO_PKG_VERSION")),
    ));
    let mut s = String::from("{\n");
    for (i, (k, v)) in fields.iter().enumerate() {
        let sep = if i + 1 < fields.len() { "," } else { "" };
        s.push_str(&format!(
            "  {}: {}{sep}\n",
            serde_json::to_string(k).expect("string"),
            serde_json::to_string(v).expect("value")
        ));
    }
    s.push_str("}\n");
    s
}

/// A readable summary table.
pub fn format_table(report: &ScoreReport) -> String {
    let it = report.iou_type.as_str();
    let get = |k: &str| {
        report
            .metric(&format!("cgF1_eval_{it}_{k}"))
            .unwrap_or(f64::NAN)
    };
    let mut s = format!(
        "cgF1 evaluation, IoU type {it}, score threshold {}: {} entries scored ({} positive, {} negative), {} excluded as not instance-exhaustive\n\n",
        report.score_threshold,
        report.entries.len(),
        report.num_positive,
        report.num_negative,
        report.num_excluded
    );
    s.push_str(&format!(
        "{:<26}{:>11}{:>9}{:>9}\n",
        "metric", "0.50:0.95", "@0.50", "@0.75"
    ));
    for m in [
        "cgF1",
        "precision",
        "recall",
        "F1",
        "positive_macro_F1",
        "positive_micro_F1",
        "positive_micro_precision",
    ] {
        s.push_str(&format!(
            "{:<26}{:>11.4}{:>9.4}{:>9.4}\n",
            m,
            get(m),
            get(&format!("{m}@0.5")),
            get(&format!("{m}@0.75"))
        ));
    }
    for m in ["IL_precision", "IL_recall", "IL_F1", "IL_FPR", "IL_MCC"] {
        s.push_str(&format!("{:<26}{:>11.4}\n", m, get(m)));
    }
    let a = &report.accumulated;
    s.push_str(&format!(
        "\nimage level: TP {}  FP {}  TN {}  FN {}\n",
        a.il_tp, a.il_fp, a.il_tn, a.il_fn
    ));
    let pct = |v: Option<f64>| {
        v.map(|v| format!("{:.2}", 100.0 * v))
            .unwrap_or_else(|| "n/a".into())
    };
    match &report.post {
        Some(p) => s.push_str(&format!(
            "post figures (x100): neg_correct {}  pos_mean_IoU {}  mean_mask_IoU {}\n",
            pct(p.neg_correct),
            pct(p.pos_mean_iou),
            pct(p.mean_mask_iou)
        )),
        None => s.push_str("post figures: n/a (some kept predictions have no mask)\n"),
    }
    s
}
