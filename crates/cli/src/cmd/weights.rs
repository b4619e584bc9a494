//! `sam3lab weights`: weight-space probes (no forward pass) — `diff` (per-tensor and per-group
//! movement, Table 6.1), `cosines` (direction of one parameter's movement, Table 7.1 / Fig. 8.1) and
//! `ls` (a checkpoint's tensors). The work lives in `sam3lab-weights`.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use crate::progress::Bar;
use sam3lab_checkpoint::Checkpoint;
use sam3lab_weights::{Groups, cosines, diff, parse_trajs};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// ‖base‖, ‖Δ‖ and rel_change per tensor; weighted and aggregate rel_change per module group.
    ///
    /// Each OTHER is `PATH` (label = file stem, start = BASE), `LABEL=PATH` (start = BASE) or
    /// `LABEL=FROM:TO` (its own start). One OTHER writes diff.json, tensors.csv and groups.csv into
    /// --out; several write them into --out/LABEL/. Both write table.json and table.csv: groups ×
    /// labels of the weighted mean rel_change (the post's Table 6.1).
    Diff(DiffArgs),
    /// Cosines between several trajectories' deltas of one parameter, and the 2-D projection.
    ///
    /// Writes cosines.json, cosine_table.json and cosines.csv into --out.
    Cosines(CosinesArgs),
    /// List a checkpoint's tensors under their normalised names.
    Ls(LsArgs),
    /// Rewrite a checkpoint (sam3.pt, any .pt or .safetensors) as one .safetensors file that later
    /// commands memory-map: every real tensor under its stored key, dtype and bytes unchanged; the
    /// complex RoPE buffers (recomputed by every loader) are left out and listed in the header.
    /// Written to a temporary name and renamed when complete.
    Convert(ConvertArgs),
}

#[derive(clap::Args)]
struct ConvertArgs {
    /// The checkpoint to read (.pt or .safetensors).
    input: PathBuf,
    /// The .safetensors file to write (replaced if present).
    output: PathBuf,
}

