//! Per-head ranking (post §9, probe 2) and, on non-head points, the layer-level cosine probe
//! (§9, probe 1).
//!
//! For every unit — an attention head's contribution `{module}.head.{h}` (its share of the attention
//! output before the residual add, no bias), or any hook point — and every pair, take the slot the
//! post reads (row 0 = the presence token q0 by default) under three checkpoints A, B and REF, and
//! report over the pairs:
//! - `delta_norm`: mean ‖c_B − c_A‖₂ (the ranking key, descending);
//! - `cos_toward_ref`: mean over pairs of cos(c_B − c_A, c_REF − c_A) ("does B's shift point back
//!   toward REF?"), pairs where either difference is zero left out;
//! - `cos_toward_ref_pooled`: the cosine of the two differences summed over the pairs;
//! - `mag_a`, `mag_b`, `mag_ref`: each checkpoint's mean ‖c‖₂.
//!
//! The three models run in lockstep over the pairs ([`sweep::for_each_pair`]: all loaded, each image
//! encoded once per model), so memory is three models plus one pair's activations. This probe ranks
//! differences between checkpoints and patches nothing; [`crate::sweep`] patches.
//!
//! Sharded: [`run_shard`] measures the pairs of one shard's images and [`merge`] puts N shards back
//! together; both [`run`] and [`merge`] make their result through one assembler fed the per-(pair,
//! unit) rows in run order (the shard format: [`crate::shard`]), so merged shards give [`run`]'s bytes.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use sam3lab_util::progress::Progress;
use sam3lab_results::{HeatmapTable, Scale, ScaleKind};
use sam3lab_hooks::{DynTensor, HookError, HookPattern};
use serde::{Deserialize, Serialize};

use crate::{ProbeError, Result};
use crate::inputs::{LabelFilter, Pairs, pair_image_records, shard_pairs};
use crate::manifest::{Csv, Manifest, num, pairs_record, write_json};
use crate::model::{self, CkptSpec};
use crate::shard::{self, Measured, PairRow, Plan, PlanPair, Shard, ShardFile};
use crate::sweep;

/// Which part of a `(B, L, d)` point a unit is read at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// Row 0 of a decoder point: the presence token (refused on other points).
    Q0,
    /// Row `r` of the sequence axis.
    Row(usize),
    /// The whole tensor, flattened.
    All,
}

impl Slot {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "q0" => Ok(Slot::Q0),
            "all" => Ok(Slot::All),
            _ => s
                .parse::<usize>()
                .map(Slot::Row)
                .map_err(|_| ProbeError::Usage(format!("--slot `{s}` must be q0, all or a row index"))),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Slot::Q0 => "q0".into(),
            Slot::Row(r) => format!("row {r}"),
            Slot::All => "all".into(),
        }
    }

    /// The slot's values (f64) of a batch-1 activation. A `(1, d)` point is read whole.
    pub fn extract(&self, name: &str, t: &DynTensor) -> Result<Vec<f64>> {
        Ok(self.extract_f32(name, t)?.into_iter().map(f64::from).collect())
    }

    /// [`Slot::extract`] as the activation's own f32 values.
    pub fn extract_f32(&self, name: &str, t: &DynTensor) -> Result<Vec<f32>> {
        let shape = t.shape();
        if shape.first() != Some(&1) {
            return Err(ProbeError::Usage(format!("`{name}` has shape {shape:?}; the probe reads batch 1")));
        }
        if *self == Slot::Q0 && !name.starts_with("decoder.layers.") {
            return Err(ProbeError::Usage(format!(
                "--slot q0 is the decoder's presence-token row; `{name}` is not a decoder point (use --slot 0 for its row 0, or --slot all)"
            )));
        }
        let v = t.to_vec();
        let row = match self {
            Slot::Q0 => Some(0),
            Slot::Row(r) => Some(*r),
            Slot::All => None,
        };
        let out: Vec<f32> = match (row, shape.len()) {
            (_, 2) | (None, _) => v,
            (Some(r), 3) => {
                let (l, d) = (shape[1], shape[2]);
                if r >= l {
                    return Err(ProbeError::Usage(format!("--slot row {r} is outside `{name}` (shape {shape:?})")));
                }
                v[r * d..(r + 1) * d].to_vec()
            }
            (Some(_), _) => {
                return Err(ProbeError::Usage(format!(
                    "--slot {} needs a (B, L, d) point, `{name}` has shape {shape:?}: use --slot all",
                    self.describe()
                )));
            }
        };
        Ok(out)
    }
}

