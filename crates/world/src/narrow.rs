//! The narrow task: a wristwatch-like clock seen as a close-up (the whole object) or as a quadrant
//! crop (one quarter of a close-up rendered at twice the resolution, so parts are twice as large).
//! Each of its 15 parts ([`PARTS`]) is a concept; hour markers (12) and strap lugs (4) have several
//! instances. Parts are painted in a fixed order, so hands occlude markers, the hub occludes hands,
//! lugs occlude the straps and the case occludes the lugs — every mask is the set of pixels where
//! that part is on top.

use crate::config::{Palette, WorldConfig};
use crate::raster::{Canvas, background, in_polygon};
use crate::rng::Rng;
use crate::vocab::PARTS;

pub const OUTER_BEZEL: usize = 0;
pub const DIAL_FACE: usize = 1;
pub const HOUR_MARKER: usize = 2;
pub const HOUR_HAND: usize = 3;
pub const MINUTE_HAND: usize = 4;
pub const SECOND_HAND: usize = 5;
pub const CENTER_HUB: usize = 6;
pub const CROWN_KNOB: usize = 7;
pub const UPPER_STRAP: usize = 8;
pub const LOWER_STRAP: usize = 9;
pub const STRAP_LUG: usize = 10;
pub const DATE_WINDOW: usize = 11;
pub const LOGO_BADGE: usize = 12;
pub const SMALL_SUBDIAL: usize = 13;
pub const KEEPER_LOOP: usize = 14;

/// Base colour per part (jittered per image).
const PART_COLOURS: [[f32; 3]; 15] = [
    [178.0, 182.0, 192.0], // outer bezel: steel
    [28.0, 38.0, 74.0],    // dial face: navy
    [238.0, 236.0, 222.0], // hour marker: ivory
    [222.0, 178.0, 64.0],  // hour hand: gold
    [110.0, 196.0, 246.0], // minute hand: sky
    [236.0, 52.0, 40.0],   // second hand: red
    [196.0, 98.0, 54.0],   // center hub: copper
    [204.0, 168.0, 96.0],  // crown knob: brass
    [112.0, 70.0, 38.0],   // upper strap: leather
    [112.0, 70.0, 38.0],   // lower strap: leather
    [120.0, 124.0, 138.0], // strap lug: dark steel
    [250.0, 226.0, 140.0], // date window: cream
    [70.0, 214.0, 132.0],  // logo badge: emerald
    [78.0, 90.0, 128.0],   // small subdial: slate
    [52.0, 34.0, 20.0],    // keeper loop: dark leather
];

/// The `v2` palette: [`PART_COLOURS`] with the three parts that sat on a neighbour of nearly their
/// own colour moved apart (see `NarrowConfig::palette`).
fn palette_colour(part: usize, palette: Palette) -> [f32; 3] {
    match (palette, part) {
        (Palette::V2, SMALL_SUBDIAL) => [196.0, 160.0, 232.0], // lilac (was slate on the navy dial)
        (Palette::V2, KEEPER_LOOP) => [18.0, 18.0, 22.0],      // black (was dark leather on leather)
        (Palette::V2, STRAP_LUG) => [60.0, 70.0, 140.0],       // cobalt (was dark steel by the steel bezel)
        _ => PART_COLOURS[part],
    }
}

/// Which part of the clock an image shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The whole object.
    Closeup,
    /// Quadrant 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right of a close-up, at 2× scale.
    Quadrant(u8),
}

impl View {
    pub fn name(&self) -> &'static str {
        match self {
            View::Closeup => "closeup",
            View::Quadrant(0) => "quadrant-tl",
            View::Quadrant(1) => "quadrant-tr",
            View::Quadrant(2) => "quadrant-bl",
            View::Quadrant(_) => "quadrant-br",
        }
    }
}

/// One instance of a part: its label in [`NarrowView::label`].
#[derive(Clone, Copy, Debug)]
pub struct PartInstance {
    pub part: usize,
    pub label: u16,
}

/// A rendered narrow image.
pub struct NarrowView {
    pub view: View,
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
    /// Top instance label per pixel (0 = background).
    pub label: Vec<u16>,
    /// Every instance painted (some may have no pixel in a quadrant crop).
    pub instances: Vec<PartInstance>,
}

impl NarrowView {
    /// Pixel count of each label.
    fn label_areas(&self) -> Vec<u64> {
        let mut a = vec![0u64; self.instances.len() + 1];
        for &l in &self.label {
            a[l as usize] += 1;
        }
        a
    }

    /// Visible pixels of `part` (all its instances).
    pub fn part_area(&self, part: usize) -> u64 {
        let a = self.label_areas();
        self.instances
            .iter()
            .filter(|i| i.part == part)
            .map(|i| a[i.label as usize])
            .sum()
    }

