//! Serde types for SA-Co/Gold ground truth (COCO-style, one "image" per (image, noun phrase) pair)
//! and COCO results predictions, plus loading with clear errors.

use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{EvalError, Result};
use crate::rle::Rle;

/// A SA-Co/Gold ground-truth file (`gold_*_merged_{a,b,c}_release_test.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GtDataset {
    pub images: Vec<GtImage>,
    #[serde(default)]
    pub annotations: Vec<GtAnnotation>,
    #[serde(default)]
    pub categories: Vec<Category>,
}

/// One (image, noun phrase) pair.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GtImage {
    pub id: i64,
    pub file_name: String,
    pub height: u32,
    pub width: u32,
    /// The noun phrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_input: Option<String>,
    /// 0/1 or a boolean in the files; only exhaustive entries are scored.
    #[serde(deserialize_with = "truthy")]
    pub is_instance_exhaustive: bool,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "truthy_opt"
    )]
    pub is_pixel_exhaustive: Option<bool>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GtAnnotation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    pub image_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segmentation: Option<Segmentation>,
    /// `[x, y, w, h]` (SA-Co/Gold stores it normalised by the image size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<f64>,
    #[serde(default, deserialize_with = "truthy")]
    pub iscrowd: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Category {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One prediction in the COCO results format.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Prediction {
    pub image_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segmentation: Option<Segmentation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<Vec<f64>>,
    pub score: f64,
}

/// A COCO segmentation: RLE with compressed or uncompressed counts, or polygons (read so that the
/// error can say what it is; not supported).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Segmentation {
    Rle { size: [u32; 2], counts: RleCounts },
    Polygons(Vec<Vec<f64>>),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RleCounts {
    Compressed(String),
    Uncompressed(Vec<u32>),
}

impl Segmentation {
    /// A compressed-RLE segmentation of `rle` (what pycocotools' `encode` returns, as text).
    pub fn from_rle(rle: &Rle) -> Segmentation {
        Segmentation::Rle {
            size: [rle.height, rle.width],
            counts: RleCounts::Compressed(rle.to_compressed()),
        }
    }

    /// Decode, checking the RLE against the size of the image it belongs to.
    pub fn decode(&self, height: u32, width: u32) -> std::result::Result<Rle, String> {
        match self {
            Segmentation::Polygons(_) => {
                Err("polygon segmentations are not supported; convert them to RLE".into())
            }
            Segmentation::Rle { size, counts } => {
                if size[0] != height || size[1] != width {
                    return Err(format!(
                        "RLE size is {}x{} (h x w) but the image is {height}x{width}",
                        size[0], size[1]
                    ));
                }
                match counts {
                    RleCounts::Compressed(s) => Rle::from_compressed(height, width, s),
                    RleCounts::Uncompressed(c) => Rle::from_counts(height, width, c.clone()),
                }
            }
        }
    }
}

/// Python truthiness of a JSON flag: booleans, and numbers (non-zero = true).
fn truthy<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Num(f64),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Num(n) => n != 0.0,
    })
}

fn truthy_opt<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<bool>, D::Error> {
    truthy(d).map(Some)
}

pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| EvalError::io(path, e))
}

/// Parse a ground-truth file.
pub fn parse_gt(path: &Path, bytes: &[u8]) -> Result<GtDataset> {
    serde_json::from_slice(bytes).map_err(|source| EvalError::Json {
        path: path.to_path_buf(),
        what: "SA-Co/Gold ground-truth",
        source,
    })
}

/// Parse a COCO results file (a JSON list of predictions).
pub fn parse_predictions(path: &Path, bytes: &[u8]) -> Result<Vec<Prediction>> {
    serde_json::from_slice(bytes).map_err(|source| EvalError::Json {
        path: path.to_path_buf(),
        what: "COCO results (a list of {image_id, segmentation, score})",
        source,
    })
}

pub fn load_gt(path: &Path) -> Result<GtDataset> {
    parse_gt(path, &read_bytes(path)?)
}

pub fn load_predictions(path: &Path) -> Result<Vec<Prediction>> {
    parse_predictions(path, &read_bytes(path)?)
}

/// A `[x, y, w, h]` box from a JSON list, checking its length.
pub(crate) fn bbox4(b: &[f64]) -> std::result::Result<[f64; 4], String> {
    <[f64; 4]>::try_from(b)
        .map_err(|_| format!("bbox must have 4 numbers [x, y, w, h], found {}", b.len()))
}
