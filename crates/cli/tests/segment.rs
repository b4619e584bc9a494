//! `sam3lab segment` end to end on the shipped fixture: the fixture's raw image written as a PNG goes
//! through loading, preprocessing, the model and post-processing, and the boxes and scores in
//! `detections.json` equal the reference's `post.*` values; the overlay has the image's size; bad
//! inputs exit 2 with a message naming the problem.

use std::path::Path;

mod common;
use common::{fixture, fixture_png, read_st, s, sam3lab};

#[test]
fn segment_reproduces_reference_post_processing() {
    let dir = tempfile::tempdir().unwrap();
    let png = fixture_png(dir.path());
    let out = dir.path().join("out");
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture().join("config.json")).unwrap()).unwrap();
    let expected = read_st(&fixture().join("expected.safetensors"));
    let boxp: Vec<String> = cfg["box_prompt"]["cxcywh_normalized"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let prompt = cfg["tokenizer"]["prompt"].as_str().unwrap().to_string(); // "a red cat"
    let prompt = prompt.as_str();
    // Threshold 0 keeps every query, so every reference box/score is compared.
    for (prefix, extra) in [("", vec![]), ("box_prompt.", vec!["--box".to_string(), boxp.join(",")])] {
        let fx = fixture();
        let mut args = vec![
            "segment",
            "--ckpt",
            s(&fx),
            "--image",
            s(&png),
            "--prompt",
            prompt,
            "--threshold",
            "0",
        ];
        args.extend(extra.iter().map(|x| x.as_str()));
        args.extend(["--out", s(&out)]);
        let o = sam3lab(&args);
        assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
        let rep: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("detections.json")).unwrap()).unwrap();

        let ids: Vec<u64> = rep["prompt_token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let want: Vec<u64> = cfg["tokenizer"]["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(ids, want, "token ids differ from the fixture's");
        let (_, scores, _) = &expected[&format!("{prefix}post.scores")];
        let (_, boxes, _) = &expected[&format!("{prefix}post.boxes_xyxy_px")];
        let dets = rep["detections"].as_array().unwrap();
        assert_eq!(dets.len(), scores.iter().filter(|&&v| v > 0.0).count());
        for d in dets {
            let q = d["query"].as_u64().unwrap() as usize;
            let sc = d["score"].as_f64().unwrap() as f32;
            assert!(
                (sc - scores[q]).abs() < 1e-4,
                "{prefix} query {q}: score {sc} vs {}",
                scores[q]
            );
            for (k, v) in d["box_xyxy"].as_array().unwrap().iter().enumerate() {
                let (g, e) = (v.as_f64().unwrap() as f32, boxes[q * 4 + k]);
                assert!(
                    (g - e).abs() < 1e-3 + 1e-3 * e.abs(),
                    "{prefix} query {q} box[{k}]: {g} vs {e}"
                );
            }
        }
        let (_, pl, _) = &expected[&format!("{prefix}decoder.presence_logit")];
        assert!((rep["presence_logit"].as_f64().unwrap() as f32 - pl[0]).abs() < 1e-4);
        let ck = sam3lab_model::checkpoint::sha256_file(&fixture().join("weights.safetensors")).unwrap();
        assert_eq!(rep["checkpoint"]["sha256"], ck);
        assert_eq!(
            rep["image"]["sha256"],
            sam3lab_model::checkpoint::sha256_file(&png).unwrap()
        );
        assert_eq!(rep["image"]["height"], 126);
        assert_eq!(rep["prompt"], prompt);
        assert_eq!(rep["threshold"], 0.0);
        let ov = image::open(out.join("overlay.png")).unwrap();
        assert_eq!((ov.width(), ov.height()), (98, 126));
    }
}

#[test]
fn segment_is_deterministic_and_threshold_filters() {
    let dir = tempfile::tempdir().unwrap();
    let png = fixture_png(dir.path());
    let run_to = |out: &Path, thr: &str| {
        let o = sam3lab(&[
            "segment",
            "--ckpt",
            s(&fixture()),
            "--image",
            s(&png),
            "--prompt",
            "a cat",
            "--threshold",
            thr,
            "--out",
            s(out),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(out.join("detections.json")).unwrap()
    };
    let a = run_to(&dir.path().join("a"), "0.3");
    let b = run_to(&dir.path().join("b"), "0.3");
    assert_eq!(a, b, "same inputs must give the same bytes");
    let all: serde_json::Value = serde_json::from_slice(&run_to(&dir.path().join("c"), "0")).unwrap();
    let some: serde_json::Value = serde_json::from_slice(&a).unwrap();
    let above = all["detections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["score"].as_f64().unwrap() > 0.3)
        .count();
    assert_eq!(some["detections"].as_array().unwrap().len(), above);
}

fn expect_fail(args: &[&str], needle: &str) {
    let o = sam3lab(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "args {args:?}: stderr {err}");
    assert!(
        err.contains(needle),
        "args {args:?}: stderr should mention `{needle}`: {err}"
    );
}

#[test]
fn bad_inputs_exit_2_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let png = fixture_png(dir.path());
    let fx = fixture();
    let out = dir.path().join("o");
    let base = |img: &str, prompt: &str| {
        vec![
            "segment".to_string(),
            "--ckpt".into(),
            s(&fx).into(),
            "--image".into(),
            img.into(),
            "--prompt".into(),
            prompt.into(),
            "--out".into(),
            s(&out).into(),
        ]
    };
    let call = |v: Vec<String>, extra: &[&str], needle: &str| {
        let mut a: Vec<&str> = v.iter().map(|x| x.as_str()).collect();
        a.extend(extra);
        expect_fail(&a, needle);
    };
    call(base(s(&png), "  "), &[], "empty");
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "not an image").unwrap();
    call(base(s(&txt), "a cat"), &[], "not a PNG or JPEG");
    call(base(s(&dir.path().join("missing.png")), "a cat"), &[], "missing.png");
    call(base(s(&png), "a cat"), &["--box", "1.5,0.5,0.2,0.2"], "[0, 1]");
    call(base(s(&png), "a cat"), &["--box", "0.5,0.5,0.2"], "expected 4");
    call(base(s(&png), "a cat"), &["--point", "0.5,0.5"], "point prompt");
    call(base(s(&png), "a cat"), &["--threshold", "1.5"], "threshold");
    assert!(!out.join("detections.json").exists(), "no output on failure");
}

#[test]
fn long_prompt_is_truncated_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let png = fixture_png(dir.path());
    let out = dir.path().join("o");
    let long = "a very small red and white striped cat ".repeat(6);
    let o = sam3lab(&[
        "segment",
        "--ckpt",
        s(&fixture()),
        "--image",
        s(&png),
        "--prompt",
        &long,
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("truncated"));
    let rep: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("detections.json")).unwrap()).unwrap();
    assert_eq!(rep["prompt_truncated"], true);
    let ids = rep["prompt_token_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 16);
    assert_eq!(ids[15], 49407);
}
