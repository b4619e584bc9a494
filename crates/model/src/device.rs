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
        "cpu" | "flex" => Ok(Device::flex()),
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
