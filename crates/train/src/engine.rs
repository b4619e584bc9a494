//! The training loop of `sam3lab train`: a recipe's streams interleaved at their cadence, the
//! train-mode forward and Meta's loss, gradient accumulation, global-norm clipping, AdamW per
//! parameter group under a schedule, checkpoints at listed steps (safetensors under the original
//! tensor names + a manifest), a CSV loss log, and resumption from the last checkpoint with the
//! optimiser state and stream positions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use sam3lab_util::progress::Progress;
use sam3lab_hooks::{HookPattern, Hooks};
use sam3lab_model::{Sam3, TrainOutput};
use serde::{Deserialize, Serialize};

use crate::data::{Batch, Cursor, Dataset, ImageCache, Sampler, load_stream, make_batch};
use crate::error::{Result, TrainError};
use crate::loss::{BatchNorm, LossOutput, combine_shards, compute_loss_shard};
use crate::params;
use crate::recipe::Recipe;

/// The train-mode forward of a batch: images and phrases once, one row per find query. With the
/// model config's dropout / drop-path rates (0 = none), drawn from burn's generator: seed it first
/// ([`seed_micro_batch`]) for a repeatable run.
pub fn forward(model: &Sam3, batch: &Batch, hooks: &mut Hooks) -> Result<TrainOutput> {
    let image = model.encode_image_train(batch.pixels.clone(), hooks).select(&batch.img_ids);
    let text = model.encode_text(batch.input_ids.clone(), hooks).select(&batch.text_ids);
    Ok(model.ground_train(&image, &text, &batch.geometry, hooks)?)
}

/// Which tensors a recipe trains, and their optimiser group (a tensor not in `group` is frozen).
pub struct Selection {
    pub names: Vec<String>,
    /// Group index per trained tensor, into [`Selection::groups`].
    pub group: BTreeMap<String, usize>,
    /// 0 = the base group, k = `optim.groups[k-1]` (always present, used or not); after them one
    /// derived group per (group, no weight decay, layer-decay scale) combination that a tensor
    /// needs (`optim.no_weight_decay`, `no_weight_decay_layer_norm`, `optim.layer_decay`), in the
    /// order of the tensor names.
    pub groups: Vec<OptimGroup>,
}

/// One AdamW parameter group: its learning-rate scale and weight decay.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimGroup {
    pub name: String,
    pub lr_scale: f64,
    pub weight_decay: f32,
}

fn patterns(list: &[String], what: &str) -> Result<Vec<HookPattern>> {
    list.iter()
        .map(|p| p.parse::<HookPattern>().map_err(|e| TrainError::Usage(format!("{what}: bad pattern `{p}`: {e}"))))
        .collect()
}

/// A pattern selects a tensor when it matches its name or one of its enclosing modules
/// (`backbone.language_backbone`, `transformer.decoder.presence_token*`).
pub fn covers(p: &HookPattern, name: &str) -> bool {
    p.matches(name) || name.match_indices('.').any(|(i, _)| p.matches(&name[..i]))
}

fn check_matches(pats: &[HookPattern], names: &[String], what: &str) -> Result<()> {
    for p in pats {
        if !names.iter().any(|n| covers(p, n)) {
            let stem: String = p.as_str().chars().filter(|c| *c != '*').collect();
            let near = sam3lab_util::nearest_names(&stem, names.iter().map(String::as_str), 4);
            return Err(TrainError::Usage(format!("{what}: pattern `{p}` matches no tensor; nearest names: {}", near.join(", "))));
        }
    }
    Ok(())
}

/// Meta's ViT `get_layer_id` (substring tests on the full name, in its order) for a trunk of
/// `depth` blocks: 0 = `ln_pre` / position / patch embedding, `k + 1` = `blocks.k`, `depth + 1` =
/// everything else (and `rel_pos`).
pub fn vit_layer_id(name: &str, depth: usize) -> usize {
    if name.contains("rel_pos") {
        depth + 1
    } else if name.contains("ln_pre") || name.contains("pos_embed") || name.contains("cls_token") || name.contains("patch_embed") {
        0
    } else if let Some(rest) = name.split_once("blocks").map(|(_, r)| r) {
        rest.split('.').nth(1).and_then(|k| k.parse::<usize>().ok()).map_or(depth + 1, |k| k + 1)
    } else {
        depth + 1
    }
}

/// The layer-decay learning-rate factor of `name` and a tag naming its layer (or override), or
/// `None` outside `apply_to` (factor 1).
fn layer_scale(ld: &crate::recipe::LayerDecaySpec, overrides: &[HookPattern], name: &str, depth: usize) -> Option<(String, f64)> {
    if !name.starts_with(&ld.apply_to) {
        return None;
    }
    if let Some(i) = overrides.iter().position(|p| covers(p, name)) {
        return Some((format!("override {}", ld.overrides[i].pattern), ld.overrides[i].value));
    }
    let l = vit_layer_id(name, depth);
    Some((format!("layer {l:02}"), ld.value.powi((depth + 1 - l) as i32)))
}