#[derive(clap::Args)]
struct DiffArgs {
    /// Start checkpoint (.safetensors or .pt) of every OTHER without its own FROM.
    base: PathBuf,
    /// `PATH`, `LABEL=PATH` or `LABEL=FROM:TO`; several give the Table 6.1 layout.
    #[arg(required = true, value_name = "OTHER")]
    others: Vec<String>,
    /// JSON object of group name → regex over normalised tensor names (replaces the default groups).
    #[arg(long)]
    groups: Option<PathBuf>,
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct CosinesArgs {
    /// Parameter name, with or without the `detector.` prefix.
    #[arg(long)]
    param: String,
    /// Checkpoint whose value of the parameter is the unit (‖Δ‖ rel base) and the default start.
    #[arg(long)]
    base: PathBuf,
    /// Trajectory `LABEL=FROM:TO` (or `LABEL=TO`, from --base); repeat for each.
    #[arg(long = "traj", required = true, value_name = "LABEL=FROM:TO")]
    trajs: Vec<String>,
    /// Label of the trajectory along x (default: the first).
    #[arg(long)]
    axis: Option<String>,
    /// Label of the trajectory whose component orthogonal to the axis gives y (default: the one
    /// with the largest such component).
    #[arg(long)]
    toward: Option<String>,
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct LsArgs {
    checkpoint: PathBuf,
    /// Also list the tensors the image path skips (tracker, sam2_convs, freqs_cis), with the reason.
    #[arg(long)]
    all: bool,
    /// Print the file's sha256 too.
    #[arg(long)]
    sha256: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match &args.cmd {
        Cmd::Diff(a) => super::check_out_dir("--out", &a.out)?,
        Cmd::Cosines(a) => super::check_out_dir("--out", &a.out)?,
        _ => {}
    }
    match args.cmd {
        Cmd::Diff(a) => run_diff(a),
        Cmd::Cosines(a) => run_cosines(a),
        Cmd::Ls(a) => run_ls(a),
        Cmd::Convert(a) => run_convert(a),
    }
}

fn progress() -> Bar {
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    Bar(pb)
}

fn cell(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |x| format!("{x:.4}"))
}

fn run_diff(a: DiffArgs) -> anyhow::Result<u8> {
    let groups = match &a.groups {
        Some(p) => Groups::from_file(p)?,
        None => Groups::default_sam3(),
    };
    let trajs = parse_trajs(&a.others)?;
    let pb = progress();
    let reports = diff::run(&a.base, &trajs, &groups, &a.out, &pb)?;
    pb.finish_and_clear();
    let t = diff::table(&reports);
    print!("{:<22}", "group");
    for c in &t.cols {
        print!(" {c:>14}");
    }
    println!();
    for (r, row) in t.rows.iter().zip(&t.values) {
        print!("{r:<22}");
        for v in row {
            print!(" {:>14}", cell(*v));
        }
        println!();
    }
    println!(
        "(weighted mean rel_change; {} tensors per pair) → {}",
        reports[0].tensors.len(),
        a.out.display()
    );
    Ok(0)
}

fn run_cosines(a: CosinesArgs) -> anyhow::Result<u8> {
    let trajs = parse_trajs(&a.trajs)?;
    let r = cosines::run(
        &a.param,
        &a.base,
        &trajs,
        a.axis.as_deref(),
        a.toward.as_deref(),
        &a.out,
    )?;
    // `cosines::run` fills every field the report may lack when read from a hand-written file.
    let p = r.projection.as_ref().expect("weights cosines writes the projection");
    let (numel, base_norm) = (r.numel.unwrap_or(0), r.base_norm.unwrap_or(f64::NAN));
    let (ai, ti) = (
        r.trajectories
            .iter()
            .position(|t| t.label == p.axis)
            .unwrap_or(0),
        r.trajectories
            .iter()
            .position(|t| t.label == p.toward)
            .unwrap_or(0),
    );
    println!(
        "{} ({} elements), ‖base‖ = {:.6}",
        r.param, numel, base_norm
    );
    println!(
        "{:<18} {:>10} {:>12} {:>12}   {:>22} → {:<22}",
        "trajectory",
        "‖Δ‖/‖base‖",
        format!("cos {}", p.axis),
        format!("cos {}", p.toward),
        "origin (x, y)",
        "tip (x, y)"
    );
    for (k, (t, pt)) in r.trajectories.iter().zip(&p.points).enumerate() {
        println!(
            "{:<18} {:>10} {:>12} {:>12}   {:>22} → {:<22}",
            t.label,
            cell(t.rel_base),
            cell(r.cosine[k][ai]),
            cell(r.cosine[k][ti]),
            format!("({:.3}, {:.3})", pt.origin[0], pt.origin[1]),
            format!("({:.3}, {:.3})", pt.tip[0], pt.tip[1]),
        );
    }
    println!("→ {}", a.out.display());
    Ok(0)
}

fn run_convert(a: ConvertArgs) -> anyhow::Result<u8> {
    let pb = progress();
    pb.set_message("convert");
    let t0 = std::time::Instant::now();
    let r = sam3lab_checkpoint::convert(&a.input, &a.output, &pb)?;
    pb.finish_and_clear();
    println!(
        "wrote {} ({} tensors, {:.1} MB, sha256 {}) in {:.1} s",
        r.output,
        r.tensors,
        r.bytes as f64 / 1e6,
        r.sha256,
        t0.elapsed().as_secs_f64()
    );
    if !r.dropped.is_empty() {
        println!("left out {} complex tensor(s) (RoPE tables, recomputed on load)", r.dropped.len());
    }
    Ok(0)
}

fn run_ls(a: LsArgs) -> anyhow::Result<u8> {
    let c = Checkpoint::open(&a.checkpoint)?;
    let mut params = 0u64;
    for e in c.all_entries() {
        if e.skipped.is_none() {
            params += e.numel() as u64;
        }
    }
    let mut kept: Vec<_> = c.tensors().collect();
    kept.sort_by(|x, y| x.name.cmp(&y.name));
    for e in kept {
        println!("{}\t{:?}\t{:?}", e.name, e.dtype, e.shape);
    }
    if a.all {
        for e in c.all_entries().iter().filter(|e| e.skipped.is_some()) {
            println!(
                "{}\t{:?}\t{:?}\tskipped: {}",
                e.stored_name,
                e.dtype,
                e.shape,
                e.skipped.unwrap_or("")
            );
        }
    }
    eprintln!(
        "{} tensors, {params} parameters ({:?})",
        c.len(),
        c.format()
    );
    if a.sha256 {
        println!("sha256\t{}", c.sha256()?);
    }
    Ok(0)
}
