//! Papercuts a new user meets (issue #24): long prompts cut on the terminal, `--out` checked before
//! any work, reproduce saying why a stage (re)trains, figures' sources relative to the run
//! directory, Fig 8.1's origin labelled from the data, and the CLI's help and error wording.

mod common;
use common::{fails, fixture, fixture_png, json, ok, path_string as s, run};

/// A 20,000-character prompt: the result line and the presence table cut it as the warning does;
/// the result files keep every character.
#[test]
fn long_prompts_are_cut_on_the_terminal_and_kept_whole_in_files() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let png = fixture_png(d);
    let long: String = "a red cat ".repeat(2000);
    assert_eq!(long.chars().count(), 20_000);
    let out = d.join("seg");
    let o = run(&["segment", "--ckpt", &s(&fixture()), "--image", &s(&png), "--prompt", &long, "--out", &s(&out)]);
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.len() < 2_000, "stdout repeats the prompt ({} bytes)", stdout.len());
    assert!(stderr.len() < 2_000, "stderr repeats the prompt ({} bytes)", stderr.len());
    assert!(stdout.contains("… (20000 characters)"), "{stdout}");
    assert!(stderr.contains("… (20000 characters)"), "the warning's form: {stderr}");
    assert_eq!(json(&out.join("detections.json"))["prompt"], long.as_str());

    // probe presence prints one row per pair: cut there too, whole in presence.json.
    let pairs = d.join("pairs.jsonl");
    std::fs::write(&pairs, format!("{}\n", serde_json::json!({"image": "fixture.png", "prompt": long, "label": "neg"}))).unwrap();
    let po = d.join("presence");
    let printed = ok(&["probe", "presence", "--ckpt", &format!("base={}", s(&fixture())), "--pairs", &s(&pairs), "--out", &s(&po)]);
    assert!(printed.len() < 2_000, "{} bytes", printed.len());
    // (the pair file's prompt is trimmed when read: 19,999 characters)
    assert!(printed.contains("… (19999 characters)"), "{printed}");
    let bars = json(&po.join("presence.json"));
    assert!(bars["prompts"][0].as_str().unwrap().starts_with(long.trim()), "presence.json keeps the whole prompt");
}

