//! The prediction writer with a fake model: grouping by image, thresholding, resuming after an
//! interruption (also with a torn last line), refusing a mismatched resume, and clear errors.

use std::path::{Path, PathBuf};

use image::{GrayImage, RgbImage};
use sam3lab_eval::predict::{meta_path, partial_path};
use sam3lab_eval::{
    Category, Detection, GtAnnotation, GtDataset, GtImage, PredictConfig, Prediction, Rle,
    ScoreOptions, Segmentation, score_files,
};

/// [`sam3lab_eval::predict`] with no progress display.
fn predict<F>(cfg: &PredictConfig, model: F) -> sam3lab_eval::Result<sam3lab_eval::PredictSummary>
where
    F: FnMut(&RgbImage, &[String]) -> anyhow::Result<Vec<Vec<Detection>>>,
{
    sam3lab_eval::predict(cfg, &sam3lab_util::progress::NoProgress, model)
}

const W: u32 = 12;
const H: u32 = 8;

/// The fake model's mask for a phrase: a rectangle depending on the phrase length.
fn phrase_mask(phrase: &str) -> GrayImage {
    let n = phrase.len() as u32;
    GrayImage::from_fn(W, H, |x, y| {
        image::Luma([((x < 2 + n % 8) && (y < 1 + n % 6)) as u8 * 255])
    })
}

fn mask_rle(m: &GrayImage) -> Rle {
    Rle::from_row_major(H, W, m.as_raw())
}

/// Three images; entries (id: image, phrase): 1: a "cat", 2: a "dog" (negative), 3: b "horse",
/// 4: b "bird" (not exhaustive), 5: c "sheep".
fn setup(dir: &Path) -> PathBuf {
    let imgs = dir.join("images");
    std::fs::create_dir_all(imgs.join("sub")).unwrap();
    for f in ["a.png", "b.png", "sub/c.png"] {
        RgbImage::from_pixel(W, H, image::Rgb([10, 20, 30]))
            .save(imgs.join(f))
            .unwrap();
    }
    let entries = [
        (1, "a.png", "cat", true),
        (2, "a.png", "dog", true),
        (3, "b.png", "horse", true),
        (4, "b.png", "bird", false),
        (5, "sub/c.png", "sheep", true),
    ];
    let images = entries
        .iter()
        .map(|&(id, f, np, ex)| GtImage {
            id,
            file_name: f.into(),
            height: H,
            width: W,
            text_input: Some(np.into()),
            is_instance_exhaustive: ex,
            is_pixel_exhaustive: None,
        })
        .collect();
    // Instances equal to what the fake model predicts for the positive phrases.
    let annotations = [(1, "cat"), (3, "horse"), (5, "sheep")]
        .iter()
        .map(|&(id, np)| {
            let rle = mask_rle(&phrase_mask(np));
            GtAnnotation {
                id: Some(id),
                image_id: id,
                segmentation: Some(Segmentation::from_rle(&rle)),
                bbox: Some(rle.to_bbox().to_vec()),
                area: None,
                iscrowd: false,
                category_id: Some(1),
            }
        })
        .collect();
    let gt = GtDataset {
        images,
        annotations,
        categories: vec![Category { id: 1, name: None }],
    };
    let path = dir.join("gt.json");
    std::fs::write(&path, serde_json::to_vec(&gt).unwrap()).unwrap();
    path
}

/// Confident on the positive phrases, 0.3 (below the 0.5 scoring threshold, above the 0.25 writing
/// threshold) on "dog", and a 0.1 detection everywhere that must not be written.
fn fake(_img: &RgbImage, phrases: &[String]) -> anyhow::Result<Vec<Vec<Detection>>> {
    Ok(phrases
        .iter()
        .map(|p| {
            let score = if p == "dog" { 0.3 } else { 0.912345678 };
            vec![
                Detection {
                    score,
                    mask: phrase_mask(p),
                    bbox: None,
                },
                Detection {
                    score: 0.1,
                    mask: phrase_mask("x"),
                    bbox: None,
                },
            ]
        })
        .collect())
}

fn config(dir: &Path, gt: &Path) -> PredictConfig {
    PredictConfig {
        gt_path: gt.to_path_buf(),
        images_dir: dir.join("images"),
        out: dir.join("pred.json"),
        threshold: 0.25,
        model_identity: "fake-model".into(),
        only_exhaustive: false,
        subsample: None,
        extra_meta: vec![],
        shard: None,
    }
}

