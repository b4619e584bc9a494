//! Checks against outputs of the reference implementations, recorded once by
//! `tests/fixtures/make_fixtures.py` (pycocotools 2.0.11, scipy 1.17.1, numpy 2.4.6 and
//! facebookresearch/sam3 `sam3/eval/cgf1_eval.py`; versions are stored in each fixture).

use std::path::{Path, PathBuf};

use sam3lab_eval::assign::linear_sum_assignment;
use sam3lab_eval::rle::{Rle, mask_iou};
use sam3lab_eval::{IouType, ScoreOptions, score_files};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

#[test]
fn rle_matches_pycocotools() {
    let fx = load("rle_pycocotools.json");
    let masks = fx["masks"].as_array().unwrap();
    let mut rles = Vec::new();
    for (i, m) in masks.iter().enumerate() {
        let (h, w) = (
            m["height"].as_u64().unwrap() as u32,
            m["width"].as_u64().unwrap() as u32,
        );
        let bits: Vec<u8> = m["mask_row_major"]
            .as_str()
            .unwrap()
            .bytes()
            .map(|b| b - b'0')
            .collect();
        let rle = Rle::from_row_major(h, w, &bits);
        assert_eq!(
            rle.to_compressed(),
            m["counts"].as_str().unwrap(),
            "mask {i}: compressed counts"
        );
        let decoded = Rle::from_compressed(h, w, m["counts"].as_str().unwrap()).unwrap();
        assert_eq!(decoded, rle, "mask {i}: decode");
        assert_eq!(
            decoded.to_row_major(),
            bits,
            "mask {i}: round trip to pixels"
        );
        assert_eq!(rle.area(), m["area"].as_u64().unwrap(), "mask {i}: area");
        let bbox: Vec<f64> = m["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(rle.to_bbox().to_vec(), bbox, "mask {i}: toBbox");
        rles.push(rle);
    }
    let ious = fx["ious"].as_array().unwrap();
    assert!(ious.len() > 100);
    for t in ious {
        let (i, j, v) = (
            t[0].as_u64().unwrap() as usize,
            t[1].as_u64().unwrap() as usize,
            t[2].as_f64().unwrap(),
        );
        assert_eq!(mask_iou(&rles[i], &rles[j]).unwrap(), v, "iou({i}, {j})");
    }
}

#[test]
fn assignment_matches_scipy_including_ties() {
    let fx = load("lsap_scipy.json");
    for (k, case) in fx["cases"].as_array().unwrap().iter().enumerate() {
        let (r, c) = (
            case["rows"].as_u64().unwrap() as usize,
            case["cols"].as_u64().unwrap() as usize,
        );
        let neg: Vec<f64> = case["ious"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| -v.as_f64().unwrap())
            .collect();
        let expected: Vec<(usize, usize)> = case["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_u64().unwrap() as usize,
                    p[1].as_u64().unwrap() as usize,
                )
            })
            .collect();
        assert_eq!(
            linear_sum_assignment(&neg, r, c),
            expected,
            "case {k} ({r}x{c})"
        );
    }
}

#[test]
fn cgf1_matches_sam3_evaluator() {
    let fx = load("cgf1/reference.json");
    let mut exact = 0usize;
    let mut total = 0usize;
    let mut branches = [0i64; 4];
    for (name, run) in fx["runs"].as_object().unwrap() {
        let gts: Vec<PathBuf> = run["gt"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| fixture(&format!("cgf1/{}", g.as_str().unwrap())))
            .collect();
        let gt_refs: Vec<&Path> = gts.iter().map(|p| p.as_path()).collect();
        let iou_type: IouType = run["iou_type"].as_str().unwrap().parse().unwrap();
        let opts = ScoreOptions {
            iou_type,
            score_threshold: 0.5,
        };
        let (report, _, _) = score_files(&gt_refs, &fixture("cgf1/pred.json"), &opts).unwrap();
        let expected = run["result"].as_object().unwrap();
        let keys: Vec<&String> = expected.keys().collect();
        let ours: Vec<&String> = report.metrics.iter().map(|(k, _)| k).collect();
        let mut sorted_ours = ours.clone();
        sorted_ours.sort();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort();
        assert_eq!(sorted_ours, sorted_keys, "{name}: key set");
        for (k, v) in &report.metrics {
            let want = expected[k].as_f64().unwrap();
            assert!(
                (v - want).abs() <= 1e-9,
                "{name}: {k} = {v}, reference {want}"
            );
            total += 1;
            exact += (v.to_bits() == want.to_bits()) as usize;
        }
        // The fixture exercises the branches that matter.
        let a = &report.accumulated;
        for (b, n) in branches
            .iter_mut()
            .zip([a.il_tp, a.il_fp, a.il_tn, a.il_fn])
        {
            *b += n;
        }
        assert!(
            report.num_excluded > 0,
            "{name}: some entries must be non-exhaustive"
        );
        assert!(
            !report.warnings.is_empty(),
            "{name}: unlisted categories must be reported"
        );
    }
    assert!(
        branches.iter().all(|&n| n > 0),
        "every image-level branch is exercised: {branches:?}"
    );
    // Same operations in the same order: the numbers should be identical, not just close.
    assert_eq!(
        exact, total,
        "{exact} of {total} values bit-identical to the reference"
    );
}

#[test]
fn oracle_uses_more_than_one_ground_truth() {
    let gts: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|k| fixture(&format!("cgf1/gt_{k}.json")))
        .collect();
    let gt_refs: Vec<&Path> = gts.iter().map(|p| p.as_path()).collect();
    let (report, ids, _) = score_files(
        &gt_refs,
        &fixture("cgf1/pred.json"),
        &ScoreOptions::default(),
    )
    .unwrap();
    let mut used = [0usize; 3];
    for e in &report.entries {
        used[e.gt_index] += 1;
    }
    assert!(
        used.iter().all(|&n| n > 0),
        "oracle picks from every annotator: {used:?}"
    );
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0].sha256.len(), 64);
}
