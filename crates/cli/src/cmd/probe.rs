//! `sam3lab probe`: the post's activation probes — `drift` (§6), `heads` (§9 per-head ranking and
//! layer-level cosine), `patch` (§9 causal patching with the q0-vs-layer lockstep comparison),
//! `steer` (§9 steering sweep), plus `capture` (per-pair caches for `sam3lab sae`) and
//! `demo-inputs` (small generated inputs for trying the probes on the fixture). The work lives in
//! `sam3lab-probes` and `sam3lab-steering`; every subcommand writes JSON/CSV with a manifest into
//! `--out`, atomically.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::prelude::Device;
use indicatif::{ProgressBar, ProgressStyle};

use crate::progress::Bar;
use sam3lab_probes::model::{CkptSpec, split_list};
use sam3lab_probes::{attrib, capture, demo, drift, heads, inputs, patch, presence, shard};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Per-concept rel_Δ = ‖A_ckpt − A_base‖/‖A_base‖ (each prompt's activations over the images
    /// stacked), averaged over each prompt group's prompts, per hook point: the §6 table
    /// (checkpoint × point × group).
    ///
    /// Writes drift.json (that table, the figures' drift table: `sam3lab figures --from drift.json
    /// --kind fig61|fig62|heatmap`), drift_pair_mean.json (the alternative: mean of per-(image,
    /// prompt) rel_Δ), drift.csv, drift_prompts.csv (per prompt), drift_pairs.csv (every input) and
    /// manifest.json. One model in memory at a time; the base's
    /// activations are spilled to disk per image (OUT/.spill, removed at the end).
    Drift(DriftArgs),
    /// Rank attention heads by mean ‖contrib_b − contrib_a‖₂ over pairs, with cos(b − a, ref − a)
    /// ("toward ref") and each checkpoint's mean magnitude.
    ///
    /// --module names attention modules (their `.head.*` points are the units) or any hook points
    /// (each point is a unit: `--module 'decoder.layers.*.q0'` is the post's layer-level cosine
    /// probe). Writes heads.json, heads.csv, heads_pairs.csv, heatmap JSON and manifest.json.
    Heads(HeadsArgs),
    /// Transplant hook points from SOURCE into TARGET's forward and count the false positives on
    /// negative pairs the patch silences; also patches decoder.layers.L.q0 alone and the whole
    /// decoder.layers.L.out side by side (the lockstep caveat).
    ///
    /// Writes patch.json, patch_summary.csv, patch_pairs.csv, patch_heatmap.json, manifest.json.
    Patch(PatchArgs),
    /// Attribution patching: rank hook points by gradient × (SOURCE − TARGET) activation, the
    /// first-order change of TARGET's presence logit if the point were patched from SOURCE (one
    /// forward and backward per pair for every point); --verify also patches each point for real and
    /// reports the agreement (Spearman ρ, sign agreement).
    ///
    /// Writes attrib.json, attrib.csv (per point, ranked), attrib_pairs.csv and manifest.json.
    Attrib(AttribArgs),
    /// Add α·direction at a hook point and report neg_correct and positive recall per α (α = 0, the
    /// plain forward, is always included).
    ///
    /// Writes steer.json, steer.csv, steer_pairs.csv, steer_heatmap.json, direction.safetensors
    /// (reusable with --direction) and manifest.json.
    Steer(SteerArgs),
    /// σ(presence_logit) per (image, prompt) pair for several checkpoints: Fig 1.1's input.
    ///
    /// Writes presence.json (`sam3lab figures --from presence.json --kind fig11`, threshold line
    /// = the processor's 0.3 unless --threshold), presence.csv and manifest.json.
    Presence(PresenceArgs),
    /// Does the text encoder know two vocabularies? Token-embedding row norms of every word's BPE
    /// tokens and the largest pairwise cosine of the phrases' pooled text features, per vocabulary
    /// (world v2's base criterion B4: narrow part names vs broad phrases).
    ///
    /// Writes vocab.json (both readings, the summary B4 reads, the checkpoint's identity).
    Vocab(VocabArgs),
    /// One activation cache per (checkpoint, pair) for `sam3lab sae train|rank --acts LABEL=OUT/LABEL`
    /// (extra.pair / extra.label set per the SAE cache contract).
    Capture(CaptureArgs),
    /// Write small generated inputs (PNGs of coloured shapes, pairs.jsonl, images.txt, shapes.txt)
    /// and optionally perturbed copies of a checkpoint, for trying the probes on the fixture.
    DemoInputs(DemoArgs),
}

