//! Scoring a prediction file against one or more ground-truth files: validation, per-entry IoU and
//! matching, the oracle choice, the cgF1 family and the post's own figures.

use std::collections::{HashMap, HashSet};

use crate::cgf1::{self, Accumulated, Curves, EntryEval};
use crate::coco::{GtDataset, Prediction, bbox4};
use crate::error::{EvalError, Result};
use crate::rle::{self, Rle};

/// Which geometry the IoU is computed on (`iouType` of the reference).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IouType {
    Segm,
    Bbox,
}

impl IouType {
    pub fn as_str(self) -> &'static str {
        match self {
            IouType::Segm => "segm",
            IouType::Bbox => "bbox",
        }
    }
}

impl std::str::FromStr for IouType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "segm" => Ok(IouType::Segm),
            "bbox" => Ok(IouType::Bbox),
            other => Err(format!(
                "unknown IoU type {other:?}; expected \"segm\" or \"bbox\""
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ScoreOptions {
    pub iou_type: IouType,
    /// Predictions with `score >= score_threshold` are kept. The reference fixes it at 0.5
    /// ([`crate::SCORE_THRESHOLD`], the default); other values depart from it.
    pub score_threshold: f64,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions {
            iou_type: IouType::Segm,
            score_threshold: crate::refusal::SCORE_THRESHOLD,
        }
    }
}

/// The post's own figures (see the crate documentation for the definitions).
#[derive(Clone, Debug, PartialEq)]
pub struct PostMetrics {
    /// Share of negative entries with no kept prediction; `None` without negative entries.
    pub neg_correct: Option<f64>,
    /// Mean per-entry mask IoU over positive entries; `None` without positive entries.
    pub pos_mean_iou: Option<f64>,
    /// Mean per-entry mask IoU over all scored entries.
    pub mean_mask_iou: Option<f64>,
}

/// Everything `score` computes.
#[derive(Clone, Debug)]
pub struct ScoreReport {
    pub iou_type: IouType,
    pub score_threshold: f64,
    /// The reference's 26 numbers, in its order and with its key names.
    pub metrics: Vec<(String, f64)>,
    /// `None` when some kept prediction has no mask (possible only with `--iou bbox`).
    pub post: Option<PostMetrics>,
    pub accumulated: Accumulated,
    pub curves: Curves,
    /// The selected evaluation of every scored entry, in ground-truth order.
    pub entries: Vec<EntryEval>,
    pub num_positive: usize,
    pub num_negative: usize,
    /// Entries of the first ground truth left out because they are not instance-exhaustive there
    /// or in one of the other ground truths.
    pub num_excluded: usize,
    /// Things the reference silently ignores that the user should know about.
    pub warnings: Vec<String>,
}

impl ScoreReport {
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

struct Instance {
    rle: Option<Rle>,
    bbox: Option<[f64; 4]>,
    /// Index into the ground truth's sorted category ids; `None` = not a listed category.
    cat_rank: Option<usize>,
    crowd: bool,
}

struct PreparedGt {
    /// Image id -> (index in `images`, height, width, exhaustive).
    images: HashMap<i64, (usize, u32, u32, bool)>,
    /// Per image index: its instances in file order.
    instances: Vec<Vec<Instance>>,
    cat_ranks: HashMap<i64, usize>,
}

fn prepare_gt(
    name: &str,
    gt: &GtDataset,
    iou_type: IouType,
    warnings: &mut Vec<String>,
) -> Result<PreparedGt> {
    let mut images = HashMap::with_capacity(gt.images.len());
    for (i, img) in gt.images.iter().enumerate() {
        if images
            .insert(
                img.id,
                (i, img.height, img.width, img.is_instance_exhaustive),
            )
            .is_some()
        {
            return Err(EvalError::invalid(format!(
                "{name}: image id {} appears more than once in images[]",
                img.id
            )));
        }
    }
    if gt.categories.is_empty() {
        return Err(EvalError::invalid(format!(
            "{name}: categories[] is empty; the reference evaluator keeps only instances of listed categories, so nothing could be scored"
        )));
    }
    let mut cat_ids: Vec<i64> = gt.categories.iter().map(|c| c.id).collect();
    cat_ids.sort_unstable();
    cat_ids.dedup();
    let cat_ranks: HashMap<i64, usize> =
        cat_ids.iter().enumerate().map(|(r, &id)| (id, r)).collect();

    let mut instances: Vec<Vec<Instance>> = (0..gt.images.len()).map(|_| Vec::new()).collect();
    let mut ann_ids = HashSet::new();
    let mut unlisted = 0usize;
    for (k, ann) in gt.annotations.iter().enumerate() {
        let at = || format!("{name}: annotations[{k}] (image_id {})", ann.image_id);
        if let Some(id) = ann.id
            && !ann_ids.insert(id)
        {
            return Err(EvalError::invalid(format!(
                "{}: annotation id {id} appears more than once",
                at()
            )));
        }
        let Some(&(idx, h, w, _)) = images.get(&ann.image_id) else {
            return Err(EvalError::invalid(format!(
                "{}: image_id is not in images[]",
                at()
            )));
        };
        let cat_rank = match ann.category_id {
            None => Some(0),
            Some(c) => cat_ranks.get(&c).copied(),
        };
        if cat_rank.is_none() {
            unlisted += 1;
        }
        let rle = match &ann.segmentation {
            Some(s) => Some(
                s.decode(h, w)
                    .map_err(|e| EvalError::invalid(format!("{}: segmentation: {e}", at())))?,
            ),
            None => None,
        };
        let bbox = match &ann.bbox {
            Some(b) => Some(bbox4(b).map_err(|e| EvalError::invalid(format!("{}: {e}", at())))?),
            None => None,
        };
        match iou_type {
            IouType::Segm if rle.is_none() => {
                return Err(EvalError::invalid(format!(
                    "{}: no segmentation (needed for --iou segm)",
                    at()
                )));
            }
            IouType::Bbox if bbox.is_none() => {
                return Err(EvalError::invalid(format!(
                    "{}: no bbox (needed for --iou bbox)",
                    at()
                )));
            }
            _ => {}
        }
        instances[idx].push(Instance {
            rle,
            bbox,
            cat_rank,
            crowd: ann.iscrowd,
        });
    }
    if unlisted > 0 {
        warnings.push(format!(
            "{name}: {unlisted} annotation(s) have a category_id not in categories[]; ignored, as the reference evaluator does"
        ));
    }
    Ok(PreparedGt {
        images,
        instances,
        cat_ranks,
    })
}

struct PreparedPred {
    category_id: Option<i64>,
    rle: Option<Rle>,
    bbox: [f64; 4],
    score: f64,
}

/// Score `preds` against `gts` (the first one defines the entries; more than one = oracle setting).
/// `gt_names`/`pred_name` only label error messages.
pub fn score(
    gts: &[GtDataset],
    gt_names: &[String],
    preds: &[Prediction],
    pred_name: &str,
    opts: &ScoreOptions,
) -> Result<ScoreReport> {
    if gts.is_empty() {
        return Err(EvalError::invalid(
            "at least one ground-truth file is needed",
        ));
    }
    assert_eq!(gts.len(), gt_names.len());
    let mut warnings = Vec::new();
    let prepared: Vec<PreparedGt> = gts
        .iter()
        .zip(gt_names)
        .map(|(g, n)| prepare_gt(n, g, opts.iou_type, &mut warnings))
        .collect::<Result<_>>()?;

    // Entries: exhaustive in the first GT and not non-exhaustive in any other (reference __init__).
    let mut excluded_by_others = HashSet::new();
    for gt in &gts[1..] {
        excluded_by_others.extend(
            gt.images
                .iter()
                .filter(|i| !i.is_instance_exhaustive)
                .map(|i| i.id),
        );
    }
    let first = &gts[0];
    let eval_ids: Vec<i64> = first
        .images
        .iter()
        .filter(|i| i.is_instance_exhaustive && !excluded_by_others.contains(&i.id))
        .map(|i| i.id)
        .collect();
    let num_excluded = first.images.len() - eval_ids.len();
    if eval_ids.is_empty() {
        return Err(EvalError::invalid(format!(
            "{}: no instance-exhaustive entry to score",
            gt_names[0]
        )));
    }
    for (k, p) in prepared.iter().enumerate().skip(1) {
        for &id in &eval_ids {
            let (_, h0, w0, _) = prepared[0].images[&id];
            match p.images.get(&id) {
                None => {
                    return Err(EvalError::invalid(format!(
                        "{}: entry id {id} of {} is missing; every ground truth must list the same entries",
                        gt_names[k], gt_names[0]
                    )));
                }
                Some(&(_, h, w, _)) if (h, w) != (h0, w0) => {
                    return Err(EvalError::invalid(format!(
                        "{}: entry id {id} is {h}x{w} (h x w) but {h0}x{w0} in {}",
                        gt_names[k], gt_names[0]
                    )));
                }
                _ => {}
            }
        }
    }

    // Predictions grouped by entry, in file order.
    let mut by_entry: HashMap<i64, Vec<PreparedPred>> = HashMap::new();
    let mut unlisted_preds = 0usize;
    for (k, p) in preds.iter().enumerate() {
        let at = || format!("{pred_name}: prediction [{k}] (image_id {})", p.image_id);
        let Some(&(_, h, w, _)) = prepared[0].images.get(&p.image_id) else {
            return Err(EvalError::invalid(format!(
                "{}: image_id is not an entry of {}",
                at(),
                gt_names[0]
            )));
        };
        if !p.score.is_finite() {
            return Err(EvalError::invalid(format!(
                "{}: score is not a finite number",
                at()
            )));
        }
        let rle = match &p.segmentation {
            Some(s) => Some(
                s.decode(h, w)
                    .map_err(|e| EvalError::invalid(format!("{}: segmentation: {e}", at())))?,
            ),
            None => None,
        };
        // The reference's loadRes: a given bbox is used as is, otherwise it is derived from the mask.
        let bbox = match (&p.bbox, &rle) {
            (Some(b), _) => bbox4(b).map_err(|e| EvalError::invalid(format!("{}: {e}", at())))?,
            (None, Some(r)) => r.to_bbox(),
            (None, None) => {
                return Err(EvalError::invalid(format!(
                    "{}: has neither segmentation nor bbox",
                    at()
                )));
            }
        };
        if opts.iou_type == IouType::Segm && rle.is_none() {
            return Err(EvalError::invalid(format!(
                "{}: no segmentation (needed for --iou segm)",
                at()
            )));
        }
        if let Some(c) = p.category_id
            && !prepared[0].cat_ranks.contains_key(&c)
        {
            unlisted_preds += 1;
        }
        by_entry.entry(p.image_id).or_default().push(PreparedPred {
            category_id: p.category_id,
            rle,
            bbox,
            score: p.score,
        });
    }
    if unlisted_preds > 0 {
        warnings.push(format!(
            "{pred_name}: {unlisted_preds} prediction(s) have a category_id not in categories[]; ignored, as the reference evaluator does"
        ));
    }

    let empty = Vec::new();
    let mut entries = Vec::with_capacity(eval_ids.len());
    for &id in &eval_ids {
        let entry_preds = by_entry.get(&id).unwrap_or(&empty);
        let candidates: Vec<EntryEval> = prepared
            .iter()
            .enumerate()
            .map(|(k, gt)| evaluate_against(id, k, gt, entry_preds, opts))
            .collect::<Result<_>>()?;
        entries.push(cgf1::select_oracle(candidates));
    }

    let accumulated = cgf1::accumulate(&entries);
    let curves = accumulated.curves();
    let metrics = cgf1::summary(&curves, opts.iou_type.as_str());
    let post = post_metrics(&entries, &eval_ids, &prepared, &by_entry, opts);
    let num_positive = entries.iter().filter(|e| e.num_gt > 0).count();
    Ok(ScoreReport {
        iou_type: opts.iou_type,
        score_threshold: opts.score_threshold,
        metrics,
        post,
        accumulated,
        curves,
        num_negative: entries.len() - num_positive,
        num_positive,
        entries,
        num_excluded,
        warnings,
    })
}

/// Instances (non-crowd, listed category) and kept predictions of one entry as the reference sees
/// them: grouped by category in ascending id order, file order within a category.
fn entry_sets<'a>(
    id: i64,
    gt: &'a PreparedGt,
    preds: &'a [PreparedPred],
    threshold: f64,
) -> (Vec<&'a Instance>, Vec<&'a PreparedPred>) {
    let (idx, ..) = gt.images[&id];
    let mut inst: Vec<&Instance> = gt.instances[idx]
        .iter()
        .filter(|i| i.cat_rank.is_some() && !i.crowd)
        .collect();
    inst.sort_by_key(|i| i.cat_rank);
    let rank = |p: &PreparedPred| match p.category_id {
        None => Some(0),
        Some(c) => gt.cat_ranks.get(&c).copied(),
    };
    let mut dts: Vec<(usize, &PreparedPred)> = preds
        .iter()
        .filter(|p| p.score >= threshold)
        .filter_map(|p| rank(p).map(|r| (r, p)))
        .collect();
    dts.sort_by_key(|(r, _)| *r);
    (inst, dts.into_iter().map(|(_, p)| p).collect())
}

fn evaluate_against(
    id: i64,
    k: usize,
    gt: &PreparedGt,
    preds: &[PreparedPred],
    opts: &ScoreOptions,
) -> Result<EntryEval> {
    let (inst, dts) = entry_sets(id, gt, preds, opts.score_threshold);
    let mut ious = Vec::with_capacity(dts.len() * inst.len());
    for d in &dts {
        for g in &inst {
            ious.push(match opts.iou_type {
                IouType::Segm => rle::mask_iou(
                    d.rle.as_ref().expect("checked"),
                    g.rle.as_ref().expect("checked"),
                )?,
                IouType::Bbox => rle::bbox_iou(&d.bbox, &g.bbox.expect("checked")),
            });
        }
    }
    Ok(cgf1::evaluate_entry(id, k, &ious, dts.len(), inst.len()))
}

fn post_metrics(
    entries: &[EntryEval],
    eval_ids: &[i64],
    prepared: &[PreparedGt],
    by_entry: &HashMap<i64, Vec<PreparedPred>>,
    opts: &ScoreOptions,
) -> Option<PostMetrics> {
    let empty = Vec::new();
    let (mut pos, mut pos_sum, mut all_sum) = (0usize, 0.0f64, 0.0f64);
    // Per negative entry, the scores of its kept predictions (neg_correct is computed by the one
    // project-wide function, at the same threshold).
    let mut negatives: Vec<Vec<f64>> = Vec::new();
    for (e, &id) in entries.iter().zip(eval_ids) {
        let gt = &prepared[e.gt_index];
        let (inst, dts) = entry_sets(
            id,
            gt,
            by_entry.get(&id).unwrap_or(&empty),
            opts.score_threshold,
        );
        let (_, h, w, _) = gt.images[&id];
        let gt_masks: Option<Vec<&Rle>> = inst.iter().map(|i| i.rle.as_ref()).collect();
        let dt_masks: Option<Vec<&Rle>> = dts.iter().map(|d| d.rle.as_ref()).collect();
        let (gt_masks, dt_masks) = (gt_masks?, dt_masks?);
        let (i, u) =
            rle::intersection_union(&Rle::union(h, w, &dt_masks), &Rle::union(h, w, &gt_masks));
        let iou = if u == 0 { 1.0 } else { i as f64 / u as f64 };
        all_sum += iou;
        if inst.is_empty() {
            negatives.push(dts.iter().map(|d| d.score).collect());
        } else {
            pos += 1;
            pos_sum += iou;
        }
    }
    let ratio = |a: f64, n: usize| if n == 0 { None } else { Some(a / n as f64) };
    Some(PostMetrics {
        neg_correct: crate::refusal::neg_correct_at(negatives, opts.score_threshold),
        pos_mean_iou: ratio(pos_sum, pos),
        mean_mask_iou: ratio(all_sum, entries.len()),
    })
}
