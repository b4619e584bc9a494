//! `sam3lab world gen`: generate the concept-grounding world (broad colour × shape scenes, the
//! narrow clock-part task, SA-Co/Gold splits, the probe set, `world.json`). Logic lives in
//! `sam3lab-world`. `sam3lab world pretrain`: the mini-SAM3's three pretraining stages
//! (`recipes/world/pretrain_stage{1,2,3}.toml`, embedded) on a generated world, through the training
//! engine; resumable.

use std::path::PathBuf;
use std::time::Instant;

use sam3lab_world::WorldConfig;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: WorldCmd,
}

#[derive(clap::Subcommand)]
enum WorldCmd {
    /// Generate a world into a new (or empty) directory; the same --seed gives byte-identical files.
    Gen(GenArgs),
    /// Pretrain the mini-SAM3 on a generated world (three stages; rerun to resume).
    Pretrain(PretrainArgs),
}

#[derive(clap::Args)]
struct PretrainArgs {
    /// A world made by `sam3lab world gen`.
    #[arg(long, value_name = "DIR")]
    world: PathBuf,
    /// Output: stage1/, stage2/, stage3/ (checkpoints, loss.csv, eval.csv), recipes/, base.safetensors.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Device: cpu (flex), wgpu, cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Two steps per stage (a smoke test of the whole path, e.g. on a `world gen --quick` world).
    #[arg(long)]
    quick: bool,
}

/// The shipped recipes cut to two steps per stage.
fn quick(text: &str) -> String {
    let mut t = text.to_string();
    for (a, b) in [
        ("steps = 8000", "steps = 2"),
        ("steps = 6000", "steps = 2"),
        ("steps = 4000", "steps = 2"),
        ("checkpoints = [2000, 4000, 6000, 8000]", "checkpoints = []"),
        ("checkpoints = [2000, 4000, 6000]", "checkpoints = []"),
        ("checkpoints = [2000, 4000]", "checkpoints = []"),
        ("step_008000", "step_000002"),
        ("step_006000", "step_000002"),
        ("every = 500", "every = 1"),
        ("every = 1000", "every = 1"),
    ] {
        t = t.replace(a, b);
    }
    t
}

const STAGE1: &str = include_str!("../../../../recipes/world/pretrain_stage1.toml");
const STAGE2: &str = include_str!("../../../../recipes/world/pretrain_stage2.toml");
const STAGE3: &str = include_str!("../../../../recipes/world/pretrain_stage3.toml");
const MINI_CONFIG: &str = include_str!("../../../../data/world/config.json");
/// The world's one objective, named by both stages' `[loss] from`.
const OBJECTIVE: &str = include_str!("../../../../data/world/objective.toml");

fn pretrain(a: PretrainArgs) -> anyhow::Result<u8> {
    use anyhow::Context;
    let world = std::fs::canonicalize(&a.world).with_context(|| format!("--world {}", a.world.display()))?;
    if !world.join("world.json").is_file() || !world.join("broad-pretrain.json").is_file() {
        anyhow::bail!("--world {}: not a generated world (no world.json / broad-pretrain.json); run `sam3lab world gen` first", world.display());
    }
    std::fs::create_dir_all(a.out.join("recipes"))?;
    let out = std::fs::canonicalize(&a.out)?;
    let device = sam3lab_model::device::device_from_name(&a.device)?;
    // The shipped recipes, their repository-relative paths pointed at this world and this output.
    let w = format!("{}/", world.display());
    let cfg = out.join("recipes/config.json");
    sam3lab_weights::write_atomic(&cfg, MINI_CONFIG.as_bytes())?;
    let obj = out.join("recipes/objective.toml");
    sam3lab_weights::write_atomic(&obj, OBJECTIVE.as_bytes())?;
    let obj = obj.display().to_string();
    let s1 = STAGE1.replace("../../runs/world/", &w).replace("../../data/world/config.json", &cfg.display().to_string()).replace("../../data/world/objective.toml", &obj);
    // Stage k > 1 starts from stage k−1's last checkpoint.
    let continued = |text: &str, prev: &str| {
        text.replace("../../runs/world/", &w)
            .replace(&format!("../../runs/world-pretrain/{prev}/"), &format!("{}/", out.join(prev).display()))
            .replace("../../data/world/objective.toml", &obj)
    };
    let (s2, s3) = (continued(STAGE2, "stage1"), continued(STAGE3, "stage2"));
    let mut last = None;
    let stages = [("stage1", s1), ("stage2", s2), ("stage3", s3)];
    for (name, text) in stages.map(|(n, t)| (n, if a.quick { quick(&t) } else { t })) {
        let recipe = out.join(format!("recipes/{name}.toml"));
        sam3lab_weights::write_atomic(&recipe, text.as_bytes())?;
        let pb = crate::progress::Bar(indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template(&format!("{name} {{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} steps {{msg}}"))
                .expect("template")
                .progress_chars("=> "),
        ));
        let s = sam3lab_train::engine::run(&recipe, &out.join(name), &device, &pb)?;
        pb.finish_and_clear();
        eprintln!("{name}: {} steps{} in {:.0} s", s.steps, s.resumed_from.map(|r| format!(" (resumed at {r})")).unwrap_or_default(), s.seconds);
        last = Some((name, s.steps));
    }
    let (name, steps) = last.expect("three stages");
    let ckpt = out.join(name).join(format!("step_{steps:06}.safetensors"));
    let base = out.join("base.safetensors");
    sam3lab_weights::write_atomic(&base, &std::fs::read(&ckpt)?)?;
    sam3lab_weights::write_atomic(&out.join("config.json"), &std::fs::read(out.join(name).join("config.json"))?)?;
    if let Ok(text) = std::fs::read_to_string(out.join(name).join("eval.csv")) {
        println!("{}", text.lines().next().unwrap_or_default());
        println!("{}", text.lines().last().unwrap_or_default());
    }
    println!("wrote {} (config {})", base.display(), out.join("config.json").display());
    Ok(0)
}

