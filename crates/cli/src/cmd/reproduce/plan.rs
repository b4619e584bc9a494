//! The run plan of `sam3lab reproduce`: the shipped world recipes, cut to this run's lengths and
//! pointed at this run's world and checkpoints.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// One of the post's recipes (or a control, or a further seed of one) as `reproduce` runs it.
pub struct RecipePlan {
    /// Label in every table and directory (the post's recipe name; `NAME_seedK` for seed + K; the
    /// control's name).
    pub name: String,
    /// The shipped recipe it comes from (recipes/world/SHIPPED.toml).
    pub shipped: &'static str,
    /// The shipped recipe's text.
    pub text: &'static str,
    /// Steps in this run.
    pub steps: usize,
    /// The recipe whose last checkpoint this one starts from (None: the base).
    pub parent: Option<&'static str>,
    /// The shipped recipe as is, or a control derived from it in code ([`derive`]).
    pub variant: Variant,
    /// Added to the shipped recipe's seed (`--seeds N`: 0..N).
    pub seed_offset: u64,
}

/// A control of issue 26 (item 6), derived from a shipped recipe by [`derive`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Shipped,
    /// The null fine-tune: the recipe with its primary (narrow) stream replaced by the broad
    /// pretraining data (positives and negatives, as the base was pretrained); same steps, rate,
    /// schedule, seed and objective (B6).
    NullFt,
    /// The recipe without its text-encoder freeze (the post's predecessor's premise).
    UnfrozenTe,
}

macro_rules! recipe {
    ($name:literal) => {
        include_str!(concat!("../../../../../recipes/world/", $name, ".toml"))
    };
}

/// Steps per recipe: one step count for the four fine-tunes (issue 26: chosen by the premise F1
/// alone), recovery at a quarter of it in the post's match-then-boost shape (the post: 500 of ~2,000),
/// presence_only at half. The post's runs are ~2,000–3,000 batches; these are the same recipes at the
/// world's scale.
pub struct Lengths {
    pub finetune: usize,
    pub recovery: usize,
    pub presence_only: usize,
}

impl Lengths {
    pub fn new(quick: bool) -> Lengths {
        if quick {
            Lengths { finetune: 4, recovery: 4, presence_only: 4 }
        } else {
            let finetune = 600;
            Lengths { finetune, recovery: finetune / 4, presence_only: finetune / 2 }
        }
    }
}

/// The post's recipes in the order they depend on each other, then the controls (from frozen_te),
/// then seeds 1..`seeds` of frozen_te, lvis_replay and lvis_replay_neg (`--seeds N`).
pub fn recipes(l: &Lengths, seeds: usize) -> Vec<RecipePlan> {
    let plan = |name: &str, shipped: &'static str, text: &'static str, steps: usize, parent: Option<&'static str>, variant: Variant, seed_offset: u64| RecipePlan {
        name: name.to_string(),
        shipped,
        text,
        steps,
        parent,
        variant,
        seed_offset,
    };
    let mut v = vec![
        plan("frozen_te", "frozen_te", recipe!("frozen_te"), l.finetune, None, Variant::Shipped, 0),
        plan("lvis_replay", "lvis_replay", recipe!("lvis_replay"), l.finetune, None, Variant::Shipped, 0),
        plan("lvis_replay_n100", "lvis_replay_n100", recipe!("lvis_replay_n100"), l.finetune, None, Variant::Shipped, 0),
        plan("lvis_replay_neg", "lvis_replay_neg", recipe!("lvis_replay_neg"), l.finetune, None, Variant::Shipped, 0),
        plan("recovery", "recovery", recipe!("recovery"), l.recovery, Some("frozen_te"), Variant::Shipped, 0),
        plan("presence_only", "presence_only", recipe!("presence_only"), l.presence_only, Some("lvis_replay"), Variant::Shipped, 0),
        plan("null_ft", "frozen_te", recipe!("frozen_te"), l.finetune, None, Variant::NullFt, 0),
        plan("unfrozen_te", "frozen_te", recipe!("frozen_te"), l.finetune, None, Variant::UnfrozenTe, 0),
    ];
    for k in 1..seeds.max(1) as u64 {
        for (name, text) in SEEDED {
            v.push(plan(&seed_label(name, k), name, text, l.finetune, None, Variant::Shipped, k));
        }
    }
    v
}

