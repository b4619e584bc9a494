//! `sam3lab reproduce --quick`: the whole pipeline (world, recipes, evaluation, every probe, figures,
//! REPORT.md) end to end on a tiny world; a rerun resumes; the report's numbers and the study's
//! verdicts are read from the run's own files (an edited score file changes both).

mod common;
use common::{ok, path_string as s};

const SECTIONS: &[&str] = &[
    "## Findings",
    "## Table 1.1",
    "## Table 3.1",
    "## Table 4.1",
    "## Table 5.1",
    "## Table 5.2",
    "## §6",
    "## Table 6.1",
    "## Table 7.1",
    "## §9",
    "## Table 8.1",
];

const STAGES: &[&str] = &["world", "base", "train-frozen_te", "train-lvis_replay", "train-lvis_replay_n100", "train-lvis_replay_neg", "train-recovery", "train-presence_only", "inputs", "eval", "probes", "figures"];

#[test]
fn quick_reproduce_writes_every_section_and_figure_from_its_own_run() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("run");
    ok(&["reproduce", "--quick", "--out", &s(&out)]);
    let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    for sec in SECTIONS {
        assert!(report.contains(sec), "REPORT.md lacks {sec}");
    }
    for st in STAGES {
        assert!(out.join("stages").join(format!("{st}.json")).is_file(), "stage {st} has no marker");
    }
    // Every figure of the report exists, side by side with its published twin.
    for line in report.lines().filter(|l| l.starts_with("![")) {
        let rel = &line[line.find("](").unwrap() + 2..line.len() - 1];
        let png = out.join(rel);
        let img = image::open(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert!(img.width() > 200 && img.height() > 100, "{rel}");
        assert!(png.with_extension("svg").is_file(), "{rel}: no SVG");
    }
    assert!(report.matches("figures/side_by_side/").count() >= 6);
    // The study's rules: findings F1–F8 and base criteria B1–B6, each with a verdict, in REPORT.md
    // and report.json.
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let ids = |key: &str| -> Vec<String> { summary[key].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_string()).collect() };
    assert_eq!(ids("findings"), ["F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8"]);
    assert_eq!(ids("base_criteria"), ["B1", "B2", "B3", "B4", "B5", "B6"]);
    for f in summary["findings"].as_array().unwrap().iter().chain(summary["base_criteria"].as_array().unwrap()) {
        assert!(!f["verdict"].is_null(), "{f}");
        assert!(report.contains(&format!("| {} |", f["id"].as_str().unwrap())), "REPORT.md lacks the row of {f}");
    }
    // Today's run has no controls (gate forced open, null fine-tune): their rules say what is missing.
    assert!(report.contains("not testable (missing: gate-forced-open base neg_correct)"), "B2 does not name its missing input");

    // The base row of Table 1.1 is this run's score file: edit it and the regenerated report follows.
    let score = out.join("eval/base/broad-eval.score.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&score).unwrap()).unwrap();
    let before = v["neg_correct"].as_f64().unwrap();
    assert!(report.contains(&format!("| neg_correct | broad-eval | {:.1} |", 100.0 * before)), "Table 1.1 does not show the run's base neg_correct {before}");
    v["neg_correct"] = serde_json::json!(0.1234);
    std::fs::write(&score, serde_json::to_string(&v).unwrap()).unwrap();
    // A rerun skips every finished stage and rewrites the report from the files.
    let o = common::run(&["reproduce", "--quick", "--out", &s(&out)]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for st in ["world", "train-frozen_te", "eval", "probes"] {
        assert!(err.contains(&format!("· {st}: finished in an earlier run")), "{st} was not skipped:\n{err}");
    }
    let again = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(again.contains("| neg_correct | broad-eval | 12.3 |"), "the report did not follow the edited score file");
    // … and so do the study's rules: B1 is decided on the edited base neg_correct (0.123 < 0.90).
    let b1 = again.lines().find(|l| l.starts_with("| B1 |")).expect("B1 row");
    assert!(b1.contains("broad-eval neg_correct 0.123") && b1.contains("**not met**") && b1.contains("neg_correct 0.123 ≥ 0.9"), "{b1}");
    // A default-length run into the quick run's directory is refused, naming both kinds.
    let e = common::fails(&["reproduce", "--out", &s(&out)]);
    assert!(e.contains("\"quick\":true") && e.contains("--out"), "{e}");
}
