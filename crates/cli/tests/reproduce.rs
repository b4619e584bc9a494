//! `sam3lab reproduce --quick`: the whole pipeline (world, recipes, evaluation, every probe, figures,
//! REPORT.md) end to end on a tiny world; a rerun resumes; the report's numbers are read from the
//! run's own files (an edited score file changes the report).

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
    // Nine findings, each with a verdict.
    let findings: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(findings["findings"].as_array().unwrap().len(), 9);

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
    // A default-length run into the quick run's directory is refused, naming both kinds.
    let e = common::fails(&["reproduce", "--out", &s(&out)]);
    assert!(e.contains("\"quick\":true") && e.contains("--out"), "{e}");
}