/// Resolve the recipe's freeze / group patterns against the model's tensor names.
pub fn select(recipe: &Recipe, model: &Sam3) -> Result<Selection> {
    let listed = params::list(model, "");
    let layer_norm: BTreeSet<&str> = listed.iter().filter(|p| p.owner == "LayerNorm").map(|p| p.name.as_str()).collect();
    let names: Vec<String> = listed.iter().map(|p| p.name.clone()).collect();
    let train = patterns(&recipe.freeze.train, "freeze.train")?;
    let frozen = patterns(&recipe.freeze.frozen, "freeze.frozen")?;
    check_matches(&train, &names, "freeze.train")?;
    check_matches(&frozen, &names, "freeze.frozen")?;
    let groups: Vec<Vec<HookPattern>> = recipe
        .optim
        .groups
        .iter()
        .map(|g| patterns(&g.patterns, &format!("optim.groups `{}`", g.name)))
        .collect::<Result<_>>()?;
    for (g, spec) in groups.iter().zip(&recipe.optim.groups) {
        check_matches(g, &names, &format!("optim.groups `{}`", spec.name))?;
    }
    let o = &recipe.optim;
    let no_decay = patterns(&o.no_weight_decay, "optim.no_weight_decay")?;
    check_matches(&no_decay, &names, "optim.no_weight_decay")?;
    let layer_decay = match &o.layer_decay {
        Some(ld) => {
            let pats = ld.overrides.iter().map(|x| x.pattern.clone()).collect::<Vec<_>>();
            let pats = patterns(&pats, "optim.layer_decay.overrides")?;
            check_matches(&pats, &names, "optim.layer_decay.overrides")?;
            if !names.iter().any(|n| n.starts_with(&ld.apply_to)) {
                return Err(TrainError::Usage(format!("optim.layer_decay.apply_to: `{}` is the prefix of no tensor", ld.apply_to)));
            }
            Some((ld, pats))
        }
        None => None,
    };
    let depth = model.config.vit.depth;
    // The recipe's groups keep indices 0..=G (0 = base) whatever is used, so a recipe without
    // exclusions or layer decay has exactly the optimisers it always had; each other combination
    // (group, no decay, layer-decay scale) gets the next index in name order.
    let mut optim_groups = vec![OptimGroup { name: "base".into(), lr_scale: 1.0, weight_decay: o.weight_decay }];
    optim_groups.extend(o.groups.iter().map(|g| OptimGroup {
        name: g.name.clone(),
        lr_scale: g.lr_scale,
        weight_decay: g.weight_decay.unwrap_or(o.weight_decay),
    }));
    let mut derived: BTreeMap<(usize, bool, String), usize> = BTreeMap::new();
    let mut group = BTreeMap::new();
    for n in &names {
        let trained = (train.is_empty() || train.iter().any(|p| covers(p, n))) && !frozen.iter().any(|p| covers(p, n));
        if !trained {
            continue;
        }
        let g = groups.iter().rposition(|ps| ps.iter().any(|p| covers(p, n))).map(|k| k + 1).unwrap_or(0);
        let exclude = no_decay.iter().any(|p| covers(p, n)) || (o.no_weight_decay_layer_norm && layer_norm.contains(n.as_str()));
        let scale = layer_decay.as_ref().and_then(|(ld, pats)| layer_scale(ld, pats, n, depth));
        if !exclude && scale.is_none() {
            group.insert(n.clone(), g);
            continue;
        }
        let key = (g, exclude, scale.as_ref().map(|(tag, _)| tag.clone()).unwrap_or_default());
        let idx = *derived.entry(key).or_insert_with(|| {
            let mut d = optim_groups[g].clone(); // g ≤ G: one of the recipe's groups
            if exclude {
                d.weight_decay = 0.0;
                d.name += " (no weight decay)";
            }
            if let Some((tag, f)) = &scale {
                d.lr_scale *= f;
                d.name += &format!(" (layer decay {tag}: ×{f})");
            }
            optim_groups.push(d);
            optim_groups.len() - 1
        });
        group.insert(n.clone(), idx);
    }
    if group.is_empty() {
        return Err(TrainError::Usage("freeze: the recipe trains no tensor".into()));
    }
    Ok(Selection { names, group, groups: optim_groups })
}

/// Split gradients into one `GradientsParams` per group, scaling all of them by `scale`.
struct Splitter<'a> {
    names: Vec<String>,
    containers: Vec<String>,
    group: &'a BTreeMap<String, usize>,
    src: GradientsParams,
    out: Vec<GradientsParams>,
    scale: f32,
    sq: f64,
    measure: bool,
}

impl ModuleVisitor for Splitter<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.names.push(name.to_string());
        self.containers.push(container_type.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.names.pop();
        self.containers.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let (name, _) = params::original_name("", &self.names, &self.containers);
        let Some(&g) = self.group.get(&name) else { return };
        if self.measure {
            if let Some(t) = self.src.get::<D>(param.id) {
                let v = t.powi_scalar(2).sum().into_data().convert::<f64>().try_to_vec::<f64>().expect("f64")[0];
                self.sq += v;
            }
        } else if let Some(t) = self.src.remove::<D>(param.id) {
            let t = if self.scale == 1.0 { t } else { t.mul_scalar(self.scale) };
            self.out[g].register(param.id, t);
        }
    }
}

/// Seed burn's generator for micro-batch `micro` of optimiser step `step` (0-based), so the
/// dropout masks depend on (seed, step, micro-batch) only: the same on a resumed run as on an
/// uninterrupted one.
pub fn seed_micro_batch(device: &Device, seed: u64, step: usize, micro: usize) {
    seed_shard(device, seed, step, micro, 0);
}

