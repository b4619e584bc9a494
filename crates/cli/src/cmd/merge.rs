//! `sam3lab merge`: put the shards of a split run back together, checking that they come from one
//! run, into exactly what the unsharded run writes: `eval predict --shard K/N` (shard files),
//! `probe drift --shard K/N` (shard directories, or their `drift_shard.json`) and `probe capture
//! --shard K/N` (shard directories with `shard.json`).

use std::path::{Path, PathBuf};

use sam3lab_probes::{capture, drift};

#[derive(clap::Args)]
pub struct Args {
    /// The merged output: for `eval predict` shards the COCO results file (its `.meta.json` is
    /// written beside it); for `probe drift` and `probe capture` shards the output directory.
    #[arg(long, value_name = "FILE|DIR")]
    out: PathBuf,
    /// The shards, in any order: `eval predict` shard files (each with its `.meta.json`), or
    /// `probe drift --shard` / `probe capture --shard` output directories.
    #[arg(required = true, value_name = "SHARD")]
    shards: Vec<PathBuf>,
}

/// A drift shard's file, when `p` is one or a directory holding one.
fn drift_shard_file(p: &Path) -> Option<PathBuf> {
    if p.is_dir() {
        let f = p.join("drift_shard.json");
        return f.is_file().then_some(f);
    }
    (p.file_name().is_some_and(|n| n == "drift_shard.json")).then(|| p.to_path_buf())
}

/// The shards' files of one kind (`find` gives a shard's file, if it is of that kind): `None` when
/// no shard is of it, an error naming the first that is not when only some are.
fn all_of_kind(shards: &[PathBuf], kind: &str, marker: &str, find: impl Fn(&Path) -> Option<PathBuf>) -> anyhow::Result<Option<Vec<PathBuf>>> {
    let files: Vec<Option<PathBuf>> = shards.iter().map(|p| find(p)).collect();
    if files.iter().all(Option::is_none) {
        return Ok(None);
    }
    if let Some(i) = files.iter().position(Option::is_none) {
        anyhow::bail!("{}: not a {kind} shard (no {marker}), but other shards given are", shards[i].display());
    }
    Ok(Some(files.into_iter().flatten().collect()))
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let capture_shard = |p: &Path| p.join("shard.json").is_file().then(|| p.to_path_buf());
    if all_of_kind(&a.shards, "capture", "shard.json", capture_shard)?.is_some() {
        super::check_out_dir("--out", &a.out)?;
        let n = capture::merge(&a.shards, &a.out)?;
        println!("merged {} capture shards: {n} caches → {} (+ manifest.json, LABEL/list.jsonl)", a.shards.len(), a.out.display());
        return Ok(0);
    }
    if let Some(drift_files) = all_of_kind(&a.shards, "drift", "drift_shard.json", drift_shard_file)? {
        super::check_out_dir("--out", &a.out)?;
        let shards = drift_files.iter().map(|f| drift::read_shard(f)).collect::<Result<Vec<_>, _>>()?;
        let n = shards.len();
        let r = drift::merge(shards)?;
        std::fs::create_dir_all(&a.out).map_err(|e| anyhow::anyhow!("--out {}: {e}", a.out.display()))?;
        drift::write(&a.out, &r)?;
        println!(
            "merged {n} drift shards: {} measurements → {}/drift.json (+ drift_pair_mean.json, drift.csv, drift_prompts.csv, drift_pairs.csv, manifest.json)",
            r.pairs.len(),
            a.out.display()
        );
        return Ok(0);
    }
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