/// Every command taking `--out DIR` refuses a file there before any work, saying so; every command
/// taking `--out FILE` refuses a directory.
#[test]
fn out_is_checked_before_any_work() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let f = d.join("F");
    std::fs::write(&f, "a file").unwrap();
    let fs = s(&f);
    let under = s(&f.join("sub"));
    let fx = s(&fixture());
    let png = s(&fixture_png(d));
    // Inputs that do not exist: the --out check must come first, so they are never looked at.
    let missing = s(&d.join("missing"));
    let dir_cmds: Vec<Vec<&str>> = vec![
        vec!["segment", "--ckpt", &fx, "--image", &png, "--prompt", "a cat", "--out"],
        vec!["probe", "drift", "--base", &missing, "--ckpt", "a=x", "--images", &missing, "--prompts", "g=x", "--out"],
        vec!["probe", "heads", "--a", &missing, "--b", &missing, "--ref", &missing, "--pairs", &missing, "--out"],
        vec!["probe", "patch", "--source", &missing, "--target", &missing, "--points", "x", "--pairs", &missing, "--out"],
        vec!["probe", "steer", "--ckpt", &missing, "--direction", &missing, "--pairs", &missing, "--out"],
        vec!["probe", "presence", "--ckpt", "a=x", "--pairs", &missing, "--out"],
        vec!["probe", "capture", "--ckpt", "a=x", "--pairs", &missing, "--out"],
        vec!["probe", "demo-inputs", "--out"],
        vec!["world", "gen", "--out"],
        vec!["world", "pretrain", "--world", &missing, "--out"],
        vec!["train", "--recipe", &missing, "--out"],
        vec!["figures", "--data", &missing, "--out"],
        vec!["weights", "diff", &missing, &missing, "--out"],
        vec!["weights", "cosines", "--param", "x", "--base", &missing, "--traj", "a=x", "--out"],
        vec!["sae", "train", "--acts", &missing, "--point", "x", "--l1", "0.1", "--out"],
        vec!["sae", "rank", "--sae", &missing, "--acts", &missing, "--out"],
        vec!["sae", "synth", "--d", "4", "--features", "2", "--rows", "8", "--out"],
        vec!["reproduce", "--quick", "--out"],
    ];
    for cmd in &dir_cmds {
        for (out, says) in [(fs.as_str(), format!("--out {fs}: must be a directory")), (under.as_str(), format!("{fs} on its path is a file"))] {
            let mut args = cmd.clone();
            args.push(out);
            let e = fails(&args);
            assert!(e.contains(&says), "{args:?}: {e}");
            assert!(!e.contains("panicked"), "{e}");
        }
    }
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "a file");

    let ds = s(d);
    let file_cmds: Vec<Vec<&str>> = vec![
        vec!["run", "--ckpt", &fx, "--image", &png, "--prompt", "a cat", "--capture", "presence_logit", "--out"],
        vec!["eval", "predict", "--ckpt", &missing, "--gt", &missing, "--images", &missing, "--out"],
        vec!["eval", "score", "--gt", &missing, "--pred", &missing, "--out"],
        vec!["surgery", "--into", &missing, "--donor", &missing, "--heads", "x", "--alpha", "1", "--out"],
        vec!["retrain", "--ckpt", &missing, "--train", "x", "--pairs", &missing, "--out"],
        vec!["sae", "eval", "--sae", &missing, "--acts", &missing, "--out"],
    ];
    for cmd in &file_cmds {
        let mut args = cmd.clone();
        args.push(&ds);
        let e = fails(&args);
        assert!(e.contains(&format!("--out {ds}: must be a file name, and {ds} is a directory")), "{args:?}: {e}");
        let mut args = cmd.clone();
        let inside = format!("{fs}/x.json");
        args.push(&inside);
        let e = fails(&args);
        assert!(e.contains(&format!("{fs} on its path is a file")), "{args:?}: {e}");
    }
}

