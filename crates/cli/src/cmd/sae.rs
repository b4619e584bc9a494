//! `sam3lab sae`: train sparse autoencoders on cached activations, evaluate them per checkpoint,
//! and rank their features by the change in negative-vs-positive firing between two checkpoints.
//! The logic lives in `sam3lab-sae`; this file parses arguments and reports.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use sam3lab_sae::{Sparsity, TrainConfig, evaluate_sets, load_sets, rank, read_pairs, train_and_save};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train an SAE (ReLU + L1 or TopK) on one or more activation sources.
    Train(TrainArgs),
    /// Metrics (MSE, explained variance, L0, dead features) of an SAE on each checkpoint's activations.
    Eval(EvalArgs),
    /// Fire rates on negatives/positives per checkpoint; features ranked by their change between two checkpoints.
    Rank(RankArgs),
    /// Write planted-feature caches (sparse sums of known directions) to test an SAE configuration on.
    Synth(SynthArgs),
    /// Best decoder-feature cosine for each known direction (e.g. the planted ones of `sae synth`).
    Match(MatchArgs),
    /// Write an SAE in another tool's format: `--format saelens` → cfg.json + sae_weights.safetensors
    /// (SAELens 6.x, `SAE.load_from_disk(OUT)`).
    Export(ExportArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// SAELens 6.x: cfg.json + sae_weights.safetensors.
    Saelens,
}

