//! `sam3lab eval` end to end: the scorer against the recorded output of SAM3's evaluator, the JSON
//! it writes, and the exit status / message on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sam3lab"))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/tests/fixtures/cgf1")
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run sam3lab")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `eval score` of the three fixture ground truths and `pred.json` with `--iou iou` into `out`.
fn score_abc(fx: &Path, iou: &str, out: &Path) -> Output {
    let [a, b, c, p] = ["gt_a.json", "gt_b.json", "gt_c.json", "pred.json"].map(|n| fx.join(n));
    run(&["eval", "score", "--gt", s(&a), "--gt", s(&b), "--gt", s(&c), "--pred", s(&p), "--iou", iou, "--out", s(out)])
}

#[test]
fn score_reproduces_the_reference_and_writes_flat_json() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixtures();
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.join("reference.json")).unwrap()).unwrap();
    for (run_name, iou) in [("abc_segm", "segm"), ("abc_bbox", "bbox")] {
        let out = dir.path().join(format!("{run_name}.json"));
        let o = score_abc(&fx, iou, &out);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{stdout}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            stdout.contains("IL_MCC") && stdout.contains("neg_correct"),
            "{stdout}"
        );
        let got: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let want = reference["runs"][run_name]["result"].as_object().unwrap();
        assert_eq!(want.len(), 26);
        for (k, v) in want {
            let g = got[k].as_f64().unwrap_or_else(|| panic!("{k} missing"));
            assert!(
                (g - v.as_f64().unwrap()).abs() <= 1e-9,
                "{run_name} {k}: {g} vs {v}"
            );
        }
        assert_eq!(got["gt_sha256"].as_array().unwrap().len(), 3);
        assert!(got["neg_correct"].is_number());
        // Same inputs, same bytes.
        let out2 = dir.path().join("again.json");
        let o2 = score_abc(&fx, iou, &out2);
        assert_eq!(o2.status.code(), Some(0));
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out2).unwrap());
    }
}

fn expect_error(args: &[&str], needles: &[&str]) {
    let o = run(args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "expected {n:?} in: {stderr}");
    }
}

#[test]
fn bad_inputs_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixtures();
    let gt = fx.join("gt_a.json");
    let out = dir.path().join("res.json");

    let bad_json = dir.path().join("truncated.json");
    std::fs::write(&bad_json, b"[{\"image_id\": 1000, \"score\"").unwrap();
    expect_error(
        &[
            "eval",
            "score",
            "--gt",
            s(&gt),
            "--pred",
            s(&bad_json),
            "--out",
            s(&out),
        ],
        &["truncated.json", "line 1"],
    );
    assert!(!out.exists(), "no result file on error");

    let unknown = dir.path().join("unknown.json");
    std::fs::write(&unknown, br#"[{"image_id": 7, "category_id": 1, "segmentation": {"size": [40, 60], "counts": "P[2"}, "score": 0.9}]"#).unwrap();
    expect_error(
        &["eval", "score", "--gt", s(&gt), "--pred", s(&unknown)],
        &["unknown.json", "image_id 7", "not an entry"],
    );

    // Entry 1000 is 40x60; this RLE claims 60x40.
    let wrong_size = dir.path().join("wrong_size.json");
    std::fs::write(&wrong_size, br#"[{"image_id": 1000, "category_id": 1, "segmentation": {"size": [60, 40], "counts": "P[2"}, "score": 0.9}]"#).unwrap();
    expect_error(
        &["eval", "score", "--gt", s(&gt), "--pred", s(&wrong_size)],
        &[
            "wrong_size.json",
            "image_id 1000",
            "RLE size is 60x40",
            "40x60",
        ],
    );

    expect_error(
        &[
            "eval",
            "score",
            "--gt",
            s(&dir.path().join("missing.json")),
            "--pred",
            s(&unknown),
        ],
        &["missing.json"],
    );
}

fn tiny_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny")
}

