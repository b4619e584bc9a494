//! SA-Co/Gold evaluation: this crate owns the ground-truth and prediction file formats (COCO-style
//! JSON, COCO RLE masks bit-compatible with pycocotools), the cgF1 scorer that reproduces SAM3's own
//! evaluator (`sam3/eval/cgf1_eval.py` in facebookresearch/sam3, which builds on pycocotools'
//! `COCOeval`, `maskUtils.iou` and scipy's `linear_sum_assignment`), the post's extra figures
//! (neg_correct, pos_mean_IoU, mean_mask_IoU), and the resumable prediction writer that runs a model
//! given as a closure. It does not know the model; `sam3lab eval predict` plugs it in.
//!
//! # Definitions
//!
//! An *entry* is one `images[]` element of the ground truth: an (image, noun phrase) pair.
//! Reference functions named below are in `sam3/eval/cgf1_eval.py` unless said otherwise.
//!
//! **Entries scored** (`CGF1Evaluator.__init__`): the entries of the first ground truth whose
//! `is_instance_exhaustive` is truthy, minus every id that is *not* instance-exhaustive in any of
//! the other ground truths; in first-file order. Every other ground truth must list these entries
//! with the same size (an error here; the reference would assert or silently treat them as empty).
//!
//! **Instances of an entry** (pycocotools `COCOeval._prepare`, `CGF1Eval.evaluateImg`): annotations
//! with that `image_id` whose `category_id` is in `categories[]` (others are dropped with a warning,
//! as the reference silently does; a missing `category_id` counts as the smallest listed id), minus
//! crowd annotations (`iscrowd` truthy → `ignore`), grouped by ascending category id, file order
//! within a category.
//!
//! **Kept predictions** (`evaluateImg`): predictions with that `image_id` and `score >= 0.5`
//! (`CGF1Eval(threshold=0.5)`), same category rule and ordering as instances. Predictions below
//! the threshold play no part.
//!
//! **IoU** (`CGF1Eval.computeIoU` → `maskUtils.iou`): for `segm`, `|d ∩ g| / |d ∪ g|` of the RLE
//! masks as a ratio of pixel counts (0 when disjoint); for `bbox`, pycocotools' `bbIou` on
//! `[x, y, w, h]` boxes as given in the files (SA-Co/Gold boxes are normalised by the image size;
//! a prediction without `bbox` gets pycocotools' `toBbox` of its mask, in pixels, as `loadRes` does).
//! Crowd instances are never compared (they are dropped before matching).
//!
//! **IoU thresholds** (pycocotools `Params`): `np.linspace(.5, .95, 10)`, reproduced bit for bit
//! ([`cgf1::iou_thresholds`]; the ninth is 0.8999999999999999).
//!
//! **Per-entry evaluation** (`evaluateImg`), with `G` instances and `D` kept predictions:
//! * `G = 0, D = 0`: image-level true negative (IL_TN); no instance counts, no local F1.
//! * `G > 0, D = 0`: IL_FN; per threshold TP = FP = 0, FN = G; local F1 and local positive F1 = 0.
//! * `D > 0`: one-to-one matching maximising the summed IoU (`linear_sum_assignment(-ious)`,
//!   reproduced step by step in [`assign`] so ties resolve as in scipy); per threshold `t`,
//!   TP = #matched pairs with IoU ≥ t, FP = D − TP, FN = G − TP;
//!   local precision `TP/(TP+FP+1e-4)`, local recall `TP/(TP+FN+1e-4)`,
//!   local F1 `2PR/(P+R+1e-4)`. IL_TP if `G > 0` (then local positive F1 = local F1), else IL_FP.
//!
//! **Oracle over several ground truths** (`_select_best_scoring`): each entry is evaluated against
//! every ground truth; starting from the first, a later evaluation replaces the current one when
//! both have a local F1 and the later mean over the 10 thresholds is strictly larger, or when the
//! later one has no local F1 (empty instances and no kept prediction: counted as perfect).
//!
//! **Accumulation** (`CGF1Eval.accumulate`), over the selected per-entry evaluations:
//! TP, FP, FN summed per threshold over entries that have counts; `positive_micro_FP` = FP summed
//! over entries with a local positive F1 (IL_TP and IL_FN entries); IL_TP/FP/TN/FN counted;
//! `valid_F1_count` = entries with a local positive F1 and `D > 0`. Then, per threshold:
//! * `precision = TP/(TP+FP+1e-4)`, `recall = TP/(TP+FN+1e-4)`, `F1 = 2PR/(P+R+1e-4)`
//! * `positive_micro_precision = TP/(TP+pmFP+1e-4)`,
//!   `positive_micro_F1 = 2·pmP·R/(pmP+R+1e-4)` (the paper's pmF1)
//! * `positive_macro_F1 = Σ local positive F1 / valid_F1_count` (NaN when the count is 0)
//! * `IL_recall = IL_TP/(IL_TP+IL_FN+1e-6)`, `IL_precision = IL_TP/(IL_TP+IL_FP+1e-6)`,
//!   `IL_F1 = 2PR/(P+R+1e-6)`, `IL_FPR = IL_FP/(IL_FP+IL_TN+1e-6)`,
//!   `IL_MCC = (TP·TN − FP·FN) / (sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) + 1e-6)` (image-level counts)
//! * `cgF1 = positive_micro_F1 · IL_MCC`, per threshold.
//!
//! **Summary and keys** (`CGF1Eval.summarize`, `CGF1_METRICS`, `CGF1Evaluator.evaluate`): the
//! threshold metrics are averaged over the thresholds (numpy's pairwise mean of the values `> -1`,
//! so NaN drops out; -1 if nothing is left) and also reported at 0.5 and 0.75; image-level metrics
//! are single numbers. Keys, in order: `cgF1_eval_{segm|bbox}_{cgF1, precision, recall, F1,
//! positive_macro_F1, positive_micro_F1, positive_micro_precision, IL_precision, IL_recall, IL_F1,
//! IL_FPR, IL_MCC}` then the seven threshold metrics with `@0.5`, then with `@0.75`.
//!
//! # The post's own figures (definitions chosen here)
//!
//! The research post reports three numbers the reference evaluator does not compute. They use the
//! same scored entries, the same kept predictions (score ≥ 0.5) and, per entry, the ground truth
//! the oracle selected. A *positive* entry has at least one (non-crowd, listed) instance; a
//! *negative* entry has none.
//! * `neg_correct` — share of negative entries with no kept prediction
//!   (= IL_TN / (IL_TN + IL_FP), i.e. 1 − IL_FPR without the epsilon). Computed by
//!   [`refusal::neg_correct_at`] — the same function `probe patch` and `probe steer` use (at
//!   [`SCORE_THRESHOLD`]), so `neg_correct` means one thing across the project.
//! * per-entry mask IoU — IoU of the union of the kept predicted masks with the union of the
//!   instance masks; 1 when both unions are empty (a correctly refused negative), 0 for a negative
//!   with any non-empty kept mask.
//! * `pos_mean_IoU` — mean per-entry mask IoU over positive entries ("mask quality on present
//!   concepts"; a missed entry counts 0).
//! * `mean_mask_IoU` — mean per-entry mask IoU over all scored entries ("positive-and-negative
//!   averaged").
//!
//! With these definitions `mean_mask_IoU = f·neg_correct + (1−f)·pos_mean_IoU` where f is the share
//! of negatives. The post's Tables 1.1/5.2 imply f between 0.74 and 0.80 across its rows (e.g. base:
//! 89.2 = f·95.8 + (1−f)·63.0 gives f = 0.80), so its figures are consistent with these definitions
//! on a negative-heavy sample but do not pin them down exactly. They are always mask-based; with
//! `--iou bbox` they are reported only when every kept prediction and instance has a mask.
//!
//! # How exactness is checked
//! `tests/reference.rs` compares against outputs recorded once from the reference code (pycocotools
//! 2.0.11, scipy 1.17.1, numpy 2.4.6, `cgf1_eval.py`) by `tests/fixtures/make_fixtures.py`: compressed
//! RLE strings, areas, boxes and IoUs of pycocotools; scipy's assignments on tie-heavy matrices; and
//! the evaluator's 26 numbers on a generated 90-entry, three-annotator case (segm and bbox, one and
//! three ground truths) — all bit-identical, not just within 1e-9. Floats are parsed correctly
//! rounded (serde_json `float_roundtrip`) so inputs read exactly as Python reads them.
//!
//! # Deliberate differences from the reference (all on inputs it mishandles)
//! * Malformed input is an error naming the file and entry: RLE whose `size` differs from its
//!   image (pycocotools would silently give IoU −1), counts that do not cover the image, predictions
//!   naming an `image_id` that is not an entry (the reference ignores them), duplicate ids,
//!   polygons (not supported), entries missing from an extra ground truth.
//! * `iscrowd` may be absent (taken as 0); `category_id` may be absent (see above).

