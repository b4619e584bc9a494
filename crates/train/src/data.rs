//! Training data: SA-Co/Gold / COCO-JSON sets read through the eval crate's reader (one "image"
//! entry per (image, noun phrase) pair, instance masks as RLE, a pair without instances = a
//! negative), seeded per-stream shuffling, and batches of find queries ready for the model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use sam3lab_eval::coco::{GtDataset, Segmentation};
use sam3lab_model::GeometryPrompt;
use sam3lab_model::tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::recipe::{Only, StreamSpec};
use crate::targets::{FindQuery, Instance, Targets};

/// One (image, noun phrase) pair with its instances at the model's resolution.
#[derive(Clone, Debug)]
pub struct Pair {
    /// The GT entry's id.
    pub id: i64,
    pub image: PathBuf,
    pub height: u32,
    pub width: u32,
    pub text: String,
    pub instances: Vec<Instance>,
    pub is_exhaustive: bool,
}

/// A loaded data stream.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    pub gt: PathBuf,
    pub gt_sha256: String,
    pub pairs: Vec<Pair>,
}

/// Nearest-neighbour resample of a row-major `h × w` 0/1 mask to `r × r` (the squash resize the
/// image gets): pixel (i, j) takes the source pixel under its centre.
pub fn resize_mask(mask: &[u8], h: usize, w: usize, r: usize) -> Vec<u8> {
    let mut out = vec![0u8; r * r];
    for i in 0..r {
        let si = (((i as f64 + 0.5) * h as f64 / r as f64) as usize).min(h - 1);
        for j in 0..r {
            let sj = (((j as f64 + 0.5) * w as f64 / r as f64) as usize).min(w - 1);
            out[i * r + j] = mask[si * w + sj];
        }
    }
    out
}

/// Read a stream's ground truth; `mask_size` is the model's input resolution.
pub fn load_stream(name: &str, spec: &StreamSpec, mask_size: usize) -> Result<Dataset> {
    let gt: GtDataset = sam3lab_eval::coco::load_gt(&spec.gt).map_err(|e| TrainError::input(&spec.gt, e.to_string()))?;
    let root = spec.images.clone().unwrap_or_else(|| spec.gt.parent().map(Path::to_path_buf).unwrap_or_default());
    let mut by_image: HashMap<i64, Vec<&sam3lab_eval::coco::GtAnnotation>> = HashMap::new();
    for a in &gt.annotations {
        by_image.entry(a.image_id).or_default().push(a);
    }
    let mut pairs = Vec::with_capacity(gt.images.len());
    for im in &gt.images {
        let where_ = || format!("data.{name}: pair {} ({})", im.id, im.file_name);
        let text = im
            .text_input
            .clone()
            .ok_or_else(|| TrainError::input(&spec.gt, format!("{}: no `text_input` (noun phrase)", where_())))?;
        let path = root.join(&im.file_name);
        if !path.is_file() {
            return Err(TrainError::input(&spec.gt, format!("{}: image {} is missing", where_(), path.display())));
        }
        let (h, w) = (im.height as usize, im.width as usize);
        let mut instances = vec![];
        for (k, a) in by_image.get(&im.id).map(Vec::as_slice).unwrap_or(&[]).iter().enumerate() {
            let mask = match &a.segmentation {
                None => None,
                Some(Segmentation::Polygons(_)) => {
                    return Err(TrainError::input(&spec.gt, format!("{}: annotation {k} has polygons; RLE masks are needed", where_())));
                }
                Some(seg) => {
                    let rle = seg.decode(im.height, im.width).map_err(|e| {
                        TrainError::input(&spec.gt, format!("{}: annotation {k}: {e} (mask size must equal the image's {h}×{w})", where_()))
                    })?;
                    Some(rle)
                }
            };
            let bbox = match (&a.bbox, &mask) {
                (Some(b), _) if b.len() == 4 => {
                    // SA-Co/Gold stores boxes normalised; COCO in pixels.
                    let px = b.iter().any(|&v| v > 1.5);
                    let (sx, sy) = if px { (w as f64, h as f64) } else { (1.0, 1.0) };
                    [b[0] / sx, b[1] / sy, b[2] / sx, b[3] / sy]
                }
                (_, Some(rle)) => {
                    let b = rle.to_bbox();
                    [b[0] / w as f64, b[1] / h as f64, b[2] / w as f64, b[3] / h as f64]
                }
                _ => return Err(TrainError::input(&spec.gt, format!("{}: annotation {k} has neither bbox nor mask", where_()))),
            };
            let cxcywh = [(bbox[0] + bbox[2] / 2.0) as f32, (bbox[1] + bbox[3] / 2.0) as f32, bbox[2] as f32, bbox[3] as f32];
            instances.push(Instance {
                box_cxcywh: cxcywh,
                mask: mask.map(|r| resize_mask(&r.to_row_major(), h, w, mask_size)),
                object_id: a.id.unwrap_or(k as i64),
            });
        }
        let keep = match spec.only {
            None => true,
            Some(Only::Positives) => !instances.is_empty(),
            Some(Only::Negatives) => instances.is_empty(),
        };
        if keep {
            pairs.push(Pair { id: im.id, image: path, height: im.height, width: im.width, text, instances, is_exhaustive: im.is_instance_exhaustive });
        }
    }
    if pairs.is_empty() {
        return Err(TrainError::input(&spec.gt, format!("data.{name}: the data set is empty (after `only`)")));
    }
    let gt_sha256 = sam3lab_hooks::sha256_file(&spec.gt).map_err(|e| TrainError::io(&spec.gt, e))?;
    Ok(Dataset { name: name.to_string(), gt: spec.gt.clone(), gt_sha256, pairs })
}