#[test]
fn writes_predictions_one_model_call_per_image() {
    let dir = tempfile::tempdir().unwrap();
    let gt = setup(dir.path());
    let cfg = config(dir.path(), &gt);
    let mut calls: Vec<Vec<String>> = Vec::new();
    let summary = predict(&cfg, |img, phrases| {
        calls.push(phrases.to_vec());
        fake(img, phrases)
    })
    .unwrap();
    assert_eq!(
        calls,
        vec![
            vec!["cat".to_string(), "dog".into()],
            vec!["horse".into(), "bird".into()],
            vec!["sheep".into()]
        ]
    );
    assert_eq!(
        (
            summary.entries,
            summary.images,
            summary.model_calls,
            summary.resumed_entries
        ),
        (5, 3, 3, 0)
    );
    assert_eq!(summary.predictions, 5, "one per phrase above 0.25");
    assert!(!partial_path(&cfg.out).exists());
    assert!(meta_path(&cfg.out).exists());

    let preds: Vec<Prediction> = serde_json::from_slice(&std::fs::read(&cfg.out).unwrap()).unwrap();
    assert_eq!(
        preds.iter().map(|p| p.image_id).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(preds[0].score, 0.91235); // rounded to 5 decimals like SAM3's writer
    let rle = preds[0]
        .segmentation
        .as_ref()
        .unwrap()
        .decode(H, W)
        .unwrap();
    assert_eq!(rle, mask_rle(&phrase_mask("cat")));
    // Box from the mask, normalised: "cat" covers x < 5, y < 4.
    assert_eq!(
        preds[0].bbox.as_deref(),
        Some(
            &[0.0, 0.0, 5.0 / 12.0, 0.5].map(|v: f64| format!("{v:.5}").parse::<f64>().unwrap())[..]
        )
    );

    // End to end: the fake model reproduces the instances and refuses "dog" at the 0.5 threshold.
    let (report, _, _) = score_files(&[gt.as_path()], &cfg.out, &ScoreOptions::default()).unwrap();
    assert_eq!(report.num_excluded, 1);
    let a = &report.accumulated;
    assert_eq!((a.il_tp, a.il_fp, a.il_tn, a.il_fn), (3, 0, 1, 0));
    assert_eq!(a.tp, [3; 10]);
    let cg = report.metric("cgF1_eval_segm_cgF1").unwrap();
    assert!(cg > 0.9999 && cg < 1.0, "{cg}");
}

#[test]
fn resumes_after_interruption_with_identical_output() {
    let dir = tempfile::tempdir().unwrap();
    let gt = setup(dir.path());
    // Reference: one uninterrupted run.
    let mut clean_cfg = config(dir.path(), &gt);
    clean_cfg.out = dir.path().join("clean.json");
    predict(&clean_cfg, fake).unwrap();
    let clean = std::fs::read(&clean_cfg.out).unwrap();

    let cfg = config(dir.path(), &gt);
    let mut n = 0;
    let err = predict(&cfg, |img, phrases| {
        n += 1;
        if n == 2 {
            anyhow::bail!("out of memory (simulated)")
        } else {
            fake(img, phrases)
        }
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("b.png") && err.to_string().contains("simulated"),
        "{err}"
    );
    assert!(!cfg.out.exists(), "no final file after an interruption");
    let partial = std::fs::read_to_string(partial_path(&cfg.out)).unwrap();
    assert_eq!(
        partial.lines().count(),
        3,
        "header + entries 1 and 2:\n{partial}"
    );

    // Simulate a kill in the middle of writing the next line.
    let mut torn = partial.clone();
    torn.push_str("{\"image_id\":3,\"predictions\":[{\"image_");
    std::fs::write(partial_path(&cfg.out), torn).unwrap();

    let mut calls: Vec<Vec<String>> = Vec::new();
    let summary = predict(&cfg, |img, phrases| {
        calls.push(phrases.to_vec());
        fake(img, phrases)
    })
    .unwrap();
    assert_eq!(
        calls,
        vec![
            vec!["horse".to_string(), "bird".into()],
            vec!["sheep".into()]
        ]
    );
    assert_eq!(summary.resumed_entries, 2);
    assert_eq!(
        std::fs::read(&cfg.out).unwrap(),
        clean,
        "resumed output equals the uninterrupted one"
    );
}

#[test]
fn resume_with_other_settings_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gt = setup(dir.path());
    let cfg = config(dir.path(), &gt);
    let _ = predict(&cfg, |_, _| anyhow::bail!("stop")).unwrap_err();
    let mut other = cfg.clone();
    other.threshold = 0.5;
    let msg = predict(&other, fake).unwrap_err().to_string();
    assert!(
        msg.contains("different run") && msg.contains("partial.jsonl"),
        "{msg}"
    );
}

#[test]
fn bad_model_output_and_bad_images_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let gt = setup(dir.path());
    let cfg = config(dir.path(), &gt);
    let msg = predict(&cfg, |_, _| Ok(vec![vec![]]))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("1 detection lists for 2 noun phrases"),
        "{msg}"
    );
    std::fs::remove_file(partial_path(&cfg.out)).unwrap();

    let msg = predict(&cfg, |_, p| {
        Ok(p.iter()
            .map(|_| {
                vec![Detection {
                    score: 0.9,
                    mask: GrayImage::new(3, 3),
                    bbox: None,
                }]
            })
            .collect())
    })
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("3x3") && msg.contains("12x8") && msg.contains("\"cat\""),
        "{msg}"
    );
    std::fs::remove_file(partial_path(&cfg.out)).unwrap();

    std::fs::remove_file(dir.path().join("images/sub/c.png")).unwrap();
    let msg = predict(&cfg, fake).unwrap_err().to_string();
    assert!(msg.contains("c.png") && msg.contains("entry id 5"), "{msg}");
    std::fs::remove_file(partial_path(&cfg.out)).unwrap();

    RgbImage::new(5, 5)
        .save(dir.path().join("images/sub/c.png"))
        .unwrap();
    let msg = predict(&cfg, fake).unwrap_err().to_string();
    assert!(msg.contains("5x5") && msg.contains("entry id 5"), "{msg}");
}