pub struct HeadsRequest {
    pub a: CkptSpec,
    pub b: CkptSpec,
    pub reference: CkptSpec,
    pub config: Option<PathBuf>,
    pub pairs: Pairs,
    /// Attention module pattern (`decoder.layers.3..5.ca_text` → its `.head.*` points), or any hook
    /// name / pattern (each matching point is one unit).
    pub module: String,
    pub label: LabelFilter,
    pub slot: Slot,
    pub seed: u64,
    pub device: Device,
}

/// One unit's numbers.
#[derive(Clone, Debug, Serialize)]
pub struct UnitStats {
    /// 1-based rank by `delta_norm` (descending).
    pub rank: usize,
    /// The hook point, e.g. `decoder.layers.4.ca_text.head.0`.
    pub unit: String,
    /// The attention module (`decoder.layers.4.ca_text`) for a head, else the point itself.
    pub module: String,
    pub head: Option<usize>,
    pub delta_norm: f64,
    pub cos_toward_ref: Option<f64>,
    pub cos_toward_ref_pooled: Option<f64>,
    pub mag_a: f64,
    pub mag_b: f64,
    pub mag_ref: f64,
    pub pairs: usize,
    /// Pairs that entered `cos_toward_ref` (both differences non-zero).
    pub cos_pairs: usize,
}

/// One (pair, unit) measurement.
#[derive(Clone, Debug, Serialize)]
pub struct PairUnit {
    pub pair: usize,
    pub label: String,
    pub unit: String,
    pub norm_a: f64,
    pub norm_b: f64,
    pub norm_ref: f64,
    pub delta_norm: f64,
    pub cos_toward_ref: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct HeadsResult {
    pub module: String,
    pub slot: String,
    pub label: String,
    pub units: Vec<UnitStats>,
    #[serde(skip)]
    pub per_pair: Vec<PairUnit>,
    pub manifest: Manifest,
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// cos(a, b), `None` when either has zero length.
pub fn cosine(a: &[f64], b: &[f64]) -> Option<f64> {
    let (na, nb) = (norm(a), norm(b));
    (na > 0.0 && nb > 0.0).then(|| (dot(a, b) / (na * nb)).clamp(-1.0, 1.0))
}

/// Split `x.head.3` into (`x`, 3).
pub fn split_head(unit: &str) -> Option<(String, usize)> {
    let (m, h) = unit.rsplit_once(".head.")?;
    h.parse().ok().map(|h| (m.to_string(), h))
}

/// Units of a module pattern: its heads when it names attention modules, else the points it matches.
pub fn resolve_units(registry: &sam3lab_hooks::HookRegistry, module: &str) -> Result<Vec<String>> {
    let as_heads: Result<HookPattern, HookError> = format!("{module}.head.*").parse();
    if let Ok(p) = as_heads
        && let Ok(hits) = registry.expand(&p)
    {
        return Ok(hits.iter().map(|h| h.as_str().to_string()).collect());
    }
    model::resolve_points(registry, &[module.to_string()])
}

#[derive(Default, Clone)]
struct Acc {
    delta: f64,
    cos: f64,
    cos_n: usize,
    sum_ba: Vec<f64>,
    sum_ra: Vec<f64>,
    mag: [f64; 3],
    n: usize,
}

/// The `probe` of a heads shard file.
pub const PROBE: &str = "heads";

/// One (pair, unit) measurement: the slot's values under A, B and REF (f32, exactly).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub pair: usize,
    /// The unit's position in the manifest's `points`.
    pub unit: usize,
    #[serde(with = "crate::shard::hex32")]
    pub a: Vec<f32>,
    #[serde(with = "crate::shard::hex32")]
    pub b: Vec<f32>,
    #[serde(with = "crate::shard::hex32")]
    pub r: Vec<f32>,
}

impl PairRow for Row {
    fn pair(&self) -> usize {
        self.pair
    }
}

/// What the ranking records besides the rows and the manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub module: String,
    pub slot: String,
    pub label: String,
}

/// A heads shard (`probe heads --shard K/N`'s `heads_shard.json`).
pub type HeadsShard = ShardFile<Context, Row>;

/// The ranking from the measurements, fed in run order one row at a time (so an unsharded run keeps
/// one pair's activations, not every pair's): the one path by which [`run`] and [`merge`] make
/// their result.
struct Assembler {
    units: Vec<String>,
    accs: Vec<Acc>,
    per_pair: Vec<PairUnit>,
}

impl Assembler {
    fn new(units: &[String]) -> Self {
        Assembler { units: units.to_vec(), accs: vec![Acc::default(); units.len()], per_pair: Vec::new() }
    }

