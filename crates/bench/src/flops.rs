//! How much arithmetic each stage of a forward is, and what fraction of this machine's large-GEMM
//! rate a stage reaches with it: the limit beside the PyTorch ratio (issue 21 item 4).
//!
//! The count is PyTorch's own: `benches/reference/flops.py` runs Meta's modules under
//! `torch.utils.flop_counter.FlopCounterMode` (matrix products, convolutions and attention at two
//! FLOPs per multiply-add; elementwise work uncounted) for the full-size model and the fixture, and
//! its output is committed as `data/fixtures/flops-reference.json`. Both implementations compute the
//! same products, so one count serves both sides, with one exception: torch's text stage includes
//! the `text_projection` product the reference computes and throws away and ours skips (the
//! difference between `encoder` and `encoder.transformer` + `resizer` in the file: 34 MFLOP of the
//! full model's 19.5 GFLOP text stage, 0.2 %). The tests check the committed numbers against a hand
//! derivation from the fixture's config.

use std::collections::BTreeMap;

use burn::prelude::*;
use serde::Deserialize;

/// `data/fixtures/flops-reference.json`, embedded.
pub const REFERENCE_JSON: &str = include_str!("../../../data/fixtures/flops-reference.json");

/// One model's count, per stage, in FLOPs.
#[derive(Clone, Debug, Deserialize)]
pub struct StageFlops {
    pub image: f64,
    pub text: f64,
    pub grounding: f64,
    /// Per stage, per module (torch's module names, depth ≤ 3).
    #[serde(default)]
    pub by_module: BTreeMap<String, BTreeMap<String, f64>>,
}

impl StageFlops {
    pub fn stages(&self) -> [f64; 3] {
        [self.image, self.text, self.grounding]
    }
}

#[derive(Deserialize)]
struct File {
    models: BTreeMap<String, StageFlops>,
}

/// The committed count of model `name` (`full`, or a fixture's directory name such as `sam3-tiny`).
pub fn reference(name: &str) -> anyhow::Result<StageFlops> {
    let f: File = serde_json::from_str(REFERENCE_JSON).map_err(|e| anyhow::anyhow!("data/fixtures/flops-reference.json: {e}"))?;
    let names: Vec<&String> = f.models.keys().collect();
    f.models
        .get(name)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("data/fixtures/flops-reference.json holds no count for `{name}` (it has {names:?})"))
}

/// This machine's rate on a large square f32 GEMM (n = 1024, best of 5 after one warm-up), in
/// GFLOP/s: what the trunk's big products can reach at most.
pub fn large_gemm_gflops(device: &Device) -> f64 {
    let n = 1024;
    let best = crate::util::matmul_seconds(device, n, 5).into_iter().fold(f64::INFINITY, f64::min);
    2.0 * (n * n * n) as f64 / best / 1e9
}

/// Achieved GFLOP/s of each stage (`ms` per stage) and its fraction of `gemm_gflops`.
pub fn achieved(flops: &[f64; 3], ms: &[f64], gemm_gflops: f64) -> Vec<(f64, f64)> {
    flops
        .iter()
        .zip(ms)
        .map(|(&f, &t)| {
            let rate = if t > 0.0 { f / (t / 1e3) / 1e9 } else { f64::NAN };
            (rate, rate / gemm_gflops)
        })
        .collect()
}

/// `"  WHO: image 123.4 GFLOP/s = 0.56 of the GEMM rate, …"`.
pub fn achieved_line(who: &str, flops: &[f64; 3], ms: &[f64], gemm_gflops: f64) -> String {
    let parts: Vec<String> = ["image", "text", "grounding"]
        .iter()
        .zip(achieved(flops, ms, gemm_gflops))
        .map(|(name, (rate, frac))| format!("{name} {rate:.1} GFLOP/s = {frac:.2}"))
        .collect();
    format!("  {who}: {} of the large-GEMM rate", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture's ViT, hand-derived from its config (data/fixtures/sam3-tiny/config.json: 112²
    /// input, patch 14, width 64, 4 blocks, MLP ratio 4.625, windows of 4×4 tokens, blocks 1 and 3
    /// global), equals PyTorch's count module by module.
    #[test]
    fn the_fixture_vit_count_equals_a_hand_derivation() {
        let fx = reference("sam3-tiny").unwrap();
        let m = &fx.by_module["image"];
        let (n, d, p, w) = (64.0, 64.0, 14.0, 16.0); // tokens, width, patch, tokens per window
        let hidden = (4.625f64 * 64.0).floor();
        let patch = 2.0 * n * d * 3.0 * p * p;
        let (qkv, proj, mlp) = (2.0 * n * d * 3.0 * d, 2.0 * n * d * d, 2.0 * 2.0 * n * d * hidden);
        // q·kᵀ and attn·v: 2 products of 2·N·(keys)·d each; keys = the window's tokens or all N.
        let (windowed, global) = (4.0 * n * w * d, 4.0 * n * n * d);
        assert_eq!(m["ViT.patch_embed"], patch);
        assert_eq!(m["ViT.blocks.0"], qkv + proj + mlp + windowed);
        assert_eq!(m["ViT.blocks.1"], qkv + proj + mlp + global);
        assert_eq!(m["ViT"], patch + 2.0 * (qkv + proj + mlp) * 2.0 + 2.0 * windowed + 2.0 * global);
    }

    /// The encoders' totals are the sums of their top-level modules; grounding's adds the few
    /// products `forward_grounding` makes outside any module (under 0.3 % of it), for every model.
    #[test]
    fn stage_totals_are_the_sums_of_their_modules() {
        let f: File = serde_json::from_str(REFERENCE_JSON).unwrap();
        assert!(f.models.contains_key("full") && f.models.contains_key("sam3-tiny"));
        for (name, s) in &f.models {
            let top = |stage: &str| -> f64 { s.by_module[stage].iter().filter(|(k, _)| !k.contains('.')).map(|(_, v)| v).sum() };
            assert_eq!(top("image"), s.image, "{name} image");
            assert_eq!(top("text"), s.text, "{name} text");
            let rest = s.grounding - top("grounding");
            assert!(rest >= 0.0 && rest < 0.003 * s.grounding, "{name} grounding: {rest} outside modules");
        }
    }

    #[test]
    fn achieved_rates_divide_the_count_by_the_time() {
        let r = achieved(&[2e9, 1e9, 0.0], &[1000.0, 500.0, 0.0], 4.0);
        assert_eq!(r[0], (2.0, 0.5));
        assert_eq!(r[1], (2.0, 0.5));
        assert!(r[2].0.is_nan());
        let err = reference("nope").unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("full"), "{err}");
    }
}
