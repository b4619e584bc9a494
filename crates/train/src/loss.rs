//! The loss of Meta's fine-tuning recipe (`Sam3LossWrapper` with `Boxes`, `IABCEMdetr` and `Masks`,
//! `sam3/train/loss/`), on burn tensors so that `backward()` gives the reference's gradients.
//!
//! For the final output and every auxiliary (earlier decoder layer) output: box L1 + GIoU, the
//! IoU-aware classification BCE with the presence focal loss, and (final output only) mask focal +
//! dice. The one-to-many half gets the same terms with its own matching, every value multiplied by
//! `o2m_weight` and suffixed `_o2m`. `core_loss = √B · Σ_k w_k · L_k`.

use std::collections::BTreeMap;

use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

use sam3lab_model::heads::index_tensor;
use sam3lab_model::{QuerySet, TrainLayerOutput, TrainOutput};

use crate::matcher::{HostPreds, HungarianMatcher, Indices, OneToManyMatcher, iou_union};
use crate::targets::Targets;

/// Every weight and switch of the loss; the defaults are Meta's recipe (segmentation variant).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    pub matcher: HungarianMatcher,
    pub o2m_matcher: OneToManyMatcher,
    pub o2m_weight: f32,
    /// Use the one-to-many matcher (else the Hungarian one) for auxiliary o2m outputs.
    pub use_o2m_matcher_on_o2m_aux: bool,
    /// `core_loss *= √(number of find queries)`.
    pub scale_by_find_batch_size: bool,
    pub loss_bbox: f32,
    pub loss_giou: f32,
    pub loss_ce: f32,
    pub presence_loss: f32,
    pub loss_mask: f32,
    pub loss_dice: f32,
    /// IABCEMdetr: weight of matched (positive) queries.
    pub pos_weight: f32,
    /// IABCEMdetr: soft target `p^α · IoU^(1−α)`.
    pub ce_alpha: f32,
    /// IABCEMdetr: negatives weighted by `p^γ`.
    pub ce_gamma: f32,
    /// IABCEMdetr: the BCE sum is divided by `pad_n_queries · B` when there are fewer queries.
    pub pad_n_queries: Option<usize>,
    pub pad_scale_pos: f32,
    pub use_presence: bool,
    pub presence_alpha: f32,
    pub presence_gamma: f32,
    pub mask_focal_alpha: f32,
    pub mask_focal_gamma: f32,
    /// Compute the box / classification terms on auxiliary outputs.
    pub aux: bool,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            matcher: HungarianMatcher::default(),
            o2m_matcher: OneToManyMatcher::default(),
            o2m_weight: 2.0,
            use_o2m_matcher_on_o2m_aux: false,
            scale_by_find_batch_size: true,
            loss_bbox: 5.0,
            loss_giou: 2.0,
            loss_ce: 20.0,
            presence_loss: 20.0,
            loss_mask: 200.0,
            loss_dice: 10.0,
            pos_weight: 10.0,
            ce_alpha: 0.25,
            ce_gamma: 2.0,
            pad_n_queries: Some(200),
            pad_scale_pos: 1.0,
            use_presence: true,
            presence_alpha: 0.5,
            presence_gamma: 0.0,
            mask_focal_alpha: 0.25,
            mask_focal_gamma: 2.0,
            aux: true,
        }
    }
}

