//! `sam3lab world gen`: generate the concept-grounding world (broad colour × shape scenes, the
//! narrow clock-part task, SA-Co/Gold splits, the probe set, `world.json`). Logic lives in
//! `sam3lab-world`.

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
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Image side in pixels (overrides the config; default 112, the tiny model's).
    #[arg(long)]
    resolution: Option<u32>,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match args.cmd {
        WorldCmd::Gen(a) => generate(a),
    }
}

fn generate(a: GenArgs) -> anyhow::Result<u8> {
    let mut cfg = if a.quick {
        WorldConfig::quick()
    } else if let Some(path) = &a.config {
        WorldConfig::load(path)?
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
