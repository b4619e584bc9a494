//! `sam3lab`: the command-line front end of the workbench.
//!
//! Each subcommand lives in its own module under `cmd/` and delegates to a library crate; this file
//! only dispatches. Exit status: 0 success, 1 a check ran and failed (parity outside tolerance, …),
//! 2 unusable input (bad file, unknown hook name, …) — the error is printed on stderr.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(name = "sam3lab", version, about = "Mechanistic-interpretability workbench for SAM3", long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compare the model against a reference fixture, key by key.
    Parity(cmd::parity::Args),
    /// Segment an image from a noun phrase (and optional box) with a checkpoint.
    Segment(cmd::segment::Args),
    /// List hook points for a config.
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
    /// Activation probes: drift, heads, patch, steer.
    Probe(cmd::probe::Args),
    /// Sparse autoencoders on cached activations.
    Sae(cmd::sae::Args),
    /// Retrain one named sub-module with everything else frozen.
    Retrain(cmd::retrain::Args),
    /// Benchmarks (ratios against a baseline measured in the same run).
    Bench(cmd::bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Cmd::Bench(a) => cmd::bench::run(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
