//! Meta's matchers (`sam3/train/matcher.py`): `BinaryHungarianMatcherV2` (one-to-one, solved by
//! the project's one scipy-faithful solver, `sam3lab_eval::assign`) and `BinaryOneToManyMatcher`
//! (DAC's one-to-many: top-k quantile and threshold on `α·σ(logit) + (1−α)·IoU`).
//!
//! Both run on host copies of the predictions (no gradient), in f32 with the reference's formulas,
//! and return [`Indices`] in the reference's order.

use serde::{Deserialize, Serialize};

use crate::targets::{Targets, cxcywh_to_xyxy};

/// Matched (batch, query[, packed target]) triples. `tgt = None` means the pairs are in packed target
/// order (the Hungarian matcher when every query set has at least as many queries as targets).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Indices {
    pub batch: Vec<usize>,
    pub src: Vec<usize>,
    pub tgt: Option<Vec<usize>>,
}

impl Indices {
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Packed target index of every pair.
    pub fn targets(&self) -> Vec<usize> {
        self.tgt.clone().unwrap_or_else(|| (0..self.batch.len()).collect())
    }
}

/// Host copy of one query set's predictions: `logits` `B·Q`, `boxes` `B·Q·4` (cxcywh).
pub struct HostPreds<'a> {
    pub b: usize,
    pub q: usize,
    pub logits: &'a [f32],
    pub boxes: &'a [f32],
}

impl HostPreds<'_> {
    fn bx(&self, b: usize, q: usize) -> [f32; 4] {
        let o = (b * self.q + q) * 4;
        [self.boxes[o], self.boxes[o + 1], self.boxes[o + 2], self.boxes[o + 3]]
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `log σ(x)` computed stably, as torch's `logsigmoid`.
fn log_sigmoid(x: f32) -> f32 {
    x.min(0.0) - (-x.abs()).exp().ln_1p()
}

fn area(b: [f32; 4]) -> f32 {
    (b[2] - b[0]) * (b[3] - b[1])
}

/// IoU and union of two xyxy boxes (reference `box_iou`).
pub fn iou_union(a: [f32; 4], b: [f32; 4]) -> (f32, f32) {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = area(a) + area(b) - inter;
    (inter / union, union)
}

/// Generalised IoU of two xyxy boxes (reference `generalized_box_iou`).
pub fn giou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let (iou, union) = iou_union(a, b);
    let w = (a[2].max(b[2]) - a[0].min(b[0])).max(0.0);
    let h = (a[3].max(b[3]) - a[1].min(b[1])).max(0.0);
    let hull = w * h;
    iou - (hull - union) / hull
}

/// `BinaryHungarianMatcherV2` with its recipe settings as defaults.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HungarianMatcher {
    pub cost_class: f32,
    pub cost_bbox: f32,
    pub cost_giou: f32,
    /// Focal classification cost (else `−σ(logit)`).
    pub focal: bool,
    pub alpha: f32,
    pub gamma: f32,
    /// Drop find queries without ground truth before matching.
    pub remove_samples_with_0_gt: bool,
}

impl Default for HungarianMatcher {
    fn default() -> Self {
        Self { cost_class: 2.0, cost_bbox: 5.0, cost_giou: 2.0, focal: true, alpha: 0.25, gamma: 2.0, remove_samples_with_0_gt: true }
    }
}

/// Solve `min Σ cost` over a `rows × cols` cost matrix; returns (row, col) pairs sorted by row. The
/// one solver of the project (`sam3lab_eval::assign`, scipy's `linear_sum_assignment` step by step,
/// so ties resolve as Meta's matcher resolves them); scipy takes the float32 matrix as float64 too.
pub fn linear_sum_assignment(cost: &[f32], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    let c: Vec<f64> = cost.iter().map(|&v| v as f64).collect();
    sam3lab_eval::assign::linear_sum_assignment(&c, rows, cols)
}

impl HungarianMatcher {
    /// The cost matrix `Q × T_b` of query set `b` (row-major), as the reference builds it.
    pub fn cost(&self, p: &HostPreds, b: usize, targets: &Targets) -> Vec<f32> {
        let off = targets.offsets()[b];
        let nt = targets.num_boxes[b];
        let mut c = Vec::with_capacity(p.q * nt);
        for q in 0..p.q {
            let x = p.logits[b * p.q + q];
            let prob = sigmoid(x);
            let class = if self.focal {
                -self.alpha * (1.0 - prob).powf(self.gamma) * log_sigmoid(x)
                    + (1.0 - self.alpha) * prob.powf(self.gamma) * log_sigmoid(-x)
            } else {
                -prob
            };
            let pb = p.bx(b, q);
            for t in 0..nt {
                let tb = targets.boxes[off + t];
                let l1: f32 = (0..4).map(|k| (pb[k] - tb[k]).abs()).sum();
                let g = giou(cxcywh_to_xyxy(pb), cxcywh_to_xyxy(tb));
                c.push(self.cost_bbox * l1 + self.cost_class * class - self.cost_giou * g);
            }
        }
        c
    }

