//! The recipe file of `sam3lab train` (TOML): start checkpoint, data streams with cadences, what is
//! frozen, parameter groups, AdamW, the learning-rate schedule, step checkpoints, and the loss.
//! See `docs/train.md` for the format and `recipes/` for the post's recipes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::loss::LossConfig;
use crate::schedule::Schedule;

/// A whole recipe. Unknown keys are errors (a typo must not silently train something else).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Free text: what this run is (goes into every manifest).
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub seed: u64,
    /// Optimiser steps (each = `grad_accum` batches).
    pub steps: usize,
    /// Find queries ((image, noun phrase) pairs) per batch.
    #[serde(default = "one")]
    pub batch_size: usize,
    /// Batches whose gradients are summed (averaged) before one step.
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Steps after which a checkpoint is written (the last step always is).
    #[serde(default)]
    pub checkpoints: Vec<usize>,
    /// Write a row of the loss log every this many steps.
    #[serde(default = "one")]
    pub log_every: usize,
    /// Data-parallel replicas (`cpu`, `wgpu[:N]`, `cuda[:N]`), one per entry: every micro-batch is
    /// split across them and their gradients all-reduced (burn's `all_reduce` on CUDA, by hand
    /// elsewhere). Empty = the `--device` given to the command.
    #[serde(default)]
    pub devices: Vec<String>,
    /// burn's gradient checkpointing: memory-bound activations are recomputed in the backward
    /// pass instead of kept (same numbers, less memory, more compute).
    #[serde(default)]
    pub gradient_checkpointing: bool,
    pub model: ModelSpec,
    /// Data streams by name; exactly one is `primary`, the others replace every `every`-th batch.
    pub data: BTreeMap<String, StreamSpec>,
    #[serde(default)]
    pub freeze: FreezeSpec,
    #[serde(default)]
    pub optim: OptimSpec,
    #[serde(default)]
    pub schedule: Schedule,
    /// The loss weights: a `[loss]` block, or `[loss] from = "FILE"` naming a shared objective file
    /// (relative to the recipe) whose keys are the block's (read by [`Recipe::load`]).
    #[serde(default)]
    pub loss: LossConfig,
    /// The shared objective file `[loss] from` named and its text (set by [`Recipe::load`]; part of
    /// the run's identity, so a resumed run refuses a changed objective).
    #[serde(skip)]
    pub loss_from: Option<(PathBuf, String)>,
    /// Held-out evaluation during the run (`eval.csv`).
    #[serde(default)]
    pub eval: Option<crate::evaluate::EvalSpec>,
}

fn one() -> usize {
    1
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Start checkpoint: any format the loader reads (a fixture directory, `.safetensors`, `.pt`).
    /// Omitted with `init = "random"`.
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
    /// `"random"`: start from a seeded random initialisation of `config` (pretraining from scratch).
    #[serde(default)]
    pub init: Option<String>,
    /// Config JSON when the checkpoint does not carry one.
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// Train-mode dropout of the geometry encoder, fusion encoder, decoder (their layers and
    /// attention weights) and the scoring prompt MLP; overrides the config's `*.dropout`. SAM3's
    /// own training uses 0.1; omitted = the config's (0 unless it says otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    /// Stochastic depth of the ViT trunk: the last block's rate, block `i` of `depth` uses
    /// `drop_path · i / (depth − 1)`; overrides the config's `vit.drop_path_rate`. SAM3: 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_path: Option<f64>,
}

impl ModelSpec {
    /// The recipe's dropout / drop-path rates written into a model config (rates it omits keep the
    /// config's).
    pub fn apply_rates(&self, cfg: &mut sam3lab_model::Sam3Config) {
        if let Some(p) = self.dropout {
            cfg.geometry.dropout = p;
            cfg.fusion.dropout = p;
            cfg.decoder.dropout = p;
            cfg.scoring.dropout = p;
        }
        if let Some(p) = self.drop_path {
            cfg.vit.drop_path_rate = p;
        }
    }
}

