//! Fig. 6.1: activation drift at one point over the steps of a continuation run, one panel per
//! prompt group, with dotted horizontal reference lines for other checkpoints (the post: fusion[4]
//! rel_Δ over recovery steps, references frozen_te, lvis_replay, lvis_replay_neg).
//!
//! One panel per group rather than three overlaid curves: with three reference lines per group,
//! an overlay puts nine dotted lines within 0.15 of each other and their labels collide.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use serde::Serialize;

use super::common::*;
use crate::error::{FigureError, Result};
use crate::names::{checkpoint_step, group_label, point_label};
use crate::schema::{DriftTableExt as _, Validate as _};
use crate::schema::DriftTable;
use crate::style::{self, INK, MUTED};

/// What to pull out of a drift table for Fig. 6.1.
#[derive(Clone, Debug)]
pub struct DriftStepsOptions {
    pub point: String,
    /// Run name: rows `RUN@STEP` form the curve.
    pub run: String,
    pub references: Vec<String>,
    /// Groups to draw (default: all, in table order).
    pub groups: Option<Vec<String>>,
    /// Give every panel its own y range (terms of different scale, e.g. training curves).
    pub panel_y: bool,
}

impl Default for DriftStepsOptions {
    fn default() -> Self {
        DriftStepsOptions {
            point: "fusion.layers.4".into(),
            run: "recovery".into(),
            references: vec![
                "frozen_te".into(),
                "lvis_replay".into(),
                "lvis_replay_neg".into(),
            ],
            groups: None,
            panel_y: false,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DriftSteps {
    pub title: String,
    pub subtitle: String,
    pub metric: String,
    pub point: String,
    pub run: String,
    pub panels: Vec<StepPanel>,
    pub x_range: [f64; 2],
    pub y_range: [f64; 2],
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepPanel {
    pub group: String,
    pub steps: Vec<u64>,
    pub checkpoints: Vec<String>,
    pub values: Vec<f64>,
    pub references: Vec<ReferenceLine>,
    /// This panel's own y range (when the options ask for one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y_range: Option<[f64; 2]>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReferenceLine {
    pub checkpoint: String,
    pub value: f64,
}

const PANEL_H: i32 = 500;
const WIDTH: u32 = 1560;

impl DriftSteps {
    pub fn from_table(
        t: &DriftTable,
        opts: &DriftStepsOptions,
        input: &str,
        source: &str,
    ) -> Result<DriftSteps> {
        t.validate(input)?;
        t.require_point(&opts.point, input)?;
        let groups = opts.groups.clone().unwrap_or_else(|| t.groups.clone());
        for g in &groups {
            t.require_group(g, input)?;
        }
        let mut steps: Vec<(u64, &str)> = t
            .rows
            .iter()
            .filter_map(|r| {
                checkpoint_step(&r.checkpoint, &opts.run).map(|s| (s, r.checkpoint.as_str()))
            })
            .collect();
        steps.sort();
        if steps.is_empty() {
            let have: Vec<&str> = t.rows.iter().map(|r| r.checkpoint.as_str()).collect();
            return Err(FigureError::invalid(
                input,
                format!(
                    "no checkpoints named `{}@STEP` (checkpoints: {})",
                    opts.run,
                    have.join(", ")
                ),
            ));
        }
        for r in &opts.references {
            if t.row(r).is_none() {
                let have: Vec<String> = t.rows.iter().map(|r| r.checkpoint.clone()).collect();
                return Err(FigureError::invalid(
                    input,
                    format!(
                        "reference checkpoint `{r}` is not in the table ({}){}",
                        have.join(", "),
                        crate::schema::did_you_mean(r, &have)
                    ),
                ));
            }
        }
        let mut panels = Vec::new();
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for g in &groups {
            let mut p = StepPanel {
                group: g.clone(),
                steps: vec![],
                checkpoints: vec![],
                values: vec![],
                references: vec![],
                y_range: None,
            };
            for (s, ck) in &steps {
                if let Some(v) = t.value(ck, &opts.point, g) {
                    p.steps.push(*s);
                    p.checkpoints.push(ck.to_string());
                    p.values.push(v);
                }
            }
            for r in &opts.references {
                if let Some(v) = t.value(r, &opts.point, g) {
                    p.references.push(ReferenceLine {
                        checkpoint: r.clone(),
                        value: v,
                    });
                }
            }
            let (mut plo, mut phi) = (f64::INFINITY, f64::NEG_INFINITY);
            for v in p.values.iter().chain(p.references.iter().map(|r| &r.value)) {
                plo = plo.min(*v);
                phi = phi.max(*v);
            }
            if opts.panel_y && plo.is_finite() {
                let (a, b) = nice_range(plo, phi.max(plo + 1e-9), 0.08, 0.025);
                p.y_range = Some([a, b]);
            }
            lo = lo.min(plo);
            hi = hi.max(phi);
            panels.push(p);
        }
        if !lo.is_finite() {
            return Err(FigureError::invalid(
                input,
                format!("no values at `{}` for the `{}` steps", opts.point, opts.run),
            ));
        }
        let (ylo, yhi) = nice_range(lo, hi, 0.08, 0.025);
        let max_step = steps.last().map(|s| s.0).unwrap_or(1) as f64;
        let xhi = if max_step >= 100.0 { (max_step * 1.05 / 100.0).ceil() * 100.0 } else { (max_step * 1.05).ceil().max(1.0) };
        let pl = point_label(&opts.point);
        Ok(DriftSteps {
            title: format!(
                "{pl} {} during {} training",
                metric_label(&t.metric),
                opts.run
            ),
            subtitle: format!(
                "Per-step {} of {pl} activations vs {} by prompt group; solid = the {} checkpoints, dotted = reference checkpoints.",
                metric_label(&t.metric),
                t.reference.as_deref().unwrap_or("base"),
                opts.run
            ),
            metric: t.metric.clone(),
            point: opts.point.clone(),
            run: opts.run.clone(),
            panels,
            x_range: [0.0, xhi],
            y_range: [ylo, yhi],
            source: source.to_string(),
        })
    }

    fn references(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.panels {
            for r in &p.references {
                if !out.contains(&r.checkpoint) {
                    out.push(r.checkpoint.clone());
                }
            }
        }
        out
    }

    fn legend(&self) -> Vec<LegendItem> {
        let mut items = vec![LegendItem {
            label: format!("{} @ step", self.run),
            swatch: Swatch::Line {
                color: self.curve_color(),
                dotted: false,
                width: 4,
            },
        }];
        for (i, r) in self.references().iter().enumerate() {
            items.push(LegendItem {
                label: r.clone(),
                swatch: Swatch::Line {
                    color: style::recipe_color(r, i + 1),
                    dotted: true,
                    width: 3,
                },
            });
        }
        items
    }

    fn curve_color(&self) -> RGBColor {
        style::recipe_color(&self.run, 0)
    }

    pub fn size(&self) -> (u32, u32) {
        let h = title_height(&self.title, Some(&self.subtitle), WIDTH)
            + PANEL_H
            + 16
            + legend_height(&self.legend(), WIDTH as i32 - 2 * MARGIN)
            + footer_height(&self.source, WIDTH);
        (WIDTH, h as u32)
    }

    pub fn draw<DB: DrawingBackend>(&self, root: &Area<DB>, fig: &str) -> Result<()> {
        let (body, top) = begin_figure(root, &self.title, Some(&self.subtitle), PANEL_H, fig)?;
        let n = self.panels.len().max(1);
        let panel_areas = body.split_evenly((1, n));
        let refs = self.references();
        let ylabel = if self.metric == "loss" { "loss".to_string() } else { format!("{} vs base", metric_label(&self.metric)) };
        for (i, (panel, area)) in self.panels.iter().zip(panel_areas.iter()).enumerate() {
            put_text(
                area,
                &group_label(&panel.group),
                ((area.dim_in_pixel().0 as i32) / 2 + 20, 0),
                &style::bold(style::LABEL, INK),
                HPos::Center,
                VPos::Top,
                fig,
            )?;
            let area = area
                .clone()
                .shrink((0, 34), (area.dim_in_pixel().0, PANEL_H - 34));
            let mut chart = ChartBuilder::on(&area)
                .margin_right(72)
                .margin_left(4)
                .margin_top(6)
                .x_label_area_size(58)
                .y_label_area_size(if i == 0 { 92 } else { 64 })
                .build_cartesian_2d(
                    self.x_range[0]..self.x_range[1],
                    panel.y_range.unwrap_or(self.y_range)[0]..panel.y_range.unwrap_or(self.y_range)[1],
                )
                .map_err(de(fig))?;
            let mut mesh = chart.configure_mesh();
            mesh.light_line_style(style::GRID.mix(0.0))
                .bold_line_style(style::GRID.stroke_width(1))
                .axis_style(MUTED.stroke_width(1))
                .x_labels(5)
                .y_labels(7)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.2}"))
                .label_style(style::text(style::TICK, INK))
                .axis_desc_style(style::text(style::LABEL, INK))
                .x_desc(format!("{} step", self.run));
            if i == 0 {
                mesh.y_desc(ylabel.clone());
            }
            mesh.draw().map_err(de(fig))?;
            // Reference lines, and their values just outside the right edge.
            let mut label_ys: Vec<(Px, RGBColor, f64)> = Vec::new();
            let (xr, _) = chart.plotting_area().get_pixel_range();
            let data_per_px =
                (self.x_range[1] - self.x_range[0]) / (xr.end - xr.start).max(1) as f64;
            for r in &panel.references {
                let k = refs.iter().position(|c| c == &r.checkpoint).unwrap_or(0);
                let color = style::recipe_color(&r.checkpoint, k + 1);
                // Lines that coincide (lvis_replay and lvis_replay_neg on watch prompts) get their
                // dots out of phase so both colours stay visible.
                let y_px = chart.backend_coord(&(self.x_range[0], r.value)).1;
                let same = label_ys
                    .iter()
                    .filter(|(p, _, _)| (p.1 - y_px).abs() <= 2)
                    .count();
                let x_start = self.x_range[0] + (same as f64 * 4.5) * data_per_px;
                chart
                    .draw_series(DashedLineSeries::new(
                        vec![(x_start, r.value), (self.x_range[1], r.value)],
                        3,
                        6,
                        color.stroke_width(3),
                    ))
                    .map_err(de(fig))?;
                label_ys.push((
                    chart.backend_coord(&(self.x_range[1], r.value)),
                    color,
                    r.value,
                ));
            }
            let (yr_lo, yr_hi) = {
                let (_, yr) = chart.plotting_area().get_pixel_range();
                (yr.start, yr.end)
            };
            let ys: Vec<i32> = label_ys.iter().map(|(p, _, _)| p.1).collect();
            let spread = spread_1d(&ys, line_height(style::SMALL), yr_lo + 8, yr_hi - 8);
            for ((p, color, v), y) in label_ys.iter().zip(spread) {
                put_text(
                    root,
                    &fmt_num(*v, 3, false),
                    (p.0 + 8, y),
                    &style::bold(style::SMALL, *color),
                    HPos::Left,
                    VPos::Center,
                    fig,
                )?;
            }
            // The run's curve on top.
            let pts: Vec<(f64, f64)> = panel
                .steps
                .iter()
                .zip(&panel.values)
                .map(|(s, v)| (*s as f64, *v))
                .collect();
            let cc = self.curve_color();
            chart
                .draw_series(LineSeries::new(pts.clone(), cc.stroke_width(4)))
                .map_err(de(fig))?;
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 7, cc.filled())))
                .map_err(de(fig))?;
            chart
                .draw_series(
                    pts.iter()
                        .map(|p| Circle::new(*p, 7, style::PAPER.stroke_width(2))),
                )
                .map_err(de(fig))?;
        }
        draw_legend_and_footer(root, &self.legend(), top + PANEL_H + 16, &self.source, fig)
    }
}

pub fn metric_label(metric: &str) -> String {
    match metric {
        "rel_delta" => "rel_Δ".into(),
        m => m.to_string(),
    }
}
