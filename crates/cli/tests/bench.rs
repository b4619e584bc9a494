//! `sam3lab bench forward` / `bench sweep` with `--reference-python`, end to end through the CLI's
//! argument parsing (the protocol itself is tested in crates/bench/tests/reference_protocol.rs):
//! stand-in "interpreters" (shell scripts that ignore the script path and print JSON lines).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

mod common;
use common::{fails, fixture, ok};

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

fn bench(argv: &[&str]) -> String {
    ok(&[&["bench"], argv].concat())
}

fn bench_fails(argv: &[&str]) -> String {
    fails(&[&["bench"], argv].concat())
}

/// The whole wiring of `bench forward` / `bench sweep` with a stand-in reference, on the fixture.
#[test]
fn bench_subcommands_run_the_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = script_dir(tmp.path());
    let args_log = tmp.path().join("args.log");
    let py = stand_in(
        tmp.path(),
        "fake-python",
        &format!(r#"echo "$@" > "{}"
while read line; do echo '{{"image_ms": 50, "text_ms": 5, "grounding_ms": 40}}'; done"#, args_log.display()),
    );
    let (py, dir, fx) = (py.display().to_string(), dir.display().to_string(), fixture().display().to_string());
    let common = ["--reference-python", &py, "--reference-dir", &dir, "--reps", "2"];
    let mut argv = vec!["forward", "--fixture", &fx, "--iters", "2", "--warmup", "1"];
    argv.extend(common);
    bench(&argv);
    let got = std::fs::read_to_string(&args_log).unwrap();
    assert!(got.contains("forward.py --fixture") && got.contains("--threads 1") && got.contains("--reps 2"), "{got}");

    let mut argv = vec!["sweep", "--fixture", &fx, "--prompts", "3", "--iters", "1", "--warmup", "0"];
    argv.extend(common);
    bench(&argv);
    let got = std::fs::read_to_string(&args_log).unwrap();
    assert!(got.contains("sweep.py --fixture") && got.contains(r#"--prompts-json ["a cat","a dog","a red car"]"#) && got.contains("--reps 2"), "{got}");

    // A failing reference makes the bench fail (exit 2 with the error).
    let bad = stand_in(tmp.path(), "bad-python", "echo 'No module named sam3' >&2; exit 1").display().to_string();
    let e = bench_fails(&["sweep", "--fixture", &fx, "--prompts", "1", "--iters", "1", "--reference-python", &bad, "--reference-dir", &dir]);
    assert!(e.contains("sweep.py") && e.contains("No module named sam3"), "{e}");
    let e = bench_fails(&["forward", "--fixture", &fx, "--iters", "1", "--reference-python", &py, "--reference-dir", &tmp.path().join("empty").display().to_string()]);
    assert!(e.contains("reference script forward.py not found"), "{e}");
}

/// The real scripts in benches/reference/ under a `python3` without torch (this machine): the bench
/// fails with the script's name and Python's own error. Skipped where python3 is missing or has torch.
#[test]
fn real_scripts_without_torch_fail_clearly() {
    let has = |code: &str| std::process::Command::new("python3").args(["-c", code]).output().map(|o| o.status.success()).unwrap_or(false);
    if !has("pass") || has("import torch") {
        eprintln!("skipped: needs a python3 without torch");
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/reference").display().to_string();
    let fx = fixture().display().to_string();
    for (case, script) in [("forward", "forward.py"), ("sweep", "sweep.py")] {
        let mut argv = vec![case, "--fixture", &fx, "--iters", "1", "--warmup", "0", "--reference-python", "python3", "--reference-dir", &dir];
        if case == "sweep" {
            argv.extend(["--prompts", "2"]);
        }
        let e = bench_fails(&argv);
        assert!(e.contains(script) && e.contains("No module named 'torch'") && e.contains("ended after 0 result line(s)"), "{e}");
    }
}
