//! `sam3lab parity` on the training fixture and `sam3lab train` on a shipped recipe, as a user runs
//! them: exit codes, the table, the files a run leaves, resumption, and a bad recipe.

use std::path::Path;

mod common;
use common::{fails, ok, path_string as s};

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn parity_recognises_the_training_fixture() {
    let out = ok(&["parity", "--fixture", &s(&root().join("data/fixtures/sam3-tiny-train")), "--quiet"]);
    let last = out.lines().last().unwrap();
    assert!(last.contains(" 0 failed") && last.contains("grads"), "{out}");
    let passed: usize = last.split_whitespace().next().unwrap().parse().unwrap();
    assert!(passed >= 350, "{last}");
}

#[test]
fn train_runs_a_recipe_then_resumes_at_its_end() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("run");
    let recipe = root().join("recipes/fixture/presence_only.toml");
    let summary: serde_json::Value = serde_json::from_str(&ok(&["train", "--recipe", &s(&recipe), "--out", &s(&out)])).unwrap();
    assert_eq!(summary["steps"], 4);
    for f in ["step_000004.safetensors", "step_000004.json", "step_000004.optim0.bpk", "loss.csv", "config.json"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let again: serde_json::Value = serde_json::from_str(&ok(&["train", "--recipe", &s(&recipe), "--out", &s(&out)])).unwrap();
    assert_eq!(again["resumed_from"], 4);
    // Another recipe into the same directory is refused, naming the directory.
    let other = root().join("recipes/fixture/frozen_te.toml");
    let e = fails(&["train", "--recipe", &s(&other), "--out", &s(&out)]);
    assert!(e.contains("another recipe") && e.contains("run"), "{e}");
    // The loss log renders as training curves.
    ok(&["figures", "--from", &s(&out.join("loss.csv")), "--kind", "train-curves", "--out", &s(&t.path().join("figs"))]);
    assert!(t.path().join("figs/train_curves_loss.png").is_file());
}
