//! Heatmap with the value printed in every cell: the §6 rel_Δ table, Table 6.1, Table 7.1, and any
//! [`HeatmapTable`] a live probe writes. Column headers may hold `\n` for two-line headers.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::common::*;
use crate::error::Result;
use crate::schema::Validate as _;
use crate::schema::{HeatmapTable, Scale, ScaleKind};
use crate::style::{self, INK, MUTED};

/// A heatmap ready to draw: the table with its colour scale and cell format resolved.
#[derive(Clone, Debug)]
pub struct Heatmap {
    pub table: HeatmapTable,
}

const CELL_H: i32 = 46;
const MIN_CELL_W: i32 = 96;
const BAR_W: i32 = 22;

struct Layout {
    w: u32,
    h: u32,
    label_w: i32,
    cell_w: i32,
    grid_top: i32,
    header_lines: usize,
}

impl Heatmap {
    /// Resolves the default scale (sequential over the data range, or diverging on [−1, 1] for
    /// signed values within it) and digits.
    pub fn new(mut table: HeatmapTable, input: &str) -> Result<Heatmap> {
        table.validate(input)?;
        let vals: Vec<f64> = table.values.iter().flatten().flatten().copied().collect();
        if table.scale.is_none() {
            let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            table.scale = Some(if vals.is_empty() {
                Scale {
                    kind: ScaleKind::Sequential,
                    min: 0.0,
                    max: 1.0,
                }
            } else if (-1.0 - 1e-9..0.0).contains(&lo) && hi <= 1.0 + 1e-9 {
                Scale {
                    kind: ScaleKind::Diverging,
                    min: -1.0,
                    max: 1.0,
                }
            } else if hi > lo {
                Scale {
                    kind: ScaleKind::Sequential,
                    min: lo,
                    max: hi,
                }
            } else {
                Scale {
                    kind: ScaleKind::Sequential,
                    min: lo,
                    max: lo + 1.0,
                }
            });
        }
        if table.decimals.is_none() {
            let diverging = table
                .scale
                .map(|s| s.kind == ScaleKind::Diverging)
                .unwrap_or(false);
            table.decimals = Some(if diverging { 2 } else { 3 });
        }
        Ok(Heatmap { table })
    }

    fn scale(&self) -> Scale {
        self.table.scale.expect("resolved in new")
    }

    fn decimals(&self) -> usize {
        self.table.decimals.expect("resolved in new")
    }

    fn cell_text(&self, v: Option<f64>) -> String {
        match v {
            None => "–".into(),
            Some(v) => fmt_num(
                v,
                self.decimals(),
                self.scale().kind == ScaleKind::Diverging,
            ),
        }
    }

    fn color(&self, v: f64) -> RGBColor {
        let s = self.scale();
        match s.kind {
            ScaleKind::Sequential => style::sequential((v - s.min) / (s.max - s.min)),
            ScaleKind::Diverging => {
                // Centred on 0 when the range straddles it, else on the midpoint.
                let mid = if s.min < 0.0 && s.max > 0.0 {
                    0.0
                } else {
                    (s.min + s.max) / 2.0
                };
                let t = if v >= mid {
                    (v - mid) / (s.max - mid)
                } else {
                    -(mid - v) / (mid - s.min)
                };
                style::diverging(t.clamp(-1.0, 1.0))
            }
        }
    }

    fn layout(&self) -> Layout {
        let t = &self.table;
        let label_w = t
            .rows
            .iter()
            .map(|r| style::text_size(r, style::TICK).0 as i32)
            .chain(
                t.row_title
                    .iter()
                    .map(|s| style::text_size(s, style::LABEL).0 as i32),
            )
            .max()
            .unwrap_or(0)
            + 18;
        let header_lines = t
            .cols
            .iter()
            .map(|c| c.lines().count())
            .max()
            .unwrap_or(1)
            .max(1);
        let widest_header = t
            .cols
            .iter()
            .flat_map(|c| c.lines())
            .map(|l| style::text_size(l, style::TICK).0 as i32)
            .max()
            .unwrap_or(0);
        let widest_value = t
            .values
            .iter()
            .flatten()
            .map(|v| style::text_size(&self.cell_text(*v), style::TICK + 1.0).0 as i32)
            .max()
            .unwrap_or(0);
        let cell_w = MIN_CELL_W.max(widest_header + 18).max(widest_value + 24);
        let bar_block = 40 + BAR_W + 12 + style::text_size("−0.000", style::TICK).0 as i32;
        let grid_w = cell_w * t.cols.len() as i32;
        // The title wraps to the body's width rather than widening the canvas.
        let body_w = MARGIN + label_w + grid_w + bar_block + MARGIN;
        let w = body_w.max(900) as u32;
        let title_h = title_height(&t.title, None, w);
        let col_title_h = if t.col_title.is_some() {
            line_height(style::LABEL) + 6
        } else {
            0
        };
        let header_h = header_lines as i32 * line_height(style::TICK) + 10;
        let grid_top = title_h + col_title_h + header_h;
        let h = grid_top + CELL_H * t.rows.len() as i32 + 20 + footer_height(&t.source, w);
        Layout {
            w,
            h: h as u32,
            label_w,
            cell_w,
            grid_top,
            header_lines,
        }
    }