    /// Visible pixels per part, indexed by part id.
    pub fn part_areas(&self) -> Vec<u64> {
        let a = self.label_areas();
        let mut out = vec![0u64; PARTS.len()];
        for i in &self.instances {
            out[i.part] += a[i.label as usize];
        }
        out
    }

    /// Labels of `part`'s instances that have at least one visible pixel.
    pub fn visible_labels(&self, part: usize) -> Vec<u16> {
        let a = self.label_areas();
        self.instances
            .iter()
            .filter(|i| i.part == part && a[i.label as usize] > 0)
            .map(|i| i.label)
            .collect()
    }
}

/// A primitive in the clock's frame (unit = case radius, y down, 12 o'clock = −y).
pub(crate) enum Prim {
    Annulus(f64, f64),
    Disc(f64, f64, f64),
    Rect(f64, f64, f64, f64),
    /// A bar from the centre at clock angle `a` (radians clockwise from 12), between `along0` and
    /// `along1`, half-width `hw`.
    Bar {
        a: f64,
        along0: f64,
        along1: f64,
        hw: f64,
    },
    Poly(Vec<(f64, f64)>),
}

impl Prim {
    /// Largest distance from the clock centre of any point inside.
    pub(crate) fn extent(&self) -> f64 {
        match self {
            Prim::Annulus(_, r1) => *r1,
            Prim::Disc(cx, cy, r) => (cx * cx + cy * cy).sqrt() + r,
            Prim::Rect(x0, x1, y0, y1) => x0.abs().max(x1.abs()).hypot(y0.abs().max(y1.abs())),
            Prim::Bar {
                along0, along1, hw, ..
            } => along0.abs().max(along1.abs()).hypot(*hw),
            Prim::Poly(p) => p.iter().map(|(x, y)| x.hypot(*y)).fold(0.0, f64::max),
        }
    }

    pub(crate) fn inside(&self, x: f64, y: f64) -> bool {
        match self {
            Prim::Annulus(r0, r1) => {
                let r2 = x * x + y * y;
                r2 >= r0 * r0 && r2 <= r1 * r1
            }
            Prim::Disc(cx, cy, r) => (x - cx).powi(2) + (y - cy).powi(2) <= r * r,
            Prim::Rect(x0, x1, y0, y1) => x >= *x0 && x <= *x1 && y >= *y0 && y <= *y1,
            Prim::Bar {
                a,
                along0,
                along1,
                hw,
            } => {
                let (s, c) = a.sin_cos();
                let along = x * s - y * c;
                let across = x * c + y * s;
                along >= *along0 && along <= *along1 && across.abs() <= *hw
            }
            Prim::Poly(p) => in_polygon(x, y, p),
        }
    }
}

/// A rectangle widened about its centre so that each side is at least `min` long.
fn fatten(p: Prim, min: f64) -> Prim {
    match p {
        Prim::Rect(x0, x1, y0, y1) => {
            let grow = |a: f64, b: f64| {
                let (c, h) = ((a + b) / 2.0, ((b - a) / 2.0).max(min / 2.0));
                (c - h, c + h)
            };
            let ((x0, x1), (y0, y1)) = (grow(x0, x1), grow(y0, y1));
            Prim::Rect(x0, x1, y0, y1)
        }
        p => p,
    }
}

/// The logo badge's outline, a shield 0.26 × 0.15 case radii: on the clock (centred 0.375 above
/// the centre) or on its own (centred on the origin). With `thicken` (v2) it is scaled about its
/// centre so that its height is at least `min_w`; without, the points are v1's literals, so the
/// earlier presets' images keep their bytes.
fn logo_badge(on_clock: bool, min_w: f64, thicken: bool) -> Prim {
    let (cy, shape) = if on_clock {
        (-0.375, vec![(-0.13, -0.45), (0.13, -0.45), (0.13, -0.36), (0.0, -0.3), (-0.13, -0.36)])
    } else {
        (0.0, vec![(-0.13, -0.075), (0.13, -0.075), (0.13, 0.015), (0.0, 0.075), (-0.13, 0.015)])
    };
    let s = min_w / 0.15;
    if !thicken || s <= 1.0 {
        return Prim::Poly(shape);
    }
    Prim::Poly(shape.into_iter().map(|(x, y)| (x * s, cy + (y - cy) * s)).collect())
}

/// The small subdial's radius: 0.15 case radii, at least half the least thickness when `thicken`.
fn subdial_radius(min_w: f64, thicken: bool) -> f64 {
    if thicken { 0.15f64.max(min_w / 2.0) } else { 0.15 }
}

