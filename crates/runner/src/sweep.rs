//! One generic activation patch / sweep, in the manner of TransformerLens's
//! `generic_activation_patch`: run SOURCE checkpoints and a TARGET over (image, prompt) pairs, run
//! TARGET once more under each of a list of [`Intervention`]s (patch named hook points with a
//! source's activations, add α·direction, scale, zero, any hook action), and read one metric per run
//! off the output — a table with the unpatched baseline, the sources and every intervention.
//!
//! `probe patch` (`sam3lab_probes::patch`) is a sweep over point sets patched from one source, `probe steer`
//! (`sam3lab-steering`) a sweep over α, and [`for_each_pair`], the loop underneath, is what `probe
//! heads` and the steering mean difference use to run several checkpoints over the same pairs.
//!
//! ```no_run
//! # use sam3lab_runner::{model, inputs, sweep::{self, Intervention, Sweep}};
//! # fn main() -> sam3lab_runner::Result<()> {
//! # let dev = burn::prelude::Device::flex();
//! let target = model::load(&model::CkptSpec::new("target", "data/fixtures/sam3-tiny"), None, &dev)?;
//! let source = model::load(&model::CkptSpec::new("source", "ft.safetensors"), None, &dev)?;
//! let pairs = inputs::read_pairs("pairs.jsonl".as_ref())?;
//! let points: Vec<String> = (0..6).map(|l| format!("decoder.layers.{l}.q0")).collect();
//! let s = Sweep {
//!     target: &target,
//!     sources: vec![&source],
//!     capture: vec![],
//!     // One intervention per layer: patch that layer's q0 from source 0.
//!     interventions: points.iter().map(|p| Intervention::patch(p, &[p.clone()], 0)).collect(),
//! };
//! let all: Vec<_> = pairs.pairs.iter().collect();
//! let t = sweep::run(&s, &all, &sam3lab_util::progress::NoProgress, |out| Ok(model::outcome(out)))?;
//! // neg_correct (the evaluator's rule) before and under each patch
//! let (before, after) = t.reduce(|col| model::neg_correct(col.iter().filter(|(r, _)| r.pair.label == inputs::Label::Neg).map(|(_, o)| *o)));
//! # Ok(()) }
//! ```
//!
//! Every run of a pair (sources, baseline, interventions) captures the same points — [`Sweep::points`]:
//! `capture` plus every point an intervention edits — so all of them take the same computation path
//! (per-head attention is computed explicitly when a head point is involved): patching a checkpoint
//! into itself gives the baseline bit for bit. Images are encoded once per checkpoint and image,
//! prompts once per checkpoint.

use sam3lab_util::progress::Progress;
use sam3lab_hooks::{Action, ActivationCache, DynTensor, HookSpec};
use sam3lab_model::GroundingOutput;
use sam3lab_model::predict::{Predictor, Stages};

use crate::{RunError, Result};
use crate::inputs::{Item, Pair, by_image};
use crate::model::{self, Loaded, TextCache};

/// One image under several checkpoints (the model's one loop, `sam3lab_model::runs`).
pub use sam3lab_model::runs::ImageRuns;

/// One item run under several checkpoints (see [`for_each_pair`]).
pub struct PairRuns<'r, 'a, I = Pair> {
    pub pair: &'a I,
    image: &'r mut ImageRuns<'a>,
    stages: Stages,
}

impl<I: Item> PairRuns<'_, '_, I> {
    /// Forward checkpoint `k` (its index in [`for_each_pair`]'s `models`) on this item under `spec`.
    pub fn run(&mut self, k: usize, spec: HookSpec) -> Result<(GroundingOutput, ActivationCache)> {
        Ok(self.image.run(k, self.pair.prompt(), spec, self.stages)?)
    }

    /// Forward checkpoint `k` capturing `points`.
    pub fn capture(&mut self, k: usize, points: &[String]) -> Result<(GroundingOutput, ActivationCache)> {
        self.run(k, HookSpec::new().capture_all(points)?)
    }
}

