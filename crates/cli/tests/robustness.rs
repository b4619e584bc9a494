//! The CLI on hostile conditions: output piped into a reader that closes early (`| head`) ends the
//! command quietly with status 0; a checkpoint holding NaN is refused naming the tensor (and loads
//! with `--allow-nonfinite`, with a warning about the non-finite forward); an over-long prompt's
//! warning shows the prompt shortened.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

mod common;
use common::{fixture, fixture_png, s, sam3lab};

/// Run `sam3lab ARGS`, read one line of its stdout, close the pipe, and return (status, stderr).
fn closed_after_one_line(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sam3lab"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sam3lab");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "some output came before the pipe closed");
    drop(out); // the reader goes away, as `head -1` does
    let o = child.wait_with_output().unwrap();
    (o.status, String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // Both outputs are far larger than a pipe buffer (64 KiB), so the command is still writing when
    // the reader goes away.
    let full = sam3lab(&["hooks", "list"]);
    assert!(full.stdout.len() > 128 * 1024, "{} bytes", full.stdout.len());
    for args in [&["hooks", "list"][..], &["hooks", "list", "--json"][..]] {
        let (status, stderr) = closed_after_one_line(args);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?} is quiet: {stderr}");
        assert!(status.success(), "{args:?}: {status:?}");
    }
}

/// A fixture directory whose weights hold a NaN in `name`.
fn nan_fixture(dir: &Path, name: &str) -> PathBuf {
    let fx = dir.join("nan-fixture");
    std::fs::create_dir_all(&fx).unwrap();
    std::fs::copy(fixture().join("config.json"), fx.join("config.json")).unwrap();
    let bytes = std::fs::read(fixture().join("weights.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut t: Vec<(String, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(k, v)| (k, v.shape().to_vec(), v.data().to_vec())).collect();
    let (_, _, b) = t.iter_mut().find(|(k, _, _)| k == name).unwrap();
    b[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    let views: Vec<(String, TensorView<'_>)> =
        t.iter().map(|(k, sh, b)| (k.clone(), TensorView::new(Dtype::F32, sh.clone(), b).unwrap())).collect();
    std::fs::write(fx.join("weights.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
    fx
}

#[test]
fn a_nan_checkpoint_is_refused_by_name_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let png = fixture_png(dir.path());
    let name = "transformer.decoder.presence_token.weight";
    let fx = nan_fixture(dir.path(), name);
    let out = dir.path().join("out");
    let args = ["segment", "--ckpt", s(&fx), "--image", s(&png), "--prompt", "a red cat", "--out", s(&out)];
    let o = sam3lab(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(name) && stderr.contains("NaN"), "{stderr}");
    assert!(!out.join("detections.json").exists(), "no results file from NaN weights");

    // The debugging escape: the weights load, and the non-finite forward is a warning, not silent.
    let mut allowed = args.to_vec();
    allowed.push("--allow-nonfinite");
    let o = sam3lab(&allowed);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("warning: non-finite model output"), "{stderr}");
}

#[test]
fn the_over_long_prompt_warning_shows_a_shortened_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let png = fixture_png(dir.path());
    let long = "a very small red and white striped cat ".repeat(100); // 3900 characters
    let o = sam3lab(&["segment", "--ckpt", s(&fixture()), "--image", s(&png), "--prompt", &long, "--out", s(&dir.path().join("o"))]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let warning = stderr.lines().find(|l| l.contains("truncated")).unwrap_or_else(|| panic!("no warning: {stderr}"));
    assert!(warning.len() < 400, "the warning is {} bytes: {warning}", warning.len());
    assert!(warning.contains("(3900 characters)"), "{warning}");
    assert!(!stderr.contains(&long[..200]), "the whole prompt is not echoed");
}