/// `figures --data`: the footer (in the SVG) and the sidecar name each source relative to the
/// directory holding the data and the figures, never the absolute path of the drawing machine.
#[test]
fn figure_sources_are_relative_to_the_run_directory() {
    let t = tempfile::tempdir().unwrap();
    let run_dir = t.path().join("run");
    let data = run_dir.join("published");
    std::fs::create_dir_all(&data).unwrap();
    let shipped = fixture().join("../../post02");
    for e in std::fs::read_dir(&shipped).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), data.join(e.file_name())).unwrap();
    }
    let out = run_dir.join("figures/published");
    let printed = ok(&["figures", "--data", &s(&data), "--out", &s(&out)]);
    assert!(printed.contains(&s(&out.join("fig8_1_bias_projection.png"))), "paths printed as --out was given: {printed}");
    let abs = s(&std::fs::canonicalize(t.path()).unwrap());
    let tmp = s(t.path());
    for stem in ["fig6_1_recovery_drift", "fig6_2_gate_input_vs_refusal", "fig8_1_bias_projection", "table6_rel_delta_heatmap"] {
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        let side = std::fs::read_to_string(out.join(format!("{stem}.json"))).unwrap();
        for text in [&svg, &side] {
            assert!(!text.contains(&abs) && !text.contains(&tmp), "{stem} names the temporary directory");
        }
        let sidecar: serde_json::Value = serde_json::from_str(&side).unwrap();
        for src in sidecar["sources"].as_array().unwrap() {
            let p = src["path"].as_str().unwrap();
            assert!(p.starts_with("published/"), "{stem}: {p}");
            assert_eq!(src["sha256"].as_str().unwrap().len(), 64);
        }
    }
    let svg = std::fs::read_to_string(out.join("table6_rel_delta_heatmap.svg")).unwrap();
    assert!(svg.contains("published/table6_rel_delta.csv"), "footer names the relative path");

    // The same figures drawn in another directory are the same bytes.
    let other = tempfile::tempdir().unwrap();
    let run2 = other.path().join("elsewhere");
    std::fs::create_dir_all(run2.join("published")).unwrap();
    for e in std::fs::read_dir(&data).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), run2.join("published").join(e.file_name())).unwrap();
    }
    ok(&["figures", "--data", &s(&run2.join("published")), "--out", &s(&run2.join("figures/published"))]);
    for ext in ["svg", "json"] {
        let a = std::fs::read(out.join(format!("fig8_1_bias_projection.{ext}"))).unwrap();
        let b = std::fs::read(run2.join(format!("figures/published/fig8_1_bias_projection.{ext}"))).unwrap();
        assert!(a == b, "fig8_1 .{ext} differs between two run directories");
    }

    // --from: relative to the directory holding the input and --out; --root overrides.
    let cos = run_dir.join("probes/cosines.json");
    std::fs::create_dir_all(cos.parent().unwrap()).unwrap();
    std::fs::write(&cos, cosines_json(None)).unwrap();
    ok(&["figures", "--from", &s(&cos), "--kind", "fig81", "--name", "f81", "--out", &s(&run_dir.join("figures/world"))]);
    let side = json(&run_dir.join("figures/world/f81.json"));
    assert_eq!(side["sources"][0]["path"], "probes/cosines.json");
    ok(&["figures", "--from", &s(&cos), "--kind", "fig81", "--name", "f81", "--root", &s(&run_dir.join("probes")), "--out", &s(&run_dir.join("figures/world"))]);
    assert_eq!(json(&run_dir.join("figures/world/f81.json"))["sources"][0]["path"], "cosines.json");
    // Errors still name the file (relative to the run directory, which they name too).
    std::fs::write(&cos, "{").unwrap();
    let e = fails(&["figures", "--from", &s(&cos), "--kind", "fig81", "--out", &s(&run_dir.join("figures/world"))]);
    assert!(e.contains("probes/cosines.json") && e.contains(&s(&std::fs::canonicalize(&run_dir).unwrap())), "{e}");
}

fn cosines_json(base: Option<&str>) -> String {
    let mut projection = serde_json::json!({"axis": "ft", "toward": "fix", "points": [
        {"label": "ft", "origin": [0.0, 0.0], "tip": [1.0, 0.0]},
        {"label": "fix", "origin": [0.0, 0.0], "tip": [-0.4, 0.9]}]});
    if let Some(b) = base {
        projection["base"] = serde_json::json!(b);
    }
    serde_json::json!({
        "param": "p", "trajectories": [{"label": "ft", "rel_base": 1.0}, {"label": "fix", "rel_base": 1.0}],
        "cosine": [[1.0, -0.4], [-0.4, 1.0]], "projection": projection,
    })
    .to_string()
}

/// Fig 8.1's origin is labelled from the data: the post's table names "base SAM3", a live
/// cosines.json its own label or plain "base" — never the post's model for the world's run.
#[test]
fn fig81_origin_label_comes_from_the_data() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let out = d.join("figs");
    ok(&["figures", "--data", &s(&fixture().join("../../post02")), "--out", &s(&out)]);
    let side = json(&out.join("fig8_1_bias_projection.json"));
    assert_eq!(side["data"]["base"], "base SAM3");
    assert!(std::fs::read_to_string(out.join("fig8_1_bias_projection.svg")).unwrap().contains("base SAM3"));
    for (base, want) in [(None, "base"), (Some("mini base"), "mini base")] {
        let cos = d.join("cosines.json");
        std::fs::write(&cos, cosines_json(base)).unwrap();
        ok(&["figures", "--from", &s(&cos), "--kind", "fig81", "--name", "w", "--out", &s(&out)]);
        assert_eq!(json(&out.join("w.json"))["data"]["base"], want);
        let svg = std::fs::read_to_string(out.join("w.svg")).unwrap();
        assert!(!svg.contains("SAM3"), "the world's figure names no SAM3 base");
        assert!(svg.contains(want));
    }
}

