//! Run-time device selection by name (the model code is the same on every device).

use burn::prelude::Device;

use crate::ModelError;

/// The device names [`device_from_name`] accepts (`:N` picks GPU N).
pub const DEVICE_NAMES: [&str; 4] = ["cpu", "flex", "wgpu[:N]", "cuda[:N]"];

/// The GPU backends this build has (its cargo features).
pub fn built_gpu_backends() -> Vec<&'static str> {
    let mut v = vec![];
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    v
}

/// `cpu`/`flex` → the flex CPU backend; `wgpu[:N]` / `cuda[:N]` → GPU N (default 0; for wgpu the
/// N-th discrete GPU), when the crate was built with that cargo feature — otherwise an error that
/// says so and lists what this build has, never "unknown device".
pub fn device_from_name(name: &str) -> Result<Device, ModelError> {
    let lower = name.to_ascii_lowercase();
    let (kind, index) = match lower.split_once(':') {
        Some((k, i)) => {
            let n = i.parse::<usize>().map_err(|_| {
                ModelError::Device(format!("`{name}`: `{i}` is not a GPU index (e.g. `{k}:0`, `{k}:1`)"))
            })?;
            (k, Some(n))
        }
        None => (lower.as_str(), None),
    };
    let has = || {
        let b = built_gpu_backends();
        if b.is_empty() { "this build has the CPU only".to_string() } else { format!("this build has cpu, {}", b.join(", ")) }
    };
    match kind {
        "cpu" | "flex" if index.is_none() => {
            tune_cpu_allocator();
            Ok(Device::flex())
        }
        "cpu" | "flex" => Err(ModelError::Device(format!("`{name}`: the CPU takes no index (use `cpu`)"))),
        "wgpu" => wgpu_device(index.unwrap_or(0)).ok_or_else(|| {
            ModelError::Device(format!("`{name}` needs a build with `--features wgpu` ({})", has()))
        }),
        "cuda" => cuda_device(index.unwrap_or(0)).ok_or_else(|| {
            ModelError::Device(format!("`{name}` needs a build with `--features cuda` ({})", has()))
        }),
        _ => Err(ModelError::Device(format!("`{name}` is not a device name (valid: {}; {})", DEVICE_NAMES.join(", "), has()))),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device(n: usize) -> Option<Device> {
    Some(if n == 0 {
        Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
    } else {
        Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(n))
    })
}
#[cfg(not(feature = "wgpu"))]
fn wgpu_device(_n: usize) -> Option<Device> {
    None
}

#[cfg(feature = "cuda")]
fn cuda_device(n: usize) -> Option<Device> {
    Some(Device::cuda(n))
}
#[cfg(not(feature = "cuda"))]
fn cuda_device(_n: usize) -> Option<Device> {
    None
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
        assert!(e.contains("tpu") && e.contains("cuda") && e.contains("not a device"), "{e}");
        #[cfg(not(feature = "cuda"))]
        for n in ["cuda", "cuda:1", "CUDA:0"] {
            let e = device_from_name(n).unwrap_err().to_string();
            assert!(e.contains("--features cuda") && !e.contains("unknown"), "{e}");
        }
        #[cfg(not(feature = "wgpu"))]
        assert!(device_from_name("wgpu:2").unwrap_err().to_string().contains("--features wgpu"));
        let e = device_from_name("cuda:x").unwrap_err().to_string();
        assert!(e.contains("not a GPU index"), "{e}");
        assert!(device_from_name("cpu:1").is_err());
    }
}
