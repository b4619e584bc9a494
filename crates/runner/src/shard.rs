//! One shard file for every probe that measures (image, prompt) pairs and then aggregates:
//! `probe presence|patch|attrib|heads|steer --shard K/N` and `sam3lab merge`.
//!
//! Such a probe is two steps: **measure** every selected pair (one or more rows per pair: a
//! logit, a vector, an outcome), then **assemble** the rows into its tables. A shard measures only
//! the pairs of the images g ≡ K (mod N) ([`crate::inputs::shard_pairs`]: each image with all its
//! pairs, so each image is still encoded once per checkpoint) and writes them, with the whole run's
//! identity, as `OUT/PROBE_shard.json` ([`ShardFile`]). [`merge`] checks that N shards come from one
//! run and hands back the rows of every pair in the order the unsharded run measures them
//! ([`Plan::canonical`]); the probe then assembles them along the very path its unsharded run takes,
//! so the merged output equals the unsharded output byte for byte.
//!
//! A shard file holds: `format` ([`FORMAT`]), `probe`, `shard` (K, N), the whole run's `manifest`
//! (the same in every shard), the probe's own `context` (what its assembly needs besides the rows:
//! labels, options), the `plan` (every selected pair in pair-file order with its prompt, image, label
//! and image group), `owned` (the pairs this shard measured, in run order) and `rows`. Numbers in rows
//! are written exactly — f64 and f32 as their bits ([`bits`], [`bits32`]), f32 vectors as hex
//! ([`hex32`]), outcomes as their logit and scores ([`outcome`]) — since JSON's decimal floats need
//! not read back to the same value.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use sam3lab_eval::shard::{Shard, check_complete};

use crate::inputs::{Label, Pair, by_image};
use crate::manifest::{Manifest, write_json};
use crate::{Result, RunError};

/// The `format` of every probe's shard file.
pub const FORMAT: &str = "sam3lab shard 1";

/// The shard file of `probe` in a shard's output directory: `PROBE_shard.json`.
pub fn file_name(probe: &str) -> String {
    format!("{probe}_shard.json")
}

/// One selected pair of the whole run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanPair {
    /// The pair's 0-based index in the pair file.
    pub index: usize,
    /// The `image` field as written in the pair file.
    pub image: String,
    pub prompt: String,
    pub label: Label,
    /// Its image's position among the selection's distinct images (first appearance): shard K of N
    /// measures the pairs with `group % N == K`.
    pub group: usize,
}

/// Every selected pair of a run, in pair-file order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub pairs: Vec<PlanPair>,
}

impl Plan {
    /// The plan of a selection (pair-file order, after the label filter).
    pub fn of(selected: &[&Pair]) -> Plan {
        let groups = by_image(selected);
        let pairs = selected
            .iter()
            .map(|p| PlanPair {
                index: p.index,
                image: p.image_raw.clone(),
                prompt: p.prompt.clone(),
                label: p.label,
                group: groups.iter().position(|(img, _)| *img == p.image).expect("the pair's own image"),
            })
            .collect();
        Plan { pairs }
    }

    /// Pair index → position in the order the unsharded run measures the pairs (by image, images
    /// in order of first appearance, each image's pairs in pair-file order).
    fn run_positions(&self) -> HashMap<usize, usize> {
        let mut order: Vec<&PlanPair> = self.pairs.iter().collect();
        order.sort_by_key(|p| p.group); // stable: pair-file order within an image
        order.iter().enumerate().map(|(pos, p)| (p.index, pos)).collect()
    }

    /// The pairs shard `shard` measures, as pair indices in run order.
    pub fn owned(&self, shard: Shard) -> Vec<usize> {
        let pos = self.run_positions();
        let mut v: Vec<usize> = self.pairs.iter().filter(|p| shard.owns(p.group)).map(|p| p.index).collect();
        v.sort_by_key(|i| pos[i]);
        v
    }

    /// The pair with this index (the plan is in pair-file order, so sorted by index).
    pub fn pair(&self, index: usize) -> Option<&PlanPair> {
        self.pairs.binary_search_by_key(&index, |p| p.index).ok().map(|i| &self.pairs[i])
    }

