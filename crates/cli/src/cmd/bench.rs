//! `sam3lab bench …`: the command-line surface of the benchmarks in `sam3lab-bench` (which takes
//! plain settings structs and no clap types). Each struct here mirrors one of the library's and
//! converts into it; the defaults and help texts live here.

use std::path::PathBuf;

use sam3lab_bench::forward::{FORWARD_RECORD_MS, FULL_RECORD_GIB, FULL_RECORD_S};

use crate::progress::Bar;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    case: Bench,
}

#[derive(clap::Subcommand)]
enum Bench {
    /// Whole forward of a fixture (default: fixture A) on one thread, vs PyTorch run alongside
    /// (--reference-python) or else a recorded 11.2 ms (measured 2026-12-05).
    Forward(ForwardArgs),
    /// One forward of the full-size SAM3 (random weights, 1008², 2 threads) vs PyTorch run alongside
    /// (--reference-python) or else a recorded 36.9 s / 4.70 GiB (measured 2026-12-05).
    Full(FullArgs),
    /// Backbone forward (trunk + neck, text) of a fixture on one thread, median ms.
    Backbone(BackboneArgs),
    /// Checkpoint diff on two generated SAM3-sized f32 checkpoints (840,509,750 params, 3.36 GB
    /// each): the straightforward way (read both whole, loop tensors, f64 norms) vs `weights diff`.
    WeightsDiff(WeightsDiffArgs),
    /// Hook cost: fixture forward with no hooks, an empty spec, one capture, capture-all without
    /// heads, and capture-all, as ratios to no hooks.
    Hooks(HooksArgs),
    /// One training step (forward, matching, loss, backward, AdamW) on the training fixture's batch vs
    /// the eval forward of the same batch; `--full` adds a full-size 1008² step with the trunk frozen.
    Train(TrainArgs),
    /// One image encoded once, N prompts grounded (text + grounding each): per-prompt and total time,
    /// vs PyTorch's same loop with --reference-python. Fixture by default; --full for the real size.
    Sweep(SweepArgs),
}

/// Runs the benchmark with indicatif spinners and bars on stderr.
pub fn run(a: Args) -> anyhow::Result<u8> {
    sam3lab_bench::run(a.into(), &Spinners)
}

struct Spinners;

impl sam3lab_bench::Ui for Spinners {
    fn spinner(&self, msg: &str) -> Box<dyn sam3lab_util::progress::Progress> {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_message(msg.to_string());
        pb.enable_steady_tick(std::time::Duration::from_millis(200));
        Box::new(Bar(pb))
    }
    fn bar(&self, len: u64) -> Box<dyn sam3lab_util::progress::Progress> {
        Box::new(Bar(indicatif::ProgressBar::new(len)))
    }
}

impl From<Args> for sam3lab_bench::Bench {
    fn from(a: Args) -> Self {
        use sam3lab_bench::Bench as B;
        match a.case {
            Bench::Forward(a) => B::Forward(a.into()),
            Bench::Full(a) => B::Full(a.into()),
            Bench::Backbone(a) => B::Backbone(a.into()),
            Bench::WeightsDiff(a) => B::WeightsDiff(a.into()),
            Bench::Hooks(a) => B::Hooks(a.into()),
            Bench::Train(a) => B::Train(a.into()),
            Bench::Sweep(a) => B::Sweep(a.into()),
        }
    }
}

