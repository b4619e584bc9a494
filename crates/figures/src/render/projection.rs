//! Fig. 8.1: each trajectory's weight delta as an arrow in the plane spanned by the `axis`
//! trajectory (x) and the part of the `toward` trajectory orthogonal to it (y), in units of the
//! parameter's norm in base. Axes are drawn at equal scale so angles read true.

use plotters::prelude::*;
use serde::Serialize;

use super::common::*;
use crate::error::Result;
use crate::geometry::{CosineRow, in_plane_fraction};
use crate::schema::Validate as _;
use crate::schema::{Projection, ProjectionPoint};
use crate::style::{self, INK, MUTED};

#[derive(Clone, Debug, Serialize)]
pub struct ProjectionPlot {
    pub title: String,
    pub subtitle: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    pub axis: String,
    pub toward: String,
    /// The origin's label, from the data (`Projection::base`; `base` when the data names none).
    pub base: String,
    pub points: Vec<ProjectionPoint>,
    /// When the coordinates were derived from published norms and cosines: the inputs and, per
    /// arrow, the fraction of its length that lies in the plane.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derivation: Option<Vec<DerivedArrow>>,
    /// ‖tip − origin‖ / ‖Δ‖ per arrow where ‖Δ‖ (rel base) is known: the share of the delta that
    /// lies in the plane. A short arrow with a low share moved mostly out of the plane.
    pub in_plane_fraction: Vec<(String, f64)>,
    pub x_range: [f64; 2],
    pub y_range: [f64; 2],
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct DerivedArrow {
    #[serde(flatten)]
    pub input: CosineRow,
    pub dx: f64,
    pub dy: f64,
    pub in_plane_fraction: f64,
}

const WIDTH: u32 = 1200;
const CHART_H: i32 = 780;
const X_LABEL_AREA: i32 = 64;
const Y_LABEL_AREA: i32 = 84;
const M_TOP: i32 = 10;
const M_RIGHT: i32 = 24;

impl ProjectionPlot {
    pub fn new(
        projection: &Projection,
        param: Option<&str>,
        derivation: Option<Vec<DerivedArrow>>,
        rel_base: &[(String, f64)],
        input: &str,
        source: &str,
    ) -> Result<ProjectionPlot> {
        projection.validate(input)?;
        let in_plane_fraction: Vec<(String, f64)> = projection
            .points
            .iter()
            .filter_map(|p| {
                let r = rel_base.iter().find(|(l, _)| l == &p.label)?.1;
                Some((
                    p.label.clone(),
                    in_plane_fraction(p.tip[0] - p.origin[0], p.tip[1] - p.origin[1], r),
                ))
            })
            .collect();
        let (mut xlo, mut xhi, mut ylo, mut yhi) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for p in &projection.points {
            for q in [p.origin, p.tip] {
                xlo = xlo.min(q[0]);
                xhi = xhi.max(q[0]);
                ylo = ylo.min(q[1]);
                yhi = yhi.max(q[1]);
            }
        }
        // Pad, then widen the shorter side so one unit spans the same pixels on both axes.
        let pad = 0.14 * (xhi - xlo).max(yhi - ylo).max(1e-9);
        let (mut x0, mut x1, mut y0, mut y1) = (xlo - pad, xhi + pad, ylo - pad, yhi + pad);
        let pw = (WIDTH as i32 - 2 * MARGIN - Y_LABEL_AREA - M_RIGHT) as f64;
        let ph = (CHART_H - M_TOP - X_LABEL_AREA) as f64;
        let upp = ((x1 - x0) / pw).max((y1 - y0) / ph);
        let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        x0 = cx - upp * pw / 2.0;
        x1 = cx + upp * pw / 2.0;
        y0 = cy - upp * ph / 2.0;
        y1 = cy + upp * ph / 2.0;
        let what = param.map(|p| format!(" of {p}")).unwrap_or_default();
        let share = if in_plane_fraction.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = in_plane_fraction
                .iter()
                .map(|(l, f)| format!("{l} {:.0} %", 100.0 * f))
                .collect();
            format!(
                " Share of each ‖Δ‖ lying in this plane: {}.",
                parts.join(", ")
            )
        };
        Ok(ProjectionPlot {
            title: "Weight deltas projected to 2-D: same parameter, very different directions"
                .into(),
            subtitle: format!(
                "Arrows are Δ = TO − FROM{what}. x: along {} (unit vector); y: along the part of {} orthogonal to it. Units: ‖param in base‖; equal scale on both axes.{share}",
                projection.axis, projection.toward
            ),
            param: param.map(str::to_string),
            axis: projection.axis.clone(),
            toward: projection.toward.clone(),
            base: projection.base.clone().unwrap_or_else(|| "base".into()),
            points: projection.points.clone(),
            derivation,
            in_plane_fraction,
            x_range: [x0, x1],
            y_range: [y0, y1],
            source: source.to_string(),
        })
    }

