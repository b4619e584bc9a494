//! Fig. 6.2: activation drift at the gate's input (x) against SA-Co neg_correct (y), one point per
//! recipe, a least-squares trend over the data-side recipes, and the gate-only retrain marked off
//! the trend with its vertical distance from it.

use plotters::prelude::*;
use serde::Serialize;

use super::common::*;
use crate::error::{FigureError, Result};
use crate::geometry::{LinearFit, least_squares};
use crate::schema::{GateScatter, PointRole, ScatterPoint};
use crate::style::{self, AMBER, AMBER_DARK, GREY, INK, MUTED};

#[derive(Clone, Debug, Serialize)]
pub struct ScatterPlot {
    pub title: String,
    pub subtitle: String,
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<ScatterPoint>,
    /// Least squares over the `fit` points.
    pub fit: LinearFit,
    pub fit_over: Vec<String>,
    /// Every non-fit point's distance from the trend (y − trend(x)).
    pub residuals: Vec<Residual>,
    pub x_range: [f64; 2],
    pub y_range: [f64; 2],
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Residual {
    pub label: String,
    pub trend_y: f64,
    pub residual: f64,
}

const WIDTH: u32 = 1200;
const CHART_H: i32 = 640;
const OFF: RGBColor = style::PLUM;

impl ScatterPlot {
    pub fn new(input_data: &GateScatter, title: &str, input: &str) -> Result<ScatterPlot> {
        input_data.validate(input)?;
        let fit_pts: Vec<&ScatterPoint> = input_data
            .points
            .iter()
            .filter(|p| p.role == PointRole::Fit)
            .collect();
        let xs: Vec<f64> = fit_pts.iter().map(|p| p.x).collect();
        let ys: Vec<f64> = fit_pts.iter().map(|p| p.y).collect();
        let fit = least_squares(&xs, &ys).ok_or_else(|| {
            FigureError::invalid(input, "the `fit` points all have the same x; no trend line")
        })?;
        let residuals = input_data
            .points
            .iter()
            .filter(|p| p.role != PointRole::Fit)
            .map(|p| Residual {
                label: p.label.clone(),
                trend_y: fit.at(p.x),
                residual: p.y - fit.at(p.x),
            })
            .collect();
        let xlo = input_data
            .points
            .iter()
            .map(|p| p.x)
            .fold(f64::INFINITY, f64::min);
        let xhi = input_data
            .points
            .iter()
            .map(|p| p.x)
            .fold(f64::NEG_INFINITY, f64::max);
        let ylo = input_data
            .points
            .iter()
            .map(|p| p.y)
            .fold(f64::INFINITY, f64::min);
        let yhi = input_data
            .points
            .iter()
            .map(|p| p.y)
            .fold(f64::NEG_INFINITY, f64::max);
        let x_range = nice_range(xlo, xhi, 0.15, 0.02);
        let y_range = if ylo >= 0.0 && yhi <= 100.0 {
            (0.0, 100.0)
        } else {
            nice_range(ylo, yhi, 0.08, 5.0)
        };
        Ok(ScatterPlot {
            title: title.to_string(),
            subtitle: format!(
                "Least-squares trend over {} data-side recipes: y = {:.1} {} {:.1}·x (R² = {:.2}). Off-trend points are marked with their distance from the trend.",
                fit.n,
                fit.intercept,
                if fit.slope < 0.0 { "−" } else { "+" },
                fit.slope.abs(),
                fit.r_squared
            ),
            x_label: input_data.x_label.clone(),
            y_label: input_data.y_label.clone(),
            points: input_data.points.clone(),
            fit,
            fit_over: fit_pts.iter().map(|p| p.label.clone()).collect(),
            residuals,
            x_range: [x_range.0, x_range.1],
            y_range: [y_range.0, y_range.1],
            source: input_data.source.clone().unwrap_or_default(),
        })
    }

    fn legend(&self) -> Vec<LegendItem> {
        let mut items = vec![
            LegendItem {
                label: "data-side recipe (in the fit)".into(),
                swatch: Swatch::Dot {
                    color: AMBER,
                    filled: true,
                },
            },
            LegendItem {
                label: "least-squares trend".into(),
                swatch: Swatch::Line {
                    color: AMBER_DARK,
                    dotted: false,
                    width: 3,
                },
            },
        ];
        if self.points.iter().any(|p| p.role == PointRole::OffTrend) {
            items.push(LegendItem {
                label: "off the trend (gate retrained)".into(),
                swatch: Swatch::Diamond { color: OFF },
            });
        }
        if self.points.iter().any(|p| p.role == PointRole::Reference) {
            items.push(LegendItem {
                label: "reference (not in the fit)".into(),
                swatch: Swatch::Dot {
                    color: GREY,
                    filled: false,
                },
            });
        }
        items
    }

    pub fn size(&self) -> (u32, u32) {
        let h = title_height(&self.title, Some(&self.subtitle), WIDTH)
            + CHART_H
            + 12
            + legend_height(&self.legend(), WIDTH as i32 - 2 * MARGIN)
            + footer_height(&self.source, WIDTH);
        (WIDTH, h as u32)
    }