/// One data set in SA-Co/Gold / COCO-JSON form: one "image" entry per (image, noun phrase) pair,
/// instance masks as RLE; a pair without instances is a negative.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    /// The ground-truth JSON.
    pub gt: PathBuf,
    /// Directory the `file_name`s are relative to (default: the JSON's directory).
    #[serde(default)]
    pub images: Option<PathBuf>,
    /// The stream the run iterates; the others are interleaved.
    #[serde(default)]
    pub primary: bool,
    /// For a secondary stream: one of its batches takes the place of every `every`-th batch (with
    /// `extra = true`: is added to every `every`-th step's batches).
    #[serde(default)]
    pub every: Option<usize>,
    /// For a secondary stream: when due, its batch comes *on top of* the primary batch (an extra
    /// micro-batch of the step, its loss added to the primary batch's) instead of replacing it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extra: bool,
    /// For an `extra` stream: its batch size (default: the recipe's `batch_size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Keep only positives (pairs with instances) or only negatives.
    #[serde(default)]
    pub only: Option<Only>,
    /// Draw images, then up to this many of each image's pairs in a row (several queries per image;
    /// the image is encoded once per batch). Default: pairs independently.
    #[serde(default)]
    pub per_image: Option<usize>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Only {
    Positives,
    Negatives,
}

