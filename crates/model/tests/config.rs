//! `param_shapes` against independent sources: design doc §1.3's per-group counts for the released
//! config (verified there by instantiating the reference), the fixture's `weights` section (the
//! reference state_dict of fixture A), and the burn module tree itself.

use burn::prelude::*;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot};
use sam3lab_model::params::{PARAM_GROUPS, count_params, param_shapes};
use sam3lab_model::{Sam3, Sam3Config};

mod common;
use common::fixture;

#[test]
fn sam3_parameter_counts_per_group_match_design_table() {
    let shapes = param_shapes(&Sam3Config::sam3());
    let want = [
        ("vision_trunk", 446_237_696, 388),
        ("neck", 7_802_112, 22),
        ("text_encoder", 353_724_672, 295),
        ("geometry_encoder", 8_215_808, 76),
        ("fusion_encoder", 9_472_512, 108),
        ("transformer_decoder", 11_575_093, 175),
        ("dot_prod_scoring", 1_182_976, 10),
        ("segmentation_head", 2_298_881, 28),
    ];
    let mut seen = 0;
    for ((name, prefix), (wname, wparams, wtensors)) in PARAM_GROUPS.iter().zip(want) {
        assert_eq!(*name, wname);
        let g: Vec<_> = shapes.iter().filter(|(k, _)| k.starts_with(prefix)).cloned().collect();
        assert_eq!((count_params(&g), g.len()), (wparams, wtensors), "group {name}");
        seen += g.len();
    }
    assert_eq!(seen, shapes.len(), "every key is in exactly one group");
    assert_eq!(count_params(&shapes), 840_509_750);
    // presence group (design §1.3): 132,609 over 9 tensors
    let pres: Vec<_> = shapes.iter().filter(|(k, _)| k.starts_with("transformer.decoder.presence_token")).cloned().collect();
    assert_eq!((count_params(&pres), pres.len()), (132_609, 9));
}

#[test]
fn fixture_weights_section_is_reproduced_exactly() {
    let text = std::fs::read_to_string(fixture().join("config.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut want: Vec<(String, Vec<usize>)> = v["weights"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, s)| (k.clone(), s.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()))
        .collect();
    let cfg = Sam3Config::from_json_str(&text, "fixture").unwrap();
    let mut got = param_shapes(&cfg);
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

/// The burn module tree, read back in torch naming/layout, has exactly the `param_shapes` keys:
/// parameter paths ARE the checkpoint keys.
#[test]
fn module_tree_equals_param_shapes() {
    let dev = Device::flex();
    for cfg in [Sam3Config::from_file(&fixture().join("config.json")).unwrap(), odd_config()] {
        let model = Sam3::new(&cfg, &dev);
        let mut got: Vec<(String, Vec<usize>)> = model
            .collect(None, Some(Box::new(BurnToPyTorchAdapter)), false)
            .into_iter()
            .map(|t| (t.name.clone(), t.shape.to_vec()))
            .collect();
        let mut want = param_shapes(&cfg);
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }
}

fn odd_config() -> Sam3Config {
    let mut cfg = Sam3Config::from_file(&fixture().join("config.json")).unwrap();
    cfg.image_size = 42;
    cfg.vit.img_size = 42;
    cfg.vit.pretrain_img_size = 28;
    cfg.vit.embed_dim = 48;
    cfg.vit.num_heads = 3;
    cfg.vit.depth = 5;
    cfg.vit.window_size = 2;
    cfg.d_model = 24;
    cfg.position_encoding.num_pos_feats = 24;
    cfg.text.width = 12;
    cfg.text.heads = 3;
    cfg.text.layers = 3;
    cfg.decoder.num_heads = 3;
    cfg.decoder.num_layers = 3;
    cfg.fusion.num_layers = 3;
    cfg.validate().unwrap();
    cfg
}

/// The config is checked once, when the model is made: a decoder with no layer is a config error
/// (from `validate`, which `Sam3::load` reports with the file), not a failure inside a forward.
#[test]
fn zero_decoder_layers_is_a_config_error() {
    let mut cfg = odd_config();
    cfg.decoder.num_layers = 0;
    let err = cfg.validate().unwrap_err();
    assert!(err.contains("decoder.num_layers must be at least 1"), "{err}");
    let made = std::panic::catch_unwind(|| Sam3::new(&cfg, &Device::flex()));
    assert!(made.is_err(), "Sam3::new accepted an invalid config");
}