#[derive(clap::Args)]
struct GenArgs {
    /// Output directory: must not exist or be empty (written beside it, then renamed into place).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Seed of every random stream.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A tiny world (a few images per split) for smoke tests.
    #[arg(long, conflicts_with = "config")]
    quick: bool,
    /// A WorldConfig as JSON or TOML (by extension); missing fields take their defaults.
    #[arg(long, value_name = "FILE", conflicts_with = "preset")]
    config: Option<PathBuf>,
    /// A named world: v2 (the default), v2b or v2a (the second and first v2 candidates' worlds) or v1 (the first world,
    /// kept as an ablation: the narrow words never occur in pretraining, thin parts, 12 hour
    /// markers, a 100 + 100 broad-eval).
    #[arg(long, value_name = "NAME", conflicts_with = "quick")]
    preset: Option<String>,
    /// Image side in pixels (overrides the config; default 112, the tiny model's).
    #[arg(long)]
    resolution: Option<u32>,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match &args.cmd {
        WorldCmd::Gen(a) => super::check_out_dir("--out", &a.out)?,
        WorldCmd::Pretrain(a) => super::check_out_dir("--out", &a.out)?,
    }
    match args.cmd {
        WorldCmd::Gen(a) => generate(a),
        WorldCmd::Pretrain(a) => pretrain(a),
    }
}

fn generate(a: GenArgs) -> anyhow::Result<u8> {
    let mut cfg = if a.quick {
        WorldConfig::quick()
    } else if let Some(path) = &a.config {
        WorldConfig::load(path)?
    } else if let Some(name) = &a.preset {
        WorldConfig::preset(name)?
    } else {
        WorldConfig::default()
    };
    if let Some(r) = a.resolution {
        cfg.resolution = r;
    }
    let t0 = Instant::now();
    let m = sam3lab_world::generate(&cfg, a.seed, &a.out)?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "world {} (seed {}) in {secs:.1} s: {} files",
        a.out.display(),
        m.seed,
        m.files.len() + 1
    );
    println!(
        "{:<22} {:>7} {:>7} {:>9} {:>9} {:>9}",
        "split", "images", "pairs", "positive", "negative", "instances"
    );
    for (name, _) in sam3lab_world::SPLITS {
        let s = &m.splits[name];
        println!(
            "{:<22} {:>7} {:>7} {:>9} {:>9} {:>9}",
            name, s.images, s.pairs, s.positives, s.negatives, s.instances
        );
    }
    println!(
        "vocabulary: {} broad phrases ({} colours x {} shapes), {} narrow parts; probe prompts {}",
        m.vocabulary.broad_phrases.len(),
        m.vocabulary.broad_colours.len(),
        m.vocabulary.broad_shapes.len(),
        m.vocabulary.narrow_parts.len(),
        m.probe
            .prompt_groups
            .iter()
            .map(|(g, p)| format!("{g}={}", p.prompts.len()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(0)
}
