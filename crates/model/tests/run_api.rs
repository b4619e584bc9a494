//! The top-level calls (`Predictor::run_with_cache` / `run_with_hooks` and their batched forms) on
//! the shipped fixture, checked against the manual way (one `Hooks` threaded by hand through
//! `encode_image`, `encode_prompt` and `ground`): same captures bit for bit, in the same order.

use std::path::PathBuf;

use burn::prelude::*;
use sam3lab_model::GroundingOutput;
use sam3lab_model::hooks::{ActivationCache, HookSpec, Hooks, cosine};
use sam3lab_model::predict::{Predictor, Stages};

mod common;
use common::{fixture, vals};

fn repo(path: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

fn images() -> Vec<PathBuf> {
    vec![repo("data/examples/fixture-a.png"), repo("data/fixtures/train-set/image_0.png")]
}

fn predictor() -> Predictor {
    Predictor::load(&fixture(), None, &Device::flex()).unwrap()
}

/// Every output, bit for bit.
fn out_bits(o: &GroundingOutput) -> Vec<Vec<u32>> {
    [
        vals(o.pred_logits.clone()),
        vals(o.pred_boxes.clone()),
        vals(o.pred_masks.clone()),
        vals(o.semantic_seg.clone()),
        vals(o.presence_logit.clone()),
        vals(o.scores.clone()),
    ]
    .into_iter()
    .map(|v| v.iter().map(|f| f.to_bits()).collect())
    .collect()
}

/// Every captured value in capture order, bit for bit.
fn cache_bits(c: &ActivationCache) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    c.names_in_capture_order()
        .map(|n| {
            let t = c.get(n).unwrap();
            (n.to_string(), t.shape().to_vec(), t.to_vec().iter().map(|f| f.to_bits()).collect())
        })
        .collect()
}

/// The manual way: one `Hooks` threaded through the three stages.
fn manual(p: &Predictor, image: &PathBuf, prompt: &str, spec: HookSpec) -> (GroundingOutput, ActivationCache) {
    let rgb = sam3lab_model::preprocess::load_image(image).unwrap();
    let mut hooks = Hooks::new(spec);
    let img = p.encode_image(&rgb, &mut hooks);
    let text = p.encode_prompt(prompt, &mut hooks).unwrap();
    let out = p.ground(&img, &text, &[], &mut hooks).unwrap();
    (out, hooks.finish().unwrap())
}

/// Captures from every stage plus edits in the image encoder, the text encoder and the heads.
fn mixed_spec() -> HookSpec {
    HookSpec::new()
        .capture("trunk.blocks.0")
        .unwrap()
        .scale("trunk.blocks.0.mlp.out", 0.5)
        .unwrap()
        .capture("neck.fpn.*")
        .unwrap()
        .zero("text.blocks.0.attn.head.0")
        .unwrap()
        .capture("text.out")
        .unwrap()
        .zero("decoder.layers.0.ca_text.head.1")
        .unwrap()
        .capture("decoder.layers.*.{q0,ca_text.head.1}")
        .unwrap()
        .capture("presence_logit")
        .unwrap()
}

#[test]
fn run_with_cache_equals_a_manual_capture_bit_for_bit() {
    let p = predictor();
    let img = &images()[0];
    for names in [&["decoder.layers.*.q0", "fusion.layers.1", "presence_logit"][..], &["**"][..]] {
        let mut spec = HookSpec::new();
        for n in names {
            spec = spec.capture(n).unwrap();
        }
        let (out, cache) = p.run_with_cache(img, "a red cat", names).unwrap();
        let (mout, mcache) = manual(&p, img, "a red cat", spec);
        assert_eq!(out_bits(&out), out_bits(&mout), "{names:?}: outputs");
        assert_eq!(cache_bits(&cache), cache_bits(&mcache), "{names:?}: captures");
        assert!(!cache.is_empty());
        assert_eq!(cache.manifest.prompt, "a red cat");
        assert_eq!(cache.manifest.checkpoint_sha256, p.info.as_ref().unwrap().sha256);
    }
    // `**` reached every stage: all registered points, each in the registry's shape.
    let (_, all) = p.run_with_cache(img, "a red cat", &["**"]).unwrap();
    assert_eq!(all.len(), p.hook_registry().points.len());
    // Also with edits in every stage, and from an in-memory image.
    let rgb = sam3lab_model::preprocess::load_image(img).unwrap();
    let (out, cache) = p.run_with_hooks(&rgb, "a red cat", mixed_spec()).unwrap();
    let (mout, mcache) = manual(&p, img, "a red cat", mixed_spec());
    assert_eq!(out_bits(&out), out_bits(&mout));
    assert_eq!(cache_bits(&cache), cache_bits(&mcache));
}