impl LossConfig {
    /// Read the `loss` block of a training fixture's `config.json` (Meta's class/argument names).
    pub fn from_reference_json(v: &serde_json::Value) -> Result<Self, String> {
        let mut c = LossConfig::default();
        let f = |v: &serde_json::Value, k: &str| -> Result<f32, String> {
            v.get(k).and_then(|x| x.as_f64()).map(|x| x as f32).ok_or_else(|| format!("loss config: missing number `{k}`"))
        };
        let w = v.get("wrapper").ok_or("loss config: missing `wrapper`")?;
        c.o2m_weight = f(w, "o2m_weight")?;
        c.use_o2m_matcher_on_o2m_aux = w.get("use_o2m_matcher_on_o2m_aux").and_then(|x| x.as_bool()).unwrap_or(true);
        c.scale_by_find_batch_size = w.get("scale_by_find_batch_size").and_then(|x| x.as_bool()).unwrap_or(false);
        let m = v.get("matcher").ok_or("loss config: missing `matcher`")?;
        c.matcher = HungarianMatcher {
            cost_class: f(m, "cost_class")?,
            cost_bbox: f(m, "cost_bbox")?,
            cost_giou: f(m, "cost_giou")?,
            focal: m.get("focal").and_then(|x| x.as_bool()).unwrap_or(false),
            alpha: f(m, "alpha")?,
            gamma: f(m, "gamma")?,
            remove_samples_with_0_gt: m.get("remove_samples_with_0_gt").and_then(|x| x.as_bool()).unwrap_or(true),
        };
        let o = v.get("o2m_matcher").ok_or("loss config: missing `o2m_matcher`")?;
        c.o2m_matcher = OneToManyMatcher { alpha: f(o, "alpha")?, threshold: f(o, "threshold")?, topk: f(o, "topk")? as usize };
        for lf in v.get("loss_fns_find").and_then(|x| x.as_array()).ok_or("loss config: missing `loss_fns_find`")? {
            let class = lf.get("class").and_then(|x| x.as_str()).unwrap_or("");
            let wd = lf.get("weight_dict").ok_or("loss config: loss fn without `weight_dict`")?;
            if class.ends_with(".Boxes") {
                c.loss_bbox = f(wd, "loss_bbox")?;
                c.loss_giou = f(wd, "loss_giou")?;
                c.aux = lf.get("compute_aux").and_then(|x| x.as_bool()).unwrap_or(true);
            } else if class.ends_with(".IABCEMdetr") {
                c.loss_ce = f(wd, "loss_ce")?;
                c.presence_loss = f(wd, "presence_loss")?;
                if lf.get("weak_loss").and_then(|x| x.as_bool()).unwrap_or(false) {
                    return Err("loss config: IABCEMdetr weak_loss is not supported".into());
                }
                c.pos_weight = f(lf, "pos_weight")?;
                c.ce_alpha = f(lf, "alpha")?;
                c.ce_gamma = f(lf, "gamma")?;
                c.pad_n_queries = lf.get("pad_n_queries").and_then(|x| x.as_u64()).map(|x| x as usize);
                c.pad_scale_pos = f(lf, "pad_scale_pos")?;
                c.use_presence = lf.get("use_presence").and_then(|x| x.as_bool()).unwrap_or(false);
                c.presence_alpha = f(lf, "presence_alpha")?;
                c.presence_gamma = f(lf, "presence_gamma")?;
            } else if class.ends_with(".Masks") {
                c.loss_mask = f(wd, "loss_mask")?;
                c.loss_dice = f(wd, "loss_dice")?;
                c.mask_focal_alpha = f(lf, "focal_alpha")?;
                c.mask_focal_gamma = f(lf, "focal_gamma")?;
                if lf.get("num_sample_points").is_some_and(|x| !x.is_null()) {
                    return Err("loss config: Masks point sampling (num_sample_points) is not supported".into());
                }
            } else {
                return Err(format!("loss config: unsupported loss fn `{class}`"));
            }
        }
        Ok(c)
    }

    /// Weight of a loss key by its base name (metrics weigh 0).
    pub fn weight(&self, base: &str) -> f32 {
        match base {
            "loss_bbox" => self.loss_bbox,
            "loss_giou" => self.loss_giou,
            "loss_ce" => self.loss_ce,
            "presence_loss" => self.presence_loss,
            "loss_mask" => self.loss_mask,
            "loss_dice" => self.loss_dice,
            _ => 0.0,
        }
    }
}

/// Matching of one output (final or auxiliary).
#[derive(Clone, Debug, Serialize)]
pub struct OutputMatching {
    /// `""` for the final output, `_aux_{i}` for layer i.
    pub suffix: String,
    pub o2o: Indices,
    pub o2m: Indices,
}

/// The loss dict of one batch.
pub struct LossOutput {
    /// Every term under the reference's key (`loss_bbox`, `loss_ce_aux_0_o2m`, …), 0-d as `[1]`.
    /// Metrics (`ce_f1`, `presence_dec_acc`) carry no gradient.
    pub terms: BTreeMap<String, Tensor<1>>,
    /// `√B · Σ w_k L_k`: what is back-propagated.
    pub core: Tensor<1>,
    pub matching: Vec<OutputMatching>,
    /// The counts behind every F1 metric (`ce_f1…`): (true positives, false positives, false
    /// negatives) and the factor the value carries (the o2m weight for `…_o2m`), so the F1 of a
    /// batch split into shards is computed from the summed counts ([`combine_shards`]).
    pub f1_counts: BTreeMap<String, ([usize; 3], f32)>,
}

