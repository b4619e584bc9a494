//! Fixture access shared by the model crate's integration tests (each test file compiles its own
//! copy, so not every helper is used everywhere).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use safetensors::{Dtype, SafeTensors};
use sam3lab_model::{BoxPrompt, Sam3};

/// Tensors by name: `(shape, values as f32)`.
pub type Host = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// The shipped fixture A directory.
pub fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny")
}

/// Every tensor of a safetensors file as f32 (I64 cast, other dtypes byte by byte).
pub fn read_all(path: &Path) -> Host {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| {
            let d = v.data();
            let data: Vec<f32> = match v.dtype() {
                Dtype::F32 => d.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
                Dtype::I64 => d.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
                _ => d.iter().map(|&b| b as f32).collect(),
            };
            (k, (v.shape().to_vec(), data))
        })
        .collect()
}

/// The fixture's image, token ids and box prompt.
pub struct Inputs {
    pub pixels: Tensor<4>,
    pub ids: Tensor<2, Int>,
    pub bx: BoxPrompt,
}

pub fn inputs(dev: &Device) -> Inputs {
    let inp = read_all(&fixture().join("inputs.safetensors"));
    let (s, v) = &inp["pixel_values"];
    let pixels = Tensor::from_data(TensorData::new(v.clone(), s.clone()), dev);
    let (s, v) = &inp["input_ids"];
    let ids = Tensor::<2, Int>::from_data(TensorData::new(v.iter().map(|&x| x as i64).collect::<Vec<_>>(), s.clone()), dev);
    let (_, b) = &inp["box_prompt_cxcywh"];
    let (_, l) = &inp["box_prompt_label"];
    Inputs { pixels, ids, bx: BoxPrompt { cxcywh: [b[0], b[1], b[2], b[3]], positive: l[0] > 0.5 } }
}

/// Fixture A's model.
pub fn model(dev: &Device) -> Sam3 {
    Sam3::load(&fixture(), None, dev).unwrap().0
}

pub fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}