#[test]
fn a_trunk_point_is_captured_by_the_top_level_call() {
    let p = predictor();
    let img = &images()[0];
    let (out, cache) = p.run_with_cache(img, "a red cat", &["trunk.blocks.0", "neck.fpn.0", "text.out"]).unwrap();
    let names: Vec<&str> = cache.names_in_capture_order().collect();
    assert_eq!(names, ["trunk.blocks.0", "neck.fpn.0", "text.out"]);
    for n in names {
        assert_eq!(cache.get(n).unwrap().shape(), p.hook_registry().get(n).unwrap().shape.as_slice(), "{n}");
    }
    // Capturing changes nothing: same outputs as a hook-free forward.
    let (plain, empty) = p.run_with_cache(img, "a red cat", &[]).unwrap();
    assert!(empty.is_empty());
    assert_eq!(out_bits(&out), out_bits(&plain));
    // An edit at a trunk point reaches the outputs (the image is re-encoded under the hooks).
    let (edited, _) = p.run_with_hooks(img, "a red cat", HookSpec::new().scale("trunk.blocks.0", 0.0).unwrap()).unwrap();
    assert_ne!(out_bits(&edited), out_bits(&plain));
}

#[test]
fn unknown_names_are_errors_naming_the_nearest_points() {
    let mut p = predictor();
    let img = &images()[0];
    let e = p.run_with_cache(img, "a red cat", &["decoder.layers.1.qo"]).unwrap_err().to_string();
    assert!(e.contains("unknown hook point") && e.contains("decoder.layers.1.q0"), "{e}");
    let e = p.run_with_cache(img, "a red cat", &["trunk.block.*"]).unwrap_err().to_string();
    assert!(e.contains("matches no hook point") && e.contains("nearest valid names"), "{e}");
    let spec = HookSpec::new().zero("decoder.layers.0.ca_txt.head.0").unwrap();
    let e = p.run_with_hooks_batch(&images(), &["a cat"], spec.clone()).unwrap_err().to_string();
    assert!(e.contains("decoder.layers.0.ca_text.head.0"), "{e}");
    // Validation off: the typo just never fires.
    p.validate_hooks = false;
    let (_, cache) = p.run_with_hooks(img, "a red cat", spec).unwrap();
    assert!(cache.is_empty());
}

#[test]
fn the_batched_form_equals_the_per_pair_loop() {
    let p = predictor();
    let imgs = images();
    let prompts = ["a red cat", "a blue sky", "a watch"];
    let runs = p.run_with_hooks_batch(&imgs, &prompts, mixed_spec()).unwrap();
    assert_eq!((runs.images, runs.prompts, runs.len()), (2, 3, 6));
    for (i, img) in imgs.iter().enumerate() {
        for (j, prompt) in prompts.iter().enumerate() {
            let (out, cache) = p.run_with_hooks(img, prompt, mixed_spec()).unwrap();
            let (bout, bcache) = &runs[(i, j)];
            assert_eq!(out_bits(bout), out_bits(&out), "({i}, {j}) outputs");
            assert_eq!(cache_bits(bcache), cache_bits(&cache), "({i}, {j}) captures");
            assert_eq!(bcache.manifest.prompt, *prompt);
        }
    }
    // `stack` concatenates one point over the pairs, image-major.
    let q0 = runs.stack::<2>("decoder.layers.1.q0").unwrap();
    assert_eq!(q0.dims()[0], 6);
    let row = |k: usize| q0.clone().slice([k..k + 1]);
    assert_eq!(vals(row(4)), vals(runs[(1, 1)].1.tensor::<2>("decoder.layers.1.q0").unwrap()));
    assert!((cosine(row(0), row(0)).into_scalar::<f32>() - 1.0).abs() < 1e-5);
    assert!(runs.stack::<2>("decoder.layers.1.qo").unwrap_err().to_string().contains("decoder.layers.1.q0"));
}

#[test]
fn stages_follow_the_spec() {
    let p = predictor();
    let reg = p.hook_registry();
    let of = |pat: &str| Stages::of(&HookSpec::new().capture(pat).unwrap(), reg);
    assert_eq!(of("decoder.layers.*.q0"), Stages { image: false, text: false });
    assert_eq!(of("trunk.blocks.0"), Stages { image: true, text: false });
    assert_eq!(of("image"), Stages { image: true, text: false });
    assert_eq!(of("text.**"), Stages { image: false, text: true });
    assert_eq!(of("**.head.0"), Stages { image: true, text: true });
    assert_eq!(of("**"), Stages { image: true, text: true });
}

#[test]
fn perturbed_copies_are_deterministic_and_differ() {
    let p = predictor();
    let img = &images()[0];
    let run = |q: &Predictor| q.run_with_cache(img, "a cat", &["presence_logit"]).unwrap().0;
    let (a, a2, b) = (run(&p.perturbed(0.02, 1)), run(&p.perturbed(0.02, 1)), run(&p.perturbed(0.02, 2)));
    assert_eq!(out_bits(&a), out_bits(&a2));
    assert_ne!(out_bits(&a), out_bits(&b));
    assert_ne!(out_bits(&a), out_bits(&run(&p)));
}
