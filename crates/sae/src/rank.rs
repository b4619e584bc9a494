//! The post's §9 feature ranking: per checkpoint label, how often each feature fires (activation > 0)
//! on negative and on positive rows; features ranked by
//!   score_j = (fire_neg − fire_pos)[to] − (fire_neg − fire_pos)[from],
//! largest first (ties by feature index). A feature like the post's 949/572/403 — ~75 % on
//! lvis_replay negatives, ~95 % on lvis_replay_neg negatives, rarely on positives — ranks near the top
//! with `--from lvis_replay --to lvis_replay_neg`.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::acts::PairLabel;
use crate::error::{Result, SaeError, io_err};
use crate::io::{SaeMeta, SourceRecord, sha256_hex, write_atomic};
use crate::metrics::{Metrics, evaluate, for_each_chunk};
use crate::model::Sae;
use crate::pipeline::{LabeledSet, check_width};

/// One line of a pairs file: `{"image": ..., "prompt": ..., "label": "pos"|"neg"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    pub image: String,
    pub prompt: String,
    pub label: PairLabel,
}

/// Pairs in file order (blank lines skipped; the index of a pair counts non-blank lines from 0).
pub fn read_pairs(path: &Path) -> Result<(Vec<Pair>, String)> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let text = String::from_utf8(bytes.clone()).map_err(|e| io_err(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let p: Pair = serde_json::from_str(line).map_err(|e| SaeError::Pairs {
            path: path.display().to_string(),
            line: i + 1,
            why: format!("expected {{\"image\": ..., \"prompt\": ..., \"label\": \"pos\"|\"neg\"}}: {e}"),
        })?;
        out.push(p);
    }
    Ok((out, sha256_hex(&bytes)))
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairsRecord {
    pub path: String,
    pub sha256: String,
    pub count: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaeRecord {
    pub dir: String,
    pub weights_sha256: String,
    pub point: String,
    pub d_in: usize,
    pub width: usize,
    pub activation: crate::model::Activation,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointReport {
    pub label: String,
    pub source: SourceRecord,
    pub rows_neg: usize,
    pub rows_pos: usize,
    /// Distinct pair ids covered (0 when the caches carry no `extra.pair`).
    pub pairs: usize,
    pub metrics: Metrics,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Fraction of negative / positive rows on which the feature fires (activation > 0).
    pub fire_neg: f64,
    pub fire_pos: f64,
    /// Mean activation over negative / positive rows (raw units, 0 where it does not fire).
    pub mean_neg: f64,
    pub mean_pos: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureRank {
    pub rank: usize,
    pub feature: usize,
    pub score: f64,
    /// One entry per checkpoint, in the order of `checkpoints`.
    pub rates: Vec<Rates>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankReport {
    pub tool: String,
    pub sam3lab_version: String,
    pub sae: SaeRecord,
    pub pairs: Option<PairsRecord>,
    pub from: String,
    pub to: String,
    pub score: String,
    pub checkpoints: Vec<CheckpointReport>,
    pub features: Vec<FeatureRank>,
}

/// Per-row label of one set (pair file first, then `extra.label`), and its pair ids.
fn row_labels(ls: &LabeledSet, pairs: Option<&[Pair]>, pairs_path: &str) -> Result<(Vec<PairLabel>, BTreeSet<usize>)> {
    let set = &ls.set;
    let mut labels = Vec::with_capacity(set.n_rows());
    let mut ids = BTreeSet::new();
    for f in &set.files {
        let per_item = f.rows / f.batch.max(1);
        for item in 0..f.batch {
            let own = f.labels[item];
            let label = match (f.pairs[item], pairs) {
                (Some(p), Some(pairs)) => {
                    let pair = pairs.get(p).ok_or_else(|| SaeError::Manifest {
                        path: f.path.clone(),
                        key: "pair".into(),
                        why: format!("pair index {p} is past the end of {pairs_path} ({} pairs)", pairs.len()),
                    })?;
                    if let Some(l) = own {
                        if l != pair.label {
                            return Err(SaeError::Manifest {
                                path: f.path.clone(),
                                key: "label".into(),
                                why: format!(
                                    "says \"{}\" but pair {p} in {pairs_path} is \"{}\"",
                                    l.as_str(),
                                    pair.label.as_str()
                                ),
                            });
                        }
                    }
                    ids.insert(p);
                    pair.label
                }
                (p, _) => {
                    if let Some(p) = p {
                        ids.insert(p);
                    }
                    own.ok_or_else(|| SaeError::Manifest {
                        path: f.path.clone(),
                        key: "label".into(),
                        why: format!(
                            "batch item {item} has no label: give `extra.label` (\"pos\"/\"neg\"), or `extra.pair` with --pairs"
                        ),
                    })?
                }
            };
            labels.extend(std::iter::repeat_n(label, per_item));
        }
    }
    Ok((labels, ids))
}

fn find_label(sets: &[LabeledSet], label: &str) -> Result<usize> {
    sets.iter().position(|s| s.label.as_deref() == Some(label)).ok_or_else(|| SaeError::UnknownLabel {
        label: label.to_string(),
        known: sets.iter().filter_map(|s| s.label.clone()).collect(),
    })
}

/// Rank the SAE's features. `from`/`to` default to the first and second label when exactly two are given.
pub fn rank(
    sae: &Sae,
    meta: &SaeMeta,
    sae_dir: &Path,
    sets: &[LabeledSet],
    pairs: Option<(&Path, &[Pair], &str)>,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<RankReport> {
    let labels: Vec<String> = sets.iter().map(|s| s.label.clone().unwrap_or_default()).collect();
    if let Some(i) = labels.iter().position(|l| l.is_empty()) {
        return Err(SaeError::Source { source_arg: sets[i].set.source.clone(), why: "expected LABEL=SOURCE".into() });
    }
    let (from_i, to_i) = match (from, to) {
        (Some(a), Some(b)) => (find_label(sets, a)?, find_label(sets, b)?),
        (None, None) if sets.len() == 2 => (0, 1),
        _ => {
            return Err(SaeError::Config(format!(
                "give both --from and --to (checkpoint labels: {}); they default to the two labels only when exactly two are given",
                labels.join(", ")
            )));
        }
    };
    if from_i == to_i {
        return Err(SaeError::Config(format!("--from and --to are both `{}`", labels[from_i])));
    }
    let m = sae.width();
    let pairs_path = pairs.map(|p| p.0.display().to_string()).unwrap_or_default();
    let mut reports = Vec::new();
    let mut rates: Vec<Vec<Rates>> = Vec::new(); // [checkpoint][feature]
    let mut coverage: Vec<BTreeSet<usize>> = Vec::new();
    for (ls, label) in sets.iter().zip(&labels) {
        check_width(sae, ls)?;
        // One label = one checkpoint.
        let shas: Vec<(String, usize)> = ls.set.checkpoints().into_iter().filter(|(s, _)| !s.is_empty()).collect();
        if shas.len() > 1 {
            let a = ls.set.files.iter().find(|f| f.checkpoint_sha256 == shas[0].0).map(|f| f.path.clone()).unwrap_or_default();
            let b = ls.set.files.iter().find(|f| f.checkpoint_sha256 == shas[1].0).map(|f| f.path.clone()).unwrap_or_default();
            return Err(SaeError::Label {
                label: label.clone(),
                why: format!("mixes checkpoints: {a} has sha256 {} but {b} has {}", shas[0].0, shas[1].0),
            });
        }
        let (row_lab, ids) = row_labels(ls, pairs.map(|p| p.1), &pairs_path)?;
        let (mut n_neg, mut n_pos) = (0usize, 0usize);
        let mut cnt = vec![[0f64; 4]; m]; // fires neg, fires pos, sum neg, sum pos
        for_each_chunk(sae, &ls.set.rows, ls.set.d, |start, _, f, _| {
            for (r, fr) in f.chunks_exact(m).enumerate() {
                let neg = row_lab[start + r] == PairLabel::Neg;
                if neg { n_neg += 1 } else { n_pos += 1 }
                for (c, &v) in cnt.iter_mut().zip(fr) {
                    if v > 0.0 {
                        c[if neg { 0 } else { 1 }] += 1.0;
                    }
                    c[if neg { 2 } else { 3 }] += v as f64;
                }
            }
        });
        if n_neg == 0 || n_pos == 0 {
            return Err(SaeError::Label {
                label: label.clone(),
                why: format!("has {n_neg} negative and {n_pos} positive rows; fire rates need both"),
            });
        }
        let (nn, np) = (n_neg as f64, n_pos as f64);
        rates.push(cnt.iter().map(|c| Rates { fire_neg: c[0] / nn, fire_pos: c[1] / np, mean_neg: c[2] / nn, mean_pos: c[3] / np }).collect());
        reports.push(CheckpointReport {
            label: label.clone(),
            source: SourceRecord::of(Some(label), &ls.set),
            rows_neg: n_neg,
            rows_pos: n_pos,
            pairs: ids.len(),
            metrics: evaluate(sae, &ls.set.rows, ls.set.d),
        });
        coverage.push(ids);
    }
    // Compare like with like: every checkpoint must cover the same pairs.
    if coverage.iter().any(|c| !c.is_empty()) {
        for (i, c) in coverage.iter().enumerate().skip(1) {
            if c != &coverage[0] {
                let missing = coverage[0].symmetric_difference(c).next().copied().unwrap_or(0);
                let (has, lacks) = if coverage[0].contains(&missing) { (0, i) } else { (i, 0) };
                return Err(SaeError::Label {
                    label: labels[lacks].clone(),
                    why: format!("covers a different set of pairs than `{}`: pair {missing} is missing", labels[has]),
                });
            }
        }
    }
    let sel = |r: &Rates| r.fire_neg - r.fire_pos;
    let mut features: Vec<FeatureRank> = (0..m)
        .map(|j| FeatureRank {
            rank: 0,
            feature: j,
            score: sel(&rates[to_i][j]) - sel(&rates[from_i][j]),
            rates: rates.iter().map(|r| r[j].clone()).collect(),
        })
        .collect();
    features.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.feature.cmp(&b.feature)));
    for (i, f) in features.iter_mut().enumerate() {
        f.rank = i + 1;
    }
    Ok(RankReport {
        tool: "sam3lab sae rank".into(),
        sam3lab_version: env!("CARGO_PKG_VERSION").into(),
        sae: SaeRecord {
            dir: sae_dir.display().to_string(),
            weights_sha256: meta.weights_sha256.clone(),
            point: sets.first().map(|s| s.set.point.clone()).unwrap_or_default(),
            d_in: sae.d_in(),
            width: m,
            activation: sae.activation,
        },
        pairs: pairs.map(|(p, v, sha)| PairsRecord { path: p.display().to_string(), sha256: sha.to_string(), count: v.len() }),
        from: labels[from_i].clone(),
        to: labels[to_i].clone(),
        score: format!("(fire_neg - fire_pos)[{}] - (fire_neg - fire_pos)[{}]", labels[to_i], labels[from_i]),
        checkpoints: reports,
        features,
    })
}

impl RankReport {
    /// CSV: `# key: value` provenance lines, a header, one row per feature in rank order.
    pub fn to_csv(&self) -> String {
        let mut header: Vec<String> = ["rank", "feature", "score"].map(String::from).to_vec();
        for c in &self.checkpoints {
            header.extend(["fire_neg", "fire_pos", "mean_neg", "mean_pos"].map(|k| format!("{}.{k}", c.label)));
        }
        let mut t = sam3lab_util::csv::Table::new(&header)
            .meta("source", format!("{} (sam3lab {})", self.tool, self.sam3lab_version))
            .meta(
                "sae",
                format!(
                    "{} (weights sha256 {}; point {}; d {} m {})",
                    self.sae.dir, self.sae.weights_sha256, self.sae.point, self.sae.d_in, self.sae.width
                ),
            );
        if let Some(p) = &self.pairs {
            t = t.meta("pairs", format!("{} (sha256 {}; {} pairs)", p.path, p.sha256, p.count));
        }
        for c in &self.checkpoints {
            let shas: Vec<&str> = c.source.checkpoints.iter().map(|x| x.checkpoint_sha256.as_str()).collect();
            t = t.meta(
                &format!("checkpoint {}", c.label),
                format!("{} (sha256 {}; {} neg rows, {} pos rows)", c.source.source, shas.join(","), c.rows_neg, c.rows_pos),
            );
        }
        t = t.meta("score", &self.score);
        for f in &self.features {
            let mut cells = vec![f.rank.to_string(), f.feature.to_string(), f.score.to_string()];
            for r in &f.rates {
                cells.extend([r.fire_neg.to_string(), r.fire_pos.to_string(), r.mean_neg.to_string(), r.mean_pos.to_string()]);
            }
            t.row(cells);
        }
        t.into_string()
    }

    /// Write `dir/rank.json` and `dir/rank.csv` (each atomically).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|e| SaeError::Config(e.to_string()))?;
        write_atomic(&dir.join("rank.json"), format!("{json}\n").as_bytes())?;
        write_atomic(&dir.join("rank.csv"), self.to_csv().as_bytes())
    }
}
