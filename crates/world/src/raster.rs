//! A small rasteriser: a canvas of RGB pixels plus a label map (which instance is on top at each
//! pixel), textured backgrounds, and point-in-shape tests. A pixel belongs to a shape when its
//! centre is inside; there is no anti-aliasing, so the label map is the exact set of painted pixels.

use crate::rng::Rng;

/// RGB pixels (f32 while painting) and the top instance label per pixel (0 = background).
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<[f32; 3]>,
    pub label: Vec<u16>,
}

impl Canvas {
    pub fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            rgb: vec![[0.0; 3]; width * height],
            label: vec![0; width * height],
        }
    }

    /// Paint `label` with `colour` (+ per-pixel texture of ±`noise`) wherever `inside(x, y)` holds for
    /// the pixel centre, within the pixel box `[x0, x1) × [y0, y1)` (clipped to the canvas).
    pub fn paint(
        &mut self,
        bbox: [f64; 4],
        inside: impl Fn(f64, f64) -> bool,
        label: u16,
        colour: [f32; 3],
        noise: f32,
        rng: &mut Rng,
    ) {
        let x0 = (bbox[0].floor().max(0.0)) as usize;
        let y0 = (bbox[1].floor().max(0.0)) as usize;
        let x1 = (bbox[2].ceil().max(0.0) as usize).min(self.width);
        let y1 = (bbox[3].ceil().max(0.0) as usize).min(self.height);
        for y in y0..y1 {
            for x in x0..x1 {
                if inside(x as f64 + 0.5, y as f64 + 0.5) {
                    let i = y * self.width + x;
                    self.label[i] = label;
                    let n = if noise > 0.0 {
                        (rng.u01() as f32 * 2.0 - 1.0) * noise
                    } else {
                        0.0
                    };
                    self.rgb[i] = [colour[0] + n, colour[1] + n, colour[2] + n];
                }
            }
        }
    }

    /// Paint `label` with `colour` (+ texture of ±`noise`) on every pixel where `mask` is set.
    pub fn paint_mask(
        &mut self,
        mask: &[bool],
        label: u16,
        colour: [f32; 3],
        noise: f32,
        rng: &mut Rng,
    ) {
        for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
            self.label[i] = label;
            let n = if noise > 0.0 {
                (rng.u01() as f32 * 2.0 - 1.0) * noise
            } else {
                0.0
            };
            self.rgb[i] = [colour[0] + n, colour[1] + n, colour[2] + n];
        }
    }

    /// 8-bit RGB bytes (row-major, clamped and rounded).
    pub fn to_rgb8(&self) -> Vec<u8> {
        self.rgb
            .iter()
            .flat_map(|p| p.map(|v| v.round().clamp(0.0, 255.0) as u8))
            .collect()
    }

    /// The `w × h` window at (`x0`, `y0`) as a new canvas.
    pub fn crop(&self, x0: usize, y0: usize, w: usize, h: usize) -> Canvas {
        let mut c = Canvas::new(w, h);
        for y in 0..h {
            let src = (y0 + y) * self.width + x0;
            c.rgb[y * w..(y + 1) * w].copy_from_slice(&self.rgb[src..src + w]);
            c.label[y * w..(y + 1) * w].copy_from_slice(&self.label[src..src + w]);
        }
        c
    }
}

