//! `sam3lab parity` end to end: the shipped fixture passes every key (exit 0, JSON report written);
//! a fixture whose expected values were perturbed fails that key (exit 1); an unusable fixture
//! exits 2 naming what is wrong.

use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::SafeTensors;
use safetensors::tensor::TensorView;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny")
}

fn sam3lab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sam3lab"))
}

#[test]
fn shipped_fixture_passes_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = sam3lab().args(["parity", "--fixture"]).arg(fixture()).arg("--json").arg(&json).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("115 passed, 0 failed, 0 not covered"), "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["mode"], "full");
    assert_eq!(v["passed"], 115);
    assert_eq!(v["weights_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(v["rows"].as_array().unwrap().len(), 115);
}

#[test]
fn perturbed_expectation_fails_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "weights.safetensors", "inputs.safetensors"] {
        std::fs::copy(fixture().join(f), dir.path().join(f)).unwrap();
    }
    // add 1e-2 to one element of text.out
    let bytes = std::fs::read(fixture().join("expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(k, v)| (k, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    let t = owned.iter_mut().find(|t| t.0 == "text.out").unwrap();
    let x = f32::from_le_bytes(t.3[..4].try_into().unwrap()) + 1e-2;
    t.3[..4].copy_from_slice(&x.to_le_bytes());
    let views: Vec<(String, TensorView<'_>)> =
        owned.iter().map(|(k, d, s, b)| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(dir.path().join("expected.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();

    let out = sam3lab().args(["parity", "--quiet", "--fixture"]).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("114 passed, 1 failed"), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with("text.out ")).expect("the failing key is listed");
    assert!(line.contains("FAIL") && line.contains("1.000e-2"), "{line}");
}

#[test]
fn unusable_fixture_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture().join("config.json"), dir.path().join("config.json")).unwrap();
    let out = sam3lab().args(["parity", "--fixture"]).arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing weights.safetensors"), "{stderr}");
    let out = sam3lab().args(["parity", "--fixture", "/nonexistent/fixture"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/fixture"));
}