/// The flags shared by the fixture benchmarks (`bench forward`, `bench backbone`).
#[derive(clap::Args)]
pub struct FixtureRun {
    /// Fixture directory whose weights and inputs are run.
    #[arg(long, default_value = "data/fixtures/sam3-tiny")]
    pub fixture: PathBuf,
    /// Timed iterations (after warm-up).
    #[arg(long, default_value_t = 50)]
    pub iters: usize,
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// CPU threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

impl From<FixtureRun> for sam3lab_bench::util::FixtureRun {
    fn from(a: FixtureRun) -> Self {
        Self {
            fixture: a.fixture,
            iters: a.iters,
            warmup: a.warmup,
            threads: a.threads,
        }
    }
}

/// The flags shared by the benches that compare against PyTorch.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RefArgs {
    /// Python interpreter with `torch` and Meta's `sam3` installed: run the PyTorch reference script
    /// from `benches/reference/` in this invocation, alternating with ours, and print both sides'
    /// min/median per stage and the ratio. Without it the ratio is against a recorded number.
    #[arg(long, value_name = "PATH")]
    pub reference_python: Option<PathBuf>,
    /// With --reference-python: alternating repetitions per side (default: per bench).
    #[arg(long, value_name = "N")]
    pub reps: Option<usize>,
    /// Where the reference scripts are (default: `benches/reference` under the current directory,
    /// else under the workspace this binary was built from).
    #[arg(long, value_name = "DIR")]
    pub reference_dir: Option<PathBuf>,
}

impl From<RefArgs> for sam3lab_bench::reference::RefArgs {
    fn from(a: RefArgs) -> Self {
        Self {
            reference_python: a.reference_python,
            reps: a.reps,
            reference_dir: a.reference_dir,
        }
    }
}

#[derive(clap::Args)]
pub struct ForwardArgs {
    #[command(flatten)]
    run: FixtureRun,
    /// A recorded PyTorch time for the same forward (ms), used when --reference-python is not given.
    #[arg(long, default_value_t = FORWARD_RECORD_MS)]
    reference_ms: f64,
    #[command(flatten)]
    reference: RefArgs,
}

impl From<ForwardArgs> for sam3lab_bench::forward::ForwardArgs {
    fn from(a: ForwardArgs) -> Self {
        Self {
            run: a.run.into(),
            reference_ms: a.reference_ms,
            reference: a.reference.into(),
        }
    }
}

#[derive(clap::Args)]
pub struct FullArgs {
    /// CPU threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// A recorded PyTorch time for one forward (s), used when --reference-python is not given.
    #[arg(long, default_value_t = FULL_RECORD_S)]
    reference_s: f64,
    /// A recorded PyTorch peak resident memory (GiB).
    #[arg(long, default_value_t = FULL_RECORD_GIB)]
    reference_gib: f64,
    /// Seed of the random input image.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also time each head stage separately (a second heads pass).
    #[arg(long)]
    profile_heads: bool,
    #[command(flatten)]
    reference: RefArgs,
}

impl From<FullArgs> for sam3lab_bench::forward::FullArgs {
    fn from(a: FullArgs) -> Self {
        Self {
            threads: a.threads,
            reference_s: a.reference_s,
            reference_gib: a.reference_gib,
            seed: a.seed,
            profile_heads: a.profile_heads,
            reference: a.reference.into(),
        }
    }
}

#[derive(clap::Args)]
pub struct BackboneArgs {
    #[command(flatten)]
    run: FixtureRun,
    /// Instead of the fixture: the full-size backbone (`Sam3Config::sam3()`, random weights, a
    /// 1008×1008 input), one timed forward, no capture-all baseline.
    #[arg(long)]
    full_size: bool,
}

impl From<BackboneArgs> for sam3lab_bench::model::BackboneArgs {
    fn from(a: BackboneArgs) -> Self {
        Self {
            run: a.run.into(),
            full_size: a.full_size,
        }
    }
}