/// Fill with a muted, low-contrast textured background: a low-frequency colour field, then
/// stripes, checks or nothing, then pixel noise. `scale` is pixels per 112-px unit.
pub fn background(c: &mut Canvas, rng: &mut Rng, scale: f64) {
    let grey = rng.range(72.0, 168.0);
    let base: [f64; 3] = std::array::from_fn(|_| grey + rng.range(-20.0, 20.0));
    // Two low-frequency waves per channel.
    let waves: Vec<[f64; 5]> = (0..3)
        .flat_map(|_| {
            (0..2)
                .map(|_| {
                    let th = rng.range(0.0, std::f64::consts::TAU);
                    let period = rng.range(60.0, 160.0) * scale;
                    [
                        th.cos() / period,
                        th.sin() / period,
                        rng.range(0.0, std::f64::consts::TAU),
                        rng.range(4.0, 12.0),
                        0.0,
                    ]
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let kind = rng.below(3);
    let th = rng.range(0.0, std::f64::consts::PI);
    let period = rng.range(8.0, 20.0) * scale;
    let amp = rng.range(7.0, 16.0);
    let cell = rng.range(8.0, 16.0) * scale;
    let phase = rng.range(0.0, std::f64::consts::TAU);
    let noise = rng.range(3.0, 8.0);
    for y in 0..c.height {
        for x in 0..c.width {
            let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
            let pattern = match kind {
                0 => 0.0,
                1 => {
                    amp * ((fx * th.cos() + fy * th.sin()) / period * std::f64::consts::TAU + phase)
                        .sin()
                }
                _ => {
                    let odd =
                        ((fx / cell).floor() as i64 + (fy / cell).floor() as i64).rem_euclid(2);
                    if odd == 1 { amp * 0.6 } else { -amp * 0.6 }
                }
            };
            let n = (rng.u01() * 2.0 - 1.0) * noise;
            let px = std::array::from_fn(|ch| {
                let mut v = base[ch] + pattern + n;
                for w in &waves[ch * 2..ch * 2 + 2] {
                    v += w[3] * ((fx * w[0] + fy * w[1]) * std::f64::consts::TAU + w[2]).sin();
                }
                v as f32
            });
            c.rgb[y * c.width + x] = px;
        }
    }
}

/// Even–odd point-in-polygon test.
pub fn in_polygon(px: f64, py: f64, poly: &[(f64, f64)]) -> bool {
    let mut inside = false;
    let n = poly.len();
    let mut j = n - 1;
    for i in 0..n {
        let (xi, yi) = poly[i];
        let (xj, yj) = poly[j];
        if (yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Regular polygon with `n` vertices on the unit circle scaled by `r`, first vertex at angle `a0`
/// (radians, y down).
pub fn regular_polygon(n: usize, r: f64, a0: f64) -> Vec<(f64, f64)> {
    (0..n)
        .map(|k| {
            let a = a0 + k as f64 * std::f64::consts::TAU / n as f64;
            (r * a.cos(), r * a.sin())
        })
        .collect()
}

/// Whether the local point (`x`, `y`) (unit radius, y down, unrotated) is inside broad shape `shape`
/// (an index into [`crate::vocab::SHAPES`]). Every shape fits in radius ~1.1.
pub fn in_broad_shape(shape: usize, x: f64, y: f64) -> bool {
    let r2 = x * x + y * y;
    match shape {
        0 => r2 <= 1.0,                          // circle
        1 => x.abs() <= 0.78 && y.abs() <= 0.78, // square
        2 => in_polygon(x, y, &TRIANGLE),        // triangle
        3 => in_polygon(x, y, &STAR),            // star
        4 => (0.3025..=1.0).contains(&r2),       // ring (inner radius 0.55)
        5 => (x.abs() <= 0.33 && y.abs() <= 0.95) || (y.abs() <= 0.33 && x.abs() <= 0.95), // cross
        6 => x.abs() / 0.7 + y.abs() <= 1.0,     // diamond
        7 => {
            // heart: (u² + v² − 1)³ − u² v³ ≤ 0 with v up
            let u = x * 1.12;
            let v = -y * 1.12 + 0.12;
            let a = u * u + v * v - 1.0;
            a * a * a - u * u * v * v * v <= 0.0
        }
        8 => in_polygon(x, y, &ARROW), // arrow (pointing right)
        9 => r2 <= 1.0 && (x - 0.42) * (x - 0.42) + y * y > 0.72 * 0.72, // crescent
        _ => false,
    }
}

use std::f64::consts::FRAC_PI_2;
use std::sync::LazyLock;

static TRIANGLE: LazyLock<Vec<(f64, f64)>> = LazyLock::new(|| {
    regular_polygon(3, 1.05, -FRAC_PI_2)
        .into_iter()
        .map(|(a, b)| (a, b + 0.12))
        .collect()
});
/// Five outer points at radius 1.05, inner at 0.46.
static STAR: LazyLock<Vec<(f64, f64)>> = LazyLock::new(|| {
    (0..10)
        .map(|k| {
            let a = -FRAC_PI_2 + k as f64 * std::f64::consts::PI / 5.0;
            let r = if k % 2 == 0 { 1.05 } else { 0.46 };
            (r * a.cos(), r * a.sin() + 0.05)
        })
        .collect()
});
static ARROW: LazyLock<Vec<(f64, f64)>> = LazyLock::new(|| {
    vec![
        (-0.95, -0.28),
        (0.12, -0.28),
        (0.12, -0.72),
        (0.98, 0.0),
        (0.12, 0.72),
        (0.12, 0.28),
        (-0.95, 0.28),
    ]
});
