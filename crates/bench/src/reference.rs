//! The PyTorch side of a bench, run in the same invocation: `--reference-python PATH` starts one of the
//! scripts in `benches/reference/` under that interpreter and alternates with ours, repetition by
//! repetition (ours, theirs, ours, theirs, …), so both sides see the same machine state.
//!
//! The protocol (docs/benchmarks.md): the bench starts `PATH SCRIPT ARGS…` once; the script builds its
//! model, warms up, then for every line it reads on stdin (`run`) runs one repetition and prints its
//! per-stage times as ONE JSON object on ONE stdout line, e.g. `{"image_ms": 3.1, "text_ms": 0.1,
//! "grounding_ms": 2.0}` (extra keys are allowed and ignored); it exits 0 when stdin closes. Every
//! non-empty stdout line must be such an object: anything else (a missing stage, a non-number, not
//! JSON) is an error naming the script and the tail of its stderr, as is a missing script, a failed
//! start, an early exit or a non-zero exit status. A stand-in that ignores stdin and prints its lines
//! at once is driven the same way (tests use one).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};

use crate::util::{faster_or_slower, median};

/// The flags shared by the benches that compare against PyTorch.
#[derive(Clone, Debug, Default)]
pub struct RefArgs {
    /// Python interpreter with `torch` and Meta's `sam3` installed: run the PyTorch reference script
    /// from `benches/reference/` in this invocation, alternating with ours, and print both sides'
    /// min/median per stage and the ratio. Without it the ratio is against a recorded number.
    pub reference_python: Option<PathBuf>,
    /// With --reference-python: alternating repetitions per side (default: per bench).
    pub reps: Option<usize>,
    /// Where the reference scripts are (default: `benches/reference` under the current directory,
    /// else under the workspace this binary was built from).
    pub reference_dir: Option<PathBuf>,
}

impl RefArgs {
    /// The path of reference script `name`, or an error saying where it was looked for.
    pub fn script(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dirs: Vec<PathBuf> = match &self.reference_dir {
            Some(d) => vec![d.clone()],
            None => vec![
                PathBuf::from("benches/reference"),
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/reference"),
            ],
        };
        for d in &dirs {
            let p = d.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
        bail!(
            "reference script {name} not found (looked in {})",
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    }
}

/// Which side ran: ours (burn) or the reference (PyTorch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Ours,
    Reference,
}

/// Keeps the last lines of a child's stderr for error messages.
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    const LINES: usize = 20;
    fn push(&self, line: String) {
        let mut q = self.0.lock().unwrap();
        if q.len() == Self::LINES {
            q.pop_front();
        }
        q.push_back(line);
    }
    fn text(&self) -> String {
        let q = self.0.lock().unwrap();
        if q.is_empty() { "(empty)".to_string() } else { q.iter().cloned().collect::<Vec<_>>().join("\n") }
    }
}

/// A running reference script.
pub struct Reference {
    script: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: Tail,
    stderr_thread: Option<std::thread::JoinHandle<()>>,
    results: usize,
}

