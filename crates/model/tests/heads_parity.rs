//! Head-only parity on fixture A: feed the fixture's EXPECTED backbone outputs (`neck.fpn.{0,1,2}`,
//! `text.out`, `text.padding_mask`) into the heads and compare every geometry / prompt / fusion /
//! decoder / scoring / seg / out / post key — and the `box_prompt.*` ones from a second grounding with
//! the fixture's box — against `expected.safetensors` (atol 1e-4 + rtol 1e-3·|ref|; mask logits and
//! probabilities atol 1e-3). This isolates head bugs from backbone bugs.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::{Bool, TensorData};
use safetensors::{Dtype, SafeTensors};
use sam3lab_model::{Sam3, Sam3Config};
use sam3lab_model::geometry::{BoxPrompt, GeometryPrompt};
use sam3lab_model::heads::{ImageFeatures, TextFeatures};
use sam3lab_model::hooks::{ActivationCache, Hooks};
use sam3lab_model::nn::pos2d::sine_pos_2d;
use sam3lab_model::parity::hook_name;
use sam3lab_model::postprocess::{boxes_xyxy_px, mask_probs};

mod common;
use common::fixture;

#[derive(Clone, Debug)]
struct Arr {
    shape: Vec<usize>,
    data: Vec<f32>,
}

fn read_all(path: &Path) -> BTreeMap<String, Arr> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| {
            let d = v.data();
            let data: Vec<f32> = match v.dtype() {
                Dtype::F32 => d
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                Dtype::I64 => d
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
                Dtype::BOOL | Dtype::U8 => d.iter().map(|&b| b as f32).collect(),
                other => panic!("{k}: unexpected dtype {other:?}"),
            };
            (
                k,
                Arr {
                    shape: v.shape().to_vec(),
                    data,
                },
            )
        })
        .collect()
}

/// Reference layout → hook layout (batch first), per the conventions doc.
fn to_hook_layout(a: &Arr, layout: &str, heads: usize) -> Arr {
    let dims: Vec<&str> = layout.split_whitespace().next().unwrap().split(',').collect();
    let s = &a.shape;
    if dims.len() >= 2 && dims[1] == "B" {
        // (S, B, rest…) → (B, S, rest…)
        let (n0, n1) = (s[0], s[1]);
        let inner: usize = s[2..].iter().product();
        let mut out = vec![0f32; a.data.len()];
        for i in 0..n0 {
            for j in 0..n1 {
                let src = (i * n1 + j) * inner;
                let dst = (j * n0 + i) * inner;
                out[dst..dst + inner].copy_from_slice(&a.data[src..src + inner]);
            }
        }
        let mut shape = s.clone();
        shape.swap(0, 1);
        return Arr { shape, data: out };
    }
    if dims[0] == "B*nH" {
        return Arr {
            shape: vec![s[0] / heads, heads, s[1], s[2]],
            data: a.data.clone(),
        };
    }
    if dims == ["L", "Q", "B", "4"] {
        let (l, q, b) = (s[0], s[1], s[2]);
        let mut out = vec![0f32; a.data.len()];
        for li in 0..l {
            for qi in 0..q {
                for bi in 0..b {
                    let src = ((li * q + qi) * b + bi) * 4;
                    let dst = ((bi * l + li) * q + qi) * 4;
                    out[dst..dst + 4].copy_from_slice(&a.data[src..src + 4]);
                }
            }
        }
        return Arr {
            shape: vec![b, l, q, 4],
            data: out,
        };
    }
    a.clone()
}

fn tensor<const D: usize>(a: &Arr, dev: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(a.data.clone(), a.shape.clone()), dev)
}

fn vals<const D: usize>(t: Tensor<D>) -> Arr {
    let shape = t.dims().to_vec();
    Arr {
        shape,
        data: t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap(),
    }
}