#[derive(clap::Args)]
struct ExportArgs {
    /// SAE directory (sae.safetensors + sae.json, from `sae train`).
    #[arg(long)]
    sae: PathBuf,
    /// Target format.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct SynthArgs {
    /// Width of each activation row (the hook point's feature size, e.g. 256).
    #[arg(long)]
    d: usize,
    /// Number of planted directions.
    #[arg(long)]
    features: usize,
    /// Number of rows in all.
    #[arg(long)]
    rows: usize,
    /// Rows per cache file under OUT/acts/.
    #[arg(long, default_value_t = 4096)]
    rows_per_file: usize,
    /// Mean number of active directions per row.
    #[arg(long, default_value_t = 4.0)]
    active: f64,
    /// Standard deviation of the Gaussian noise added to every coordinate.
    #[arg(long, default_value_t = 0.01)]
    noise: f64,
    /// Seed of the directions, the coefficients and the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Hook point name to store the rows under.
    #[arg(long, default_value = "decoder.layers.5.q0")]
    point: String,
    /// Output directory: acts/cNNNN.safetensors + directions.safetensors.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct MatchArgs {
    /// SAE directory (sae.safetensors + sae.json, from `sae train`).
    #[arg(long)]
    sae: PathBuf,
    /// safetensors file with a `directions` tensor (K × d).
    #[arg(long)]
    directions: PathBuf,
    /// Exit 1 unless every direction is matched with at least this cosine.
    #[arg(long)]
    require: Option<f64>,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// `[LABEL=]SOURCE`: a cache file, a directory of caches, or a list file (.jsonl / text). Repeatable.
    #[arg(long, required = true, num_args = 1..)]
    acts: Vec<String>,
    /// Hook point to read (e.g. decoder.layers.5.q0).
    #[arg(long)]
    point: String,
    /// Axis of the point's tensor holding the features (default: the last).
    #[arg(long)]
    feature_axis: Option<usize>,
    /// Number of features m (default: 4 × d, e.g. 1,024 at d = 256).
    #[arg(long)]
    width: Option<usize>,
    /// ReLU + L1 with this coefficient (in normalised units).
    #[arg(long, conflicts_with = "topk", required_unless_present = "topk")]
    l1: Option<f64>,
    /// TopK: keep the K largest pre-activations per row.
    #[arg(long)]
    topk: Option<usize>,
    /// Optimiser steps (Adam).
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Rows per step.
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// Seed of the initialisation and the row sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to train: cpu (default), wgpu[:N] or cuda[:N] (a build with that feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Ramp the L1 coefficient from 0 over this many steps.
    #[arg(long, default_value_t = 0)]
    l1_warmup: usize,
    /// Train on raw activations (default: scale so the mean squared norm is d; folded back at save).
    #[arg(long)]
    no_normalize: bool,
    /// Do not project out the decoder gradient along each direction (renormalisation still happens every step).
    #[arg(long)]
    no_project_grad: bool,
    /// A latent is dead after this many training rows without firing (default: one pass over the rows, at most 10 M).
    #[arg(long)]
    dead_after_rows: Option<usize>,
    /// ReLU + L1: resample dead latents every N steps in the first half of training (default: steps/8; 0 = never).
    #[arg(long, conflicts_with = "topk")]
    resample_every: Option<usize>,
    /// TopK: AuxK's k_aux, the dead latents used to reconstruct the residual (default: d/2 rounded up to a power of two; 0 = no AuxK).
    #[arg(long, conflicts_with = "l1")]
    aux_k: Option<usize>,
    /// TopK: AuxK loss coefficient α (ignored for --l1).
    #[arg(long, default_value_t = sam3lab_sae::train::DEFAULT_AUX_COEFF)]
    aux_coeff: f64,
    /// Steps per logged window (default: steps/100, at least 1).
    #[arg(long)]
    log_every: Option<usize>,
    /// Output directory (sae.safetensors + sae.json).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// SAE directory (sae.safetensors + sae.json, from `sae train`).
    #[arg(long)]
    sae: PathBuf,
    /// `LABEL=SOURCE`, one per checkpoint. Repeatable.
    #[arg(long, required = true, num_args = 1..)]
    acts: Vec<String>,
    /// Hook point (default: the one the SAE was trained on).
    #[arg(long)]
    point: Option<String>,
    /// Axis of the point's tensor holding the features (default: the SAE's).
    #[arg(long)]
    feature_axis: Option<usize>,
    /// Write the metrics JSON here (default: print it).
    #[arg(long, value_name = "FILE.json")]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct RankArgs {
    /// SAE directory (sae.safetensors + sae.json, from `sae train`).
    #[arg(long)]
    sae: PathBuf,
    /// `LABEL=SOURCE`, one per checkpoint. Repeatable.
    #[arg(long, required = true, num_args = 1..)]
    acts: Vec<String>,
    /// Pairs JSONL ({"image","prompt","label"}); caches point into it with `extra.pair`.
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// Checkpoint label the change is measured from (default: the first of exactly two).
    #[arg(long)]
    from: Option<String>,
    /// Checkpoint label the change is measured to (default: the second of exactly two).
    #[arg(long)]
    to: Option<String>,
    /// Hook point (default: the one the SAE was trained on).
    #[arg(long)]
    point: Option<String>,
    /// Axis of the point's tensor holding the features (default: the SAE's).
    #[arg(long)]
    feature_axis: Option<usize>,
    /// How many top features to print.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Output directory (rank.json + rank.csv).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match &args.cmd {
        Cmd::Train(a) => super::check_out_dir("--out", &a.out)?,
        Cmd::Eval(a) => a.out.as_deref().map_or(Ok(()), |o| super::check_out_file("--out", o))?,
        Cmd::Rank(a) => super::check_out_dir("--out", &a.out)?,
        Cmd::Synth(a) => super::check_out_dir("--out", &a.out)?,
        Cmd::Match(_) => {}
        Cmd::Export(a) => super::check_out_dir("--out", &a.out)?,
    }
    match args.cmd {
        Cmd::Train(a) => train(a),
        Cmd::Eval(a) => eval(a),
        Cmd::Rank(a) => rank_cmd(a),
        Cmd::Synth(a) => synth(a),
        Cmd::Match(a) => match_cmd(a),
        Cmd::Export(a) => export(a),
    }
}

fn export(a: ExportArgs) -> anyhow::Result<u8> {
    match a.format {
        ExportFormat::Saelens => {
            sam3lab_sae::io::export_saelens(&a.sae, &a.out)?;
            println!(
                "wrote {}/{} and {} (SAELens 6.x: sae_lens.SAE.load_from_disk(\"{}\"))",
                a.out.display(),
                sam3lab_sae::io::SAELENS_CFG_FILE,
                sam3lab_sae::io::SAELENS_WEIGHTS_FILE,
                a.out.display()
            );
        }
    }
    Ok(0)
}

