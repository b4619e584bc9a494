//! [`WorldConfig`]: resolution, scene statistics and split sizes (serde; every field has a default,
//! unknown fields are errors so that a typo in a config file is caught).

use serde::{Deserialize, Serialize};

use crate::error::{Result, WorldError};
use crate::vocab::{COLOURS, SHAPES};

/// Everything that shapes a generated world except the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorldConfig {
    /// Side of every image in pixels (square; the tiny model's input is 112).
    pub resolution: u32,
    pub broad: BroadConfig,
    pub narrow: NarrowConfig,
    pub splits: SplitSizes,
}

/// The broad domain (stand-in for SA-Co / LVIS): colour × shape objects on textured backgrounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BroadConfig {
    /// How many of the colours (red, green, blue, yellow, purple, orange, teal, pink, white, brown) are used.
    pub colours: usize,
    /// How many of the shapes (circle, square, triangle, star, ring, cross, diamond, heart, arrow, crescent) are used.
    pub shapes: usize,
    pub min_objects: usize,
    pub max_objects: usize,
    /// Object radius range as a fraction of the image side.
    pub min_radius: f64,
    pub max_radius: f64,
    /// Largest rotation either way, degrees.
    pub max_rotation_deg: f64,
    /// Chance that an object (after the first) is placed over an earlier one.
    pub occlusion_prob: f64,
    /// Least share of an occluded object's pixels that stays visible.
    pub min_visible: f64,
    /// Chance that an object (after the first) repeats a concept already in the image.
    pub repeat_prob: f64,
    /// Share of negatives that share a colour or a shape with an object in the image.
    pub hard_negative_share: f64,
    /// Share of `broad-pretrain` images that are *part scenes*: one or two broad objects plus one
    /// or two isolated clock parts (never an assembled clock) named by their part names, with an
    /// absent part name asked beside them. 0 = the v1 world (the base never sees the narrow words).
    pub part_scene_share: f64,
}

/// The narrow task (stand-in for the watch): a wristwatch-like clock whose parts are concepts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NarrowConfig {
    /// Case radius range as a fraction of the image side (close-up scale).
    pub min_radius: f64,
    pub max_radius: f64,
    /// Largest offset of the case centre from the image centre, as a fraction of the side.
    pub max_offset: f64,
    pub max_rotation_deg: f64,
    /// Chance that each optional part (second hand, date window, logo badge, small subdial, keeper loop) is there.
    pub optional_part_prob: f64,
    /// Least visible pixels for a part to be used as a positive (parts with fewer but some pixels are
    /// used as neither positive nor negative).
    pub min_positive_area: u64,
    /// Least thickness of every part in a close-up, in pixels. v2: 14, one 14-px token of the
    /// model's 8 × 8 grid at 112 px (v2-b's 11 px, three cells of the 32² mask grid, left the hub,
    /// the hour hand, the markers and the logo undetected after the fine-tune); v2-a: 7 (two mask
    /// cells); v1: 2.
    pub min_thickness_px: f64,
    /// Hour markers drawn (12 in v1; v2 keeps 4, at 12, 3, 6 and 9, so that no part has more
    /// instances than a few of the model's 8 queries).
    pub hour_markers: usize,
    /// The parts' colours: `v1` (v1 and v2-a) or `v2`, where the three parts that sat on a
    /// neighbour of nearly their own colour (small subdial slate on the navy dial, keeper loop
    /// dark leather on the strap, strap lug dark steel beside the steel bezel) get colours that
    /// stand apart, so every part's edge is in the pixels (v2-a's oracle IoU for them: 0.00–0.07).
    pub palette: Palette,
    /// Top edge of the keeper loop below the case centre, in case radii. v1–v2-b: 1.3, which at
    /// v2-b's larger case put the loop at or past the close-ups' lower edge (its oracle IoU 0.00);
    /// v2: 1.04, just below the case, inside the frame.
    pub keeper_loop_y: f64,
    /// Whether the logo badge and the small subdial obey `min_thickness_px` too (v2). v1–v2-b
    /// thickened only bars and rectangles, so the logo stayed 6 px tall in a close-up and was
    /// never detected (v2-b: 0 of 11 after the fine-tune).
    pub thicken_all: bool,
}

/// The narrow parts' colour table (see [`NarrowConfig::palette`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Palette {
    V1,
    #[default]
    V2,
}