/// Two PNG images and four entries (one not instance-exhaustive) for the tiny fixture model.
fn predict_setup(dir: &Path) -> PathBuf {
    use sam3lab_eval::image::{Rgb, RgbImage};
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut entries = Vec::new();
    for (i, (w, h)) in [(64u32, 48u32), (40, 40)].into_iter().enumerate() {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
        })
        .save(images.join(format!("im{i}.png")))
        .unwrap();
        for (j, phrase) in ["a cat", "a red ball"].into_iter().enumerate() {
            entries.push(serde_json::json!({
                "id": 10 * i + j, "file_name": format!("im{i}.png"), "text_input": phrase,
                "height": h, "width": w, "is_instance_exhaustive": if i == 1 && j == 1 { 0 } else { 1 },
            }));
        }
    }
    let gt = serde_json::json!({"images": entries, "annotations": [], "categories": [{"id": 1, "name": "object"}]});
    let path = dir.join("gt.json");
    std::fs::write(&path, serde_json::to_vec(&gt).unwrap()).unwrap();
    path
}

#[test]
fn predict_with_the_tiny_fixture_then_score() {
    let dir = tempfile::tempdir().unwrap();
    let gt = predict_setup(dir.path());
    let (ckpt, images) = (tiny_fixture(), dir.path().join("images"));
    let outs = [dir.path().join("pred.json"), dir.path().join("pred2.json")];
    for out in &outs {
        // Threshold 0: every query is written (the fixture has 8 queries).
        let o = run(&[
            "eval",
            "predict",
            "--ckpt",
            s(&ckpt),
            "--gt",
            s(&gt),
            "--images",
            s(&images),
            "--out",
            s(out),
            "--threshold",
            "0",
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!Path::new(&format!("{}.partial.jsonl", s(out))).exists());
    }
    let bytes = std::fs::read(&outs[0]).unwrap();
    assert_eq!(
        bytes,
        std::fs::read(&outs[1]).unwrap(),
        "same inputs, same bytes"
    );
    let preds: Vec<serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(preds.len(), 4 * 8);
    for p in &preds {
        let id = p["image_id"].as_i64().unwrap();
        let size = if id < 10 { [48, 64] } else { [40, 40] };
        assert_eq!(p["segmentation"]["size"], serde_json::json!(size));
        let b: Vec<f64> = p["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(
            b.iter().all(|v| v.is_finite()) && b[2] >= 0.0 && b[3] >= 0.0,
            "{b:?}"
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.meta.json", s(&outs[0]))).unwrap())
            .unwrap();
    assert!(meta["model"].as_str().unwrap().contains("sha256:"));
    // The scorer accepts the file (all entries negative here).
    let o = run(&["eval", "score", "--gt", s(&gt), "--pred", s(&outs[0])]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 entries scored"));
}

#[test]
fn predict_refuses_progress_from_another_run_and_bad_paths() {
    let dir = tempfile::tempdir().unwrap();
    let gt = predict_setup(dir.path());
    let out = dir.path().join("pred.json");
    let (ckpt, images) = (tiny_fixture(), dir.path().join("images"));
    std::fs::write(
        dir.path().join("pred.json.partial.jsonl"),
        "{\"sam3lab_partial_predictions\":1,\"gt_sha256\":\"x\",\"model\":\"other\",\"threshold\":0.3}\n",
    )
    .unwrap();
    let args = [
        "eval",
        "predict",
        "--ckpt",
        s(&ckpt),
        "--gt",
        s(&gt),
        "--images",
        s(&images),
        "--out",
        s(&out),
    ];
    expect_error(
        &args,
        &[
            "pred.json.partial.jsonl",
            "different run",
            "Delete the file",
        ],
    );
    assert!(!out.exists());
    expect_error(
        &[
            "eval",
            "predict",
            "--ckpt",
            "/nonexistent.safetensors",
            "--gt",
            "x",
            "--images",
            ".",
            "--out",
            "p.json",
        ],
        &["--ckpt", "/nonexistent.safetensors"],
    );
}
