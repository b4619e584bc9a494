//! The hook API on the shipped fixture (`data/fixtures/sam3-tiny`): names, capture, intervention,
//! per-head decomposition, attribution through the decoder's post-norm, and name errors.
//!
//! Expected values come from outside the code under test: the fixture's reference activations
//! (PyTorch), the out-projection biases read straight from `weights.safetensors`, burn's own fused
//! attention (for Σ heads), and hand-computed shapes of the released SAM3 config.

use std::collections::{BTreeMap, BTreeSet};

use burn::prelude::*;
use sam3lab_model::hooks::{ActivationCache, DynTensor, FrozenLayerNorm, HookSpec, Hooks};
use sam3lab_model::{GroundingOutput, ImageFeatures, Sam3, Sam3Config, TextFeatures, hook_registry};

mod common;
use common::{Inputs, fixture, inputs, model, read_all, vals};

fn outputs(o: &GroundingOutput) -> Vec<Vec<f32>> {
    vec![
        vals(o.pred_logits.clone()),
        vals(o.pred_boxes.clone()),
        vals(o.pred_boxes_xyxy.clone()),
        vals(o.pred_masks.clone()),
        vals(o.semantic_seg.clone()),
        vals(o.presence_logit.clone()),
        vals(o.scores.clone()),
    ]
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

/// Deterministic values in [-2, 2) (sam3lab's seeded stream: independent of burn's RNG).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = sam3lab_util::rng::Rng::new(seed);
    (0..n).map(|_| rng.range(-2.0, 2.0) as f32).collect()
}

/// Every value of a cache, bit for bit.
fn bits(c: &ActivationCache) -> BTreeMap<String, Vec<u32>> {
    c.iter().map(|(k, v)| (k.to_string(), v.to_vec().iter().map(|f| f.to_bits()).collect())).collect()
}

/// Image and text features computed once under `spec` (so head hooks take the same attention
/// path in every run that reuses them).
fn features(m: &Sam3, inp: &Inputs, spec: &HookSpec) -> (ImageFeatures, TextFeatures) {
    let mut h = Hooks::new(spec.clone());
    let img = m.encode_image(inp.pixels.clone(), &mut h);
    let txt = m.encode_text(inp.ids.clone(), &mut h);
    (img, txt)
}

fn is_backbone(name: &str) -> bool {
    ["image", "trunk.", "neck.", "text."].iter().any(|p| name.starts_with(p))
}

/// Run with `spec`: the full forward for backbone points, the heads only (on `feats`) otherwise.
fn run_at(m: &Sam3, inp: &Inputs, feats: &(ImageFeatures, TextFeatures), point: &str, spec: HookSpec) -> (GroundingOutput, ActivationCache) {
    let mut h = Hooks::new(spec);
    let o = if is_backbone(point) {
        m.forward(inp.pixels.clone(), inp.ids.clone(), &[], &mut h).unwrap()
    } else {
        m.ground(&feats.0, &feats.1, &[], &mut h).unwrap()
    };
    (o, h.finish().unwrap())
}

// ---- 1. names -----------------------------------------------------------------------------------

#[test]
fn every_point_the_post_names_exists_in_the_released_config() {
    let reg = hook_registry(&Sam3Config::sam3());
    // SAM3: 72×72 = 5184 image tokens, d = 256, 200 queries + the presence token, 6 decoder layers.
    for (name, shape) in [
        ("fusion.layers.4", vec![1, 5184, 256]),
        ("decoder.layers.5.q0", vec![1, 256]),
        ("decoder.layers.5.mean", vec![1, 256]),
        ("decoder.layers.4.ca_text.head.0", vec![1, 201, 256]),
        ("presence_logit", vec![1, 1]),
        ("decoder.layers.5.presence_logit", vec![1, 1]),
        ("decoder.layers.5.queries", vec![1, 200, 256]),
        ("scores", vec![1, 200]),
        ("pred_masks", vec![1, 200, 288, 288]),
        ("trunk.blocks.31", vec![1, 72, 72, 1024]),
        ("seg.prompt_cross_attn.head.7", vec![1, 5184, 256]),
    ] {
        let info = reg.get(name).unwrap_or_else(|| panic!("{name} is not a hook point of SAM3"));
        assert_eq!(info.shape, shape, "{name}");
    }
    assert!(reg.get("decoder.layers.6.q0").is_none(), "SAM3 has 6 decoder layers (0..=5)");
    for p in &reg.points {
        assert!(p.doc.len() >= 10, "{} has no real description: {:?}", p.name, p.doc);
    }
}

