//! `--subsample N --seed S`: the same N instance-exhaustive entries per subset every time, whatever
//! the file order; the prediction writer runs only those, and the scorer scores only those.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use image::{GrayImage, RgbImage};
use sam3lab_eval::predict::meta_path;
use sam3lab_eval::{
    Category, Detection, GtDataset, GtImage, PredictConfig, Prediction, ScoreOptions, Subsample, subsample,
};

/// [`sam3lab_eval::predict`] with no progress display.
fn predict<F>(cfg: &PredictConfig, model: F) -> sam3lab_eval::Result<sam3lab_eval::PredictSummary>
where
    F: FnMut(&RgbImage, &[String]) -> anyhow::Result<Vec<Vec<Detection>>>,
{
    sam3lab_eval::predict(cfg, &sam3lab_util::progress::NoProgress, model)
}

const W: u32 = 6;
const H: u32 = 4;

/// A subset: `n` entries over `n / 4` images, ids `base + k`; every seventh not instance-exhaustive.
fn subset(base: i64, n: usize) -> GtDataset {
    let images = (0..n)
        .map(|k| GtImage {
            id: base + k as i64,
            file_name: format!("img{}.png", k / 4),
            height: H,
            width: W,
            text_input: Some(format!("thing {k}")),
            is_instance_exhaustive: k % 7 != 3,
            is_pixel_exhaustive: None,
        })
        .collect();
    GtDataset { images, annotations: vec![], categories: vec![Category { id: 1, name: None }] }
}

fn ids(gt: &GtDataset, sub: &Subsample) -> Vec<i64> {
    sub.select(gt).into_iter().map(|i| gt.images[i].id).collect()
}

#[test]
fn the_same_n_entries_per_subset_every_time() {
    let sub = Subsample { n: 20, seed: 0 };
    // Seven subsets, as SA-Co/Gold: N each, all candidates, in file order, the same on every call.
    for s in 0..7 {
        let gt = subset(1000 * s, 90);
        let chosen = ids(&gt, &sub);
        assert_eq!(chosen.len(), 20, "subset {s}");
        assert_eq!(chosen, ids(&gt, &sub), "deterministic");
        assert_eq!(chosen, ids(&gt.clone(), &Subsample { n: 20, seed: 0 }));
        assert!(chosen.windows(2).all(|w| w[0] < w[1]), "file order");
        for id in &chosen {
            let e = gt.images.iter().find(|e| e.id == *id).unwrap();
            assert!(e.is_instance_exhaustive, "only scorable entries are candidates");
        }
    }
    let gt = subset(0, 90);
    let chosen: BTreeSet<i64> = ids(&gt, &sub).into_iter().collect();
    // Independent of the file's order.
    let mut shuffled = gt.clone();
    shuffled.images.reverse();
    shuffled.images.swap(3, 40);
    assert_eq!(ids(&shuffled, &sub).into_iter().collect::<BTreeSet<_>>(), chosen);
    // A larger N contains a smaller one; another seed picks other entries.
    let bigger: BTreeSet<i64> = ids(&gt, &Subsample { n: 40, seed: 0 }).into_iter().collect();
    assert!(chosen.is_subset(&bigger));
    let other: BTreeSet<i64> = ids(&gt, &Subsample { n: 20, seed: 1 }).into_iter().collect();
    assert_ne!(other, chosen);
    // Fewer candidates than N: all of them.
    assert_eq!(ids(&gt, &Subsample { n: 500, seed: 0 }).len(), Subsample::candidates(&gt));
    assert_eq!(Subsample::candidates(&gt), 90 - 13);
}

fn write_subset(dir: &Path, gt: &GtDataset) -> PathBuf {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    for e in &gt.images {
        let p = dir.join("images").join(&e.file_name);
        if !p.exists() {
            RgbImage::from_pixel(W, H, image::Rgb([1, 2, 3])).save(p).unwrap();
        }
    }
    let path = dir.join("gt.json");
    std::fs::write(&path, serde_json::to_vec(gt).unwrap()).unwrap();
    path
}

/// One confident full-image detection for every phrase (a false positive on these negatives).
fn fake(_img: &RgbImage, phrases: &[String]) -> anyhow::Result<Vec<Vec<Detection>>> {
    Ok(phrases
        .iter()
        .map(|_| vec![Detection { score: 0.9, mask: GrayImage::from_pixel(W, H, image::Luma([255])), bbox: None }])
        .collect())
}

#[test]
fn predict_runs_and_score_scores_only_the_subsample() {
    let dir = tempfile::tempdir().unwrap();
    let gt = subset(0, 40);
    let gt_path = write_subset(dir.path(), &gt);
    let sub = Subsample { n: 10, seed: 0 };
    let want = ids(&gt, &sub);
    let cfg = |out: &str| PredictConfig {
        gt_path: gt_path.clone(),
        images_dir: dir.path().join("images"),
        out: dir.path().join(out),
        threshold: 0.3,
        model_identity: "fake".into(),
        only_exhaustive: false,
        subsample: Some(sub),
        extra_meta: vec![("intervention".into(), serde_json::json!([{"kind": "zero"}]))],
        shard: None,
    };
    let mut phrases_run = Vec::new();
    let summary = predict(&cfg("a.json"), |img, ph| {
        phrases_run.extend(ph.iter().cloned());
        fake(img, ph)
    })
    .unwrap();
    assert_eq!(summary.entries, 10);
    assert_eq!(phrases_run.len(), 10, "only the chosen entries reach the model");
    predict(&cfg("b.json"), fake).unwrap();
    let bytes = std::fs::read(dir.path().join("a.json")).unwrap();
    assert_eq!(bytes, std::fs::read(dir.path().join("b.json")).unwrap(), "same entries, same bytes");
    let preds: Vec<Prediction> = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(preds.iter().map(|p| p.image_id).collect::<Vec<_>>(), want);
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(meta_path(&dir.path().join("a.json"))).unwrap()).unwrap();
    assert_eq!(meta["subsample"]["n"], 10);
    assert_eq!(meta["subsample"]["seed"], 0);
    assert_eq!(meta["subsample"]["image_ids"], serde_json::json!(want));
    assert_eq!(meta["intervention"][0]["kind"], "zero");

    // Scoring the subsample: exactly the chosen entries, all negatives with a kept prediction.
    let (report, _, _, r) =
        subsample::score_files(&[gt_path.as_path()], &dir.path().join("a.json"), &ScoreOptions::default(), &sub).unwrap();
    assert_eq!((r.chosen, r.dropped_predictions), (10, 0));
    assert_eq!(report.entries.len(), 10);
    assert_eq!(report.post.as_ref().unwrap().neg_correct, Some(0.0));
    // Without the subsample, the unpredicted entries would count as refusals.
    let (full, _, _) = sam3lab_eval::score_files(&[gt_path.as_path()], &dir.path().join("a.json"), &ScoreOptions::default()).unwrap();
    assert!(full.post.as_ref().unwrap().neg_correct.unwrap() > 0.5);
    // A full prediction file scored on the subsample: the others' predictions are left out.
    let full_cfg = PredictConfig { subsample: None, ..cfg("all.json") };
    predict(&full_cfg, fake).unwrap();
    let (report, _, _, r) =
        subsample::score_files(&[gt_path.as_path()], &dir.path().join("all.json"), &ScoreOptions::default(), &sub).unwrap();
    assert_eq!((r.chosen, r.dropped_predictions), (10, 40 - 10));
    assert_eq!(report.entries.len(), 10);
}