/// Call `f` on every item, grouped by image (each image loaded once and encoded once per
/// checkpoint, each prompt encoded once per checkpoint); `points` are the hook points the runs will
/// touch (an image- or text-encoder point makes those encoders run under the hooks). One progress
/// tick per item.
pub fn for_each_pair<I: Item>(
    models: &[&Loaded],
    pairs: &[&I],
    points: &[String],
    progress: &dyn Progress,
    mut f: impl FnMut(&mut PairRuns<'_, '_, I>) -> Result<()>,
) -> Result<()> {
    let stages = Stages::of_points(points);
    let predictors: Vec<&Predictor> = models.iter().map(|m| &m.predictor).collect();
    let mut texts: Vec<TextCache> = models.iter().map(|_| TextCache::default()).collect();
    for (image, ps) in by_image(pairs) {
        let rgb = model::load_rgb(&image)?;
        let mut runs = ImageRuns::new(&predictors, &rgb, &mut texts);
        for pair in ps {
            f(&mut PairRuns { pair, image: &mut runs, stages })?;
            progress.inc(1);
        }
    }
    Ok(())
}

/// One edit of TARGET's forward.
#[derive(Clone)]
pub enum Edit {
    /// Replace `point` with source `source`'s activation there on the same pair (activation patching).
    Patch { point: String, source: usize },
    /// Any hook action at `point`: `Action::Add` (steering), `Scale`, `Zero`, `Replace` with a fixed tensor, `Map`.
    Hook { point: String, action: Action },
}

impl Edit {
    pub fn point(&self) -> &str {
        match self {
            Edit::Patch { point, .. } | Edit::Hook { point, .. } => point,
        }
    }
}

/// A named set of edits applied together (in order) in one TARGET forward.
#[derive(Clone)]
pub struct Intervention {
    pub name: String,
    pub edits: Vec<Edit>,
}

impl Intervention {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), edits: Vec::new() }
    }

    /// Append an edit.
    pub fn with(mut self, edit: Edit) -> Self {
        self.edits.push(edit);
        self
    }

    /// Patch every one of `points` from source `source`.
    pub fn patch(name: impl Into<String>, points: &[String], source: usize) -> Self {
        Self { name: name.into(), edits: points.iter().map(|p| Edit::Patch { point: p.clone(), source }).collect() }
    }

    /// Add `alpha · value` at `point` (a `[d]` value broadcasts along the point's last axis).
    pub fn add(name: impl Into<String>, point: &str, value: DynTensor, alpha: f32) -> Self {
        Self::new(name).with(Edit::Hook { point: point.into(), action: Action::Add { value, alpha } })
    }
}

/// What to run: TARGET under each intervention, with SOURCE runs to patch from.
pub struct Sweep<'m> {
    pub target: &'m Loaded,
    /// Checkpoints whose activations [`Edit::Patch`] reads (index = position here); may be empty.
    pub sources: Vec<&'m Loaded>,
    /// Exact hook names every run captures besides the edited points (what an `observe` closure reads).
    pub capture: Vec<String>,
    pub interventions: Vec<Intervention>,
}

impl Sweep<'_> {
    /// The points every run captures: `capture`, then each intervention's edited points in order,
    /// without duplicates.
    pub fn points(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let edited = self.interventions.iter().flat_map(|i| i.edits.iter().map(|e| e.point()));
        for p in self.capture.iter().map(String::as_str).chain(edited) {
            if !out.iter().any(|o| o == p) {
                out.push(p.to_string());
            }
        }
        out
    }
}

/// One pair's metric values.
#[derive(Clone, Debug)]
pub struct Row<M, X = ()> {
    pub pair: Pair,
    /// One per source, in source order (the sources' own plain forwards).
    pub sources: Vec<M>,
    /// TARGET's plain forward.
    pub baseline: M,
    /// One per intervention, in intervention order.
    pub patched: Vec<M>,
    /// What `observe` returned (see [`run_observed`]).
    pub extra: X,
}