/// The normalisers of a whole batch, for a loss computed on one shard of it (data-parallel
/// replicas): the batch's find-query count `B` (classification `/ B` or `/ (B·Q)`, presence `/ B`,
/// presence accuracy, the `√B` scale) and its `num_boxes` normaliser (boxes and masks), so the
/// shards' losses — and gradients — sum to the whole batch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm {
    pub batch: usize,
    pub num_boxes: f32,
}

/// F1 from (tp, fp, fn), as the loss computes it (0 when undefined).
pub fn f1_from_counts([tp, fp, fneg]: [usize; 3]) -> f32 {
    let den = 2 * tp + fp + fneg;
    if den == 0 { 0.0 } else { 2.0 * tp as f32 / den as f32 }
}

/// The loss values of a batch from its shards' values (each computed under the batch's
/// [`BatchNorm`]): every term summed in shard order, every F1 metric recomputed from the summed
/// counts.
pub fn combine_shards(shards: &[(BTreeMap<String, f32>, BTreeMap<String, ([usize; 3], f32)>)]) -> BTreeMap<String, f32> {
    let mut values: BTreeMap<String, f32> = BTreeMap::new();
    let mut counts: BTreeMap<String, ([usize; 3], f32)> = BTreeMap::new();
    for (v, c) in shards {
        for (k, x) in v {
            *values.entry(k.clone()).or_default() += x;
        }
        for (k, (n, f)) in c {
            let e = counts.entry(k.clone()).or_insert(([0; 3], *f));
            for i in 0..3 {
                e.0[i] += n[i];
            }
        }
    }
    for (k, (n, f)) in counts {
        values.insert(k, f1_from_counts(n) * f);
    }
    values
}

impl LossOutput {
    /// Host values of every term and `core_loss`.
    pub fn values(&self) -> BTreeMap<String, f32> {
        let mut m: BTreeMap<String, f32> = self.terms.iter().map(|(k, v)| (k.clone(), scalar(v))).collect();
        m.insert("core_loss".into(), scalar(&self.core));
        m
    }
}

pub fn scalar(t: &Tensor<1>) -> f32 {
    t.clone().into_data().convert::<f32>().try_to_vec::<f32>().expect("f32")[0]
}

pub fn host<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.clone().into_data().convert::<f32>().try_to_vec::<f32>().expect("f32")
}

fn consts<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}


/// `BCE_with_logits(x, y)` element-wise: `max(x, 0) − x·y + log(1 + e^{−|x|})`.
pub fn bce_with_logits<const D: usize>(x: Tensor<D>, y: Tensor<D>) -> Tensor<D> {
    relu(x.clone()) - x.clone() * y + x.abs().neg().exp().log1p()
}

/// Sigmoid focal loss element-wise (`alpha < 0` = no α weighting), Meta's kernel formula.
pub fn sigmoid_focal<const D: usize>(x: Tensor<D>, t: Tensor<D>, alpha: f32, gamma: f32) -> Tensor<D> {
    let p = sigmoid(x.clone());
    let ce = bce_with_logits(x, t.clone());
    let mut loss = if gamma == 0.0 {
        ce
    } else {
        let one_minus_pt = (p.clone() * t.clone() + p.neg().add_scalar(1.0) * t.clone().neg().add_scalar(1.0)).neg().add_scalar(1.0);
        let m = if gamma == 2.0 { one_minus_pt.clone() * one_minus_pt } else { one_minus_pt.powf_scalar(gamma) };
        ce * m
    };
    if alpha >= 0.0 {
        loss = loss * (t.clone().mul_scalar(alpha) + t.neg().add_scalar(1.0).mul_scalar(1.0 - alpha));
    }
    loss
}

/// Bilinear resize matrix `(out, in)` with `align_corners=False` (torch's `upsample_bilinear2d`).
pub fn bilinear_matrix(n_in: usize, n_out: usize) -> Vec<f32> {
    let scale = n_in as f32 / n_out as f32;
    let mut m = vec![0f32; n_out * n_in];
    for o in 0..n_out {
        let src = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        let l1 = src - i0 as f32;
        let l0 = 1.0 - l1;
        m[o * n_in + i0] += l0;
        m[o * n_in + i1] += l1;
    }
    m
}