#[test]
fn only_exhaustive_skips_entries_the_scorer_ignores() {
    let dir = tempfile::tempdir().unwrap();
    let gt = setup(dir.path());
    let mut cfg = config(dir.path(), &gt);
    cfg.only_exhaustive = true;
    let mut phrases_seen = Vec::new();
    let s = predict(&cfg, |img, p| {
        phrases_seen.extend(p.iter().cloned());
        fake(img, p)
    })
    .unwrap();
    assert_eq!(s.entries, 4);
    assert!(!phrases_seen.contains(&"bird".to_string()));
}

/// Three shards + merge write what the unsharded run writes, byte for byte (predictions and meta);
/// each image is run by exactly one shard; mismatched or missing shards are refused by name.
#[test]
fn three_shards_merge_to_the_unsharded_bytes() {
    use sam3lab_eval::shard::{Shard, merge};
    let dir = tempfile::tempdir().unwrap();
    let gt = setup(dir.path());
    let whole = config(dir.path(), &gt);
    predict(&whole, fake).unwrap();
    let mut files = vec![];
    let mut calls = 0;
    for k in 0..3 {
        let out = dir.path().join(format!("pred.shard{k}.json"));
        let cfg = PredictConfig { out: out.clone(), shard: Some(Shard { k, n: 3 }), ..config(dir.path(), &gt) };
        let s = predict(&cfg, |img, phrases| {
            calls += 1;
            fake(img, phrases)
        })
        .unwrap();
        assert!(s.model_calls <= 1, "shard {k} ran {} images", s.model_calls);
        files.push(out);
    }
    assert_eq!(calls, 3, "each of the 3 images in exactly one shard");
    let merged = dir.path().join("merged.json");
    let m = merge(&files, &merged).unwrap();
    assert_eq!(m.shards, 3);
    let read = |p: &std::path::Path| std::fs::read(p).unwrap();
    assert_eq!(read(&merged), read(&whole.out));
    assert_eq!(read(&sam3lab_eval::predict::meta_path(&merged)), read(&sam3lab_eval::predict::meta_path(&whole.out)));
    // A missing shard, a shard given twice, and a shard of another run are refused.
    let e = merge(&files[..2], &dir.path().join("m2.json")).unwrap_err().to_string();
    assert!(e.contains("shard 2/3 is missing"), "{e}");
    let e = merge(&[files[0].clone(), files[0].clone(), files[2].clone()], &dir.path().join("m3.json")).unwrap_err().to_string();
    assert!(e.contains("given twice"), "{e}");
    let other = dir.path().join("other.shard1.json");
    let cfg = PredictConfig { out: other.clone(), threshold: 0.5, shard: Some(Shard { k: 1, n: 3 }), ..config(dir.path(), &gt) };
    predict(&cfg, fake).unwrap();
    let e = merge(&[files[0].clone(), other, files[2].clone()], &dir.path().join("m4.json")).unwrap_err().to_string();
    assert!(e.contains("different runs") && e.contains("threshold"), "{e}");
    // The unsharded file is no shard.
    let e = merge(&[whole.out.clone()], &dir.path().join("m5.json")).unwrap_err().to_string();
    assert!(e.contains("not a shard"), "{e}");
}
