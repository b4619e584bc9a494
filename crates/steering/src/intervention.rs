//! Training-free interventions as text (`--hook SPEC`, repeatable), applied during a checkpoint's
//! forward — how [`crate::predict`] (`sam3lab eval predict`) scores the post's Table 8.1 rows with
//! the real evaluator.
//!
//! `SPEC` is one of
//! - `zero:PATTERN` — set the points to zero (on `….head.{h}`: ablate that head);
//! - `scale:PATTERN=S` — multiply them by S;
//! - `add:PATTERN=FILE.safetensors[#KEY][@ALPHA]` — add α·direction (steering; a `[d]` direction
//!   broadcasts, a point-shaped one is added as is; α defaults to 1; `#KEY` picks the tensor when
//!   the file holds several — `probe steer` writes `direction.safetensors` with one);
//! - `patch:PATTERN=CKPT` — replace the points with their values in CKPT's plain forward on the
//!   same (image, noun phrase) (causal patching from a source checkpoint; CKPT must share the
//!   model config).
//!
//! Entries apply in the order given (each sees the tensor as the previous one left it). Patterns
//! are checked against the model's hook registry before anything runs (unknown names exit 2 with
//! the nearest valid ones). Image-encoder points (`trunk.*`, `neck.*`) are edited once per image,
//! the others per noun phrase.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::prelude::Device;
use sam3lab_model::hooks::{Action, ActivationCache, DynTensor, HookPattern, HookRegistry, HookSpec};
use sam3lab_model::predict::Stages;
use sam3lab_probes::model::{self as runner_model, CkptSpec, Loaded};
use sam3lab_probes::sweep::{Edit, ImageRuns};
use serde_json::json;

/// One parsed `--hook` argument.
#[derive(Clone, Debug, PartialEq)]
pub enum HookArg {
    Zero { pattern: String },
    Scale { pattern: String, factor: f32 },
    Add { pattern: String, file: PathBuf, key: Option<String>, alpha: f32 },
    Patch { pattern: String, source: PathBuf },
}

const FORMS: &str = "zero:PATTERN, scale:PATTERN=S, add:PATTERN=FILE.safetensors[#KEY][@ALPHA] or patch:PATTERN=CKPT";

impl HookArg {
    pub fn parse(arg: &str) -> anyhow::Result<Self> {
        let Some((kind, rest)) = arg.split_once(':') else {
            bail!("--hook `{arg}`: expected {FORMS}");
        };
        let split = |what: &str| -> anyhow::Result<(String, String)> {
            match rest.split_once('=') {
                Some((p, v)) if !p.trim().is_empty() && !v.trim().is_empty() => Ok((p.trim().to_string(), v.trim().to_string())),
                _ => bail!("--hook `{arg}`: expected {kind}:PATTERN={what}"),
            }
        };
        let check = |p: &str| -> anyhow::Result<()> {
            p.parse::<HookPattern>().with_context(|| format!("--hook `{arg}`"))?;
            Ok(())
        };
        let out = match kind.trim() {
            "zero" => {
                let p = rest.trim();
                if p.is_empty() || p.contains('=') {
                    bail!("--hook `{arg}`: expected zero:PATTERN");
                }
                HookArg::Zero { pattern: p.to_string() }
            }
            "scale" => {
                let (p, v) = split("S")?;
                let factor: f32 = v.parse().ok().filter(|f: &f32| f.is_finite()).with_context(|| format!("--hook `{arg}`: `{v}` is not a finite number"))?;
                HookArg::Scale { pattern: p, factor }
            }
            "add" => {
                let (p, v) = split("FILE.safetensors[#KEY][@ALPHA]")?;
                let (rest, alpha) = match v.rsplit_once('@') {
                    Some((f, a)) => {
                        let alpha: f32 = a.parse().ok().filter(|x: &f32| x.is_finite()).with_context(|| format!("--hook `{arg}`: α `{a}` is not a finite number"))?;
                        (f.to_string(), alpha)
                    }
                    None => (v.clone(), 1.0),
                };
                let keyed = rest.rsplit_once('#').filter(|(_, k)| !k.is_empty()).map(|(f, k)| (f.to_string(), k.to_string()));
                let (file, key) = match keyed {
                    Some((f, k)) => (f, Some(k)),
                    None => (rest, None),
                };
                HookArg::Add { pattern: p, file: PathBuf::from(file), key, alpha }
            }
            "patch" => {
                let (p, v) = split("CKPT")?;
                HookArg::Patch { pattern: p, source: PathBuf::from(v) }
            }
            other => bail!("--hook `{arg}`: unknown intervention `{other}`; expected {FORMS}"),
        };
        check(out.pattern())?;
        Ok(out)
    }

