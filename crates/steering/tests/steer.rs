//! Steering on the fixture weights with small generated images: α = 0 is the plain forward bit for
//! bit, the mean-difference direction equals the mean of captured differences, a written direction
//! file reproduces the sweep, and a direction of the wrong shape is refused with both shapes named.

use std::path::{Path, PathBuf};

use burn::prelude::Device;
use sam3lab_util::progress::NoProgress;
use sam3lab_hooks::Hooks;
use sam3lab_model::predict::Predictor;
use sam3lab_probes::demo;
use sam3lab_probes::inputs::{self, Label, LabelFilter};
use sam3lab_probes::model::CkptSpec;
use sam3lab_steering::{DirectionSource, SteerRequest};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny")
}

const POINT: &str = "decoder.layers.1.q0";

fn request(pairs: &Path, direction: DirectionSource, alphas: &[f64]) -> SteerRequest {
    SteerRequest {
        ckpt: CkptSpec::new("ckpt", fixture()),
        config: None,
        point: POINT.into(),
        direction,
        direction_label: LabelFilter::Neg,
        unit: false,
        alphas: alphas.to_vec(),
        pairs: inputs::read_pairs(pairs).unwrap(),
        seed: 0,
        device: Device::flex(),
    }
}

#[test]
fn alpha_zero_is_the_plain_forward_and_mean_diff_matches_captures() {
    let dir = tempfile::tempdir().unwrap();
    let d = demo::write_demo_inputs(dir.path(), 2, 11).unwrap();
    let pert = demo::write_perturbed(&fixture(), &dir.path().join("pert"), 0.02, 5).unwrap();
    let mean_diff = DirectionSource::MeanDiff { a: CkptSpec::new("a", fixture()), b: CkptSpec::new("b", &pert) };
    let r = sam3lab_steering::run(&request(&d.pairs, mean_diff, &[1.0, 3.0]), &NoProgress).unwrap();
    let alphas: Vec<f64> = r.alphas.iter().map(|a| a.alpha).collect();
    assert_eq!(alphas, [0.0, 1.0, 3.0], "α = 0 is added first");

    let pairs = inputs::read_pairs(&d.pairs).unwrap();
    let base = Predictor::load(&fixture(), None, &Device::flex()).unwrap();
    let other = Predictor::load(&pert, None, &Device::flex()).unwrap();
    let mut moved = false;
    let mut diff_sum = vec![0f64; 32];
    let mut n_neg = 0;
    for (p, row) in pairs.pairs.iter().zip(&r.pairs) {
        assert_eq!(p.index, row.pair);
        let enc = base.encode_image_file(&p.image).unwrap();
        let text = base.encode_prompt(&p.prompt, &mut Hooks::none()).unwrap();
        let mut hooks = Hooks::capture(&[POINT]).unwrap();
        let out = base.ground(&enc, &text, &[], &mut hooks).unwrap();
        let plain = sam3lab_probes::model::outcome(&out);
        assert_eq!(row.outcomes[0].scores, plain.scores, "pair {}: α = 0 must be the plain forward", p.index);
        assert_eq!(row.outcomes[0].presence_logit.to_bits(), plain.presence_logit.to_bits());
        moved |= row.outcomes[2].presence_logit != plain.presence_logit;
        if p.label == Label::Neg {
            let a = hooks.finish().unwrap().get(POINT).unwrap().to_vec();
            let enc_b = other.encode_image_file(&p.image).unwrap();
            let text_b = other.encode_prompt(&p.prompt, &mut Hooks::none()).unwrap();
            let mut hb = Hooks::capture(&[POINT]).unwrap();
            other.ground(&enc_b, &text_b, &[], &mut hb).unwrap();
            let b = hb.finish().unwrap().get(POINT).unwrap().to_vec();
            for (s, (x, y)) in diff_sum.iter_mut().zip(a.iter().zip(&b)) {
                *s += *y as f64 - *x as f64;
            }
            n_neg += 1;
        }
    }
    assert!(moved, "α = 3 along a non-zero direction changes the presence logit");
    assert_eq!(r.threshold, 0.5, "the evaluator's keep threshold");
    assert_eq!(r.manifest.options["threshold"], 0.5);
    assert_eq!(r.direction.pairs, Some(n_neg));
    assert_eq!(r.added.shape, vec![1, 32]);
    for (got, want) in r.added.values.iter().zip(&diff_sum) {
        assert!((*got as f64 - want / n_neg as f64).abs() < 1e-6, "{got} vs {}", want / n_neg as f64);
    }
    // The summaries are the per-pair counts.
    for (k, s) in r.alphas.iter().enumerate() {
        let neg: Vec<_> = r.pairs.iter().filter(|p| p.label == Label::Neg).collect();
        let ok = neg.iter().filter(|p| p.outcomes[k].kept == 0).count();
        assert_eq!(s.neg_correct, Some(ok as f64 / neg.len() as f64));
        // The evaluator's definition on the raw scores (score ≥ 0.5 keeps a query).
        let neg_scores = neg.iter().map(|p| p.outcomes[k].scores.iter().map(|&x| x as f64).collect::<Vec<_>>());
        assert_eq!(s.neg_correct, sam3lab_eval::neg_correct(neg_scores));
        let pos: Vec<_> = r.pairs.iter().filter(|p| p.label == Label::Pos).collect();
        let hit = pos.iter().filter(|p| p.outcomes[k].kept > 0).count();
        assert_eq!(s.pos_recall, Some(hit as f64 / pos.len() as f64));
    }

    // The written direction file reproduces the sweep.
    let out = dir.path().join("steer");
    sam3lab_steering::write(&out, &r).unwrap();
    let file = DirectionSource::File { path: out.join("direction.safetensors"), key: None };
    let r2 = sam3lab_steering::run(&request(&d.pairs, file, &[1.0, 3.0]), &NoProgress).unwrap();
    for (a, b) in r.pairs.iter().zip(&r2.pairs) {
        for (x, y) in a.outcomes.iter().zip(&b.outcomes) {
            assert_eq!(x.scores, y.scores);
        }
    }
}

#[test]
fn a_direction_of_the_wrong_shape_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = demo::write_demo_inputs(dir.path(), 1, 1).unwrap();
    let bytes: Vec<u8> = [0.5f32; 7].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![7], &bytes).unwrap();
    let path = dir.path().join("dir.safetensors");
    std::fs::write(&path, safetensors::serialize(vec![("v", view)], None).unwrap()).unwrap();
    let e = sam3lab_steering::run(&request(&d.pairs, DirectionSource::File { path, key: None }, &[1.0]), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[7]") && e.contains("[32]") && e.contains(POINT), "{e}");
    assert!(DirectionSource::parse("mean-diff:onlyone", None).is_err());
}