/// Upsample `(N, h, w)` mask logits to `(N, r, r)` bilinearly (align_corners=False), as matrices.
pub fn upsample_bilinear(x: Tensor<3>, r: usize) -> Tensor<3> {
    let [n, h, w] = x.dims();
    let device = x.device();
    let a = consts(bilinear_matrix(h, r), [r, h], &device).unsqueeze_dim::<3>(0).expand([n, r, h]);
    let bt = consts(bilinear_matrix(w, r), [r, w], &device).transpose().unsqueeze_dim::<3>(0).expand([n, w, r]);
    a.matmul(x.matmul(bt))
}

/// Rows `(b, q)` of a `(B, Q, K)` tensor → `(N, K)`.
fn gather(t: &Tensor<3>, idx: &Indices) -> Tensor<2> {
    let [b, q, k] = t.dims();
    let flat: Vec<usize> = idx.batch.iter().zip(&idx.src).map(|(&bi, &qi)| bi * q + qi).collect();
    let device = t.device();
    t.clone().reshape([b * q, k]).select(0, index_tensor(&flat, &device))
}

/// Diagonal GIoU of matched xyxy boxes `(N, 4)` against constant targets, differentiable
/// (reference `fast_diag_generalized_box_iou`).
fn diag_giou(p: Tensor<2>, t: Tensor<2>) -> Tensor<1> {
    let [n, _] = p.dims();
    let col = |x: &Tensor<2>, k: usize| x.clone().slice([0..n, k..k + 1]).reshape([n]);
    let (px0, py0, px1, py1) = (col(&p, 0), col(&p, 1), col(&p, 2), col(&p, 3));
    let (tx0, ty0, tx1, ty1) = (col(&t, 0), col(&t, 1), col(&t, 2), col(&t, 3));
    let area1 = (px1.clone() - px0.clone()) * (py1.clone() - py0.clone());
    let area2 = (tx1.clone() - tx0.clone()) * (ty1.clone() - ty0.clone());
    let iw = (px1.clone().min_pair(tx1.clone()) - px0.clone().max_pair(tx0.clone())).clamp_min(0.0);
    let ih = (py1.clone().min_pair(ty1.clone()) - py0.clone().max_pair(ty0.clone())).clamp_min(0.0);
    let inter = iw * ih;
    let hw = (px1.max_pair(tx1) - px0.min_pair(tx0)).clamp_min(0.0);
    let hh = (py1.max_pair(ty1) - py0.min_pair(ty0)).clamp_min(0.0);
    let hull = hw * hh;
    let union = area1 + area2 - inter.clone();
    inter / union.clone() - (hull.clone() - union) / hull
}

fn zero(device: &Device) -> Tensor<1> {
    Tensor::zeros([1], device)
}

struct Terms<'a> {
    cfg: &'a LossConfig,
    targets: &'a Targets,
    num_boxes: f32,
    /// The whole batch's query count when this is a shard of it (`None`: this batch's own, and
    /// the reference's expressions as they are).
    batch: Option<usize>,
    device: Device,
}

