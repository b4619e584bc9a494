//! Training targets in the layout Meta's `Sam3Image.back_convert` hands the matcher and the loss:
//! per find query (one image + one noun phrase) its ground-truth instances, packed across the batch.

use serde::{Deserialize, Serialize};

/// One ground-truth instance of a find query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Normalised `[cx, cy, w, h]` in the model's (squashed) input frame.
    pub box_cxcywh: [f32; 4],
    /// Mask at the target resolution (`mask_size²`, row-major, 0/1); `None` = no mask for this instance.
    pub mask: Option<Vec<u8>>,
    /// Object id (≥ 0 = a real, visible object).
    pub object_id: i64,
}

/// One find query: an (image, noun phrase) pair and its instances (none = a negative).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FindQuery {
    /// Index into the batch's images.
    pub image: usize,
    /// Index into the batch's phrases.
    pub text: usize,
    pub instances: Vec<Instance>,
    /// Whether every instance of the phrase in the image is annotated (negatives are exhaustive).
    pub is_exhaustive: bool,
}

/// Targets of a batch of find queries, packed in query order.
#[derive(Clone, Debug)]
pub struct Targets {
    /// Instances per find query.
    pub num_boxes: Vec<usize>,
    /// Packed `[cx, cy, w, h]`.
    pub boxes: Vec<[f32; 4]>,
    /// Packed `[x0, y0, x1, y1]`.
    pub boxes_xyxy: Vec<[f32; 4]>,
    /// Packed object ids.
    pub object_ids: Vec<i64>,
    /// Packed masks (`mask_size²` each, 0/1 as f32); empty when no instance has a mask.
    pub masks: Vec<f32>,
    pub mask_size: usize,
    /// Per packed instance: whether its mask takes part in the mask loss.
    pub is_valid_mask: Vec<bool>,
    pub is_exhaustive: Vec<bool>,
}

/// `[cx, cy, w, h]` → `[x0, y0, x1, y1]` with the reference's f32 operation order.
pub fn cxcywh_to_xyxy(b: [f32; 4]) -> [f32; 4] {
    [b[0] - 0.5 * b[2], b[1] - 0.5 * b[3], b[0] + 0.5 * b[2], b[1] + 0.5 * b[3]]
}

impl Targets {
    /// Pack the queries' instances. `mask_size` is the target mask resolution (the model's input size).
    pub fn from_queries(queries: &[FindQuery], mask_size: usize) -> Result<Self, String> {
        let mut t = Targets {
            num_boxes: vec![],
            boxes: vec![],
            boxes_xyxy: vec![],
            object_ids: vec![],
            masks: vec![],
            mask_size,
            is_valid_mask: vec![],
            is_exhaustive: vec![],
        };
        let any_mask = queries.iter().flat_map(|q| &q.instances).any(|i| i.mask.is_some());
        for (qi, q) in queries.iter().enumerate() {
            t.num_boxes.push(q.instances.len());
            t.is_exhaustive.push(q.is_exhaustive);
            for (k, inst) in q.instances.iter().enumerate() {
                t.boxes.push(inst.box_cxcywh);
                t.boxes_xyxy.push(cxcywh_to_xyxy(inst.box_cxcywh));
                t.object_ids.push(inst.object_id);
                match &inst.mask {
                    Some(m) => {
                        if m.len() != mask_size * mask_size {
                            return Err(format!(
                                "query {qi} instance {k}: mask has {} pixels, expected {mask_size}×{mask_size}",
                                m.len()
                            ));
                        }
                        t.masks.extend(m.iter().map(|&v| (v != 0) as u8 as f32));
                        t.is_valid_mask.push(true);
                    }
                    None => {
                        if any_mask {
                            t.masks.extend(std::iter::repeat_n(0.0, mask_size * mask_size));
                        }
                        t.is_valid_mask.push(false);
                    }
                }
            }
        }
        Ok(t)
    }

    pub fn batch(&self) -> usize {
        self.num_boxes.len()
    }

    pub fn total(&self) -> usize {
        self.boxes.len()
    }

    /// Offset of each query's first instance in the packed arrays.
    pub fn offsets(&self) -> Vec<usize> {
        let mut o = Vec::with_capacity(self.num_boxes.len());
        let mut acc = 0;
        for &n in &self.num_boxes {
            o.push(acc);
            acc += n;
        }
        o
    }

    /// Whether query `b` has a visible ground-truth instance (id ≥ 0, w > 0, h > 0): the presence
    /// target, and the switch of its classification loss (`keep_loss` in the reference).
    pub fn has_visible(&self) -> Vec<bool> {
        let off = self.offsets();
        (0..self.batch())
            .map(|b| {
                (off[b]..off[b] + self.num_boxes[b])
                    .any(|k| self.object_ids[k] >= 0 && self.boxes[k][2] > 0.0 && self.boxes[k][3] > 0.0)
            })
            .collect()
    }

    /// The loss normaliser: `max(1, total instances)` ("local" = "global" on one process).
    pub fn num_boxes_normalizer(&self) -> f32 {
        (self.total() as f32).max(1.0)
    }
}