/// The recipes `--seeds N` repeats with seed + k.
pub const SEEDED: [(&str, &str); 3] = [("frozen_te", recipe!("frozen_te")), ("lvis_replay", recipe!("lvis_replay")), ("lvis_replay_neg", recipe!("lvis_replay_neg"))];

/// The label of seed + `k` of a recipe (`k = 0`: the recipe's own label).
pub fn seed_label(name: &str, k: u64) -> String {
    if k == 0 { name.to_string() } else { format!("{name}_seed{k}") }
}

/// A shipped recipe as a control or a further seed: the variant's change and `seed + seed_offset`,
/// nothing else (paths, lengths and the objective are [`adapt`]'s).
pub fn derive(text: &str, variant: Variant, seed_offset: u64) -> Result<String> {
    if variant == Variant::Shipped && seed_offset == 0 {
        return Ok(text.to_string());
    }
    let mut t: toml::Table = toml::from_str(text).context("a shipped recipe does not parse")?;
    let desc = t.get("description").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let mut note = vec![];
    match variant {
        Variant::Shipped => {}
        Variant::NullFt => {
            let data = t.get_mut("data").and_then(|d| d.as_table_mut()).context("recipe without [data]")?;
            let primary = data
                .iter()
                .find(|(_, s)| s.get("primary").and_then(|v| v.as_bool()) == Some(true))
                .map(|(k, _)| k.clone())
                .context("recipe without a primary stream")?;
            let mut stream = data.remove(&primary).expect("found").as_table().cloned().context("stream is not a table")?;
            stream.insert("gt".into(), "../../runs/world/broad-pretrain.json".into());
            stream.remove("only");
            data.insert("broad".into(), toml::Value::Table(stream));
            note.push(format!("null fine-tune: its primary stream `{primary}` replaced by broad-pretrain (positives and negatives)"));
        }
        Variant::UnfrozenTe => {
            let freeze = t.get_mut("freeze").and_then(|f| f.as_table_mut()).context("recipe without [freeze]")?;
            let frozen = freeze.get_mut("frozen").and_then(|f| f.as_array_mut()).context("recipe without freeze.frozen")?;
            let before = frozen.len();
            frozen.retain(|p| !p.as_str().is_some_and(|p| p.starts_with("backbone.language_backbone")));
            if frozen.len() == before {
                bail!("the recipe freezes no text encoder to unfreeze");
            }
            if frozen.is_empty() {
                freeze.remove("frozen");
            }
            if freeze.is_empty() {
                t.remove("freeze");
            }
            note.push("unfrozen-TE fine-tune: the text-encoder freeze removed".to_string());
        }
    }
    if seed_offset > 0 {
        let seed = t.get("seed").and_then(|v| v.as_integer()).unwrap_or(0) + seed_offset as i64;
        t.insert("seed".into(), seed.into());
        note.push(format!("seed + {seed_offset}"));
    }
    t.insert("description".into(), format!("{desc} [{}]", note.join("; ")).into());
    Ok(toml::to_string(&t)?)
}

fn scale(step: i64, from: i64, to: i64) -> i64 {
    ((step * to) as f64 / from as f64).round() as i64
}

/// The world's one objective (data/world/objective.toml), named by every shipped recipe's
/// `[loss] from`; `reproduce` writes it into the run and points the adapted recipes at that copy.
pub const OBJECTIVE: &str = include_str!("../../../../../data/world/objective.toml");