/// Position of a stream in its seeded epoch order (what a resumed run restores).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: u64,
    pub next: usize,
}

/// Seeded sampler over one stream: a fresh permutation each epoch, derived from (seed, stream,
/// epoch) alone so that a cursor restores it exactly. Grouped (`per_image`), it permutes images and
/// takes up to `per_image` of each image's pairs in a row, so one batch asks several questions of the
/// same image (its features are computed once per batch).
pub struct Sampler {
    seed: u64,
    stream: u64,
    n: usize,
    order: Vec<usize>,
    pub cursor: Cursor,
    groups: Option<(Vec<Vec<usize>>, usize)>,
}

fn rng_for(seed: u64, stream: u64, epoch: u64, unit: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(
        seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ unit.wrapping_mul(0x94D0_49BB_1331_11EB),
    )
}

impl Sampler {
    pub fn new(seed: u64, stream: u64, n: usize, cursor: Cursor) -> Self {
        let mut s = Sampler { seed, stream, n, order: vec![], cursor, groups: None };
        s.order = s.permutation(cursor.epoch);
        s
    }

    /// Over images: `groups[g]` = the pair indices of image g.
    pub fn grouped(seed: u64, stream: u64, groups: Vec<Vec<usize>>, per_image: usize, cursor: Cursor) -> Self {
        let mut s = Sampler { seed, stream, n: groups.len(), order: vec![], cursor, groups: Some((groups, per_image.max(1))) };
        s.order = s.permutation(cursor.epoch);
        s
    }

    fn permutation(&self, epoch: u64) -> Vec<usize> {
        let mut rng = rng_for(self.seed, self.stream, epoch, 0);
        let mut v: Vec<usize> = (0..self.n).collect();
        v.shuffle(&mut rng);
        v
    }

    fn next_unit(&mut self) -> (u64, usize) {
        if self.cursor.next == self.n {
            self.cursor = Cursor { epoch: self.cursor.epoch + 1, next: 0 };
            self.order = self.permutation(self.cursor.epoch);
        }
        let u = self.order[self.cursor.next];
        self.cursor.next += 1;
        (self.cursor.epoch, u)
    }

    pub fn take(&mut self, k: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(k);
        while out.len() < k {
            let (epoch, u) = self.next_unit();
            match &self.groups {
                None => out.push(u),
                Some((groups, per)) => {
                    let mut members = groups[u].clone();
                    members.shuffle(&mut rng_for(self.seed, self.stream, epoch, u as u64 + 1));
                    for m in members.into_iter().take(*per) {
                        if out.len() < k {
                            out.push(m);
                        }
                    }
                }
            }
        }
        out
    }
}

/// Pair indices of `set` grouped by image, in first-appearance order.
pub fn groups_by_image(set: &Dataset) -> Vec<Vec<usize>> {
    let mut index: HashMap<&Path, usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = vec![];
    for (i, p) in set.pairs.iter().enumerate() {
        let g = *index.entry(p.image.as_path()).or_insert_with(|| {
            groups.push(vec![]);
            groups.len() - 1
        });
        groups[g].push(i);
    }
    groups
}

/// Decoded, preprocessed images by path (the same image serves many pairs).
#[derive(Default)]
pub struct ImageCache {
    map: HashMap<PathBuf, Arc<Vec<f32>>>,
}

impl ImageCache {
    fn pixels(&mut self, pair: &Pair, resolution: usize) -> Result<Arc<Vec<f32>>> {
        if let Some(p) = self.map.get(&pair.image) {
            return Ok(p.clone());
        }
        let img = sam3lab_model::preprocess::load_image(&pair.image)?;
        if img.height() != pair.height || img.width() != pair.width {
            return Err(TrainError::input(
                &pair.image,
                format!("pair {}: the image is {}×{} but its annotation says {}×{}", pair.id, img.height(), img.width(), pair.height, pair.width),
            ));
        }
        let v = Arc::new(sam3lab_model::preprocess::preprocess_data(&img, resolution));
        self.map.insert(pair.image.clone(), v.clone());
        Ok(v)
    }
}

