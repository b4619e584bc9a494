//! Drawing helpers shared by every renderer: titles, footers, legends, arrows, and a greedy label
//! placer that keeps point labels off each other and off the markers.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::FigureError;
use crate::style::{self, INK, MUTED};

pub type Area<DB> = DrawingArea<DB, Shift>;
pub type Px = (i32, i32);

pub const MARGIN: i32 = 24;

/// Maps any plotters error into a [`FigureError::Draw`] naming the figure.
pub fn de<E: std::fmt::Display>(figure: &str) -> impl Fn(E) -> FigureError + '_ {
    move |e| FigureError::Draw {
        figure: figure.to_string(),
        msg: e.to_string(),
    }
}

pub fn anchor(h: HPos, v: VPos) -> Pos {
    Pos::new(h, v)
}

pub fn put_text<DB: DrawingBackend>(
    root: &Area<DB>,
    s: &str,
    at: Px,
    style: &TextStyle,
    h: HPos,
    v: VPos,
    fig: &str,
) -> crate::Result<()> {
    let st = style.clone().pos(anchor(h, v));
    root.draw(&Text::new(s.to_string(), at, st))
        .map_err(de(fig))
}

/// Greedy word wrap to `width` pixels at `size`.
pub fn wrap(s: &str, size: f64, width: u32) -> Vec<String> {
    wrap_measured(s, width, |t| style::text_size(t, size).0)
}

pub fn line_height(size: f64) -> i32 {
    (size * 1.25).round() as i32
}

/// Height the title block takes for a given width (title + wrapped subtitle + gap).
pub fn title_height(title: &str, subtitle: Option<&str>, width: u32) -> i32 {
    let inner = width.saturating_sub(2 * MARGIN as u32);
    let t = wrap_bold(title, style::TITLE, inner).len() as i32 * line_height(style::TITLE);
    let s = subtitle
        .map(|s| wrap(s, style::SUBTITLE, inner).len() as i32 * line_height(style::SUBTITLE))
        .unwrap_or(0);
    MARGIN + t + s + 14
}

fn wrap_bold(s: &str, size: f64, width: u32) -> Vec<String> {
    wrap_measured(s, width, |t| style::bold_text_size(t, size).0)
}

