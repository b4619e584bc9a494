//! Hand-worked scoring cases: every branch of the per-entry evaluation, the accumulation, the
//! oracle, the post's figures, and the errors on malformed input. Expected values are derived in the
//! comments from the definitions, independently of the crate's code.

use sam3lab_eval::cgf1::ImageLevel;
use sam3lab_eval::{
    Category, EvalError, GtAnnotation, GtDataset, GtImage, IouType, Prediction, Rle, ScoreOptions,
    Segmentation, score, score_files,
};

const H: u32 = 10;
const W: u32 = 10;

/// Mask with rows y0..y1 and columns x0..x1 set (half-open).
fn rect(y0: u32, y1: u32, x0: u32, x1: u32) -> Rle {
    let mut m = vec![0u8; (H * W) as usize];
    for y in y0..y1 {
        for x in x0..x1 {
            m[(y * W + x) as usize] = 1;
        }
    }
    Rle::from_row_major(H, W, &m)
}

fn image(id: i64, exhaustive: bool) -> GtImage {
    GtImage {
        id,
        file_name: format!("img{id}.jpg"),
        height: H,
        width: W,
        text_input: Some(format!("np {id}")),
        is_instance_exhaustive: exhaustive,
        is_pixel_exhaustive: None,
    }
}

fn ann(image_id: i64, m: &Rle) -> GtAnnotation {
    GtAnnotation {
        id: None,
        image_id,
        segmentation: Some(Segmentation::from_rle(m)),
        bbox: Some(m.to_bbox().to_vec()),
        area: None,
        iscrowd: false,
        category_id: Some(1),
    }
}

fn pred(image_id: i64, m: &Rle, score: f64) -> Prediction {
    Prediction {
        image_id,
        category_id: Some(1),
        segmentation: Some(Segmentation::from_rle(m)),
        bbox: None,
        score,
    }
}

fn gt(images: Vec<GtImage>, annotations: Vec<GtAnnotation>) -> GtDataset {
    GtDataset {
        images,
        annotations,
        categories: vec![Category {
            id: 1,
            name: Some("object".into()),
        }],
    }
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("gt{i}.json")).collect()
}

