//! `sam3lab surgery`: α-interpolate named attention heads of INTO toward DONOR and write a complete
//! safetensors checkpoint plus a JSON manifest of what changed. The work lives in `sam3lab-surgery`.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use crate::progress::Bar;
use sam3lab_surgery::{HeadCounts, SurgeryRequest, manifest_path, surgery};

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint to modify (.safetensors or .pt); the output keeps its keys, prefix and dtypes.
    #[arg(long)]
    into: PathBuf,
    /// Checkpoint the head weights come from.
    #[arg(long)]
    donor: PathBuf,
    /// Heads by hook name, comma-separated or repeated, e.g. decoder.layers.4.ca_text.head.0
    /// (forms: trunk.blocks.I.attn.head.H, text.blocks.I.attn.head.H,
    /// {geometry,fusion}.layers.I.{self_attn,cross_attn}.head.H,
    /// decoder.layers.I.{self_attn,ca_text,ca_image}.head.H, seg.prompt_cross_attn.head.H).
    #[arg(long, value_delimiter = ',', required = true)]
    heads: Vec<String>,
    /// Weight of the donor: each head slice becomes (1 − α)·INTO + α·DONOR (0 = INTO, 1 = DONOR).
    #[arg(long, allow_hyphen_values = true)]
    alpha: f64,
    /// Output checkpoint (safetensors).
    #[arg(long, value_name = "FILE.safetensors")]
    out: PathBuf,
    /// Model config (e.g. a fixture config.json) giving heads per module; default: SAM3's.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Manifest path (default: OUT with its extension replaced by .manifest.json).
    #[arg(long)]
    manifest: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    super::check_out_file("--out", &a.out)?;
    if let Some(m) = &a.manifest {
        super::check_out_file("--manifest", m)?;
    }
    let counts = match &a.config {
        Some(p) => HeadCounts::from_config(p)?,
        None => HeadCounts::default(),
    };
    let pb = Bar(ProgressBar::new(0));
    pb.set_style(
        ProgressStyle::with_template(
            "writing [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let req = SurgeryRequest {
        into: &a.into,
        donor: &a.donor,
        heads: &a.heads,
        alpha: a.alpha,
        counts,
        config: a.config.as_deref(),
        out: &a.out,
    };
    let m = surgery(&req, &pb)?;
    pb.finish_and_clear();
    let mpath = a.manifest.clone().unwrap_or_else(|| manifest_path(&a.out));
    sam3lab_weights::write_json(&mpath, &m)?;
    for h in &m.heads {
        let norms: Vec<String> = h
            .slices
            .iter()
            .map(|s| format!("{:.4}", s.delta_norm))
            .collect();
        println!(
            "{:<40} {} heads × {} dims   ‖Δ‖ q/k/v rows, bias, out cols: {}",
            h.head,
            h.num_heads,
            h.head_dim,
            norms.join(", ")
        );
    }
    println!(
        "α = {}: {} elements in {} tensors set to (1 − α)·INTO + α·DONOR; the other {} of {} tensors copied unchanged",
        m.alpha,
        m.elements_rewritten,
        m.tensors_touched.len(),
        m.tensors_total - m.tensors_touched.len(),
        m.tensors_total
    );
    println!(
        "→ {} (sha256 {})\n→ {}",
        m.output.path,
        m.output.sha256,
        mpath.display()
    );
    Ok(0)
}