#[derive(clap::Args)]
pub struct HooksArgs {
    /// Fixture directory whose weights and inputs are run.
    #[arg(long, default_value = "data/fixtures/sam3-tiny")]
    fixture: PathBuf,
    /// Timed iterations per case (after warm-up).
    #[arg(long, default_value_t = 200)]
    iters: usize,
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// CPU threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

impl From<HooksArgs> for sam3lab_bench::hooks::HooksArgs {
    fn from(a: HooksArgs) -> Self {
        Self {
            fixture: a.fixture,
            iters: a.iters,
            warmup: a.warmup,
            threads: a.threads,
        }
    }
}

#[derive(clap::Args)]
pub struct WeightsDiffArgs {
    /// Where the two checkpoints are generated (reused when present with the right layout).
    #[arg(long, default_value = "/tmp/sam3lab-bench-weights")]
    dir: PathBuf,
    /// Parameters per checkpoint (SAM3's tensor shapes, cut to this count).
    #[arg(long, default_value_t = sam3lab_weights::synth::SAM3_PARAMS)]
    params: u64,
    /// Delete the generated checkpoints at the end.
    #[arg(long)]
    cleanup: bool,
    /// Internal: run one method in this process and print its measurements as JSON.
    #[arg(long, hide = true, value_enum)]
    child: Option<DiffMethod>,
}

impl From<WeightsDiffArgs> for sam3lab_bench::weights::WeightsDiffArgs {
    fn from(a: WeightsDiffArgs) -> Self {
        Self {
            dir: a.dir,
            params: a.params,
            cleanup: a.cleanup,
            child: a.child.map(Into::into),
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum DiffMethod {
    /// Read both files whole into Vec<f32>, loop tensors on one thread, f64 sums.
    Naive,
    /// `weights diff`'s engine: mmap, chunked threads, pages released, sha256 of both files.
    Streaming,
    /// The same without the sha256 (to show what the identity costs).
    StreamingNoHash,
}

impl From<DiffMethod> for sam3lab_bench::weights::DiffMethod {
    fn from(m: DiffMethod) -> Self {
        match m {
            DiffMethod::Naive => Self::Naive,
            DiffMethod::Streaming => Self::Streaming,
            DiffMethod::StreamingNoHash => Self::StreamingNoHash,
        }
    }
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Training fixture whose weights and batch are used.
    #[arg(long, default_value = "data/fixtures/sam3-tiny-train")]
    fixture: PathBuf,
    #[arg(long, default_value_t = 20)]
    iters: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Also run one full-size step (SAM3 config, random weights, 1008², batch 1, trunk frozen):
    /// minutes on a CPU, several GiB.
    #[arg(long)]
    full: bool,
    /// With --full: burn's gradient checkpointing on (recompute memory-bound activations).
    #[arg(long)]
    checkpointing: bool,
    #[command(flatten)]
    reference: RefArgs,
}

impl From<TrainArgs> for sam3lab_bench::train::TrainArgs {
    fn from(a: TrainArgs) -> Self {
        Self {
            fixture: a.fixture,
            iters: a.iters,
            warmup: a.warmup,
            threads: a.threads,
            full: a.full,
            checkpointing: a.checkpointing,
            reference: a.reference.into(),
        }
    }
}

#[derive(clap::Args)]
pub struct SweepArgs {
    /// Fixture directory whose weights and image are used.
    #[arg(long, default_value = "data/fixtures/sam3-tiny", conflicts_with = "full")]
    fixture: PathBuf,
    /// The full-size SAM3 (random weights, 1008²) instead of a fixture: minutes, ~4 GiB.
    #[arg(long)]
    full: bool,
    /// Noun phrases grounded per repetition.
    #[arg(long, default_value_t = 12)]
    prompts: usize,
    /// Timed repetitions without --reference-python (default 5 on a fixture, 1 with --full); with
    /// it, --reps sets the alternating repetitions.
    #[arg(long)]
    iters: Option<usize>,
    /// Untimed repetitions first (default 1 on a fixture, 0 with --full).
    #[arg(long)]
    warmup: Option<usize>,
    /// CPU threads (default 1 on a fixture, 2 with --full).
    #[arg(long)]
    threads: Option<usize>,
    /// Seed of the random image (--full).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    reference: RefArgs,
}

impl From<SweepArgs> for sam3lab_bench::sweep::SweepArgs {
    fn from(a: SweepArgs) -> Self {
        Self {
            fixture: a.fixture,
            full: a.full,
            prompts: a.prompts,
            iters: a.iters,
            warmup: a.warmup,
            threads: a.threads,
            seed: a.seed,
            reference: a.reference.into(),
        }
    }
}