    pub fn draw<DB: DrawingBackend>(&self, root: &Area<DB>, fig: &str) -> Result<()> {
        let (area, top) = begin_figure(root, &self.title, Some(&self.subtitle), CHART_H, fig)?;
        let [x0, x1] = self.x_range;
        let [y0, y1] = self.y_range;
        let mut chart = ChartBuilder::on(&area)
            .margin_right(20)
            .margin_top(8)
            .x_label_area_size(62)
            .y_label_area_size(92)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(de(fig))?;
        chart
            .configure_mesh()
            .light_line_style(style::GRID.mix(0.0))
            .bold_line_style(style::GRID.stroke_width(1))
            .axis_style(MUTED.stroke_width(1))
            .x_labels(8)
            .y_labels(11)
            .x_label_formatter(&|x| format!("{x:.2}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(style::text(style::TICK, INK))
            .axis_desc_style(style::text(style::LABEL, INK))
            .x_desc(self.x_label.clone())
            .y_desc(self.y_label.clone())
            .draw()
            .map_err(de(fig))?;
        // Trend line clipped to the plotting range.
        let seg = clip_line(&self.fit, x0, x1, y0, y1);
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let mut placer =
            LabelPlacer::new(PxRect(xr.start + 4, yr.start + 4, xr.end - 4, yr.end - 4));
        if let Some((a, b)) = seg {
            chart
                .draw_series(LineSeries::new(vec![a, b], AMBER_DARK.stroke_width(3)))
                .map_err(de(fig))?;
            placer.segment(chart.backend_coord(&a), chart.backend_coord(&b), 3);
        }
        for p in &self.points {
            placer.obstacle(PxRect::around(chart.backend_coord(&(p.x, p.y)), 12));
        }
        // Off-trend gaps first so markers draw over them.
        for r in &self.residuals {
            let p = self
                .points
                .iter()
                .find(|p| p.label == r.label)
                .expect("residual of a point");
            if p.role != PointRole::OffTrend {
                continue;
            }
            let ty = r.trend_y.clamp(y0, y1);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(p.x, ty), (p.x, p.y)],
                    3,
                    6,
                    OFF.stroke_width(2),
                ))
                .map_err(de(fig))?;
            placer.segment(
                chart.backend_coord(&(p.x, ty)),
                chart.backend_coord(&(p.x, p.y)),
                3,
            );
            let mid = chart.backend_coord(&(p.x, (ty + p.y) / 2.0));
            let txt = format!("{} pp vs trend", fmt_num(r.residual, 1, true));
            let placed = placer.place(mid, &txt, style::SMALL);
            draw_placed(
                root,
                &placed,
                mid,
                &txt,
                &style::text(style::SMALL, OFF),
                fig,
            )?;
        }
        for p in &self.points {
            let c = chart.backend_coord(&(p.x, p.y));
            match p.role {
                PointRole::Fit => {
                    root.draw(&Circle::new(c, 9, AMBER.filled()))
                        .map_err(de(fig))?;
                    root.draw(&Circle::new(c, 9, AMBER_DARK.stroke_width(2)))
                        .map_err(de(fig))?;
                }
                PointRole::OffTrend => diamond(root, c, 13, OFF, fig)?,
                PointRole::Reference => {
                    root.draw(&Circle::new(c, 8, style::PAPER.filled()))
                        .map_err(de(fig))?;
                    root.draw(&Circle::new(c, 8, GREY.stroke_width(3)))
                        .map_err(de(fig))?;
                }
            }
        }
        for p in &self.points {
            let c = chart.backend_coord(&(p.x, p.y));
            let txt = format!(
                "{} ({}, {})",
                p.label,
                fmt_num(p.x, 3, false),
                fmt_short(p.y)
            );
            let placed = placer.place(c, &txt, style::SMALL);
            let color = if p.role == PointRole::OffTrend {
                OFF
            } else {
                INK
            };
            draw_placed(
                root,
                &placed,
                c,
                &txt,
                &style::text(style::SMALL, color),
                fig,
            )?;
        }
        draw_legend_and_footer(root, &self.legend(), top + CHART_H + 12, &self.source, fig)
    }
}

/// The part of y = fit(x) for x in [x0, x1] that lies within [y0, y1].
fn clip_line(
    fit: &LinearFit,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
) -> Option<((f64, f64), (f64, f64))> {
    let (mut a, mut b) = (x0, x1);
    if fit.slope != 0.0 {
        let xa = (y0 - fit.intercept) / fit.slope;
        let xb = (y1 - fit.intercept) / fit.slope;
        let (lo, hi) = if xa < xb { (xa, xb) } else { (xb, xa) };
        a = a.max(lo);
        b = b.min(hi);
    } else if !(y0..=y1).contains(&fit.intercept) {
        return None;
    }
    (a < b).then(|| ((a, fit.at(a)), (b, fit.at(b))))
}