fn train(a: TrainArgs) -> anyhow::Result<u8> {
    let device = sam3lab_model::device::device_from_name(&a.device)?; // before reading any activation
    let sparsity = match (a.l1, a.topk) {
        (Some(coeff), None) => Sparsity::L1 { coeff },
        (None, Some(k)) => Sparsity::Topk { k },
        _ => anyhow::bail!("give exactly one of --l1 C or --topk K"),
    };
    let sets = load_sets(&a.acts, &a.point, a.feature_axis, false)?;
    let rows: usize = sets.iter().map(|s| s.set.n_rows()).sum();
    let d = sets[0].set.d;
    let mut cfg = TrainConfig::for_input(d, sparsity);
    if let Some(w) = a.width {
        cfg.width = w;
    }
    cfg.dead_after_rows = a.dead_after_rows;
    cfg.resample_every = a.resample_every;
    cfg.aux_k = a.aux_k;
    cfg.aux_coeff = a.aux_coeff;
    cfg.steps = a.steps;
    cfg.lr = a.lr;
    cfg.batch = a.batch;
    cfg.seed = a.seed;
    cfg.device = Some(device);
    cfg.l1_warmup_steps = a.l1_warmup;
    cfg.normalize = !a.no_normalize;
    cfg.project_decoder_grad = !a.no_project_grad;
    cfg.log_every = a.log_every.unwrap_or((a.steps / 100).max(1));

    eprintln!("sae train: {rows} rows of d = {d} at {} from {} source(s); m = {}, {sparsity:?}", a.point, sets.len(), cfg.width);

    let bar = ProgressBar::new(cfg.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {msg}  [{elapsed_precise}<{eta_precise}]")
            .expect("valid template"),
    );
    let t0 = Instant::now();
    let mut train_secs = 0.0;
    let mut progress = |step: usize, loss: f64| {
        bar.set_position(step as u64);
        train_secs = t0.elapsed().as_secs_f64();
        if step % 10 == 0 || step == 1 {
            bar.set_message(format!("loss {loss:.4}"));
        }
    };
    // Training time (to the last step's callback) excludes loading and the final evaluation.
    let meta = train_and_save(&sets, &a.point, a.feature_axis, &cfg, &a.out, &mut progress)
        .with_context(|| format!("training the SAE into {}", a.out.display()))?;
    bar.finish_and_clear();
    let batch = meta.effective_batch.unwrap_or(cfg.batch);
    println!(
        "trained {} steps × {batch} rows in {train_secs:.2} s: {:.0} rows/s (evaluation and save: {:.2} s more)",
        cfg.steps,
        (cfg.steps * batch) as f64 / train_secs.max(1e-9),
        t0.elapsed().as_secs_f64() - train_secs
    );
    if let Some(last) = meta.log.last() {
        println!(
            "last window (normalised units): loss {:.5} recon {:.5} l1 {:.4} l0 {:.2} aux {:.4}; dead latents {:.1} % (not fired on the last {} rows)",
            last.loss,
            last.recon,
            last.l1,
            last.l0,
            last.aux,
            100.0 * last.dead,
            meta.train.as_ref().and_then(|t| t.dead_after_rows).unwrap_or(0)
        );
    }
    let resampled: usize = meta.log.iter().map(|l| l.resampled).sum();
    if resampled > 0 {
        println!("resampled {resampled} dead latents");
    }
    for (label, m) in &meta.metrics {
        println!(
            "{label}: rows {} mse {:.6e} explained_variance {} l0 {:.2} dead {}/{} ({:.1} %)",
            m.rows,
            m.mse,
            m.explained_variance.map(|v| format!("{v:.4}")).unwrap_or("null".into()),
            m.l0,
            m.dead_features,
            meta.width,
            100.0 * m.dead_fraction
        );
    }
    println!("wrote {}/sae.safetensors and sae.json (weights sha256 {})", a.out.display(), meta.weights_sha256);
    Ok(0)
}