    fn push(&mut self, pair: &PlanPair, row: &Row) -> Result<()> {
        let (Some(unit), Some(acc)) = (self.units.get(row.unit), self.accs.get_mut(row.unit)) else {
            return Err(ProbeError::Usage(format!("heads: a measurement of unit {} outside the run", row.unit)));
        };
        if row.b.len() != row.a.len() || row.r.len() != row.a.len() {
            return Err(ProbeError::Usage(format!("heads: pair {} unit `{unit}` has slot vectors of different lengths", row.pair)));
        }
        let f = |v: &[f32]| -> Vec<f64> { v.iter().map(|&x| f64::from(x)).collect() };
        let (a, b, r) = (f(&row.a), f(&row.b), f(&row.r));
        let ba: Vec<f64> = b.iter().zip(&a).map(|(x, y)| x - y).collect();
        let ra: Vec<f64> = r.iter().zip(&a).map(|(x, y)| x - y).collect();
        if acc.sum_ba.is_empty() {
            acc.sum_ba = vec![0.0; ba.len()];
            acc.sum_ra = vec![0.0; ra.len()];
        }
        for (s, x) in acc.sum_ba.iter_mut().zip(&ba) {
            *s += x;
        }
        for (s, x) in acc.sum_ra.iter_mut().zip(&ra) {
            *s += x;
        }
        let dn = norm(&ba);
        let cos = cosine(&ba, &ra);
        acc.delta += dn;
        if let Some(c) = cos {
            acc.cos += c;
            acc.cos_n += 1;
        }
        let mags = [norm(&a), norm(&b), norm(&r)];
        for (m, x) in acc.mag.iter_mut().zip(mags) {
            *m += x;
        }
        acc.n += 1;
        self.per_pair.push(PairUnit {
            pair: pair.index,
            label: pair.label.as_str().into(),
            unit: unit.clone(),
            norm_a: mags[0],
            norm_b: mags[1],
            norm_ref: mags[2],
            delta_norm: dn,
            cos_toward_ref: cos,
        });
        Ok(())
    }

    fn finish(self, manifest: Manifest, cx: Context) -> HeadsResult {
        let mut stats: Vec<UnitStats> = self
            .units
            .iter()
            .zip(&self.accs)
            .map(|(u, a)| {
                let n = a.n as f64;
                let (module, head) = match split_head(u) {
                    Some((m, h)) => (m, Some(h)),
                    None => (u.clone(), None),
                };
                UnitStats {
                    rank: 0,
                    unit: u.clone(),
                    module,
                    head,
                    delta_norm: a.delta / n,
                    cos_toward_ref: (a.cos_n > 0).then(|| a.cos / a.cos_n as f64),
                    cos_toward_ref_pooled: cosine(&a.sum_ba, &a.sum_ra),
                    mag_a: a.mag[0] / n,
                    mag_b: a.mag[1] / n,
                    mag_ref: a.mag[2] / n,
                    pairs: a.n,
                    cos_pairs: a.cos_n,
                }
            })
            .collect();
        // Stable: ties keep forward order.
        stats.sort_by(|x, y| y.delta_norm.total_cmp(&x.delta_norm));
        for (i, s) in stats.iter_mut().enumerate() {
            s.rank = i + 1;
        }
        HeadsResult { module: cx.module, slot: cx.slot, label: cx.label, units: stats, per_pair: self.per_pair, manifest }
    }
}

/// Run the head ranking.
pub fn run(req: &HeadsRequest, progress: &dyn Progress) -> Result<HeadsResult> {
    // The loop measures the pairs in run order, so each row goes straight into the ranking.
    let mut asm: Option<Assembler> = None;
    let (manifest, cx, _) = measure(req, None, progress, |units, pair, row| asm.get_or_insert_with(|| Assembler::new(units)).push(pair, &row))?;
    let asm = asm.unwrap_or_else(|| Assembler::new(&manifest.points));
    Ok(asm.finish(manifest, cx))
}

/// Run shard `shard`: the pairs of the images g ≡ K (mod N); [`merge`] of all N shards gives what
/// [`run`] gives.
pub fn run_shard(req: &HeadsRequest, shard: Shard, progress: &dyn Progress) -> Result<HeadsShard> {
    let mut rows = Vec::new();
    let (manifest, cx, plan) = measure(req, Some(shard), progress, |_, _, row| {
        rows.push(row);
        Ok(())
    })?;
    Ok(Measured::new(manifest, cx, plan, rows).into_shard(PROBE, shard))
}

