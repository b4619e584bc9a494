//! The one house style every figure uses: the post's palette (amber for fine-tunes, parchment and
//! grey for base), the embedded DejaVu Sans, and text sizes chosen to read at 1× on a laptop screen.

use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::error::{FigureError, Result};

/// The family name every text style uses; registered from the embedded TTFs.
pub const FAMILY: &str = "sans-serif";

static REGULAR: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../assets/DejaVuSans-Bold.ttf");

/// Registers the embedded DejaVu Sans (regular + bold) under [`FAMILY`], once per process.
/// Must run before any text is measured or drawn: an unregistered family is a font error.
pub fn ensure_fonts() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        register_font(FAMILY, FontStyle::Normal, REGULAR)
            .map_err(|_| "DejaVuSans.ttf".to_string())?;
        register_font(FAMILY, FontStyle::Bold, BOLD).map_err(|_| "DejaVuSans-Bold.ttf".to_string())
    })
    .clone()
    .map_err(FigureError::Font)
}

/// Fine-tuned checkpoints (the post's amber).
pub const AMBER: RGBColor = RGBColor(0xE0, 0xA0, 0x30);
/// Darker amber for lines drawn over amber fills and for trend lines.
pub const AMBER_DARK: RGBColor = RGBColor(0x9A, 0x62, 0x0E);
/// Base SAM3 (the post's parchment).
pub const PARCHMENT: RGBColor = RGBColor(0xE8, 0xDC, 0xC0);
/// Outline for parchment fills, which are too light to stand alone on white.
pub const PARCHMENT_EDGE: RGBColor = RGBColor(0xA8, 0x98, 0x74);
/// Neutral grey for base / reference marks.
pub const GREY: RGBColor = RGBColor(0x7A, 0x74, 0x6A);
pub const INK: RGBColor = RGBColor(0x26, 0x22, 0x1C);
pub const MUTED: RGBColor = RGBColor(0x5C, 0x56, 0x4C);
pub const GRID: RGBColor = RGBColor(0xE6, 0xE1, 0xD6);
pub const PAPER: RGBColor = RGBColor(0xFF, 0xFE, 0xFB);

/// Small categorical palette for series that are not "the fine-tune vs base" pair.
pub const CATEGORICAL: [RGBColor; 6] = [
    AMBER,
    RGBColor(0x2A, 0x7F, 0x8E), // teal
    RGBColor(0x8E, 0x3B, 0x6E), // plum
    RGBColor(0x4A, 0x6F, 0xA5), // slate blue
    RGBColor(0x6B, 0x8E, 0x23), // olive
    RGBColor(0xB0, 0x4A, 0x2F), // brick
];

pub const TEAL: RGBColor = CATEGORICAL[1];
pub const PLUM: RGBColor = CATEGORICAL[2];
pub const SLATE: RGBColor = CATEGORICAL[3];
pub const OLIVE: RGBColor = CATEGORICAL[4];
pub const BRICK: RGBColor = CATEGORICAL[5];

/// One colour per recipe of the post, the same in every figure; other labels take the
/// categorical palette by position.
pub fn recipe_color(label: &str, index: usize) -> RGBColor {
    let name = label.split('@').next().unwrap_or(label);
    match name {
        "frozen_te" => AMBER,
        "lvis_replay" => TEAL,
        "lvis_replay_n100" => SLATE,
        "lvis_replay_neg" => OLIVE,
        "presence_only" => PLUM,
        "recovery" => BRICK,
        _ => categorical(index),
    }
}

pub fn categorical(i: usize) -> RGBColor {
    CATEGORICAL[i % CATEGORICAL.len()]
}

// Text sizes in plotters units (≈ 1.2 × the em size in pixels).
pub const TITLE: f64 = 30.0;
pub const SUBTITLE: f64 = 18.0;
pub const LABEL: f64 = 20.0;
pub const TICK: f64 = 17.0;
pub const SMALL: f64 = 16.0;

pub fn text(size: f64, color: RGBColor) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&color)
}

pub fn bold(size: f64, color: RGBColor) -> TextStyle<'static> {
    // `FontDesc::style` keeps the already-loaded face, so the bold face must be named up front.
    (FAMILY, size, FontStyle::Bold).into_font().color(&color)
}

/// Width and height in pixels of `s` in the regular face at `size` (fonts must be registered).
pub fn text_size(s: &str, size: f64) -> (u32, u32) {
    (FAMILY, size)
        .into_font()
        .box_size(s)
        .unwrap_or((s.chars().count() as u32 * size as u32 / 2, size as u32))
}

pub fn bold_text_size(s: &str, size: f64) -> (u32, u32) {
    (FAMILY, size, FontStyle::Bold)
        .into_font()
        .box_size(s)
        .unwrap_or((s.chars().count() as u32 * size as u32 / 2, size as u32))
}

/// Linear interpolation between two colours, `t` in [0, 1].
pub fn mix(a: RGBColor, b: RGBColor, t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let l = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * t).round() as u8;
    RGBColor(l(a.0, b.0), l(a.1, b.1), l(a.2, b.2))
}

/// Relative luminance (sRGB, approximate) — picks dark or light text over a fill.
pub fn luminance(c: RGBColor) -> f64 {
    (0.2126 * c.0 as f64 + 0.7152 * c.1 as f64 + 0.0722 * c.2 as f64) / 255.0
}

pub fn text_on(fill: RGBColor) -> RGBColor {
    if luminance(fill) < 0.5 { WHITE } else { INK }
}

/// Sequential ramp for magnitudes: light parchment → amber → dark brown.
pub fn sequential(t: f64) -> RGBColor {
    let light = RGBColor(0xFA, 0xF5, 0xE9);
    let dark = RGBColor(0x6B, 0x3E, 0x0A);
    if t <= 0.55 {
        mix(light, AMBER, t / 0.55)
    } else {
        mix(AMBER, dark, (t - 0.55) / 0.45)
    }
}

/// Diverging ramp for signed values (cosines): slate blue ← light → amber/brown, `t` in [-1, 1].
pub fn diverging(t: f64) -> RGBColor {
    let light = RGBColor(0xFA, 0xF5, 0xE9);
    let neg = RGBColor(0x2F, 0x5D, 0x8A);
    if t < 0.0 {
        mix(light, neg, -t)
    } else {
        sequential(0.85 * t)
    }
}