fn eval(a: EvalArgs) -> anyhow::Result<u8> {
    let (sae, meta) = sam3lab_sae::io::load(&a.sae, &burn::prelude::Device::flex())?;
    let point = a.point.unwrap_or_else(|| meta.point.clone());
    let sets = load_sets(&a.acts, &point, a.feature_axis.or(meta.feature_axis), true)?;
    let metrics = evaluate_sets(&sae, &sets)?;
    let report = serde_json::json!({
        "tool": "sam3lab sae eval",
        "sam3lab_version": env!("CARGO_PKG_VERSION"),
        "sae": { "dir": a.sae.display().to_string(), "weights_sha256": meta.weights_sha256, "point": point,
                 "d_in": meta.d_in, "width": meta.width, "activation": meta.activation },
        "sources": sets.iter().map(|s| sam3lab_sae::io::SourceRecord::of(s.label.as_deref(), &s.set)).collect::<Vec<_>>(),
        "metrics": metrics,
    });
    let text = format!("{}\n", serde_json::to_string_pretty(&report)?);
    match a.out {
        Some(p) => {
            sam3lab_sae::io::write_atomic(&p, text.as_bytes())?;
            for (label, m) in &metrics {
                println!(
                    "{label}: rows {} mse {:.6e} explained_variance {} l0 {:.2} dead {:.1} %",
                    m.rows,
                    m.mse,
                    m.explained_variance.map(|v| format!("{v:.4}")).unwrap_or("null".into()),
                    m.l0,
                    100.0 * m.dead_fraction
                );
            }
            println!("wrote {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(0)
}

fn rank_cmd(a: RankArgs) -> anyhow::Result<u8> {
    let (sae, meta) = sam3lab_sae::io::load(&a.sae, &burn::prelude::Device::flex())?;
    let point = a.point.unwrap_or_else(|| meta.point.clone());
    let sets = load_sets(&a.acts, &point, a.feature_axis.or(meta.feature_axis), true)?;
    let pairs = match &a.pairs {
        Some(p) => Some(read_pairs(p)?),
        None => None,
    };
    let pairs_arg = a.pairs.as_deref().zip(pairs.as_ref()).map(|(p, (v, sha))| (p, v.as_slice(), sha.as_str()));
    let report = rank(&sae, &meta, &a.sae, &sets, pairs_arg, a.from.as_deref(), a.to.as_deref())?;
    report.write(&a.out)?;
    println!("score = {}", report.score);
    print!("{:>4} {:>7} {:>8}", "rank", "feature", "score");
    for c in &report.checkpoints {
        print!("  {:>22}", format!("{} neg/pos", c.label));
    }
    println!();
    for f in report.features.iter().take(a.top) {
        print!("{:>4} {:>7} {:>8.4}", f.rank, f.feature, f.score);
        for r in &f.rates {
            print!("  {:>22}", format!("{:.3}/{:.3}", r.fire_neg, r.fire_pos));
        }
        println!();
    }
    println!("wrote {0}/rank.json and {0}/rank.csv", a.out.display());
    Ok(0)
}

fn synth(a: SynthArgs) -> anyhow::Result<u8> {
    let cfg = sam3lab_sae::synth::SynthConfig {
        d: a.d,
        features: a.features,
        rows: a.rows,
        rows_per_file: a.rows_per_file,
        active: a.active,
        noise: a.noise,
        seed: a.seed,
    };
    sam3lab_sae::synth::write_planted(&a.out, &a.point, &cfg)?;
    println!(
        "wrote {} rows of d = {} ({} planted directions, ~{} active per row) to {}/acts/ and {}/{}",
        a.rows,
        a.d,
        a.features,
        a.active,
        a.out.display(),
        a.out.display(),
        sam3lab_sae::synth::DIRECTIONS_FILE
    );
    Ok(0)
}

fn match_cmd(a: MatchArgs) -> anyhow::Result<u8> {
    let (sae, _) = sam3lab_sae::io::load(&a.sae, &burn::prelude::Device::flex())?;
    let (dirs, k, d) = sam3lab_sae::synth::read_directions(&a.directions)?;
    let m = sam3lab_sae::synth::match_directions(&sae.to_weights(), &dirs, d)?;
    let mut cos: Vec<f64> = m.iter().map(|x| x.1).collect();
    cos.sort_by(f64::total_cmp);
    let above = |t: f64| cos.iter().filter(|&&c| c > t).count();
    println!(
        "{k} directions: best-match cosine min {:.4} median {:.4} max {:.4}; > 0.9: {}/{k}, > 0.99: {}/{k}",
        cos[0],
        cos[k / 2],
        cos[k - 1],
        above(0.9),
        above(0.99)
    );
    if let Some(r) = a.require {
        let worst = m.iter().enumerate().min_by(|x, y| x.1.1.total_cmp(&y.1.1)).expect("k >= 1");
        if worst.1.1 < r {
            println!("FAIL: direction {} is matched only with cos {:.4} (feature {}) < {r}", worst.0, worst.1.1, worst.1.0);
            return Ok(1);
        }
        println!("ok: every direction matched with cos ≥ {r}");
    }
    Ok(0)
}