/// [`seed_micro_batch`] for shard `shard` of the micro-batch (data-parallel replica `shard`);
/// shard 0 is the micro-batch's own seed, so a one-device run draws what it always drew.
pub fn seed_shard(device: &Device, seed: u64, step: usize, micro: usize, shard: usize) {
    let mix = seed
        ^ (step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (micro as u64 + 1).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ (shard as u64).wrapping_mul(0x1656_67B1_9E37_79F9);
    device.seed(mix);
}

/// Held around a seeded train-mode forward while dropout is on: burn's CPU generator is one per
/// process, so replicas running side by side would otherwise interleave their draws.
static RNG_FORWARD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One data-parallel replica: its own copy of the model and of every optimiser group, on its
/// device, for the whole run. Every replica takes the same optimiser step with the same reduced
/// gradients, so the copies stay equal (checked at every checkpoint).
struct Replica {
    model: Sam3,
    device: Device,
    optims: Vec<ModuleOptimizer>,
}

/// One replica's part of one micro-batch: its shard of the queries and, when the micro-batch is
/// split, the whole micro-batch's normalisers.
struct Shard {
    micro: usize,
    batch: Batch,
    norm: Option<BatchNorm>,
}

/// The loss values of one shard and the counts behind its F1 metrics.
type ShardValues = (BTreeMap<String, f32>, BTreeMap<String, ([usize; 3], f32)>);

/// How the replicas' gradients are summed.
enum Reduce {
    /// One device: nothing to reduce.
    None,
    /// burn's collective: `burn::tensor::distributed::all_reduce` (NCCL) under a
    /// `DistributedContext`, every replica from its own thread. Used when every replica is a CUDA
    /// device, the only backend burn 0.22.1 implements collectives for.
    Collective(Vec<Device>),
    /// The same all-reduce by hand, for backends without burn's collectives (the CPU, wgpu): the
    /// replicas' gradients summed in replica order on replica 0's device, the sum given to every
    /// replica. Deterministic, so the copies stay bit-identical.
    Host,
}

/// Whether burn 0.22.1 can run its collective ops over these devices: CUDA only. The CPU backends
/// (flex, ndarray) are not in burn-dispatch's distributed list (`burn-backend-extension-0.22.1/src/
/// catalog.rs`, `distributed: false`) and keep the trait's `unimplemented!()` `all_reduce`
/// (`burn-flex-0.22.1/src/ops/transaction.rs:11`), so `DistributedContext::init` panics on them
/// (`burn-dispatch-0.22.1/src/ops/distributed.rs:182`, "not supported for device Flex(Cpu)"); wgpu reaches cubecl's default
/// `ComputeServer::all_reduce`, which refuses (`cubecl-runtime-0.11.3/src/server/base.rs:959`).
fn collective_capable(names: &[String]) -> bool {
    names.len() > 1 && names.iter().all(|n| n.to_ascii_lowercase().starts_with("cuda"))
}

/// Forward, loss and backward of one replica's shards; gradients summed, each loss divided by the
/// recipe's `grad_accum` (the step's batch slots, as Meta's trainer divides by its accumulation
/// steps): without extra streams the mean over the micro-batches, with them each slot's loss is
/// its primary batch's plus its extra batches'. A split micro-batch's shards are normalised by the
/// whole micro-batch ([`BatchNorm`]), so the replicas' gradients sum to the one-device gradient.
/// Returns the gradients and, per micro-batch, the loss values (not yet divided by `grad_accum`).
fn micro_steps(model: &Sam3, device: &Device, shards: &[Shard], shard: usize, recipe: &Recipe, step: usize) -> Result<(GradientsParams, Vec<(usize, ShardValues)>)> {
    let mut acc = GradientsAccumulator::<Sam3>::new();
    let mut values = vec![];
    let total = recipe.grad_accum;
    let stochastic = model.config.has_train_dropout();
    for s in shards {
        let local;
        let batch = if s.batch.pixels.device() == *device {
            &s.batch
        } else {
            local = s.batch.to_device(device);
            &local
        };
        let out_t = if stochastic {
            let _one_at_a_time = RNG_FORWARD.lock().unwrap_or_else(|e| e.into_inner());
            seed_shard(device, recipe.seed, step, s.micro, shard);
            forward(model, batch, &mut Hooks::none())?
        } else {
            forward(model, batch, &mut Hooks::none())?
        };
        let loss: LossOutput = compute_loss_shard(&out_t, &batch.targets, &recipe.loss, s.norm).map_err(TrainError::Usage)?;
        let v = loss.values();
        let core = v["core_loss"];
        if !core.is_finite() {
            return Err(TrainError::NonFinite { step: step + 1, value: core, pairs: batch.pair_ids.join(", ") });
        }
        values.push((s.micro, (v, loss.f1_counts.clone())));
        let scaled = if total > 1 { loss.core.div_scalar(total as f32) } else { loss.core };
        acc.accumulate(model, GradientsParams::from_grads(scaled.backward(), model));
    }
    Ok((acc.grads(), values))
}

/// The host all-reduce ([`Reduce::Host`]): every parameter's gradient summed over the replicas in
/// replica order on replica 0's device, and the sum handed to every replica (moved to its device).
/// A parameter with a gradient on some replicas only is summed over those.
fn host_all_reduce(model: &Sam3, grads: Vec<GradientsParams>, devices: &[Device]) -> Vec<GradientsParams> {
    struct Sum<'a> {
        grads: Vec<GradientsParams>,
        out: Vec<GradientsParams>,
        devices: &'a [Device],
    }
    impl ModuleVisitor for Sum<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let mut sum: Option<Tensor<D>> = None;
            for g in &mut self.grads {
                if let Some(t) = g.remove::<D>(param.id) {
                    sum = Some(match sum {
                        None => t,
                        Some(s) => {
                            let d = s.device();
                            s + t.to_device(&d)
                        }
                    });
                }
            }
            let Some(sum) = sum else { return };
            for (r, out) in self.out.iter_mut().enumerate().rev() {
                if r == 0 {
                    out.register(param.id, sum.clone());
                } else {
                    out.register(param.id, sum.clone().to_device(&self.devices[r]));
                }
            }
        }
    }
    let n = grads.len();
    let mut s = Sum { grads, out: (0..n).map(|_| GradientsParams::new()).collect(), devices };
    model.visit(&mut s);
    s.out
}