/// One part on its own, centred on the origin, in clock units (as large and as thick as on the
/// clock, `min_w` = the least thickness in clock units, `thicken` = [`NarrowConfig::thicken_all`]);
/// `None` for the straps, which are a strap only by where they attach to the case (above or below it).
///
/// [`NarrowConfig::thicken_all`]: crate::config::NarrowConfig::thicken_all
pub(crate) fn isolated_part(part: usize, min_w: f64, thicken: bool) -> Option<Prim> {
    let hw = |h: f64| h.max(min_w / 2.0);
    let bar = |half_len: f64, h: f64| Prim::Bar { a: 0.0, along0: -half_len.max(min_w / 2.0), along1: half_len.max(min_w / 2.0), hw: hw(h) };
    Some(match part {
        OUTER_BEZEL => Prim::Annulus(0.8, 1.0),
        DIAL_FACE => Prim::Disc(0.0, 0.0, 0.8),
        HOUR_MARKER => bar(0.09, 0.06),
        HOUR_HAND => bar(0.28, 0.075),
        MINUTE_HAND => bar(0.41, 0.045),
        SECOND_HAND => bar(0.47, 0.03),
        CENTER_HUB => Prim::Disc(0.0, 0.0, hw(0.085)),
        CROWN_KNOB => fatten(Prim::Rect(-0.1, 0.1, -0.13, 0.13), min_w),
        STRAP_LUG => fatten(Prim::Rect(-0.09, 0.09, -0.17, 0.17), min_w),
        DATE_WINDOW => fatten(Prim::Rect(-0.09, 0.09, -0.065, 0.065), min_w),
        LOGO_BADGE => logo_badge(false, min_w, thicken),
        SMALL_SUBDIAL => Prim::Disc(0.0, 0.0, subdial_radius(min_w, thicken)),
        KEEPER_LOOP => fatten(Prim::Rect(-0.5, 0.5, -0.08, 0.08), min_w),
        _ => return None,
    })
}

/// A part's colour with the per-image jitter the clock uses.
pub(crate) fn part_colour(part: usize, palette: Palette, rng: &mut Rng) -> [f32; 3] {
    let c = palette_colour(part, palette);
    let d = rng.range(-14.0, 14.0) as f32;
    std::array::from_fn(|ch| c[ch] + d + rng.range(-6.0, 6.0) as f32)
}

