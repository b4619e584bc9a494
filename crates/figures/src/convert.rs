//! Conversions from probe outputs to figure inputs: drift tables, `diff.json` reports and
//! `cosines.json` to heatmaps; a drift table plus neg_correct values to the Fig. 6.2 scatter.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{FigureError, Result};
use crate::names::{group_label, point_label};
use crate::schema::{DriftTableExt as _, Validate as _};
use crate::schema::{
    CosinesReport, DiffReport, DriftTable, GateScatter, HeatmapTable, PointRole, Projection, ScatterPoint,
};

/// Checkpoints × (point, group) cells, two-line column headers "point\ngroup".
pub fn drift_heatmap(t: &DriftTable, title: &str, source: &str) -> HeatmapTable {
    let mut cols = Vec::new();
    let mut keys = Vec::new();
    for p in &t.points {
        for g in &t.groups {
            cols.push(format!("{}\n{}", point_label(p), group_label(g)));
            keys.push((p.clone(), g.clone()));
        }
    }
    HeatmapTable {
        title: title.to_string(),
        source: source.to_string(),
        rows: t
            .rows
            .iter()
            .map(|r| r.label.clone().unwrap_or_else(|| r.checkpoint.clone()))
            .collect(),
        cols,
        values: t
            .rows
            .iter()
            .map(|r| {
                keys.iter()
                    .map(|(p, g)| t.value(&r.checkpoint, p, g))
                    .collect()
            })
            .collect(),
        scale: None,
        decimals: Some(3),
        row_title: Some("checkpoint".into()),
        col_title: Some(format!(
            "{} vs {}, by point and prompt group",
            crate::render::drift_steps::metric_label(&t.metric),
            t.reference.as_deref().unwrap_or("base")
        )),
    }
}