/// burn's collective all-reduce ([`Reduce::Collective`]) of one replica's gradients, called by
/// every replica from its own thread (NCCL's contract): first which parameters have a gradient on
/// any replica (one small all-reduce), then each of those parameters' gradients, summed, in the
/// model's parameter order — the same order on every replica. A replica without a gradient for
/// such a parameter (an empty shard) contributes zeros.
fn collective_all_reduce(model: &Sam3, grads: GradientsParams, devices: &[Device]) -> GradientsParams {
    use burn::tensor::distributed::{ReduceOperation, all_reduce};
    struct Has<'a> {
        grads: &'a GradientsParams,
        has: Vec<f32>,
    }
    impl ModuleVisitor for Has<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.has.push(if self.grads.get::<D>(param.id).is_some() { 1.0 } else { 0.0 });
        }
    }
    struct Reduce<'a> {
        grads: GradientsParams,
        any: std::vec::IntoIter<f32>,
        out: GradientsParams,
        devices: &'a [Device],
    }
    impl ModuleVisitor for Reduce<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.any.next().unwrap_or(0.0) == 0.0 {
                return;
            }
            let t = match self.grads.remove::<D>(param.id) {
                Some(t) => t,
                None => param.val().inner().zeros_like(),
            };
            self.out.register(param.id, all_reduce(t, ReduceOperation::Sum, self.devices.to_vec()).resolve());
        }
    }
    let mut has = Has { grads: &grads, has: vec![] };
    model.visit(&mut has);
    let dev = devices[0].clone();
    let flags = Tensor::<1>::from_data(TensorData::new(has.has.clone(), [has.has.len()]), &grads_device(&model.devices(), &dev));
    let any: Vec<f32> = all_reduce(flags, ReduceOperation::Sum, devices.to_vec()).resolve().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
    let mut r = Reduce { grads, any: any.into_iter(), out: GradientsParams::new(), devices };
    model.visit(&mut r);
    r.out
}

/// The device a replica's gradients live on: its model's device without autodiff.
fn grads_device(model_devices: &[Device], fallback: &Device) -> Device {
    model_devices.first().unwrap_or(fallback).clone().without_autodiff()
}

/// The squared global norm of `grads` over the trained tensors (torch's `clip_grad_norm_` norm).
fn grad_sq_norm(model: &Sam3, group: &BTreeMap<String, usize>, grads: GradientsParams, groups: usize) -> (f64, GradientsParams) {
    let mut sp = Splitter { names: vec![], containers: vec![], group, src: grads, out: (0..groups).map(|_| GradientsParams::new()).collect(), scale: 1.0, sq: 0.0, measure: true };
    model.visit(&mut sp);
    (sp.sq, sp.src)
}

/// Clip (by `scale`) and split one replica's reduced gradients by group, then take every group's
/// AdamW step on that replica.
fn replica_step(rep: &mut Replica, group: &BTreeMap<String, usize>, sel_groups: &[OptimGroup], grads: GradientsParams, scale: f32, lr: f64) {
    let mut sp = Splitter {
        names: vec![],
        containers: vec![],
        group,
        src: grads,
        out: (0..rep.optims.len()).map(|_| GradientsParams::new()).collect(),
        scale,
        sq: 0.0,
        measure: false,
    };
    rep.model.visit(&mut sp);
    let mut model = rep.model.clone();
    for (g, grads_g) in sp.out.into_iter().enumerate() {
        if grads_g.is_empty() {
            continue;
        }
        model = rep.optims[g].step(lr * sel_groups[g].lr_scale, model, grads_g);
    }
    rep.model = model;
}

/// The replicas must hold equal weights (every one takes the same step with the same gradients):
/// checked at every checkpoint, before replica 0 is written, by comparing every parameter.
fn check_in_sync(replicas: &[Replica], step: usize) -> Result<()> {
    if replicas.len() < 2 {
        return Ok(());
    }
    let all: BTreeSet<String> = params::list(&replicas[0].model, "").into_iter().map(|p| p.name).collect();
    let first = params::values(&replicas[0].model.clone().valid(), "", &all);
    for (r, rep) in replicas.iter().enumerate().skip(1) {
        let other = params::values(&rep.model.clone().valid(), "", &all);
        for ((name, _, a), (_, _, b)) in first.iter().zip(&other) {
            // Bit-equal on one device (the CPU); across GPUs NCCL hands every rank the same sum,
            // so any difference is a defect, not rounding.
            if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.to_bits() != y.to_bits()) {
                let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
                return Err(TrainError::Usage(format!(
                    "replica {r} diverged from replica 0 at step {step}: `{name}` differs by up to {worst:e} (a defect: please report it)"
                )));
            }
        }
    }
    Ok(())
}

/// Split `n` items into `parts` contiguous runs, the first ones one longer: the sizes.
fn split_sizes(n: usize, parts: usize) -> Vec<usize> {
    (0..parts).map(|r| n / parts + usize::from(r < n % parts)).collect()
}
/// Progress and identity of a run, written beside every checkpoint and read back on resume.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunState {
    pub step: usize,
    /// Batch slots drawn so far (the cadence counter; an extra stream's batch is not counted).
    pub batches: usize,
    pub cursors: BTreeMap<String, Cursor>,
}

/// What goes into `step_N.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointManifest {
    pub sam3lab_version: String,
    pub step: usize,
    pub seed: u64,
    pub recipe_sha256: String,
    pub recipe: Recipe,
    pub parent_checkpoint: String,
    pub parent_sha256: String,
    pub data: BTreeMap<String, String>,
    pub trained_tensors: usize,
    pub state: RunState,
    pub checkpoint_sha256: String,
}

