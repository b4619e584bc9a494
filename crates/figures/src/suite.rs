//! The two entry points the CLI uses: render every published figure from `data/post02`, or render
//! one figure from a live probe's JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::convert::{self, ScatterRoles};
use crate::error::{FigureError, Result};
use crate::geometry::{in_plane_fraction, projection_from_cosines};
use crate::published::{self, PublishedCosines};
use crate::render::projection::DerivedArrow;
use crate::render::{
    DriftSteps, Heatmap, Plot, PresenceBarsPlot, ProjectionPlot, ScatterPlot, SourceRef, Written,
    drift_steps::DriftStepsOptions, write_figure,
};
use crate::schema::{
    CosinesReport, DiffReport, DriftTable, GateScatter, HeatmapTable, PresenceBars, Projection,
    read_json,
};

pub const FIG61: &str = "fig6_1_recovery_drift";
pub const FIG62: &str = "fig6_2_gate_input_vs_refusal";
pub const FIG81: &str = "fig8_1_bias_projection";
pub const HEAT_DRIFT: &str = "table6_rel_delta_heatmap";
pub const HEAT_WEIGHTS: &str = "table6_1_weight_movement_heatmap";
pub const HEAT_COSINES: &str = "table7_1_bias_cosines_heatmap";

/// Every figure of the post that its published numbers determine, in `out_dir`.
pub fn render_published(data_dir: &Path, out_dir: &Path) -> Result<Vec<Written>> {
    let f = |name: &str| data_dir.join(name);
    let src = |paths: &[&PathBuf]| {
        paths
            .iter()
            .map(|p| SourceRef::of(p))
            .collect::<Result<Vec<_>>>()
    };
    let mut written = Vec::new();

    let drift_path = f(published::DRIFT);
    let drift = published::load_drift_csv(&drift_path)?;
    let drift_src = published::source_line(&crate::csv::CsvTable::read(&drift_path)?)?;
    let drift_name = drift_path.display().to_string();

    let steps = DriftSteps::from_table(
        &drift,
        &DriftStepsOptions::default(),
        &drift_name,
        &drift_src,
    )?;
    written.push(write_figure(
        &Plot::DriftSteps(steps),
        out_dir,
        FIG61,
        &src(&[&drift_path])?,
    )?);

    let (recipes, endpoint) = (f(published::RECIPES), f(published::ENDPOINT));
    let neg = published::load_neg_correct(&[&recipes, &endpoint])?;
    let scatter_src = format!(
        "Source: sam3-post02 — x from the §6 rel_Δ table ({}), y from Tables 3.1 and 5.2 ({}, {}).",
        drift_path.display(),
        recipes.display(),
        endpoint.display()
    );
    let scatter = convert::gate_scatter(
        &drift,
        "decoder.layers.5.q0",
        "lvis",
        &neg,
        &ScatterRoles::default(),
        &drift_name,
        &scatter_src,
    )?;
    let plot = ScatterPlot::new(
        &scatter,
        "Cleaning the gate's input vs retraining the gate itself",
        &drift_name,
    )?;
    written.push(write_figure(
        &Plot::Scatter(plot),
        out_dir,
        FIG62,
        &src(&[&drift_path, &recipes, &endpoint])?,
    )?);

    let cos_path = f(published::COSINES);
    let cos = PublishedCosines::load(&cos_path)?;
    let cos_name = cos_path.display().to_string();
    let (axis, toward) = ("frozen_te", "presence_only");
    let rows = cos.cosine_rows(axis, toward, &cos_name)?;
    let mut projection = projection_from_cosines(&rows, axis, toward, &cos_name)?;
    projection.base = cos.base.clone();
    let derivation = rows
        .iter()
        .zip(&projection.points)
        .map(|(r, p)| {
            let (dx, dy) = (p.tip[0] - p.origin[0], p.tip[1] - p.origin[1]);
            DerivedArrow {
                input: r.clone(),
                dx,
                dy,
                in_plane_fraction: in_plane_fraction(dx, dy, r.rel_base),
            }
        })
        .collect();
    let fig81_src = format!(
        "{} — coordinates derived from the published ‖Δ‖ and cosines: x = r·cos(Δ, F), y = r·(cos(Δ, P) − c·cos(Δ, F)) / √(1 − c²), c = cos(F, P).",
        cos.source
    );
    let rel: Vec<(String, f64)> = rows.iter().map(|r| (r.label.clone(), r.rel_base)).collect();
    let plot = ProjectionPlot::new(
        &projection,
        Some(&cos.param),
        Some(derivation),
        &rel,
        &cos_name,
        &fig81_src,
    )?;
    written.push(write_figure(
        &Plot::Projection(plot),
        out_dir,
        FIG81,
        &src(&[&cos_path])?,
    )?);

    let heat = convert::drift_heatmap(
        &drift,
        "§6 rel_Δ vs base — activation drift per checkpoint (lower = closer to base)",
        &drift_src,
    );
    written.push(write_figure(
        &Plot::Heatmap(Heatmap::new(heat, &drift_name)?),
        out_dir,
        HEAT_DRIFT,
        &src(&[&drift_path])?,
    )?);

    let wm_path = f(published::WEIGHT_MOVEMENT);
    let wm = published::load_weight_movement_csv(&wm_path)?;
    let wm_name = wm_path.display().to_string();
    written.push(write_figure(
        &Plot::Heatmap(Heatmap::new(wm, &wm_name)?),
        out_dir,
        HEAT_WEIGHTS,
        &src(&[&wm_path])?,
    )?);

    written.push(write_figure(
        &Plot::Heatmap(Heatmap::new(cos.heatmap(), &cos_name)?),
        out_dir,
        HEAT_COSINES,
        &src(&[&cos_path])?,
    )?);
    Ok(written)
}