    /// `rows` in the order the unsharded run measures them: by the run position of their pair,
    /// each pair's rows in the order they were made (a stable sort). A probe's unsharded run
    /// ([`Measured::new`]) and [`merge`] both go through it, so a probe's assembly sees the same sequence either way.
    pub fn canonical<R: PairRow>(&self, mut rows: Vec<R>) -> Vec<R> {
        let pos = self.run_positions();
        rows.sort_by_key(|r| pos.get(&r.pair()).copied().unwrap_or(usize::MAX));
        rows
    }
}

/// A probe's per-pair measurement: which pair it measures.
pub trait PairRow {
    fn pair(&self) -> usize;
}

/// What a probe measured, before its tables: the whole run's identity and the rows (of every pair,
/// or of one shard's pairs).
#[derive(Clone, Debug)]
pub struct Measured<C, R> {
    pub manifest: Manifest,
    pub context: C,
    pub plan: Plan,
    /// In run order ([`Plan::canonical`]).
    pub rows: Vec<R>,
}

impl<C, R: PairRow> Measured<C, R> {
    /// The measurements, rows put in run order.
    pub fn new(manifest: Manifest, context: C, plan: Plan, rows: Vec<R>) -> Self {
        let rows = plan.canonical(rows);
        Measured { manifest, context, plan, rows }
    }

    /// The shard file of shard `shard` of `probe` (the rows must be that shard's).
    pub fn into_shard(self, probe: &str, shard: Shard) -> ShardFile<C, R> {
        ShardFile {
            format: FORMAT.into(),
            probe: probe.into(),
            shard,
            owned: self.plan.owned(shard),
            manifest: self.manifest,
            context: self.context,
            plan: self.plan,
            rows: self.rows,
        }
    }
}

/// One shard of a probe run (`OUT/PROBE_shard.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardFile<C, R> {
    pub format: String,
    pub probe: String,
    pub shard: Shard,
    /// The whole run's provenance (the same in every shard, and what the unsharded run writes).
    pub manifest: Manifest,
    /// The probe's own identity of the run: what its assembly needs besides the rows.
    pub context: C,
    pub plan: Plan,
    /// The pairs this shard measured (pair indices, in run order).
    pub owned: Vec<usize>,
    /// Its measurements, in run order.
    pub rows: Vec<R>,
}

/// Write `s` as `dir/PROBE_shard.json`, atomically; returns the path.
pub fn write<C: Serialize, R: Serialize>(dir: &Path, s: &ShardFile<C, R>) -> Result<PathBuf> {
    let path = dir.join(file_name(&s.probe));
    write_json(&path, s)?;
    Ok(path)
}

#[derive(Deserialize)]
struct Head {
    format: String,
    probe: String,
}

/// The probe of a shard file: `None` when `file` is not a shard of this format; an error when it
/// is named like one (`PROBE_shard.json`) but cannot be read as one.
fn probe_of_file(file: &Path) -> Result<Option<String>> {
    let named = file.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with("_shard.json") && n != "drift_shard.json");
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if named => return Err(RunError::io(file, e)),
        Err(_) => return Ok(None),
    };
    match serde_json::from_str::<Head>(&text) {
        Ok(h) if h.format == FORMAT => Ok(Some(h.probe)),
        Ok(h) if named => Err(RunError::input(file, None, format!("format `{}`, expected `{FORMAT}`", h.format))),
        Err(e) if named => Err(RunError::input(file, None, format!("not a readable probe shard file: {e}"))),
        _ => Ok(None),
    }
}