/// The outcome of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub out: PathBuf,
    pub steps: usize,
    pub resumed_from: Option<usize>,
    pub checkpoints: Vec<PathBuf>,
    pub last_loss: BTreeMap<String, f32>,
    pub seconds: f64,
}

fn ckpt_path(out: &Path, step: usize) -> PathBuf {
    out.join(format!("step_{step:06}.safetensors"))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    sam3lab_util::write_atomic(path, bytes).map_err(|e| TrainError::io(path, e))
}

/// Write every parameter of `model` under its original name (torch layout, f32).
pub fn save_weights(model: &Sam3, path: &Path, metadata: Option<std::collections::HashMap<String, String>>) -> Result<String> {
    let all: BTreeSet<String> = params::list(model, "").into_iter().map(|p| p.name).collect();
    let vals = params::values(&model.clone().valid(), "", &all);
    let headers: Vec<sam3lab_checkpoint::TensorHeader> = vals
        .iter()
        .map(|(n, s, _)| sam3lab_checkpoint::TensorHeader { name: n.clone(), dtype: sam3lab_checkpoint::dtype::Dtype::F32, shape: s.clone() })
        .collect();
    let wrap = |e: sam3lab_checkpoint::CheckpointError| TrainError::input(path, e.to_string());
    let mut w = sam3lab_checkpoint::SafetensorsWriter::create(path, &headers, metadata).map_err(wrap)?;
    for (n, _, v) in &vals {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        w.write(n, &bytes).map_err(wrap)?;
    }
    w.finish().map_err(wrap)
}

/// The lines of a CSV log up to `step` (`#` lines and the header kept), for a resumed run: rows
/// written after its checkpoint must not appear twice. Empty for a fresh run.
fn keep_rows_upto(path: &Path, resumed: bool, step: usize) -> Result<String> {
    if !resumed || !path.is_file() {
        return Ok(String::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with('#') || l.starts_with("step,") || l.split(',').next().and_then(|s| s.parse::<usize>().ok()).is_some_and(|s| s <= step))
        .fold(String::new(), |mut a, l| {
            a.push_str(l);
            a.push('\n');
            a
        }))
}

/// AdamW moments of group `g` at a checkpoint (kept for every checkpoint, so any of them resumes).
fn optim_path(out: &Path, step: usize, g: usize) -> PathBuf {
    out.join(format!("step_{step:06}.optim{g}.bpk"))
}

fn latest_checkpoint(out: &Path) -> Option<(usize, PathBuf)> {
    let rd = std::fs::read_dir(out).ok()?;
    rd.filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            let s = n.strip_prefix("step_")?.strip_suffix(".json")?.parse::<usize>().ok()?;
            ckpt_path(out, s).is_file().then_some((s, e.path()))
        })
        .max_by_key(|(s, _)| *s)
}

fn optimizers(recipe: &Recipe, sel: &Selection) -> Vec<ModuleOptimizer> {
    let o = &recipe.optim;
    let mk = |wd: f32| AdamWConfig::new().with_beta_1(o.beta1).with_beta_2(o.beta2).with_epsilon(o.eps).with_weight_decay(wd).init();
    sel.groups.iter().map(|g| mk(g.weight_decay)).collect()
}