/// Which figure to draw from a live JSON file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Heatmap,
    Fig11,
    Fig61,
    Fig62,
    Fig81,
    /// Training curves from a `sam3lab train` loss.csv (one panel per loss term).
    TrainCurves,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Heatmap => "heatmap",
            Kind::Fig11 => "fig11",
            Kind::Fig61 => "fig61",
            Kind::Fig62 => "fig62",
            Kind::Fig81 => "fig81",
            Kind::TrainCurves => "train_curves",
        }
    }
}

/// Options for live rendering; `None` picks the post's choice.
#[derive(Clone, Debug, Default)]
pub struct LiveOptions {
    /// Output file stem (default `KIND_INPUTSTEM`).
    pub name: Option<String>,
    /// Drift point (fig61 default `fusion.layers.4`, fig62 default `decoder.layers.5.q0`).
    pub point: Option<String>,
    /// Prompt group for fig62 (default `lvis`).
    pub group: Option<String>,
    /// Run whose `RUN@STEP` rows form fig61's curve (default `recovery`).
    pub run: Option<String>,
    pub references: Option<Vec<String>>,
    /// fig62: JSON object `{checkpoint: neg_correct_percent}`.
    pub neg_correct: Option<PathBuf>,
    pub fit: Option<Vec<String>>,
    pub off_trend: Option<Vec<String>>,
    pub title: Option<String>,
}

/// The top-level keys of a JSON object, to tell the accepted input shapes apart.
fn shape(path: &Path) -> Result<serde_json::Value> {
    read_json::<serde_json::Value>(path, "a figure input")
}

fn has(v: &serde_json::Value, keys: &[&str]) -> bool {
    keys.iter().all(|k| v.get(k).is_some())
}

fn parse<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
    path: &Path,
    what: &'static str,
) -> Result<T> {
    serde_json::from_value(v).map_err(|cause| FigureError::Json {
        path: path.to_path_buf(),
        what,
        cause,
    })
}

