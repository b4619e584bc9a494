//! `sam3lab hooks list [--fixture DIR | --config FILE] [--filter PATTERN]… [--json]`: every hook point
//! of a model config with its shape (batch 1, text-only prompt) and what it is. Default config: the
//! released SAM3 (`Sam3Config::sam3()`). Only the registry is built — no model is allocated, so the
//! full-size listing is instant. A `--filter` pattern that matches nothing exits 2 with the nearest
//! valid names.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sam3lab_model::hooks::{HookInfo, HookPattern};
use sam3lab_model::{Sam3Config, hook_registry};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: HooksCmd,
}

#[derive(clap::Subcommand)]
enum HooksCmd {
    /// Print every hook point with its shape for a config.
    List(ListArgs),
}

#[derive(clap::Args)]
struct ListArgs {
    /// Fixture directory: use its config.json.
    #[arg(long, conflicts_with = "config")]
    fixture: Option<PathBuf>,
    /// Model config JSON (a bare config or a fixture config.json). Default: the released SAM3.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Only points matching one of these patterns (`*`, `**`, `a..b`, `{x,y}`), e.g. `decoder.layers.5.*`.
    #[arg(long = "filter", value_name = "PATTERN")]
    filters: Vec<String>,
    /// JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    match args.cmd {
        HooksCmd::List(a) => list(a),
    }
}

/// The config and a description of where it came from.
fn config(fixture: Option<&Path>, config: Option<&Path>) -> anyhow::Result<(Sam3Config, String)> {
    let (cfg, source) = match (fixture, config) {
        (Some(dir), _) => {
            let p = dir.join("config.json");
            if !p.is_file() {
                bail!("--fixture {}: no config.json in that directory", dir.display());
            }
            (Sam3Config::from_file(&p)?, p.display().to_string())
        }
        (None, Some(p)) => (Sam3Config::from_file(p)?, p.display().to_string()),
        (None, None) => (Sam3Config::sam3(), "Sam3Config::sam3() (the released SAM3)".to_string()),
    };
    sam3lab_model::backbone::check_supported(&cfg).map_err(|why| anyhow::anyhow!("config {source}: {why}"))?;
    Ok((cfg, source))
}

fn list(a: ListArgs) -> anyhow::Result<u8> {
    let (cfg, source) = config(a.fixture.as_deref(), a.config.as_deref())?;
    let reg = hook_registry(&cfg);
    let patterns: Vec<HookPattern> =
        a.filters.iter().map(|f| f.parse().with_context(|| format!("--filter `{f}`"))).collect::<anyhow::Result<_>>()?;
    for p in &patterns {
        reg.expand(p).with_context(|| format!("--filter `{p}`"))?;
    }
    let points: Vec<&HookInfo> = reg
        .points
        .iter()
        .filter(|p| patterns.is_empty() || patterns.iter().any(|f| f.matches(p.name.as_str())))
        .collect();
    let bytes: usize = points.iter().map(|p| 4 * p.shape.iter().product::<usize>()).sum();
    if a.json {
        let v = json!({
            "config_source": source,
            "config": cfg,
            "filters": a.filters,
            "count": points.len(),
            "capture_bytes_f32": bytes,
            "points": points,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let shape = |p: &HookInfo| format!("{:?}", p.shape);
    let wn = points.iter().map(|p| p.name.as_str().len()).max().unwrap_or(4).max(4);
    let ws = points.iter().map(|p| shape(p).len()).max().unwrap_or(5).max(5);
    println!("# hook points of {source}: shapes at batch 1 with a text-only prompt (prompt axes grow by 1 per box)");
    println!("{:<wn$}  {:<ws$}  what", "name", "shape");
    for p in &points {
        println!("{:<wn$}  {:<ws$}  {}", p.name.as_str(), shape(p), p.doc);
    }
    let size = if bytes < 1 << 20 { format!("{:.1} KiB", bytes as f64 / 1024.0) } else { format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64) };
    println!("# {} points; capturing all of them holds {size} (f32, batch 1)", points.len());
    Ok(0)
}
