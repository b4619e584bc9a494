//! Fig. 1.1: the presence gate's sigmoid per prompt for two (or more) checkpoints, as horizontal
//! bars (prompt names stay horizontal and readable), with the processor's confidence threshold as
//! a dotted line. The post publishes no per-prompt values, so this renders live data only.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use serde::Serialize;

use super::common::*;
use crate::error::Result;
use crate::schema::Validate as _;
use crate::schema::{BarSeries, PresenceBars, SeriesRole};
use crate::style::{self, AMBER, INK, MUTED, PARCHMENT, PARCHMENT_EDGE};

#[derive(Clone, Debug, Serialize)]
pub struct PresenceBarsPlot {
    pub title: String,
    pub subtitle: String,
    pub prompts: Vec<String>,
    pub series: Vec<BarSeries>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    pub source: String,
}

const WIDTH: u32 = 1200;
const BAR_H: i32 = 18;
const GROUP_GAP: i32 = 16;
const X_LABEL_AREA: i32 = 60;
const M_TOP: i32 = 34;

impl PresenceBarsPlot {
    pub fn new(bars: &PresenceBars, input: &str, source: &str) -> Result<PresenceBarsPlot> {
        bars.validate(input)?;
        let n = bars.prompts.len();
        let subtitle = match bars.threshold {
            Some(t) => format!(
                "presence_logit_dec.sigmoid() on {n} prompts; the dotted line is the {t} confidence threshold the processor applies to score × presence."
            ),
            None => format!("presence_logit_dec.sigmoid() on {n} prompts."),
        };
        Ok(PresenceBarsPlot {
            title: bars
                .title
                .clone()
                .unwrap_or_else(|| "The presence gate, prompt by prompt".into()),
            subtitle,
            prompts: bars.prompts.clone(),
            series: bars.series.clone(),
            threshold: bars.threshold,
            source: source.to_string(),
        })
    }

    fn fill(&self, i: usize) -> (RGBColor, RGBColor) {
        let role = self.series[i].role.or(match i {
            0 => Some(SeriesRole::Finetune),
            1 => Some(SeriesRole::Base),
            _ => None,
        });
        match role {
            Some(SeriesRole::Finetune) => (AMBER, style::AMBER_DARK),
            Some(SeriesRole::Base) => (PARCHMENT, PARCHMENT_EDGE),
            None => (
                style::categorical(i),
                style::mix(style::categorical(i), INK, 0.3),
            ),
        }
    }

    fn legend(&self) -> Vec<LegendItem> {
        (0..self.series.len())
            .map(|i| {
                let (fill, edge) = self.fill(i);
                LegendItem {
                    label: self.series[i].label.clone(),
                    swatch: Swatch::Block { fill, edge },
                }
            })
            .collect()
    }

    fn group_h(&self) -> i32 {
        self.series.len() as i32 * BAR_H + GROUP_GAP
    }

    fn chart_h(&self) -> i32 {
        M_TOP + self.prompts.len() as i32 * self.group_h() + X_LABEL_AREA
    }

    fn label_w(&self) -> i32 {
        self.prompts
            .iter()
            .map(|p| style::text_size(p, style::TICK).0 as i32)
            .max()
            .unwrap_or(0)
            + 24
    }

    pub fn size(&self) -> (u32, u32) {
        let h = title_height(&self.title, Some(&self.subtitle), WIDTH)
            + self.chart_h()
            + 12
            + legend_height(&self.legend(), WIDTH as i32 - 2 * MARGIN)
            + footer_height(&self.source, WIDTH);
        (WIDTH, h as u32)
    }

    pub fn draw<DB: DrawingBackend>(&self, root: &Area<DB>, fig: &str) -> Result<()> {
        let (area, top) = begin_figure(root, &self.title, Some(&self.subtitle), self.chart_h(), fig)?;
        let n = self.prompts.len() as f64;
        let mut chart = ChartBuilder::on(&area)
            .margin_top(M_TOP)
            .margin_right(70)
            .x_label_area_size(X_LABEL_AREA)
            .y_label_area_size(self.label_w())
            .build_cartesian_2d(0.0f64..1.0f64, 0.0f64..n)
            .map_err(de(fig))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .light_line_style(style::GRID.mix(0.0))
            .bold_line_style(style::GRID.stroke_width(1))
            .axis_style(MUTED.stroke_width(1))
            .x_labels(11)
            .x_label_formatter(&|x| format!("{x:.1}"))
            .label_style(style::text(style::TICK, INK))
            .axis_desc_style(style::text(style::LABEL, INK))
            .x_desc("presence sigmoid")
            .draw()
            .map_err(de(fig))?;
        let gh = self.group_h();
        let (_, yr) = chart.plotting_area().get_pixel_range();
        let (px0, px1) = (
            chart.backend_coord(&(0.0, 0.0)).0,
            chart.backend_coord(&(1.0, 0.0)).0,
        );
        let x_at = |v: f64| px0 + ((px1 - px0) as f64 * v).round() as i32;
        for (k, prompt) in self.prompts.iter().enumerate() {
            let gtop = yr.start + k as i32 * gh + GROUP_GAP / 2;
            let mid = gtop + self.series.len() as i32 * BAR_H / 2;
            put_text(
                root,
                prompt,
                (x_at(0.0) - 12, mid),
                &style::text(style::TICK, INK),
                HPos::Right,
                VPos::Center,
                fig,
            )?;
            for (i, s) in self.series.iter().enumerate() {
                let (fill, edge) = self.fill(i);
                let v = s.values[k];
                let y = gtop + i as i32 * BAR_H;
                let r = [
                    (x_at(0.0), y + 1),
                    (x_at(v).max(x_at(0.0) + 1), y + BAR_H - 1),
                ];
                root.draw(&Rectangle::new(r, fill.filled()))
                    .map_err(de(fig))?;
                root.draw(&Rectangle::new(r, edge.stroke_width(1)))
                    .map_err(de(fig))?;
                put_text(
                    root,
                    &format!("{v:.3}"),
                    (x_at(v) + 6, y + BAR_H / 2),
                    &style::text(style::SMALL - 2.0, MUTED),
                    HPos::Left,
                    VPos::Center,
                    fig,
                )?;
            }
        }
        if let Some(t) = self.threshold {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(t, 0.0), (t, n)],
                    3,
                    6,
                    INK.stroke_width(2),
                ))
                .map_err(de(fig))?;
            put_text(
                root,
                &format!("{t} threshold"),
                (x_at(t), yr.start - 8),
                &style::bold(style::SMALL, INK),
                HPos::Center,
                VPos::Bottom,
                fig,
            )?;
        }
        draw_legend_and_footer(root, &self.legend(), top + self.chart_h() + 12, &self.source, fig)
    }
}
