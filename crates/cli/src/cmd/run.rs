//! `sam3lab run --ckpt FILE|DIR --image FILE --prompt TEXT [--box cx,cy,w,h]… [--neg-box …]…
//! --capture PATTERN… --out FILE.safetensors`: one forward pass capturing the named hook points into
//! an activation cache (safetensors + a `.json` manifest sidecar, both written atomically).
//!
//! The patterns are checked against the model's hook registry BEFORE anything is loaded: an unknown
//! name or a pattern that matches nothing exits 2 naming the nearest valid points; so does a capture
//! larger than `--max-gib` (the estimate comes from the registry's shapes). The manifest records the
//! checkpoint sha256, the config, the image path and the sha256 of its bytes, the prompt and boxes,
//! the hook spec and the sam3lab version (`seed` is null: nothing in a forward pass is random).

use std::path::PathBuf;

use anyhow::{Context, bail};
use sam3lab_model::BoxPrompt;
use sam3lab_model::checkpoint::{resolve, resolve_config};
use sam3lab_model::device::device_from_name;
use sam3lab_model::hook_registry;
use sam3lab_model::hooks::{CacheManifest, HookSpec, Hooks, ImageIdentity, manifest_path};
use sam3lab_model::predict::Predictor;
use sam3lab_model::preprocess::load_image;
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Checkpoint: a .safetensors/.pt file, or a fixture directory (weights.safetensors + config.json).
    #[arg(long)]
    ckpt: PathBuf,
    /// Model config JSON; default: the fixture's, else the released SAM3's.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Image file (PNG or JPEG).
    #[arg(long)]
    image: PathBuf,
    /// Noun phrase, e.g. "a red car".
    #[arg(long)]
    prompt: String,
    /// Positive box prompt `cx,cy,w,h` normalised to [0,1] (repeatable).
    #[arg(long = "box", value_name = "CX,CY,W,H")]
    boxes: Vec<String>,
    /// Negative box prompt `cx,cy,w,h` (repeatable).
    #[arg(long = "neg-box", value_name = "CX,CY,W,H")]
    neg_boxes: Vec<String>,
    /// Hook points to capture: names or patterns (`decoder.layers.*.q0`, `fusion.layers.4`, `**`).
    #[arg(long, required = true, num_args = 1.., value_name = "PATTERN")]
    capture: Vec<String>,
    /// Output cache (`.safetensors`); the manifest goes next to it with extension `.json`.
    #[arg(long, value_name = "FILE.safetensors")]
    out: PathBuf,
    /// Refuse captures estimated above this many GiB.
    #[arg(long, default_value_t = 8.0)]
    max_gib: f64,
    /// Device: cpu (flex), wgpu, cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn parse_box(flag: &str, s: &str, positive: bool) -> anyhow::Result<BoxPrompt> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if parts.len() != 4 {
        bail!("--{flag} `{s}`: expected 4 comma-separated numbers cx,cy,w,h, got {}", parts.len());
    }
    let mut v = [0f32; 4];
    for (slot, p) in v.iter_mut().zip(&parts) {
        *slot = p.parse().with_context(|| format!("--{flag} `{s}`: `{p}` is not a number"))?;
    }
    let b = BoxPrompt { cxcywh: v, positive };
    b.validate().with_context(|| format!("--{flag} `{s}`"))?;
    Ok(b)
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    // Everything that can be checked without the weights first.
    let mut boxes = Vec::new();
    for (flag, list, positive) in [("box", &a.boxes, true), ("neg-box", &a.neg_boxes, false)] {
        for s in list {
            boxes.push(parse_box(flag, s, positive)?);
        }
    }
    if a.prompt.trim().is_empty() {
        bail!("--prompt is empty: give a noun phrase such as \"a red car\"");
    }
    super::check_out_file("--out", &a.out)?;
    if manifest_path(&a.out) == a.out {
        bail!("--out {}: use a .safetensors name (the manifest is written next to it as .json)", a.out.display());
    }
    let resolved = resolve(&a.ckpt)?;
    let cfg = resolve_config(&resolved, a.config.as_deref())?;
    let registry = hook_registry(&cfg);
    let mut spec = HookSpec::new();
    for p in &a.capture {
        spec = spec.capture(p).with_context(|| format!("--capture `{p}`"))?;
    }
    for (p, _) in spec.entries() {
        registry.expand(p).with_context(|| format!("--capture `{p}`"))?;
    }
    let est = registry.capture_bytes(&spec) as f64 / (1u64 << 30) as f64;
    if est > a.max_gib {
        bail!(
            "--capture would hold about {est:.2} GiB (more than --max-gib {}); narrow the patterns \
             (`sam3lab hooks list --filter PATTERN` shows sizes) or raise --max-gib",
            a.max_gib
        );
    }
    let img = load_image(&a.image)?;
    let image_id = ImageIdentity::from_file(&a.image)?;

    let device = device_from_name(&a.device)?;
    let p = Predictor::load(&a.ckpt, a.config.as_deref(), &device)?;
    let info = p.info.as_ref().expect("loaded from a checkpoint");
    let mut hooks = Hooks::new(spec.clone());
    let encoded = p.encode_image(&img, &mut hooks);
    let text = p.encode_prompt(&a.prompt, &mut hooks)?;
    let out = p.ground(&encoded, &text, &boxes, &mut hooks)?;
    let mut cache = hooks.finish()?;
    let presence: Vec<f32> = out.presence_logit.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();

    let mut m = CacheManifest::new();
    m.checkpoint_sha256 = info.sha256.clone();
    m.config = serde_json::to_value(&info.config)?;
    m.image = image_id;
    m.prompt = a.prompt.clone();
    m.hook_spec = spec.describe();
    m.seed = None;
    m.extra.insert("checkpoint_path".into(), json!(info.path.display().to_string()));
    m.extra.insert("boxes".into(), serde_json::to_value(&boxes)?);
    m.extra.insert("prompt_token_ids".into(), json!(text.ids));
    m.extra.insert("prompt_truncated".into(), json!(text.truncated));
    m.extra.insert("image_hw".into(), json!([encoded.image_hw.0, encoded.image_hw.1]));
    m.extra.insert("device".into(), json!(a.device));
    m.extra.insert("presence_logit".into(), json!(presence));
    cache.manifest = m;
    cache.save(&a.out)?;
    println!(
        "captured {} tensors ({:.2} MiB) → {} (+ {}); presence logit {:?}",
        cache.len(),
        cache.bytes() as f64 / (1 << 20) as f64,
        a.out.display(),
        manifest_path(&a.out).display(),
        presence
    );
    Ok(0)
}
