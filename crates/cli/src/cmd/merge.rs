//! `sam3lab merge`: put the shards of a split run back together (`eval predict --shard K/N` today),
//! checking that they come from one run, into exactly what the unsharded run writes.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The merged output (for `eval predict` shards: the COCO results file; its `.meta.json` is
    /// written beside it).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The shard files, in any order (each with its `.meta.json`).
    #[arg(required = true, value_name = "SHARD")]
    shards: Vec<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    super::check_out_file("--out", &a.out)?;
    let m = sam3lab_eval::shard::merge(&a.shards, &a.out)?;
    println!(
        "merged {} shards: {} entries, {} predictions → {} (+ {})",
        m.shards,
        m.entries,
        m.predictions,
        a.out.display(),
        sam3lab_eval::predict::meta_path(&a.out).display()
    );
    Ok(0)
}
