//! `sam3lab reproduce --quick`: the whole pipeline (world, recipes, evaluation, every probe, figures,
//! REPORT.md) end to end on a tiny world; a rerun resumes; the report's numbers and the study's
//! verdicts are read from the run's own files (an edited score file changes both); the
//! per-checkpoint stages run in shards write what the unsharded run writes.

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
    "## Controls and seeds",
];

const STAGES: &[&str] = &[
    "world",
    "base",
    "train-frozen_te",
    "train-lvis_replay",
    "train-lvis_replay_n100",
    "train-lvis_replay_neg",
    "train-recovery",
    "train-presence_only",
    // The controls of issue 26 and the second seed of the seeded recipes (--seeds 2).
    "train-null_ft",
    "train-unfrozen_te",
    "train-frozen_te_seed1",
    "train-lvis_replay_seed1",
    "train-lvis_replay_neg_seed1",
    "inputs",
    "eval-base",
    "eval-lvis_replay_neg",
    "eval-null_ft",
    "eval-frozen_te_seed1",
    "control-gate-open",
    "probes",
    "figures",
];

fn json(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

#[test]
fn quick_reproduce_writes_every_section_and_figure_from_its_own_run() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("run");
    ok(&["reproduce", "--quick", "--seeds", "2", "--out", &s(&out)]);
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
    // The controls and seeds reach the study: its inputs in report.json are the run's score files.
    let results = &summary["results"];
    let score = |label: &str| json(&out.join("eval").join(label).join("broad-eval.score.json"))["neg_correct"].as_f64().unwrap();
    let gate = json(&out.join("eval/base_gate_open/broad-eval.score.json"))["neg_correct"].as_f64().unwrap();
    assert_eq!(results["gate_open_base_neg_correct"].as_f64(), Some(gate));
    assert!(gate < score("base"), "forcing the gate open did not cost the base any refusal ({gate} vs {})", score("base"));
    for (field, label) in [("null_ft", "null_ft"), ("unfrozen_te", "unfrozen_te")] {
        assert_eq!(results[field]["seeds"][0]["neg_correct"].as_f64(), Some(score(label)), "{field}");
    }
    for (field, label) in [("frozen_te", "frozen_te_seed1"), ("lvis_replay", "lvis_replay_seed1"), ("lvis_replay_neg", "lvis_replay_neg_seed1")] {
        let seeds = results[field]["seeds"].as_array().unwrap();
        assert_eq!(seeds.len(), 2, "{field}");
        assert_eq!(seeds[1]["neg_correct"].as_f64(), Some(score(label)), "{field}");
        assert!(seeds[1]["bias_cos"].as_f64().is_some(), "{field}: seed 1 has no bias cosine");
    }
    assert_eq!(results["frozen_te"]["seeds"][1]["fig11_sigma"].as_array().map(Vec::len), results["frozen_te"]["seeds"][0]["fig11_sigma"].as_array().map(Vec::len));
    let floor = json(&out.join("probes/seed_floor/cosines.json"));
    assert_eq!(results["seed_floor_cos"].as_f64(), floor["cosine"][0][1].as_f64());
    // … and REPORT.md: the controls table, B2 and B6 decided on them, F7 with its seed floor.
    assert!(report.contains("| null_ft | ") && report.contains("| frozen_te_seed1 | "), "no controls/seeds rows");
    let row = |id: &str, text: &str| text.lines().find(|l| l.starts_with(&format!("| {id} |"))).unwrap_or_else(|| panic!("no {id} row")).to_string();
    assert!(row("B2", &report).contains(&format!("gate forced open: neg_correct {:.1} %", 100.0 * gate)), "{}", row("B2", &report));
    assert!(row("B6", &report).contains(&format!("→ {:.1} %", 100.0 * score("null_ft"))), "{}", row("B6", &report));
    assert!(!row("B6", &report).contains("missing"), "{}", row("B6", &report));
    assert!(row("F7", &report).contains("seed floor cos(frozen_te seed 0, seed 1) = "), "{}", row("F7", &report));
    // B4 reads the base's vocab probe: its row carries the probe's largest cosines.
    let vocab = json(&out.join("probes/vocab/vocab.json"));
    assert_eq!(results["text_encoder"]["max_cos_narrow"].as_f64(), vocab["max_cos_narrow"].as_f64());
    let b4 = row("B4", &report);
    assert!(!b4.contains("missing") && b4.contains(&format!("part names {:.2}", vocab["max_cos_narrow"].as_f64().unwrap())), "{b4}");

    // The base row of Table 1.1 is this run's score file: edit it and the regenerated report follows.
    let score = out.join("eval/base/broad-eval.score.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&score).unwrap()).unwrap();
    let before = v["neg_correct"].as_f64().unwrap();
    assert!(report.contains(&format!("| neg_correct | broad-eval | {:.1} |", 100.0 * before)), "Table 1.1 does not show the run's base neg_correct {before}");
    v["neg_correct"] = serde_json::json!(0.1234);
    std::fs::write(&score, serde_json::to_string(&v).unwrap()).unwrap();
    // So does B2's second clause: the gate-open control's score file.
    let gate_score = out.join("eval/base_gate_open/broad-eval.score.json");
    let mut g = json(&gate_score);
    g["neg_correct"] = serde_json::json!(0.2341);
    std::fs::write(&gate_score, serde_json::to_string(&g).unwrap()).unwrap();
    // A rerun skips every finished stage and rewrites the report from the files.
    let o = common::run(&["reproduce", "--quick", "--seeds", "2", "--out", &s(&out)]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for st in ["world", "train-frozen_te", "train-null_ft", "train-lvis_replay_neg_seed1", "eval-base", "eval-presence_only", "control-gate-open", "probes"] {
        assert!(err.contains(&format!("· {st}: finished in an earlier run")), "{st} was not skipped:\n{err}");
    }
    let again = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(again.contains("| neg_correct | broad-eval | 12.3 |"), "the report did not follow the edited score file");
    // … and so do the study's rules: B1 is decided on the edited base neg_correct (0.123 < 0.90).
    let b1 = again.lines().find(|l| l.starts_with("| B1 |")).expect("B1 row");
    assert!(b1.contains("broad-eval neg_correct 0.123") && b1.contains("**not met**") && b1.contains("neg_correct 0.123 ≥ 0.9"), "{b1}");
    let b2 = again.lines().find(|l| l.starts_with("| B2 |")).expect("B2 row");
    assert!(b2.contains("gate forced open: neg_correct 23.4 %"), "B2 did not follow the edited gate-open score: {b2}");
    // A default-length run into the quick run's directory is refused, naming both kinds.
    let e = common::fails(&["reproduce", "--out", &s(&out)]);
    assert!(e.contains("\"quick\":true") && e.contains("--out"), "{e}");
}

/// `--stop-after train`, then the per-checkpoint stages in 2 shards, then the rest: every
/// prediction and score file is byte-identical to an unsharded run's, and so is the study's input
/// (report.json's results); a shard refuses to start on an untrained run.
#[test]
fn quick_reproduce_with_sharded_evaluations_writes_what_the_unsharded_run_writes() {
    let t = tempfile::tempdir().unwrap();
    let (one, split) = (t.path().join("one"), t.path().join("split"));
    ok(&["reproduce", "--quick", "--out", &s(&one)]);
    let e = common::fails(&["reproduce", "--quick", "--shard", "0/2", "--out", &s(&split)]);
    assert!(e.contains("--stop-after train"), "{e}");
    ok(&["reproduce", "--quick", "--stop-after", "train", "--out", &s(&split)]);
    assert!(!split.join("eval").exists(), "--stop-after train evaluated");
    let e = common::fails(&["reproduce", "--quick", "--shard", "0/2", "--force", "--out", &s(&split)]);
    assert!(e.contains("--force"), "{e}");
    for k in ["1/2", "0/2"] {
        ok(&["reproduce", "--quick", "--shard", k, "--out", &s(&split)]);
    }
    assert!(!split.join("REPORT.md").exists(), "a shard wrote the report");
    // Between them the shards ran every per-checkpoint stage, and nothing after them.
    for dir in std::fs::read_dir(one.join("eval")).unwrap() {
        let label = dir.unwrap().file_name().to_string_lossy().into_owned();
        let stage = if label == "base_gate_open" { "control-gate-open".to_string() } else { format!("eval-{label}") };
        assert!(split.join("stages").join(format!("{stage}.json")).is_file(), "no shard ran {stage}");
    }
    assert!(!split.join("stages/probes.json").exists(), "a shard ran the probes");
    let o = common::run(&["reproduce", "--quick", "--out", &s(&split)]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("· eval-base: finished in an earlier run") && err.contains("· control-gate-open: finished in an earlier run"), "{err}");
    let mut compared = 0;
    for dir in std::fs::read_dir(one.join("eval")).unwrap() {
        let dir = dir.unwrap().path();
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if !(name.ends_with(".pred.json") || name.ends_with(".safetensors")) {
                continue; // score and meta files name their paths, which differ between the runs
            }
            let other = split.join("eval").join(dir.file_name().unwrap()).join(&name);
            assert_eq!(std::fs::read(&f).unwrap(), std::fs::read(&other).unwrap(), "{}", other.display());
            compared += 1;
        }
    }
    assert!(compared >= 3 * 8, "only {compared} files compared");
    let results = |d: &std::path::Path| json(&d.join("report.json"))["results"].clone();
    assert_eq!(results(&one), results(&split));
}
