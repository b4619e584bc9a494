//! `sam3lab world gen` then `sam3lab world pretrain --quick` on it: the shipped pretraining recipes
//! run end to end on a generated world and leave a loadable base checkpoint with its evaluation.

mod common;
use common::{fails, ok, path_string as s};

#[test]
fn gen_then_pretrain_quick_leaves_a_base_checkpoint() {
    let t = tempfile::tempdir().unwrap();
    let world = t.path().join("world");
    ok(&["world", "gen", "--quick", "--out", &s(&world)]);
    let e = fails(&["world", "gen", "--quick", "--out", &s(&world)]);
    assert!(e.contains("not empty"), "{e}");
    let out = t.path().join("pre");
    let printed = ok(&["world", "pretrain", "--quick", "--world", &s(&world), "--out", &s(&out)]);
    assert!(printed.contains("neg_correct") && printed.contains("base.safetensors"), "{printed}");
    for f in ["base.safetensors", "config.json", "stage1/step_000002.safetensors", "stage2/eval.csv", "recipes/stage2.toml"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // Stage 2 started from stage 1's last checkpoint, and the base is stage 2's last.
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("stage2/step_000002.json")).unwrap()).unwrap();
    let s1 = sam3lab_hooks::sha256_file(&out.join("stage1/step_000002.safetensors")).unwrap();
    assert_eq!(m["parent_sha256"], s1.as_str());
    assert_eq!(std::fs::read(out.join("base.safetensors")).unwrap(), std::fs::read(out.join("stage2/step_000002.safetensors")).unwrap());
    // The base segments through the ordinary commands.
    ok(&["eval", "predict", "--ckpt", &s(&out.join("base.safetensors")), "--config", &s(&out.join("config.json")), "--gt", &s(&world.join("broad-eval.json")), "--images", &s(&world), "--out", &s(&t.path().join("pred.json"))]);
    // Not a world: a clear error.
    let e = fails(&["world", "pretrain", "--quick", "--world", &s(t.path()), "--out", &s(&out)]);
    assert!(e.contains("not a generated world"), "{e}");
}