impl Reference {
    /// Start `python script args…` with piped stdin/stdout/stderr.
    pub fn spawn(python: &Path, script: &Path, args: &[String]) -> anyhow::Result<Self> {
        if !script.is_file() {
            bail!("reference script {} not found", script.display());
        }
        let start = || Command::new(python).arg(script).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
        // ETXTBSY: an interpreter file written a moment ago (a wrapper script) can still be open for
        // writing in a child another thread forked before its exec closed the descriptor; that
        // clears within milliseconds, so retry a few times before giving up.
        const TEXT_FILE_BUSY: i32 = 26;
        let mut spawned = start();
        for _ in 0..10 {
            match &spawned {
                Err(e) if e.raw_os_error() == Some(TEXT_FILE_BUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    spawned = start();
                }
                _ => break,
            }
        }
        let mut child = spawned.with_context(|| format!("cannot start the reference {} with --reference-python {}", script.display(), python.display()))?;
        let stderr = Tail::default();
        let err = child.stderr.take().expect("piped stderr");
        let tail = stderr.clone();
        let stderr_thread = std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                match line {
                    Ok(l) => tail.push(l),
                    Err(_) => break,
                }
            }
        });
        Ok(Self {
            script: script.to_path_buf(),
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().expect("piped stdout")),
            child,
            stderr,
            stderr_thread: Some(stderr_thread),
            results: 0,
        })
    }

    /// The stderr tail, once the child's stderr is closed (or now, if it is still running).
    fn stderr_tail(&mut self, wait: bool) -> String {
        if wait && let Some(t) = self.stderr_thread.take() {
            // A grandchild may keep the pipe open: wait for the end of stderr 2 s at most.
            let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while !t.is_finished() && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        self.stderr.text()
    }

    fn fail(&mut self, what: String) -> anyhow::Error {
        // The script has failed: stop it (if still running) so its stderr closes, then report.
        let _ = self.child.kill();
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        let tail = self.stderr_tail(true);
        anyhow::anyhow!("reference script {}: {what} ({status}); its stderr ends with:\n{tail}", self.script.display())
    }

    /// Ask for one repetition and read its stage times (ms), in the order of `stages`.
    pub fn next(&mut self, stages: &[&str]) -> anyhow::Result<Vec<f64>> {
        if let Some(w) = self.stdin.as_mut() {
            // A stand-in that ignores stdin may have exited already: a broken pipe here is not an error.
            if w.write_all(b"run\n").and_then(|_| w.flush()).is_err() {
                self.stdin = None;
            }
        }
        loop {
            let mut line = String::new();
            let n = match self.stdout.read_line(&mut line) {
                Ok(n) => n,
                Err(e) => return Err(self.fail(format!("reading its stdout failed: {e}"))),
            };
            if n == 0 {
                let k = self.results;
                return Err(self.fail(format!("ended after {k} result line(s), before the result of repetition {}", k + 1)));
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            match parse_stages(line, stages) {
                Ok(v) => {
                    self.results += 1;
                    return Ok(v);
                }
                Err(e) => return Err(self.fail(format!("bad result line {line:?}: {e}"))),
            }
        }
    }

    /// Close stdin and wait: the script must exit 0. What it printed past the results asked for is
    /// ignored (a stand-in may print a fixed number of lines).
    pub fn finish(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let _ = std::io::copy(&mut self.stdout, &mut std::io::sink());
        let status = self.child.wait().context("waiting for the reference script")?;
        if !status.success() {
            let tail = self.stderr_tail(true);
            bail!("reference script {} failed ({status}); its stderr ends with:\n{tail}", self.script.display());
        }
        Ok(())
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        // Only a reference left running by an error path gets here still alive.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The stage times (ms) of one JSON result line: every `"<stage>_ms"` must be a finite number ≥ 0.
pub fn parse_stages(line: &str, stages: &[&str]) -> anyhow::Result<Vec<f64>> {
    let v: serde_json::Value = serde_json::from_str(line).context("not JSON")?;
    let obj = v.as_object().ok_or_else(|| anyhow::anyhow!("not a JSON object"))?;
    stages
        .iter()
        .map(|s| {
            let key = format!("{s}_ms");
            let x = obj.get(&key).ok_or_else(|| anyhow::anyhow!("no \"{key}\""))?;
            let x = x.as_f64().ok_or_else(|| anyhow::anyhow!("\"{key}\" is not a number: {x}"))?;
            if !x.is_finite() || x < 0.0 {
                bail!("\"{key}\" = {x} is not a time");
            }
            Ok(x)
        })
        .collect()
}

/// Both sides' per-stage times (ms) from an alternating run.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub stages: Vec<String>,
    /// `ours[rep][stage]`
    pub ours: Vec<Vec<f64>>,
    /// `reference[rep][stage]`
    pub reference: Vec<Vec<f64>>,
    /// The order the repetitions ran in.
    pub order: Vec<Side>,
}

/// `min` and `median` of a sample.
pub fn min_median(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    let m = median(&mut s);
    (s.first().copied().unwrap_or(f64::NAN), m)
}

/// Milliseconds, in s past 10 s.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 10_000.0 { format!("{:.2} s", ms / 1e3) } else { format!("{ms:.2} ms") }
}

impl Comparison {
    fn column(rows: &[Vec<f64>], k: Option<usize>) -> Vec<f64> {
        rows.iter().map(|r| k.map(|k| r[k]).unwrap_or_else(|| r.iter().sum())).collect()
    }

    /// `(ours (min, median), reference (min, median))` of stage `k`, or of the per-repetition total.
    pub fn stat(&self, k: Option<usize>) -> ((f64, f64), (f64, f64)) {
        (min_median(&Self::column(&self.ours, k)), min_median(&Self::column(&self.reference, k)))
    }

    /// The comparison table: per stage and in total, both sides' min / median and the ratio of medians.
    pub fn report(&self, reference_label: &str) -> String {
        let mut s = format!(
            "  vs PyTorch, measured in this run ({reference_label}), {} alternating repetitions (PyTorch, ours, PyTorch, …):\n",
            self.ours.len()
        );
        s += &format!("    {:<12} {:>24} {:>24}   ratio of medians\n", "stage", "ours min / median", "PyTorch min / median");
        let rows: Vec<(String, Option<usize>)> = self
            .stages
            .iter()
            .enumerate()
            .map(|(k, n)| (n.clone(), Some(k)))
            .chain(std::iter::once(("total".to_string(), None)))
            .collect();
        for (name, k) in rows {
            let ((omin, omed), (rmin, rmed)) = self.stat(k);
            let ratio = if omed > 0.0 && rmed > 0.0 { faster_or_slower(omed, rmed) } else { "n/a (zero time)".to_string() };
            s += &format!(
                "    {name:<12} {:>24} {:>24}   ours/PyTorch = {:.3} ({ratio})\n",
                format!("{} / {}", fmt_ms(omin), fmt_ms(omed)),
                format!("{} / {}", fmt_ms(rmin), fmt_ms(rmed)),
                omed / rmed
            );
        }
        s
    }
}

/// Run `reps` alternating repetitions: one reference repetition then `ours()`, `reps` times. The
/// reference goes first so that its start-up (importing torch, building and warming its model, all
/// before it answers the first `run`) is over before ours is timed: started the other way round,
/// our first repetition shared the CPU with that start-up (measured: the full-size image stage
/// 36 s alone, 52 s beside it). Each side returns its stage times (ms) in the order of `stages`.
/// The reference is finished (and its exit status checked) at the end.
pub fn alternate(
    reps: usize,
    stages: &[&str],
    mut ours: impl FnMut() -> anyhow::Result<Vec<f64>>,
    mut reference: Reference,
) -> anyhow::Result<Comparison> {
    let mut c = Comparison { stages: stages.iter().map(|s| s.to_string()).collect(), ours: vec![], reference: vec![], order: vec![] };
    for _ in 0..reps {
        c.reference.push(reference.next(stages)?);
        c.order.push(Side::Reference);
        let o = ours()?;
        anyhow::ensure!(o.len() == stages.len(), "ours returned {} stage times for {} stages", o.len(), stages.len());
        c.ours.push(o);
        c.order.push(Side::Ours);
    }
    reference.finish()?;
    Ok(c)
}

/// Start `script` under `--reference-python` (when given), alternate `reps` times with `ours` and
/// print the comparison. `None` when no interpreter was given.
pub fn compare(
    r: &RefArgs,
    script: &str,
    script_args: &[String],
    default_reps: usize,
    stages: &[&str],
    ours: impl FnMut() -> anyhow::Result<Vec<f64>>,
) -> anyhow::Result<Option<Comparison>> {
    let Some(python) = &r.reference_python else { return Ok(None) };
    let path = r.script(script)?;
    let reps = r.reps.unwrap_or(default_reps).max(1);
    let mut args = script_args.to_vec();
    args.extend(["--reps".to_string(), reps.to_string()]);
    let reference = Reference::spawn(python, &path, &args)?;
    let c = alternate(reps, stages, ours, reference)?;
    print!("{}", c.report(&format!("{} under {}", path.display(), python.display())));
    Ok(Some(c))
}

/// The ratio line against a RECORDED reference number (no `--reference-python`): says which number,
/// where it is from and that it is not from this run.
pub fn recorded_line(ours: f64, recorded: f64, unit: &str, provenance: &str) -> String {
    format!(
        "  vs a recorded {recorded} {unit} ({provenance}; not this run, pass --reference-python to measure PyTorch here): \
         ratio ours/recorded = {:.3} ({} than that record)",
        ours / recorded,
        faster_or_slower(ours, recorded)
    )
}
