//! The broad domain: 1–N colour × shape objects over a textured background, some placed over
//! earlier ones (occlusion), some repeating a concept already in the image (several instances).

use crate::config::WorldConfig;
use crate::raster::{Canvas, background, in_broad_shape};
use crate::rng::Rng;
use crate::narrow::{PartInstance, isolated_part, part_colour};
use crate::vocab::{COLOURS, Concept, PARTS, concepts};

/// One object as placed, with its full (unoccluded) shape mask.
#[derive(Clone, Debug)]
pub struct BroadObject {
    pub concept: Concept,
    pub cx: f64,
    pub cy: f64,
    pub radius: f64,
    /// Radians.
    pub rotation: f64,
    /// Its label in [`BroadScene::label`] (objects are painted in order, label = index + 1).
    pub label: u16,
    /// Every pixel its shape covers, row-major, before later objects are painted over it.
    pub full_mask: Vec<bool>,
}

/// A rendered broad image.
pub struct BroadScene {
    pub width: usize,
    pub height: usize,
    /// Row-major RGB bytes.
    pub rgb: Vec<u8>,
    /// Top object label per pixel (0 = background).
    pub label: Vec<u16>,
    /// In painting order (later objects occlude earlier ones).
    pub objects: Vec<BroadObject>,
}

impl BroadScene {
    /// The visible pixels of object `k` (row-major 0/1).
    pub fn visible_mask(&self, k: usize) -> Vec<u8> {
        let l = self.objects[k].label;
        self.label.iter().map(|&v| (v == l) as u8).collect()
    }

    /// The distinct concepts in the image, in order of first appearance.
    pub fn concepts_present(&self) -> Vec<Concept> {
        let mut v: Vec<Concept> = vec![];
        for o in &self.objects {
            if !v.contains(&o.concept) {
                v.push(o.concept);
            }
        }
        v
    }

    /// Labels of the objects showing `concept`.
    pub fn labels_of(&self, concept: Concept) -> Vec<u16> {
        self.objects
            .iter()
            .filter(|o| o.concept == concept)
            .map(|o| o.label)
            .collect()
    }
}

/// The full mask of a shape at (`cx`, `cy`) with radius `r` and rotation `rot` on a `res × res` canvas.
pub fn shape_mask(shape: usize, cx: f64, cy: f64, r: f64, rot: f64, res: usize) -> Vec<bool> {
    let (s, c) = rot.sin_cos();
    let mut m = vec![false; res * res];
    let ext = 1.2 * r;
    let y0 = (cy - ext).floor().max(0.0) as usize;
    let y1 = ((cy + ext).ceil().max(0.0) as usize).min(res);
    let x0 = (cx - ext).floor().max(0.0) as usize;
    let x1 = ((cx + ext).ceil().max(0.0) as usize).min(res);
    for y in y0..y1 {
        for x in x0..x1 {
            let dx = (x as f64 + 0.5 - cx) / r;
            let dy = (y as f64 + 0.5 - cy) / r;
            // rotate by -rot into the shape's frame
            let lx = dx * c + dy * s;
            let ly = -dx * s + dy * c;
            if in_broad_shape(shape, lx, ly) {
                m[y * res + x] = true;
            }
        }
    }
    m
}

/// Render one broad image from `rng`.
pub fn render_scene(cfg: &WorldConfig, rng: &mut Rng) -> BroadScene {
    let b = &cfg.broad;
    render(cfg, rng, (b.min_objects, b.max_objects), 0).0
}

/// Render a *part scene* (world v2's pretraining slice): one or two broad objects, then one or two
/// isolated clock parts — each as large and as thick as on a close-up's clock, at a random
/// rotation, never overlapping anything — so the narrow part names are grounded as ordinary
/// objects. Never an assembled clock: parts come one at a time, at most two different ones, and
/// never the straps (a strap is one only by where it attaches to the case).
pub fn render_part_scene(cfg: &WorldConfig, rng: &mut Rng) -> (BroadScene, Vec<PartInstance>) {
    render(cfg, rng, (1, cfg.broad.max_objects.min(2)), 2)
}