/// A first `reproduce` into a new directory trains every recipe without claiming it trains "again";
/// a rerun after a recipe changed says so, for that recipe only.
#[test]
fn reproduce_says_again_only_when_a_stage_reruns() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("run");
    let o = run(&["reproduce", "--quick", "--out", &s(&out)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("again") && !err.contains("changed since"), "a first run: {err}");
    assert!(err.contains("▶ train-recovery"), "{err}");
    // The world's figures name their sources relative to the run directory.
    let side = std::fs::read_to_string(out.join("figures/published/fig8_1_bias_projection.json")).unwrap();
    assert!(side.contains("\"published/table7_1_bias_cosines.csv\""), "{side}");
    let world = json(&out.join("figures/world/fig8_1_bias_projection.json"));
    assert_eq!(world["sources"][0]["path"], "probes/cosines/cosines.json");
    assert_eq!(world["data"]["base"], "base");

    // A changed recipe retrains that recipe only, saying why.
    let recipe = out.join("recipes/presence_only.toml");
    let text = std::fs::read_to_string(&recipe).unwrap();
    std::fs::write(&recipe, format!("{text}\n# edited\n")).unwrap();
    let o = run(&["reproduce", "--quick", "--out", &s(&out)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("presence_only: its recipe changed since this directory's run; training it again"), "{err}");
    assert_eq!(err.matches("again").count(), 1, "{err}");
    assert!(err.contains("eval-presence_only, probes: finished in an earlier run, redone after train-presence_only"), "{err}");
    assert!(err.contains("· train-recovery: finished in an earlier run"), "{err}");
}

/// The help and error wording of the new-user pass (item 6; the table is in the session's note).
#[test]
fn help_and_errors_read_right() {
    // Every --out says whether it wants a directory or a file; no option goes undescribed.
    for cmd in [
        &["segment"][..], &["run"], &["surgery"], &["retrain"], &["train"], &["figures"], &["reproduce"],
        &["probe", "drift"], &["probe", "heads"], &["probe", "patch"], &["probe", "steer"], &["probe", "presence"],
        &["probe", "capture"], &["probe", "demo-inputs"], &["sae", "train"], &["sae", "eval"], &["sae", "rank"],
        &["sae", "synth"], &["sae", "match"], &["weights", "diff"], &["weights", "cosines"], &["world", "gen"],
        &["world", "pretrain"], &["eval", "predict"], &["eval", "score"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let h = ok(&args);
        assert!(!h.contains("--out <OUT>"), "{cmd:?}: {h}");
        // An option line followed directly by the next option has no description.
        let lines: Vec<&str> = h.lines().collect();
        for w in lines.windows(2) {
            let opt = |l: &str| l.trim_start().starts_with("--") || l.trim_start().starts_with("-h,");
            assert!(!(opt(w[0]) && !w[0].trim().contains("  ") && opt(w[1])), "{cmd:?}: `{}` has no description", w[0].trim());
        }
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    // A missing file's cause is printed once.
    let e = fails(&["weights", "ls", &s(&d.join("nope"))]);
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
    // A checkpoint of another model size: short, with the way out.
    let png = fixture_png(d);
    let base = fixture().join("../../world/base.safetensors");
    let e = fails(&["segment", "--ckpt", &s(&base), "--image", &s(&png), "--prompt", "a cat", "--out", &s(&d.join("o"))]);
    assert!(e.len() < 2_000 && e.contains("missing keys") && e.contains("more)") && e.contains("--config"), "{} bytes: {e}", e.len());
    // The flag at fault is named.
    let e = fails(&["probe", "presence", "--ckpt", &s(&fixture()), "--pairs", "x", "--out", &s(&d.join("p"))]);
    assert!(e.contains("--ckpt: ") && e.contains("LABEL=CKPT"), "{e}");
    // reproduce checks its device before any stage.
    let e = fails(&["reproduce", "--device", "tpu", "--out", &s(&d.join("r"))]);
    assert!(e.contains("tpu"), "{e}");
    assert!(!d.join("r").exists(), "nothing written");
}
