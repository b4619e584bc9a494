//! The Rust side of the `--reference-python` protocol, against stand-in "interpreters" (shell scripts
//! that ignore the script path and print JSON lines): alternation, min/median, the printed ratio, and
//! every error path (missing script, failing script, bad JSON, too few results). `bench forward` /
//! `bench sweep` wired to a stand-in reference end to end are in crates/cli/tests/bench.rs (the
//! argument parsing is the CLI's).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sam3lab_bench::reference::{RefArgs, Reference, Side, alternate, parse_stages};

const STAGES: [&str; 3] = ["image", "text", "grounding"];

/// Write an executable shell script `name` with `body` into `dir`.
fn stand_in(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A reference-script directory with empty `forward.py`, `sweep.py`, … (the stand-in interpreter
/// never reads them, but the bench checks that they exist).
fn script_dir(dir: &Path) -> PathBuf {
    let d = dir.join("reference");
    std::fs::create_dir_all(&d).unwrap();
    for s in ["forward.py", "full.py", "train_step.py", "sweep.py"] {
        std::fs::write(d.join(s), "# stand-in\n").unwrap();
    }
    d
}

fn err_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

#[test]
fn parses_stage_lines() {
    assert_eq!(parse_stages(r#"{"image_ms": 3.5, "text_ms": 0, "grounding_ms": 2, "extra": "x"}"#, &STAGES).unwrap(), vec![3.5, 0.0, 2.0]);
    assert!(err_text(parse_stages(r#"{"image_ms": 3.5, "text_ms": 1}"#, &STAGES)).contains("grounding_ms"));
    assert!(err_text(parse_stages(r#"{"image_ms": "3", "text_ms": 1, "grounding_ms": 1}"#, &STAGES)).contains("not a number"));
    assert!(err_text(parse_stages(r#"{"image_ms": -1, "text_ms": 1, "grounding_ms": 1}"#, &STAGES)).contains("not a time"));
    assert!(err_text(parse_stages("image 3 ms", &STAGES)).contains("not JSON"));
    assert!(err_text(parse_stages("[1, 2, 3]", &STAGES)).contains("not a JSON object"));
}

/// The stand-in reads one `run` line per repetition and logs `R` to the same file that ours logs `O`
/// to: the log proves the two sides really alternated, one repetition at a time.
#[test]
fn alternates_and_reports_min_median_and_ratio() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("order.log");
    let py = stand_in(
        tmp.path(),
        "fake-python",
        &format!(
            r#"echo "loading torch (stderr noise)" >&2
i=0
while read line; do
  i=$((i+1))
  echo R >> "{log}"
  echo "{{\"image_ms\": $((10*i)), \"text_ms\": 2, \"grounding_ms\": $((4*i)), \"rep\": $i}}"
done"#,
            log = log.display()
        ),
    );
    let script = script_dir(tmp.path()).join("forward.py");
    let reference = Reference::spawn(&py, &script, &["--fixture".into(), "x".into()]).unwrap();
    let mut n = 0.0;
    let ours = || {
        n += 1.0;
        std::fs::OpenOptions::new().append(true).create(true).open(&log).and_then(|mut f| std::io::Write::write_all(&mut f, b"O\n"))?;
        Ok(vec![5.0 * n, 1.0, 2.0])
    };
    let c = alternate(3, &STAGES, ours, reference).unwrap();
    assert_eq!(c.order, vec![Side::Reference, Side::Ours, Side::Reference, Side::Ours, Side::Reference, Side::Ours]);
    assert_eq!(std::fs::read_to_string(&log).unwrap().split_whitespace().collect::<String>(), "RORORO");
    assert_eq!(c.reference, vec![vec![10.0, 2.0, 4.0], vec![20.0, 2.0, 8.0], vec![30.0, 2.0, 12.0]]);
    // image: ours 5/10/15 → min 5, median 10; reference 10/20/30 → min 10, median 20.
    assert_eq!(c.stat(Some(0)), ((5.0, 10.0), (10.0, 20.0)));
    // total per repetition: ours 8/13/18, reference 16/30/44.
    assert_eq!(c.stat(None), ((8.0, 13.0), (16.0, 30.0)));
    let r = c.report("stand-in");
    assert!(r.contains("3 alternating repetitions"), "{r}");
    assert!(r.contains("image") && r.contains("5.00 ms / 10.00 ms") && r.contains("10.00 ms / 20.00 ms"), "{r}");
    assert!(r.contains("ours/PyTorch = 0.500 (2.00× faster)"), "{r}");
    assert!(r.contains("text") && r.contains("ours/PyTorch = 0.500 (2.00× faster)"), "{r}");
    assert!(r.contains("total") && r.contains("ours/PyTorch = 0.433 (2.31× faster)"), "{r}");
    // grounding: ours 2 vs reference median 8 → 4× faster; a slower side says so.
    assert!(r.contains("ours/PyTorch = 0.250 (4.00× faster)"), "{r}");
}

/// A stand-in that ignores stdin and prints more lines than asked, at once, is fine.
#[test]
fn stand_in_printing_all_lines_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let py = stand_in(tmp.path(), "fake-python", r#"for i in 1 2 3 4 5 6 7 8; do echo '{"image_ms": 8, "text_ms": 1, "grounding_ms": 3}'; done"#);
    let script = script_dir(tmp.path()).join("sweep.py");
    let c = alternate(2, &STAGES, || Ok(vec![4.0, 1.0, 3.0]), Reference::spawn(&py, &script, &[]).unwrap()).unwrap();
    assert_eq!(c.order.len(), 4);
    assert!(c.report("x").contains("ours/PyTorch = 0.500 (2.00× faster)"));
    assert!(c.report("x").contains("ours/PyTorch = 0.667 (1.50× faster)"));
}

#[test]
fn error_paths_name_the_script_and_its_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = script_dir(tmp.path());
    let script = dir.join("forward.py");
    let ours = || Ok(vec![1.0, 1.0, 1.0]);

    // Script not found.
    let r = RefArgs { reference_python: Some("python3".into()), reps: None, reference_dir: Some(tmp.path().join("nowhere")) };
    let e = err_text(r.script("forward.py"));
    assert!(e.contains("reference script forward.py not found") && e.contains("nowhere"), "{e}");
    let e = err_text(Reference::spawn(Path::new("python3"), &tmp.path().join("missing.py"), &[]).map(|_| ()));
    assert!(e.contains("missing.py not found"), "{e}");

    // Interpreter that cannot start.
    let e = err_text(Reference::spawn(&tmp.path().join("no-such-python"), &script, &[]).map(|_| ()));
    assert!(e.contains("cannot start the reference") && e.contains("no-such-python"), "{e}");

    // Failing script (no torch): exit 1 with a traceback on stderr.
    let py = stand_in(tmp.path(), "py-fail", "echo 'Traceback (most recent call last):' >&2\necho \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1");
    let e = err_text(alternate(2, &STAGES, ours, Reference::spawn(&py, &script, &[]).unwrap()));
    assert!(e.contains("forward.py") && e.contains("ended after 0 result line(s)") && e.contains("No module named 'torch'"), "{e}");
    assert!(e.contains("exit status: 1"), "{e}");

    // Bad JSON.
    let py = stand_in(tmp.path(), "py-bad", "echo 'warming up' >&2\necho 'image: 3 ms'\nsleep 30 &\nwait");
    let e = err_text(alternate(2, &STAGES, ours, Reference::spawn(&py, &script, &[]).unwrap()));
    assert!(e.contains("forward.py") && e.contains("bad result line \"image: 3 ms\"") && e.contains("not JSON") && e.contains("warming up"), "{e}");

    // A JSON line without a stage.
    let py = stand_in(tmp.path(), "py-missing", r#"echo '{"image_ms": 3, "text_ms": 1}'"#);
    let e = err_text(alternate(1, &STAGES, ours, Reference::spawn(&py, &script, &[]).unwrap()));
    assert!(e.contains("no \"grounding_ms\""), "{e}");

    // Too few results.
    let py = stand_in(tmp.path(), "py-short", r#"echo '{"image_ms": 3, "text_ms": 1, "grounding_ms": 1}'"#);
    let e = err_text(alternate(3, &STAGES, ours, Reference::spawn(&py, &script, &[]).unwrap()));
    assert!(e.contains("ended after 1 result line(s), before the result of repetition 2"), "{e}");

    // All results, then a failing exit status.
    let py = stand_in(tmp.path(), "py-exit", "echo '{\"image_ms\": 3, \"text_ms\": 1, \"grounding_ms\": 1}'\necho 'crashed at exit' >&2\nexit 3");
    let e = err_text(alternate(1, &STAGES, ours, Reference::spawn(&py, &script, &[]).unwrap()));
    assert!(e.contains("forward.py failed") && e.contains("exit status: 3") && e.contains("crashed at exit"), "{e}");
}
