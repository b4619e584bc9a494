//! Inputs, figures and REPORT.md of `sam3lab reproduce`: everything here reads what the commands of
//! the run wrote; no number is typed in. The findings are the study crate's (`sam3lab_study`): this
//! file reads the run's files into its typed [`StudyResults`] and prints what it decides.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sam3lab_study::report::md;
use sam3lab_study::{Measures, Runs, StudyResults};
use serde_json::{Value, json};

use super::{Checkpoints, Layout, Runner, s};

/// B5's record (`data/world/b5.json`): the long unfrozen fine-tune of the shipped base.
const B5_RECORD: &str = include_str!("../../../../../data/world/b5.json");

fn read_json(p: &Path) -> Result<Value> {
    serde_json::from_str(&std::fs::read_to_string(p).with_context(|| p.display().to_string())?).with_context(|| p.display().to_string())
}

/// Index of the last decoder layer and the last fusion layer of the run's config.
pub fn last_layers(config: &Path) -> Result<(usize, usize)> {
    let c = sam3lab_model::Sam3Config::from_file(config)?;
    Ok((c.decoder.num_layers - 1, c.fusion.num_layers - 1))
}

struct Entry {
    image: String,
    prompt: String,
    positive: bool,
}

/// The (image, noun phrase) entries of a world split, in file order.
fn entries(world: &Path, split: &str) -> Result<Vec<Entry>> {
    let gt = read_json(&world.join(format!("{split}.json")))?;
    let pos: std::collections::HashSet<i64> = gt["annotations"].as_array().context("annotations")?.iter().filter_map(|a| a["image_id"].as_i64()).collect();
    gt["images"]
        .as_array()
        .context("images")?
        .iter()
        .map(|im| {
            Ok(Entry {
                image: format!("../world/{}", im["file_name"].as_str().context("file_name")?),
                prompt: im["text_input"].as_str().context("text_input")?.to_string(),
                positive: pos.contains(&im["id"].as_i64().context("id")?),
            })
        })
        .collect()
}

fn jsonl<'a>(it: impl Iterator<Item = &'a Entry>) -> String {
    it.map(|e| json!({"image": e.image, "prompt": e.prompt, "label": if e.positive { "pos" } else { "neg" }}).to_string() + "\n").collect()
}

/// Pair files of the probes, drawn deterministically from the world's splits.
pub fn write_inputs(l: &Layout, quick: bool) -> Result<()> {
    let (w, dir) = (l.world(), l.inputs());
    let broad = entries(&w, "broad-eval")?;
    sam3lab_util::write_atomic(&dir.join("broad_eval_pairs.jsonl"), jsonl(broad.iter()).as_bytes())?;
    // Fig 1.1: the first 12 broad negatives with distinct noun phrases (the post: 12 SA-Co negatives).
    let mut seen = std::collections::HashSet::new();
    let negs: Vec<&Entry> = broad.iter().filter(|e| !e.positive && seen.insert(e.prompt.clone())).take(12).collect();
    if negs.is_empty() {
        bail!("{}: broad-eval has no negative entries", w.display());
    }
    sam3lab_util::write_atomic(&dir.join("fig11_negatives.jsonl"), jsonl(negs.into_iter()).as_bytes())?;
    // Table 5.1: narrow positives (narrow-train) and absent part names (narrow-negatives).
    let n = if quick { 8 } else { 60 };
    let pos = entries(&w, "narrow-train")?;
    let neg = entries(&w, "narrow-negatives")?;
    let text = jsonl(pos.iter().filter(|e| e.positive).take(n)) + &jsonl(neg.iter().filter(|e| !e.positive).take(n));
    sam3lab_util::write_atomic(&dir.join("narrow_pairs.jsonl"), text.as_bytes())?;
    Ok(())
}

/// presence_only's training pairs (`sam3lab retrain --pairs`): narrow-train positives and
/// narrow-negatives' absent part names, at most 600 of each (the first ones: the splits are already
/// shuffled by the generator), written to `inputs/presence_only_pairs.jsonl`.
pub fn write_presence_only_pairs(l: &Layout, quick: bool) -> Result<PathBuf> {
    let (w, dir) = (l.world(), l.inputs());
    let n = if quick { 16 } else { 600 };
    let pos = entries(&w, "narrow-train")?;
    let neg = entries(&w, "narrow-negatives")?;
    let text = jsonl(pos.iter().filter(|e| e.positive).take(n)) + &jsonl(neg.iter().filter(|e| !e.positive).take(n));
    std::fs::create_dir_all(&dir)?;
    let p = dir.join("presence_only_pairs.jsonl");
    sam3lab_util::write_atomic(&p, text.as_bytes())?;
    Ok(p)
}

/// The `n` heads `probe heads` ranked first, as hook names.
pub fn top_heads(heads_json: &Path, n: usize) -> Result<Vec<String>> {
    let v = read_json(heads_json)?;
    let rows = v["units"].as_array().context("heads.json: no `units` list")?;
    let names: Vec<String> = rows.iter().filter_map(|r| r["unit"].as_str().map(String::from)).take(n).collect();
    if names.is_empty() {
        bail!("{}: no ranked heads", heads_json.display());
    }
    Ok(names)
}


// ---------------------------------------------------------------------------------------------
// Reading the run's outputs.

/// What the run measured, read back from the files its commands wrote.
pub struct Measured {
    scores: std::collections::BTreeMap<(String, String), Value>,
    pub dec_last: usize,
    pub fus_last: usize,
}

impl Measured {
    pub fn read(l: &Layout, ck: &Checkpoints) -> Result<Measured> {
        let mut scores = std::collections::BTreeMap::new();
        for label in ck.by_label.keys() {
            for split in super::SPLITS {
                let p = l.eval().join(label).join(format!("{split}.score.json"));
                scores.insert((label.clone(), split.to_string()), read_json(&p)?);
            }
        }
        let (dec_last, fus_last) = last_layers(&l.config())?;
        Ok(Measured { scores, dec_last, fus_last })
    }