fn render(cfg: &WorldConfig, rng: &mut Rng, objects: (usize, usize), max_parts: usize) -> (BroadScene, Vec<PartInstance>) {
    let b = &cfg.broad;
    let res = cfg.resolution as usize;
    let side = res as f64;
    let mut canvas = Canvas::new(res, res);
    background(&mut canvas, rng, side / 112.0);
    let all = concepts(b.colours, b.shapes);
    let n = rng.int(objects.0, objects.1);
    let mut objects: Vec<BroadObject> = vec![];
    // Current top label per pixel and visible pixel count per object, for the occlusion checks.
    let mut top = vec![0u16; res * res];
    let mut visible: Vec<u64> = vec![];
    let min_px = (12.0 * (side / 112.0).powi(2)).max(4.0) as u64;
    for i in 0..n {
        let concept = if i > 0 && rng.chance(b.repeat_prob) {
            objects[rng.below(objects.len())].concept
        } else {
            let free: Vec<Concept> = all
                .iter()
                .copied()
                .filter(|c| !objects.iter().any(|o| o.concept == *c))
                .collect();
            free[rng.below(free.len())]
        };
        let overlap = i > 0 && rng.chance(b.occlusion_prob);
        for _attempt in 0..60 {
            let r = rng.range(b.min_radius, b.max_radius) * side;
            let rot = rng
                .range(-b.max_rotation_deg, b.max_rotation_deg)
                .to_radians();
            let margin = 1.12 * r + 1.0;
            let cx = rng.range(margin, side - margin);
            let cy = rng.range(margin, side - margin);
            let dists: Vec<(f64, f64)> = objects
                .iter()
                .map(|o| {
                    (
                        ((o.cx - cx).powi(2) + (o.cy - cy).powi(2)).sqrt(),
                        o.radius + r,
                    )
                })
                .collect();
            if overlap {
                if !dists.iter().any(|&(d, rr)| d < 0.8 * rr && d > 0.3 * rr) {
                    continue;
                }
            } else if dists.iter().any(|&(d, rr)| d < 1.12 * rr + 2.0) {
                continue;
            }
            let mask = shape_mask(concept.shape, cx, cy, r, rot, res);
            let area = mask.iter().filter(|m| **m).count() as u64;
            if area < min_px {
                continue;
            }
            // What each earlier object would lose under this one.
            let mut lose = vec![0u64; objects.len()];
            for (p, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
                if top[p] > 0 {
                    lose[top[p] as usize - 1] += 1;
                }
            }
            let ok = objects.iter().enumerate().all(|(j, o)| {
                let full = o.full_mask.iter().filter(|m| **m).count() as f64;
                let left = visible[j] - lose[j];
                left as f64 >= b.min_visible * full && left >= min_px
            });
            // No occlusion between objects of one colour: their boundary would not be visible.
            let same_colour = objects.iter().any(|o| {
                o.concept.colour == concept.colour
                    && o.full_mask.iter().zip(&mask).any(|(a, b)| *a && *b)
            });
            if !ok || same_colour || (overlap && lose.iter().all(|&l| l == 0)) {
                continue;
            }
            let label = (objects.len() + 1) as u16;
            for (p, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
                top[p] = label;
            }
            for (j, l) in lose.iter().enumerate() {
                visible[j] -= l;
            }
            visible.push(area);
            objects.push(BroadObject {
                concept,
                cx,
                cy,
                radius: r,
                rotation: rot,
                label,
                full_mask: mask,
            });
            break;
        }
    }
    for o in &objects {
        let base = COLOURS[o.concept.colour].1;
        let colour: [f32; 3] =
            std::array::from_fn(|ch| (base[ch] as f64 + rng.range(-12.0, 12.0)) as f32);
        canvas.paint_mask(&o.full_mask, o.label, colour, 6.0, rng);
    }
    debug_assert_eq!(canvas.label, top);
    let parts = if max_parts > 0 {
        place_parts(cfg, rng, &mut canvas, objects.len() as u16 + 1, max_parts)
    } else {
        vec![]
    };
    let scene = BroadScene {
        width: res,
        height: res,
        rgb: canvas.to_rgb8(),
        label: canvas.label,
        objects,
    };
    (scene, parts)
}

/// Paint 1..=`max_parts` different isolated parts where nothing is painted yet (labels from
/// `first_label`); a part that finds no free place in 60 tries is left out.
fn place_parts(cfg: &WorldConfig, rng: &mut Rng, canvas: &mut Canvas, first_label: u16, max_parts: usize) -> Vec<PartInstance> {
    let nc = &cfg.narrow;
    let side = canvas.width as f64;
    let mut pool: Vec<usize> = (0..PARTS.len()).filter(|&p| isolated_part(p, 0.0, false).is_some()).collect();
    let k = rng.int(1, max_parts);
    let mut placed = vec![];
    for _ in 0..k {
        let part = pool.remove(rng.below(pool.len()));
        for _attempt in 0..60 {
            // The clock radius this part is drawn at: close-up scale, large parts (bezel, dial,
            // keeper loop) somewhat smaller so they fit beside other objects, small ones up to the
            // quadrant crops' 2x.
            let big = isolated_part(part, 0.0, false).is_some_and(|p| p.extent() > 0.45);
            let scale = if big { rng.range(0.55, 1.0) } else { rng.range(0.8, 2.0) };
            let r = rng.range(nc.min_radius, nc.max_radius) * side * scale;
            let Some(prim) = isolated_part(part, nc.min_thickness_px / r, nc.thicken_all) else { break };
            let rot = rng.range(0.0, std::f64::consts::TAU);
            let e = prim.extent() * r + 1.0;
            if 2.0 * e >= side - 2.0 {
                continue;
            }
            let (cx, cy) = (rng.range(e, side - e), rng.range(e, side - e));
            let (s, c) = rot.sin_cos();
            let inside = |x: f64, y: f64| {
                let (dx, dy) = ((x - cx) / r, (y - cy) / r);
                prim.inside(dx * c + dy * s, -dx * s + dy * c)
            };
            let (x0, y0) = ((cx - e).floor().max(0.0) as usize, (cy - e).floor().max(0.0) as usize);
            let (x1, y1) = (((cx + e).ceil() as usize).min(canvas.width), ((cy + e).ceil() as usize).min(canvas.height));
            let mut area = 0u64;
            let mut clash = false;
            for y in y0..y1 {
                for x in x0..x1 {
                    if inside(x as f64 + 0.5, y as f64 + 0.5) {
                        area += 1;
                        clash |= canvas.label[y * canvas.width + x] != 0;
                    }
                }
            }
            if clash || area < nc.min_positive_area.max(12) {
                continue;
            }
            let label = first_label + placed.len() as u16;
            let colour = part_colour(part, nc.palette, rng);
            canvas.paint([cx - e, cy - e, cx + e, cy + e], inside, label, colour, 4.0, rng);
            placed.push(PartInstance { part, label });
            break;
        }
    }
    placed
}