/// The sweep's result: one row per pair, in pair-file order.
#[derive(Clone, Debug)]
pub struct Table<M, X = ()> {
    pub interventions: Vec<String>,
    /// The points every run captured ([`Sweep::points`]).
    pub points: Vec<String>,
    pub rows: Vec<Row<M, X>>,
}

impl<M, X> Table<M, X> {
    /// A pair-set metric (neg_correct, a mean …) of the baseline and of each intervention: `f` gets
    /// the column as (row, value) pairs in row order.
    pub fn reduce<R>(&self, mut f: impl FnMut(&[(&Row<M, X>, &M)]) -> R) -> (R, Vec<R>) {
        let base: Vec<_> = self.rows.iter().map(|r| (r, &r.baseline)).collect();
        let each = (0..self.interventions.len())
            .map(|k| f(&self.rows.iter().map(|r| (r, &r.patched[k])).collect::<Vec<_>>()))
            .collect();
        (f(&base), each)
    }
}

/// Run the sweep over `pairs`, reading `metric` off every forward's output (see [`run_observed`]).
pub fn run<M>(
    s: &Sweep,
    pairs: &[&Pair],
    progress: &dyn Progress,
    metric: impl FnMut(&GroundingOutput) -> Result<M>,
) -> Result<Table<M>> {
    run_observed(s, pairs, progress, metric, |_, _, _| Ok(()))
}

/// [`run`], plus `observe(pair, source caches, baseline cache)` once per pair, its value kept in
/// [`Row::extra`] (the caches hold [`Sweep::points`]). Per pair: every source plain, TARGET plain
/// (the baseline), then TARGET under each intervention (its edits in order, then the captures).
pub fn run_observed<M, X>(
    s: &Sweep,
    pairs: &[&Pair],
    progress: &dyn Progress,
    mut metric: impl FnMut(&GroundingOutput) -> Result<M>,
    mut observe: impl FnMut(&Pair, &[ActivationCache], &ActivationCache) -> Result<X>,
) -> Result<Table<M, X>> {
    let points = s.points();
    for i in &s.interventions {
        for e in &i.edits {
            if let Edit::Patch { source, .. } = e
                && *source >= s.sources.len()
            {
                return Err(RunError::Usage(format!(
                    "intervention `{}` patches from source {source}; the sweep has {} source(s)",
                    i.name,
                    s.sources.len()
                )));
            }
        }
    }
    let mut models: Vec<&Loaded> = s.sources.clone();
    models.push(s.target);
    let t = s.sources.len();
    let mut rows = Vec::with_capacity(pairs.len());
    for_each_pair(&models, pairs, &points, progress, |runs| {
        let mut source_caches = Vec::with_capacity(t);
        let mut sources = Vec::with_capacity(t);
        for k in 0..t {
            let (out, cache) = runs.capture(k, &points)?;
            sources.push(metric(&out)?);
            source_caches.push(cache);
        }
        let (out, base_cache) = runs.capture(t, &points)?;
        let baseline = metric(&out)?;
        let mut patched = Vec::with_capacity(s.interventions.len());
        for i in &s.interventions {
            let mut spec = HookSpec::new();
            for e in &i.edits {
                spec = match e {
                    Edit::Patch { point, source } => spec.replace(point, source_caches[*source].get(point)?.clone())?,
                    Edit::Hook { point, action } => spec.push(point, action.clone())?,
                };
            }
            let (out, _) = runs.run(t, spec.capture_all(&points)?)?;
            patched.push(metric(&out)?);
        }
        let extra = observe(runs.pair, &source_caches, &base_cache)?;
        rows.push(Row { pair: runs.pair.clone(), sources, baseline, patched, extra });
        Ok(())
    })?;
    rows.sort_by_key(|r| r.pair.index);
    Ok(Table { interventions: s.interventions.iter().map(|i| i.name.clone()).collect(), points, rows })
}
