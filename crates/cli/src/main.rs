//! `sam3lab`: the command-line front end of the workbench.
//!
//! Each subcommand lives in its own module under `cmd/` and delegates to a library crate; this file
//! only dispatches. Exit status: 0 success, 1 a check ran and failed (parity outside tolerance, …),
//! 2 unusable input (bad file, unknown hook name, …) — the error is printed on stderr.
//!
//! A closed output (`sam3lab hooks list | head`) ends the command quietly with status 0: the
//! "failed printing to stdout: Broken pipe" panic of `println!` and a `BrokenPipe` error are both
//! recognised here, never reported.
//!
//! `--allow-nonfinite` (any subcommand) lets checkpoints holding NaN / ±Inf load and forwards with
//! non-finite outputs through with a warning — for debugging; by default both are errors (exit 2)
//! naming the tensors / outputs.

use std::panic::AssertUnwindSafe;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod progress;

#[derive(Parser)]
#[command(name = "sam3lab", version, about = "Mechanistic-interpretability workbench for SAM3", long_about = None)]
struct Cli {
    /// Load checkpoints holding NaN/±Inf and let non-finite forward outputs through with a warning
    /// (debugging only; by default both stop the command, naming the tensors).
    #[arg(long, global = true)]
    allow_nonfinite: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compare the model against a reference fixture, key by key.
    Parity(cmd::parity::Args),
    /// Segment an image from a noun phrase (and optional box) with a checkpoint.
    Segment(cmd::segment::Args),
    /// List every hook point with its shape (no weights needed).
    Hooks(cmd::hooks::Args),
    /// Run a forward pass and capture activations into a cache.
    Run(cmd::run::Args),
    /// Weight-space probes: checkpoint diffs and direction cosines (no forward pass).
    Weights(cmd::weights::Args),
    /// Head surgery: α-interpolate named attention heads from a donor checkpoint.
    Surgery(cmd::surgery::Args),
    /// Render the post's figures from published numbers or live probe output.
    Figures(cmd::figures::Args),
    /// SA-Co/Gold evaluation: predictions and the cgF1 family.
    Eval(cmd::eval::Args),
    /// Activation probes: drift, heads, patch, steer, presence (and capture, demo-inputs).
    Probe(cmd::probe::Args),
    /// Sparse autoencoders on cached activations.
    Sae(cmd::sae::Args),
    /// Retrain one named sub-module with everything else frozen.
    Retrain(cmd::retrain::Args),
    /// Fine-tune with a recipe (Meta's matchers and loss; streams, freezing, schedules, checkpoints).
    Train(cmd::train::Args),
    /// Benchmarks (ratios against a baseline measured in the same run).
    Bench(cmd::bench::Args),
    /// The concept-grounding world: generate it (broad scenes, the narrow clock task, SA-Co/Gold
    /// splits) and pretrain the mini-SAM3 on it.
    World(cmd::world::Args),
    /// The post's whole story on the embedded world: recipes, evaluation, probes, figures, REPORT.md.
    Reproduce(cmd::reproduce::Args),
    /// Merge the shards of a split run (`eval predict`, `probe drift|capture|presence|patch|attrib|heads|steer` with `--shard K/N`)
    /// into what the unsharded run writes, byte for byte, after checking that they come from one run.
    Merge(cmd::merge::Args),
}

/// Whether a panic message is `print!`/`println!` failing on a closed stdout pipe.
fn is_closed_pipe_panic(msg: &str) -> bool {
    msg.starts_with("failed printing to stdout") && (msg.contains("Broken pipe") || msg.contains("os error 32"))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied()).unwrap_or("")
}

/// Whether an error comes from writing to a closed pipe.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}

/// The error and its causes joined by ": " (as `{:#}` does), leaving out a cause whose text the
/// layer above already ends with: many errors print "PATH: {source}" and also return that source,
/// which would otherwise read "nope.json: No such file or directory (os error 2): No such file or
/// directory (os error 2)".
fn chain_text(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for c in err.chain() {
        let t = c.to_string();
        if out.ends_with(&t) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&t);
    }
    out
}