    /// Match every query set with ground truth.
    pub fn match_queries(&self, p: &HostPreds, targets: &Targets) -> Indices {
        let keep: Vec<usize> = (0..p.b)
            .filter(|&b| !self.remove_samples_with_0_gt || targets.num_boxes[b] > 0)
            .collect();
        let return_tgt = keep.iter().any(|&b| p.q < targets.num_boxes[b]);
        let offsets = targets.offsets();
        let (mut batch, mut src, mut tgt) = (vec![], vec![], vec![]);
        for &b in &keep {
            let nt = targets.num_boxes[b];
            let pairs = linear_sum_assignment(&self.cost(p, b, targets), p.q, nt);
            if return_tgt {
                for (i, j) in pairs {
                    batch.push(b);
                    src.push(i);
                    tgt.push(j + offsets[b]);
                }
            } else {
                // Reference `_do_matching`: queries in target order.
                let mut by_t = pairs;
                by_t.sort_by_key(|&(_, j)| j);
                for (i, _) in by_t {
                    batch.push(b);
                    src.push(i);
                }
            }
        }
        Indices { batch, src, tgt: return_tgt.then_some(tgt) }
    }
}

/// `BinaryOneToManyMatcher` with its recipe settings as defaults.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OneToManyMatcher {
    pub alpha: f32,
    pub threshold: f32,
    pub topk: usize,
}

impl Default for OneToManyMatcher {
    fn default() -> Self {
        Self { alpha: 0.3, threshold: 0.4, topk: 4 }
    }
}

/// torch.quantile (linear interpolation) of `v` at `q ∈ [0, 1]`.
pub fn quantile(v: &[f32], q: f64) -> f32 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let w = (pos - lo as f64) as f32;
    // torch.lerp: a + w (b − a)
    s[lo] + w * (s[hi] - s[lo])
}

impl OneToManyMatcher {
    /// The score matrix `B × Q × T_max` (padded targets included, as the reference computes it).
    pub fn scores(&self, p: &HostPreds, targets: &Targets) -> (Vec<f32>, usize) {
        let tmax = targets.num_boxes.iter().copied().max().unwrap_or(0);
        let off = targets.offsets();
        let mut c = Vec::with_capacity(p.b * p.q * tmax);
        for b in 0..p.b {
            for q in 0..p.q {
                let prob = sigmoid(p.logits[b * p.q + q]);
                let pb = cxcywh_to_xyxy(p.bx(b, q));
                for t in 0..tmax {
                    // Padding rows of `boxes_padded` are zeros.
                    let tb = if t < targets.num_boxes[b] { targets.boxes[off[b] + t] } else { [0.0; 4] };
                    let (iou, _) = iou_union(pb, cxcywh_to_xyxy(tb));
                    c.push(self.alpha * prob + (1.0 - self.alpha) * iou);
                }
            }
        }
        (c, tmax)
    }

    pub fn match_queries(&self, p: &HostPreds, targets: &Targets) -> Indices {
        let (c, tmax) = self.scores(p, targets);
        let off = targets.offsets();
        let (mut batch, mut src, mut tgt) = (vec![], vec![], vec![]);
        if tmax == 0 {
            return Indices { batch, src, tgt: Some(tgt) };
        }
        let qlevel = 1.0 - self.topk as f64 / p.q as f64;
        let at = |b: usize, q: usize, t: usize| c[(b * p.q + q) * tmax + t];
        let mut quant = vec![0f32; p.b * tmax];
        for b in 0..p.b {
            for t in 0..tmax {
                let col: Vec<f32> = (0..p.q).map(|q| at(b, q, t)).collect();
                quant[b * tmax + t] = quantile(&col, qlevel);
            }
        }
        // torch.nonzero order: batch, query, target.
        for b in 0..p.b {
            for q in 0..p.q {
                for t in 0..targets.num_boxes[b] {
                    let v = at(b, q, t);
                    if v > quant[b * tmax + t] && v > self.threshold {
                        batch.push(b);
                        src.push(q);
                        tgt.push(t + off[b]);
                    }
                }
            }
        }
        Indices { batch, src, tgt: Some(tgt) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsap_matches_brute_force() {
        // 4 queries × 3 targets: brute force over injections.
        let cost = [3.0f32, 1.0, 7.0, 2.0, 8.0, 4.0, 6.0, 5.0, 0.5, 9.0, 2.5, 3.5];
        let pairs = linear_sum_assignment(&cost, 4, 3);
        let total: f32 = pairs.iter().map(|&(r, c)| cost[r * 3 + c]).sum();
        let mut best = f32::MAX;
        for a in 0..4 {
            for b in 0..4 {
                for c in 0..4 {
                    if a != b && b != c && a != c {
                        best = best.min(cost[a * 3] + cost[b * 3 + 1] + cost[c * 3 + 2]);
                    }
                }
            }
        }
        assert_eq!(total, best);
        assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
        // Fewer rows than columns gives the same optimum through the other branch.
        let tr: Vec<f32> = (0..3).flat_map(|c| (0..4).map(move |r| cost[r * 3 + c])).collect();
        let p2 = linear_sum_assignment(&tr, 3, 4);
        let t2: f32 = p2.iter().map(|&(r, c)| tr[r * 4 + c]).sum();
        assert_eq!(t2, best);
    }

    #[test]
    fn quantile_interpolates_like_torch() {
        // torch.quantile([1,2,3,4], 0.5) = 2.5; ([5,1,3], 0.25) = 2.0
        assert_eq!(quantile(&[4.0, 1.0, 3.0, 2.0], 0.5), 2.5);
        assert_eq!(quantile(&[5.0, 1.0, 3.0], 0.25), 2.0);
    }

    #[test]
    fn giou_hand_cases() {
        assert_eq!(giou([0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]), 1.0);
        // Disjoint unit boxes 1 apart: IoU 0, hull 3, union 2 → −1/3.
        let g = giou([0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 3.0, 1.0]);
        assert!((g + 1.0 / 3.0).abs() < 1e-7, "{g}");
    }
}