    /// A metric of `eval score` for a checkpoint on a split.
    pub fn get(&self, label: &str, split: &str, key: &str) -> Result<f64> {
        self.scores
            .get(&(label.to_string(), split.to_string()))
            .and_then(|v| v[key].as_f64())
            .with_context(|| format!("no {key} for {label} on {split}"))
    }

    /// A metric that may be absent (null in the score file, or no score file) as `None`.
    pub fn opt(&self, label: &str, split: &str, key: &str) -> Option<f64> {
        self.scores.get(&(label.to_string(), split.to_string())).and_then(|v| v[key].as_f64())
    }

    /// What the study needs of one checkpoint's scores (fractions, as `eval score` writes them).
    pub fn measures(&self, label: &str) -> Measures {
        let tp = self.opt(label, "broad-eval", "IL_TP");
        let fneg = self.opt(label, "broad-eval", "IL_FN");
        Measures {
            neg_correct: self.opt(label, "broad-eval", "neg_correct"),
            detection: match (tp, fneg) {
                (Some(tp), Some(f)) if tp + f > 0.0 => Some(tp / (tp + f)),
                _ => None,
            },
            pos_mean_iou: self.opt(label, "broad-eval", "pos_mean_IoU"),
            pmf1: self.opt(label, "broad-eval", "cgF1_eval_segm_positive_micro_F1"),
            lvis_miou: self.opt(label, "broad-positive-eval", "pos_mean_IoU"),
            narrow_iou: self.opt(label, "narrow-eval", "pos_mean_IoU"),
            ..Measures::default()
        }
    }

    /// broad-eval neg_correct in percent (the post's SA-Co neg_correct).
    pub fn neg(&self, label: &str) -> Result<f64> {
        Ok(100.0 * self.get(label, "broad-eval", "neg_correct")?)
    }
}

/// neg_correct in percent of every drift-table checkpoint that has one (Fig 6.2's y axis).
fn neg_correct_map(m: &Measured, ck: &Checkpoints) -> Result<Value> {
    let mut o = serde_json::Map::new();
    for label in ck.by_label.keys().filter(|l| *l != "base") {
        let key = if label == "recovery" { format!("recovery@{}", ck.lengths.recovery) } else { label.clone() };
        o.insert(key, json!(m.neg(label)?));
    }
    Ok(Value::Object(o))
}

/// Figure stems drawn both from the post's numbers and from the world's, with their titles.
const TWINS: &[(&str, &str)] = &[
    ("fig6_1_recovery_drift", "Fig 6.1 — drift of the last fusion layer over the recovery steps"),
    ("fig6_2_gate_input_vs_refusal", "Fig 6.2 — gate-input drift vs refusal"),
    ("fig8_1_bias_projection", "Fig 8.1 — presence-bias deltas in the break plane"),
    ("table6_rel_delta_heatmap", "§6 rel_Δ table"),
    ("table6_1_weight_movement_heatmap", "Table 6.1 — weight movement per module group"),
    ("table7_1_bias_cosines_heatmap", "Table 7.1 — presence-bias delta cosines"),
];

