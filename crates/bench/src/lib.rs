//! sam3lab-bench: the benchmarks behind `sam3lab bench <case>` — each prints a ratio against a
//! baseline measured in the same run (never a timed test, never only a recorded constant).
//!
//! One variant of [`Bench`] per case, each self-contained in its module (`forward`: fixture and
//! full-size forwards; `model`: backbone; `hooks`: hook cost; `weights`: streaming checkpoint diff;
//! `train`: a training step; `sweep`: one image, many prompts); `flops` the per-stage arithmetic and the
//! fraction of the machine's large-GEMM rate; `reference` runs the PyTorch reference
//! scripts of `benches/reference/` alternating with ours (`--reference-python`); `util` holds the shared plumbing (threads, medians, the in-run
//! matmul baseline, memory and CPU counters). The settings are plain structs and progress goes
//! through [`Ui`]: the CLI owns the argument parsing (clap) and the spinners (indicatif).

pub mod flops;
pub mod forward;
pub mod hooks;
pub mod model;
pub mod reference;
pub mod sweep;
pub mod train;
pub mod util;
pub mod weights;

use sam3lab_util::progress::{NoProgress, Progress};

use self::{forward as bench_forward, hooks as bench_hooks, model as bench_model, sweep as bench_sweep, train as bench_train, weights as weights_diff};

/// Which benchmark to run, with its settings (`sam3lab bench CASE …` parses into this).
pub enum Bench {
    Forward(bench_forward::ForwardArgs),
    Full(bench_forward::FullArgs),
    Backbone(bench_model::BackboneArgs),
    WeightsDiff(weights_diff::WeightsDiffArgs),
    Hooks(bench_hooks::HooksArgs),
    Train(bench_train::TrainArgs),
    Sweep(bench_sweep::SweepArgs),
}

/// How a benchmark shows that it is busy: the CLI draws `indicatif` spinners and bars; pass
/// [`Quiet`] to show nothing.
pub trait Ui {
    /// A spinner showing `msg` until `finish`.
    fn spinner(&self, msg: &str) -> Box<dyn Progress>;
    /// A bar of `len` units (0: set by the work).
    fn bar(&self, len: u64) -> Box<dyn Progress>;
}

/// Shows nothing.
pub struct Quiet;

impl Ui for Quiet {
    fn spinner(&self, _: &str) -> Box<dyn Progress> {
        Box::new(NoProgress)
    }
    fn bar(&self, _: u64) -> Box<dyn Progress> {
        Box::new(NoProgress)
    }
}

pub fn run(case: Bench, ui: &dyn Ui) -> anyhow::Result<u8> {
    match case {
        Bench::Forward(a) => bench_forward::run_forward(a),
        Bench::Full(a) => bench_forward::run_full(a, ui),
        Bench::Backbone(a) => bench_model::run_backbone(a, ui),
        Bench::WeightsDiff(a) => weights_diff::run(a, ui),
        Bench::Hooks(a) => bench_hooks::run(a, ui),
        Bench::Train(a) => bench_train::run(a, ui),
        Bench::Sweep(a) => bench_sweep::run(a, ui),
    }
}
