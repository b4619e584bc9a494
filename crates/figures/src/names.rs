//! Display names: hook-point names and prompt-group keys as the post prints them.

/// `fusion.layers.4` → `fusion[4]`, `decoder.layers.5.q0` → `decoder[5].q0`,
/// `decoder.layers.5.mean` → `decoder[5] mean`; anything else is returned unchanged.
pub fn point_label(point: &str) -> String {
    let segs: Vec<&str> = point.split('.').collect();
    match segs.as_slice() {
        ["fusion", "layers", i] => format!("fusion[{i}]"),
        ["decoder", "layers", i] => format!("decoder[{i}]"),
        ["decoder", "layers", i, "q0"] => format!("decoder[{i}].q0"),
        ["decoder", "layers", i, "mean"] => format!("decoder[{i}] mean"),
        _ => point.to_string(),
    }
}

/// `watch` → `watch`, `lvis` → `LVIS`, `saco` → `SA-Co`; anything else unchanged.
pub fn group_label(group: &str) -> String {
    match group {
        "lvis" => "LVIS".into(),
        "saco" => "SA-Co".into(),
        g => g.to_string(),
    }
}

/// The step of an intermediate checkpoint label `RUN@STEP` (e.g. `recovery@1200` → 1200).
pub fn checkpoint_step(checkpoint: &str, run: &str) -> Option<u64> {
    let (name, step) = checkpoint.split_once('@')?;
    if name != run {
        return None;
    }
    step.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(point_label("fusion.layers.4"), "fusion[4]");
        assert_eq!(point_label("decoder.layers.5.q0"), "decoder[5].q0");
        assert_eq!(point_label("decoder.layers.5.mean"), "decoder[5] mean");
        assert_eq!(point_label("trunk.blocks.3"), "trunk.blocks.3");
        assert_eq!(group_label("saco"), "SA-Co");
        assert_eq!(checkpoint_step("recovery@1200", "recovery"), Some(1200));
        assert_eq!(checkpoint_step("recovery@x", "recovery"), None);
        assert_eq!(checkpoint_step("frozen_te", "recovery"), None);
        assert_eq!(checkpoint_step("other@5", "recovery"), None);
    }
}