/// One batch of find queries ready for the model.
pub struct Batch {
    /// `(n_images, 3, S, S)`.
    pub pixels: Tensor<4>,
    /// `(n_phrases, context)`.
    pub input_ids: Tensor<2, Int>,
    pub img_ids: Vec<usize>,
    pub text_ids: Vec<usize>,
    pub targets: Targets,
    /// `stream:pair_id` of every query (for error messages and logs).
    pub pair_ids: Vec<String>,
    /// Box prompts given with every query (the geometry encoder's input; empty = text only, what the
    /// data streams give).
    pub geometry: GeometryPrompt,
}

impl Batch {
    pub fn to_device(&self, device: &Device) -> Batch {
        Batch {
            pixels: self.pixels.clone().to_device(device),
            input_ids: self.input_ids.clone().to_device(device),
            img_ids: self.img_ids.clone(),
            text_ids: self.text_ids.clone(),
            targets: self.targets.clone(),
            pair_ids: self.pair_ids.clone(),
            geometry: self.geometry.clone(),
        }
    }
}

/// Assemble a batch from `(dataset, pair index)` picks: distinct images and phrases once each.
pub fn make_batch(
    picks: &[(&Dataset, usize)],
    cache: &mut ImageCache,
    resolution: usize,
    context: usize,
    device: &Device,
) -> Result<Batch> {
    let mut images: Vec<PathBuf> = vec![];
    let mut texts: Vec<String> = vec![];
    let mut pixels: Vec<f32> = vec![];
    let mut ids: Vec<i64> = vec![];
    let mut queries = vec![];
    let mut pair_ids = vec![];
    for (ds, i) in picks {
        let p = &ds.pairs[*i];
        let img = match images.iter().position(|x| *x == p.image) {
            Some(k) => k,
            None => {
                pixels.extend_from_slice(&cache.pixels(p, resolution)?);
                images.push(p.image.clone());
                images.len() - 1
            }
        };
        let txt = match texts.iter().position(|t| *t == p.text) {
            Some(k) => k,
            None => {
                let (tok, _) = Tokenizer::clip().encode(&p.text, context);
                ids.extend(tok.into_iter().map(i64::from));
                texts.push(p.text.clone());
                texts.len() - 1
            }
        };
        queries.push(FindQuery { image: img, text: txt, instances: p.instances.clone(), is_exhaustive: p.is_exhaustive });
        pair_ids.push(format!("{}:{}", ds.name, p.id));
    }
    let targets = Targets::from_queries(&queries, resolution).map_err(TrainError::Usage)?;
    Ok(Batch {
        pixels: Tensor::from_data(TensorData::new(pixels, [images.len(), 3, resolution, resolution]), device),
        input_ids: Tensor::from_data(TensorData::new(ids, [texts.len(), context]), device),
        img_ids: queries.iter().map(|q| q.image).collect(),
        text_ids: queries.iter().map(|q| q.text).collect(),
        targets,
        pair_ids,
        geometry: GeometryPrompt::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_sampler_takes_several_pairs_per_image_and_resumes() {
        // 4 images with 3, 1, 2, 4 pairs.
        let groups = vec![vec![0, 1, 2], vec![3], vec![4, 5], vec![6, 7, 8, 9]];
        let which = |p: usize| groups.iter().position(|g| g.contains(&p)).unwrap();
        let mut s = Sampler::grouped(5, 0, groups.clone(), 2, Cursor::default());
        let a = s.take(6);
        // Consecutive picks come from the same image, at most 2 per image visit.
        assert_eq!(a.len(), 6);
        let mut runs = vec![];
        for p in &a {
            match runs.last_mut() {
                Some((g, n)) if *g == which(*p) => *n += 1,
                _ => runs.push((which(*p), 1)),
            }
        }
        assert!(runs.iter().all(|(g, n)| *n <= 2 && *n <= groups[*g].len()), "{runs:?}");
        // A sampler restored from the cursor continues identically.
        let cur = s.cursor;
        let next = s.take(10);
        let mut r = Sampler::grouped(5, 0, groups.clone(), 2, cur);
        assert_eq!(r.take(10), next);
        // Every pair of an epoch is reachable: over many epochs each pair appears.
        let mut seen = std::collections::BTreeSet::new();
        let mut t = Sampler::grouped(5, 0, groups, 2, Cursor::default());
        for p in t.take(200) {
            seen.insert(p);
        }
        assert_eq!(seen.len(), 10);
    }
}