    pub fn size(&self) -> (u32, u32) {
        let h = title_height(&self.title, Some(&self.subtitle), WIDTH)
            + CHART_H
            + 8
            + footer_height(&self.source, WIDTH);
        (WIDTH, h as u32)
    }

    pub fn draw<DB: DrawingBackend>(&self, root: &Area<DB>, fig: &str) -> Result<()> {
        let (area, _) = begin_figure(root, &self.title, Some(&self.subtitle), CHART_H, fig)?;
        let [x0, x1] = self.x_range;
        let [y0, y1] = self.y_range;
        let mut chart = ChartBuilder::on(&area)
            .margin_top(M_TOP)
            .margin_right(M_RIGHT)
            .x_label_area_size(X_LABEL_AREA)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(de(fig))?;
        chart
            .configure_mesh()
            .light_line_style(style::GRID.mix(0.0))
            .bold_line_style(style::GRID.stroke_width(1))
            .axis_style(MUTED.stroke_width(1))
            .x_labels(10)
            .y_labels(10)
            .x_label_formatter(&|x| fmt_num(*x, 1, false))
            .y_label_formatter(&|y| fmt_num(*y, 1, false))
            .label_style(style::text(style::TICK, INK))
            .axis_desc_style(style::text(style::LABEL, INK))
            .x_desc(format!("along {} (break axis)", self.axis))
            .y_desc(format!("orthogonal, toward {}", self.toward))
            .draw()
            .map_err(de(fig))?;
        // Axes through base.
        chart
            .draw_series(LineSeries::new(
                vec![(x0, 0.0), (x1, 0.0)],
                MUTED.stroke_width(2),
            ))
            .map_err(de(fig))?;
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, y0), (0.0, y1)],
                MUTED.stroke_width(2),
            ))
            .map_err(de(fig))?;
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let mut placer =
            LabelPlacer::new(PxRect(xr.start + 4, yr.start + 4, xr.end - 4, yr.end - 4));
        let px = |q: [f64; 2]| chart.backend_coord(&(q[0], q[1]));
        let o = px([0.0, 0.0]);
        placer.segment(px([x0, 0.0]), px([x1, 0.0]), 3);
        placer.segment(px([0.0, y0]), px([0.0, y1]), 3);
        placer.obstacle(PxRect::around(o, 12));
        for p in &self.points {
            placer.obstacle(PxRect::around(px(p.tip), 16));
            placer.segment(px(p.origin), px(p.tip), 5);
        }
        for (i, p) in self.points.iter().enumerate() {
            let color = style::recipe_color(&p.label, i);
            if p.origin != [0.0, 0.0] {
                root.draw(&Circle::new(px(p.origin), 5, color.filled()))
                    .map_err(de(fig))?;
            }
            arrow(root, px(p.origin), px(p.tip), color, 4, fig)?;
        }
        root.draw(&Circle::new(o, 9, style::PARCHMENT.filled()))
            .map_err(de(fig))?;
        root.draw(&Circle::new(o, 9, style::PARCHMENT_EDGE.stroke_width(2)))
            .map_err(de(fig))?;
        let placed = placer.place(o, &self.base, style::TICK);
        draw_placed(
            root,
            &placed,
            o,
            &self.base,
            &style::text(style::TICK, MUTED),
            fig,
        )?;
        for (i, p) in self.points.iter().enumerate() {
            let color = style::recipe_color(&p.label, i);
            let dx = p.tip[0] - p.origin[0];
            let dy = p.tip[1] - p.origin[1];
            let from = if p.origin == [0.0, 0.0] {
                String::new()
            } else {
                " (from tip)".into()
            };
            let txt = format!(
                "{}{from}  Δ = ({}, {})",
                p.label,
                fmt_num(dx, 2, true),
                fmt_num(dy, 2, true)
            );
            let t = px(p.tip);
            let placed = placer.place(t, &txt, style::TICK);
            draw_placed(
                root,
                &placed,
                t,
                &txt,
                &style::bold(style::TICK, darker(color)),
                fig,
            )?;
        }
        draw_footer(root, &self.source, fig)
    }
}

/// Label text in a darker shade of the arrow's colour, for contrast on white.
fn darker(c: RGBColor) -> RGBColor {
    style::mix(c, INK, 0.3)
}