#[derive(clap::Args)]
struct Common {
    /// Model config JSON for every checkpoint (default: a fixture directory's config.json, else SAM3's).
    #[arg(long)]
    config: Option<PathBuf>,
    /// cpu (flex), wgpu or cuda (the latter two need a build with that feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Recorded in the manifest (these probes are deterministic; retrain's sampling uses it).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

impl Common {
    fn device(&self) -> anyhow::Result<Device> {
        Ok(sam3lab_model::device::device_from_name(&self.device)?)
    }
}

#[derive(clap::Args)]
struct DriftArgs {
    /// The reference checkpoint (file or fixture directory).
    #[arg(long)]
    base: PathBuf,
    /// Label of the reference in the table.
    #[arg(long, default_value = "base")]
    base_label: String,
    /// A checkpoint to compare, LABEL=CKPT (repeat; RUN@STEP labels give Fig 6.1's step axis).
    #[arg(long = "ckpt", required = true, value_name = "LABEL=CKPT")]
    ckpts: Vec<String>,
    /// A directory of .png/.jpg images, or a list file (one path per line, relative to the file).
    #[arg(long)]
    images: PathBuf,
    /// A prompt group, GROUP=FILE (one noun phrase per line, # comments); repeat.
    #[arg(long = "prompts", required = true, value_name = "GROUP=FILE")]
    prompts: Vec<String>,
    /// Hook points (comma-separated or repeated; patterns allowed).
    #[arg(long, value_delimiter = ',', default_value = "fusion.layers.4,decoder.layers.5.q0,decoder.layers.5.mean")]
    points: Vec<String>,
    /// Where the base's activations are spilled (default OUT/.spill).
    #[arg(long)]
    spill_dir: Option<PathBuf>,
    /// Keep the spill directory.
    #[arg(long)]
    keep_spill: bool,
    /// Run only images K, K+N, K+2N, … (0-based, in --images order) and write OUT/drift_shard.json;
    /// `sam3lab merge --out DIR SHARD_DIR…` then writes what the unsharded run writes, byte for byte.
    #[arg(long, value_name = "K/N")]
    shard: Option<sam3lab_eval::shard::Shard>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct HeadsArgs {
    /// Checkpoint A (the start of the shift, e.g. lvis_replay).
    #[arg(long)]
    a: PathBuf,
    /// Checkpoint B (e.g. lvis_replay_neg).
    #[arg(long)]
    b: PathBuf,
    /// Reference checkpoint (e.g. base): "toward ref" = cos(b − a, ref − a).
    #[arg(long = "ref")]
    reference: PathBuf,
    /// JSONL pair file {"image", "prompt", "label": "pos"|"neg"}.
    #[arg(long)]
    pairs: PathBuf,
    /// Attention module pattern (its heads are ranked) or hook point pattern.
    #[arg(long, default_value = "decoder.layers.3..5.ca_text")]
    module: String,
    /// Which pairs: neg, pos or all.
    #[arg(long, default_value = "neg")]
    label: String,
    /// Row of the (B, L, d) contribution: q0 (row 0, the presence token), a row index, or all.
    #[arg(long, default_value = "q0")]
    slot: String,
    /// Run only the pairs of images K, K+N, K+2N, … (0-based, in order of first appearance, each
    /// image with all its pairs) and write OUT/heads_shard.json; `sam3lab merge --out DIR
    /// SHARD_DIR…` then writes what the unsharded run writes, byte for byte.
    #[arg(long, value_name = "K/N")]
    shard: Option<sam3lab_eval::shard::Shard>,
    #[command(flatten)]
    common: Common,
}

/// SOURCE → TARGET over a pair file: what `probe patch` and `probe attrib` share.
#[derive(clap::Args)]
struct SourceTarget {
    /// Checkpoint the activations come from (e.g. the base).
    #[arg(long)]
    source: PathBuf,
    /// Checkpoint patched (e.g. the fine-tune).
    #[arg(long)]
    target: PathBuf,
    /// Hook points (comma-separated or repeated; patterns allowed): `patch` transplants them
    /// together, `attrib` scores each on its own (editable points only).
    #[arg(long, value_delimiter = ',', required = true)]
    points: Vec<String>,
    /// Pair file (JSONL). A query is kept when σ(logit)·σ(presence) ≥ 0.5, the evaluator's rule
    /// (sam3lab_eval::SCORE_THRESHOLD): neg_correct means what `eval score` reports.
    #[arg(long)]
    pairs: PathBuf,
    /// Which pairs: neg, pos or all.
    #[arg(long, default_value = "all")]
    label: String,
    /// Run only the pairs of images K, K+N, K+2N, … (0-based, in order of first appearance, each
    /// image with all its pairs) and write OUT/patch_shard.json (OUT/attrib_shard.json); `sam3lab
    /// merge --out DIR SHARD_DIR…` then writes what the unsharded run writes, byte for byte.
    #[arg(long, value_name = "K/N")]
    shard: Option<sam3lab_eval::shard::Shard>,
}

#[derive(clap::Args)]
struct PatchArgs {
    #[command(flatten)]
    st: SourceTarget,
    /// Decoder layer of the q0-alone vs whole-output comparison (default: the last).
    #[arg(long)]
    lockstep_layer: Option<usize>,
    /// Skip the q0-alone vs whole-output comparison.
    #[arg(long, conflicts_with = "lockstep_layer")]
    no_lockstep: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct AttribArgs {
    #[command(flatten)]
    st: SourceTarget,
    /// Also patch every point for real (one more forward per point and pair) and report the agreement.
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct SteerArgs {
    /// Checkpoint steered.
    #[arg(long)]
    ckpt: PathBuf,
    /// Hook point the direction is added at.
    #[arg(long, default_value = "decoder.layers.5.q0")]
    point: String,
    /// FILE.safetensors (a [d] or point-shaped tensor) or mean-diff:CKPT_A,CKPT_B (mean of b − a at
    /// the point over the --direction-label pairs).
    #[arg(long)]
    direction: String,
    /// Tensor name in the direction file when it holds several.
    #[arg(long)]
    direction_key: Option<String>,
    /// Pairs the mean difference averages over: neg (the post), pos or all.
    #[arg(long, default_value = "neg")]
    direction_label: String,
    /// Scale the direction to unit norm first.
    #[arg(long)]
    unit: bool,
    /// α values (0 is added as the baseline).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true, default_value = "0.5,1,1.5,2,3")]
    alphas: Vec<f64>,
    /// Pair file (JSONL). A query is kept when σ(logit)·σ(presence) ≥ 0.5, the evaluator's rule
    /// (sam3lab_eval::SCORE_THRESHOLD): neg_correct means what `eval score` reports.
    #[arg(long)]
    pairs: PathBuf,
    /// Sweep only the pairs of images K, K+N, K+2N, … (0-based, in order of first appearance, each
    /// image with all its pairs; a mean-difference direction still averages over every pair) and
    /// write OUT/steer_shard.json; `sam3lab merge --out DIR SHARD_DIR…` then writes what the
    /// unsharded run writes, byte for byte.
    #[arg(long, value_name = "K/N")]
    shard: Option<sam3lab_eval::shard::Shard>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct PresenceArgs {
    /// LABEL=CKPT (repeat): one series each, in this order.
    #[arg(long = "ckpt", required = true, value_name = "LABEL=CKPT")]
    ckpts: Vec<String>,
    /// JSONL pair file {"image", "prompt", "label": "pos"|"neg"}; one bar group per pair.
    #[arg(long)]
    pairs: PathBuf,
    /// Which pairs: neg (the post's Fig 1.1), pos or all.
    #[arg(long, default_value = "all")]
    label: String,
    /// The label drawn as the base series (default: one labelled `base`, if any).
    #[arg(long = "base")]
    base: Option<String>,
    /// The threshold line: the image processor's confidence threshold on σ(logit)·σ(presence).
    #[arg(long, default_value_t = presence::PROCESSOR_THRESHOLD)]
    threshold: f64,
    /// Figure title stored in presence.json.
    #[arg(long)]
    title: Option<String>,
    /// Run only the pairs of images K, K+N, K+2N, … (0-based, in order of first appearance, each
    /// image with all its pairs) and write OUT/presence_shard.json; `sam3lab merge --out DIR
    /// SHARD_DIR…` then writes what the unsharded run writes, byte for byte.
    #[arg(long, value_name = "K/N")]
    shard: Option<sam3lab_eval::shard::Shard>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct VocabArgs {
    /// The checkpoint (file or fixture directory).
    #[arg(long)]
    ckpt: PathBuf,
    /// The narrow vocabulary: a file with one phrase per line (e.g. a world's prompts/narrow-parts.txt).
    #[arg(long, value_name = "FILE")]
    narrow: PathBuf,
    /// The broad vocabulary, the same way (e.g. prompts/broad-eval.txt).
    #[arg(long, value_name = "FILE")]
    broad: PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct CaptureArgs {
    /// LABEL=CKPT (repeat): one sub-directory of caches per label.
    #[arg(long = "ckpt", required = true, value_name = "LABEL=CKPT")]
    ckpts: Vec<String>,
    /// JSONL pair file {"image", "prompt", "label": "pos"|"neg"}; one cache per pair and checkpoint.
    #[arg(long)]
    pairs: PathBuf,
    /// Hook points captured (comma-separated or repeated; patterns allowed).
    #[arg(long, value_delimiter = ',', default_value = "decoder.layers.5.q0")]
    points: Vec<String>,
    /// Which pairs: neg, pos or all.
    #[arg(long, default_value = "all")]
    label: String,
    /// Capture only the pairs of images K, K+N, K+2N, … (0-based, in order of first appearance) and
    /// write OUT/shard.json; `sam3lab merge --out DIR SHARD_DIR…` then writes what the unsharded run
    /// writes, byte for byte.
    #[arg(long, value_name = "K/N")]
    shard: Option<sam3lab_eval::shard::Shard>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 4)]
    images: usize,
    /// Seed of the drawn shapes (and of --perturb's noise).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write LABEL=CKPT + uniform noise as OUT/LABEL/ (weights.safetensors + config.json); repeat.
    #[arg(long, value_name = "LABEL=CKPT")]
    perturb: Vec<String>,
    /// Noise amplitude of --perturb.
    #[arg(long, default_value_t = 0.02)]
    noise: f32,
}

/// A progress bar on stderr (indicatif draws nothing when stderr is not a terminal).
pub fn bar(what: &str) -> Bar {
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len}  {elapsed_precise} (eta {eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    Bar(pb)
}

/// Write a probe's shard file into `out` and say what it holds.
fn wrote_shard<C: serde::Serialize, R: serde::Serialize>(out: &Path, s: &shard::ShardFile<C, R>) -> anyhow::Result<u8> {
    let path = shard::write(out, s)?;
    println!(
        "shard {}/{}: {} of {} pairs, {} measurements → {} (merge the {} shards with `sam3lab merge --out DIR SHARD_DIR…`)",
        s.shard.k,
        s.shard.n,
        s.owned.len(),
        s.plan.pairs.len(),
        s.rows.len(),
        path.display(),
        s.shard.n
    );
    Ok(0)
}

fn f(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "–".into())
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    // The output directory first: no model is loaded for a run that could not write its result.
    let out = match &args.cmd {
        Cmd::Drift(a) => &a.common.out,
        Cmd::Heads(a) => &a.common.out,
        Cmd::Patch(a) => &a.common.out,
        Cmd::Attrib(a) => &a.common.out,
        Cmd::Steer(a) => &a.common.out,
        Cmd::Presence(a) => &a.common.out,
        Cmd::Vocab(a) => &a.common.out,
        Cmd::Capture(a) => &a.common.out,
        Cmd::DemoInputs(a) => &a.out,
    };
    super::check_out_dir("--out", out)?;
    match args.cmd {
        Cmd::Drift(a) => run_drift(a),
        Cmd::Heads(a) => run_heads(a),
        Cmd::Patch(a) => run_patch(a),
        Cmd::Attrib(a) => run_attrib(a),
        Cmd::Steer(a) => run_steer(a),
        Cmd::Presence(a) => run_presence(a),
        Cmd::Vocab(a) => run_vocab(a),
        Cmd::Capture(a) => run_capture(a),
        Cmd::DemoInputs(a) => run_demo(a),
    }
}

fn run_drift(a: DriftArgs) -> anyhow::Result<u8> {
    if !inputs::is_label(&a.base_label) {
        anyhow::bail!("--base-label `{}` must match [A-Za-z0-9_.@+-]+", a.base_label);
    }
    let checkpoints = a.ckpts.iter().map(|c| CkptSpec::parse_labeled(c)).collect::<Result<Vec<_>, _>>().context("--ckpt")?;
    let req = drift::DriftRequest {
        base: CkptSpec::new(&a.base_label, &a.base),
        checkpoints,
        config: a.common.config.clone(),
        images: inputs::read_images(&a.images)?,
        groups: inputs::read_prompt_groups(&a.prompts)?,
        points: split_list(&a.points),
        seed: a.common.seed,
        spill_dir: a.spill_dir.clone().unwrap_or_else(|| a.common.out.join(".spill")),
        keep_spill: a.keep_spill,
        device: a.common.device()?,
    };
    let pb = bar("drift");
    if let Some(shard) = a.shard {
        let r = drift::run_shard(&req, shard, &pb)?;
        pb.finish_and_clear();
        let path = a.common.out.join("drift_shard.json");
        drift::write_shard(&path, &r)?;
        println!(
            "shard {}/{}: {} of {} images, {} measurements → {} (merge the {} shards with `sam3lab merge --out DIR SHARD_DIR…`)",
            shard.k,
            shard.n,
            r.owned.len(),
            r.images.len(),
            r.pairs.len(),
            path.display(),
            shard.n
        );
        return Ok(0);
    }
    let r = drift::run(&req, &pb)?;
    pb.finish_and_clear();
    drift::write(&a.common.out, &r)?;
    println!("rel_Δ vs {} (per concept: each prompt's activations over the images stacked, mean over the group's prompts):", req.base.label);
    for row in &r.table.rows {
        for p in &r.table.points {
            let cells: Vec<String> = r
                .table
                .groups
                .iter()
                .map(|g| format!("{g} {}", f(row.values.get(p).and_then(|m| m.get(g)).copied().flatten())))
                .collect();
            println!("  {:<20} {:<28} {}", row.checkpoint, p, cells.join("  "));
        }
    }
    println!(
        "wrote {}/drift.json (+ drift_pair_mean.json, drift.csv, drift_prompts.csv, drift_pairs.csv, manifest.json)",
        a.common.out.display()
    );
    Ok(0)
}

fn run_heads(a: HeadsArgs) -> anyhow::Result<u8> {
    let req = heads::HeadsRequest {
        a: CkptSpec::new("a", &a.a),
        b: CkptSpec::new("b", &a.b),
        reference: CkptSpec::new("ref", &a.reference),
        config: a.common.config.clone(),
        pairs: inputs::read_pairs(&a.pairs)?,
        module: a.module.clone(),
        label: inputs::LabelFilter::parse(&a.label).context("--label")?,
        slot: heads::Slot::parse(&a.slot)?,
        seed: a.common.seed,
        device: a.common.device()?,
    };
    let pb = bar("heads");
    if let Some(shard) = a.shard {
        let r = heads::run_shard(&req, shard, &pb)?;
        pb.finish_and_clear();
        return wrote_shard(&a.common.out, &r);
    }
    let r = heads::run(&req, &pb)?;
    pb.finish_and_clear();
    heads::write(&a.common.out, &r)?;
    println!("{:>4}  {:<40} {:>10} {:>9} {:>8} {:>8} {:>8}", "rank", "unit", "‖b−a‖", "cos→ref", "‖a‖", "‖b‖", "‖ref‖");
    for u in &r.units {
        println!(
            "{:>4}  {:<40} {:>10.4} {:>9} {:>8.4} {:>8.4} {:>8.4}",
            u.rank,
            u.unit,
            u.delta_norm,
            f(u.cos_toward_ref),
            u.mag_a,
            u.mag_b,
            u.mag_ref
        );
    }
    println!("{} pairs ({}), slot {}; wrote {}/heads.json", r.units.first().map(|u| u.pairs).unwrap_or(0), r.label, r.slot, a.common.out.display());
    Ok(0)
}

fn run_attrib(a: AttribArgs) -> anyhow::Result<u8> {
    let req = attrib::AttribRequest {
        source: CkptSpec::new("source", &a.st.source),
        target: CkptSpec::new("target", &a.st.target),
        config: a.common.config.clone(),
        pairs: inputs::read_pairs(&a.st.pairs)?,
        points: split_list(&a.st.points),
        label: inputs::LabelFilter::parse(&a.st.label).context("--label")?,
        verify: a.verify,
        seed: a.common.seed,
        device: a.common.device()?,
    };
    let pb = bar("attrib");
    if let Some(shard) = a.st.shard {
        let r = attrib::run_shard(&req, shard, &pb)?;
        pb.finish_and_clear();
        return wrote_shard(&a.common.out, &r);
    }
    let r = attrib::run(&req, &pb)?;
    pb.finish_and_clear();
    attrib::write(&a.common.out, &r)?;
    println!("Δ presence logit of target if a point were patched from source (mean over {} pairs):", r.pairs.len() / r.points.len().max(1));
    for p in r.points.iter().take(20) {
        let actual = p.mean_actual.map(|v| format!("   actual {v:+.4} (rank {})", p.rank_actual.unwrap_or(0))).unwrap_or_default();
        println!("  {:>3}. {:<40} estimate {:+.4}{actual}", p.rank_estimate, p.point, p.mean_estimate);
    }
    if r.points.len() > 20 {
        println!("  … {} more in attrib.csv", r.points.len() - 20);
    }
    if let Some(g) = &r.agreement {
        println!(
            "agreement with the causal patch: Spearman ρ {} over point means, {} over every (pair, point); signs agree {}; Σ|est − act|/Σ|act| {}",
            f(g.spearman_point_means),
            f(g.spearman_pairs),
            f(g.sign_agreement),
            f(g.relative_l1_error)
        );
    }
    println!("wrote {}/attrib.json (+ attrib.csv, attrib_pairs.csv, manifest.json)", a.common.out.display());
    Ok(0)
}

fn run_patch(a: PatchArgs) -> anyhow::Result<u8> {
    let lockstep = match (a.no_lockstep, a.lockstep_layer) {
        (true, _) => patch::Lockstep::Off,
        (false, Some(l)) => patch::Lockstep::Layer(l),
        (false, None) => patch::Lockstep::Last,
    };
    let req = patch::PatchRequest {
        source: CkptSpec::new("source", &a.st.source),
        target: CkptSpec::new("target", &a.st.target),
        config: a.common.config.clone(),
        pairs: inputs::read_pairs(&a.st.pairs)?,
        points: split_list(&a.st.points),
        lockstep,
        label: inputs::LabelFilter::parse(&a.st.label).context("--label")?,
        seed: a.common.seed,
        device: a.common.device()?,
    };
    let pb = bar("patch");
    if let Some(shard) = a.st.shard {
        let r = patch::run_shard(&req, shard, &pb)?;
        pb.finish_and_clear();
        return wrote_shard(&a.common.out, &r);
    }
    let r = patch::run(&req, &pb)?;
    pb.finish_and_clear();
    patch::write(&a.common.out, &r)?;
    println!(
        "source: neg_correct {}  pos recall {}   (kept = score ≥ {})",
        f(r.source_neg_correct),
        f(r.source_pos_recall),
        r.threshold
    );
    for c in &r.conditions {
        println!(
            "{:<16} silenced {}/{} FP ({})  disagreeing {}/{} ({})  neg_correct {} → {}  pos recall {} → {}  [{}]",
            c.name,
            c.silenced,
            c.target_false_positives,
            f(c.silenced_fraction),
            c.silenced_disagreeing,
            c.disagreeing,
            f(c.silenced_fraction_disagreeing),
            f(c.neg_correct_before),
            f(c.neg_correct_after),
            f(c.pos_recall_before),
            f(c.pos_recall_after),
            c.points.join(", ")
        );
    }
    println!("wrote {}/patch.json", a.common.out.display());
    Ok(0)
}

fn run_steer(a: SteerArgs) -> anyhow::Result<u8> {
    let req = sam3lab_steering::SteerRequest {
        ckpt: CkptSpec::new("ckpt", &a.ckpt),
        config: a.common.config.clone(),
        point: a.point.clone(),
        direction: sam3lab_steering::DirectionSource::parse(&a.direction, a.direction_key.clone())?,
        direction_label: inputs::LabelFilter::parse(&a.direction_label).context("--direction-label")?,
        unit: a.unit,
        alphas: a.alphas.clone(),
        pairs: inputs::read_pairs(&a.pairs)?,
        seed: a.common.seed,
        device: a.common.device()?,
    };
    let pb = bar("steer");
    if let Some(shard) = a.shard {
        let r = sam3lab_steering::run_shard(&req, shard, &pb)?;
        pb.finish_and_clear();
        return wrote_shard(&a.common.out, &r);
    }
    let r = sam3lab_steering::run(&req, &pb)?;
    pb.finish_and_clear();
    sam3lab_steering::write(&a.common.out, &r)?;
    println!("direction {} at {}: ‖d‖ = {:.4}{}", r.direction.kind, r.point, r.direction.norm, if r.direction.unit { " (scaled to 1)" } else { "" });
    println!("{:>8} {:>12} {:>12} {:>14} {:>14}", "α", "neg_correct", "pos_recall", "σ̄ presence neg", "σ̄ presence pos");
    for s in &r.alphas {
        println!(
            "{:>8} {:>12} {:>12} {:>14} {:>14}",
            s.alpha,
            f(s.neg_correct),
            f(s.pos_recall),
            f(s.mean_presence_neg),
            f(s.mean_presence_pos)
        );
    }
    println!("wrote {}/steer.json", a.common.out.display());
    Ok(0)
}

fn run_vocab(a: VocabArgs) -> anyhow::Result<u8> {
    let phrases = |flag: &str, path: &PathBuf| -> anyhow::Result<Vec<String>> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{flag} {}", path.display()))?;
        let v: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect();
        if v.len() < 2 {
            anyhow::bail!("{flag} {}: needs at least two phrases (one per line), found {}", path.display(), v.len());
        }
        Ok(v)
    };
    let (narrow, broad) = (phrases("--narrow", &a.narrow)?, phrases("--broad", &a.broad)?);
    let model = sam3lab_probes::model::load(&CkptSpec::new("ckpt", &a.ckpt), a.common.config.as_deref(), &a.common.device()?)
        .with_context(|| format!("--ckpt {}", a.ckpt.display()))?;
    let r = sam3lab_probes::vocab::report(&model, &narrow, &broad)?;
    std::fs::create_dir_all(&a.common.out)?;
    sam3lab_probes::manifest::write_json(&a.common.out.join("vocab.json"), &r)?;
    let stat = |v: &[f64]| {
        let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| (l.min(x), h.max(x)));
        format!("{} rows, norm {lo:.3}–{hi:.3} (mean {:.3})", v.len(), v.iter().sum::<f64>() / v.len().max(1) as f64)
    };
    println!("narrow tokens: {}", stat(&r.narrow_row_norms));
    println!("broad tokens:  {}", stat(&r.broad_row_norms));
    for (name, m) in [("narrow", &r.narrow.max_pair_cos), ("broad", &r.broad.max_pair_cos)] {
        if let Some((c, x, y)) = m {
            println!("{name} phrases: largest feature cosine {c:.3} ({} / {})", super::shorten_cell(x), super::shorten_cell(y));
        }
    }
    println!("wrote {}", a.common.out.join("vocab.json").display());
    Ok(0)
}

fn run_presence(a: PresenceArgs) -> anyhow::Result<u8> {
    let checkpoints = a.ckpts.iter().map(|c| CkptSpec::parse_labeled(c)).collect::<Result<Vec<_>, _>>().context("--ckpt")?;
    let req = presence::PresenceRequest {
        checkpoints,
        config: a.common.config.clone(),
        pairs: inputs::read_pairs(&a.pairs)?,
        label: inputs::LabelFilter::parse(&a.label).context("--label")?,
        base: a.base.clone(),
        threshold: a.threshold,
        title: a.title.clone(),
        seed: a.common.seed,
        device: a.common.device()?,
    };
    let pb = bar("presence");
    if let Some(shard) = a.shard {
        let r = presence::run_shard(&req, shard, &pb)?;
        pb.finish_and_clear();
        return wrote_shard(&a.common.out, &r);
    }
    let r = presence::run(&req, &pb)?;
    pb.finish_and_clear();
    presence::write(&a.common.out, &r)?;
    // Each row is "prompt · image": cut like every prompt on the terminal (presence.json keeps it whole).
    let rows: Vec<String> = r.bars.prompts.iter().map(|p| super::shorten_cell(p)).collect();
    let width = rows.iter().map(|p| p.chars().count()).max().unwrap_or(0).min(40);
    let header: Vec<String> = r.bars.series.iter().map(|s| format!("{:>12}", s.label)).collect();
    println!("σ(presence_logit) per pair (threshold line {}):", r.bars.threshold.unwrap_or(presence::PROCESSOR_THRESHOLD));
    println!("  {:<width$} {}", "prompt", header.join(" "));
    for (i, p) in rows.iter().enumerate() {
        let cells: Vec<String> = r.bars.series.iter().map(|s| format!("{:>12.4}", s.values[i])).collect();
        println!("  {:<width$} {}", p, cells.join(" "));
    }
    println!("wrote {}/presence.json (+ presence.csv, manifest.json)", a.common.out.display());
    Ok(0)
}

fn run_capture(a: CaptureArgs) -> anyhow::Result<u8> {
    let checkpoints = a.ckpts.iter().map(|c| CkptSpec::parse_labeled(c)).collect::<Result<Vec<_>, _>>().context("--ckpt")?;
    let req = capture::CaptureRequest {
        checkpoints,
        config: a.common.config.clone(),
        pairs: inputs::read_pairs(&a.pairs)?,
        points: split_list(&a.points),
        label: inputs::LabelFilter::parse(&a.label).context("--label")?,
        shard: a.shard,
        seed: a.common.seed,
        device: a.common.device()?,
    };
    let pb = bar("capture");
    let c = capture::run(&req, &a.common.out, &pb)?;
    pb.finish_and_clear();
    let m = c.manifest;
    if let Some(sh) = a.shard {
        println!(
            "shard {}/{}: {} of {} pairs → {} (merge the {} shards with `sam3lab merge --out DIR SHARD_DIR…`)",
            sh.k,
            sh.n,
            c.pairs,
            m.pairs.as_ref().map(|p| p.used).unwrap_or(0),
            a.common.out.display(),
            sh.n
        );
        return Ok(0);
    }
    for ck in &m.checkpoints {
        println!("{}: {} caches in {}/{}", ck.label, c.pairs, a.common.out.display(), ck.label);
    }
    Ok(0)
}

fn run_demo(a: DemoArgs) -> anyhow::Result<u8> {
    let d = demo::write_demo_inputs(&a.out, a.images, a.seed)?;
    println!("{} images, {}, {}, {}", d.images.len(), d.image_list.display(), d.pairs.display(), d.shapes.display());
    for (k, p) in a.perturb.iter().enumerate() {
        let spec = CkptSpec::parse_labeled(p).context("--perturb")?;
        let dir = demo::write_perturbed(&spec.path, &a.out.join(&spec.label), a.noise, a.seed.wrapping_add(1 + k as u64))?;
        println!("{}: {} + U(±{}) → {}", spec.label, spec.path.display(), a.noise, dir.display());
    }
    Ok(0)
}
