//! `sam3lab figures`: render the post's figures from its published numbers (`--data`), or one
//! figure from a live probe's JSON (`--from FILE --kind KIND`). Logic lives in `sam3lab-figures`.

use std::path::PathBuf;

use clap::ValueEnum;
use sam3lab_figures::suite::{self, Kind, LiveOptions};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["data", "from"])))]
pub struct Args {
    /// Directory of the post's published tables (data/post02): renders every figure.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// A live probe's JSON (diff.json, cosines.json, a heatmap table, a drift table, presence bars), or
    /// a `sam3lab train` loss.csv with `--kind train-curves`.
    #[arg(long, value_name = "FILE", requires = "kind")]
    from: Option<PathBuf>,
    /// Which figure to draw from --from.
    #[arg(long, value_enum)]
    kind: Option<KindArg>,
    /// Output directory (created if missing); each figure is written as STEM.png, STEM.svg, STEM.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Output file stem for --from (default KIND_INPUTSTEM).
    #[arg(long, requires = "from")]
    name: Option<String>,
    /// Figure title for --from.
    #[arg(long, requires = "from")]
    title: Option<String>,
    /// Drift point (fig61: default fusion.layers.4; fig62: default decoder.layers.5.q0).
    #[arg(long, requires = "from")]
    point: Option<String>,
    /// Prompt group for fig62 (default lvis).
    #[arg(long, requires = "from")]
    group: Option<String>,
    /// fig61: run whose RUN@STEP checkpoints form the curve (default recovery).
    #[arg(long, requires = "from")]
    run: Option<String>,
    /// fig61: reference checkpoints drawn as dotted lines (default frozen_te,lvis_replay,lvis_replay_neg).
    #[arg(long, value_delimiter = ',', requires = "from")]
    references: Option<Vec<String>>,
    /// fig62 from a drift table: JSON object {checkpoint: SA-Co neg_correct percent}.
    #[arg(long, value_name = "FILE", requires = "from")]
    neg_correct: Option<PathBuf>,
    /// fig62: checkpoints in the least-squares trend (default lvis_replay,lvis_replay_n100,recovery@2000,lvis_replay_neg).
    #[arg(long, value_delimiter = ',', requires = "from")]
    fit: Option<Vec<String>>,
    /// fig62: checkpoints marked off the trend (default presence_only).
    #[arg(long, value_delimiter = ',', requires = "from")]
    off_trend: Option<Vec<String>>,
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    /// Heatmap of a table: heatmap JSON, diff.json (one or a list), cosines.json, or a drift table.
    Heatmap,
    /// Fig 1.1: per-prompt presence sigmoid bars.
    Fig11,
    /// Fig 6.1: drift at one point over a run's steps, with reference lines.
    Fig61,
    /// Fig 6.2: gate-input drift vs neg_correct with a least-squares trend.
    Fig62,
    /// Fig 8.1: weight-delta arrows in the break/orthogonal plane (cosines.json projection).
    Fig81,
    /// Training curves from a `sam3lab train` loss.csv.
    TrainCurves,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let written = if let Some(data) = &args.data {
        if args.kind.is_some() {
            anyhow::bail!("--kind applies to --from; --data renders every published figure");
        }
        suite::render_published(data, &args.out)?
    } else {
        let from = args.from.as_ref().expect("clap requires --data or --from");
        let kind = match args.kind.expect("clap requires --kind with --from") {
            KindArg::Heatmap => Kind::Heatmap,
            KindArg::Fig11 => Kind::Fig11,
            KindArg::Fig61 => Kind::Fig61,
            KindArg::Fig62 => Kind::Fig62,
            KindArg::Fig81 => Kind::Fig81,
            KindArg::TrainCurves => Kind::TrainCurves,
        };
        let opts = LiveOptions {
            name: args.name,
            point: args.point,
            group: args.group,
            run: args.run,
            references: args.references,
            neg_correct: args.neg_correct,
            fit: args.fit,
            off_trend: args.off_trend,
            title: args.title,
        };
        vec![suite::render_from_file(kind, from, &opts, &args.out)?]
    };
    for w in &written {
        println!(
            "{}  {}  {}",
            w.png.display(),
            w.svg.display(),
            w.json.display()
        );
    }
    eprintln!(
        "wrote {} figure(s) to {}",
        written.len(),
        args.out.display()
    );
    Ok(0)
}