/// The checkpoint-does-not-fit error anywhere in the chain (also inside a probe's or the trainer's
/// error), with the messages of the layers above it.
fn checkpoint_mismatch(err: &anyhow::Error) -> Option<(Vec<String>, &sam3lab_model::ModelError)> {
    use sam3lab_model::ModelError;
    let mut above = Vec::new();
    for c in err.chain() {
        let m = c.downcast_ref::<ModelError>().or_else(|| match c.downcast_ref::<sam3lab_probes::ProbeError>() {
            Some(sam3lab_probes::ProbeError::Model(m)) => Some(m),
            _ => None,
        });
        let m = m.or_else(|| match c.downcast_ref::<sam3lab_train::TrainError>() {
            Some(sam3lab_train::TrainError::Model(m)) => Some(m),
            _ => None,
        });
        match m {
            Some(m @ ModelError::CheckpointMismatch { .. }) => return Some((above, m)),
            Some(_) => return None,
            None => above.push(c.to_string()),
        }
    }
    None
}

/// A checkpoint made for another config lists every one of its tensors (tens of kB): on the terminal,
/// the counts, a few names, and what to do instead.
fn short_mismatch(above: &[String], m: &sam3lab_model::ModelError) -> Option<String> {
    let sam3lab_model::ModelError::CheckpointMismatch { path, missing, unexpected, mismatched } = m else {
        return None;
    };
    const SHOWN: usize = 4;
    let few = |v: &[String]| {
        let more = v.len().saturating_sub(SHOWN);
        let head = v.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
        if more > 0 { format!("{head}, … ({more} more)") } else { head }
    };
    let mut s = format!("checkpoint {path} does not fit the model:");
    if !missing.is_empty() {
        s += &format!("\n  missing keys ({}): {}", missing.len(), few(missing));
    }
    if !unexpected.is_empty() {
        s += &format!("\n  unexpected keys ({}): {}", unexpected.len(), few(unexpected));
    }
    for (k, e, f) in mismatched.iter().take(SHOWN) {
        s += &format!("\n  shape mismatch {k}: expected {e:?}, found {f:?}");
    }
    if mismatched.len() > SHOWN {
        s += &format!("\n  … {} more shape mismatches", mismatched.len() - SHOWN);
    }
    s += "\n  (`sam3lab weights ls CHECKPOINT` lists its tensors; a checkpoint of another model size needs its \
          config: --config FILE, e.g. data/world/config.json for data/world/base.safetensors)";
    let mut parts: Vec<&str> = above.iter().map(String::as_str).collect();
    // A wrapper that only repeats its source's text adds nothing.
    parts.retain(|p| !p.starts_with(&format!("checkpoint {path} does not fit")));
    parts.push(&s);
    Some(parts.join(": "))
}

fn main() -> ExitCode {
    // A closed stdout/stderr is not a crash: keep the panic quiet, end with status 0 below.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_closed_pipe_panic(info.payload_as_str().unwrap_or("")) {
            default_hook(info);
        }
    }));
    // Every command (benches and probes included, not only those that pick a device by name) keeps
    // freed tensor memory for reuse instead of paying fresh page faults per large intermediate.
    sam3lab_model::device::tune_cpu_allocator();
    match std::panic::catch_unwind(AssertUnwindSafe(run)) {
        Ok(code) => code,
        Err(payload) if is_closed_pipe_panic(panic_message(payload.as_ref())) => ExitCode::SUCCESS,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

fn run() -> ExitCode {
    let cli = Cli::parse();
    sam3lab_model::checkpoint::set_allow_nonfinite(cli.allow_nonfinite);
    let result = match cli.cmd {
        Cmd::Parity(a) => cmd::parity::run(a),
        Cmd::Segment(a) => cmd::segment::run(a),
        Cmd::Hooks(a) => cmd::hooks::run(a),
        Cmd::Run(a) => cmd::run::run(a),
        Cmd::Weights(a) => cmd::weights::run(a),
        Cmd::Surgery(a) => cmd::surgery::run(a),
        Cmd::Figures(a) => cmd::figures::run(a),
        Cmd::Eval(a) => cmd::eval::run(a),
        Cmd::Probe(a) => cmd::probe::run(a),
        Cmd::Sae(a) => cmd::sae::run(a),
        Cmd::Retrain(a) => cmd::retrain::run(a),
        Cmd::Train(a) => cmd::train::run(a),
        Cmd::Bench(a) => cmd::bench::run(a),
        Cmd::World(a) => cmd::world::run(a),
        Cmd::Reproduce(a) => cmd::reproduce::run(a),
        Cmd::Merge(a) => cmd::merge::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            match checkpoint_mismatch(&err).and_then(|(above, m)| short_mismatch(&above, m)) {
                Some(msg) => eprintln!("error: {msg}"),
                None => eprintln!("error: {}", chain_text(&err)),
            }
            ExitCode::from(2)
        }
    }
}
