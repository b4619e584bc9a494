//! Helpers shared by the CLI's end-to-end tests on the shipped fixture (each test file compiles its
//! own copy, so not every helper is used everywhere).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shipped fixture A directory.
pub fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny")
}

/// Run the built `sam3lab` binary.
pub fn sam3lab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sam3lab")).args(args).output().expect("run sam3lab")
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// (shape, f32 values or empty, raw bytes) per tensor.
pub fn read_st(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| {
            let raw = v.data().to_vec();
            let f = if v.dtype() == safetensors::Dtype::F32 {
                raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
            } else {
                vec![]
            };
            (k, (v.shape().to_vec(), f, raw))
        })
        .collect()
}

/// The fixture's raw image (uint8 H0×W0×3) as a PNG in `dir`.
pub fn fixture_png(dir: &Path) -> PathBuf {
    let inputs = read_st(&fixture().join("inputs.safetensors"));
    let (shape, _, raw) = &inputs["image_uint8"];
    let img = image::RgbImage::from_raw(shape[1] as u32, shape[0] as u32, raw.clone()).unwrap();
    let p = dir.join("fixture.png");
    img.save(&p).unwrap();
    p
}

/// Run the built `sam3lab` binary (alias of [`sam3lab`]).
pub fn run(args: &[&str]) -> Output {
    sam3lab(args)
}

/// Run and require success; stdout.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "{args:?} failed:\n{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Run and require exit 2 (unusable input); stderr.
pub fn fails(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(o.status.code(), Some(2), "{args:?} should exit 2:\n{}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A path as an owned string (for argument lists).
pub fn path_string(p: &Path) -> String {
    p.display().to_string()
}

pub fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}