/// The shipped recipe with its lengths scaled to `steps` (checkpoints, warm-up, piecewise points and
/// eval cadence in proportion) and its paths pointed at `world`, `config`, `start` and the run's copy
/// of the objective (`objective`, whose text is [`OBJECTIVE`]: its sha256 goes into the recipe's
/// first line, so a changed objective is a changed recipe).
pub fn adapt(text: &str, steps: usize, world: &Path, config: &Path, start: &Path, objective: &Path, quick: bool) -> Result<String> {
    let mut t: toml::Table = toml::from_str(text).context("a shipped recipe does not parse")?;
    let orig = t.get("steps").and_then(|v| v.as_integer()).context("shipped recipe without steps")?;
    let steps = steps as i64;
    t.insert("steps".into(), steps.into());
    let mut ck: Vec<i64> = t
        .get("checkpoints")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_integer()).map(|c| scale(c, orig, steps).max(1)).collect())
        .unwrap_or_default();
    ck.push(steps);
    ck.sort_unstable();
    ck.dedup();
    t.insert("checkpoints".into(), toml::Value::Array(ck.into_iter().map(Into::into).collect()));
    t.insert("log_every".into(), (steps / 40).max(1).into());
    let model = t.get_mut("model").and_then(|m| m.as_table_mut()).context("recipe without [model]")?;
    model.insert("checkpoint".into(), start.display().to_string().into());
    model.insert("config".into(), config.display().to_string().into());
    let rebase = |v: &mut toml::Value| -> Result<()> {
        let s = v.as_str().context("a path is not a string")?;
        let rel = s.strip_prefix("../../runs/world/").with_context(|| format!("unexpected data path {s}"))?;
        *v = world.join(rel).display().to_string().into();
        Ok(())
    };
    if let Some(data) = t.get_mut("data").and_then(|d| d.as_table_mut()) {
        for (_, s) in data.iter_mut() {
            rebase(s.get_mut("gt").context("stream without gt")?)?;
        }
    }
    if let Some(e) = t.get_mut("eval").and_then(|d| d.as_table_mut()) {
        rebase(e.get_mut("gt").context("eval without gt")?)?;
        e.insert("every".into(), (steps / 4).max(1).into());
        // The in-run evaluation only lets a run be watched (the report's numbers come from the
        // eval stage on every pair): its first 300 pairs are enough, and cost a fifth of broad-eval.
        e.insert("max_pairs".into(), 300.into());
        if quick {
            e.insert("batch".into(), 4.into());
        }
    }
    if let Some(loss) = t.get_mut("loss").and_then(|d| d.as_table_mut()) {
        if let Some(from) = loss.get_mut("from") {
            let f = from.as_str().context("loss.from is not a string")?;
            if !f.ends_with("data/world/objective.toml") {
                bail!("unexpected objective {f} (the world's recipes share data/world/objective.toml)");
            }
            *from = objective.display().to_string().into();
        }
    }
    if let Some(s) = t.get_mut("schedule").and_then(|d| d.as_table_mut()) {
        if let Some(w) = s.get("warmup").and_then(|v| v.as_integer()) {
            s.insert("warmup".into(), scale(w, orig, steps).max(1).into());
        }
        if let Some(points) = s.get_mut("points").and_then(|p| p.as_array_mut()) {
            // Scaled steps stay strictly increasing (a short run would otherwise merge them).
            let mut last = -1;
            for p in points.iter_mut() {
                let Some(pair) = p.as_array_mut() else { bail!("piecewise point is not [step, factor]") };
                if let Some(step) = pair.first().and_then(|v| v.as_integer()) {
                    last = scale(step, orig, steps).max(last + 1);
                    pair[0] = last.into();
                }
            }
        }
    }
    let mut out = format!("# generated by `sam3lab reproduce` from the shipped recipes/world recipe ({orig} steps → {steps})\n");
    if t.get("loss").and_then(|l| l.get("from")).is_some() {
        out.push_str(&format!("# objective: {} (sha256 {})\n", objective.display(), &sam3lab_util::sha256_hex(OBJECTIVE.as_bytes())[..16]));
    }
    out.push_str(&toml::to_string(&t)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapted_recipes_keep_their_shape_and_scale_their_steps() {
        let l = Lengths::new(false);
        for r in recipes(&l, 2) {
            let derived = derive(r.text, r.variant, r.seed_offset).unwrap();
            let text = adapt(&derived, r.steps, Path::new("/w"), Path::new("/c.json"), Path::new("/s.safetensors"), Path::new("/o.toml"), false).unwrap();
            let t: toml::Table = toml::from_str(&text).unwrap();
            // The one objective, at the run's copy.
            assert_eq!(t["loss"]["from"].as_str(), Some("/o.toml"), "{}", r.name);
            assert_eq!(t["loss"].as_table().unwrap().len(), 1, "{}", r.name);
            assert_eq!(t["steps"].as_integer(), Some(r.steps as i64), "{}", r.name);
            let ck = t["checkpoints"].as_array().unwrap();
            assert_eq!(ck.last().unwrap().as_integer(), Some(r.steps as i64));
            assert_eq!(t["model"]["checkpoint"].as_str(), Some("/s.safetensors"));
            for (_, s) in t["data"].as_table().unwrap() {
                assert!(s["gt"].as_str().unwrap().starts_with("/w/"), "{}", r.name);
            }
        }
        // recovery: the post's match-then-boost points scale with the run.
        let rec = recipes(&l, 1).into_iter().find(|r| r.name == "recovery").unwrap();
        let text = adapt(rec.text, 500, Path::new("/w"), Path::new("/c"), Path::new("/s"), Path::new("/o"), false).unwrap();
        let t: toml::Table = toml::from_str(&text).unwrap();
        let pts: Vec<i64> = t["schedule"]["points"].as_array().unwrap().iter().map(|p| p[0].as_integer().unwrap()).collect();
        let orig: toml::Table = toml::from_str(rec.text).unwrap();
        let o: Vec<i64> = orig["schedule"]["points"].as_array().unwrap().iter().map(|p| p[0].as_integer().unwrap()).collect();
        let k = orig["steps"].as_integer().unwrap();
        assert_eq!(pts, o.iter().map(|s| scale(*s, k, 500)).collect::<Vec<_>>());
        // A four-step run keeps the points increasing.
        let text = adapt(rec.text, 4, Path::new("/w"), Path::new("/c"), Path::new("/s"), Path::new("/o"), true).unwrap();
        let t: toml::Table = toml::from_str(&text).unwrap();
        let pts: Vec<i64> = t["schedule"]["points"].as_array().unwrap().iter().map(|p| p[0].as_integer().unwrap()).collect();
        assert!(pts.windows(2).all(|w| w[0] < w[1]), "{pts:?}");
    }

    #[test]
    fn controls_and_seeds_change_only_what_they_name() {
        let l = Lengths::new(false);
        let all = recipes(&l, 3);
        let names: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
        for n in ["null_ft", "unfrozen_te", "frozen_te_seed1", "frozen_te_seed2", "lvis_replay_seed2", "lvis_replay_neg_seed1"] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        assert_eq!(recipes(&l, 1).len(), 8);
        let shipped: toml::Table = toml::from_str(recipe!("frozen_te")).unwrap();
        let parse = |r: &RecipePlan| -> toml::Table { toml::from_str(&derive(r.text, r.variant, r.seed_offset).unwrap()).unwrap() };
        // Every key but the ones a variant names is the shipped recipe's.
        let same_except = |t: &toml::Table, keys: &[&str]| {
            for (k, v) in &shipped {
                if !keys.contains(&k.as_str()) && k != "description" {
                    assert_eq!(t.get(k), Some(v), "{k}");
                }
            }
        };
        let get = |n: &str| all.iter().find(|r| r.name == n).unwrap();
        let null = parse(get("null_ft"));
        same_except(&null, &["data"]);
        let data = null["data"].as_table().unwrap();
        assert_eq!(data.len(), 1);
        assert_eq!(data["broad"]["gt"].as_str(), Some("../../runs/world/broad-pretrain.json"));
        assert_eq!(data["broad"]["primary"].as_bool(), Some(true));
        assert_eq!(data["broad"]["per_image"], shipped["data"]["narrow"]["per_image"]);
        let unfrozen = parse(get("unfrozen_te"));
        same_except(&unfrozen, &["freeze"]);
        assert!(unfrozen.get("freeze").is_none(), "{unfrozen:?}");
        let s2 = parse(get("frozen_te_seed2"));
        same_except(&s2, &["seed"]);
        assert_eq!(s2["seed"].as_integer(), Some(shipped["seed"].as_integer().unwrap() + 2));
        let n1 = parse(get("lvis_replay_neg_seed1"));
        assert_eq!(n1["seed"].as_integer(), Some(1));
        assert_eq!(n1["data"]["negatives"]["extra"].as_bool(), Some(true));
        // The shipped ones are untouched.
        assert_eq!(derive(recipe!("frozen_te"), Variant::Shipped, 0).unwrap(), recipe!("frozen_te"));
    }
}