struct Fixture {
    cfg: Sam3Config,
    layouts: BTreeMap<String, String>,
    expected: BTreeMap<String, Arr>,
    inputs: BTreeMap<String, Arr>,
    raw_hw: (usize, usize),
}

fn load_fixture() -> Fixture {
    let dir = fixture();
    let cfg = Sam3Config::from_file(&dir.join("config.json")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let layouts = json["expected"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["layout"].as_str().unwrap().to_string()))
        .collect();
    let raw = &json["image"]["raw_hw"];
    let raw_hw = (raw[0].as_u64().unwrap() as usize, raw[1].as_u64().unwrap() as usize);
    Fixture {
        cfg,
        layouts,
        expected: read_all(&dir.join("expected.safetensors")),
        inputs: read_all(&dir.join("inputs.safetensors")),
        raw_hw,
    }
}

/// The whole model from the fixture's weights; only its heads run here.
fn load_heads(cfg: &Sam3Config, dev: &Device) -> Sam3 {
    let mut heads = Sam3::new(cfg, dev);
    let mut store = SafetensorsStore::from_file(fixture().join("weights.safetensors"))
        .with_from_adapter(PyTorchToBurnAdapter)
        .allow_partial(true);
    let r = heads.load_from(&mut store).unwrap();
    assert!(
        r.missing.is_empty(),
        "parameters missing from the checkpoint: {:?}",
        r.missing
    );
    assert!(r.errors.is_empty(), "load errors: {:?}", r.errors);
    let stray: Vec<_> = r.unused.iter().filter(|k| !k.starts_with("backbone.")).collect();
    assert!(stray.is_empty(), "head keys the module did not take: {stray:?}");
    heads
}

fn features(fx: &Fixture, dev: &Device) -> (ImageFeatures, TextFeatures) {
    let cfg = &fx.cfg;
    let fpn: Vec<Tensor<4>> = (0..3)
        .map(|i| tensor(&fx.expected[&format!("neck.fpn.{i}")], dev))
        .collect();
    let pos = fpn
        .iter()
        .map(|f| {
            let [_, _, h, w] = f.dims();
            sine_pos_2d(h, w, &cfg.position_encoding, dev)
        })
        .collect();
    let text = to_hook_layout(&fx.expected["text.out"], &fx.layouts["text.out"], 0);
    let mask = &fx.expected["text.padding_mask"];
    let mask = Tensor::<2>::from_data(TensorData::new(mask.data.clone(), mask.shape.clone()), dev).greater_elem(0.5);
    (
        ImageFeatures { fpn, pos },
        TextFeatures {
            feats: tensor(&text, dev),
            padding_mask: mask,
        },
    )
}

/// Is this fixture key produced by the heads (not the backbone)?
fn is_head_key(k: &str) -> bool {
    let k = k.strip_prefix("box_prompt.").unwrap_or(k);
    !["image", "trunk.", "neck.", "text."].iter().any(|p| k.starts_with(p))
}


/// Compare; returns (max abs err, worst excess over tolerance) and an error text when outside.
fn compare(key: &str, got: &Arr, exp: &Arr, atol: f32, rtol: f32) -> Result<f32, String> {
    if got.shape != exp.shape {
        return Err(format!("{key}: shape {:?}, expected {:?}", got.shape, exp.shape));
    }
    let mut max_abs = 0f32;
    let mut bad = 0usize;
    for (g, e) in got.data.iter().zip(&exp.data) {
        let d = (g - e).abs();
        if !d.is_finite() {
            return Err(format!("{key}: non-finite value {g} (expected {e})"));
        }
        max_abs = max_abs.max(d);
        if d > atol + rtol * e.abs() {
            bad += 1;
        }
    }
    if bad > 0 {
        Err(format!(
            "{key}: {bad}/{} values outside atol {atol} + rtol {rtol}; max |diff| {max_abs:e}",
            got.data.len()
        ))
    } else {
        Ok(max_abs)
    }
}

fn is_mask_key(k: &str) -> bool {
    k.ends_with("pred_masks") || k.ends_with("mask_probs") || k.ends_with("semantic_seg")
}