pub mod assign;
pub mod cgf1;
pub mod coco;
pub mod error;
pub mod output;
pub mod predict;
pub mod refusal;
pub mod rle;
pub mod score;
pub mod shard;
pub mod subsample;

/// Re-exported so callers can build [`Detection`] masks without naming the crate themselves.
pub use image;

pub use coco::{
    Category, GtAnnotation, GtDataset, GtImage, Prediction, RleCounts, Segmentation, load_gt,
    load_predictions,
};
pub use error::{EvalError, Result};
pub use output::{FileIdentity, format_table, report_json, write_atomic};
pub use predict::{Detection, PredictConfig, PredictSummary, predict};
pub use refusal::{SCORE_THRESHOLD, is_kept, kept_count, neg_correct, neg_correct_at, pos_recall};
pub use rle::Rle;
pub use score::{IouType, PostMetrics, ScoreOptions, ScoreReport, score};
pub use subsample::Subsample;

use std::path::Path;

/// Score files: load the ground truths and predictions, score, and return the report together with
/// the identities (path, sha256) of the inputs.
pub fn score_files(
    gt_paths: &[&Path],
    pred_path: &Path,
    opts: &ScoreOptions,
) -> Result<(ScoreReport, Vec<FileIdentity>, FileIdentity)> {
    let mut gts = Vec::new();
    let mut ids = Vec::new();
    let mut names = Vec::new();
    for p in gt_paths {
        let bytes = coco::read_bytes(p)?;
        gts.push(coco::parse_gt(p, &bytes)?);
        ids.push(FileIdentity::of(p, &bytes));
        names.push(p.display().to_string());
    }
    let bytes = coco::read_bytes(pred_path)?;
    let preds = coco::parse_predictions(pred_path, &bytes)?;
    let pred_id = FileIdentity::of(pred_path, &bytes);
    let report = score(&gts, &names, &preds, &pred_path.display().to_string(), opts)?;
    Ok((report, ids, pred_id))
}
