//! `sam3lab train --recipe RECIPE.toml --out DIR`: SAM3's own fine-tuning (Meta's matchers and loss)
//! with a recipe's streams, freezing, parameter groups, AdamW, schedule and step checkpoints; resumes
//! from the newest checkpoint in DIR. The work lives in `sam3lab_train::engine`; the recipe format is
//! in docs/train.md.

use std::path::PathBuf;

use sam3lab_model::device::device_from_name;

#[derive(clap::Args)]
pub struct Args {
    /// Recipe file (TOML; see docs/train.md and recipes/).
    #[arg(long)]
    recipe: PathBuf,
    /// Output directory: step_N.safetensors + step_N.json per checkpoint, loss.csv, optimiser state.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Device: cpu (flex), wgpu, cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    super::check_out_dir("--out", &a.out)?;
    let device = device_from_name(&a.device)?;
    let pb = crate::progress::Bar(indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps {msg}")
            .expect("template")
            .progress_chars("=> "),
    ));
    let s = sam3lab_train::engine::run(&a.recipe, &a.out, &device, &pb)?;
    pb.finish_and_clear();
    if let Some(step) = s.resumed_from {
        eprintln!("resumed from step {step}");
    }
    for c in &s.checkpoints {
        eprintln!("wrote {}", c.display());
    }
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(0)
}