fn run_and_compare(fx: &Fixture, heads: &Sam3, geo: &GeometryPrompt, prefix: &str, dev: &Device) -> Vec<String> {
    let (img, text) = features(fx, dev);
    let mut hooks = Hooks::capture(&["**"]).unwrap();
    let out = heads.ground_geometry(&img, &text, geo, &mut hooks).unwrap();
    let cache: ActivationCache = hooks.finish().unwrap();
    let heads_n = fx.cfg.decoder.num_heads;
    let mut failures = Vec::new();
    let mut compared = 0;
    for (key, exp) in fx.expected.iter() {
        let Some(k) = key.strip_prefix(prefix) else { continue };
        if prefix.is_empty() && key.starts_with("box_prompt.") || !is_head_key(key) {
            continue;
        }
        let exp = to_hook_layout(exp, &fx.layouts[key], heads_n);
        let got = match k {
            "post.boxes_xyxy_px" => vals(boxes_xyxy_px(&out, fx.raw_hw)),
            "post.mask_probs" => vals(mask_probs(out.pred_masks.clone(), fx.raw_hw)),
            _ => match cache.get(&hook_name(k)) {
                Ok(t) => Arr {
                    shape: t.shape().to_vec(),
                    data: t.to_vec(),
                },
                Err(e) => {
                    failures.push(format!("{key}: not captured ({e})"));
                    continue;
                }
            },
        };
        let atol = if is_mask_key(k) { 1e-3 } else { 1e-4 };
        match compare(key, &got, &exp, atol, 1e-3) {
            Ok(m) => println!("ok   {key:48} {:?} max|diff| {m:.2e}", exp.shape),
            Err(e) => failures.push(e),
        }
        compared += 1;
    }
    assert!(compared > 30, "only {compared} keys compared for prefix `{prefix}`");
    failures
}

#[test]
fn heads_match_fixture_text_only_and_box_prompt() {
    let dev = Device::flex();
    let fx = load_fixture();
    let heads = load_heads(&fx.cfg, &dev);

    let mut failures = run_and_compare(&fx, &heads, &GeometryPrompt::default(), "", &dev);

    let b = &fx.inputs["box_prompt_cxcywh"];
    let l = &fx.inputs["box_prompt_label"];
    let bx = BoxPrompt {
        cxcywh: [b.data[0], b.data[1], b.data[2], b.data[3]],
        positive: l.data[0] > 0.5,
    };
    failures.extend(run_and_compare(
        &fx,
        &heads,
        &GeometryPrompt::boxes(&[bx]),
        "box_prompt.",
        &dev,
    ));
    assert!(
        failures.is_empty(),
        "{} keys failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The padding mask really masks: a text-only prompt whose padding tokens are perturbed gives the
/// same outputs (guards against the mask being dropped on the way to the attention).
#[test]
fn prompt_padding_is_ignored() {
    let dev = Device::flex();
    let fx = load_fixture();
    let heads = load_heads(&fx.cfg, &dev);
    let (img, text) = features(&fx, &dev);
    let mut none = Hooks::none();
    let a = heads
        .ground_geometry(&img, &text, &GeometryPrompt::default(), &mut none)
        .unwrap();
    let pad = text.padding_mask.clone().float().unsqueeze_dim::<3>(2);
    let noisy = TextFeatures {
        feats: text.feats.clone() + pad.mul_scalar(3.0),
        padding_mask: text.padding_mask.clone(),
    };
    let b = heads
        .ground_geometry(&img, &noisy, &GeometryPrompt::default(), &mut none)
        .unwrap();
    let (x, y) = (vals(a.pred_logits), vals(b.pred_logits));
    let m = x
        .data
        .iter()
        .zip(&y.data)
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max);
    assert!(m < 1e-5, "padding changed the logits by {m}");
    let _: Tensor<2, Bool> = text.padding_mask;
}
