//! Training parity against the fixture recorded from Meta's `sam3.train` (see
//! `data/fixtures/sam3-tiny-train/README.md`): outputs, matching, every loss term, every gradient,
//! one AdamW step and the presence-only case, each within the fixture's own tolerance.

use std::path::PathBuf;

use burn::prelude::Device;
use sam3lab_model::parity::Status;
use sam3lab_train::parity::{is_train_fixture, run_train_parity};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny-train")
}

#[test]
fn train_fixture_passes_every_key() {
    assert!(is_train_fixture(&fixture()));
    assert!(!is_train_fixture(&fixture().join("../sam3-tiny")));
    let report = run_train_parity(&fixture(), &Device::flex()).unwrap();
    let table = report.table();
    println!("{table}");
    let fails: Vec<_> = report.rows.iter().filter(|r| r.status == Status::Fail).map(|r| format!("{} {}", r.key, r.note)).collect();
    assert!(fails.is_empty(), "{} failures:\n{}", fails.len(), fails.join("\n"));
    // Every loss term, gradient and matching of the fixture was compared (not just skipped).
    for prefix in ["loss.", "grad.", "matching.", "out.", "adamw.", "presence_only.grad."] {
        let n = report.rows.iter().filter(|r| r.key.starts_with(prefix) && r.status == Status::Pass).count();
        assert!(n > 0, "no passing {prefix} rows");
    }
    let grads = report.rows.iter().filter(|r| r.key.starts_with("grad.") && r.status == Status::Pass).count();
    assert!(grads >= 287, "{grads} gradient rows passed");
}