    pub fn pattern(&self) -> &str {
        match self {
            HookArg::Zero { pattern } | HookArg::Scale { pattern, .. } | HookArg::Add { pattern, .. } | HookArg::Patch { pattern, .. } => pattern,
        }
    }
}


/// Interventions ready to apply to one target model. Run through the runner's [`ImageRuns`] over
/// the models `[sources…, target]` ([`Intervention::sources`], then the target last).
pub struct Intervention {
    /// The runner's edits, in `--hook` order (a `patch:` entry is one [`Edit::Patch`] per point).
    edits: Vec<Edit>,
    sources: Vec<Loaded>,
    /// Per source: the points captured from it.
    source_points: Vec<Vec<String>>,
    /// The encoders the target's edits reach.
    pub stages: Stages,
    /// What was applied, for the meta file (and the resume identity).
    pub description: serde_json::Value,
}

fn is_image_point(p: &str) -> bool {
    sam3lab_probes::model::is_image_point(p)
}

fn sha256(path: &Path) -> anyhow::Result<String> {
    sam3lab_model::hooks::sha256_file(path).with_context(|| format!("reading {}", path.display()))
}

impl Intervention {
    /// Parse and check `args` against `registry` (the target's); load patch sources and directions.
    pub fn build(
        args: &[String],
        registry: &HookRegistry,
        target_config: &serde_json::Value,
        config_override: Option<&Path>,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let mut edits = Vec::new();
        let mut sources: Vec<Loaded> = Vec::new();
        let mut edited: Vec<String> = Vec::new();
        let mut source_paths: Vec<PathBuf> = Vec::new();
        let mut source_points: Vec<Vec<String>> = Vec::new();
        let mut described = Vec::new();
        for arg in args {
            let h = HookArg::parse(arg)?;
            let pat: HookPattern = h.pattern().parse().with_context(|| format!("--hook `{arg}`"))?;
            // Every --hook edits its points: a read-only point (a `.mean`, a layer's unused logit) is refused.
            let probe_action = match &h {
                HookArg::Scale { factor, .. } => Action::Scale(*factor),
                _ => Action::Zero,
            };
            registry.check_edit(&pat, &probe_action).with_context(|| format!("--hook `{arg}`"))?;
            let points: Vec<String> = registry
                .expand(&pat)
                .with_context(|| format!("--hook `{arg}`"))?
                .iter()
                .map(|p| p.as_str().to_string())
                .collect();
            edited.extend(points.iter().cloned());
            match h {
                HookArg::Zero { pattern } => {
                    described.push(json!({"spec": arg, "kind": "zero", "pattern": pattern, "points": points}));
                    edits.push(Edit::Hook { point: pattern, action: Action::Zero });
                }
                HookArg::Scale { pattern, factor } => {
                    described.push(json!({"spec": arg, "kind": "scale", "pattern": pattern, "points": points, "factor": factor}));
                    edits.push(Edit::Hook { point: pattern, action: Action::Scale(factor) });
                }
                HookArg::Add { pattern, file, key, alpha } => {
                    if !file.is_file() {
                        bail!("--hook `{arg}`: direction file {} not found", file.display());
                    }
                    let (dir, name) = crate::read_direction(&file, key.as_deref()).with_context(|| format!("--hook `{arg}`"))?;
                    for p in &points {
                        let shape = &registry.get(p).expect("expanded from the registry").shape;
                        let d = *shape.last().unwrap_or(&0);
                        if dir.shape != *shape && dir.shape != [d] {
                            bail!("--hook `{arg}`: the direction `{name}` has shape {:?}; `{p}` needs [{d}] or {shape:?}", dir.shape);
                        }
                    }
                    let norm = dir.values.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
                    described.push(json!({
                        "spec": arg, "kind": "add", "pattern": pattern, "points": points, "alpha": alpha,
                        "file": file.display().to_string(), "sha256": sha256(&file)?, "key": name,
                        "shape": dir.shape, "norm": norm,
                    }));
                    let value = DynTensor::from_vec(dir.values, dir.shape, device);
                    edits.push(Edit::Hook { point: pattern, action: Action::Add { value, alpha } });
                }
                HookArg::Patch { pattern, source } => {
                    if !source.exists() {
                        bail!("--hook `{arg}`: source checkpoint {} not found", source.display());
                    }
                    let k = match source_paths.iter().position(|s| *s == source) {
                        Some(k) => k,
                        None => {
                            let label = format!("source{}", sources.len());
                            let p = runner_model::load(&CkptSpec::new(&label, &source), config_override, device).with_context(|| format!("--hook `{arg}`"))?;
                            if &p.config != target_config {
                                bail!("--hook `{arg}`: {} has a different model config than --ckpt; patching needs one architecture", source.display());
                            }
                            sources.push(p);
                            source_paths.push(source.clone());
                            source_points.push(Vec::new());
                            sources.len() - 1
                        }
                    };
                    for p in &points {
                        if !source_points[k].contains(p) {
                            source_points[k].push(p.clone());
                        }
                    }
                    described.push(json!({
                        "spec": arg, "kind": "patch", "pattern": pattern, "points": points,
                        "source": {"path": source.display().to_string(), "sha256": sources[k].record.sha256},
                    }));
                    edits.extend(points.into_iter().map(|point| Edit::Patch { point, source: k }));
                }
            }
        }
        let stages = Stages::of_points(&edited);
        Ok(Self { edits, sources, source_points, stages, description: serde_json::Value::Array(described) })
    }

    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// The patch sources, in the order [`Intervention::spec`] indexes them.
    pub fn sources(&self) -> &[Loaded] {
        &self.sources
    }