impl Terms<'_> {
    fn boxes(&self, qs: &QuerySet, idx: &Indices) -> (Tensor<1>, Tensor<1>) {
        if idx.is_empty() {
            return (zero(&self.device), zero(&self.device));
        }
        let tg = idx.targets();
        let n = tg.len();
        let tb: Vec<f32> = tg.iter().flat_map(|&t| self.targets.boxes[t]).collect();
        let txy: Vec<f32> = tg.iter().flat_map(|&t| self.targets.boxes_xyxy[t]).collect();
        let src = gather(&qs.pred_boxes, idx);
        let src_xy = gather(&qs.pred_boxes_xyxy, idx);
        let l1 = (src - consts(tb, [n, 4], &self.device)).abs().sum().div_scalar(self.num_boxes);
        let g = diag_giou(src_xy, consts(txy, [n, 4], &self.device)).neg().add_scalar(1.0).sum().div_scalar(self.num_boxes);
        (l1, g)
    }

    /// IABCEMdetr → (loss_ce, ce_f1, presence_loss, presence_dec_acc) and the F1's counts.
    fn classification(&self, qs: &QuerySet, presence: Option<&Tensor<2>>, idx: &Indices) -> ([Tensor<1>; 4], [usize; 3]) {
        let c = self.cfg;
        let [b, q, _] = qs.pred_logits.dims();
        // The divisor of the per-query terms: this batch's B, or the whole batch's for a shard.
        let bn = self.batch.unwrap_or(b);
        let x = qs.pred_logits.clone().reshape([b, q]);
        let prob = sigmoid(x.clone());
        // Targets (no gradient): 1 at matched queries; the soft positive target p^α·IoU^(1−α).
        let xh = host(&x);
        let bxy = host(&qs.pred_boxes_xyxy);
        let mut tc = vec![0f32; b * q];
        let mut ptc = vec![0f32; b * q];
        for (k, t) in idx.targets().into_iter().enumerate() {
            let (bi, qi) = (idx.batch[k], idx.src[k]);
            let o = (bi * q + qi) * 4;
            let (iou, _) = iou_union([bxy[o], bxy[o + 1], bxy[o + 2], bxy[o + 3]], self.targets.boxes_xyxy[t]);
            let p = 1.0 / (1.0 + (-xh[bi * q + qi]).exp());
            tc[bi * q + qi] = 1.0;
            ptc[bi * q + qi] = (p.powf(c.ce_alpha) * iou.powf(1.0 - c.ce_alpha)).max(0.01);
        }
        let tct = consts(tc.clone(), [b, q], &self.device);
        let ptct = consts(ptc, [b, q], &self.device);
        let mut pos = bce_with_logits(x.clone(), ptct) * tct.clone().mul_scalar(c.pos_weight);
        let padded = c.pad_n_queries.is_some_and(|n| q < n);
        if padded {
            pos = pos.mul_scalar(c.pad_scale_pos);
        }
        let pg = if c.ce_gamma == 2.0 { prob.clone() * prob.clone() } else { prob.clone().powf_scalar(c.ce_gamma) };
        let mut l = pos + bce_with_logits(x, tct.clone()) * tct.neg().add_scalar(1.0) * pg;
        let visible = self.targets.has_visible();
        let keep: Vec<f32> = visible.iter().map(|&v| v as u8 as f32).collect();
        let (mut presence_loss, mut presence_acc) = (zero(&self.device), zero(&self.device));
        if c.use_presence {
            l = l * consts(keep.clone(), [b, 1], &self.device);
            if let Some(pl) = presence {
                let kt = consts(keep.clone(), [b, 1], &self.device);
                presence_loss =
                    sigmoid_focal(pl.clone(), kt, c.presence_alpha, c.presence_gamma).sum().div_scalar(bn as f32).reshape([1]);
                let ph = host(pl);
                let acc = ph.iter().zip(&keep).filter(|(p, k)| ((1.0 / (1.0 + (-**p).exp()) > 0.5) as u8 as f32) == **k).count();
                presence_acc = consts(vec![acc as f32 / bn as f32], [1], &self.device);
            }
        }
        let loss_ce = match (c.pad_n_queries, self.batch) {
            (Some(n), _) if q < n => l.sum().div_scalar((n * bn) as f32),
            (_, None) => l.mean(),
            (_, Some(_)) => l.sum().div_scalar((bn * q) as f32),
        };
        // torchmetrics binary F1 at 0.5 over all queries.
        let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
        for (xv, t) in xh.iter().zip(&tc) {
            let pred = 1.0 / (1.0 + (-xv).exp()) > 0.5;
            match (pred, *t > 0.5) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fneg += 1,
                _ => {}
            }
        }
        let f1 = f1_from_counts([tp, fp, fneg]);
        ([loss_ce.reshape([1]), consts(vec![f1], [1], &self.device), presence_loss, presence_acc], [tp, fp, fneg])
    }

    /// Masks → (loss_mask, loss_dice).
    fn masks(&self, masks: &Tensor<4>, idx: &Indices) -> (Tensor<1>, Tensor<1>) {
        let tg = idx.targets();
        let keep: Vec<usize> = (0..tg.len()).filter(|&k| self.targets.is_valid_mask[tg[k]]).collect();
        if keep.is_empty() || self.targets.masks.is_empty() {
            return (zero(&self.device), zero(&self.device));
        }
        let [b, q, h, w] = masks.dims();
        let r = self.targets.mask_size;
        let flat: Vec<usize> = keep.iter().map(|&k| idx.batch[k] * q + idx.src[k]).collect();
        let n = flat.len();
        let src = masks.clone().reshape([b * q, h, w]).select(0, index_tensor(&flat, &self.device));
        let src = upsample_bilinear(src, r).reshape([n, r * r]);
        let mut tv = Vec::with_capacity(n * r * r);
        for &k in &keep {
            let t = tg[k];
            tv.extend_from_slice(&self.targets.masks[t * r * r..(t + 1) * r * r]);
        }
        let tt = consts(tv, [n, r * r], &self.device);
        let focal = sigmoid_focal(src.clone(), tt.clone(), self.cfg.mask_focal_alpha, self.cfg.mask_focal_gamma)
            .mean_dim(1)
            .sum()
            .div_scalar(self.num_boxes);
        let p = sigmoid(src);
        let num = (p.clone() * tt.clone()).sum_dim(1).mul_scalar(2.0);
        let den = p.sum_dim(1) + tt.sum_dim(1);
        let dice = (num.add_scalar(1.0) / den.add_scalar(1.0)).neg().add_scalar(1.0).sum().div_scalar(self.num_boxes);
        (focal.reshape([1]), dice.reshape([1]))
    }

    /// All terms of one query set with its matching, under their base names.
    fn query_set(
        &self,
        qs: &QuerySet,
        presence: Option<&Tensor<2>>,
        idx: &Indices,
        is_aux: bool,
    ) -> (Vec<(&'static str, Tensor<1>)>, Option<[usize; 3]>) {
        let mut out = vec![];
        let mut counts = None;
        if !is_aux || self.cfg.aux {
            let (l1, g) = self.boxes(qs, idx);
            out.push(("loss_bbox", l1.reshape([1])));
            out.push(("loss_giou", g.reshape([1])));
            let ([ce, f1, pl, pa], n) = self.classification(qs, presence, idx);
            counts = Some(n);
            out.extend([("loss_ce", ce), ("ce_f1", f1), ("presence_loss", pl), ("presence_dec_acc", pa)]);
        }
        if !is_aux && let Some(m) = &qs.pred_masks {
            let (lm, ld) = self.masks(m, idx);
            out.push(("loss_mask", lm));
            out.push(("loss_dice", ld));
        }
        (out, counts)
    }
}

