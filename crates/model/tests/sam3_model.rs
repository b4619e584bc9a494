//! The top-level model on fixture A: encode-once/ground-many equals the one-shot forward exactly,
//! the hook registry lists exactly what a capture-all forward produces (names and shapes), decoder
//! q0/queries edits flow downstream while `.mean` is read-only, bad prompts fail with clear errors,
//! and a random init is finite.

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use sam3lab_model::hooks::{DynTensor, HookSpec, Hooks};
use sam3lab_model::{BoxPrompt, GeometryPrompt, GroundingOutput, PointPrompt, Sam3, Sam3Config, hook_registry};

mod common;
use common::{fixture, inputs, model, read_all, vals};

fn outputs(o: &GroundingOutput) -> Vec<Vec<f32>> {
    vec![
        vals(o.pred_logits.clone()),
        vals(o.pred_boxes.clone()),
        vals(o.pred_masks.clone()),
        vals(o.semantic_seg.clone()),
        vals(o.presence_logit.clone()),
        vals(o.scores.clone()),
    ]
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

#[test]
fn encode_once_ground_many_equals_one_shot_forward() {
    let dev = Device::flex();
    let m = model(&dev);
    let inp = inputs(&dev);
    let mut h = Hooks::none();
    let one_text = m.forward(inp.pixels.clone(), inp.ids.clone(), &[], &mut h).unwrap();
    let one_box = m
        .forward(inp.pixels.clone(), inp.ids.clone(), &[inp.bx], &mut h)
        .unwrap();

    let img = m.encode_image(inp.pixels.clone(), &mut h);
    let txt = m.encode_text(inp.ids.clone(), &mut h);
    // Several prompts against the same features, in an order different from the one-shot runs.
    let g_box = m.ground(&img, &txt, &[inp.bx], &mut h).unwrap();
    let g_text = m.ground(&img, &txt, &[], &mut h).unwrap();
    let g_box2 = m.ground(&img, &txt, &[inp.bx], &mut h).unwrap();
    assert_eq!(
        outputs(&g_text),
        outputs(&one_text),
        "text-only: encode+ground differs from forward"
    );
    assert_eq!(
        outputs(&g_box),
        outputs(&one_box),
        "box prompt: encode+ground differs from forward"
    );
    assert_eq!(
        outputs(&g_box2),
        outputs(&g_box),
        "grounding twice gives different results"
    );
    assert!(
        max_diff(&outputs(&g_text), &outputs(&g_box)) > 1e-4,
        "the box prompt changed nothing"
    );
}

#[test]
fn registry_lists_exactly_the_captured_points() {
    let dev = Device::flex();
    let m = model(&dev);
    let cfg: &Sam3Config = &m.config;
    let inp = inputs(&dev);
    let reg = hook_registry(cfg);
    let mut hooks = Hooks::capture(&["**"]).unwrap();
    m.forward(inp.pixels, inp.ids, &[], &mut hooks).unwrap();
    let cache = hooks.finish().unwrap();
    let mut problems = Vec::new();
    for (name, t) in cache.iter() {
        match reg.get(name) {
            None => problems.push(format!("captured but not registered: {name}")),
            Some(info) if info.shape != t.shape() => problems.push(format!(
                "{name}: registry shape {:?}, captured {:?}",
                info.shape,
                t.shape()
            )),
            Some(_) => {}
        }
    }
    for p in &reg.points {
        if !cache.contains(p.name.as_str()) {
            problems.push(format!("registered but never captured: {}", p.name));
        }
    }
    // Names are unique.
    let mut seen = std::collections::HashSet::new();
    for p in &reg.points {
        if !seen.insert(p.name.as_str()) {
            problems.push(format!("registered twice: {}", p.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for k in [
        "decoder.layers.1.q0",
        "decoder.layers.0.ca_image.head.3",
        "seg.prompt_cross_attn.out",
        "scores",
        "fusion.memory",
    ] {
        assert!(reg.contains(k), "{k} missing");
    }
}

#[test]
fn editing_a_read_only_point_is_a_validation_error_naming_it() {
    let reg = hook_registry(&Sam3Config::from_file(&fixture().join("config.json")).unwrap());
    for name in ["decoder.layers.0.mean", "decoder.layers.0.presence_logit", "decoder.layers.0.pred_logits", "neck.fpn.3", "text.input_ids"] {
        let e = Hooks::validated(HookSpec::new().scale(name, 2.0).unwrap(), &reg).err().expect(name).to_string();
        assert!(e.contains(&format!("cannot scale hook point `{name}`: it is read-only")), "{e}");
        assert!(Hooks::validated(HookSpec::new().capture(name).unwrap(), &reg).is_ok(), "capturing {name}");
    }
    // A pattern that reaches a read-only point is refused too; the last layer's presence_logit is editable.
    let e = Hooks::validated(HookSpec::new().zero("decoder.layers.*.presence_logit").unwrap(), &reg).err().unwrap().to_string();
    assert!(e.contains("`decoder.layers.0.presence_logit` (matched by `decoder.layers.*.presence_logit`)"), "{e}");
    assert!(Hooks::validated(HookSpec::new().zero("decoder.layers.1.presence_logit").unwrap(), &reg).is_ok());
}

#[test]
fn q0_and_queries_edits_flow_downstream_mean_is_read_only() {
    let dev = Device::flex();
    let m = model(&dev);
    let inp = inputs(&dev);
    let img = m.encode_image(inp.pixels, &mut Hooks::none());
    let txt = m.encode_text(inp.ids, &mut Hooks::none());
    let run = |spec: HookSpec| {
        let mut h = Hooks::new(
            spec.capture("decoder.layers.1.presence_in")
                .unwrap()
                .capture("decoder.layers.1.in")
                .unwrap(),
        );
        let o = m.ground(&img, &txt, &[], &mut h).unwrap();
        (o, h.finish().unwrap())
    };
    let (base, base_c) = run(HookSpec::new());

    let (z, zc) = run(HookSpec::new().zero("decoder.layers.0.q0").unwrap());
    assert!(
        vals(zc.tensor::<3>("decoder.layers.1.presence_in").unwrap())
            .iter()
            .all(|&v| v == 0.0)
    );
    assert_eq!(
        vals(zc.tensor::<3>("decoder.layers.1.in").unwrap()),
        vals(base_c.tensor::<3>("decoder.layers.1.in").unwrap())
    );
    assert_ne!(
        vals(z.presence_logit.clone()),
        vals(base.presence_logit.clone()),
        "zeroing q0 did not reach the presence logit"
    );

    let (s, sc) = run(HookSpec::new().scale("decoder.layers.0.queries", 0.5).unwrap());
    let a = vals(sc.tensor::<3>("decoder.layers.1.in").unwrap());
    let b = vals(base_c.tensor::<3>("decoder.layers.1.in").unwrap());
    assert!(a.iter().zip(&b).all(|(x, y)| (x - 0.5 * y).abs() < 1e-6));
    assert!(
        max_diff(&outputs(&s), &outputs(&base)) > 1e-4,
        "scaling queries changed nothing downstream"
    );

    // `.mean` is a readout: editing it changes nothing; after a q0 edit it reflects the edited output.
    let (r, _) = run(HookSpec::new().zero("decoder.layers.0.mean").unwrap());
    assert_eq!(outputs(&r), outputs(&base));
    let spec = HookSpec::new()
        .zero("decoder.layers.0.q0")
        .unwrap()
        .capture("decoder.layers.0.{out,mean}")
        .unwrap();
    let (_, c) = run(spec);
    let out = vals(c.tensor::<3>("decoder.layers.0.out").unwrap());
    let mean = vals(c.tensor::<2>("decoder.layers.0.mean").unwrap());
    let d = mean.len();
    let rows = out.len() / d;
    for k in 0..d {
        let want: f32 = (1..rows).map(|r| out[r * d + k]).sum::<f32>() / rows as f32; // row 0 zeroed
        assert!((mean[k] - want).abs() < 1e-5, "mean[{k}] = {} vs {want}", mean[k]);
    }
}

#[test]
fn one_shot_forward_matches_fixture_outputs() {
    let dev = Device::flex();
    let m = model(&dev);
    let inp = inputs(&dev);
    let exp = read_all(&fixture().join("expected.safetensors"));
    for (prefix, boxes) in [("", vec![]), ("box_prompt.", vec![inp.bx])] {
        let o = m
            .forward(inp.pixels.clone(), inp.ids.clone(), &boxes, &mut Hooks::none())
            .unwrap();
        for (key, got, atol) in [
            ("out.pred_logits", vals(o.pred_logits.clone()), 1e-4),
            ("out.pred_boxes", vals(o.pred_boxes.clone()), 1e-4),
            ("out.pred_masks", vals(o.pred_masks.clone()), 1e-3),
            ("decoder.presence_logit", vals(o.presence_logit.clone()), 1e-4),
            ("post.scores", vals(o.scores.clone()), 1e-4),
        ] {
            let (_, e) = &exp[&format!("{prefix}{key}")];
            assert_eq!(got.len(), e.len(), "{prefix}{key}");
            for (g, w) in got.iter().zip(e) {
                assert!((g - w).abs() <= atol + 1e-3 * w.abs(), "{prefix}{key}: {g} vs {w}");
            }
        }
    }
}

#[test]
fn bad_prompts_are_clear_errors() {
    let dev = Device::flex();
    let m = model(&dev);
    let inp = inputs(&dev);
    let img = m.encode_image(inp.pixels.clone(), &mut Hooks::none());
    let txt = m.encode_text(inp.ids.clone(), &mut Hooks::none());
    let e = m
        .ground(
            &img,
            &txt,
            &[BoxPrompt::positive([0.5, 0.5, 1.4, 0.2])],
            &mut Hooks::none(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("[0, 1]"), "{e}");
    let geo = GeometryPrompt {
        boxes: vec![],
        points: vec![PointPrompt {
            xy: [0.3, 0.3],
            positive: true,
        }],
    };
    let e = m.ground_geometry(&img, &txt, &geo, &mut Hooks::none()).unwrap_err();
    assert!(e.to_string().contains("point prompt"), "{e}");
    let e = m
        .forward(
            inp.pixels.clone().slice([0..1, 0..2]),
            inp.ids.clone(),
            &[],
            &mut Hooks::none(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("pixel_values"), "{e}");
    // A hook replacement of the wrong shape is reported by the Result, not a panic.
    let bad = HookSpec::new()
        .replace(
            "decoder.layers.0.q0",
            DynTensor::from_vec(vec![0.0; 3], vec![1, 3], &dev),
        )
        .unwrap();
    let e = m.ground(&img, &txt, &[], &mut Hooks::new(bad)).unwrap_err();
    assert!(e.to_string().contains("decoder.layers.0.q0"), "{e}");
}

#[test]
fn random_init_is_finite() {
    let dev = Device::flex();
    let cfg = Sam3Config::from_file(&fixture().join("config.json")).unwrap();
    let m = Sam3::new(&cfg, &dev);
    let inp = inputs(&dev);
    let o = m.forward(inp.pixels, inp.ids, &[inp.bx], &mut Hooks::none()).unwrap();
    for v in outputs(&o) {
        assert!(v.iter().all(|x| x.is_finite()));
    }
}

/// A batch of two copies of the fixture input (with the box prompt) gives each element the batch-1 result.
#[test]
fn batch_of_two_equals_two_singles() {
    let dev = Device::flex();
    let m = model(&dev);
    let inp = inputs(&dev);
    let single = m
        .forward(inp.pixels.clone(), inp.ids.clone(), &[inp.bx], &mut Hooks::none())
        .unwrap();
    let px2 = Tensor::cat(vec![inp.pixels.clone(), inp.pixels.clone()], 0);
    let ids2 = Tensor::cat(vec![inp.ids.clone(), inp.ids.clone()], 0);
    let pair = m.forward(px2, ids2, &[inp.bx], &mut Hooks::none()).unwrap();
    for (name, a, b) in [
        (
            "pred_logits",
            vals(single.pred_logits.clone()),
            vals(pair.pred_logits.clone()),
        ),
        (
            "pred_boxes",
            vals(single.pred_boxes.clone()),
            vals(pair.pred_boxes.clone()),
        ),
        (
            "pred_masks",
            vals(single.pred_masks.clone()),
            vals(pair.pred_masks.clone()),
        ),
        (
            "presence_logit",
            vals(single.presence_logit.clone()),
            vals(pair.presence_logit.clone()),
        ),
    ] {
        assert_eq!(b.len(), 2 * a.len(), "{name}");
        for half in [&b[..a.len()], &b[a.len()..]] {
            let d = a.iter().zip(half).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(d < 1e-4, "{name}: batch element differs from the single run by {d}");
        }
    }
}

/// Another shape of model (3 heads everywhere, d_model 24, a 7×7 grid that is not a multiple of the
/// window, 3 decoder and 2 geometry layers, 5 queries): random init runs with a box prompt, outputs
/// are finite, and the registry matches what a capture-all forward produces.
#[test]
fn other_config_runs_and_registry_matches() {
    let dev = Device::flex();
    let mut cfg = Sam3Config::from_file(&fixture().join("config.json")).unwrap();
    cfg.d_model = 24;
    cfg.position_encoding.num_pos_feats = 24;
    cfg.image_size = 98;
    cfg.vit.img_size = 98;
    cfg.vit.embed_dim = 48;
    cfg.vit.num_heads = 3;
    cfg.geometry.num_heads = 3;
    cfg.geometry.num_layers = 2;
    cfg.fusion.num_heads = 3;
    cfg.decoder.num_heads = 3;
    cfg.decoder.num_layers = 3;
    cfg.decoder.num_queries = 5;
    cfg.seg_head.cross_attend_prompt_heads = 3;
    cfg.validate().unwrap();
    let m = Sam3::new(&cfg, &dev);
    let pixels = Tensor::<4>::random([1, 3, 98, 98], burn::tensor::Distribution::Uniform(-1.0, 1.0), &dev);
    let ids = Tensor::<2, Int>::from_data(
        TensorData::new(vec![49406i64, 320, 736, 2368, 49407, 0, 0, 0], [1, 8]),
        &dev,
    );
    let boxes = [
        BoxPrompt::positive([0.4, 0.5, 0.3, 0.2]),
        BoxPrompt {
            cxcywh: [0.7, 0.2, 0.1, 0.1],
            positive: false,
        },
    ];
    let mut hooks = Hooks::capture(&["**"]).unwrap();
    let o = m.forward(pixels, ids, &boxes, &mut hooks).unwrap();
    for v in outputs(&o) {
        assert!(v.iter().all(|x| x.is_finite()));
    }
    assert_eq!(o.pred_masks.dims(), [1, 5, 28, 28]);
    let cache = hooks.finish().unwrap();
    let reg = hook_registry(&cfg);
    // Text length 8 (not the context 16) and 2 boxes change the prompt axes; compare names only
    // for those, names and shapes for the rest.
    let prompt_axis = |n: &str| {
        n.starts_with("geometry")
            || n.starts_with("prompt")
            || n.contains("cross_attn")
            || n.contains("ca_text")
            || n.starts_with("scoring.prompt_mlp")
            || n.starts_with("text")
    };
    let mut problems = vec![];
    for (name, t) in cache.iter() {
        match reg.get(name) {
            None => problems.push(format!("not registered: {name}")),
            Some(i) if !prompt_axis(name) && i.shape != t.shape() => {
                problems.push(format!("{name}: registry {:?}, captured {:?}", i.shape, t.shape()))
            }
            _ => {}
        }
    }
    let missing: Vec<_> = reg
        .points
        .iter()
        .filter(|p| !cache.contains(p.name.as_str()))
        .map(|p| p.name.to_string())
        .collect();
    assert!(missing.is_empty(), "never captured: {missing:?}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(cache.get("geometry.out").unwrap().shape(), &[1, 3, 24]);
    assert_eq!(cache.get("prompt.feats").unwrap().shape(), &[1, 11, 24]);
}