    pub fn size(&self) -> (u32, u32) {
        let l = self.layout();
        (l.w, l.h)
    }

    pub fn title(&self) -> &str {
        &self.table.title
    }

    pub fn draw<DB: DrawingBackend>(&self, root: &Area<DB>, fig: &str) -> Result<()> {
        let t = &self.table;
        let l = self.layout();
        root.fill(&style::PAPER).map_err(de(fig))?;
        let y0 = draw_title(root, &t.title, None, fig)?;
        let x0 = MARGIN + l.label_w;
        let ncols = t.cols.len() as i32;
        let lh = line_height(style::TICK);
        if let Some(ct) = &t.col_title {
            put_text(
                root,
                ct,
                (x0 + l.cell_w * ncols / 2, y0),
                &style::text(style::LABEL, INK),
                HPos::Center,
                VPos::Top,
                fig,
            )?;
        }
        // Column headers, bottom-aligned just above the grid.
        for (c, col) in t.cols.iter().enumerate() {
            let lines: Vec<&str> = col.lines().collect();
            let cx = x0 + l.cell_w * c as i32 + l.cell_w / 2;
            let pad = (l.header_lines - lines.len()) as i32 * lh;
            for (k, line) in lines.iter().enumerate() {
                let y = l.grid_top - 10 - (l.header_lines as i32) * lh + pad + k as i32 * lh;
                put_text(
                    root,
                    line,
                    (cx, y),
                    &style::text(style::TICK, INK),
                    HPos::Center,
                    VPos::Top,
                    fig,
                )?;
            }
        }
        if let Some(rt) = &t.row_title {
            put_text(
                root,
                rt,
                (x0 - 12, l.grid_top - 10 - lh),
                &style::text(style::LABEL, MUTED),
                HPos::Right,
                VPos::Top,
                fig,
            )?;
        }
        for (r, row) in t.rows.iter().enumerate() {
            let top = l.grid_top + CELL_H * r as i32;
            put_text(
                root,
                row,
                (x0 - 12, top + CELL_H / 2),
                &style::text(style::TICK, INK),
                HPos::Right,
                VPos::Center,
                fig,
            )?;
            for (c, v) in t.values[r].iter().enumerate() {
                let left = x0 + l.cell_w * c as i32;
                let fill = v
                    .map(|v| self.color(v))
                    .unwrap_or(RGBColor(0xF0, 0xEE, 0xEA));
                root.draw(&Rectangle::new(
                    [(left, top), (left + l.cell_w, top + CELL_H)],
                    fill.filled(),
                ))
                .map_err(de(fig))?;
                root.draw(&Rectangle::new(
                    [(left, top), (left + l.cell_w, top + CELL_H)],
                    style::PAPER.stroke_width(2),
                ))
                .map_err(de(fig))?;
                let tc = v.map(|_| style::text_on(fill)).unwrap_or(MUTED);
                put_text(
                    root,
                    &self.cell_text(*v),
                    (left + l.cell_w / 2, top + CELL_H / 2),
                    &style::text(style::TICK + 1.0, tc),
                    HPos::Center,
                    VPos::Center,
                    fig,
                )?;
            }
        }
        self.draw_colorbar(
            root,
            x0 + l.cell_w * ncols + 40,
            l.grid_top,
            CELL_H * t.rows.len() as i32,
            fig,
        )?;
        draw_footer(root, &t.source, fig)
    }

    fn draw_colorbar<DB: DrawingBackend>(
        &self,
        root: &Area<DB>,
        x: i32,
        top: i32,
        height: i32,
        fig: &str,
    ) -> Result<()> {
        let s = self.scale();
        let height = height.max(120);
        for k in 0..height {
            let v = s.max - (s.max - s.min) * k as f64 / (height - 1) as f64;
            root.draw(&Rectangle::new(
                [(x, top + k), (x + BAR_W, top + k + 1)],
                self.color(v).filled(),
            ))
            .map_err(de(fig))?;
        }
        root.draw(&Rectangle::new(
            [(x, top), (x + BAR_W, top + height)],
            style::PARCHMENT_EDGE.stroke_width(1),
        ))
        .map_err(de(fig))?;
        let mid = if s.kind == ScaleKind::Diverging && s.min < 0.0 && s.max > 0.0 {
            0.0
        } else {
            (s.min + s.max) / 2.0
        };
        for v in [s.max, mid, s.min] {
            let y = top + ((s.max - v) / (s.max - s.min) * (height - 1) as f64).round() as i32;
            root.draw(&PathElement::new(
                vec![(x + BAR_W, y), (x + BAR_W + 5, y)],
                INK.stroke_width(1),
            ))
            .map_err(de(fig))?;
            let label = fmt_num(v, self.decimals(), s.kind == ScaleKind::Diverging);
            put_text(
                root,
                &label,
                (x + BAR_W + 9, y),
                &style::text(style::TICK, INK),
                HPos::Left,
                VPos::Center,
                fig,
            )?;
        }
        Ok(())
    }
}
