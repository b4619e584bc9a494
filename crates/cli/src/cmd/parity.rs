//! `sam3lab parity --fixture DIR [--json FILE]`: compare the model with a reference fixture key by
//! key (see `sam3lab_model::parity`); a training fixture (its `config.json` has `loss` and
//! `train_mode`) is replayed as one training step instead (`sam3lab_train::parity`: outputs,
//! matching, loss terms, gradients, AdamW, presence-only). Exit 0 when every compared key is within
//! tolerance, 1 when any is not, 2 on unusable input.

use std::path::PathBuf;

use sam3lab_model::device::device_from_name;
use sam3lab_model::parity::run_parity;

#[derive(clap::Args)]
pub struct Args {
    /// Fixture directory (config.json, weights/inputs/expected .safetensors).
    #[arg(long)]
    fixture: PathBuf,
    /// Also write the table as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Device: cpu (flex), wgpu, cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print only the summary and the failing keys.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    if let Some(j) = &args.json {
        super::check_out_file("--json", j)?;
    }
    let device = device_from_name(&args.device)?;
    let report = if sam3lab_train::parity::is_train_fixture(&args.fixture) {
        sam3lab_train::parity::run_train_parity(&args.fixture, &device)?
    } else {
        run_parity(&args.fixture, &device)?
    };
    if args.quiet {
        let mut r = report.clone();
        r.rows.retain(|row| row.status == sam3lab_model::parity::Status::Fail);
        print!("{}", r.table());
    } else {
        print!("{}", report.table());
    }
    if let Some(p) = &args.json {
        report.write_json(p)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(if report.all_compared_pass() { 0 } else { 1 })
}