/// Host copy of a query set for the matchers.
pub fn host_preds(qs: &QuerySet) -> (usize, usize, Vec<f32>, Vec<f32>) {
    let [b, q, _] = qs.pred_logits.dims();
    (b, q, host(&qs.pred_logits), host(&qs.pred_boxes))
}

fn match_o2o(cfg: &LossConfig, layer: &TrainLayerOutput, targets: &Targets) -> Indices {
    let (b, q, l, bx) = host_preds(&layer.o2o);
    cfg.matcher.match_queries(&HostPreds { b, q, logits: &l, boxes: &bx }, targets)
}

fn match_o2m(cfg: &LossConfig, layer: &TrainLayerOutput, targets: &Targets, is_aux: bool) -> Indices {
    let (b, q, l, bx) = host_preds(&layer.o2m);
    let p = HostPreds { b, q, logits: &l, boxes: &bx };
    if cfg.use_o2m_matcher_on_o2m_aux || !is_aux {
        cfg.o2m_matcher.match_queries(&p, targets)
    } else {
        cfg.matcher.match_queries(&p, targets)
    }
}

/// Match and compute every loss term of a train-mode output, as `Sam3LossWrapper.compute_loss`
/// (plus the model's own o2o matching, `Sam3Image._compute_matching`).
pub fn compute_loss(out: &TrainOutput, targets: &Targets, cfg: &LossConfig) -> Result<LossOutput, String> {
    compute_loss_shard(out, targets, cfg, None)
}