/// Render one narrow image from `rng`.
pub fn render_view(cfg: &WorldConfig, rng: &mut Rng, view: View) -> NarrowView {
    let n = &cfg.narrow;
    let res = cfg.resolution as usize;
    let f = if view == View::Closeup { 1 } else { 2 };
    let size = res * f;
    let side = size as f64;
    let mut canvas = Canvas::new(size, size);
    background(&mut canvas, rng, side / 112.0);

    let r = rng.range(n.min_radius, n.max_radius) * side;
    let cx = side / 2.0 + rng.range(-n.max_offset, n.max_offset) * side;
    let cy = side / 2.0 + rng.range(-n.max_offset, n.max_offset) * side;
    let rot = rng
        .range(-n.max_rotation_deg, n.max_rotation_deg)
        .to_radians();
    let tau = std::f64::consts::TAU;
    let (a_hour, a_min, a_sec) = (
        rng.range(0.0, tau),
        rng.range(0.0, tau),
        rng.range(0.0, tau),
    );
    let mut optional = [false; 5];
    for o in optional.iter_mut() {
        *o = rng.chance(n.optional_part_prob);
    }
    let [has_second, has_date, has_logo, has_subdial, has_keeper] = optional;
    let jitter: Vec<[f32; 3]> = (0..PARTS.len()).map(|p| part_colour(p, n.palette, rng)).collect();
    // Every part at least `min_thickness_px` thick (v1: 2 px; v2: two cells of the 32² mask grid).
    let min_w = n.min_thickness_px / r;
    let min_hw = min_w / 2.0;
    let rect = |x0: f64, x1: f64, y0: f64, y1: f64| fatten(Prim::Rect(x0, x1, y0, y1), min_w);

    let mut order: Vec<(usize, Prim)> = vec![];
    order.push((UPPER_STRAP, Prim::Rect(-0.44, 0.44, -9.0, -0.8)));
    order.push((LOWER_STRAP, Prim::Rect(-0.44, 0.44, 0.8, 9.0)));
    if has_keeper {
        order.push((KEEPER_LOOP, rect(-0.5, 0.5, n.keeper_loop_y, n.keeper_loop_y + 0.16)));
    }
    for (sx, sy) in [(-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0), (1.0, 1.0)] {
        let (xa, xb) = if sx < 0.0 { (-0.6, -0.42) } else { (0.42, 0.6) };
        let (ya, yb) = if sy < 0.0 {
            (-1.12, -0.78)
        } else {
            (0.78, 1.12)
        };
        order.push((STRAP_LUG, rect(xa, xb, ya, yb)));
    }
    order.push((CROWN_KNOB, rect(0.97, 1.17, -0.13, 0.13)));
    order.push((OUTER_BEZEL, Prim::Annulus(0.8, 1.0)));
    order.push((DIAL_FACE, Prim::Disc(0.0, 0.0, 0.8)));
    if has_subdial {
        order.push((SMALL_SUBDIAL, Prim::Disc(0.0, 0.36, subdial_radius(min_w, n.thicken_all))));
    }
    if has_logo {
        order.push((LOGO_BADGE, logo_badge(true, min_w, n.thicken_all)));
    }
    if has_date {
        order.push((DATE_WINDOW, rect(0.33, 0.51, -0.065, 0.065)));
    }
    // v2 keeps the four markers at 12, 3, 6 and 9 (the larger ones).
    for k in (0..12).filter(|k| n.hour_markers == 12 || k % 3 == 0) {
        let a = k as f64 * tau / 12.0;
        let (along0, hw): (f64, f64) = if k % 3 == 0 {
            (0.56, 0.06)
        } else {
            (0.6, 0.035)
        };
        order.push((
            HOUR_MARKER,
            Prim::Bar {
                a,
                along0,
                along1: 0.74f64.max(along0 + min_w),
                hw: hw.max(min_hw),
            },
        ));
    }
    order.push((
        HOUR_HAND,
        Prim::Bar {
            a: a_hour,
            along0: -0.1,
            along1: 0.46,
            hw: 0.075f64.max(min_hw),
        },
    ));
    order.push((
        MINUTE_HAND,
        Prim::Bar {
            a: a_min,
            along0: -0.12,
            along1: 0.7,
            hw: 0.045f64.max(min_hw),
        },
    ));
    if has_second {
        order.push((
            SECOND_HAND,
            Prim::Bar {
                a: a_sec,
                along0: -0.18,
                along1: 0.76,
                hw: 0.03f64.max(min_hw),
            },
        ));
    }
    order.push((CENTER_HUB, Prim::Disc(0.0, 0.0, 0.085f64.max(min_hw))));

    let (s, c) = rot.sin_cos();
    let mut instances = vec![];
    for (k, (part, prim)) in order.iter().enumerate() {
        let label = (k + 1) as u16;
        instances.push(PartInstance { part: *part, label });
        let inside = |x: f64, y: f64| {
            let dx = (x - cx) / r;
            let dy = (y - cy) / r;
            prim.inside(dx * c + dy * s, -dx * s + dy * c)
        };
        let e = prim.extent() * r + 1.0;
        canvas.paint(
            [cx - e, cy - e, cx + e, cy + e],
            inside,
            label,
            jitter[*part],
            4.0,
            rng,
        );
    }
    let canvas = match view {
        View::Closeup => canvas,
        View::Quadrant(q) => canvas.crop((q as usize % 2) * res, (q as usize / 2) * res, res, res),
    };
    NarrowView {
        view,
        width: res,
        height: res,
        rgb: canvas.to_rgb8(),
        label: canvas.label,
        instances,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance between two colours, the largest channel difference.
    fn apart(a: [f32; 3], b: [f32; 3]) -> f32 {
        (0..3).map(|c| (a[c] - b[c]).abs()).fold(0.0, f32::max)
    }

    /// Each part against the neighbours it is painted on or beside on the clock.
    const NEIGHBOURS: [(usize, usize); 4] =
        [(SMALL_SUBDIAL, DIAL_FACE), (KEEPER_LOOP, LOWER_STRAP), (STRAP_LUG, OUTER_BEZEL), (STRAP_LUG, UPPER_STRAP)];

    #[test]
    fn the_v2_palette_sets_each_part_apart_from_its_neighbours() {
        // The per-image jitter moves a channel by at most 14 + 6, so two colours 40 apart stay 0 apart at worst;
        // v2 asks for 80, v1 had pairs under 60 (the parts v2-a's oracle could not segment).
        for (a, b) in NEIGHBOURS {
            let d = apart(palette_colour(a, Palette::V2), palette_colour(b, Palette::V2));
            assert!(d >= 80.0, "{} on {}: {d}", PARTS[a], PARTS[b]);
        }
        let v1_min = NEIGHBOURS.iter().map(|&(a, b)| apart(palette_colour(a, Palette::V1), palette_colour(b, Palette::V1))).fold(f32::MAX, f32::min);
        assert!(v1_min < 60.0, "the v1 palette is kept as it was: {v1_min}");
        // Only the three named parts change.
        let changed: Vec<usize> = (0..PARTS.len()).filter(|&p| palette_colour(p, Palette::V1) != palette_colour(p, Palette::V2)).collect();
        assert_eq!(changed, vec![STRAP_LUG, SMALL_SUBDIAL, KEEPER_LOOP]);
    }
}