#[test]
fn registry_equals_what_capture_all_captures() {
    let dev = Device::flex();
    let m = model(&dev);
    let inp = inputs(&dev);
    let reg = hook_registry(&m.config);
    let names: BTreeSet<&str> = reg.points.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names.len(), reg.points.len(), "duplicate registry names");
    for p in &reg.points {
        assert!(p.doc.len() >= 10, "{} has no real description: {:?}", p.name, p.doc);
    }
    // Text-only prompt: same names, same shapes.
    let mut h = Hooks::capture(&["**"]).unwrap();
    m.forward(inp.pixels.clone(), inp.ids.clone(), &[], &mut h).unwrap();
    let c = h.finish().unwrap();
    let got: BTreeSet<&str> = c.names().collect();
    assert_eq!(got, names, "captured vs registered names differ");
    for p in &reg.points {
        assert_eq!(c.get(p.name.as_str()).unwrap().shape(), p.shape.as_slice(), "{}", p.name);
    }
    // The capture order is the forward order: the backbone first, the outputs last.
    let order: Vec<&str> = c.names_in_capture_order().collect();
    assert_eq!(order.first(), Some(&"image"));
    let pos = |n: &str| order.iter().position(|o| *o == n).unwrap();
    assert!(pos("fusion.memory") < pos("decoder.layers.0.in") && pos("decoder.layers.1.q0") < pos("presence_logit"));
    // One box: the same names; only the prompt-length axes grow, by exactly one.
    let mut h = Hooks::capture(&["**"]).unwrap();
    m.forward(inp.pixels.clone(), inp.ids.clone(), &[inp.bx], &mut h).unwrap();
    let c = h.finish().unwrap();
    assert_eq!(c.names().collect::<BTreeSet<_>>(), names);
    for p in &reg.points {
        let s = c.get(p.name.as_str()).unwrap().shape();
        // Prompt-length axes (at most two: geometry self-attention maps are S×S) grow by one.
        let grown: Vec<usize> = (0..s.len()).filter(|&k| s[k] != p.shape[k]).collect();
        assert!(grown.len() <= 2 && grown.iter().all(|&k| s[k] == p.shape[k] + 1), "{}: {:?} vs {:?}", p.name, s, p.shape);
    }
}

// ---- 2. parity with the reference ----------------------------------------------------------------

/// The hook layout of a reference tensor: the `B` axis first, a `B*nH` axis split into `B, nH`.
fn reference_to_hook_layout(shape: &[usize], data: &[f32], layout: &str) -> (Vec<usize>, Vec<f32>) {
    let axes: Vec<&str> = layout.split(',').collect();
    if axes.len() != shape.len() {
        return (shape.to_vec(), data.to_vec());
    }
    let mut shape = shape.to_vec();
    let mut names: Vec<String> = axes.iter().map(|a| a.to_string()).collect();
    if let Some(i) = names.iter().position(|a| a.starts_with("B*")) {
        // batch 1 in the fixture: (B·nH, …) = (1, nH, …) in memory
        names.splice(i..=i, ["B".to_string(), "nH".to_string()]);
        shape.splice(i..=i, [1, shape[i]]);
    }
    let Some(b) = names.iter().position(|a| a == "B") else {
        return (shape, data.to_vec()); // no batch axis (e.g. the RoPE table): as is
    };
    let perm: Vec<usize> = std::iter::once(b).chain((0..shape.len()).filter(|&k| k != b)).collect();
    let new_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let mut strides = vec![1usize; shape.len()];
    for k in (0..shape.len() - 1).rev() {
        strides[k] = strides[k + 1] * shape[k + 1];
    }
    let mut out = Vec::with_capacity(data.len());
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..data.len() {
        out.push(data[(0..shape.len()).map(|k| idx[k] * strides[perm[k]]).sum::<usize>()]);
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < new_shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    (new_shape, out)
}

#[test]
fn captures_equal_the_reference_activations() {
    let dev = Device::flex();
    let m = model(&dev);
    let inp = inputs(&dev);
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture().join("config.json")).unwrap()).unwrap();
    let expected = read_all(&fixture().join("expected.safetensors"));
    let caps: Vec<ActivationCache> = [vec![], vec![inp.bx]]
        .into_iter()
        .map(|boxes| {
            let mut h = Hooks::capture(&["**"]).unwrap();
            m.forward(inp.pixels.clone(), inp.ids.clone(), &boxes, &mut h).unwrap();
            h.finish().unwrap()
        })
        .collect();
    let (mut compared, mut failures, mut missing) = (0, vec![], vec![]);
    for (key, (shape, data)) in &expected {
        let (cache, k) = match key.strip_prefix("box_prompt.") {
            Some(k) => (&caps[1], k),
            None => (&caps[0], key.as_str()),
        };
        if k.starts_with("post.boxes") || k.starts_with("post.mask") {
            continue; // post-processing outputs, not hook points
        }
        let name = sam3lab_model::parity::hook_name(k);
        let Ok(ours) = cache.get(&name) else {
            missing.push(key.clone());
            continue;
        };
        let layout = cfg["expected"][key.as_str()]["layout"].as_str().unwrap().split_whitespace().next().unwrap();
        let (s, want) = reference_to_hook_layout(shape, data, layout);
        assert_eq!(ours.shape(), s.as_slice(), "{key} ({layout})");
        let atol = if ["pred_masks", "semantic_seg", "pixel_embed", "instance_embeds"].iter().any(|x| name.ends_with(x)) { 1e-3 } else { 1e-4 };
        let got = ours.to_vec();
        if got.iter().zip(&want).any(|(g, w)| (g - w).abs() > atol + 1e-3 * w.abs()) {
            failures.push(format!("{key}: max |Δ| {}", max_diff(&got, &want)));
        }
        compared += 1;
    }
    assert!(missing.is_empty(), "fixture keys with no hook point: {missing:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared >= 100, "only {compared} keys compared");
}