/// The probe and shard file of `p`: a shard file, or a directory holding one (`PROBE_shard.json`).
/// `None` when `p` is neither; an error when a shard file cannot be read or a directory holds the
/// shards of several probes.
pub fn find(p: &Path) -> Result<Option<(String, PathBuf)>> {
    if p.is_file() {
        return Ok(probe_of_file(p)?.map(|probe| (probe, p.to_path_buf())));
    }
    if !p.is_dir() {
        return Ok(None);
    }
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    let entries = std::fs::read_dir(p).map_err(|e| RunError::io(p, e))?;
    for e in entries.flatten() {
        let f = e.path();
        let named = f.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with("_shard.json"));
        if named && f.is_file()
            && let Some(probe) = probe_of_file(&f)?
        {
            found.push((probe, f));
        }
    }
    found.sort();
    match found.len() {
        0 | 1 => Ok(found.pop()),
        _ => Err(RunError::input(
            p,
            None,
            format!(
                "holds the shards of several probes ({}); give the shard file itself",
                found.iter().map(|(_, f)| f.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// Read the shard file of `probe` at `p` (the file or its directory); the error names the file.
pub fn read<C: DeserializeOwned, R: DeserializeOwned>(p: &Path, probe: &str) -> Result<ShardFile<C, R>> {
    let file = if p.is_dir() { p.join(file_name(probe)) } else { p.to_path_buf() };
    let text = std::fs::read_to_string(&file).map_err(|e| RunError::io(&file, e))?;
    let head: Head = serde_json::from_str(&text)
        .map_err(|e| RunError::input(&file, None, format!("not a probe shard file ({FORMAT}): {e}")))?;
    if head.format != FORMAT {
        return Err(RunError::input(&file, None, format!("format `{}`, expected `{FORMAT}`", head.format)));
    }
    if head.probe != probe {
        return Err(RunError::input(&file, None, format!("a `probe {}` shard, not a `probe {probe}` one", head.probe)));
    }
    serde_json::from_str(&text).map_err(|e| RunError::input(&file, None, format!("not a `probe {probe}` shard: {e}")))
}

/// Put the N shards of one `probe` run (each with a label for the messages, e.g. its path; any
/// order) back together: they must agree on the run (manifest, context, plan, N), hold every K once,
/// and each hold exactly its own pairs, every one measured. Returns the rows of every pair in run
/// order, with the run's identity: what the unsharded run hands its assembly.
pub fn merge<C: PartialEq, R: PairRow>(probe: &str, mut shards: Vec<(String, ShardFile<C, R>)>) -> Result<Measured<C, R>> {
    let bad = |m: String| Err(RunError::Usage(m));
    let Some((first_label, first)) = shards.first() else { return bad(format!("no `probe {probe}` shards given")) };
    for (label, s) in &shards {
        let name = format!("{label} (shard {}/{})", s.shard.k, s.shard.n);
        if s.format != FORMAT || s.probe != probe {
            return bad(format!("{name}: a `{}` `{}` shard, expected `{FORMAT}` of `probe {probe}`", s.format, s.probe));
        }
        let differs = [
            (s.shard.n != first.shard.n, "shard count"),
            (s.manifest != first.manifest, "manifest (checkpoints, config, pair file, points or options)"),
            (s.context != first.context, "probe settings"),
            (s.plan != first.plan, "selected pairs"),
        ];
        if let Some((_, what)) = differs.iter().find(|(d, _)| *d) {
            return bad(format!(
                "{name} is not from the same run as {first_label} (shard {}/{}): its {what} differ",
                first.shard.k, first.shard.n
            ));
        }
    }
    let labelled: Vec<(Shard, String)> = shards.iter().map(|(l, s)| (s.shard, l.clone())).collect();
    check_complete(&labelled).map_err(|e| RunError::Usage(format!("probe {probe} shards: {e}")))?;
    for (label, s) in &shards {
        let name = format!("{label} (shard {}/{})", s.shard.k, s.shard.n);
        if s.owned != s.plan.owned(s.shard) {
            return bad(format!("{name}: holds other pairs than shard {}/{} owns", s.shard.k, s.shard.n));
        }
        if let Some(r) = s.rows.iter().find(|r| !s.owned.contains(&r.pair())) {
            return bad(format!("{name}: a measurement of pair {}, which the shard does not own", r.pair()));
        }
        if let Some(p) = s.owned.iter().find(|p| !s.rows.iter().any(|r| r.pair() == **p)) {
            return bad(format!("{name}: pair {p} was not measured (an incomplete shard file?)"));
        }
    }
    shards.sort_by_key(|(_, s)| s.shard.k);
    let mut it = shards.into_iter();
    let (_, head) = it.next().expect("at least one shard");
    let mut rows = head.rows;
    for (_, s) in it {
        rows.extend(s.rows);
    }
    Ok(Measured::new(head.manifest, head.context, head.plan, rows))
}

/// [`read`] the shard files (or their directories) at `paths` and [`merge`] them, each named by its path.
pub fn merge_files<C: DeserializeOwned + PartialEq, R: DeserializeOwned + PairRow>(probe: &str, paths: &[PathBuf]) -> Result<Measured<C, R>> {
    let files = paths.iter().map(|p| Ok((p.display().to_string(), read(p, probe)?))).collect::<Result<Vec<_>>>()?;
    merge(probe, files)
}

/// `f64` as its bits (`#[serde(with = "…::shard::bits")]`): exact, NaN and ±∞ included.
pub mod bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        u64::deserialize(d).map(f64::from_bits)
    }
}

/// `Option<f64>` as its bits or `null`.
pub mod opt_bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) => s.serialize_some(&x.to_bits()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Option::<u64>::deserialize(d).map(|o| o.map(f64::from_bits))
    }
}

/// `Vec<f64>`, each as its bits.
pub mod bits_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|x| x.to_bits()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<u64>::deserialize(d)?.into_iter().map(f64::from_bits).collect())
    }
}