pub fn figures(r: &mut Runner, ck: &Checkpoints, m: &Measured) -> Result<()> {
    let l = &r.layout;
    let (f, p) = (l.figures(), l.probes());
    let (pubd, world) = (f.join("published"), f.join("world"));
    let neg = p.join("neg_correct.json");
    sam3lab_util::write_atomic(&neg, serde_json::to_string_pretty(&neg_correct_map(m, ck)?)?.as_bytes())?;
    let drift = s(&p.join("drift/drift.json"));
    let w = s(&world);
    let rec_end = format!("recovery@{}", ck.lengths.recovery);
    let fus = format!("fusion.layers.{}", m.fus_last);
    let q0 = format!("decoder.layers.{}.q0", m.dec_last);
    let fit = format!("lvis_replay,lvis_replay_n100,{rec_end},lvis_replay_neg");
    let cmds: Vec<Vec<String>> = vec![
        vec!["figures", "--data", &s(&l.published()), "--out", &s(&pubd)],
        vec!["figures", "--from", &s(&p.join("fig11/presence.json")), "--kind", "fig11", "--name", "fig1_1_presence", "--out", &w],
        vec!["figures", "--from", &drift, "--kind", "fig61", "--point", &fus, "--run", "recovery", "--references", "frozen_te,lvis_replay,lvis_replay_neg", "--name", "fig6_1_recovery_drift", "--out", &w],
        vec!["figures", "--from", &drift, "--kind", "fig62", "--point", &q0, "--group", "lvis", "--neg-correct", &s(&neg), "--fit", &fit, "--off-trend", "presence_only", "--name", "fig6_2_gate_input_vs_refusal", "--out", &w],
        vec!["figures", "--from", &s(&p.join("cosines/cosines.json")), "--kind", "fig81", "--name", "fig8_1_bias_projection", "--out", &w],
        vec!["figures", "--from", &drift, "--kind", "heatmap", "--name", "table6_rel_delta_heatmap", "--out", &w],
        vec!["figures", "--from", &s(&p.join("weights_diff/table.json")), "--kind", "heatmap", "--name", "table6_1_weight_movement_heatmap", "--out", &w],
        vec!["figures", "--from", &s(&p.join("cosines/cosine_table.json")), "--kind", "heatmap", "--name", "table7_1_bias_cosines_heatmap", "--out", &w],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(String::from).collect())
    .collect();
    for c in cmds {
        let refs: Vec<&str> = c.iter().map(String::as_str).collect();
        r.cmd(&refs)?;
    }
    // presence_only is `retrain` (no loss.csv); its trajectory is Table 5.1.
    for name in ck.by_label.keys().filter(|l| *l != "base" && *l != "presence_only") {
        let csv = s(&r.layout.train(name).join("loss.csv"));
        r.cmd(&["figures", "--from", &csv, "--kind", "train-curves", "--name", &format!("train_{name}"), "--out", &w])?;
    }
    let sbs = f.join("side_by_side");
    for (stem, title) in TWINS {
        sam3lab_figures::compose::side_by_side(
            sam3lab_figures::compose::Panel { stem: &pubd.join(stem), label: "published (sam3-post02, SAM3)" },
            sam3lab_figures::compose::Panel { stem: &world.join(stem), label: "this run (the world, mini-SAM3)" },
            title,
            &sbs,
            stem,
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// REPORT.md

/// A published table as markdown: every column of its CSV, its source line as a caption.
fn published_md(l: &Layout, file: &str) -> Result<String> {
    let t = sam3lab_figures::csv::CsvTable::read(&l.published().join(file))?;
    let header: Vec<&str> = t.header.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = t.rows.iter().map(|r| r.cells.clone()).collect();
    Ok(format!("*Published* ({}):\n\n{}", t.source().unwrap_or(file), md(&header, &rows)))
}

fn f1(x: f64) -> String {
    format!("{x:.1}")
}
fn f2(x: f64) -> String {
    format!("{x:.2}")
}
fn f3(x: f64) -> String {
    format!("{x:.3}")
}
fn sgn(x: f64) -> String {
    format!("{x:+.2}")
}

/// Batches each stream of an adapted recipe receives (the engine's rule: a due stream takes the
/// primary's place, several due at once share the batch; a due `extra` stream adds a batch of its
/// own). One batch slot per step (the world's recipes have `grad_accum = 1`).
fn exposure(recipe: &Path) -> Result<std::collections::BTreeMap<String, usize>> {
    let t: toml::Table = toml::from_str(&std::fs::read_to_string(recipe)?)?;
    let steps = t["steps"].as_integer().context("steps")? as usize;
    let data = t["data"].as_table().context("data")?;
    let mut n = std::collections::BTreeMap::new();
    let mut primary = String::new();
    let mut every = vec![];
    for (name, s) in data {
        let gt = s["gt"].as_str().unwrap_or_default();
        let split = Path::new(gt).file_stem().and_then(|x| x.to_str()).unwrap_or(name).to_string();
        if s.get("primary").and_then(|v| v.as_bool()) == Some(true) {
            primary = split.clone();
        } else if let Some(k) = s.get("every").and_then(|v| v.as_integer()) {
            every.push((split.clone(), k as usize, s.get("extra").and_then(|v| v.as_bool()) == Some(true)));
        }
        n.insert(split, 0usize);
    }
    for step in 1..=steps {
        let due: Vec<&(String, usize, bool)> = every.iter().filter(|(_, k, _)| step % k == 0).collect();
        if !due.iter().any(|(_, _, extra)| !extra) {
            *n.get_mut(&primary).context("primary stream")? += 1;
        }
        for (d, _, _) in due {
            *n.get_mut(d).expect("stream") += 1;
        }
    }
    Ok(n)
}

/// The cosine between trajectories `a` and `b` of a `weights cosines` output.
fn cos_to(cos: &Value, a: &str, b: &str) -> Result<f64> {
    let labels: Vec<&str> = cos["trajectories"].as_array().context("trajectories")?.iter().filter_map(|t| t["label"].as_str()).collect();
    let idx = |l: &str| labels.iter().position(|t| *t == l).with_context(|| format!("cosines.json: no trajectory {l}"));
    cos["cosine"][idx(a)?][idx(b)?].as_f64().context("cosine")
}

/// Seconds of every finished stage of the run (over all the invocations that made it).
fn stage_seconds(l: &Layout) -> f64 {
    std::fs::read_dir(l.out.join("stages"))
        .map(|d| d.filter_map(|e| e.ok()).filter_map(|e| read_json(&e.path()).ok()).filter_map(|v| v["seconds"].as_f64()).sum())
        .unwrap_or(0.0)
}

pub fn write_report(l: &Layout, ck: &Checkpoints, m: &Measured, quick: bool) -> Result<PathBuf> {
    let seconds = stage_seconds(l);
    let p = l.probes();
    let mut o = String::new();
    // What the study judges: every checkpoint's scores now, the probes' numbers as they are read.
    // Inputs this run does not produce (seeds beyond one, the controls, B4/B5's measurements) stay
    // None and their rules read "not testable (missing: …)".
    let mut sr = StudyResults { base: m.measures("base"), ..StudyResults::default() };
    for (label, runs) in [
        ("frozen_te", &mut sr.frozen_te),
        ("lvis_replay", &mut sr.lvis_replay),
        ("lvis_replay_n100", &mut sr.lvis_replay_n100),
        ("lvis_replay_neg", &mut sr.lvis_replay_neg),
        ("recovery", &mut sr.recovery),
        ("presence_only", &mut sr.presence_only),
        ("null_ft", &mut sr.null_ft),
        ("unfrozen_te", &mut sr.unfrozen_te),
    ] {
        *runs = Runs::one(m.measures(label));
    }
    // --seeds N: seeds 1..N of the three seeded recipes, each its own checkpoint's scores.
    for (label, runs) in [("frozen_te", &mut sr.frozen_te), ("lvis_replay", &mut sr.lvis_replay), ("lvis_replay_neg", &mut sr.lvis_replay_neg)] {
        for k in 1..ck.seeds {
            runs.seeds.push(m.measures(&super::plan::seed_label(label, k)));
        }
    }
    // B5: the long unfrozen fine-tune, run once and recorded with the base it started from; read
    // only when that base is the one this run used.
    let b5: Value = serde_json::from_str(B5_RECORD).context("data/world/b5.json")?;
    if b5["base_sha256"].as_str() == Some(sam3lab_util::sha256_file(&l.base())?.as_str()) {
        sr.long_unfrozen_narrow_iou = b5["narrow_pos_mean_iou"].as_f64();
        sr.oracle_part_iou = b5["oracle_part_iou"].as_array().map(|a| {
            a.iter().filter_map(|r| Some((r["phrase"].as_str()?.to_string(), r["best_query_iou"].as_f64()?))).collect()
        });
    }
    // B4: the base's text encoder on the narrow and broad vocabularies (probe vocab).
    let vocab = read_json(&l.probes().join("vocab/vocab.json"))?;
    let floats = |k: &str| -> Vec<f64> { vocab[k].as_array().map(|a| a.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default() };
    if let (Some(cn), Some(cb)) = (vocab["max_cos_narrow"].as_f64(), vocab["max_cos_broad"].as_f64()) {
        sr.text_encoder = Some(sam3lab_study::TextEncoderCheck {
            narrow_row_norms: floats("narrow_row_norms"),
            broad_row_norms: floats("broad_row_norms"),
            max_cos_narrow: cn,
            max_cos_broad: cb,
        });
    }
    // The gate forced open on the base (control-gate-open): broad-eval neg_correct.
    let gate_open = read_json(&l.eval().join("base_gate_open/broad-eval.score.json"))?;
    sr.gate_open_base_neg_correct = gate_open["neg_correct"].as_f64();
    let pct = |label: &str, split: &str, key: &str| -> Result<f64> { Ok(100.0 * m.get(label, split, key)?) };
    let rec_end = format!("recovery@{}", ck.lengths.recovery);

    // --- Table 1.1 and Fig 1.1 -----------------------------------------------------------------
    let rows11: Vec<(&str, &str, &str, bool)> = vec![
        ("neg_correct", "broad-eval", "neg_correct", true),
        ("cgF1", "broad-eval", "cgF1_eval_segm_cgF1", true),
        ("IL_MCC", "broad-eval", "cgF1_eval_segm_IL_MCC", false),
        ("mean_mask_IoU", "broad-eval", "mean_mask_IoU", true),
        ("pmF1", "broad-eval", "cgF1_eval_segm_positive_micro_F1", true),
        ("pos_mean_IoU", "broad-eval", "pos_mean_IoU", true),
        ("LVIS_mIoU", "broad-positive-eval", "pos_mean_IoU", true),
    ];
    let mut t11 = vec![];
    for (name, split, key, scale) in &rows11 {
        let k = if *scale { 100.0 } else { 1.0 };
        let (b, f) = (k * m.get("base", split, key)?, k * m.get("frozen_te", split, key)?);
        let fmt = |x: f64| if *scale { f1(x) } else { f3(x) };
        t11.push(vec![name.to_string(), split.to_string(), fmt(b), fmt(f), if *scale { format!("{:+.1}", f - b) } else { format!("{:+.3}", f - b) }]);
    }
    let pres = read_json(&p.join("fig11/presence.json"))?;
    let series = |label: &str| -> Result<Vec<f64>> {
        pres["series"].as_array().context("series")?.iter().find(|s| s["label"] == label).and_then(|s| s["values"].as_array()).map(|v| v.iter().filter_map(Value::as_f64).collect()).with_context(|| format!("presence.json: no series {label}"))
    };
    let (sb, sf) = (series("base")?, series("frozen_te")?);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let above = |v: &[f64]| v.iter().filter(|x| **x >= 0.5).count();
    sr.base.fig11_sigma = Some(sb.clone());
    sr.frozen_te.seeds[0].fig11_sigma = Some(sf.clone());
    if ck.seeds >= 2 {
        let ps = read_json(&p.join("fig11_seeds/presence.json"))?;
        for k in 1..ck.seeds {
            let label = super::plan::seed_label("frozen_te", k);
            let v = ps["series"].as_array().context("series")?.iter().find(|s| s["label"] == label.as_str()).and_then(|s| s["values"].as_array()).with_context(|| format!("fig11_seeds: no series {label}"))?;
            sr.frozen_te.seeds[k as usize].fig11_sigma = Some(v.iter().filter_map(Value::as_f64).collect());
        }
    }
    o.push_str("## Table 1.1 — base vs the positive-only fine-tune (frozen_te)\n\n");
    o.push_str(&published_md(l, "table1_1_saco_base_vs_ft.csv")?);
    o.push_str("\n*World* (broad-eval = the SA-Co/Gold stand-in, broad-positive-eval = the LVIS stand-in; percent or points ×100 as published):\n\n");
    o.push_str(&md(&["metric", "split", "base", "frozen_te", "delta"], &t11));
    o.push_str(&format!(
        "\n**Fig 1.1** (σ of the presence logit on {} broad negatives, `figures/world/fig1_1_presence.png`): base mean {:.3} (≥ 0.5 on {}), frozen_te mean {:.3} (≥ 0.5 on {}). The post publishes no per-prompt values for this figure (base ≤ 0.08, fine-tune ≈ 1.000 on 12/12), so it has no published panel.\n\n",
        sb.len(), mean(&sb), above(&sb), mean(&sf), above(&sf)
    ));

    // --- Table 3.1 -------------------------------------------------------------------------------
    let recipes31 = ["base", "frozen_te", "lvis_replay", "lvis_replay_n100", "lvis_replay_neg", "recovery"];
    let mut t31 = vec![];
    for r in recipes31 {
        let label = if r == "recovery" { rec_end.clone() } else { r.to_string() };
        t31.push(vec![
            label,
            f3(m.get(r, "narrow-eval", "pos_mean_IoU")?),
            f1(pct(r, "broad-positive-eval", "pos_mean_IoU")?),
            f2(pct(r, "broad-positive-eval", "cgF1_eval_segm_positive_micro_F1")?),
            f2(pct(r, "broad-eval", "cgF1_eval_segm_positive_micro_F1")?),
            f2(pct(r, "broad-eval", "cgF1_eval_segm_cgF1")?),
            f3(m.get(r, "broad-eval", "cgF1_eval_segm_IL_MCC")?),
            f2(pct(r, "broad-eval", "pos_mean_IoU")?),
            f1(m.neg(r)?),
        ]);
    }
    o.push_str("## Table 3.1 — all recipes\n\n");
    o.push_str(&published_md(l, "table3_1_all_recipes.csv")?);
    o.push_str("\n*World* (watch = narrow-eval, LVIS = broad-positive-eval, SA-Co = broad-eval):\n\n");
    o.push_str(&md(&["recipe", "watch_iou", "lvis_miou", "lvis_pmf1", "saco_pmf1", "saco_cgf1", "saco_il_mcc", "saco_pos_mean", "saco_neg_correct_pct"], &t31));

    let lvis_base = pct("base", "broad-positive-eval", "pos_mean_IoU")?;

    // --- Table 4.1 -------------------------------------------------------------------------------
    let ex_r = exposure(&l.out.join("recipes/lvis_replay.toml"))?;
    let ex_c = exposure(&l.out.join("recipes/recovery.toml"))?;
    let t41 = vec![
        vec!["Where in training does broad data enter?".into(), "during the narrow FT".into(), "after the narrow FT".into(), String::new()],
        vec!["Total broad-positive exposure".into(), format!("{} batches", ex_r.get("broad-pretrain").copied().unwrap_or(0)), format!("{} batches", ex_c.get("broad-pretrain").copied().unwrap_or(0)), String::new()],
        vec!["Watch IoU (narrow-eval)".into(), f3(m.get("lvis_replay", "narrow-eval", "pos_mean_IoU")?), f3(m.get("recovery", "narrow-eval", "pos_mean_IoU")?), f3(m.get("base", "narrow-eval", "pos_mean_IoU")?)],
        vec!["LVIS mIoU (broad-positive-eval)".into(), f1(pct("lvis_replay", "broad-positive-eval", "pos_mean_IoU")?), f1(pct("recovery", "broad-positive-eval", "pos_mean_IoU")?), f1(lvis_base)],
        vec!["SA-Co pos_mean_IoU (broad-eval)".into(), f1(pct("lvis_replay", "broad-eval", "pos_mean_IoU")?), f1(pct("recovery", "broad-eval", "pos_mean_IoU")?), f1(pct("base", "broad-eval", "pos_mean_IoU")?)],
    ];
    o.push_str("\n## Table 4.1 — the same broad positives, during vs after the fine-tune\n\n");
    o.push_str(&published_md(l, "table4_1_replay_vs_recovery.csv")?);
    o.push_str("\n*World*:\n\n");
    o.push_str(&md(&["quantity", "lvis_replay", &rec_end, "base"], &t41));

    // --- Table 7.1 (needed by the recovery and presence_only findings) --------------------------
    let cos = read_json(&p.join("cosines/cosines.json"))?;
    let trajs: Vec<String> = cos["trajectories"].as_array().context("trajectories")?.iter().filter_map(|t| t["label"].as_str().map(String::from)).collect();
    let idx = |l: &str| trajs.iter().position(|t| t == l).with_context(|| format!("cosines.json: no trajectory {l}"));
    let cosv = |a: &str, b: &str| -> Result<f64> { cos["cosine"][idx(a)?][idx(b)?].as_f64().context("cosine") };
    let scal = read_json(&p.join("cosines_scalar/cosines.json"))?;
    let strajs: Vec<String> = scal["trajectories"].as_array().context("trajectories")?.iter().filter_map(|t| t["label"].as_str().map(String::from)).collect();
    let scos = |a: &str| -> Result<f64> {
        let i = strajs.iter().position(|t| t == a).context("scalar trajectory")?;
        let j = strajs.iter().position(|t| t == "frozen_te").context("scalar frozen_te")?;
        scal["cosine"][i][j].as_f64().context("cosine")
    };

    for (label, runs) in [("frozen_te", &mut sr.frozen_te), ("lvis_replay", &mut sr.lvis_replay), ("lvis_replay_neg", &mut sr.lvis_replay_neg), ("recovery", &mut sr.recovery), ("presence_only", &mut sr.presence_only)] {
        runs.seeds[0].bias_cos = Some(cosv(label, "frozen_te")?);
        runs.seeds[0].scalar_bias_cos = Some(scos(label)?);
    }
    // Seeds 1..N: each seed's deltas against its own frozen_te's (probes/seedK/), as seed 0's.
    for k in 1..ck.seeds {
        let dir = p.join(format!("seed{k}"));
        let (c, sc) = (read_json(&dir.join("cosines/cosines.json"))?, read_json(&dir.join("cosines_scalar/cosines.json"))?);
        for (label, runs) in [("frozen_te", &mut sr.frozen_te), ("lvis_replay", &mut sr.lvis_replay), ("lvis_replay_neg", &mut sr.lvis_replay_neg)] {
            runs.seeds[k as usize].bias_cos = Some(cos_to(&c, label, "frozen_te")?);
            runs.seeds[k as usize].scalar_bias_cos = Some(cos_to(&sc, label, "frozen_te")?);
        }
    }
    if ck.seeds >= 2 {
        sr.seed_floor_cos = Some(cos_to(&read_json(&p.join("seed_floor/cosines.json"))?, "frozen_te", "frozen_te_seed1")?);
    }

    // --- Table 5.1 / 5.2 -------------------------------------------------------------------------
    let tr = read_json(&p.join("table5_1/presence.json"))?;
    let labels: Vec<bool> = std::fs::read_to_string(l.inputs().join("narrow_pairs.jsonl"))?
        .lines()
        .filter(|x| !x.trim().is_empty())
        .map(|x| serde_json::from_str::<Value>(x).map(|v| v["label"] == "pos"))
        .collect::<std::result::Result<_, _>>()?;
    let mut t51 = vec![];
    for series in tr["series"].as_array().context("series")? {
        let v: Vec<f64> = series["values"].as_array().context("values")?.iter().filter_map(Value::as_f64).collect();
        let (ps, ns): (Vec<f64>, Vec<f64>) = {
            let mut a = (vec![], vec![]);
            for (x, is_pos) in v.iter().zip(&labels) {
                if *is_pos { a.0.push(*x) } else { a.1.push(*x) }
            }
            a
        };
        let bce = |v: &[f64], pos: bool| mean(&v.iter().map(|x| -(if pos { *x } else { 1.0 - x }).clamp(1e-7, 1.0).ln()).collect::<Vec<_>>());
        t51.push(vec![series["label"].as_str().unwrap_or("?").to_string(), f3(mean(&ps)), f3(mean(&ns)), f2(bce(&ps, true)), f2(bce(&ns, false))]);
    }
    o.push_str("\n## Table 5.1 — presence_only's trajectory (σ of the presence logit)\n\n");
    o.push_str(&published_md(l, "table5_1_presence_only_trajectory.csv")?);
    o.push_str(&format!("\n*World* (step 0 = lvis_replay; {} narrow-train positives and {} narrow negatives):\n\n", labels.iter().filter(|x| **x).count(), labels.iter().filter(|x| !**x).count()));
    o.push_str(&md(&["step", "pos_pres_sigma", "neg_pres_sigma", "pos_bce", "neg_bce"], &t51));

    let mut t52 = vec![];
    for r in ["base", "lvis_replay", "recovery", "lvis_replay_neg", "presence_only"] {
        t52.push(vec![
            if r == "recovery" { rec_end.clone() } else { r.to_string() },
            f3(m.get(r, "narrow-eval", "pos_mean_IoU")?),
            f1(pct(r, "broad-eval", "cgF1_eval_segm_cgF1")?),
            f3(m.get(r, "broad-eval", "cgF1_eval_segm_IL_MCC")?),
            f1(pct(r, "broad-eval", "mean_mask_IoU")?),
            f1(pct(r, "broad-eval", "pos_mean_IoU")?),
            f1(m.neg(r)?),
        ]);
    }
    o.push_str("\n## Table 5.2 — presence_only's endpoint\n\n");
    o.push_str(&published_md(l, "table5_2_presence_only_endpoint.csv")?);
    o.push_str("\n*World*:\n\n");
    o.push_str(&md(&["recipe", "watch_iou", "saco_cgf1", "saco_il_mcc", "saco_mean_mask_iou", "saco_pos_mean", "saco_neg_correct_pct"], &t52));

    // --- §6 drift ---------------------------------------------------------------------------------
    let drift = read_json(&p.join("drift/drift.json"))?;
    let points: Vec<String> = drift["points"].as_array().context("points")?.iter().filter_map(|x| x.as_str().map(String::from)).collect();
    let groups: Vec<String> = drift["groups"].as_array().context("groups")?.iter().filter_map(|x| x.as_str().map(String::from)).collect();
    let mut head = vec!["checkpoint".to_string()];
    for pt in &points {
        for g in &groups {
            head.push(format!("{pt}:{g}"));
        }
    }
    let mut td = vec![];
    for row in drift["rows"].as_array().context("rows")? {
        let mut r = vec![row["checkpoint"].as_str().unwrap_or("?").to_string()];
        for pt in &points {
            for g in &groups {
                r.push(row["values"][pt][g].as_f64().map(f3).unwrap_or_else(|| "—".into()));
            }
        }
        td.push(r);
    }
    o.push_str("\n## §6 — activation drift rel_Δ vs base\n\n");
    o.push_str(&published_md(l, "table6_rel_delta.csv")?);
    o.push_str(&format!(
        "\n*World* (fusion[4] → fusion.layers.{f}, d[5] → decoder.layers.{d}: the mini model's last layers; groups: watch = narrow parts, lvis = broad category names, saco = broad-eval noun phrases; 20 probe images):\n\n",
        f = m.fus_last,
        d = m.dec_last
    ));
    let hr: Vec<&str> = head.iter().map(String::as_str).collect();
    o.push_str(&md(&hr, &td));

    // --- Table 6.1 -------------------------------------------------------------------------------
    let wd = read_json(&p.join("weights_diff/table.json"))?;
    let rows: Vec<String> = wd["rows"].as_array().context("rows")?.iter().filter_map(|x| x.as_str().map(String::from)).collect();
    let cols: Vec<String> = wd["cols"].as_array().context("cols")?.iter().filter_map(|x| x.as_str().map(String::from)).collect();
    let val = |i: usize, j: usize| wd["values"][i][j].as_f64();
    let mut t61 = vec![];
    for (i, g) in rows.iter().enumerate() {
        let mut r = vec![g.clone()];
        r.extend((0..cols.len()).map(|j| val(i, j).map(f3).unwrap_or_else(|| "—".into())));
        t61.push(r);
    }
    o.push_str("\n## Table 6.1 — weight movement per module group (weighted mean rel_change, each recipe from its start)\n\n");
    o.push_str(&published_md(l, "table6_1_weight_movement.csv")?);
    o.push_str("\n*World*:\n\n");
    let mut h61 = vec!["group"];
    h61.extend(cols.iter().map(String::as_str));
    o.push_str(&md(&h61, &t61));
    sr.group_movement = Some(sam3lab_study::GroupMovement {
        groups: rows.clone(),
        recipes: cols.iter().enumerate().map(|(j, c)| (c.clone(), (0..rows.len()).map(|i| val(i, j)).collect())).collect(),
    });

    // --- Table 7.1 --------------------------------------------------------------------------------
    let mut t71 = vec![];
    for (i, tj) in cos["trajectories"].as_array().context("trajectories")?.iter().enumerate() {
        let lab = trajs[i].clone();
        t71.push(vec![
            lab.clone(),
            tj["from"]["path"].as_str().map(|x| Path::new(x).display().to_string()).unwrap_or_default().replace(&s(&l.out), "OUT"),
            f2(tj["rel_base"].as_f64().unwrap_or(f64::NAN)),
            sgn(cosv(&lab, "frozen_te")?),
            sgn(cosv(&lab, "presence_only")?),
            format!("{:+.0}", scos(&lab)?),
        ]);
    }
    o.push_str("\n## Table 7.1 — cosines of the weight deltas of `transformer.decoder.presence_token_out_norm.bias`\n\n");
    o.push_str(&published_md(l, "table7_1_bias_cosines.csv")?);
    o.push_str(&format!(
        "\n*World* (d = {}; last column: the scalar `presence_token_head.layers.2.bias` sign check, cos to frozen_te's delta = ±1):\n\n",
        cos["numel"].as_u64().unwrap_or(0)
    ));
    o.push_str(&md(&["label", "from", "delta_norm_rel_base", "cos_to_frozen_te", "cos_to_presence_only", "scalar_bias_sign_vs_frozen_te"], &t71));

    // --- §9 ----------------------------------------------------------------------------------------
    o.push_str("\n## §9 — the mech-interp chase on lvis_replay → lvis_replay_neg (broad negatives)\n\n");
    let lc = read_json(&p.join("layer_cosine/heads.json"))?;
    let mut tl = vec![];
    for u in lc["units"].as_array().context("units")? {
        tl.push(vec![u["unit"].as_str().unwrap_or("?").into(), u["delta_norm"].as_f64().map(f3).unwrap_or_default(), u["cos_toward_ref"].as_f64().map(sgn).unwrap_or_else(|| "—".into())]);
    }
    o.push_str("Layer-level cosine probe (cos(replay_neg.q0 − replay.q0, base.q0 − replay.q0); published: peaks at L3–L5, 0.61–0.65):\n\n");
    o.push_str(&md(&["point", "‖Δ‖", "cos toward base"], &tl));
    let hd = read_json(&p.join("heads/heads.json"))?;
    let mut th = vec![];
    for u in hd["units"].as_array().context("units")?.iter().take(4) {
        th.push(vec![
            u["rank"].to_string(),
            u["unit"].as_str().unwrap_or("?").into(),
            u["delta_norm"].as_f64().map(f3).unwrap_or_default(),
            u["cos_toward_ref"].as_f64().map(sgn).unwrap_or_else(|| "—".into()),
            u["mag_a"].as_f64().map(f2).unwrap_or_default(),
            u["mag_b"].as_f64().map(f2).unwrap_or_default(),
            u["mag_ref"].as_f64().map(f2).unwrap_or_default(),
        ]);
    }
    o.push_str("\nPer-head ranking of the cross-text-attention heads at q0 (published: decoder[4].h0 first, ‖Δ‖ 1.194, cos toward base +0.993, magnitude 1.32 → 0.15, base 0.21):\n\n");
    o.push_str(&md(&["rank", "head", "‖Δ‖", "cos toward base", "mag lvis_replay", "mag lvis_replay_neg", "mag base"], &th));
    let pj = read_json(&p.join("patch/patch.json"))?;
    let mut tp = vec![];
    for c in pj["conditions"].as_array().context("conditions")? {
        tp.push(vec![
            c["name"].as_str().unwrap_or("?").into(),
            c["points"].as_array().map(|v| v.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default(),
            format!("{}/{}", c["silenced_disagreeing"], c["disagreeing"]),
            c["neg_correct_before"].as_f64().map(|x| f1(100.0 * x)).unwrap_or_default(),
            c["neg_correct_after"].as_f64().map(|x| f1(100.0 * x)).unwrap_or_default(),
        ]);
    }
    o.push_str("\nCausal patch, lvis_replay_neg's activations into lvis_replay (published: decoder[5] alone silenced 82 % of the 34 disagreeing false positives; the q0-alone row is the lockstep check):\n\n");
    o.push_str(&md(&["condition", "points", "silenced / disagreeing", "neg_correct before %", "after %"], &tp));
    let rk = read_json(&p.join("sae_rank/rank.json"))?;
    let ck_labels: Vec<String> = rk["checkpoints"].as_array().context("checkpoints")?.iter().filter_map(|c| c["label"].as_str().map(String::from)).collect();
    let mut ts = vec![];
    for f in rk["features"].as_array().context("features")?.iter().take(3) {
        let mut r = vec![f["feature"].to_string(), f["score"].as_f64().map(f3).unwrap_or_default()];
        for (i, _) in ck_labels.iter().enumerate() {
            r.push(f["rates"][i]["fire_neg"].as_f64().map(|x| f1(100.0 * x)).unwrap_or_default());
        }
        ts.push(r);
    }
    let sae_cfg = read_json(&p.join("sae/sae.json")).ok();
    o.push_str(&format!(
        "\nSAE on decoder.layers.{}.q0 (ReLU + L1, width {}): top features by the change of (fire on neg − fire on pos) from lvis_replay to lvis_replay_neg; fire rate on negatives per checkpoint (published: features 949, 572, 403 fire ~100 % on base negatives, ~75 % in lvis_replay, ~95 % in lvis_replay_neg):\n\n",
        m.dec_last,
        sae_cfg.as_ref().and_then(|v| v["width"].as_u64().or_else(|| v["config"]["width"].as_u64())).map(|x| x.to_string()).unwrap_or_else(|| "4·d".into())
    ));
    let mut hs = vec!["feature".to_string(), "score".into()];
    hs.extend(ck_labels.iter().map(|c| format!("fire on neg % ({c})")));
    let hsr: Vec<&str> = hs.iter().map(String::as_str).collect();
    o.push_str(&md(&hsr, &ts));

    // Table 8.1
    let top = top_heads(&p.join("heads/heads.json"), 4)?;
    let nr = m.neg("lvis_replay")?;
    let mut t81 = vec![vec!["lvis_replay (starting point)".to_string(), String::new(), f2(nr)]];
    let mut best: Option<(String, f64)> = None;
    let mut consider = |name: String, v: f64| {
        if best.as_ref().is_none_or(|b| v > b.1) {
            best = Some((name, v));
        }
    };
    for (name, what) in [
        ("surgery_h0", format!("{} in/out-proj slices ← base (α = 1)", top[0])),
        ("surgery_top4", format!("{} ← base (α = 1)", top.join(", "))),
        ("surgery_h0_alpha05", format!("0.5·base + 0.5·lvis_replay on {}", top[0])),
    ] {
        let v = 100.0 * read_json(&p.join("surgery").join(format!("{name}.score.json")))?["neg_correct"].as_f64().context("neg_correct")?;
        consider(name.to_string(), v / 100.0);
        t81.push(vec![name.into(), what, f2(v)]);
    }
    let st = read_json(&p.join("steer/steer.json"))?;
    let al: Vec<(f64, f64)> = st["alphas"].as_array().context("alphas")?.iter().filter_map(|a| Some((a["alpha"].as_f64()?, 100.0 * a["neg_correct"].as_f64()?))).collect();
    let steered: Vec<f64> = al.iter().filter(|(a, _)| *a > 0.0).map(|(_, v)| *v).collect();
    let (lo, hi) = (steered.iter().cloned().fold(f64::INFINITY, f64::min), steered.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
    for (a, v) in al.iter().filter(|(a, _)| *a > 0.0) {
        consider(format!("steering α = {a}"), v / 100.0);
    }
    t81.push(vec![
        format!("steering at decoder.layers.{}.q0", m.dec_last),
        format!("add α·(replay_neg.q0 − replay.q0), α ∈ {{{}}}", al.iter().filter(|(a, _)| *a > 0.0).map(|(a, _)| format!("{a}")).collect::<Vec<_>>().join(", ")),
        format!("{} – {} (α = 0: {})", f2(lo), f2(hi), al.iter().find(|(a, _)| *a == 0.0).map(|(_, v)| f2(*v)).unwrap_or_default()),
    ]);
    o.push_str("\n## Table 8.1 — training-free interventions on lvis_replay (neg_correct %, broad-eval)\n\n");
    o.push_str(&published_md(l, "table8_1_interventions.csv")?);
    o.push_str("\n*World* (heads = `probe heads`' top four):\n\n");
    o.push_str(&md(&["intervention", "what it does", "neg_correct %"], &t81));
    sr.best_intervention = best;

    // --- Controls and seeds ------------------------------------------------------------------------
    let opt_pct = |x: Option<f64>| x.map(|v| f1(100.0 * v)).unwrap_or_else(|| "—".into());
    let opt3 = |x: Option<f64>| x.map(f3).unwrap_or_else(|| "—".into());
    let row = |label: &str, what: &str, ms: &Measures| {
        vec![label.to_string(), what.to_string(), opt_pct(ms.neg_correct), opt_pct(ms.detection), opt_pct(ms.pos_mean_iou), opt_pct(ms.lvis_miou), opt3(ms.narrow_iou)]
    };
    let gate = Measures {
        neg_correct: gate_open["neg_correct"].as_f64(),
        detection: match (gate_open["IL_TP"].as_f64(), gate_open["IL_FN"].as_f64()) {
            (Some(tp), Some(f)) if tp + f > 0.0 => Some(tp / (tp + f)),
            _ => None,
        },
        pos_mean_iou: gate_open["pos_mean_IoU"].as_f64(),
        ..Measures::default()
    };
    let mut tc = vec![
        row("base", "the shipped base", &sr.base),
        row("base, gate forced open", "`eval predict --hook zero:presence_logit --hook add:presence_logit=…@1` (logit := 50, σ = 1): B2's second clause", &gate),
        row("null_ft", "frozen_te's recipe on broad-pretrain instead of the narrow set (same steps, rate, seed): B6", &sr.null_ft.seeds[0]),
        row("unfrozen_te", "frozen_te's recipe without the text-encoder freeze", &sr.unfrozen_te.seeds[0]),
    ];
    for (label, runs) in [("frozen_te", &sr.frozen_te), ("lvis_replay", &sr.lvis_replay), ("lvis_replay_neg", &sr.lvis_replay_neg)] {
        for (k, ms) in runs.seeds.iter().enumerate() {
            tc.push(row(&super::plan::seed_label(label, k as u64), &format!("seed + {k}"), ms));
        }
    }
    o.push_str("\n## Controls and seeds\n\n");
    o.push_str(&format!(
        "The controls of issue 26 (derived in code from the shipped recipes, `OUT/recipes/`) and every seed of the seeded recipes ({} seed{}; `--seeds N`). Percent; narrow-eval IoU as a fraction; LVIS = broad-positive-eval pos_mean_IoU.\n\n",
        ck.seeds,
        if ck.seeds == 1 { "" } else { "s" }
    ));
    o.push_str(&md(&["checkpoint", "what", "neg_correct %", "detection %", "pos_mean_IoU", "LVIS mIoU", "narrow-eval IoU"], &tc));
    o.push_str(&match sr.seed_floor_cos {
        Some(c) => format!("\nSeed floor (F7): cos(frozen_te seed 0 − base, frozen_te seed 1 − base) on `presence_token_out_norm.bias` = {c:+.3}.\n"),
        None => "\nSeed floor (F7): not measured (needs `--seeds 2` or more).\n".to_string(),
    });

    // --- Assemble ------------------------------------------------------------------------------
    let mut r = String::new();
    r.push_str("# sam3lab reproduce — the post's story on the embedded world\n\n");
    r.push_str(&format!(
        "{} run: mini-SAM3 base `{}` (sha256 {}), world seed 0, recipes {} steps (recovery {}, presence_only {}), {:.0} s in all. Every number below was computed in this run by the commands listed in `stages/*.json` (their output in `logs/`); published numbers come from `published/` (the post's tables). Findings are decided by the pre-registered rules of world v2 (issue 26; `crates/study/src/rules.rs`), printed beside each verdict.\n\n",
        if quick { "A **--quick** (smoke)" } else { "A default" },
        l.base().strip_prefix(&l.out).unwrap_or(&l.base()).display(),
        &sam3lab_util::sha256_file(&l.base()).unwrap_or_default().get(..12).unwrap_or(""),
        ck.lengths.finetune,
        ck.lengths.recovery,
        ck.lengths.presence_only,
        seconds
    ));
    if quick {
        r.push_str("> **--quick**: four training steps per recipe on a tiny world — the pipeline's smoke test. The numbers are real but say nothing about the post's findings.\n\n");
    }
    let study = sam3lab_study::evaluate(&sr);
    r.push_str(&sam3lab_study::report::render(&study));
    r.push_str("\n## Figures (published | this run, same renderer)\n\n");
    for (stem, title) in TWINS {
        r.push_str(&format!("**{title}**\n\n![{title}](figures/side_by_side/{stem}.png)\n\n"));
    }
    r.push_str("**Fig 1.1** (this run only; the post publishes no per-prompt values)\n\n![Fig 1.1](figures/world/fig1_1_presence.png)\n\n");
    r.push_str("Training curves: ");
    r.push_str(&ck.by_label.keys().filter(|x| *x != "base").map(|n| format!("[{n}](figures/world/train_{n}.png)")).collect::<Vec<_>>().join(" · "));
    r.push_str("\n\n");
    r.push_str(&o);
    let path = l.out.join("REPORT.md");
    sam3lab_util::write_atomic(&path, r.as_bytes())?;
    let summary = json!({
        "findings": study.findings,
        "base_criteria": study.base_criteria,
        "observations": study.observations,
        "results": sr,
        "quick": quick,
        "seconds": seconds,
        "lengths": {"finetune": ck.lengths.finetune, "recovery": ck.lengths.recovery, "presence_only": ck.lengths.presence_only},
        "seeds": ck.seeds,
    });
    sam3lab_util::write_atomic(&l.out.join("report.json"), serde_json::to_string_pretty(&summary)?.as_bytes())?;
    Ok(path)
}
