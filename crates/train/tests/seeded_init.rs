//! Pretraining from a seeded random init gives the same bytes for the same seed. In its own test
//! binary: the seed goes to burn's process-wide generator, which tests initialising models in
//! parallel threads of one process would share.

use std::path::PathBuf;

use burn::prelude::Device;
use sam3lab_util::progress::NoProgress;
use sam3lab_train::engine::run;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn recipe(name: &str) -> PathBuf {
    root().join("recipes/fixture").join(format!("{name}.toml"))
}

#[test]
fn pretraining_from_random_init_is_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(recipe("frozen_te"))
        .unwrap()
        .replace("checkpoint = \"../../data/fixtures/sam3-tiny-train\"", "init = \"random\"\nconfig = \"../../data/fixtures/sam3-tiny-train/config.json\"")
        .replace("[freeze]\nfrozen = [\"backbone.language_backbone.**\"]", "")
        .replace("../../", &format!("{}/", root().display()));
    let go = |seed: u64, name: &str| {
        let r = dir.path().join(format!("{name}.toml"));
        std::fs::write(&r, text.replace("seed = 0", &format!("seed = {seed}"))).unwrap();
        let s = run(&r, &dir.path().join(name), &Device::flex(), &NoProgress).unwrap();
        std::fs::read(s.checkpoints.last().unwrap()).unwrap()
    };
    let (a, b, c) = (go(7, "a"), go(7, "b"), go(8, "c"));
    assert!(a == b, "same seed, different bytes");
    assert!(a != c, "another seed gave the same model");
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("a/step_000003.json")).unwrap()).unwrap();
    assert_eq!(m["parent_sha256"], "random-init:seed=7");
}