fn segm() -> ScoreOptions {
    ScoreOptions {
        iou_type: IouType::Segm,
        score_threshold: 0.5,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12
}

/// Entries:
/// * 1: no instances, no predictions → IL_TN
/// * 2: two instances, one prediction at 0.49999 (dropped) → IL_FN, FN = 2
/// * 3: no instances, one prediction at 0.9 → IL_FP, FP = 1
/// * 4: instances A (row 0, 10 px) and B (row 5, cols 0..5, 5 px); predictions p1 = row 0 cols 0..8
///   (IoU with A 8/10 = 0.8), p2 = row 5 cols 0..3 (IoU with B 3/5 = 0.6), p3 = row 9 cols 0..4 at
///   score exactly 0.5 (kept, matches nothing), p4 = A itself at 0.4999 (dropped) → IL_TP
/// * 5: not instance-exhaustive, a confident false positive → excluded
/// * 6: no instances, no predictions → IL_TN
fn combined() -> (GtDataset, Vec<Prediction>) {
    let a = rect(0, 1, 0, 10);
    let b = rect(5, 6, 0, 5);
    let g = gt(
        (1..=6).map(|i| image(i, i != 5)).collect(),
        vec![
            ann(2, &rect(2, 4, 2, 4)),
            ann(2, &rect(7, 9, 7, 9)),
            ann(4, &a),
            ann(4, &b),
            ann(5, &rect(0, 2, 0, 2)),
        ],
    );
    let p = vec![
        pred(2, &rect(2, 4, 2, 4), 0.49999),
        pred(3, &rect(3, 6, 3, 6), 0.9),
        pred(4, &rect(0, 1, 0, 8), 0.95),
        pred(4, &rect(5, 6, 0, 3), 0.7),
        pred(4, &rect(9, 10, 0, 4), 0.5),
        pred(4, &a, 0.4999),
        pred(5, &rect(6, 9, 6, 9), 0.99),
    ];
    (g, p)
}

#[test]
fn every_branch_and_the_accumulation() {
    let (g, p) = combined();
    let r = score(&[g], &names(1), &p, "pred.json", &segm()).unwrap();
    assert_eq!(r.num_excluded, 1);
    assert_eq!(
        r.entries.iter().map(|e| e.image_id).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 6]
    );
    let levels: Vec<ImageLevel> = r.entries.iter().map(|e| e.image_level).collect();
    use ImageLevel::*;
    assert_eq!(
        levels,
        vec![
            TrueNegative,
            FalseNegative,
            FalsePositive,
            TruePositive,
            TrueNegative
        ]
    );

    // Entry 4: TP = 2 while t <= 0.6, 1 while t <= 0.8 (0.8 itself counts: IoU 8/10 == threshold 0.8),
    // 0 above.
    let tp4 = [2, 2, 2, 1, 1, 1, 1, 0, 0, 0];
    let e4 = &r.entries[3];
    let c4 = e4.counts.as_ref().unwrap();
    assert_eq!(c4.tp, tp4);
    assert_eq!(c4.fp, tp4.map(|t| 3 - t));
    assert_eq!(c4.fn_, tp4.map(|t| 2 - t));
    // Entry 2 (false negative): zeros and FN = 2; entry 3 (false positive): FP = 1.
    assert_eq!(r.entries[1].counts.as_ref().unwrap().fn_, [2; 10]);
    assert_eq!(r.entries[1].local_positive_f1, Some([0.0; 10]));
    assert_eq!(r.entries[2].counts.as_ref().unwrap().fp, [1; 10]);
    assert_eq!(r.entries[2].local_positive_f1, None);
    assert!(r.entries[0].counts.is_none() && r.entries[0].local_f1.is_none());

    // Accumulated by hand: TP from entry 4 only; FP = entry 3's 1 + entry 4's; positive-micro FP =
    // entry 4's only; FN = entry 2's 2 + entry 4's.
    let a = &r.accumulated;
    assert_eq!(a.tp, tp4);
    assert_eq!(a.fp, tp4.map(|t| 1 + 3 - t));
    assert_eq!(a.positive_fp, tp4.map(|t| 3 - t));
    assert_eq!(a.fn_, tp4.map(|t| 2 + 2 - t));
    assert_eq!((a.il_tp, a.il_fp, a.il_tn, a.il_fn), (1, 1, 2, 1));
    assert_eq!(a.positive_f1_count, 1);

    // Curves from the formulas.
    let il_p = 1.0 / (2.0 + 1e-6);
    let il_r = 1.0 / (2.0 + 1e-6);
    let mcc = (1.0 * 2.0 - 1.0 * 1.0) / ((2.0f64 * 2.0 * 3.0 * 3.0).sqrt() + 1e-6);
    let m = |k: &str| r.metric(&format!("cgF1_eval_segm_{k}")).unwrap();
    assert!(close(m("IL_precision"), il_p));
    assert!(close(m("IL_recall"), il_r));
    assert!(close(m("IL_F1"), 2.0 * il_p * il_r / (il_p + il_r + 1e-6)));
    assert!(close(m("IL_FPR"), 1.0 / (1.0 + 2.0 + 1e-6)));
    assert!(close(m("IL_MCC"), mcc));
    let mut sums = [0.0f64; 7];
    for (t, &tp) in tp4.iter().enumerate() {
        let tp = tp as f64;
        let p = tp / (tp + (4.0 - tp) + 1e-4); // FP total = 4 - TP
        let rec = tp / (tp + (4.0 - tp) + 1e-4); // FN total = 4 - TP
        let f1 = 2.0 * p * rec / (p + rec + 1e-4);
        let pmp = tp / (tp + (3.0 - tp) + 1e-4);
        let pmf1 = 2.0 * pmp * rec / (pmp + rec + 1e-4);
        let lp = tp / (3.0 + 1e-4);
        let lr = tp / (2.0 + 1e-4);
        let local = 2.0 * lp * lr / (lp + lr + 1e-4);
        let vals = [pmf1 * mcc, p, rec, f1, local, pmf1, pmp];
        for (s, v) in sums.iter_mut().zip(vals) {
            *s += v;
        }
        if t == 0 || t == 5 {
            let at = if t == 0 { "@0.5" } else { "@0.75" };
            let keys = [
                "cgF1",
                "precision",
                "recall",
                "F1",
                "positive_macro_F1",
                "positive_micro_F1",
                "positive_micro_precision",
            ];
            for (k, v) in keys.iter().zip(vals) {
                assert!(
                    close(m(&format!("{k}{at}")), v),
                    "{k}{at}: {} vs {v}",
                    m(&format!("{k}{at}"))
                );
            }
        }
    }
    let keys = [
        "cgF1",
        "precision",
        "recall",
        "F1",
        "positive_macro_F1",
        "positive_micro_F1",
        "positive_micro_precision",
    ];
    for (k, s) in keys.iter().zip(sums) {
        assert!(close(m(k), s / 10.0), "{k}: {} vs {}", m(k), s / 10.0);
    }
    assert!(m("cgF1") > 0.0);

    // Post figures: negatives 1, 3, 6 → 2 of 3 refused. Per-entry mask IoU: 1 (entry 1), 0 (entry 2:
    // nothing kept), 0 (entry 3), entry 4: kept union = 8 + 3 + 4 px, instance union = 10 + 5 px,
    // intersection 8 + 3, union 10 + 5 + 4 → 11/19; 1 (entry 6).
    let post = r.post.as_ref().unwrap();
    assert!(close(post.neg_correct.unwrap(), 2.0 / 3.0));
    assert!(close(post.pos_mean_iou.unwrap(), (0.0 + 11.0 / 19.0) / 2.0));
    assert!(close(
        post.mean_mask_iou.unwrap(),
        (1.0 + 0.0 + 0.0 + 11.0 / 19.0 + 1.0) / 5.0
    ));
    assert_eq!((r.num_positive, r.num_negative), (2, 3));
}