/// [`compute_loss`] of one shard of a batch, normalised by the whole batch's [`BatchNorm`] (`None`:
/// the batch is whole, and this is exactly [`compute_loss`]). The shards' losses and gradients sum
/// to the whole batch's (up to float rounding); the F1 metrics combine through their counts
/// ([`combine_shards`]).
pub fn compute_loss_shard(out: &TrainOutput, targets: &Targets, cfg: &LossConfig, norm: Option<BatchNorm>) -> Result<LossOutput, String> {
    let device = out.last().o2o.pred_logits.device();
    let b = out.last().o2o.pred_logits.dims()[0];
    if targets.batch() != b {
        return Err(format!("targets describe {} find queries but the model ran {b}", targets.batch()));
    }
    if let Some(n) = norm
        && (n.batch < b || n.num_boxes < targets.total() as f32)
    {
        return Err(format!("a shard of {b} queries and {} boxes cannot belong to a batch of {} queries and {} boxes", targets.total(), n.batch, n.num_boxes));
    }
    let terms = Terms {
        cfg,
        targets,
        num_boxes: norm.map_or_else(|| targets.num_boxes_normalizer(), |n| n.num_boxes),
        batch: norm.map(|n| n.batch),
        device: device.clone(),
    };
    let mut f1_counts = BTreeMap::new();
    let n = out.layers.len();
    let mut all = BTreeMap::new();
    let mut total = zero(&device);
    let mut matching = vec![];
    // The reference's order: the final output first, then aux_0, aux_1, …
    let order: Vec<usize> = std::iter::once(n - 1).chain(0..n - 1).collect();
    for &i in &order {
        let layer = &out.layers[i];
        let is_aux = i + 1 != n;
        let suffix = if is_aux { format!("_aux_{i}") } else { String::new() };
        let o2o = match_o2o(cfg, layer, targets);
        let o2m = match_o2m(cfg, layer, targets, is_aux);
        let (o2o_terms, n) = terms.query_set(&layer.o2o, Some(&layer.presence_logit), &o2o, is_aux);
        if let Some(n) = n {
            f1_counts.insert(format!("ce_f1{suffix}"), (n, 1.0));
        }
        for (base, v) in o2o_terms {
            let w = cfg.weight(base);
            if w != 0.0 {
                total = total + v.clone().mul_scalar(w);
            }
            all.insert(format!("{base}{suffix}"), if w == 0.0 { v.detach() } else { v });
        }
        let (o2m_terms, n) = terms.query_set(&layer.o2m, None, &o2m, is_aux);
        if let Some(n) = n {
            f1_counts.insert(format!("ce_f1{suffix}_o2m"), (n, cfg.o2m_weight));
        }
        for (base, v) in o2m_terms {
            let v = v.mul_scalar(cfg.o2m_weight);
            let w = cfg.weight(base);
            if w != 0.0 {
                total = total + v.clone().mul_scalar(w);
            }
            all.insert(format!("{base}{suffix}_o2m"), if w == 0.0 { v.detach() } else { v });
        }
        matching.push(OutputMatching { suffix, o2o, o2m });
    }
    if cfg.scale_by_find_batch_size {
        total = total.mul_scalar((norm.map_or(b, |n| n.batch) as f32).sqrt());
    }
    Ok(LossOutput { terms: all, core: total, matching, f1_counts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_matrix_matches_hand_values() {
        // 2 → 4, align_corners=False: src = (o+0.5)/2 − 0.5 = −0.25 (→0), 0.25, 0.75, 1.25 (→ i1 clamps)
        let m = bilinear_matrix(2, 4);
        let want = [1.0, 0.0, 0.75, 0.25, 0.25, 0.75, 0.0, 1.0];
        for (a, b) in m.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{m:?}");
        }
        // Rows sum to one for any ratio.
        let m = bilinear_matrix(7, 28);
        for r in m.chunks(7) {
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn focal_and_bce_hand_values() {
        let dev = Device::flex();
        let x = Tensor::<1>::from_data(TensorData::new(vec![0.0f32, 2.0, -3.0], [3]), &dev);
        let y = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 0.0, 1.0], [3]), &dev);
        let b = host(&bce_with_logits(x.clone(), y.clone()));
        let want = [std::f32::consts::LN_2, 2.0 + (-2.0f32).exp().ln_1p(), 3.0 + (-3.0f32).exp().ln_1p()];
        for (a, w) in b.iter().zip(want) {
            assert!((a - w).abs() < 1e-6, "{b:?}");
        }
        // γ = 2, α = 0.25 at x = 0, y = 1: 0.25 · ln2 · 0.5².
        let f = host(&sigmoid_focal(x, y, 0.25, 2.0));
        assert!((f[0] - 0.25 * std::f32::consts::LN_2 * 0.25).abs() < 1e-7, "{f:?}");
    }
}