/// `Vec<Option<f64>>`, each as its bits or `null`.
pub mod opt_bits_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Option<f64>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|x| x.map(f64::to_bits)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Option<f64>>, D::Error> {
        Ok(Vec::<Option<u64>>::deserialize(d)?.into_iter().map(|o| o.map(f64::from_bits)).collect())
    }
}

/// `f32` as its bits.
pub mod bits32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(v.to_bits())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        u32::deserialize(d).map(f32::from_bits)
    }
}

/// `Vec<f32>` as one hex string, 8 digits (the bits) per value.
pub mod hex32 {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn encode(v: &[f32]) -> String {
        let mut s = String::with_capacity(v.len() * 8);
        for x in v {
            s.push_str(&format!("{:08x}", x.to_bits()));
        }
        s
    }

    pub fn decode(s: &str) -> Result<Vec<f32>, String> {
        if !s.len().is_multiple_of(8) || !s.is_ascii() {
            return Err(format!("a hex f32 vector has 8 ASCII digits per value; found {} characters", s.len()));
        }
        (0..s.len() / 8)
            .map(|i| {
                let h = &s[i * 8..i * 8 + 8];
                u32::from_str_radix(h, 16).map(f32::from_bits).map_err(|_| format!("`{h}` is not 8 hex digits"))
            })
            .collect()
    }

    pub fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        decode(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// A forward's [`Outcome`](crate::model::Outcome) as what it is read from — the presence logit's
/// bits and every query's score (hex) — and rebuilt with `Outcome::from_scores`, so every derived
/// number (σ, kept, max score, neg_correct) comes out as the unsharded run computes it.
pub mod outcome {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::model::Outcome;

    #[derive(Serialize, Deserialize)]
    struct Exact {
        #[serde(with = "super::bits32")]
        presence_logit: f32,
        #[serde(with = "super::hex32")]
        scores: Vec<f32>,
    }

    pub fn serialize<S: Serializer>(o: &Outcome, s: S) -> Result<S::Ok, S::Error> {
        Exact { presence_logit: o.presence_logit, scores: o.scores.clone() }.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Outcome, D::Error> {
        let e = Exact::deserialize(d)?;
        Ok(Outcome::from_scores(e.presence_logit, e.scores))
    }

    /// `Vec<Outcome>`, each as above.
    pub mod vec {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        use crate::model::Outcome;

        struct Ref<'a>(&'a Outcome);

        impl Serialize for Ref<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                super::serialize(self.0, s)
            }
        }

        struct Own(Outcome);

        impl<'de> Deserialize<'de> for Own {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                super::deserialize(d).map(Own)
            }
        }

