//! `sam3lab bench weights-diff`: the streaming checkpoint diff vs the straightforward way.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;


use serde::{Deserialize, Serialize};

use crate::util::cpu_seconds;

pub struct WeightsDiffArgs {
    /// Where the two checkpoints are generated (reused when present with the right layout).
    pub dir: PathBuf,
    /// Parameters per checkpoint (SAM3's tensor shapes, cut to this count).
    pub params: u64,
    /// Delete the generated checkpoints at the end.
    pub cleanup: bool,
    /// Internal: run one method in this process and print its measurements as JSON.
    pub child: Option<DiffMethod>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum DiffMethod {
    /// Read both files whole into Vec<f32>, loop tensors on one thread, f64 sums.
    Naive,
    /// `weights diff`'s engine: mmap, chunked threads, pages released, sha256 of both files.
    Streaming,
    /// The same without the sha256 (to show what the identity costs).
    StreamingNoHash,
}

#[derive(Serialize, Deserialize)]
struct ChildReport {
    method: DiffMethod,
    seconds: Vec<f64>,
    /// CPU seconds (user + system, all threads) of each run: with other work on the machine,
    /// wall time varies, the CPU cost does not.
    cpu_seconds: Vec<f64>,
    peak_rss: u64,
    names: Vec<String>,
    rel: Vec<f64>,
}

/// Generate (or reuse) the two checkpoints, then run each method in its own child process (so
/// each peak resident size is its own), twice, reporting the second (page-cache-warm) run.
pub fn run(a: WeightsDiffArgs, ui: &dyn crate::Ui) -> anyhow::Result<u8> {
    use sam3lab_weights::synth;
    let base = a.dir.join("base.safetensors");
    let other = a.dir.join("other.safetensors");
    if let Some(m) = a.child {
        let r = measure(m, &base, &other)?;
        println!("{}", serde_json::to_string(&r)?);
        return Ok(0);
    }
    let layout = synth::layout_with_params(a.params);
    let size = synth::file_size(&layout)?;
    std::fs::create_dir_all(&a.dir)?;
    let fresh_base = !synth::matches_layout(&base, &layout)?;
    if fresh_base {
        eprintln!("generating {} ({:.2} GB)", base.display(), size as f64 / 1e9);
        let pb = ui.bar(0);
        synth::write_base(&base, &layout, 1, pb.as_ref())?;
        pb.finish();
    }
    if fresh_base || !synth::matches_layout(&other, &layout)? {
        eprintln!("generating {} (base + uniform noise ±5e-4, about 1 % of the weights' scale)", other.display());
        let pb = ui.bar(0);
        synth::write_perturbed(&other, &base, 5e-4, 2, pb.as_ref())?;
        pb.finish();
    }
    let bytes = 2 * size;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "weights-diff: 2 × {:.3} GB ({} f32 params, {} tensors each); each method runs twice in its own \
         process, the second (page-cache-warm) run is reported; {threads} threads available",
        size as f64 / 1e9,
        a.params,
        layout.len()
    );
    let exe = std::env::current_exe()?;
    let mut reports = Vec::new();
    for m in [DiffMethod::Naive, DiffMethod::Streaming, DiffMethod::StreamingNoHash] {
        let name = serde_json::to_value(m)?.as_str().unwrap_or_default().to_string();
        let out = Command::new(&exe)
            .args(["bench", "weights-diff", "--dir"])
            .arg(&a.dir)
            .args(["--params", &a.params.to_string(), "--child", &name])
            .output()?;
        if !out.status.success() {
            anyhow::bail!("{name} run failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let r: ChildReport = serde_json::from_slice(&out.stdout)?;
        let t = *r.seconds.last().expect("two runs");
        println!(
            "  {:<18} run 1 {:>6.2} s, run 2 {:>6.2} s = {:>5.2} GB/s (CPU {:>5.2} s)   peak resident {:>6.3} GB",
            name,
            r.seconds[0],
            t,
            bytes as f64 / t / 1e9,
            r.cpu_seconds.last().copied().unwrap_or(f64::NAN),
            r.peak_rss as f64 / 1e9
        );
        reports.push(r);
    }
    let speed = |i: usize| bytes as f64 / reports[i].seconds.last().expect("runs") / 1e9;
    println!(
        "  streaming / naive: {:.2}× faster (incl. sha256; {:.2}× without); peak resident {:.1}% of one file \
         (naive {:.0}%)",
        speed(1) / speed(0),
        speed(2) / speed(0),
        100.0 * reports[1].peak_rss as f64 / size as f64,
        100.0 * reports[0].peak_rss as f64 / size as f64
    );
    // Both methods must agree on every tensor's rel_change (a second method, not a timing check).
    let worst = reports[0]
        .rel
        .iter()
        .zip(&reports[1].rel)
        .map(|(x, y)| (x - y).abs() / x.abs().max(1e-30))
        .fold(0f64, f64::max);
    let same_names = reports[0].names == reports[1].names;
    println!(
        "  agreement: {} tensors, max relative difference in rel_change {:.2e}{}",
        reports[0].rel.len(),
        worst,
        if same_names { "" } else { " (TENSOR LISTS DIFFER)" }
    );
    println!(
        "  target ≥ 1.8 GB/s with resident memory far below the file size: {}",
        if speed(1) >= 1.8 && reports[1].peak_rss * 4 < size { "met" } else { "NOT met" }
    );
    if a.cleanup {
        std::fs::remove_file(&base)?;
        std::fs::remove_file(&other)?;
        let _ = std::fs::remove_dir(&a.dir);
    }
    Ok(if same_names && worst < 1e-4 { 0 } else { 1 })
}

fn measure(m: DiffMethod, base: &Path, other: &Path) -> anyhow::Result<ChildReport> {
    use sam3lab_weights::diff::{rel_change, tensor_sums, tensor_sums_unhashed};
    use sam3lab_checkpoint::Checkpoint;
    use sam3lab_weights::{TensorSums, bench::naive_diff};
    let once = || -> anyhow::Result<Vec<TensorSums>> {
        Ok(match m {
            DiffMethod::Naive => naive_diff(base, other)?,
            DiffMethod::Streaming | DiffMethod::StreamingNoHash => {
                let (b, o) = (Checkpoint::open(base)?, Checkpoint::open(other)?);
                let pb = sam3lab_util::progress::NoProgress;
                if m == DiffMethod::Streaming {
                    let s = tensor_sums(&b, &o, &pb)?;
                    // The identity the result files carry (computed in the same pass).
                    std::hint::black_box((sam3lab_weights::checkpoint_id(&b)?, sam3lab_weights::checkpoint_id(&o)?));
                    s
                } else {
                    tensor_sums_unhashed(&b, &o, &pb)?
                }
            }
        })
    };
    let mut seconds = Vec::new();
    let mut cpu_seconds = Vec::new();
    let mut sums = Vec::new();
    for _ in 0..2 {
        let (t, c) = (Instant::now(), cpu_time());
        sums = once()?;
        seconds.push(t.elapsed().as_secs_f64());
        cpu_seconds.push(cpu_time() - c);
    }
    Ok(ChildReport {
        method: m,
        seconds,
        cpu_seconds,
        peak_rss: sam3lab_weights::bench::peak_rss_bytes().unwrap_or(0),
        names: sums.iter().map(|s| s.name.clone()).collect(),
        rel: sums.iter().map(|s| rel_change(s.base_sq, s.delta_sq).unwrap_or(f64::NAN)).collect(),
    })
}

/// User + system CPU seconds of this process so far; NaN where `/proc/self/stat` is unreadable.
fn cpu_time() -> f64 {
    cpu_seconds().unwrap_or(f64::NAN)
}