/// What is trained, by checkpoint tensor name (hook-pattern glob syntax: `*` one segment, `**` any
/// number, `name*` within a segment, `a..b`, `{x,y}`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeSpec {
    /// When non-empty: only tensors matching one of these are trained.
    #[serde(default)]
    pub train: Vec<String>,
    /// Tensors matching one of these are frozen (applied after `train`).
    #[serde(default)]
    pub frozen: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimSpec {
    pub lr: f64,
    pub weight_decay: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Clip the global gradient norm (torch's `clip_grad_norm_`) to this value.
    #[serde(default)]
    pub clip_grad_norm: Option<f32>,
    /// Parameter groups with their own learning-rate scale and weight decay; a tensor belongs to
    /// the last group whose pattern matches it, else to the base group.
    #[serde(default)]
    pub groups: Vec<GroupSpec>,
    /// Tensors trained without weight decay, whatever their group (Meta's recipe: `["**.*bias*"]`,
    /// its `param_names: ['*bias*']` with weight decay 0).
    #[serde(default)]
    pub no_weight_decay: Vec<String>,
    /// Also train every LayerNorm weight and bias without weight decay (Meta's
    /// `module_cls_names: ['torch.nn.LayerNorm']`).
    #[serde(default)]
    pub no_weight_decay_layer_norm: bool,
    /// Layer-wise learning-rate decay over the ViT trunk (Meta's `layer_decay_param_modifier`).
    #[serde(default)]
    pub layer_decay: Option<LayerDecaySpec>,
}

/// Meta's `layer_decay_param_modifier` with the ViT's `get_layer_id`: a tensor under `apply_to` in
/// layer `l` (0 = patch/position embedding and `ln_pre`, `k + 1` = block `k`, depth + 1 = the rest)
/// has its learning rate scaled by `value^(depth + 1 − l)`; an `overrides` pattern sets the scale
/// outright; tensors outside `apply_to` keep scale 1.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerDecaySpec {
    pub value: f64,
    #[serde(default = "default_trunk")]
    pub apply_to: String,
    #[serde(default)]
    pub overrides: Vec<LayerDecayOverride>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerDecayOverride {
    pub pattern: String,
    pub value: f64,
}

fn default_trunk() -> String {
    "backbone.vision_backbone.trunk".into()
}

impl Default for OptimSpec {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip_grad_norm: None,
            groups: vec![],
            no_weight_decay: vec![],
            no_weight_decay_layer_norm: false,
            layer_decay: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    pub patterns: Vec<String>,
    /// Learning rate = `lr_scale · optim.lr · schedule(step)`.
    #[serde(default = "one_f64")]
    pub lr_scale: f64,
    #[serde(default)]
    pub weight_decay: Option<f32>,
}

fn one_f64() -> f64 {
    1.0
}

impl Recipe {
    /// Read and check a recipe; relative paths are resolved against the recipe's directory.
    pub fn load(path: &Path) -> Result<Recipe> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| TrainError::input(path, e.to_string()))?;
        let mut loss_from = None;
        if let Some(toml::Value::Table(loss)) = table.get_mut("loss") {
            if let Some(from) = loss.get("from") {
                let from = from.as_str().ok_or_else(|| TrainError::input(path, "loss.from: expected a file path (a string)"))?;
                let others: Vec<&String> = loss.keys().filter(|k| *k != "from").collect();
                if !others.is_empty() {
                    return Err(TrainError::input(
                        path,
                        format!("loss: `from = \"{from}\"` is the one shared objective; keys beside it ({}) are not allowed (change the objective file instead)", others.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")),
                    ));
                }
                let file = if Path::new(from).is_relative() { base.join(from) } else { PathBuf::from(from) };
                let otext = std::fs::read_to_string(&file).map_err(|e| TrainError::input(path, format!("loss.from: {}: {e}", file.display())))?;
                let obj: toml::Table = toml::from_str(&otext).map_err(|e| TrainError::input(&file, e.to_string()))?;
                // The objective's keys are checked on their own, so an error names its file.
                LossConfig::deserialize(obj.clone()).map_err(|e| TrainError::input(&file, e.to_string()))?;
                *loss = obj;
                loss_from = Some((file, otext));
            }
        }
        let mut r: Recipe = if loss_from.is_some() {
            Recipe::deserialize(table).map_err(|e| TrainError::input(path, e.to_string()))?
        } else {
            toml::from_str(&text).map_err(|e| TrainError::input(path, e.to_string()))?
        };
        r.loss_from = loss_from;
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.exists() && base.join(&*p).exists() {
                *p = base.join(&*p);
            }
        };
        if let Some(c) = r.model.checkpoint.as_mut() {
            fix(c);
        }
        if let Some(c) = r.model.config.as_mut() {
            fix(c);
        }
        if let Some(e) = r.eval.as_mut() {
            fix(&mut e.gt);
            if let Some(i) = e.images.as_mut() {
                fix(i);
            }
        }
        for s in r.data.values_mut() {
            fix(&mut s.gt);
            if let Some(i) = s.images.as_mut() {
                fix(i);
            }
        }
        r.check().map_err(|why| TrainError::input(path, why))?;
        Ok(r)
    }

    /// Structural checks that need no files.
    pub fn check(&self) -> std::result::Result<(), String> {
        match (&self.model.checkpoint, self.model.init.as_deref()) {
            (Some(_), None) => {}
            (None, Some("random")) if self.model.config.is_some() => {}
            (None, Some("random")) => return Err("model: `init = \"random\"` needs `config`".into()),
            (Some(_), Some(_)) => return Err("model: give either `checkpoint` or `init = \"random\"`, not both".into()),
            (None, Some(other)) => return Err(format!("model: unknown init `{other}` (known: \"random\")")),
            (None, None) => return Err("model: `checkpoint` is missing".into()),
        }
        for (key, p) in [("dropout", self.model.dropout), ("drop_path", self.model.drop_path)] {
            if p.is_some_and(|p| !(0.0..1.0).contains(&p)) {
                return Err(format!("model: `{key}` must be in [0, 1), got {}", p.unwrap_or_default()));
            }
        }
        if self.eval.as_ref().is_some_and(|e| e.every == 0) {
            return Err("eval: `every` must be at least 1".into());
        }
        if self.steps == 0 {
            return Err("`steps` must be at least 1".into());
        }
        if self.batch_size == 0 || self.grad_accum == 0 || self.log_every == 0 {
            return Err("`batch_size`, `grad_accum` and `log_every` must be at least 1".into());
        }
        let primaries: Vec<&String> = self.data.iter().filter(|(_, s)| s.primary).map(|(k, _)| k).collect();
        if primaries.len() != 1 {
            return Err(format!(
                "exactly one data stream must have `primary = true`, found {} ({primaries:?}) among {:?}",
                primaries.len(),
                self.data.keys().collect::<Vec<_>>()
            ));
        }
        for (name, s) in &self.data {
            match (s.primary, s.every) {
                (true, Some(_)) => return Err(format!("data.{name}: the primary stream takes no `every`")),
                (false, None) => return Err(format!("data.{name}: a secondary stream needs `every = N`")),
                (false, Some(0 | 1)) => return Err(format!("data.{name}: `every` must be at least 2")),
                _ => {}
            }
            if s.extra && s.primary {
                return Err(format!("data.{name}: the primary stream cannot be `extra`"));
            }
            if s.batch_size.is_some() && !s.extra {
                return Err(format!("data.{name}: a stream's own `batch_size` needs `extra = true` (a replacing stream takes the recipe's)"));
            }
            if s.batch_size == Some(0) {
                return Err(format!("data.{name}: `batch_size` must be at least 1"));
            }
        }
        for &c in &self.checkpoints {
            if c == 0 || c > self.steps {
                return Err(format!("checkpoint step {c} is outside 1..={}", self.steps));
            }
        }
        self.schedule.check()?;
        Ok(())
    }

    /// The primary stream's name.
    pub fn primary(&self) -> &str {
        self.data.iter().find(|(_, s)| s.primary).map(|(k, _)| k.as_str()).expect("checked")
    }

    /// Sorted, deduplicated checkpoint steps including the last.
    pub fn checkpoint_steps(&self) -> Vec<usize> {
        let mut v = self.checkpoints.clone();
        v.push(self.steps);
        v.sort();
        v.dedup();
        v
    }
}