/// How many images / pairs each split gets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitSizes {
    pub broad_pretrain_images: usize,
    pub broad_pretrain_negatives_per_image: usize,
    pub broad_eval_images: usize,
    pub broad_eval_positives_per_image: usize,
    pub broad_eval_negatives_per_image: usize,
    pub broad_positive_eval_images: usize,
    pub broad_positive_eval_per_image: usize,
    pub narrow_train_closeups: usize,
    pub narrow_train_quadrants: usize,
    pub narrow_eval_closeups: usize,
    pub narrow_eval_quadrants: usize,
    pub narrow_eval_per_image: usize,
    pub narrow_negative_quadrants: usize,
    pub narrow_negatives_per_quadrant: usize,
    pub probe_images: usize,
    /// How many broad-eval noun phrases form the probe's third prompt group.
    pub probe_broad_eval_phrases: usize,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            resolution: 112,
            broad: BroadConfig::default(),
            narrow: NarrowConfig::default(),
            splits: SplitSizes::default(),
        }
    }
}

impl Default for BroadConfig {
    fn default() -> Self {
        BroadConfig {
            colours: 8,
            shapes: 8,
            min_objects: 1,
            max_objects: 4,
            min_radius: 0.10,
            max_radius: 0.19,
            max_rotation_deg: 20.0,
            occlusion_prob: 0.3,
            min_visible: 0.5,
            repeat_prob: 0.25,
            hard_negative_share: 0.5,
            part_scene_share: 0.15,
        }
    }
}

impl Default for NarrowConfig {
    fn default() -> Self {
        NarrowConfig {
            min_radius: 0.34,
            max_radius: 0.38,
            max_offset: 0.03,
            max_rotation_deg: 12.0,
            optional_part_prob: 0.75,
            min_positive_area: 6,
            min_thickness_px: 14.0,
            hour_markers: 4,
            palette: Palette::V2,
            keeper_loop_y: 1.04,
            thicken_all: true,
        }
    }
}

impl Default for SplitSizes {
    fn default() -> Self {
        SplitSizes {
            broad_pretrain_images: 2000,
            broad_pretrain_negatives_per_image: 3,
            broad_eval_images: 500,
            broad_eval_positives_per_image: 1,
            broad_eval_negatives_per_image: 2,
            broad_positive_eval_images: 120,
            broad_positive_eval_per_image: 2,
            narrow_train_closeups: 150,
            narrow_train_quadrants: 150,
            narrow_eval_closeups: 20,
            narrow_eval_quadrants: 20,
            narrow_eval_per_image: 5,
            narrow_negative_quadrants: 300,
            narrow_negatives_per_quadrant: 4,
            probe_images: 20,
            probe_broad_eval_phrases: 24,
        }
    }
}

