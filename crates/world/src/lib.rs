//! A generated concept-grounding world on which the post's story can be re-enacted with a tiny SAM3:
//! a *broad* domain (stand-in for SA-Co / LVIS) of 1–4 solid colour × shape objects ("red circle",
//! 8 × 8 concepts by default) over muted textured backgrounds, with repeats and occlusion, and a
//! *narrow* task (stand-in for the watch) — a wristwatch-like clock whose 15 parts ("outer bezel",
//! "minute hand", …, sharing no word with the broad vocabulary) are concepts, shown as close-ups and
//! quadrant crops. [`generate`] renders it with a pure-Rust rasteriser (a pixel belongs to a shape when
//! its centre is inside, so masks are exact and boxes are their tight boxes) and writes PNGs plus
//! SA-Co/Gold ground truth that `sam3lab_eval::coco::load_gt` reads: broad-pretrain, broad-eval,
//! broad-positive-eval, narrow-train, narrow-eval, narrow-negatives and the probe set, with a
//! `world.json` manifest (config, seed, vocabularies, counts, sha256 of every file). Every image has
//! its own ChaCha8 stream keyed by (seed, split, index), so the same seed gives byte-identical files.

pub mod broad;
pub mod config;
pub mod error;
pub mod narrow;
pub mod raster;
pub mod rng;
pub mod vocab;
pub mod writer;

pub use config::{BroadConfig, NarrowConfig, Palette, SplitSizes, WorldConfig};
pub use error::{Result, WorldError};
pub use rng::Rng;
pub use writer::{
    FORMAT, PROBE_GROUPS, SPLITS, SplitInfo, Vocabulary, WorldManifest, generate, is_part_scene,
    generate_with_threads,
};