/// Greedy word wrap to `width` pixels, `measure` giving a line's width.
fn wrap_measured(s: &str, width: u32, measure: impl Fn(&str) -> u32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in s.split_whitespace() {
        let trial = if cur.is_empty() {
            word.to_string()
        } else {
            format!("{cur} {word}")
        };
        if measure(&trial) > width && !cur.is_empty() {
            lines.push(std::mem::replace(&mut cur, word.to_string()));
        } else {
            cur = trial;
        }
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// Fills the paper and draws the title block; returns the body area (`body_h` tall, between the
/// side margins, just below the title) and the y where it starts.
pub fn begin_figure<DB: DrawingBackend>(
    root: &Area<DB>,
    title: &str,
    subtitle: Option<&str>,
    body_h: i32,
    fig: &str,
) -> crate::Result<(Area<DB>, i32)> {
    root.fill(&style::PAPER).map_err(de(fig))?;
    let top = draw_title(root, title, subtitle, fig)?;
    let (w, _) = root.dim_in_pixel();
    let body = root
        .clone()
        .shrink((MARGIN, top), (w as i32 - 2 * MARGIN, body_h));
    Ok((body, top))
}

/// Draws the title and subtitle at the top-left; returns the y where the body starts.
pub fn draw_title<DB: DrawingBackend>(
    root: &Area<DB>,
    title: &str,
    subtitle: Option<&str>,
    fig: &str,
) -> crate::Result<i32> {
    let (w, _) = root.dim_in_pixel();
    let inner = w.saturating_sub(2 * MARGIN as u32);
    let mut y = MARGIN;
    for line in wrap_bold(title, style::TITLE, inner) {
        put_text(
            root,
            &line,
            (MARGIN, y),
            &style::bold(style::TITLE, INK),
            HPos::Left,
            VPos::Top,
            fig,
        )?;
        y += line_height(style::TITLE);
    }
    if let Some(sub) = subtitle {
        for line in wrap(sub, style::SUBTITLE, inner) {
            put_text(
                root,
                &line,
                (MARGIN, y),
                &style::text(style::SUBTITLE, MUTED),
                HPos::Left,
                VPos::Top,
                fig,
            )?;
            y += line_height(style::SUBTITLE);
        }
    }
    Ok(y + 14)
}

/// Height of the provenance footer for a given width.
pub fn footer_height(source: &str, width: u32) -> i32 {
    if source.is_empty() {
        return MARGIN;
    }
    let lines = wrap(
        source,
        style::SMALL,
        width.saturating_sub(2 * MARGIN as u32),
    )
    .len() as i32;
    lines * line_height(style::SMALL) + MARGIN
}

/// Draws the provenance line(s) at the bottom-left.
pub fn draw_footer<DB: DrawingBackend>(
    root: &Area<DB>,
    source: &str,
    fig: &str,
) -> crate::Result<()> {
    if source.is_empty() {
        return Ok(());
    }
    let (w, h) = root.dim_in_pixel();
    let lines = wrap(source, style::SMALL, w.saturating_sub(2 * MARGIN as u32));
    let mut y = h as i32 - footer_height(source, w) + 6;
    for line in lines {
        put_text(
            root,
            &line,
            (MARGIN, y),
            &style::text(style::SMALL, MUTED),
            HPos::Left,
            VPos::Top,
            fig,
        )?;
        y += line_height(style::SMALL);
    }
    Ok(())
}

/// What a legend entry's swatch looks like.
#[derive(Clone, Copy)]
pub enum Swatch {
    Line {
        color: RGBColor,
        dotted: bool,
        width: u32,
    },
    Dot {
        color: RGBColor,
        filled: bool,
    },
    Diamond {
        color: RGBColor,
    },
    Block {
        fill: RGBColor,
        edge: RGBColor,
    },
}

pub struct LegendItem {
    pub label: String,
    pub swatch: Swatch,
}

const SWATCH_W: i32 = 34;

fn item_width(item: &LegendItem) -> i32 {
    SWATCH_W + 8 + style::text_size(&item.label, style::TICK).0 as i32 + 26
}

/// Height a horizontal-flow legend needs within `width`.
pub fn legend_height(items: &[LegendItem], width: i32) -> i32 {
    let mut rows = 1;
    let mut x = 0;
    for it in items {
        let w = item_width(it);
        if x > 0 && x + w > width {
            rows += 1;
            x = 0;
        }
        x += w;
    }
    rows * line_height(style::TICK + 6.0)
}

/// The legend at `y` (indented, wrapped between the margins), then the footer: how the charts end.
pub fn draw_legend_and_footer<DB: DrawingBackend>(
    root: &Area<DB>,
    items: &[LegendItem],
    y: i32,
    source: &str,
    fig: &str,
) -> crate::Result<()> {
    let (w, _) = root.dim_in_pixel();
    draw_legend(root, items, (MARGIN + 20, y), w as i32 - 2 * MARGIN, fig)?;
    draw_footer(root, source, fig)
}

/// Legend laid out left to right from `at`, wrapping at `width`.
pub fn draw_legend<DB: DrawingBackend>(
    root: &Area<DB>,
    items: &[LegendItem],
    at: Px,
    width: i32,
    fig: &str,
) -> crate::Result<()> {
    let lh = line_height(style::TICK + 6.0);
    let (mut x, mut y) = (0, at.1);
    for it in items {
        let w = item_width(it);
        if x > 0 && x + w > width {
            x = 0;
            y += lh;
        }
        let sx = at.0 + x;
        let cy = y + lh / 2;
        draw_swatch(root, it.swatch, (sx, cy), fig)?;
        put_text(
            root,
            &it.label,
            (sx + SWATCH_W + 8, cy),
            &style::text(style::TICK, INK),
            HPos::Left,
            VPos::Center,
            fig,
        )?;
        x += w;
    }
    Ok(())
}

fn draw_swatch<DB: DrawingBackend>(
    root: &Area<DB>,
    s: Swatch,
    (x, cy): Px,
    fig: &str,
) -> crate::Result<()> {
    match s {
        Swatch::Line {
            color,
            dotted,
            width,
        } => {
            let st = color.stroke_width(width);
            if dotted {
                let mut px = x;
                while px < x + SWATCH_W {
                    root.draw(&PathElement::new(
                        vec![(px, cy), ((px + 3).min(x + SWATCH_W), cy)],
                        st,
                    ))
                    .map_err(de(fig))?;
                    px += 7;
                }
                Ok(())
            } else {
                root.draw(&PathElement::new(vec![(x, cy), (x + SWATCH_W, cy)], st))
                    .map_err(de(fig))
            }
        }
        Swatch::Dot { color, filled } => {
            let st = if filled {
                color.filled()
            } else {
                color.stroke_width(2)
            };
            root.draw(&Circle::new((x + SWATCH_W / 2, cy), 7, st))
                .map_err(de(fig))
        }
        Swatch::Diamond { color } => diamond(root, (x + SWATCH_W / 2, cy), 10, color, fig),
        Swatch::Block { fill, edge } => {
            root.draw(&Rectangle::new(
                [(x + 4, cy - 8), (x + SWATCH_W - 4, cy + 8)],
                fill.filled(),
            ))
            .map_err(de(fig))?;
            root.draw(&Rectangle::new(
                [(x + 4, cy - 8), (x + SWATCH_W - 4, cy + 8)],
                edge.stroke_width(1),
            ))
            .map_err(de(fig))
        }
    }
}

pub fn diamond<DB: DrawingBackend>(
    root: &Area<DB>,
    (x, y): Px,
    r: i32,
    color: RGBColor,
    fig: &str,
) -> crate::Result<()> {
    let pts = vec![(x, y - r), (x + r, y), (x, y + r), (x - r, y)];
    root.draw(&Polygon::new(pts.clone(), color.filled()))
        .map_err(de(fig))?;
    let mut closed = pts;
    closed.push((x, y - r));
    root.draw(&PathElement::new(closed, style::INK.stroke_width(1)))
        .map_err(de(fig))
}

/// A straight arrow in pixel space with a filled triangular head at `to`.
pub fn arrow<DB: DrawingBackend>(
    root: &Area<DB>,
    from: Px,
    to: Px,
    color: RGBColor,
    width: u32,
    fig: &str,
) -> crate::Result<()> {
    let (dx, dy) = ((to.0 - from.0) as f64, (to.1 - from.1) as f64);
    let len = (dx * dx + dy * dy).sqrt();
    if len < 1.0 {
        return root
            .draw(&Circle::new(to, 4, color.filled()))
            .map_err(de(fig));
    }
    let (ux, uy) = (dx / len, dy / len);
    let head = (16.0 + 2.0 * width as f64).min(len * 0.6);
    let half = head * 0.45;
    let base = (to.0 as f64 - ux * head, to.1 as f64 - uy * head);
    let shaft_end = (
        (base.0 + ux * 2.0).round() as i32,
        (base.1 + uy * 2.0).round() as i32,
    );
    root.draw(&PathElement::new(
        vec![from, shaft_end],
        color.stroke_width(width),
    ))
    .map_err(de(fig))?;
    let left = (
        (base.0 - uy * half).round() as i32,
        (base.1 + ux * half).round() as i32,
    );
    let right = (
        (base.0 + uy * half).round() as i32,
        (base.1 - ux * half).round() as i32,
    );
    root.draw(&Polygon::new(vec![to, left, right], color.filled()))
        .map_err(de(fig))
}

/// Axis-aligned pixel rectangle: (left, top, right, bottom).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PxRect(pub i32, pub i32, pub i32, pub i32);

impl PxRect {
    pub fn around((x, y): Px, r: i32) -> PxRect {
        PxRect(x - r, y - r, x + r, y + r)
    }
    fn overlaps(&self, o: &PxRect) -> bool {
        self.0 < o.2 && o.0 < self.2 && self.1 < o.3 && o.1 < self.3
    }
    fn inside(&self, o: &PxRect) -> bool {
        self.0 >= o.0 && self.1 >= o.1 && self.2 <= o.2 && self.3 <= o.3
    }
}

/// Greedy placement of text labels next to anchor points: tries positions around the anchor at
/// growing distances and takes the first that stays inside `bounds` and overlaps nothing placed so
/// far (labels and registered obstacles such as markers).
pub struct LabelPlacer {
    pub bounds: PxRect,
    pub taken: Vec<PxRect>,
}

pub struct Placed {
    /// Top-left of the label box.
    pub at: Px,
    pub size: (i32, i32),
    /// True when the label ended up far enough from its anchor to need a leader line.
    pub far: bool,
}

impl LabelPlacer {
    pub fn new(bounds: PxRect) -> Self {
        LabelPlacer {
            bounds,
            taken: Vec::new(),
        }
    }

    pub fn obstacle(&mut self, r: PxRect) {
        self.taken.push(r);
    }

    /// Marks a straight segment (an arrow or a line) as an obstacle, sampled every few pixels.
    pub fn segment(&mut self, a: Px, b: Px, half_width: i32) {
        let (dx, dy) = ((b.0 - a.0) as f64, (b.1 - a.1) as f64);
        let n = ((dx * dx + dy * dy).sqrt() / 6.0).ceil().max(1.0) as i32;
        for k in 0..=n {
            let t = k as f64 / n as f64;
            let p = (
                (a.0 as f64 + dx * t).round() as i32,
                (a.1 as f64 + dy * t).round() as i32,
            );
            self.taken.push(PxRect::around(p, half_width));
        }
    }

    pub fn place(&mut self, anchor: Px, text: &str, size: f64) -> Placed {
        let (w, h) = style::text_size(text, size);
        let (w, h) = (w as i32 + 6, h as i32 + 6);
        // Directions: E, W, N, S, then the diagonals (box offsets from the anchor). Centred N/S
        // before the diagonals keeps a long label visibly attached to its anchor.
        let dirs: [(i32, i32); 8] = [
            (1, 0),
            (-1, 0),
            (0, -1),
            (0, 1),
            (1, -1),
            (1, 1),
            (-1, -1),
            (-1, 1),
        ];
        let mut first_inside = None;
        for r in [14, 24, 38, 56, 80, 110, 145, 185] {
            for (dx, dy) in dirs {
                let left = match dx {
                    1 => anchor.0 + r,
                    -1 => anchor.0 - r - w,
                    _ => anchor.0 - w / 2,
                };
                let top = match dy {
                    1 => anchor.1 + r,
                    -1 => anchor.1 - r - h,
                    _ => anchor.1 - h / 2,
                };
                let rect = PxRect(left, top, left + w, top + h);
                if !rect.inside(&self.bounds) {
                    continue;
                }
                first_inside.get_or_insert((rect, r));
                if self.taken.iter().all(|t| !t.overlaps(&rect)) {
                    self.taken.push(rect);
                    return Placed {
                        at: (left, top),
                        size: (w, h),
                        far: r > 14,
                    };
                }
            }
        }
        let (rect, r) = first_inside.unwrap_or((
            PxRect(
                anchor.0 + 8,
                anchor.1 - h / 2,
                anchor.0 + 8 + w,
                anchor.1 + h / 2,
            ),
            12,
        ));
        self.taken.push(rect);
        Placed {
            at: (rect.0, rect.1),
            size: (w, h),
            far: r > 14,
        }
    }
}

/// Draws a placed label (and a thin leader line to the anchor when it sits far away).
pub fn draw_placed<DB: DrawingBackend>(
    root: &Area<DB>,
    p: &Placed,
    anchor_px: Px,
    text: &str,
    style: &TextStyle,
    fig: &str,
) -> crate::Result<()> {
    if p.far {
        // Leader from the anchor to the nearest point of the label box.
        let tx = anchor_px.0.clamp(p.at.0, p.at.0 + p.size.0);
        let ty = anchor_px.1.clamp(p.at.1, p.at.1 + p.size.1);
        root.draw(&PathElement::new(
            vec![anchor_px, (tx, ty)],
            style::GREY.stroke_width(1),
        ))
        .map_err(de(fig))?;
    }
    put_text(
        root,
        text,
        (p.at.0 + 3, p.at.1 + 3),
        style,
        HPos::Left,
        VPos::Top,
        fig,
    )
}

/// Formats a value with `decimals` digits and a typographic minus (and a plus sign if `signed`).
pub fn fmt_num(v: f64, decimals: usize, signed: bool) -> String {
    let s = format!("{:.*}", decimals, v.abs());
    let zero = s.chars().all(|c| c == '0' || c == '.');
    if v < 0.0 && !zero {
        format!("−{s}")
    } else if signed && !zero {
        format!("+{s}")
    } else {
        s
    }
}

/// "Nice" axis bounds: expands [lo, hi] by `pad` of the span and rounds outward to `step`.
pub fn nice_range(lo: f64, hi: f64, pad: f64, step: f64) -> (f64, f64) {
    let span = (hi - lo).max(step);
    let lo = ((lo - span * pad) / step).floor() * step;
    let hi = ((hi + span * pad) / step).ceil() * step;
    (lo, hi)
}

/// Spreads label centres (pixel y) apart by at least `gap` while keeping them within
/// [`lo`, `hi`]; input order is preserved in the output.
pub fn spread_1d(ys: &[i32], gap: i32, lo: i32, hi: i32) -> Vec<i32> {
    let mut idx: Vec<usize> = (0..ys.len()).collect();
    idx.sort_by_key(|&i| ys[i]);
    let mut out = ys.to_vec();
    let mut prev = i32::MIN / 2;
    for &i in &idx {
        out[i] = out[i].max(prev + gap).max(lo);
        prev = out[i];
    }
    let mut next = i32::MAX / 2;
    for &i in idx.iter().rev() {
        out[i] = out[i].min(next - gap).min(hi);
        next = out[i];
    }
    out
}

/// Shortest decimal form up to 3 digits, as the post prints values (41.3, 87.85, 2.9).
pub fn fmt_short(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if let Some(rest) = s.strip_prefix('-') {
        format!("−{rest}")
    } else {
        s.to_string()
    }
}
