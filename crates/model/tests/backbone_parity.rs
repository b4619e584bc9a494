//! Backbone parity on fixture A through the parity library: every `trunk.*`, `neck.*`, `text.*` key
//! of `expected.safetensors` is produced and within tolerance; hooks do not change the numbers;
//! a second, randomly initialised config with 3 heads, a grid that is not a multiple of the window
//! and more layers runs with every hook shape equal to the registry.

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use sam3lab_model::backbone::Backbone;
use sam3lab_model::hooks::Hooks;
use sam3lab_model::predict::{is_image_point, is_text_point};
use sam3lab_model::parity::{Fixture, Status, compare_fixture, run_backbone};
use sam3lab_model::{Sam3Config, params};

mod common;
use common::fixture;

const BACKBONE: [&str; 3] = ["trunk.", "neck.", "text."];

#[test]
fn fixture_a_every_backbone_key_matches() {
    let fx = Fixture::load(&fixture()).unwrap();
    let caps = run_backbone(&fx, &Device::flex()).unwrap();
    let report = compare_fixture(&fx, &caps);
    let want: Vec<&String> = fx.expected.iter().map(|(k, _)| k).filter(|k| BACKBONE.iter().any(|p| k.starts_with(p))).collect();
    // 4 blocks + 4 RoPE tables + patch_embed/embed/ln_pre/out, 4 neck levels, 7 text keys
    assert_eq!(want.len(), 23, "fixture A's backbone keys: {want:?}");
    for k in want {
        let row = report.row(k).unwrap();
        assert_eq!(row.status, Status::Pass, "{k}: {row:?}");
        assert!(row.max_abs.unwrap() < 1e-4, "{k}: {row:?}");
    }
    // the head keys are not produced by a backbone-only run
    assert_eq!(report.row("fusion.memory").unwrap().status, Status::NotCovered);
}

fn ids(v: &[i64], dev: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(v.to_vec(), [1, v.len()]), dev)
}

/// The per-head (explicit) attention path every hook forces gives the same numbers as the fused
/// path of a plain forward.
#[test]
fn hooks_do_not_change_the_forward() {
    let dev = Device::flex();
    let fx = Fixture::load(&fixture()).unwrap();
    let mut model = Backbone::new(&fx.config, &dev);
    sam3lab_model::checkpoint::load_into(&mut model, &fixture().join("weights.safetensors"), &params::param_shapes(&fx.config), "backbone.")
        .unwrap();
    let px = fx.input("pixel_values").unwrap();
    let pixels = || Tensor::<4>::from_data(TensorData::new(px.data.clone(), [1, 3, 112, 112]), &dev);
    let plain = model.forward_image(pixels(), &mut Hooks::none());
    let mut hooks = Hooks::capture(&["**"]).unwrap();
    let hooked = model.forward_image(pixels(), &mut hooks);
    for (a, b) in plain.fpn.iter().zip(&hooked.fpn) {
        let d = (a.clone() - b.clone()).abs().max().into_scalar::<f32>();
        assert!(d < 1e-5, "fused vs explicit attention differ by {d}");
    }
    // head contributions + bias = attention output
    let c = hooks.finish().unwrap();
    let out = c.get("trunk.blocks.1.attn.out").unwrap().to_vec();
    let h0 = c.get("trunk.blocks.1.attn.head.0").unwrap().to_vec();
    let h1 = c.get("trunk.blocks.1.attn.head.1").unwrap().to_vec();
    let bias = model.vision_backbone.trunk.blocks[1].attn.proj.bias.as_ref().unwrap().val().into_data().try_to_vec::<f32>().unwrap();
    let cdim = bias.len();
    for i in 0..out.len() {
        let s = h0[i] + h1[i] + bias[i % cdim];
        assert!((s - out[i]).abs() < 1e-5, "at {i}: {s} vs {}", out[i]);
    }
}

/// 3 heads, grid 3 with window 2 (padding path), pretrain grid 2 tiled to 3, 5 blocks of which
/// the last comes after the last global block, 3 text layers: runs, is finite, and every captured
/// hook has the registry's shape (and every registry point is captured).
#[test]
fn odd_config_runs_with_registry_shapes() {
    let mut cfg = Sam3Config::from_file(&fixture().join("config.json")).unwrap();
    cfg.image_size = 42;
    cfg.d_model = 24;
    cfg.position_encoding.num_pos_feats = 24;
    let v = &mut cfg.vit;
    v.img_size = 42;
    v.pretrain_img_size = 28;
    v.embed_dim = 48;
    v.num_heads = 3;
    v.depth = 5;
    v.global_att_blocks = vec![1, 3];
    v.window_size = 2;
    cfg.text.width = 12;
    cfg.text.heads = 3;
    cfg.text.layers = 3;
    cfg.text.context_length = 8;
    for h in [&mut cfg.geometry.num_heads, &mut cfg.fusion.num_heads, &mut cfg.decoder.num_heads, &mut cfg.seg_head.cross_attend_prompt_heads] {
        *h = 3;
    }
    cfg.validate().unwrap();
    sam3lab_model::backbone::check_supported(&cfg).unwrap();

    let dev = Device::flex();
    let model = Backbone::new(&cfg, &dev);
    let pixels = Tensor::<4>::random([1, 3, 42, 42], burn::tensor::Distribution::Uniform(-1.0, 1.0), &dev);
    let mut hooks = Hooks::capture(&["**"]).unwrap();
    let v = model.forward_image(pixels.clone(), &mut hooks);
    let t = model.forward_text(ids(&[49406, 320, 2368, 49407, 0, 0, 0, 0], &dev), &mut hooks);
    assert_eq!(v.fpn.iter().map(|f| f.dims()).collect::<Vec<_>>(), vec![[1, 24, 12, 12], [1, 24, 6, 6], [1, 24, 3, 3]]);
    assert_eq!(t.features.dims(), [1, 8, 24]);
    let cache = hooks.finish().unwrap();

    let mut reg = sam3lab_model::hook_registry(&cfg);
    reg.points.retain(|p| is_image_point(p.name.as_str()) || is_text_point(p.name.as_str()));
    for p in &reg.points {
        let got = cache.get(p.name.as_str()).unwrap_or_else(|_| panic!("registry point {} not captured", p.name));
        assert_eq!(got.shape(), p.shape.as_slice(), "{}", p.name);
        assert!(got.to_vec().iter().all(|x| x.is_finite()), "{} not finite", p.name);
    }
    assert_eq!(cache.len(), reg.points.len(), "captured points not in the registry");
    // the window blocks see (B·nW, w·w, C) = (4, 4, 48): 2×2 windows over the padded 4×4 grid
    assert_eq!(cache.get("trunk.blocks.0.attn.out").unwrap().shape(), &[4, 4, 48]);

    // A plain forward skips block 4 (after the last global block) without changing the output.
    let plain = model.forward_image(pixels, &mut Hooks::none());
    let d = (plain.fpn[2].clone() - v.fpn[2].clone()).abs().max().into_scalar::<f32>();
    assert!(d < 1e-5, "{d}");
}
