//! `sam3lab figures`: render the post's figures from its published numbers (`--data`), or one
//! figure from a live probe's JSON (`--from FILE --kind KIND`). Logic lives in `sam3lab-figures`.
//!
//! Every input path a figure shows (its footer, its sidecar's `sources`) is written relative to the
//! run directory — `--root`, by default the deepest directory holding the inputs and `--out` (a
//! `reproduce` run's OUT) — with the file's sha256, so the same figure drawn on two machines, or in
//! two temporary directories, reads the same.

use std::path::{Component, Path, PathBuf};

use anyhow::Context;

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
    /// Directory the figures' source paths are written relative to (default: the deepest directory
    /// holding every input and --out). Inputs outside it are written in full.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

/// `p` made absolute without requiring it to exist: its longest existing prefix canonicalised
/// (symlinks such as /tmp → /private/tmp resolved alike for every path), the rest appended.
fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    let p = std::path::absolute(p).with_context(|| p.display().to_string())?;
    let mut rest = Vec::new();
    let mut cur = p.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(cur) {
            return Ok(rest.iter().rev().fold(c, |acc: PathBuf, part| acc.join(part)));
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                cur = parent;
            }
            _ => return Ok(p),
        }
    }
}

/// The deepest directory holding every path, or `None` when that is only the filesystem root.
fn common_dir(paths: &[PathBuf]) -> Option<PathBuf> {
    let mut common: Vec<Component> = paths.first()?.parent()?.components().collect();
    for p in paths {
        let n = common.iter().zip(p.components()).take_while(|(a, b)| *a == b).count();
        common.truncate(n);
    }
    common.iter().any(|c| matches!(c, Component::Normal(_))).then(|| common.iter().collect())
}

/// The run directory the inputs are shown relative to, and the inputs rewritten relative to it
/// (those outside it stay absolute). The caller makes it the working directory before reading.
fn relative_inputs(root: Option<&Path>, inputs: &[&Path], out: &Path) -> anyhow::Result<Option<(PathBuf, Vec<PathBuf>)>> {
    let abs: Vec<PathBuf> = inputs.iter().map(|p| absolute(p)).collect::<anyhow::Result<_>>()?;
    let root = match root {
        Some(r) => {
            if !r.is_dir() {
                anyhow::bail!("--root {}: not a directory", r.display());
            }
            absolute(r)?
        }
        None => {
            // `--out` counts as a directory: its own path (with a child) so it is never its own parent.
            let mut all = abs.clone();
            all.push(absolute(out)?.join("figure"));
            match common_dir(&all) {
                Some(r) => r,
                None => return Ok(None),
            }
        }
    };
    let rel = abs
        .iter()
        .map(|a| match a.strip_prefix(&root) {
            Ok(r) if r.as_os_str().is_empty() => PathBuf::from("."),
            Ok(r) => r.to_path_buf(),
            Err(_) => a.clone(),
        })
        .collect();
    Ok(Some((root, rel)))
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

pub fn run(mut args: Args) -> anyhow::Result<u8> {
    super::check_out_dir("--out", &args.out)?;
    if let Some(d) = args.data.as_ref().filter(|d| !d.is_dir()) {
        anyhow::bail!("--data {}: not a directory (the post's published tables, e.g. data/post02)", d.display());
    }
    for (flag, f) in [("--from", &args.from), ("--neg-correct", &args.neg_correct)] {
        if let Some(f) = f.as_ref().filter(|f| !f.is_file()) {
            anyhow::bail!("{flag} {}: {}", f.display(), if f.exists() { "not a file" } else { "no such file" });
        }
    }
    let out_given = args.out.clone();
    let cwd = std::env::current_dir().ok().and_then(|c| absolute(&c).ok());
    // Inputs relative to the run directory, read from there: what the figures show is portable.
    let inputs: Vec<&Path> = [&args.data, &args.from, &args.neg_correct].into_iter().flatten().map(PathBuf::as_path).collect();
    let shown_under = relative_inputs(args.root.as_deref(), &inputs, &args.out)?;
    if let Some((root, rel)) = shown_under.as_ref() {
        args.out = absolute(&args.out)?;
        let mut rel = rel.iter().cloned();
        for slot in [&mut args.data, &mut args.from, &mut args.neg_correct].into_iter().filter(|s| s.is_some()) {
            *slot = rel.next();
        }
        std::env::set_current_dir(root).with_context(|| format!("entering the run directory {}", root.display()))?;
    }
    let written = match shown_under.as_ref().filter(|(root, _)| Some(root) != cwd.as_ref()) {
        Some((root, _)) => render(args).with_context(|| format!("in the run directory {} (the paths below are relative to it)", root.display()))?,
        None => render(args)?,
    };
    for w in &written {
        // Paths as the user named --out.
        let show = |p: &Path| out_given.join(p.file_name().unwrap_or_default()).display().to_string();
        println!("{}  {}  {}", show(&w.png), show(&w.svg), show(&w.json));
    }
    eprintln!("wrote {} figure(s) to {}", written.len(), out_given.display());
    Ok(0)
}

fn render(args: Args) -> anyhow::Result<Vec<sam3lab_figures::render::Written>> {
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
    Ok(written)
}