impl WorldConfig {
    /// A named world: `v2` (the default: part scenes in 15 % of pretraining, 3 negatives per
    /// pretraining image, close-ups with the case at 0.34–0.38 of the side and every part — logo
    /// and subdial included — at least one token thick (14 px), the keeper loop just below the
    /// case, 4 hour markers, the `v2` palette, broad-eval with 500 positives and 1,000 negatives);
    /// `v2b` (the second v2 candidate's world: case 0.34–0.40, parts ≥ 11 px, logo and subdial
    /// unthickened, the keeper loop at 1.3 case radii); `v2a` (the first: 12 % part scenes, 2
    /// negatives per image, case 0.27–0.34, parts ≥ 7 px, the `v1` palette); or `v1` (the first
    /// world, kept as an ablation: the narrow words never occur in pretraining, thin parts, 12
    /// markers, broad-eval 100 + 100). docs/world.md logs what each measured.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "v2" => Ok(WorldConfig::default()),
            "v2b" => Ok(WorldConfig::v2b()),
            "v2a" => Ok(WorldConfig::v2a()),
            "v1" => Ok(WorldConfig::v1()),
            _ => Err(WorldError::Config(format!("unknown world preset `{name}` (known: v2, v2b, v2a, v1)"))),
        }
    }

    /// The second v2 candidate's world (see [`WorldConfig::preset`]).
    pub fn v2b() -> Self {
        let mut c = WorldConfig::default();
        c.narrow.max_radius = 0.40;
        c.narrow.min_thickness_px = 11.0;
        c.narrow.keeper_loop_y = 1.3;
        c.narrow.thicken_all = false;
        c
    }

    /// The first v2 candidate's world (see [`WorldConfig::preset`]).
    pub fn v2a() -> Self {
        let mut c = WorldConfig::v2b();
        c.broad.part_scene_share = 0.12;
        c.splits.broad_pretrain_negatives_per_image = 2;
        c.narrow.min_radius = 0.27;
        c.narrow.max_radius = 0.34;
        c.narrow.max_offset = 0.05;
        c.narrow.min_thickness_px = 7.0;
        c.narrow.palette = Palette::V1;
        c
    }

    /// The first world (see [`WorldConfig::preset`]).
    pub fn v1() -> Self {
        let mut c = WorldConfig::v2a();
        c.broad.part_scene_share = 0.0;
        c.narrow.min_thickness_px = 2.0;
        c.narrow.hour_markers = 12;
        c.splits.broad_eval_images = 100;
        c.splits.broad_eval_negatives_per_image = 1;
        c
    }

    /// A tiny world for tests and smoke runs (same statistics, a few images per split).
    pub fn quick() -> Self {
        WorldConfig {
            splits: SplitSizes {
                broad_pretrain_images: 24,
                broad_eval_images: 8,
                broad_positive_eval_images: 8,
                narrow_train_closeups: 4,
                narrow_train_quadrants: 4,
                narrow_eval_closeups: 2,
                narrow_eval_quadrants: 2,
                narrow_negative_quadrants: 8,
                probe_images: 4,
                probe_broad_eval_phrases: 8,
                ..SplitSizes::default()
            },
            ..WorldConfig::default()
        }
    }

    /// Read a config file: TOML when the name ends in `.toml`, JSON otherwise; missing fields take
    /// their defaults, unknown fields are errors. The result is validated.
    pub fn load(path: &std::path::Path) -> Result<WorldConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| WorldError::io(path, e))?;
        let cfg: WorldConfig = if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(&text)
                .map_err(|e| WorldError::Config(format!("{}: {e}", path.display())))?
        } else {
            serde_json::from_str(&text)
                .map_err(|e| WorldError::Config(format!("{}: {e}", path.display())))?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check ranges; the message names the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(WorldError::Config(m));
        if !(32..=4096).contains(&self.resolution) {
            return bad(format!(
                "resolution must be in 32..=4096, got {}",
                self.resolution
            ));
        }
        let b = &self.broad;
        if !(2..=COLOURS.len()).contains(&b.colours) {
            return bad(format!(
                "broad.colours must be in 2..={}, got {}",
                COLOURS.len(),
                b.colours
            ));
        }
        if !(2..=SHAPES.len()).contains(&b.shapes) {
            return bad(format!(
                "broad.shapes must be in 2..={}, got {}",
                SHAPES.len(),
                b.shapes
            ));
        }
        if b.min_objects < 1 || b.max_objects < b.min_objects || b.max_objects > 6 {
            return bad(format!(
                "broad objects must satisfy 1 <= min_objects <= max_objects <= 6, got {}..{}",
                b.min_objects, b.max_objects
            ));
        }
        if !(0.03..=0.3).contains(&b.min_radius)
            || b.max_radius < b.min_radius
            || b.max_radius > 0.3
        {
            return bad(format!(
                "broad radii must satisfy 0.03 <= min_radius <= max_radius <= 0.3, got {}..{}",
                b.min_radius, b.max_radius
            ));
        }
        for (name, v) in [
            ("broad.occlusion_prob", b.occlusion_prob),
            ("broad.min_visible", b.min_visible),
            ("broad.repeat_prob", b.repeat_prob),
            ("broad.hard_negative_share", b.hard_negative_share),
            ("broad.part_scene_share", b.part_scene_share),
            ("narrow.optional_part_prob", self.narrow.optional_part_prob),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} must be in [0, 1], got {v}"));
            }
        }
        if b.min_visible < 0.2 {
            return bad(format!(
                "broad.min_visible must be at least 0.2, got {}",
                b.min_visible
            ));
        }
        let n = &self.narrow;
        if !(0.12..=0.4).contains(&n.min_radius)
            || n.max_radius < n.min_radius
            || n.max_radius > 0.4
        {
            return bad(format!(
                "narrow radii must satisfy 0.12 <= min_radius <= max_radius <= 0.4, got {}..{}",
                n.min_radius, n.max_radius
            ));
        }
        if !(0.0..=0.15).contains(&n.max_offset) {
            return bad(format!(
                "narrow.max_offset must be in [0, 0.15], got {}",
                n.max_offset
            ));
        }
        if !(0.0..=45.0).contains(&n.max_rotation_deg)
            || !(0.0..=45.0).contains(&b.max_rotation_deg)
        {
            return bad("max_rotation_deg must be in [0, 45]".into());
        }
        if !(1.0..=16.0).contains(&n.min_thickness_px) {
            return bad(format!("narrow.min_thickness_px must be in [1, 16], got {}", n.min_thickness_px));
        }
        if !(0.8..=2.0).contains(&n.keeper_loop_y) {
            return bad(format!("narrow.keeper_loop_y must be in [0.8, 2], got {}", n.keeper_loop_y));
        }
        if ![4, 12].contains(&n.hour_markers) {
            return bad(format!("narrow.hour_markers must be 4 or 12, got {}", n.hour_markers));
        }
        let s = &self.splits;
        if s.probe_images == 0 || s.broad_eval_images == 0 {
            return bad(
                "splits.probe_images and splits.broad_eval_images must be at least 1".into(),
            );
        }
        Ok(())
    }
}