/// One column per report (its `label`, else the OTHER file's stem), one row per module group in
/// first-seen order; cells are `rel_change_weighted`.
pub fn diff_heatmap(diffs: &[DiffReport], input: &str) -> Result<HeatmapTable> {
    if diffs.is_empty() {
        return Err(FigureError::invalid(input, "no diff reports"));
    }
    let mut rows: Vec<String> = Vec::new();
    for d in diffs {
        for g in &d.groups {
            if !rows.contains(&g.group) {
                rows.push(g.group.clone());
            }
        }
    }
    let cols: Vec<String> = diffs
        .iter()
        .map(|d| {
            d.label.clone().unwrap_or_else(|| {
                Path::new(&d.other.path)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or(d.other.path.clone())
            })
        })
        .collect();
    let values = rows
        .iter()
        .map(|g| {
            diffs
                .iter()
                .map(|d| {
                    d.groups
                        .iter()
                        .find(|x| &x.group == g)
                        .and_then(|x| x.rel_change_weighted)
                })
                .collect()
        })
        .collect();
    let source = diffs
        .iter()
        .zip(&cols)
        .map(|(d, c)| {
            format!(
                "{c}: {} (sha256 {}) vs {} (sha256 {})",
                d.other.path,
                short(&d.other.sha256),
                d.base.path,
                short(&d.base.sha256)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Ok(HeatmapTable {
        title: "Weighted mean rel_change per module group".into(),
        source: format!("sam3lab weights diff — {source}"),
        rows,
        cols,
        values,
        scale: None,
        decimals: Some(3),
        row_title: Some("module group".into()),
        col_title: Some("checkpoint vs its start".into()),
    })
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The full cosine matrix of a `cosines.json`; row labels carry ‖Δ‖ rel base.
pub fn cosines_heatmap(c: &CosinesReport, input: &str) -> Result<HeatmapTable> {
    let n = c.trajectories.len();
    if c.cosine.len() != n || c.cosine.iter().any(|r| r.len() != n) {
        return Err(FigureError::invalid(
            input,
            format!("`cosine` must be {n}×{n} (one row and column per trajectory)"),
        ));
    }
    let base = c
        .base
        .as_ref()
        .map(|b| format!(" relative to {} (sha256 {})", b.path, short(&b.sha256)))
        .unwrap_or_default();
    Ok(HeatmapTable::cosines(
        format!("Cosines of weight-delta directions on {}", c.param),
        format!("sam3lab weights cosines{base}"),
        c.trajectories
            .iter()
            .map(|t| match t.rel_base {
                Some(r) => format!("{}   (‖Δ‖ {r:.2})", t.label),
                None => format!("{}   (‖Δ‖ –)", t.label),
            })
            .collect(),
        c.trajectories.iter().map(|t| t.label.clone()).collect(),
        c.cosine.clone(),
    ))
}

pub fn projection_of(c: &CosinesReport, input: &str) -> Result<Projection> {
    c.projection
        .clone()
        .ok_or_else(|| FigureError::invalid(input, "cosines.json has no `projection` object"))
}

/// Which recipes fit the trend and which are marked off it.
#[derive(Clone, Debug)]
pub struct ScatterRoles {
    pub fit: Vec<String>,
    pub off_trend: Vec<String>,
}

impl Default for ScatterRoles {
    /// The post's choice: the four data-side recipes in the fit, presence_only off the trend.
    /// frozen_te, the broken starting point rather than a repair recipe, is drawn as a reference.
    fn default() -> Self {
        ScatterRoles {
            fit: [
                "lvis_replay",
                "lvis_replay_n100",
                "recovery@2000",
                "lvis_replay_neg",
            ]
            .map(String::from)
            .to_vec(),
            off_trend: vec!["presence_only".into()],
        }
    }
}

/// Fig. 6.2's points: for every checkpoint in the drift table that has a neg_correct value,
/// x = drift at (`point`, `group`), y = neg_correct. Checkpoints in neither role list are drawn as
/// references. Every fit/off-trend label must have both numbers.
pub fn gate_scatter(
    t: &DriftTable,
    point: &str,
    group: &str,
    neg_correct: &BTreeMap<String, f64>,
    roles: &ScatterRoles,
    input: &str,
    source: &str,
) -> Result<GateScatter> {
    t.validate(input)?;
    t.require_point(point, input)?;
    t.require_group(group, input)?;
    for l in roles.fit.iter().chain(&roles.off_trend) {
        if t.value(l, point, group).is_none() {
            return Err(FigureError::invalid(
                input,
                format!("`{l}` has no drift value at {point}/{group}"),
            ));
        }
        if !neg_correct.contains_key(l) {
            let have: Vec<String> = neg_correct.keys().cloned().collect();
            return Err(FigureError::invalid(
                input,
                format!(
                    "`{l}` has no neg_correct value (have {}){}",
                    have.join(", "),
                    crate::schema::did_you_mean(l, &have)
                ),
            ));
        }
    }
    let mut points = Vec::new();
    for r in &t.rows {
        let (Some(x), Some(&y)) = (
            t.value(&r.checkpoint, point, group),
            neg_correct.get(&r.checkpoint),
        ) else {
            continue;
        };
        let role = if roles.fit.contains(&r.checkpoint) {
            PointRole::Fit
        } else if roles.off_trend.contains(&r.checkpoint) {
            PointRole::OffTrend
        } else {
            PointRole::Reference
        };
        points.push(ScatterPoint {
            label: r.checkpoint.clone(),
            x,
            y,
            role,
        });
    }
    Ok(GateScatter {
        x_label: format!(
            "rel_Δ of {} activations vs base ({} prompts)",
            point_label(point),
            group_label(group)
        ),
        y_label: "SA-Co neg_correct (%)".into(),
        points,
        source: Some(source.to_string()),
    })
}

/// The loss terms drawn as training curves, in panel order (those present in the log).
pub const LOSS_CURVE_TERMS: [&str; 7] = ["core_loss", "loss_ce", "presence_loss", "loss_bbox", "loss_giou", "loss_mask", "loss_dice"];

/// A `sam3lab train` loss log (`loss.csv`: `# key: value` lines, then `step,lr,grad_norm,<terms>`)
/// as a drift-style table: one `train@STEP` row per logged step, point `loss`, one group per term.
pub fn loss_curves(path: &std::path::Path) -> Result<DriftTable> {
    let t = crate::csv::CsvTable::read(path)?;
    t.column("step")?;
    let groups: Vec<String> = LOSS_CURVE_TERMS.iter().filter(|k| t.header.iter().any(|h| h == *k)).map(|k| k.to_string()).collect();
    if groups.is_empty() {
        return Err(FigureError::invalid(path.display().to_string(), "no loss columns (core_loss, loss_ce, …): not a `sam3lab train` loss.csv"));
    }
    let mut rows = Vec::with_capacity(t.rows.len());
    for r in &t.rows {
        let step = t.f64(r, "step")? as u64;
        let mut per = std::collections::BTreeMap::new();
        for g in &groups {
            per.insert(g.clone(), t.opt_f64(r, g)?);
        }
        rows.push(crate::schema::DriftRow { checkpoint: format!("train@{step}"), label: None, values: [("loss".to_string(), per)].into() });
    }
    let manifest = serde_json::Value::Object(t.meta.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect());
    Ok(DriftTable { metric: "loss".into(), reference: None, points: vec!["loss".into()], groups, rows, manifest })
}
