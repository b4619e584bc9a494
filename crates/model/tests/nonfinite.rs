//! Non-finite values are refused: a checkpoint with NaN / ±Inf in a tensor does not load (the error
//! names the file and every such tensor) unless `allow_nonfinite` is asked for, and a forward whose
//! outputs are non-finite is an error naming the outputs, never a result reading "presence NaN".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sam3lab_model::checkpoint::{LoadOptions, count_nonfinite, load_into_with_options};
use sam3lab_model::hooks::{HookSpec, Hooks};
use sam3lab_model::params::param_shapes;
use sam3lab_model::predict::Predictor;
use sam3lab_model::{ModelError, Sam3, Sam3Config};

mod common;
use common::fixture;

fn config() -> PathBuf {
    fixture().join("config.json")
}

/// The fixture weights with `poison` values written into the first elements of named tensors.
fn poisoned(dir: &Path, poison: &[(&str, f32)]) -> PathBuf {
    let bytes = std::fs::read(fixture().join("weights.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut t: BTreeMap<String, (Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(k, v)| (k, (v.shape().to_vec(), v.data().to_vec()))).collect();
    for (i, (name, v)) in poison.iter().enumerate() {
        let (_, b) = t.get_mut(*name).unwrap_or_else(|| panic!("{name} not in the fixture"));
        // a different element per poisoned tensor, so counts are per tensor
        b[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    let views: Vec<(String, TensorView<'_>)> =
        t.iter().map(|(k, (s, b))| (k.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
    let p = dir.join("poisoned.safetensors");
    std::fs::write(&p, safetensors::serialize(views, None).unwrap()).unwrap();
    p
}

const NAN_AT: &str = "transformer.decoder.presence_token.weight";
const INF_AT: &str = "backbone.vision_backbone.trunk.ln_pre.bias";

#[test]
fn a_checkpoint_with_nan_or_inf_is_refused_naming_every_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let p = poisoned(dir.path(), &[(NAN_AT, f32::NAN), (INF_AT, f32::NEG_INFINITY)]);
    let err = Sam3::load(&p, Some(&config()), &Device::flex()).map(|_| ()).unwrap_err();
    assert!(matches!(err, ModelError::Checkpoint { .. }), "{err:?}");
    let msg = err.to_string();
    for needle in [
        "poisoned.safetensors",
        "2 tensor(s) hold NaN or ±Inf",
        &format!("{NAN_AT} (1 NaN, 0 Inf of"),
        &format!("{INF_AT} (0 NaN, 1 Inf of"),
        "--allow-nonfinite",
    ] {
        assert!(msg.contains(needle), "`{needle}` not in:\n{msg}");
    }
    // The clean fixture loads.
    Sam3::load(&fixture(), None, &Device::flex()).unwrap();
}

#[test]
fn allow_nonfinite_loads_the_values_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let p = poisoned(dir.path(), &[(NAN_AT, f32::NAN)]);
    let cfg = Sam3Config::from_file(&config()).unwrap();
    let mut model = Sam3::new(&cfg, &Device::flex());
    let opts = LoadOptions { allow_nonfinite: true };
    load_into_with_options(&mut model, &p, &param_shapes(&cfg), "", &std::env::temp_dir(), opts).unwrap();
    let v = model.transformer.decoder.presence_token.weight.val().into_data().try_to_vec::<f32>().unwrap();
    assert!(v[0].is_nan(), "the NaN is loaded as is");
    // and the default options refuse the same file
    let mut model = Sam3::new(&cfg, &Device::flex());
    let e = load_into_with_options(&mut model, &p, &param_shapes(&cfg), "", &std::env::temp_dir(), LoadOptions::default());
    assert!(e.unwrap_err().to_string().contains(NAN_AT));
}

#[test]
fn nonfinite_counts_cover_every_float_type() {
    use burn::tensor::DType;
    let f32s: Vec<u8> = [1.0f32, f32::NAN, f32::INFINITY, -f32::INFINITY].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(count_nonfinite(DType::F32, &f32s), Some((1, 2)));
    let f64s: Vec<u8> = [f64::NAN, 0.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(count_nonfinite(DType::F64, &f64s), Some((1, 0)));
    let f16s: Vec<u8> = [half::f16::INFINITY, half::f16::ONE].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(count_nonfinite(DType::F16, &f16s), Some((0, 1)));
    let bf16s: Vec<u8> = [half::bf16::NAN].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(count_nonfinite(DType::BF16, &bf16s), Some((1, 0)));
    assert_eq!(count_nonfinite(DType::I64, &[0; 8]), None);
}

#[test]
fn a_forward_with_nonfinite_outputs_is_an_error_naming_them() {
    let p = Predictor::load(&fixture(), None, &Device::flex()).unwrap();
    let img = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 90]));
    let enc = p.encode_image(&img, &mut Hooks::none());
    let text = p.encode_prompt("a red cat", &mut Hooks::none()).unwrap();
    // the plain forward is finite
    p.ground(&enc, &text, &[], &mut Hooks::none()).unwrap();
    let mut hooks = Hooks::new(HookSpec::new().scale("presence_logit", f32::NAN).unwrap());
    let err = p.ground(&enc, &text, &[], &mut hooks).unwrap_err();
    assert!(matches!(err, ModelError::NonFinite(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("presence_logit (1 NaN, 0 Inf of 1)"), "{msg}");
    assert!(msg.contains("scores ("), "{msg}");
    // segment goes through the same check: no detections file can say "presence NaN"
    let mut hooks = Hooks::new(HookSpec::new().scale("presence_logit", f32::INFINITY).unwrap());
    let e = p.segment(&enc, "a red cat", &[], 0.5, &mut hooks).unwrap_err().to_string();
    assert!(e.contains("non-finite model output: presence_logit (0 NaN, 1 Inf of 1)"), "{e}");
}
