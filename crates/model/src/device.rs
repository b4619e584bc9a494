//! Run-time device selection by name (the model code is the same on every device).

use burn::prelude::Device;

use crate::ModelError;

/// The device names [`device_from_name`] accepts.
pub const DEVICE_NAMES: [&str; 4] = ["cpu", "flex", "wgpu", "cuda"];

/// `"cpu"`/`"flex"` → the flex CPU backend; `"wgpu"` / `"cuda"` → the first GPU, when the crate was
/// built with that cargo feature (otherwise an error saying which feature to enable).
pub fn device_from_name(name: &str) -> Result<Device, ModelError> {
    let unknown = || ModelError::Device(format!("unknown device `{name}` (valid: {})", DEVICE_NAMES.join(", ")));
    match name.to_ascii_lowercase().as_str() {
        "cpu" | "flex" => {
            tune_cpu_allocator();
            Ok(Device::flex())
        }
        "wgpu" => wgpu_device(),
        "cuda" => cuda_device(),
        _ => Err(unknown()),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device, ModelError> {
    Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
}
#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<Device, ModelError> {
    Err(ModelError::Device("device `wgpu` needs a build with `--features wgpu`".into()))
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device, ModelError> {
    Ok(Device::cuda(0))
}
#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device, ModelError> {
    Err(ModelError::Device("device `cuda` needs a build with `--features cuda`".into()))
}

/// Worker threads of the CPU backend: `RAYON_NUM_THREADS` when set, else the available cores.
pub fn cpu_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// Make glibc's malloc keep freed memory for reuse instead of returning every large block to the
/// OS. By default each tensor over 32 MiB is a fresh `mmap`, so every large intermediate of the
/// forward pays its page faults again (measured: an elementwise add over 98 MB took 2.4× longer).
/// With mmap off and no trimming, the heap is reused across layers. Process-wide and idempotent;
/// a no-op off glibc. Called by [`device_from_name`] for the CPU device.
pub fn tune_cpu_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            unsafe extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_MAX: i32 = -4;
            // SAFETY: mallopt only changes allocator parameters; valid at any time.
            unsafe {
                mallopt(M_MMAP_MAX, 0);
                mallopt(M_TRIM_THRESHOLD, i32::MAX);
            }
        });
    }
}

/// Limit the CPU (flex) backend to `n` worker threads. flex parallelises with rayon's global pool,
/// which reads `RAYON_NUM_THREADS` when it is first used, so this must run before any tensor work;
/// it returns false (and changes nothing) when the variable was already set to something else.
pub fn set_cpu_threads(n: usize) -> bool {
    let want = n.max(1).to_string();
    match std::env::var("RAYON_NUM_THREADS") {
        Ok(v) if v == want => true,
        Ok(_) => false,
        Err(_) => {
            // SAFETY: called at start-up, before the program spawns threads (documented contract).
            unsafe { std::env::set_var("RAYON_NUM_THREADS", &want) };
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_or_explain() {
        assert!(device_from_name("cpu").is_ok());
        assert!(device_from_name("FLEX").is_ok());
        let e = device_from_name("tpu").unwrap_err().to_string();
        assert!(e.contains("tpu") && e.contains("cuda"), "{e}");
        #[cfg(not(feature = "cuda"))]
        assert!(device_from_name("cuda").unwrap_err().to_string().contains("--features cuda"));
    }
}
