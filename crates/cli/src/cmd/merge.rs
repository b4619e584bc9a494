//! `sam3lab merge`: put the shards of a split run back together, checking that they come from one
//! run, into exactly what the unsharded run writes: `eval predict --shard K/N` (shard files),
//! `probe drift --shard K/N` (shard directories, or their `drift_shard.json`), `probe capture
//! --shard K/N` (shard directories with `shard.json`) and `probe presence|patch|attrib|heads|steer
//! --shard K/N` (shard directories, or their `PROBE_shard.json`). The kind is read off what the
//! shards hold; every shard must be of the same kind.

use std::path::{Path, PathBuf};

use sam3lab_probes::{attrib, capture, drift, heads, patch, presence, shard};

#[derive(clap::Args)]
#[command(after_help = "Shard kinds, recognised from what each SHARD holds:\n  \
    eval predict --shard      PRED.json files (each with its .meta.json); --out is a file\n  \
    probe drift --shard       directories holding drift_shard.json (or that file)\n  \
    probe capture --shard     directories holding shard.json\n  \
    probe presence|patch|attrib|heads|steer --shard\n                            \
    directories holding PROBE_shard.json (or that file)\n\
The shards must come from one run (same manifest and settings, the same N, every K once); the merged \
output is what the unsharded run writes, byte for byte, each file written atomically.")]
pub struct Args {
    /// The merged output: for `eval predict` shards the COCO results file (its `.meta.json` is
    /// written beside it); for probe shards the output directory.
    #[arg(long, value_name = "FILE|DIR")]
    out: PathBuf,
    /// The shards, in any order: `eval predict` shard files (each with its `.meta.json`), or the
    /// output directories of `probe drift|capture|presence|patch|attrib|heads|steer --shard`.
    #[arg(required = true, value_name = "SHARD")]
    shards: Vec<PathBuf>,
}

/// What kind of shard a path is.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Capture,
    Drift(PathBuf),
    /// A probe with the shared shard format: its name and shard file.
    Probe(String, PathBuf),
}

impl Kind {
    fn name(&self) -> String {
        match self {
            Kind::Capture => "capture".into(),
            Kind::Drift(_) => "drift".into(),
            Kind::Probe(p, _) => p.clone(),
        }
    }

    fn marker(&self) -> String {
        match self {
            Kind::Capture => "shard.json".into(),
            Kind::Drift(_) => "drift_shard.json".into(),
            Kind::Probe(p, _) => shard::file_name(p),
        }
    }
}

/// A drift shard's file, when `p` is one or a directory holding one.
fn drift_shard_file(p: &Path) -> Option<PathBuf> {
    if p.is_dir() {
        let f = p.join("drift_shard.json");
        return f.is_file().then_some(f);
    }
    (p.file_name().is_some_and(|n| n == "drift_shard.json")).then(|| p.to_path_buf())
}

/// The kind of shard `p` is, if any.
fn kind_of(p: &Path) -> anyhow::Result<Option<Kind>> {
    if p.is_dir() && p.join("shard.json").is_file() {
        return Ok(Some(Kind::Capture));
    }
    if let Some(f) = drift_shard_file(p) {
        return Ok(Some(Kind::Drift(f)));
    }
    Ok(shard::find(p)?.map(|(probe, f)| Kind::Probe(probe, f)))
}

/// The shards' kind: `None` when no shard is a probe shard (then they are `eval predict` shard
/// files); an error naming the first shard of another kind, or of none, when only some are.
fn one_kind(shards: &[PathBuf]) -> anyhow::Result<Option<Vec<Kind>>> {
    let kinds = shards.iter().map(|p| kind_of(p)).collect::<anyhow::Result<Vec<_>>>()?;
    let Some(first) = kinds.iter().flatten().next().cloned() else { return Ok(None) };
    for (p, k) in shards.iter().zip(&kinds) {
        match k {
            None => anyhow::bail!("{}: not a {} shard (no {}), but other shards given are", p.display(), first.name(), first.marker()),
            Some(k) if k.name() != first.name() => {
                anyhow::bail!("{}: a {} shard, but other shards given are {} shards", p.display(), k.name(), first.name())
            }
            Some(_) => {}
        }
    }
    Ok(Some(kinds.into_iter().flatten().collect()))
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let Some(kinds) = one_kind(&a.shards)? else {
        if let Some(d) = a.shards.iter().find(|p| p.is_dir()) {
            anyhow::bail!(
                "{}: a directory holding no shard (drift_shard.json, shard.json or PROBE_shard.json); was it written with --shard K/N?",
                d.display()
            );
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
        return Ok(0);
    };
    super::check_out_dir("--out", &a.out)?;
    let n = a.shards.len();
    let files: Vec<PathBuf> = kinds
        .iter()
        .zip(&a.shards)
        .map(|(k, p)| match k {
            Kind::Capture => p.clone(),
            Kind::Drift(f) | Kind::Probe(_, f) => f.clone(),
        })
        .collect();
    let out = &a.out;
    let wrote = |what: &str| println!("merged {n} {} shards → {}/{what}", kinds[0].name(), out.display());
    match &kinds[0] {
        Kind::Capture => {
            let c = capture::merge(&a.shards, out)?;
            println!("merged {n} capture shards: {c} caches → {} (+ manifest.json, LABEL/list.jsonl)", out.display());
        }
        Kind::Drift(_) => {
            let shards = files.iter().map(|f| drift::read_shard(f)).collect::<Result<Vec<_>, _>>()?;
            let r = drift::merge(shards)?;
            drift::write(out, &r)?;
            println!(
                "merged {n} drift shards: {} measurements → {}/drift.json (+ drift_pair_mean.json, drift.csv, drift_prompts.csv, drift_pairs.csv, manifest.json)",
                r.pairs.len(),
                out.display()
            );
        }
        Kind::Probe(probe, _) => match probe.as_str() {
            presence::PROBE => {
                presence::write(out, &presence::merge(&files)?)?;
                wrote("presence.json (+ presence.csv, manifest.json)");
            }
            patch::PROBE => {
                patch::write(out, &patch::merge(&files)?)?;
                wrote("patch.json (+ patch_summary.csv, patch_pairs.csv, patch_heatmap.json, manifest.json)");
            }
            attrib::PROBE => {
                attrib::write(out, &attrib::merge(&files)?)?;
                wrote("attrib.json (+ attrib.csv, attrib_pairs.csv, manifest.json)");
            }
            heads::PROBE => {
                let r = heads::merge(&files)?;
                heads::write(out, &r)?;
                wrote("heads.json (+ heads.csv, heads_pairs.csv, the heatmaps, manifest.json)");
            }
            sam3lab_steering::PROBE => {
                sam3lab_steering::write(out, &sam3lab_steering::merge(&files)?)?;
                wrote("steer.json (+ steer.csv, steer_pairs.csv, steer_heatmap.json, direction.safetensors, manifest.json)");
            }
            other => anyhow::bail!("{}: shards of `probe {other}`, which this build cannot merge", files[0].display()),
        },
    }
    Ok(0)
}
