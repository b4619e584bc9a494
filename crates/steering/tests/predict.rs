//! `predict_to_file` in-process on the fixture weights: the plain run writes every query, a
//! `scale:…=1` intervention leaves the predictions bit for bit (and is recorded in the meta file), a
//! `zero:` one changes them, and bad inputs are refused with the flag named.

use std::path::{Path, PathBuf};

use sam3lab_eval::image::{Rgb, RgbImage};
use sam3lab_steering::predict::{PredictOptions, predict_to_file};
use sam3lab_util::progress::NoProgress;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny")
}

/// One 40×40 image with two noun phrases.
fn setup(dir: &Path) -> PathBuf {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    RgbImage::from_fn(40, 40, |x, y| Rgb([(x * 6) as u8, (y * 5) as u8, ((x + y) * 3) as u8])).save(images.join("im.png")).unwrap();
    let entries: Vec<_> = ["a cat", "a red ball"]
        .iter()
        .enumerate()
        .map(|(j, p)| serde_json::json!({"id": j, "file_name": "im.png", "text_input": p, "height": 40, "width": 40, "is_instance_exhaustive": 1}))
        .collect();
    let gt = dir.join("gt.json");
    std::fs::write(&gt, serde_json::to_vec(&serde_json::json!({"images": entries, "annotations": [], "categories": [{"id": 1, "name": "object"}]})).unwrap()).unwrap();
    gt
}

#[test]
fn predicts_in_process_with_and_without_interventions() {
    let dir = tempfile::tempdir().unwrap();
    let gt = setup(dir.path());
    let images = dir.path().join("images");
    let run = |name: &str, hooks: &[&str]| -> Vec<u8> {
        let out = dir.path().join(name);
        let opts = PredictOptions { threshold: 0.0, hooks: hooks.iter().map(|h| h.to_string()).collect(), ..Default::default() };
        let s = predict_to_file(&fixture(), None, &gt, &images, &out, &opts, &NoProgress).unwrap();
        assert_eq!((s.entries, s.images, s.model_calls, s.predictions), (2, 1, 1, 2 * 8));
        std::fs::read(&out).unwrap()
    };
    let plain = run("plain.json", &[]);
    assert_eq!(plain, run("scale1.json", &["scale:decoder.layers.1.q0=1"]), "scaling by 1 is the plain forward");
    assert_ne!(plain, run("zero.json", &["zero:decoder.layers.*.q0"]), "zeroing q0 changes the predictions");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("scale1.json.meta.json")).unwrap()).unwrap();
    assert_eq!(meta["intervention"][0]["kind"], "scale", "{meta}");

    let bad = |ckpt: &Path, hooks: &[&str], threshold: f64| {
        let opts = PredictOptions { threshold, hooks: hooks.iter().map(|h| h.to_string()).collect(), ..Default::default() };
        format!("{:#}", predict_to_file(ckpt, None, &gt, &images, &dir.path().join("x.json"), &opts, &NoProgress).unwrap_err())
    };
    let e = bad(&dir.path().join("missing.pt"), &[], 0.3);
    assert!(e.contains("--ckpt") && e.contains("missing.pt"), "{e}");
    let e = bad(&fixture(), &[], 1.0);
    assert!(e.contains("--threshold must be in [0, 1)"), "{e}");
    let e = bad(&fixture(), &["zero:decoder.layer.1.q0"], 0.3);
    assert!(e.contains("--hook `zero:decoder.layer.1.q0`") && e.contains("decoder.layers.1.q0"), "{e}");
}
