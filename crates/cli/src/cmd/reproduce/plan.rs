//! The run plan of `sam3lab reproduce`: the shipped world recipes, cut to this run's lengths and
//! pointed at this run's world and checkpoints.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// One of the post's recipes as `reproduce` runs it.
pub struct RecipePlan {
    /// Label in every table (the post's recipe name).
    pub name: &'static str,
    /// The shipped recipe (recipes/world/NAME.toml).
    pub text: &'static str,
    /// Steps in this run.
    pub steps: usize,
    /// The recipe whose last checkpoint this one starts from (None: the base).
    pub parent: Option<&'static str>,
}

macro_rules! recipe {
    ($name:literal) => {
        include_str!(concat!("../../../../../recipes/world/", $name, ".toml"))
    };
}

/// Steps per recipe. The default keeps the whole `reproduce` near 12 minutes on two cores; the post's
/// runs are ~2,000–3,000 batches, these are the same recipes at the world's scale.
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
            Lengths { finetune: 600, recovery: 600, presence_only: 300 }
        }
    }
}

/// The post's recipes in the order they depend on each other.
pub fn recipes(l: &Lengths) -> Vec<RecipePlan> {
    vec![
        RecipePlan { name: "frozen_te", text: recipe!("frozen_te"), steps: l.finetune, parent: None },
        RecipePlan { name: "lvis_replay", text: recipe!("lvis_replay"), steps: l.finetune, parent: None },
        RecipePlan { name: "lvis_replay_n100", text: recipe!("lvis_replay_n100"), steps: l.finetune, parent: None },
        RecipePlan { name: "lvis_replay_neg", text: recipe!("lvis_replay_neg"), steps: l.finetune, parent: None },
        RecipePlan { name: "recovery", text: recipe!("recovery"), steps: l.recovery, parent: Some("frozen_te") },
        RecipePlan { name: "presence_only", text: recipe!("presence_only"), steps: l.presence_only, parent: Some("lvis_replay") },
    ]
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
        for r in recipes(&l) {
            let text = adapt(r.text, r.steps, Path::new("/w"), Path::new("/c.json"), Path::new("/s.safetensors"), Path::new("/o.toml"), false).unwrap();
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
        let rec = recipes(&l).into_iter().find(|r| r.name == "recovery").unwrap();
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
}