// ---- 3. interventions --------------------------------------------------------------------------

#[test]
fn replacing_any_point_with_its_own_value_is_bit_identical() {
    let dev = Device::flex();
    let m = model(&dev);
    let inp = inputs(&dev);
    let all = HookSpec::new().capture("**").unwrap();
    let feats = features(&m, &inp, &all);
    // Reference runs with the same capture set (head hooks switch attention to the explicit path).
    let (base_full, cache_full) = run_at(&m, &inp, &feats, "image", all.clone());
    let (base_heads, cache_heads) = run_at(&m, &inp, &feats, "fusion.memory", all.clone());
    let reg = hook_registry(&m.config);
    for p in &reg.points {
        let name = p.name.as_str();
        let (base, cache) = if is_backbone(name) { (&base_full, &cache_full) } else { (&base_heads, &cache_heads) };
        let spec = all.clone().replace(name, cache.get(name).unwrap().clone()).unwrap();
        let (o, c) = run_at(&m, &inp, &feats, name, spec);
        assert!(outputs(&o) == outputs(base), "replacing {name} with itself changed the outputs");
        assert!(bits(&c) == bits(cache), "replacing {name} with itself changed some activation");
    }
}

#[test]
fn every_editable_point_changes_the_outputs_and_read_only_points_do_not() {
    let dev = Device::flex();
    let m = model(&dev);
    let inp = inputs(&dev);
    let reg = hook_registry(&m.config);
    let none = HookSpec::new();
    let feats = features(&m, &inp, &none);
    let (base_full, _) = run_at(&m, &inp, &feats, "image", none.clone());
    let (base_heads, _) = run_at(&m, &inp, &feats, "fusion.memory", none.clone());
    let mut problems = Vec::new();
    for (k, p) in reg.points.iter().enumerate() {
        let name = p.name.as_str();
        let n: usize = p.shape.iter().product();
        // Masks are thresholded at 0.5 after an edit: flip every entry so the edit surely bites.
        let spec = if name.ends_with("padding_mask") {
            HookSpec::new().map(name, |_, t| t.map_values(|v| v.neg().add_scalar(1.0))).unwrap()
        } else {
            HookSpec::new().add(name, DynTensor::from_vec(noise(n, k as u64), p.shape.clone(), &dev), 1.0).unwrap()
        };
        let (o, _) = run_at(&m, &inp, &feats, name, spec);
        let base = if is_backbone(name) { &base_full } else { &base_heads };
        let changed = outputs(&o) != outputs(base);
        if changed != p.editable {
            problems.push(format!("{name}: outputs {} but the table says editable = {}", if changed { "changed" } else { "unchanged" }, p.editable));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn add_with_zero_alpha_is_the_identity() {
    let dev = Device::flex();
    let m = model(&dev);
    let inp = inputs(&dev);
    let reg = hook_registry(&m.config);
    for (k, name) in ["trunk.blocks.1", "text.blocks.0.attn.head.1", "fusion.layers.1", "prompt.padding_mask", "decoder.layers.0.q0", "decoder.layers.1.ca_text.head.2"]
        .into_iter()
        .enumerate()
    {
        let shape = reg.get(name).unwrap().shape.clone();
        let v = DynTensor::from_vec(noise(shape.iter().product(), 100 + k as u64), shape, &dev);
        let run = |spec: HookSpec| {
            let mut h = Hooks::new(spec.capture("**.out").unwrap());
            let o = m.forward(inp.pixels.clone(), inp.ids.clone(), &[], &mut h).unwrap();
            let mut c = h.finish().unwrap();
            c.remove(name);
            (outputs(&o), bits(&c))
        };
        // Same `wants` set in both runs (a head point switches its module to the explicit path): the
        // baseline captures the point instead of adding to it.
        let base = run(HookSpec::new().capture(name).unwrap());
        let added = run(HookSpec::new().add(name, v.clone(), 0.0).unwrap());
        assert!(added == base, "add α = 0 at {name} changed something");
        let moved = run(HookSpec::new().add(name, v, 1.0).unwrap());
        assert!(moved.0 != base.0, "add α = 1 at {name} changed nothing (the test would be vacuous)");
    }
}

#[test]
fn a_replace_at_decoder_layer_i_changes_layer_i_plus_1_and_nothing_before() {
    let dev = Device::flex();
    // The fixture has 2 decoder layers; a random-init model with 4 shows "before" and "after" both.
    let mut cfg = Sam3Config::from_file(&fixture().join("config.json")).unwrap();
    cfg.decoder.num_layers = 4;
    let m = Sam3::new(&cfg, &dev);
    let inp = inputs(&dev);
    let reg = hook_registry(&cfg);
    for i in 0..4 {
        let point = format!("decoder.layers.{i}.in");
        let shape = reg.get(&point).unwrap().shape.clone();
        let v = DynTensor::from_vec(noise(shape.iter().product(), i as u64), shape, &dev);
        let run = |spec: HookSpec| {
            let mut h = Hooks::new(spec.capture("**").unwrap());
            let o = m.forward(inp.pixels.clone(), inp.ids.clone(), &[], &mut h).unwrap();
            (outputs(&o), h.finish().unwrap())
        };
        let (base_o, base) = run(HookSpec::new());
        let (o, c) = run(HookSpec::new().replace(&point, v).unwrap());
        let same = |n: &str| c.get(n).unwrap().to_vec() == base.get(n).unwrap().to_vec();
        for n in base.names_in_capture_order() {
            if n == point {
                break;
            }
            assert!(same(n), "replacing {point} changed the upstream point {n}");
        }
        for j in 0..i {
            for s in ["in", "out", "q0", "queries", "presence_logit", "pred_boxes"] {
                assert!(same(&format!("decoder.layers.{j}.{s}")), "layer {j} changed after replacing {point}");
            }
        }
        for s in ["out", "q0", "queries", "presence_logit", "pred_boxes"] {
            assert!(!same(&format!("decoder.layers.{i}.{s}")), "layer {i}.{s} did not change after replacing {point}");
        }
        if i + 1 < 4 {
            for s in ["in", "presence_in", "out", "q0", "presence_logit"] {
                assert!(!same(&format!("decoder.layers.{}.{s}", i + 1)), "layer {}.{s} did not change", i + 1);
            }
        }
        assert!(o != base_o, "replacing {point} did not reach the outputs");
    }
}

#[test]
fn editing_q0_of_any_layer_changes_the_presence_logit() {
    let dev = Device::flex();
    let m = model(&dev);
    let inp = inputs(&dev);
    let (img, txt) = features(&m, &inp, &HookSpec::new());
    let presence = |spec: HookSpec| vals(m.ground(&img, &txt, &[], &mut Hooks::new(spec)).unwrap().presence_logit);
    let base = presence(HookSpec::new());
    for i in 0..m.config.decoder.num_layers {
        let d = m.config.d_model;
        let steer = DynTensor::from_vec(noise(d, 7 + i as u64), vec![d], &dev);
        let p = presence(HookSpec::new().add(&format!("decoder.layers.{i}.q0"), steer, 1.0).unwrap());
        assert!((p[0] - base[0]).abs() > 1e-4, "steering decoder.layers.{i}.q0 left the presence logit at {}", base[0]);
        // `mean` is a readout: editing it does nothing.
        let p = presence(HookSpec::new().zero(&format!("decoder.layers.{i}.mean")).unwrap());
        assert_eq!(p, base);
    }
}

// ---- 4. per-head contributions ---------------------------------------------------------------

/// The checkpoint key of the output-projection bias of an attention hook module.
fn out_bias_key(module: &str) -> String {
    let s: Vec<&str> = module.split('.').collect();
    match s.as_slice() {
        ["trunk", "blocks", i, "attn"] => format!("backbone.vision_backbone.trunk.blocks.{i}.attn.proj.bias"),
        ["text", "blocks", i, "attn"] => format!("backbone.language_backbone.encoder.transformer.resblocks.{i}.attn.out_proj.bias"),
        ["geometry", "layers", i, "self_attn"] => format!("geometry_encoder.encode.{i}.self_attn.out_proj.bias"),
        ["geometry", "layers", i, "cross_attn"] => format!("geometry_encoder.encode.{i}.cross_attn_image.out_proj.bias"),
        ["fusion", "layers", i, "self_attn"] => format!("transformer.encoder.layers.{i}.self_attn.out_proj.bias"),
        ["fusion", "layers", i, "cross_attn"] => format!("transformer.encoder.layers.{i}.cross_attn_image.out_proj.bias"),
        ["decoder", "layers", i, "self_attn"] => format!("transformer.decoder.layers.{i}.self_attn.out_proj.bias"),
        ["decoder", "layers", i, "ca_text"] => format!("transformer.decoder.layers.{i}.ca_text.out_proj.bias"),
        ["decoder", "layers", i, "ca_image"] => format!("transformer.decoder.layers.{i}.cross_attn.out_proj.bias"),
        ["seg", "prompt_cross_attn"] => "segmentation_head.cross_attend_prompt.out_proj.bias".into(),
        _ => panic!("attention module {module} has no known checkpoint name: extend this test"),
    }
}

/// Every attention module the registry lists (`….attn_weights` ⇒ an attention), with its head count.
fn attention_modules(m: &Sam3) -> Vec<(String, usize)> {
    let reg = hook_registry(&m.config);
    reg.points
        .iter()
        .filter_map(|p| p.name.as_str().strip_suffix(".attn_weights").map(|s| (s.to_string(), p.shape[1])))
        .collect()
}

#[test]
fn heads_plus_bias_equal_the_fused_attention_output_for_every_module() {
    let dev = Device::flex();
    let m = model(&dev);
    let inp = inputs(&dev);
    let weights = read_all(&fixture().join("weights.safetensors"));
    let modules = attention_modules(&m);
    assert_eq!(modules.len(), 4 + 2 + 2 + 4 + 6 + 1, "ViT 4, text 2, geometry 2, fusion 4, decoder 6, seg 1");
    // Fused path everywhere: no head or weight hooks.
    let mut h = Hooks::capture(&["**.out"]).unwrap();
    m.forward(inp.pixels.clone(), inp.ids.clone(), &[], &mut h).unwrap();
    let fused = h.finish().unwrap();
    for (module, heads) in &modules {
        let bias = &weights[&out_bias_key(module)].1;
        assert!(bias.iter().any(|&b| b != 0.0), "{module}: a zero bias would make the test weaker");
        // Only this module's heads: everything upstream stays on the fused path.
        let mut h = Hooks::capture(&[&format!("{module}.head.*"), &format!("{module}.out")]).unwrap();
        m.forward(inp.pixels.clone(), inp.ids.clone(), &[], &mut h).unwrap();
        let c = h.finish().unwrap();
        let want = fused.get(&format!("{module}.out")).unwrap().to_vec();
        let mut sum = vec![0f32; want.len()];
        for k in 0..*heads {
            for (s, v) in sum.iter_mut().zip(c.get(&format!("{module}.head.{k}")).unwrap().to_vec()) {
                *s += v;
            }
        }
        let e = bias.len();
        for (j, s) in sum.iter_mut().enumerate() {
            *s += bias[j % e];
        }
        let err = max_diff(&sum, &want);
        assert!(err <= 1e-5, "{module}: |Σ_h head + b_o − fused out| = {err}");
        let err = max_diff(&sum, &c.get(&format!("{module}.out")).unwrap().to_vec());
        assert!(err <= 1e-5, "{module}: explicit path's own .out differs by {err}");
    }
}

#[test]
fn zeroing_every_head_of_a_module_leaves_only_the_bias() {
    let dev = Device::flex();
    let m = model(&dev);
    let inp = inputs(&dev);
    let weights = read_all(&fixture().join("weights.safetensors"));
    for (module, _) in attention_modules(&m) {
        let bias = &weights[&out_bias_key(&module)].1;
        let spec = HookSpec::new().zero(&format!("{module}.head.*")).unwrap().capture(&format!("{module}.out")).unwrap();
        let mut h = Hooks::new(spec);
        let base = outputs(&m.forward(inp.pixels.clone(), inp.ids.clone(), &[], &mut Hooks::none()).unwrap());
        let o = outputs(&m.forward(inp.pixels.clone(), inp.ids.clone(), &[], &mut h).unwrap());
        let out = h.finish().unwrap().get(&format!("{module}.out")).unwrap().to_vec();
        let e = bias.len();
        assert!(out.iter().enumerate().all(|(j, &v)| v == bias[j % e]), "{module}: ablated output is not exactly b_o");
        assert!(o != base, "{module}: ablating every head changed nothing downstream");
    }
}

#[test]
fn frozen_layer_norm_makes_decoder_head_attribution_additive() {
    let dev = Device::flex();
    let m = model(&dev);
    let inp = inputs(&dev);
    let spec = HookSpec::new().capture("decoder.layers.*.{presence_in,in}").unwrap().capture("decoder.layers.*.self_attn.**").unwrap();
    let mut h = Hooks::new(spec);
    m.forward(inp.pixels.clone(), inp.ids.clone(), &[], &mut h).unwrap();
    let c = h.finish().unwrap();
    for (i, layer) in m.transformer.decoder.layers.iter().enumerate() {
        let t = |n: &str| c.tensor::<3>(&format!("decoder.layers.{i}.{n}")).unwrap();
        // x = [presence, queries]; the post-norm input is r = x + self_attn(x).
        let x = Tensor::cat(vec![t("presence_in"), t("in")], 1);
        let r = x.clone() + t("self_attn.out");
        let ln = FrozenLayerNorm::from_layer_norm(&layer.norm2, r.clone(), 1e-5);
        let b_o = layer.self_attn.out_proj.bias.as_ref().unwrap().val().unsqueeze::<3>();
        let mut parts = vec![x, b_o.expand(r.dims())];
        parts.extend((0..layer.self_attn.num_heads).map(|k| t(&format!("self_attn.head.{k}"))));
        let total = parts.into_iter().map(|p| ln.push(p)).reduce(|a, b| a + b).unwrap() + ln.bias();
        let err = max_diff(&vals(total), &vals(layer.norm2.forward(r)));
        assert!(err < 1e-5, "layer {i}: Σ frozen-LN parts vs norm2(x + attn): {err}");
    }
}

// ---- 5. name errors ----------------------------------------------------------------------------

#[test]
fn unknown_names_and_empty_patterns_are_errors_naming_the_nearest_points() {
    let dev = Device::flex();
    let m = model(&dev);
    let reg = hook_registry(&m.config);
    for (bad, kind, near) in [
        ("decoder.layers.1.qo", "unknown hook point", "decoder.layers.1.q0"),
        ("fusion.layer.1", "unknown hook point", "fusion.layers.1"),
        ("decoder.layers.0.ca_txt.head.0", "unknown hook point", "decoder.layers.0.ca_text.head.0"),
        ("decoder.layers.*.q1", "matches no hook point", "decoder.layers.0.q0"),
        ("decoder.layers.7.q0", "unknown hook point", "decoder.layers.1.q0"),
    ] {
        let e = Hooks::validated(HookSpec::new().capture(bad).unwrap(), &reg).err().unwrap().to_string();
        assert!(e.contains(kind) && e.contains(bad) && e.contains(near), "{bad}: {e}");
    }
    // Without validation a typo is not silent either: the run reports what never matched.
    let inp = inputs(&dev);
    let mut h = Hooks::capture(&["decoder.layers.1.qo", "decoder.layers.1.q0"]).unwrap();
    m.forward(inp.pixels, inp.ids, &[], &mut h).unwrap();
    let un: Vec<String> = h.unmatched().iter().map(|p| p.to_string()).collect();
    assert_eq!(un, ["decoder.layers.1.qo"]);
}

// ---- gradients as hook points ------------------------------------------------------------------

/// The presence logit of the plain (no-autodiff) forward under `spec`.
fn presence_under(m: &Sam3, inp: &Inputs, spec: HookSpec) -> f64 {
    let mut h = Hooks::new(spec);
    let o = m.forward(inp.pixels.clone(), inp.ids.clone(), &[], &mut h).unwrap();
    h.finish().unwrap();
    vals(o.presence_logit)[0] as f64
}

/// On an autodiff device a `grad` entry records ∂(presence logit)/∂(point). Checked against an
/// independent computation: the central finite difference of the plain forward along a random
/// direction, applied with the `add` hook (a first-order Taylor check at three depths: fusion
/// encoder, decoder layer 0's presence token, the last layer's text cross-attention). A point the
/// metric does not depend on, and a device with no graph, are errors naming the point.
#[test]
fn gradients_at_hook_points_match_finite_differences() {
    let points = ["fusion.layers.0.ffn.out", "decoder.layers.0.q0", "decoder.layers.1.ca_text.out"];
    let ad = Device::flex().autodiff();
    let (m, inp) = (model(&ad), inputs(&ad));
    let mut spec = HookSpec::new();
    for p in points {
        spec = spec.grad(p).unwrap();
    }
    let mut h = Hooks::new(spec);
    let out = m.forward(inp.pixels.clone(), inp.ids.clone(), &[], &mut h).unwrap();
    let cache = h.finish().unwrap();
    assert_eq!(cache.grad_points().collect::<Vec<_>>(), { let mut v = points.to_vec(); v.sort(); v });
    let grads = out.presence_logit.clone().sum().backward();
    let g = cache.gradients(&grads).unwrap();

    let dev = Device::flex();
    let (m0, inp0) = (model(&dev), inputs(&dev));
    let plain = presence_under(&m0, &inp0, HookSpec::new());
    // The grad entry leaves the value alone: the autodiff forward's output equals the plain one.
    assert!((vals(out.presence_logit.clone())[0] as f64 - plain).abs() < 1e-5);
    for (k, p) in points.iter().enumerate() {
        let grad = g.get(p).unwrap();
        let dir = noise(grad.numel(), 900 + k as u64);
        let analytic: f64 = grad.to_vec().iter().zip(&dir).map(|(a, b)| *a as f64 * *b as f64).sum();
        let eps = 1e-2f32;
        let step = |alpha: f32| presence_under(&m0, &inp0, HookSpec::new().add(p, DynTensor::from_vec(dir.clone(), grad.shape().to_vec(), &dev), alpha).unwrap());
        let fd = (step(eps) - step(-eps)) / (2.0 * eps as f64);
        println!("{p}: analytic {analytic:.6}, finite difference {fd:.6}");
        assert!(analytic.abs() > 1e-3, "{p}: the presence logit should depend on this point ({analytic})");
        assert!((analytic - fd).abs() <= 0.03 * fd.abs().max(analytic.abs()) + 1e-4, "{p}: analytic {analytic} vs finite difference {fd}");
    }

    // The segmentation head does not feed the presence logit: no gradient reaches it.
    let mut h = Hooks::new(HookSpec::new().grad("seg.pixel_embed").unwrap());
    let out = m.forward(inp.pixels.clone(), inp.ids.clone(), &[], &mut h).unwrap();
    let cache = h.finish().unwrap();
    let e = cache.gradients(&out.presence_logit.sum().backward()).unwrap_err().to_string();
    assert!(e.contains("seg.pixel_embed") && e.contains("no gradient"), "{e}");
    // A device with no graph is refused, naming the point.
    let mut h = Hooks::new(HookSpec::new().grad("decoder.layers.0.q0").unwrap());
    let e = m0.forward(inp0.pixels.clone(), inp0.ids.clone(), &[], &mut h).unwrap_err().to_string();
    assert!(e.contains("decoder.layers.0.q0") && e.contains("autodiff"), "{e}");
    // A read-only point is refused by validation, like an edit.
    let e = Hooks::validated(HookSpec::new().grad("decoder.layers.0.mean").unwrap(), &hook_registry(&m0.config)).err().unwrap().to_string();
    assert!(e.contains("read-only") && e.contains("grad"), "{e}");
}
