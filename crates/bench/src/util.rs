//! Plumbing shared by the `bench` subcommands: thread setup, fixture inputs, medians, the in-run
//! matmul baseline and the process's memory / CPU-time counters.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use sam3lab_model::device::set_cpu_threads;
use sam3lab_model::parity::Fixture;

/// The flags shared by the fixture benchmarks (`bench forward`, `bench backbone`).
pub struct FixtureRun {
    /// Fixture directory whose weights and inputs are run.
    pub fixture: PathBuf,
    /// Timed iterations (after warm-up).
    pub iters: usize,
    pub warmup: usize,
    /// CPU threads.
    pub threads: usize,
}

/// Ask for `threads` CPU threads; warn when `RAYON_NUM_THREADS` already decided otherwise.
pub fn set_threads(threads: usize) {
    if !set_cpu_threads(threads) {
        eprintln!("warning: RAYON_NUM_THREADS is already set to something else; it wins over --threads {threads}");
    }
}

/// The fixture's `pixel_values` and `input_ids` as tensors on `device`.
pub fn fixture_inputs(fx: &Fixture, device: &Device) -> anyhow::Result<(Tensor<4>, Tensor<2, Int>)> {
    let px = fx.input("pixel_values")?;
    let ids = fx.input("input_ids")?;
    let pixels = Tensor::<4>::from_data(TensorData::new(px.data.clone(), px.shape.clone()), device);
    let ids = Tensor::<2, Int>::from_data(
        TensorData::new(ids.data.iter().map(|&v| v as i64).collect::<Vec<_>>(), ids.shape.clone()),
        device,
    );
    Ok((pixels, ids))
}

/// The inputs of the fixture at `dir`.
pub fn load_fixture_inputs(dir: &Path, device: &Device) -> anyhow::Result<(Tensor<4>, Tensor<2, Int>)> {
    fixture_inputs(&Fixture::load(dir)?, device)
}

/// Median (sorts `v` in place); NaN for an empty slice.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// Force completion of pending work (flex is eager; this also covers lazy backends).
pub fn sync<const D: usize>(t: &Tensor<D>) {
    let _ = t.clone().slice([0..1]).into_data();
}

/// GFLOP/s of a 256³ f32 matmul on `device` (median of 20): the in-run machine baseline.
pub fn matmul_gflops(device: &Device) -> f64 {
    let n = 256;
    2.0 * (n * n * n) as f64 / median(&mut matmul_seconds(device, n, 20)) / 1e9
}

/// Seconds of `reps` n×n f32 matmuls on `device`, after one untimed warm-up.
pub fn matmul_seconds(device: &Device, n: usize, reps: usize) -> Vec<f64> {
    let a = Tensor::<2>::ones([n, n], device).mul_scalar(0.5);
    let b = Tensor::<2>::ones([n, n], device).mul_scalar(0.25);
    sync(&a.clone().matmul(b.clone()));
    (0..reps)
        .map(|_| {
            let s = Instant::now();
            sync(&a.clone().matmul(b.clone()));
            s.elapsed().as_secs_f64()
        })
        .collect()
}

/// `(VmHWM, VmRSS)` of this process in bytes (Linux `/proc/self/status`).
pub fn memory() -> (Option<u64>, Option<u64>) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// `"1.23× faster"` or `"1.23× slower"`: a time of ours against the reference's.
pub fn faster_or_slower(ours: f64, reference: f64) -> String {
    if ours <= reference {
        format!("{:.2}× faster", reference / ours)
    } else {
        format!("{:.2}× slower", ours / reference)
    }
}

/// Bytes as GiB; NaN when unknown.
pub fn gib(b: Option<u64>) -> f64 {
    b.map(|b| b as f64 / (1u64 << 30) as f64).unwrap_or(f64::NAN)
}

/// CPU seconds (user + system, all threads) this process has used so far (Linux `/proc/self/stat`,
/// USER_HZ = 100). Compared with wall time it shows how many cores a run really got.
pub fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the `(comm)` part; utime and stime are fields 14 and 15 (1-based).
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Touch every parameter of `module`: burn initialises random parameters lazily, on first use, so
/// without this the first forward of a `Sam3::new` model times the random initialisation too
/// (~4 s of the full-size text stage).
pub fn materialize<M: burn::module::Module>(module: &M) {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            let _ = p.val().slice([0..1]).into_data();
        }
    }
    module.visit(&mut Touch);
}

/// A deterministic pseudo-random 3×`s`×`s` image in [-1, 1) (sam3lab's seeded stream, so the bytes do
/// not depend on burn's RNG).
pub fn random_image(seed: u64, s: usize) -> Vec<f32> {
    let mut rng = sam3lab_util::rng::Rng::new(seed);
    (0..3 * s * s).map(|_| rng.range(-1.0, 1.0) as f32).collect()
}

/// `phrase` tokenized with the CLIP vocabulary to a 1×`context` id tensor.
pub fn prompt_ids(phrase: &str, context: usize, device: &Device) -> anyhow::Result<Tensor<2, Int>> {
    let (ids, _) = sam3lab_model::predict::tokenize(sam3lab_model::tokenizer::Tokenizer::clip(), phrase, context)?;
    Ok(Tensor::<2, Int>::from_data(TensorData::new(ids.iter().map(|&v| v as i64).collect::<Vec<_>>(), [1, context]), device))
}
