//! sam3lab-bench: the benchmarks behind `sam3lab bench <case>` — each prints a ratio against a
//! baseline measured in the same run (never a timed test, never only a recorded constant).
//!
//! One variant of [`Bench`] per case, each self-contained in its module (`forward`: fixture and
//! full-size forwards; `model`: backbone; `hooks`: hook cost; `weights`: streaming checkpoint diff;
//! `train`: a training step; `sweep`: one image, many prompts); `reference` runs the PyTorch reference
//! scripts of `benches/reference/` alternating with ours (`--reference-python`); `util` holds the shared plumbing (threads, medians, the in-run
//! matmul baseline, memory and CPU counters). The CLI only parses and dispatches.

pub mod forward;
pub mod hooks;
pub mod model;
pub mod reference;
pub mod sweep;
pub mod train;
pub mod util;
pub mod weights;

use self::{forward as bench_forward, hooks as bench_hooks, model as bench_model, sweep as bench_sweep, train as bench_train, weights as weights_diff};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    case: Bench,
}

#[derive(clap::Subcommand)]
enum Bench {
    /// Whole forward of a fixture (default: fixture A) on one thread, vs PyTorch run alongside
    /// (--reference-python) or else a recorded 11.2 ms (measured 2026-12-05).
    Forward(bench_forward::ForwardArgs),
    /// One forward of the full-size SAM3 (random weights, 1008², 2 threads) vs PyTorch run alongside
    /// (--reference-python) or else a recorded 36.9 s / 4.70 GiB (measured 2026-12-05).
    Full(bench_forward::FullArgs),
    /// Backbone forward (trunk + neck, text) of a fixture on one thread, median ms.
    Backbone(bench_model::BackboneArgs),
    /// Checkpoint diff on two generated SAM3-sized f32 checkpoints (840,509,750 params, 3.36 GB
    /// each): the straightforward way (read both whole, loop tensors, f64 norms) vs `weights diff`.
    WeightsDiff(weights_diff::WeightsDiffArgs),
    /// Hook cost: fixture forward with no hooks, an empty spec, one capture, capture-all without
    /// heads, and capture-all, as ratios to no hooks.
    Hooks(bench_hooks::HooksArgs),
    /// One training step (forward, matching, loss, backward, AdamW) on the training fixture's batch vs
    /// the eval forward of the same batch; `--full` adds a full-size 1008² step with the trunk frozen.
    Train(bench_train::TrainArgs),
    /// One image encoded once, N prompts grounded (text + grounding each): per-prompt and total time,
    /// vs PyTorch's same loop with --reference-python. Fixture by default; --full for the real size.
    Sweep(bench_sweep::SweepArgs),
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match args.case {
        Bench::Forward(a) => bench_forward::run_forward(a),
        Bench::Full(a) => bench_forward::run_full(a),
        Bench::Backbone(a) => bench_model::run_backbone(a),
        Bench::WeightsDiff(a) => weights_diff::run(a),
        Bench::Hooks(a) => bench_hooks::run(a),
        Bench::Train(a) => bench_train::run(a),
        Bench::Sweep(a) => bench_sweep::run(a),
    }
}