    /// The sources' image-encoder captures for the image of `runs` (whose models are the sources,
    /// then the target): each source's image is encoded under its captures, once.
    pub fn encode_sources(&self, runs: &mut ImageRuns) -> anyhow::Result<Vec<ActivationCache>> {
        let mut out = Vec::with_capacity(self.sources.len());
        for (k, pts) in self.source_points.iter().enumerate() {
            let image: Vec<String> = pts.iter().filter(|p| is_image_point(p)).cloned().collect();
            out.push(if image.is_empty() { ActivationCache::default() } else { runs.encode(k, HookSpec::new().capture_all(&image)?)? });
        }
        Ok(out)
    }

    /// The sources' captures for one noun phrase (the points after the image encoder).
    pub fn run_sources(&self, runs: &mut ImageRuns, phrase: &str) -> anyhow::Result<Vec<ActivationCache>> {
        let mut out = Vec::with_capacity(self.sources.len());
        for (k, pts) in self.source_points.iter().enumerate() {
            let rest: Vec<String> = pts.iter().filter(|p| !is_image_point(p)).cloned().collect();
            if rest.is_empty() {
                out.push(ActivationCache::default());
                continue;
            }
            let stages = Stages { image: false, text: Stages::of_points(&rest).text };
            out.push(runs.run(k, phrase, HookSpec::new().capture_all(&rest)?, stages)?.1);
        }
        Ok(out)
    }

    /// The target's hook spec for the image encoder (`phrase = None`, patch values from the
    /// sources' image caches) or for one noun phrase (patch values from `phrase`'s caches).
    pub fn spec(&self, images: &[ActivationCache], phrase: Option<&[ActivationCache]>) -> anyhow::Result<HookSpec> {
        let mut spec = HookSpec::new();
        for e in &self.edits {
            match e {
                Edit::Hook { point, action } => spec = spec.push(point, action.clone())?,
                Edit::Patch { point, source } => {
                    let cache = match (is_image_point(point), phrase) {
                        (true, None) => &images[*source],
                        (false, Some(c)) => &c[*source],
                        _ => continue, // that stage does not run in this call
                    };
                    spec = spec.replace(point, cache.get(point)?.clone())?;
                }
            }
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(HookArg::parse("zero:decoder.layers.1.ca_text.head.0").unwrap(), HookArg::Zero { pattern: "decoder.layers.1.ca_text.head.0".into() });
        assert_eq!(HookArg::parse("scale:decoder.layers.*.q0=0.5").unwrap(), HookArg::Scale { pattern: "decoder.layers.*.q0".into(), factor: 0.5 });
        assert_eq!(
            HookArg::parse("add:decoder.layers.5.q0=runs/d.safetensors#decoder.layers.5.q0@1.5").unwrap(),
            HookArg::Add {
                pattern: "decoder.layers.5.q0".into(),
                file: "runs/d.safetensors".into(),
                key: Some("decoder.layers.5.q0".into()),
                alpha: 1.5
            }
        );
        assert_eq!(
            HookArg::parse("add:decoder.layers.5.q0=d.safetensors").unwrap(),
            HookArg::Add { pattern: "decoder.layers.5.q0".into(), file: "d.safetensors".into(), key: None, alpha: 1.0 }
        );
        assert_eq!(
            HookArg::parse("patch:decoder.layers.5.out=ckpts/replay_neg.pt").unwrap(),
            HookArg::Patch { pattern: "decoder.layers.5.out".into(), source: "ckpts/replay_neg.pt".into() }
        );
        for bad in ["zero", "ablate:x", "scale:x", "scale:x=abc", "add:x=f.safetensors@nan", "patch:=c", "zero:a=b"] {
            assert!(HookArg::parse(bad).is_err(), "{bad}");
        }
    }
}