#[test]
fn only_true_negatives_give_the_reference_minus_one_for_macro_f1() {
    let g = gt(vec![image(1, true)], vec![]);
    let r = score(&[g], &names(1), &[], "pred.json", &segm()).unwrap();
    let m = |k: &str| r.metric(&format!("cgF1_eval_segm_{k}")).unwrap();
    // positive_macro_F1 = 0/0 = NaN at every threshold; summarize drops NaN and reports -1.
    assert_eq!(m("positive_macro_F1"), -1.0);
    assert_eq!(m("positive_macro_F1@0.5"), -1.0);
    assert_eq!(m("cgF1"), 0.0);
    assert_eq!(m("IL_MCC"), 0.0);
    assert_eq!(m("IL_FPR"), 0.0);
    let post = r.post.unwrap();
    assert_eq!(
        (post.neg_correct, post.pos_mean_iou, post.mean_mask_iou),
        (Some(1.0), None, Some(1.0))
    );
}

#[test]
fn key_names_and_order_follow_the_reference() {
    let (g, p) = combined();
    let r = score(&[g], &names(1), &p, "pred.json", &segm()).unwrap();
    let keys: Vec<&str> = r.metrics.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys.len(), 26);
    assert_eq!(keys[0], "cgF1_eval_segm_cgF1");
    assert_eq!(keys[11], "cgF1_eval_segm_IL_MCC");
    assert_eq!(keys[12], "cgF1_eval_segm_cgF1@0.5");
    assert_eq!(keys[25], "cgF1_eval_segm_positive_micro_precision@0.75");
}

/// Two annotators. Entry 1: a has M, b has a shifted M'; the prediction is M → a wins (F1 higher).
/// Entry 2: the prediction is M' → b wins. Entry 3: a has an instance, b none, nothing predicted →
/// b is both-empty, counted perfect. Entry 4: a empty, b has an instance, nothing predicted → a is
/// both-empty and stays. Entry 5: a and b identical → ties keep a. Entry 6: not exhaustive in b →
/// excluded. Entry 7: not exhaustive in a → excluded.
#[test]
fn oracle_choice_between_two_ground_truths() {
    let m = rect(0, 4, 0, 4);
    let m2 = rect(1, 5, 1, 5); // IoU with m: 9/23
    let ga = gt(
        (1..=7).map(|i| image(i, i != 7)).collect(),
        vec![ann(1, &m), ann(2, &m), ann(3, &m), ann(5, &m), ann(6, &m)],
    );
    let gb = gt(
        (1..=7).map(|i| image(i, i != 6)).collect(),
        vec![ann(1, &m2), ann(2, &m2), ann(4, &m), ann(5, &m), ann(6, &m)],
    );
    let p = vec![
        pred(1, &m, 0.9),
        pred(2, &m2, 0.9),
        pred(5, &m, 0.9),
        pred(6, &rect(7, 9, 7, 9), 0.9),
    ];
    let r = score(&[ga, gb], &names(2), &p, "pred.json", &segm()).unwrap();
    let chosen: Vec<(i64, usize)> = r.entries.iter().map(|e| (e.image_id, e.gt_index)).collect();
    assert_eq!(chosen, vec![(1, 0), (2, 1), (3, 1), (4, 0), (5, 0)]);
    assert_eq!(r.num_excluded, 2);
    use ImageLevel::*;
    let levels: Vec<ImageLevel> = r.entries.iter().map(|e| e.image_level).collect();
    assert_eq!(
        levels,
        vec![
            TruePositive,
            TruePositive,
            TrueNegative,
            TrueNegative,
            TruePositive
        ]
    );
    // Every chosen positive entry is a perfect match: TP = 3 at every threshold.
    assert_eq!(r.accumulated.tp, [3; 10]);
    assert_eq!(r.accumulated.fp, [0; 10]);

    // With b alone, entry 1 is a poor match (IoU 9/23 < 0.5) and entry 3 a true negative.
    let gb_only = gt(
        (1..=7).map(|i| image(i, i != 6)).collect(),
        vec![ann(1, &m2), ann(2, &m2), ann(4, &m), ann(5, &m), ann(6, &m)],
    );
    let r_b = score(&[gb_only], &names(1), &p, "pred.json", &segm()).unwrap();
    assert_eq!(r_b.entries[0].counts.as_ref().unwrap().tp, [0; 10]);
}

