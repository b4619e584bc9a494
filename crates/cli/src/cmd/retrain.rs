//! `sam3lab retrain`: retrain the tensors named by `--train` globs (original checkpoint names) with
//! BCE on the presence logit over balanced positive/negative pairs, everything else frozen (the
//! post's §5 "presence_only"). Writes a complete safetensors checkpoint that differs from the input
//! only in the trained tensors, `OUT.manifest.json` (manifest, trained tensors, the Table 5.1
//! trajectory) and `OUT.trajectory.csv`. The work lives with the training engine, in
//! `sam3lab_train::retrain`.

use std::path::PathBuf;

use sam3lab_probes::inputs;
use sam3lab_train::retrain;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint to start from (file or fixture directory).
    #[arg(long)]
    ckpt: PathBuf,
    /// Globs over original parameter names (`*` spans dots), comma-separated or repeated, e.g.
    /// 'transformer.decoder.presence_token*'. Optional with --cached (default: the presence head).
    #[arg(long, value_delimiter = ',')]
    train: Vec<String>,
    /// JSONL pair file {"image", "prompt", "label": "pos"|"neg"}.
    #[arg(long)]
    pairs: PathBuf,
    /// Optimiser steps (Adam, torch's defaults).
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Weight of the positive term of the BCE (torch pos_weight).
    #[arg(long, default_value_t = 1.0)]
    pos_weight: f64,
    /// Pairs per step, half positives and half negatives.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Capture decoder.layers.{last}.q0 once and train only presence_token_out_norm +
    /// presence_token_head on it (the presence token and everything upstream frozen).
    #[arg(long)]
    cached: bool,
    /// Seed of the pair sampling (the same seed gives the same bytes).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Trajectory rows every N steps (plus step 0 and the last); default steps/20.
    #[arg(long)]
    log_every: Option<usize>,
    /// Full mode: keep at most this many images' encoder features in memory; the others are computed
    /// once too and spilled to a temporary directory next to --out (deleted at the end).
    #[arg(long, default_value_t = 256)]
    max_cached_images: usize,
    /// Model config JSON (default: a fixture directory's config.json, else SAM3's).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Device: cpu (flex), wgpu, cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Output checkpoint (.safetensors); the manifest and trajectory are written next to it.
    #[arg(long, value_name = "FILE.safetensors")]
    out: PathBuf,
    /// Also write the checkpoint after these steps (comma-separated, each < --steps) as
    /// step_NNNNNN.safetensors in --out's directory: a trajectory of checkpoints (Table 5.1).
    #[arg(long, value_delimiter = ',', value_name = "STEP,…")]
    save_at: Vec<usize>,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    super::check_out_file("--out", &a.out)?;
    let req = retrain::RetrainRequest {
        ckpt: a.ckpt.clone(),
        config: a.config.clone(),
        train: a.train.clone(),
        pairs: inputs::read_pairs(&a.pairs)?,
        steps: a.steps,
        lr: a.lr,
        pos_weight: a.pos_weight,
        batch: a.batch,
        cached: a.cached,
        seed: a.seed,
        log_every: a.log_every.unwrap_or((a.steps / 20).max(1)),
        max_cached_images: a.max_cached_images,
        out: a.out.clone(),
        save_at: a.save_at.clone(),
        device: sam3lab_model::device::device_from_name(&a.device)?,
    };
    let pb = super::probe::bar("retrain");
    let (r, t) = retrain::run(&req, &pb)?;
    pb.finish_and_clear();
    println!("{} mode: {} tensors, {} parameters trained", r.mode, r.trained.len(), r.trained_params);
    for tt in &r.trained {
        println!("  {:<60} {:?}  ‖Δ‖ = {:.6}", tt.name, tt.shape, tt.delta_norm);
    }
    if !r.frozen_by_cached_mode.is_empty() {
        println!("  kept frozen by --cached: {}", r.frozen_by_cached_mode.join(", "));
    }
    println!("{:>6} {:>10} {:>10} {:>9} {:>9}", "step", "pos pres_σ", "neg pres_σ", "pos BCE", "neg BCE");
    for row in &r.trajectory {
        println!("{:>6} {:>10.3} {:>10.3} {:>9.3} {:>9.3}", row.step, row.pos_sigma, row.neg_sigma, row.pos_bce, row.neg_bce);
    }
    eprintln!(
        "time: {:.2} s preparing (load + {}), {:.2} s training ({} steps), {:.2} s writing",
        t.prepare_s,
        if req.cached { "q0 capture" } else { "features + step-0 evaluation" },
        t.train_s,
        req.steps,
        t.write_s
    );
    if !req.cached {
        eprintln!(
            "image features: {} trunk + neck run(s); {} image(s) spilled to disk ({:.1} MB, deleted)",
            t.image_encodes,
            t.spilled_images,
            t.spilled_bytes as f64 / 1e6
        );
    }
    println!(
        "wrote {} (sha256 {}), {}, {}",
        a.out.display(),
        r.output.sha256,
        retrain::manifest_path(&a.out).display(),
        retrain::trajectory_path(&a.out).display()
    );
    Ok(0)
}