/// Run (or resume) a recipe into `out`.
pub fn run(recipe_path: &Path, out: &Path, device: &Device, progress: &dyn Progress) -> Result<RunSummary> {
    let t0 = Instant::now();
    let recipe = Recipe::load(recipe_path)?;
    let recipe_text = std::fs::read(recipe_path).map_err(|e| TrainError::io(recipe_path, e))?;
    // The run's identity: the recipe's text, and the shared objective's when `[loss] from` names one.
    let recipe_sha = match &recipe.loss_from {
        None => sam3lab_hooks::sha256_hex(&recipe_text),
        Some((_, objective)) => sam3lab_hooks::sha256_hex(&[recipe_text.as_slice(), b"\n# [loss] from:\n", objective.as_bytes()].concat()),
    };
    let named = |d: &String| {
        sam3lab_model::device::device_from_name(d).map_err(|e| TrainError::Usage(format!("recipe `devices`: {e}")))
    };
    // Data-parallel replicas: one device per entry of `devices`. The CPU is one device, so
    // `["cpu", "cpu"]` is two replicas on it; a GPU named twice would be two NCCL ranks on one GPU.
    let mut seen = BTreeSet::new();
    for d in &recipe.devices {
        let key = d.to_ascii_lowercase();
        let key = if key.contains(':') { key } else { format!("{key}:0") };
        if !key.starts_with("cpu") && !key.starts_with("flex") && !seen.insert(key) {
            return Err(TrainError::Usage(format!("recipe `devices`: `{d}` is named twice (one replica per GPU)")));
        }
    }
    let ad = match recipe.devices.first() {
        Some(d) => named(d)?.autodiff(),
        None => device.clone().autodiff(),
    };
    let ckpt = |d: Device| if recipe.gradient_checkpointing { d.gradient_checkpointing() } else { d };
    let ad = ckpt(ad);
    let replica_devices: Vec<Device> = if recipe.devices.len() > 1 {
        recipe.devices.iter().map(|d| named(d).map(|d| ckpt(d.autodiff()))).collect::<Result<_>>()?
    } else {
        vec![ad.clone()]
    };
    let reduce = match replica_devices.len() {
        1 => Reduce::None,
        // The collective runs on the gradients, which live on the devices without autodiff.
        _ if collective_capable(&recipe.devices) => {
            Reduce::Collective(replica_devices.iter().map(|d| d.clone().without_autodiff()).collect())
        }
        _ => Reduce::Host,
    };
    // burn's communication server for the collective, alive for the whole run (dropped at the end).
    let _collective = match &reduce {
        Reduce::Collective(devs) => Some(burn::tensor::distributed::DistributedContext::init(
            devs.clone(),
            burn::tensor::distributed::DistributedConfig { all_reduce_op: burn::tensor::distributed::ReduceOperation::Sum },
        )),
        _ => None,
    };
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;

    // Resume from the newest complete checkpoint of this recipe, if any.
    let resume = latest_checkpoint(out);
    let (start_ckpt, mut state, resumed_parent) = match &resume {
        Some((step, manifest)) => {
            let text = std::fs::read_to_string(manifest).map_err(|e| TrainError::io(manifest, e))?;
            let m: CheckpointManifest = serde_json::from_str(&text).map_err(|e| TrainError::input(manifest, e.to_string()))?;
            if m.recipe_sha256 != recipe_sha {
                return Err(TrainError::input(
                    out,
                    format!("holds a run of another recipe (sha256 {}…); use a new --out", &m.recipe_sha256[..12]),
                ));
            }
            (Some(ckpt_path(out, *step)), m.state, Some(m.parent_sha256))
        }
        None => (recipe.model.checkpoint.clone(), RunState { step: 0, batches: 0, cursors: BTreeMap::new() }, None),
    };
    let (mut model, mut config, loaded_sha) = match (&start_ckpt, &resume) {
        (Some(ck), _) => {
            let cfg_path = if resume.is_some() { Some(out.join("config.json")) } else { recipe.model.config.clone() };
            let (m, info) = Sam3::load(ck, cfg_path.as_deref(), &ad)?;
            (m, info.config, info.sha256)
        }
        (None, None) => {
            // From scratch: a seeded random initialisation of the recipe's config. The seed goes to
            // burn's process-wide generator: other random initialisations running at the same time
            // in this process would interleave with it.
            let cfg_path = recipe.model.config.as_ref().ok_or_else(|| TrainError::Usage("model: `init = \"random\"` needs `config`".into()))?;
            let cfg = sam3lab_model::Sam3Config::from_file(cfg_path)?;
            ad.seed(recipe.seed);
            (Sam3::new(&cfg, &ad), cfg, format!("random-init:seed={}", recipe.seed))
        }
        (None, Some(_)) => unreachable!("a resumed run starts from its checkpoint"),
    };
    // The recipe's dropout / drop-path rates (train-mode forward only) go into the run's config.
    recipe.model.apply_rates(&mut config);
    recipe.model.apply_rates(&mut model.config);
    if resume.is_none() {
        let cfg_json = serde_json::to_string_pretty(&serde_json::json!({ "model": config })).expect("config serialises");
        write_atomic(&out.join("config.json"), cfg_json.as_bytes())?;
    }
    let parent_sha = resumed_parent.unwrap_or(loaded_sha);
    let parent_label = recipe.model.checkpoint.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "random init".into());
    let cfg = config.clone();
    let sel = select(&recipe, &model)?;
    let trained: BTreeSet<String> = sel.group.keys().cloned().collect();
    let model = params::set_trainable(model, "", &|n| trained.contains(n)).train();

    // Data.
    let mut sets: Vec<Dataset> = vec![];
    for (name, spec) in &recipe.data {
        sets.push(load_stream(name, spec, cfg.image_size)?);
    }
    let primary = sets.iter().position(|d| d.name == recipe.primary()).expect("checked");
    let mut samplers: Vec<Sampler> = sets
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let cursor = state.cursors.get(&d.name).copied().unwrap_or_default();
            match recipe.data[&d.name].per_image {
                Some(per) => Sampler::grouped(recipe.seed, k as u64, crate::data::groups_by_image(d), per, cursor),
                None => Sampler::new(recipe.seed, k as u64, d.pairs.len(), cursor),
            }
        })
        .collect();
    let mut cache = ImageCache::default();
    let plain = ad.clone().without_autodiff();
    let eval_set = match &recipe.eval {
        Some(e) => {
            let spec = crate::recipe::StreamSpec { gt: e.gt.clone(), images: e.images.clone(), primary: false, every: None, extra: false, batch_size: None, only: None, per_image: None };
            Some((load_stream("eval", &spec, cfg.image_size)?, e.clone()))
        }
        None => None,
    };
    let eval_path = out.join("eval.csv");
    let mut eval_log = keep_rows_upto(&eval_path, resume.is_some(), state.step)?;
    if eval_log.is_empty() {
        eval_log = format!("{}\n", crate::evaluate::EvalRow::HEADER);
    }
    let eval_at = |model: &Sam3, step: usize, log: &mut String, cache: &mut ImageCache| -> Result<Option<crate::evaluate::EvalRow>> {
        let Some((set, spec)) = &eval_set else { return Ok(None) };
        let row = crate::evaluate::evaluate(&model.clone().valid(), set, spec, cache, step, &plain)?;
        log.push_str(&row.csv());
        Ok(Some(row))
    };
    if state.step == 0 {
        eval_at(&model, 0, &mut eval_log, &mut cache)?;
    }

    let mut optims = optimizers(&recipe, &sel);
    if resume.is_some() {
        optims = optims
            .into_iter()
            .enumerate()
            .map(|(g, o)| {
                let p = optim_path(out, state.step, g);
                if p.is_file() { o.load(&p).map_err(|e| TrainError::input(&p, format!("{e:?}"))) } else { Ok(o) }
            })
            .collect::<Result<_>>()?;
    }
    // The replicas, for the whole run: replica 0 is the loaded model, the others copies of it on
    // their devices, each with its own copy of the optimiser state (fresh, or the checkpoint's).
    let optim_groups = optims.len();
    let mut replicas: Vec<Replica> = replica_devices
        .iter()
        .enumerate()
        .map(|(r, d)| Replica {
            model: if r == 0 { model.clone() } else { model.clone().fork(d) },
            device: d.clone(),
            optims: optims.clone(),
        })
        .collect();
    drop((model, optims));

    let log_path = out.join("loss.csv");
    let mut log = keep_rows_upto(&log_path, resume.is_some(), state.step)?;
    let mut header_written = log.lines().any(|l| l.starts_with("step,"));
    if log.is_empty() {
        let _ = writeln!(log, "# recipe: {}\n# recipe_sha256: {recipe_sha}\n# parent_sha256: {parent_sha}\n# seed: {}", recipe_path.display(), recipe.seed);
    }

    let ckpts = recipe.checkpoint_steps();
    let mut written = vec![];
    let mut last = BTreeMap::new();
    progress.set_len(recipe.steps as u64);
    progress.set_position(state.step as u64);
    let resumed_from = resume.as_ref().map(|(s, _)| *s);
    let t_loop = Instant::now();
    let first_step = state.step;
    while state.step < recipe.steps {
        let step = state.step;
        // The step's micro-batches, drawn in order (the data does not depend on the devices); each
        // is split into one contiguous shard per replica.
        let n = replicas.len();
        let mut work: Vec<Vec<Shard>> = (0..n).map(|_| vec![]).collect();
        let mut micros = 0usize;
        let mut add = |picks: Vec<(&Dataset, usize)>, cache: &mut ImageCache, work: &mut Vec<Vec<Shard>>| -> Result<()> {
            let micro = micros;
            micros += 1;
            if n == 1 {
                work[0].push(Shard { micro, batch: make_batch(&picks, cache, cfg.image_size, cfg.text.context_length, &ad)?, norm: None });
                return Ok(());
            }
            let mut parts = vec![];
            let mut at = 0;
            for size in split_sizes(picks.len(), n) {
                parts.push((size > 0).then(|| make_batch(&picks[at..at + size], cache, cfg.image_size, cfg.text.context_length, &ad)).transpose()?);
                at += size;
            }
            let boxes: usize = parts.iter().flatten().map(|b| b.targets.total()).sum();
            let norm = BatchNorm { batch: picks.len(), num_boxes: (boxes as f32).max(1.0) };
            for (r, part) in parts.into_iter().enumerate() {
                if let Some(batch) = part {
                    work[r].push(Shard { micro, batch, norm: Some(norm) });
                }
            }
            Ok(())
        };
        for _ in 0..recipe.grad_accum {
            // Cadence (counted in batch slots, `grad_accum` per step): the replacing secondary
            // streams due at this slot share it; else the primary fills it. An `extra` stream due
            // at this slot adds a batch of its own after it.
            let k = state.batches;
            let is_due = |i: usize| i != primary && recipe.data[&sets[i].name].every.is_some_and(|e| (k + 1) % e == 0);
            let due: Vec<usize> = (0..sets.len()).filter(|&i| is_due(i) && !recipe.data[&sets[i].name].extra).collect();
            let extra: Vec<usize> = (0..sets.len()).filter(|&i| is_due(i) && recipe.data[&sets[i].name].extra).collect();
            let sources = if due.is_empty() { vec![primary] } else { due };
            let mut picks: Vec<(&Dataset, usize)> = vec![];
            for (j, &src) in sources.iter().enumerate() {
                let share = recipe.batch_size / sources.len() + usize::from(j < recipe.batch_size % sources.len());
                for i in samplers[src].take(share) {
                    picks.push((&sets[src], i));
                }
            }
            add(picks, &mut cache, &mut work)?;
            for src in extra {
                let size = recipe.data[&sets[src].name].batch_size.unwrap_or(recipe.batch_size);
                let picks: Vec<(&Dataset, usize)> = samplers[src].take(size).into_iter().map(|i| (&sets[src], i)).collect();
                add(picks, &mut cache, &mut work)?;
            }
            state.batches += 1;
        }
        // Data parallel: replica r runs shard r of every micro-batch (each shard's loss normalised
        // by its whole micro-batch and divided by grad_accum), then the replicas' gradients are
        // all-reduced (summed), so every replica holds the one-device gradient of the step.
        let recipe_ref = &recipe;
        let results: Vec<Result<(GradientsParams, Vec<(usize, ShardValues)>)>> = if n == 1 {
            vec![micro_steps(&replicas[0].model, &replicas[0].device, &work[0], 0, recipe_ref, step)]
        } else {
            std::thread::scope(|scope| {
                let hs: Vec<_> = replicas
                    .iter()
                    .zip(&work)
                    .enumerate()
                    .map(|(r, (rep, w))| scope.spawn(move || micro_steps(&rep.model, &rep.device, w, r, recipe_ref, step)))
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
            })
        };
        let mut per_replica = vec![];
        let mut by_micro: BTreeMap<usize, Vec<ShardValues>> = BTreeMap::new();
        for res in results {
            let (g, vals) = res?;
            per_replica.push(g);
            for (micro, v) in vals {
                by_micro.entry(micro).or_default().push(v);
            }
        }
        // The logged loss terms: each micro-batch's (its shards combined), divided by grad_accum.
        let mut sums: BTreeMap<String, f32> = BTreeMap::new();
        for (_, shards) in by_micro {
            let values = if shards.len() == 1 { shards.into_iter().next().expect("one").0 } else { combine_shards(&shards) };
            for (k, v) in values {
                *sums.entry(k).or_default() += v / recipe.grad_accum as f32;
            }
        }
        let reduced: Vec<GradientsParams> = match &reduce {
            Reduce::None => per_replica,
            Reduce::Host => host_all_reduce(&replicas[0].model, per_replica, &replica_devices),
            Reduce::Collective(devs) => std::thread::scope(|scope| {
                let hs: Vec<_> = replicas
                    .iter()
                    .zip(per_replica)
                    .map(|(rep, g)| scope.spawn(move || collective_all_reduce(&rep.model, g, devs)))
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
            }),
        };
        // Global-norm clipping as torch's clip_grad_norm_ (burn's own clipping is per tensor): the
        // norm of replica 0's reduced gradient, which every replica holds.
        let mut reduced = reduced.into_iter();
        let (sq, first) = grad_sq_norm(&replicas[0].model, &sel.group, reduced.next().expect("one replica"), optim_groups);
        let norm = sq.sqrt();
        let mut scale = 1.0f32;
        if let Some(max) = recipe.optim.clip_grad_norm {
            let coef = max as f64 / (norm + 1e-6);
            if coef < 1.0 {
                scale = coef as f32;
            }
        }
        let factor = recipe.schedule.factor(step, recipe.steps);
        let lr = recipe.optim.lr * factor;
        // One optimiser step per replica, with the same gradients: the replicas stay equal.
        let grads_all: Vec<GradientsParams> = std::iter::once(first).chain(reduced).collect();
        if n == 1 {
            let g = grads_all.into_iter().next().expect("one");
            replica_step(&mut replicas[0], &sel.group, &sel.groups, g, scale, lr);
        } else {
            let group = &sel.group;
            let groups = &sel.groups;
            std::thread::scope(|scope| {
                for (rep, g) in replicas.iter_mut().zip(grads_all) {
                    scope.spawn(move || replica_step(rep, group, groups, g, scale, lr));
                }
            });
        }
        state.step += 1;
        progress.inc(1);
        let rate = (state.step - first_step) as f64 / t_loop.elapsed().as_secs_f64().max(1e-9);
        progress.set_message(&format!(
            "loss {:.4} (ce {:.4}, presence {:.4}, bbox {:.4}) {rate:.2} steps/s",
            sums.get("core_loss").copied().unwrap_or(f32::NAN),
            sums.get("loss_ce").copied().unwrap_or(f32::NAN),
            sums.get("presence_loss").copied().unwrap_or(f32::NAN),
            sums.get("loss_bbox").copied().unwrap_or(f32::NAN),
        ));
        if state.step % recipe.log_every == 0 || state.step == recipe.steps {
            if !header_written {
                let header = ["step", "lr", "grad_norm"].into_iter().map(String::from).chain(sums.keys().cloned());
                log.push_str(&sam3lab_util::csv::line(header));
                header_written = true;
            }
            let vals: Vec<String> = sums.values().map(|v| format!("{v}")).collect();
            let row = [state.step.to_string(), lr.to_string(), norm.to_string()].into_iter().chain(vals);
            log.push_str(&sam3lab_util::csv::line(row));
        }
        last = sums;
        if recipe.eval.as_ref().is_some_and(|e| state.step % e.every == 0 || state.step == recipe.steps) {
            if let Some(r) = eval_at(&replicas[0].model, state.step, &mut eval_log, &mut cache)? {
                let line = format!(
                    "step {}: neg_correct {:?} pos_detect {:?} presence_acc {:.3} score_auc {:?} best_iou {:?} ({:.1} steps/s)",
                    r.step, r.neg_correct, r.pos_detect, r.presence_acc, r.score_auc, r.best_iou, rate
                );
                // Through the display, which keeps it above a bar (stderr when there is none).
                progress.println(&line);
                // Rows past the last checkpoint are dropped again on resume, so this is safe.
                write_atomic(&eval_path, eval_log.as_bytes())?;
            }
        }
        if ckpts.contains(&state.step) {
            for (k, s) in sets.iter().zip(&samplers) {
                state.cursors.insert(k.name.clone(), s.cursor);
            }
            let path = ckpt_path(out, state.step);
            check_in_sync(&replicas, state.step)?;
            let sha = save_weights(&replicas[0].model, &path, None)?;
            for (g, o) in replicas[0].optims.iter().enumerate() {
                let p = optim_path(out, state.step, g);
                o.save(&p).map_err(|e| TrainError::input(&p, format!("cannot save optimiser state: {e:?}")))?;
            }
            let manifest = CheckpointManifest {
                sam3lab_version: env!("CARGO_PKG_VERSION").into(),
                step: state.step,
                seed: recipe.seed,
                recipe_sha256: recipe_sha.clone(),
                recipe: recipe.clone(),
                parent_checkpoint: parent_label.clone(),
                parent_sha256: parent_sha.clone(),
                data: sets.iter().map(|d| (d.name.clone(), d.gt_sha256.clone())).collect(),
                trained_tensors: trained.len(),
                state: state.clone(),
                checkpoint_sha256: sha,
            };
            write_atomic(&log_path, log.as_bytes())?;
            if eval_set.is_some() {
                write_atomic(&eval_path, eval_log.as_bytes())?;
            }
            // The manifest last: its presence marks the checkpoint complete (what resume looks for).
            let mpath = out.join(format!("step_{:06}.json", state.step));
            write_atomic(&mpath, serde_json::to_string_pretty(&manifest).expect("manifest").as_bytes())?;
            written.push(path);
        }
    }
    write_atomic(&log_path, log.as_bytes())?;
    if eval_set.is_some() {
        write_atomic(&eval_path, eval_log.as_bytes())?;
    }
    Ok(RunSummary { out: out.to_path_buf(), steps: recipe.steps, resumed_from, checkpoints: written, last_loss: last, seconds: t0.elapsed().as_secs_f64() })
}