#[test]
fn bbox_iou_uses_the_mask_box_when_the_prediction_has_none() {
    // Instance box [0, 0, 4, 4]; the prediction's mask covers rows 0..2, cols 0..4 → toBbox
    // [0, 0, 4, 2] → IoU 8/16 = 0.5: a TP at threshold 0.5 only.
    let mut a = ann(1, &rect(0, 4, 0, 4));
    a.bbox = Some(vec![0.0, 0.0, 4.0, 4.0]);
    let g = gt(vec![image(1, true)], vec![a]);
    let p = vec![pred(1, &rect(0, 2, 0, 4), 0.8)];
    let opts = ScoreOptions {
        iou_type: IouType::Bbox,
        score_threshold: 0.5,
    };
    let r = score(std::slice::from_ref(&g), &names(1), &p, "pred.json", &opts).unwrap();
    assert_eq!(r.accumulated.tp, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(r.metrics[0].0, "cgF1_eval_bbox_cgF1");
    // A given bbox wins over the mask.
    let mut p2 = p.clone();
    p2[0].bbox = Some(vec![0.0, 0.0, 4.0, 4.0]);
    let r2 = score(&[g], &names(1), &p2, "pred.json", &opts).unwrap();
    assert_eq!(r2.accumulated.tp, [1; 10]);
}

#[test]
fn crowd_instances_and_unlisted_categories_are_ignored() {
    let mut crowd = ann(1, &rect(0, 5, 0, 5));
    crowd.iscrowd = true;
    let mut other_cat = ann(1, &rect(6, 8, 6, 8));
    other_cat.category_id = Some(7);
    let g = gt(vec![image(1, true)], vec![crowd, other_cat]);
    let r = score(&[g], &names(1), &[], "pred.json", &segm()).unwrap();
    // Nothing left to find: a true negative.
    assert_eq!(r.entries[0].image_level, ImageLevel::TrueNegative);
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
}

fn err_text(e: EvalError) -> String {
    e.to_string()
}

/// The error text of scoring `preds` (as `pred.json`) against `gts` (named `gt0.json`, …).
fn score_err(gts: &[GtDataset], preds: &[Prediction]) -> String {
    err_text(score(gts, &names(gts.len()), preds, "pred.json", &segm()).unwrap_err())
}

#[test]
fn malformed_json_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let gt_path = dir.path().join("gt.json");
    std::fs::write(&gt_path, serde_json::to_vec(&combined().0).unwrap()).unwrap();
    let bad = dir.path().join("pred.json");
    std::fs::write(&bad, b"[{\"image_id\": 1, \"score\": 0.9,").unwrap();
    let msg = err_text(score_files(&[gt_path.as_path()], &bad, &segm()).unwrap_err());
    assert!(msg.contains("pred.json") && msg.contains("line 1"), "{msg}");
    let bad_gt = dir.path().join("bad_gt.json");
    std::fs::write(&bad_gt, b"{\"images\": [{\"id\": 1}]}").unwrap();
    let msg = err_text(score_files(&[bad_gt.as_path()], &bad, &segm()).unwrap_err());
    assert!(
        msg.contains("bad_gt.json") && msg.contains("file_name"),
        "{msg}"
    );
    let missing = dir.path().join("nope.json");
    let msg = err_text(score_files(&[missing.as_path()], &bad, &segm()).unwrap_err());
    assert!(msg.contains("nope.json"), "{msg}");
}

