//! `sam3lab bench <case>`: benchmarks that print a ratio against a baseline measured in the same run.
//!
//! One variant of [`Bench`] per case; each case is self-contained in its own function (add new cases
//! the same way).

use super::{bench_forward, bench_hooks, bench_model, bench_train, bench_weights as weights_diff};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    case: Bench,
}

#[derive(clap::Subcommand)]
enum Bench {
    /// Whole forward of a fixture (default: fixture A) on one thread, vs the reference's 20.7 ms.
    Forward(bench_forward::ForwardArgs),
    /// One forward of the full-size SAM3 (random weights, 1008², 2 threads) vs the reference's 106 s / 4.67 GiB.
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
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match args.case {
        Bench::Forward(a) => bench_forward::run_forward(a),
        Bench::Full(a) => bench_forward::run_full(a),
        Bench::Backbone(a) => bench_model::run_backbone(a),
        Bench::WeightsDiff(a) => weights_diff::run(a),
        Bench::Hooks(a) => bench_hooks::run(a),
        Bench::Train(a) => bench_train::run(a),
    }
}