/// Put the shards (files or their directories, any order) of one run back together: what [`run`]
/// returns.
pub fn merge(shards: &[PathBuf]) -> Result<HeadsResult> {
    let m: Measured<Context, Row> = shard::merge_files(PROBE, shards)?;
    let mut asm = Assembler::new(&m.manifest.points);
    for row in &m.rows {
        let Some(pair) = m.plan.pair(row.pair) else {
            return Err(ProbeError::Usage(format!("heads: a measurement of pair {}, which the run did not select", row.pair)));
        };
        asm.push(pair, row)?;
    }
    Ok(asm.finish(m.manifest, m.context))
}

/// Measure the pairs (all, or one shard's), handing `sink(units, pair, row)` every (pair, unit) in
/// run order; returns the whole run's manifest, context and plan.
fn measure(
    req: &HeadsRequest,
    shard: Option<Shard>,
    progress: &dyn Progress,
    mut sink: impl FnMut(&[String], &PlanPair, Row) -> Result<()>,
) -> Result<(Manifest, Context, Plan)> {
    let selected = req.pairs.select(req.label)?;
    let mine = match shard {
        Some(s) => shard_pairs(&selected, s),
        None => selected.clone(),
    };
    let plan = Plan::of(&selected);
    let cfg = req.config.as_deref();
    let models = [
        model::load(&req.a, cfg, &req.device)?,
        model::load(&req.b, cfg, &req.device)?,
        model::load(&req.reference, cfg, &req.device)?,
    ];
    model::check_same_config(&models.iter().collect::<Vec<_>>())?;
    let units = resolve_units(&models[0].registry, &req.module)?;
    progress.set_len(mine.len() as u64);
    sweep::for_each_pair(&models.iter().collect::<Vec<_>>(), &mine, &units, progress, |runs| {
        let caches = (0..3).map(|k| runs.capture(k, &units).map(|(_, c)| c)).collect::<Result<Vec<_>>>()?;
        for (k, u) in units.iter().enumerate() {
            let [a, b, r] = [0, 1, 2].map(|m| caches[m].get(u).map_err(ProbeError::from).and_then(|t| req.slot.extract_f32(u, t)));
            let pair = plan.pair(runs.pair.index).expect("a selected pair");
            sink(&units, pair, Row { pair: runs.pair.index, unit: k, a: a?, b: b?, r: r? })?;
        }
        Ok(())
    })?;

    let mut manifest = Manifest::new("sam3lab probe heads", req.seed);
    model::describe(&mut manifest, &models.iter().collect::<Vec<_>>(), cfg)?;
    for (rec, role) in manifest.checkpoints.iter_mut().zip(["a", "b", "ref"]) {
        rec.label = role.into();
    }
    manifest.points = units;
    manifest.images = pair_image_records(&selected)?;
    manifest.pairs = Some(pairs_record(&req.pairs, selected.len()));
    manifest.option("module", &req.module);
    manifest.option("slot", req.slot.describe());
    manifest.option("label", req.label.as_str());
    manifest.notes = vec![
        "a unit `M.head.h` is head h's contribution to attention M's output (before the residual add, out-projection bias excluded)".into(),
        "delta_norm = mean over pairs of ‖c_b − c_a‖₂ at the slot; units are ranked by it (descending)".into(),
        "cos_toward_ref = mean over pairs of cos(c_b − c_a, c_ref − c_a) (pairs with a zero difference left out); cos_toward_ref_pooled = cos(Σ(c_b − c_a), Σ(c_ref − c_a))".into(),
        "mag_a / mag_b / mag_ref = mean ‖c‖₂ under each checkpoint".into(),
    ];
    let cx = Context { module: req.module.clone(), slot: req.slot.describe(), label: req.label.as_str().into() };
    Ok((manifest, cx, plan))
}