/// Renders one figure of `kind` from the JSON in `from`.
pub fn render_from_file(
    kind: Kind,
    from: &Path,
    opts: &LiveOptions,
    out_dir: &Path,
) -> Result<Written> {
    let input = from.display().to_string();
    let v = if kind == Kind::TrainCurves { serde_json::Value::Null } else { shape(from)? };
    let mut sources = vec![SourceRef::of(from)?];
    let stem = opts.name.clone().unwrap_or_else(|| {
        format!(
            "{}_{}",
            kind.name(),
            from.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        )
    });
    let source = format!("Source: {input} (sha256 {})", &sources[0].sha256[..12]);
    let plot = match kind {
        Kind::Heatmap => {
            let mut table: HeatmapTable = if v.is_array() {
                let diffs: Vec<DiffReport> =
                    parse(v, from, "a list of `weights diff` reports (diff.json)")?;
                convert::diff_heatmap(&diffs, &input)?
            } else if has(&v, &["rows", "cols", "values"]) {
                parse(
                    v,
                    from,
                    "a heatmap table {title, source, rows, cols, values}",
                )?
            } else if has(&v, &["trajectories", "cosine"]) {
                let c: CosinesReport = parse(v, from, "`weights cosines` output (cosines.json)")?;
                convert::cosines_heatmap(&c, &input)?
            } else if has(&v, &["base", "other", "groups"]) {
                let d: DiffReport = parse(v, from, "`weights diff` output (diff.json)")?;
                convert::diff_heatmap(&[d], &input)?
            } else if has(&v, &["points", "groups", "rows"]) {
                let t: DriftTable = parse(v, from, "a drift table {points, groups, rows}")?;
                convert::drift_heatmap(&t, "Activation drift vs base per checkpoint", "")
            } else {
                return Err(FigureError::invalid(
                    input,
                    "not a heatmap input: expected a heatmap table {rows, cols, values}, a diff.json {base, other, groups} \
                     or a list of them, a cosines.json {trajectories, cosine}, or a drift table {points, groups, rows}",
                ));
            };
            if table.source.is_empty() {
                table.source = source.clone();
            } else {
                table.source = format!("{} — {source}", table.source);
            }
            if let Some(t) = &opts.title {
                table.title = t.clone();
            }
            Plot::Heatmap(Heatmap::new(table, &input)?)
        }
        Kind::Fig11 => {
            let mut bars: PresenceBars =
                parse(v, from, "presence bars {prompts, series, threshold}")?;
            if opts.title.is_some() {
                bars.title = opts.title.clone();
            }
            Plot::PresenceBars(PresenceBarsPlot::new(&bars, &input, &source)?)
        }
        Kind::Fig61 => {
            let t: DriftTable = parse(v, from, "a drift table {points, groups, rows}")?;
            let mut o = DriftStepsOptions::default();
            if let Some(p) = &opts.point {
                o.point = p.clone();
            }
            if let Some(r) = &opts.run {
                o.run = r.clone();
            }
            if let Some(r) = &opts.references {
                o.references = r.clone();
            }
            let mut plot = DriftSteps::from_table(&t, &o, &input, &source)?;
            if let Some(t) = &opts.title {
                plot.title = t.clone();
            }
            Plot::DriftSteps(plot)
        }
        Kind::TrainCurves => {
            let t = convert::loss_curves(from)?;
            let o = DriftStepsOptions { point: "loss".into(), run: "train".into(), references: vec![], groups: None, panel_y: true };
            let mut plot = DriftSteps::from_table(&t, &o, &input, &source)?;
            plot.title = opts.title.clone().unwrap_or_else(|| "Training loss terms".into());
            plot.subtitle = "Each term of Meta's loss (final output, o2o) per logged step of a `sam3lab train` run.".into();
            Plot::DriftSteps(plot)
        }
        Kind::Fig62 => {
            let scatter: GateScatter = if has(&v, &["x_label", "y_label", "points"]) {
                parse(v, from, "a gate scatter {x_label, y_label, points}")?
            } else {
                let t: DriftTable = parse(v, from, "a drift table {points, groups, rows}")?;
                let nc = opts.neg_correct.as_ref().ok_or_else(|| {
                    FigureError::invalid(&input, "a drift table needs --neg-correct FILE (JSON {checkpoint: percent}) for fig62")
                })?;
                let neg: BTreeMap<String, f64> =
                    read_json(nc, "a JSON object {checkpoint: neg_correct percent}")?;
                sources.push(SourceRef::of(nc)?);
                let mut roles = ScatterRoles::default();
                if let Some(f) = &opts.fit {
                    roles.fit = f.clone();
                }
                if let Some(o) = &opts.off_trend {
                    roles.off_trend = o.clone();
                }
                let point = opts.point.clone().unwrap_or("decoder.layers.5.q0".into());
                let group = opts.group.clone().unwrap_or("lvis".into());
                let src = format!("{source}; neg_correct from {}", nc.display());
                convert::gate_scatter(&t, &point, &group, &neg, &roles, &input, &src)?
            };
            let title = opts
                .title
                .clone()
                .unwrap_or("Gate input drift vs refusal".into());
            Plot::Scatter(ScatterPlot::new(&scatter, &title, &input)?)
        }
        Kind::Fig81 => {
            let (projection, param, rel): (Projection, Option<String>, Vec<(String, f64)>) =
                if has(&v, &["trajectories", "cosine"]) {
                    let c: CosinesReport =
                        parse(v, from, "`weights cosines` output (cosines.json)")?;
                    let rel = c
                        .trajectories
                        .iter()
                        .filter_map(|t| Some((t.label.clone(), t.rel_base?)))
                        .collect();
                    (convert::projection_of(&c, &input)?, Some(c.param), rel)
                } else {
                    (
                        parse(
                            v,
                            from,
                            "a projection {axis, toward, points: [{label, origin, tip}]}",
                        )?,
                        None,
                        vec![],
                    )
                };
            let mut plot =
                ProjectionPlot::new(&projection, param.as_deref(), None, &rel, &input, &source)?;
            if let Some(t) = &opts.title {
                plot.title = t.clone();
            }
            Plot::Projection(plot)
        }
    };
    write_figure(&plot, out_dir, &stem, &sources)
}