#[test]
fn prediction_for_unknown_entry_is_an_error() {
    let (g, mut p) = combined();
    p.push(pred(42, &rect(0, 1, 0, 1), 0.9));
    let msg = score_err(&[g], &p);
    assert!(
        msg.contains("prediction [7]")
            && msg.contains("image_id 42")
            && msg.contains("not an entry"),
        "{msg}"
    );
}

#[test]
fn rle_size_disagreeing_with_the_image_is_an_error() {
    let (g, mut p) = combined();
    let wrong = Rle::from_row_major(5, 20, &[0; 100]);
    p.push(pred(4, &wrong, 0.9));
    let msg = score_err(std::slice::from_ref(&g), &p);
    assert!(
        msg.contains("image_id 4") && msg.contains("RLE size is 5x20") && msg.contains("10x10"),
        "{msg}"
    );
    let mut g2 = g;
    g2.annotations.push(ann(1, &wrong));
    let msg = score_err(&[g2], &[]);
    assert!(
        msg.contains("gt0.json") && msg.contains("annotations[5]") && msg.contains("RLE size"),
        "{msg}"
    );
}

#[test]
fn other_malformed_inputs_are_errors() {
    let (g, p) = combined();
    // RLE counts not covering the image.
    let mut p2 = p.clone();
    p2[0].segmentation = Some(Segmentation::Rle {
        size: [H, W],
        counts: sam3lab_eval::RleCounts::Uncompressed(vec![5, 5]),
    });
    let msg = score_err(std::slice::from_ref(&g), &p2);
    assert!(msg.contains("cover 10 pixels"), "{msg}");
    // Polygons.
    let mut p3 = p.clone();
    p3[0].segmentation = Some(Segmentation::Polygons(vec![vec![
        0.0, 0.0, 1.0, 0.0, 1.0, 1.0,
    ]]));
    let msg = score_err(std::slice::from_ref(&g), &p3);
    assert!(msg.contains("polygon"), "{msg}");
    // Duplicate entry ids.
    let mut g4 = g.clone();
    g4.images.push(image(3, true));
    let msg = score_err(&[g4], &p);
    assert!(msg.contains("image id 3 appears more than once"), "{msg}");
    // An extra ground truth missing an entry.
    let mut g5 = g.clone();
    g5.images.retain(|i| i.id != 6);
    let msg = score_err(&[g.clone(), g5], &p);
    assert!(
        msg.contains("gt1.json") && msg.contains("entry id 6"),
        "{msg}"
    );
    // Annotation pointing at no entry.
    let mut g6 = g;
    g6.annotations.push(ann(99, &rect(0, 1, 0, 1)));
    let msg = score_err(&[g6], &p);
    assert!(
        msg.contains("image_id 99") && msg.contains("not in images"),
        "{msg}"
    );
}

#[test]
fn gt_and_predictions_round_trip_through_json() {
    let (g, p) = combined();
    let g2: GtDataset = serde_json::from_slice(&serde_json::to_vec(&g).unwrap()).unwrap();
    let p2: Vec<Prediction> = serde_json::from_slice(&serde_json::to_vec(&p).unwrap()).unwrap();
    let r1 = score(&[g], &names(1), &p, "pred.json", &segm()).unwrap();
    let r2 = score(&[g2], &names(1), &p2, "pred.json", &segm()).unwrap();
    assert_eq!(r1.metrics, r2.metrics);
    // Flags written as 0/1 (as SA-Co/Gold does) read as booleans; uncompressed counts decode.
    let text = r#"{"images":[{"id":5,"file_name":"a.jpg","height":2,"width":2,"text_input":"cat","is_instance_exhaustive":1}],
        "annotations":[{"image_id":5,"segmentation":{"size":[2,2],"counts":[1,2,1]},"iscrowd":0,"category_id":1}],
        "categories":[{"id":1}]}"#;
    let g3: GtDataset = serde_json::from_str(text).unwrap();
    assert!(g3.images[0].is_instance_exhaustive);
    let rle = g3.annotations[0]
        .segmentation
        .as_ref()
        .unwrap()
        .decode(2, 2)
        .unwrap();
    assert_eq!(rle.to_row_major(), vec![0, 1, 1, 0]);
}