        pub fn serialize<S: Serializer>(v: &[Outcome], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(Ref))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Outcome>, D::Error> {
            Ok(Vec::<Own>::deserialize(d)?.into_iter().map(|o| o.0).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct R {
        pair: usize,
        #[serde(with = "bits")]
        x: f64,
        #[serde(with = "opt_bits")]
        y: Option<f64>,
        #[serde(with = "hex32")]
        v: Vec<f32>,
    }

    impl PairRow for R {
        fn pair(&self) -> usize {
            self.pair
        }
    }

    fn plan() -> Plan {
        // Pairs 0..5 on images a, b, a, c, b: groups 0, 1, 0, 2, 1; run order 0 2 1 4 3.
        let imgs = ["a", "b", "a", "c", "b"];
        let groups = [0, 1, 0, 2, 1];
        Plan {
            pairs: (0..5)
                .map(|i| PlanPair { index: i, image: imgs[i].into(), prompt: format!("p{i}"), label: Label::Pos, group: groups[i] })
                .collect(),
        }
    }

    #[test]
    fn run_order_is_the_loops_order() {
        // The loop ([`crate::sweep::for_each_pair`]) measures pairs grouped by image
        // ([`by_image`]); the plan's run order must be the same.
        let dir = tempfile::tempdir().unwrap();
        let mk = |index: usize, img: &str| Pair {
            index,
            line: index + 1,
            image_raw: img.into(),
            image: dir.path().join(img),
            prompt: format!("p{index}"),
            label: Label::Neg,
        };
        let pairs: Vec<Pair> = ["c", "a", "c", "b", "a", "c"].iter().enumerate().map(|(i, img)| mk(i, img)).collect();
        let selected: Vec<&Pair> = pairs.iter().filter(|p| p.index != 3).collect();
        let looped: Vec<usize> = by_image(&selected).into_iter().flat_map(|(_, ps)| ps.into_iter().map(|p| p.index)).collect();
        let plan = Plan::of(&selected);
        assert_eq!(plan.owned(Shard { k: 0, n: 1 }), looped);
        assert_eq!(looped, vec![0, 2, 5, 1, 4]);
        assert_eq!(plan.pair(4).map(|p| p.group), Some(1));
        assert!(plan.pair(3).is_none());
        for n in 1..4 {
            for k in 0..n {
                let s = Shard { k, n };
                let mine: Vec<usize> = crate::inputs::shard_pairs(&selected, s).iter().map(|p| p.index).collect();
                let mut owned = plan.owned(s);
                owned.sort();
                assert_eq!(owned, mine, "shard {k}/{n} measures what shard_pairs gives it");
            }
        }
    }

    #[test]
    fn exact_numbers_round_trip() {
        let r = R { pair: 0, x: 0.1 + 0.2, y: Some(f64::NAN), v: vec![1.0 / 3.0, -0.0, f32::INFINITY, 1e-45] };
        let back: R = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.x.to_bits(), r.x.to_bits());
        assert!(back.y.unwrap().is_nan());
        assert_eq!(back.v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), r.v.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        assert!(hex32::decode("abc").is_err() && hex32::decode("zzzzzzzz").is_err());
    }

    #[test]
    fn shards_merge_to_the_run_order_and_refuse_strangers() {
        let p = plan();
        let row = |i: usize, k: usize| R { pair: i, x: (10 * i + k) as f64, y: None, v: vec![] };
        // The whole run: two rows per pair, in run order.
        let whole: Vec<R> = [0, 2, 1, 4, 3].iter().flat_map(|&i| [row(i, 0), row(i, 1)]).collect();
        let shard = |k: usize| -> ShardFile<String, R> {
            let s = Shard { k, n: 2 };
            let rows = p.owned(s).iter().flat_map(|&i| [row(i, 0), row(i, 1)]).collect();
            Measured::new(Manifest::new("t", 0), "ctx".to_string(), p.clone(), rows).into_shard("t", s)
        };
        assert_eq!(shard(0).owned, vec![0, 2, 3]);
        assert_eq!(shard(1).owned, vec![1, 4]);
        let m = merge("t", vec![("b".into(), shard(1)), ("a".into(), shard(0))]).unwrap();
        assert_eq!(m.rows, whole);
        assert_eq!(Measured::new(Manifest::new("t", 0), (), p.clone(), whole.iter().rev().cloned().collect()).rows.len(), 10);

        let e = merge("t", vec![("a".into(), shard(0))]).unwrap_err().to_string();
        assert!(e.contains("shard 1/2 is missing"), "{e}");
        let e = merge("t", vec![("a".into(), shard(0)), ("a2".into(), shard(0)), ("b".into(), shard(1))]).unwrap_err().to_string();
        assert!(e.contains("given twice"), "{e}");
        let mut other = shard(1);
        other.context = "other".into();
        let e = merge("t", vec![("a".into(), shard(0)), ("b".into(), other)]).unwrap_err().to_string();
        assert!(e.contains("b (shard 1/2) is not from the same run") && e.contains("settings"), "{e}");
        let mut short = shard(1);
        short.rows.retain(|r| r.pair != 4);
        let e = merge("t", vec![("a".into(), shard(0)), ("b".into(), short)]).unwrap_err().to_string();
        assert!(e.contains("pair 4 was not measured"), "{e}");
        let mut stray = shard(1);
        stray.rows.push(row(0, 0));
        let e = merge("t", vec![("a".into(), shard(0)), ("b".into(), stray)]).unwrap_err().to_string();
        assert!(e.contains("pair 0, which the shard does not own"), "{e}");
        let e = merge("u", vec![("a".into(), shard(0))]).unwrap_err().to_string();
        assert!(e.contains("probe u"), "{e}");
    }
}