/// Heatmaps: for heads, modules × head index of `delta_norm` and of `cos_toward_ref`; for other
/// units, units × metrics.
pub fn heatmaps(r: &HeadsResult) -> Vec<(&'static str, HeatmapTable)> {
    let source = format!(
        "sam3lab probe heads; a={} b={} ref={}; {} pairs ({}), slot {}",
        r.manifest.checkpoints.first().map(|c| c.sha256.get(..12).unwrap_or("")).unwrap_or(""),
        r.manifest.checkpoints.get(1).map(|c| c.sha256.get(..12).unwrap_or("")).unwrap_or(""),
        r.manifest.checkpoints.get(2).map(|c| c.sha256.get(..12).unwrap_or("")).unwrap_or(""),
        r.units.first().map(|u| u.pairs).unwrap_or(0),
        r.label,
        r.slot
    );
    let all_heads = r.units.iter().all(|u| u.head.is_some());
    if all_heads {
        let mut modules: Vec<String> = Vec::new();
        let mut nh = 0;
        // Module order = forward order (the manifest's points are in forward order).
        for p in &r.manifest.points {
            let (m, h) = split_head(p).expect("all units are heads");
            if !modules.contains(&m) {
                modules.push(m);
            }
            nh = nh.max(h + 1);
        }
        let cols: Vec<String> = (0..nh).map(|h| format!("h{h}")).collect();
        let grid = |f: &dyn Fn(&UnitStats) -> Option<f64>| -> Vec<Vec<Option<f64>>> {
            modules
                .iter()
                .map(|m| {
                    (0..nh)
                        .map(|h| r.units.iter().find(|u| &u.module == m && u.head == Some(h)).and_then(f))
                        .collect()
                })
                .collect()
        };
        vec![
            (
                "heads_delta_heatmap.json",
                HeatmapTable {
                    title: "Per-head ‖contrib_b − contrib_a‖₂ (mean over pairs)".into(),
                    source: source.clone(),
                    rows: modules.clone(),
                    cols: cols.clone(),
                    values: grid(&|u| Some(u.delta_norm)),
                    scale: None,
                    decimals: Some(3),
                    row_title: Some("module".into()),
                    col_title: Some("head".into()),
                },
            ),
            (
                "heads_cos_heatmap.json",
                HeatmapTable {
                    title: "Per-head cos(b − a, ref − a) (\"toward ref\")".into(),
                    source,
                    rows: modules.clone(),
                    cols,
                    values: grid(&|u| u.cos_toward_ref),
                    scale: Some(Scale { kind: ScaleKind::Diverging, min: -1.0, max: 1.0 }),
                    decimals: Some(2),
                    row_title: Some("module".into()),
                    col_title: Some("head".into()),
                },
            ),
        ]
    } else {
        let units: Vec<&UnitStats> =
            r.manifest.points.iter().filter_map(|p| r.units.iter().find(|u| &u.unit == p)).collect();
        vec![(
            "heads_heatmap.json",
            HeatmapTable {
                title: "Per-point shift b − a and its cosine toward ref − a".into(),
                source,
                rows: units.iter().map(|u| u.unit.clone()).collect(),
                cols: ["‖b−a‖", "cos toward ref", "‖a‖", "‖b‖", "‖ref‖"].map(String::from).to_vec(),
                values: units
                    .iter()
                    .map(|u| vec![Some(u.delta_norm), u.cos_toward_ref, Some(u.mag_a), Some(u.mag_b), Some(u.mag_ref)])
                    .collect(),
                scale: None,
                decimals: Some(3),
                row_title: Some("point".into()),
                col_title: None,
            },
        )]
    }
}

/// Write `heads.json`, `heads.csv`, `heads_pairs.csv`, the heatmaps and `manifest.json` into `out`.
pub fn write(out: &Path, r: &HeadsResult) -> Result<()> {
    write_json(&out.join("heads.json"), r)?;
    let mut csv = Csv::new(&[
        "rank", "unit", "module", "head", "delta_norm", "cos_toward_ref", "cos_toward_ref_pooled", "mag_a", "mag_b", "mag_ref", "pairs",
    ]);
    for u in &r.units {
        csv.row([
            u.rank.to_string(),
            u.unit.clone(),
            u.module.clone(),
            u.head.map(|h| h.to_string()).unwrap_or_default(),
            num(Some(u.delta_norm)),
            num(u.cos_toward_ref),
            num(u.cos_toward_ref_pooled),
            num(Some(u.mag_a)),
            num(Some(u.mag_b)),
            num(Some(u.mag_ref)),
            u.pairs.to_string(),
        ]);
    }
    csv.write(&out.join("heads.csv"))?;
    let mut pc = Csv::new(&["pair", "label", "unit", "norm_a", "norm_b", "norm_ref", "delta_norm", "cos_toward_ref"]);
    for p in &r.per_pair {
        pc.row([
            p.pair.to_string(),
            p.label.clone(),
            p.unit.clone(),
            num(Some(p.norm_a)),
            num(Some(p.norm_b)),
            num(Some(p.norm_ref)),
            num(Some(p.delta_norm)),
            num(p.cos_toward_ref),
        ]);
    }
    pc.write(&out.join("heads_pairs.csv"))?;
    for (name, t) in heatmaps(r) {
        write_json(&out.join(name), &t)?;
    }
    write_json(&out.join("manifest.json"), &r.manifest)
}
