//! The base criteria B1–B6 and the findings F1–F8 of world v2, each a pure function over
//! [`StudyResults`], and the gating between them. Thresholds: [`crate::rules`].

use serde::Serialize;

use crate::results::{GroupMovement, Measures, Runs, Stat, StudyResults, margin_sd};
use crate::rules::*;
use crate::stats;

/// What a rule says about a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Verdict {
    /// Every clause of the rule holds (for a base criterion: met).
    Reproduced,
    /// At least one clause fails (for a base criterion: not met).
    NotReproduced,
    /// The rule cannot be judged: inputs missing, or gated by F1 / F2 (the reason).
    NotTestable(String),
}

/// A base criterion (may steer the world's design) or a pre-registered finding (never steers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Kind {
    Base,
    Finding,
}

/// How the rule's refusal margins stand against the seed spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Noise {
    /// The rule has no lower-bound refusal margin (or none could be computed).
    NoMargin,
    /// Its margins were judged against [`NOISE_SDS`] SDs over the seeds.
    Judged,
    /// One seed: its margins are unjudged for noise.
    Unjudged,
}

/// One condition of a rule, with the numbers it was decided on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Clause {
    pub text: String,
    pub holds: bool,
    /// Whether it holds on the seed mean alone (differs from `holds` only when the seed spread
    /// decided it).
    pub holds_on_mean: bool,
}

/// One row of the report: a rule applied to the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// "B1" … "B6", "F1" … "F8".
    pub id: &'static str,
    pub kind: Kind,
    /// What the post (or the world's design) claims.
    pub claim: &'static str,
    pub verdict: Verdict,
    pub clauses: Vec<Clause>,
    /// The run's numbers behind the verdict.
    pub numbers: Vec<String>,
    pub noise: Noise,
    /// The rule, as pre-registered ([`crate::rules`]).
    pub rule: &'static str,
    /// The post's value of the same quantities ("—" where it publishes none).
    pub published: &'static str,
}

impl Finding {
    /// True when the seed mean alone would have met a clause that the 2-SD rule refused.
    pub fn seed_spread_changed(&self) -> bool {
        self.clauses.iter().any(|c| c.holds_on_mean && !c.holds)
    }

    /// The verdict in words: "reproduced" / "not reproduced" (a base criterion: "met" / "not met")
    /// / "not testable (…)".
    pub fn verdict_text(&self) -> String {
        match (&self.verdict, self.kind) {
            (Verdict::Reproduced, Kind::Finding) => "reproduced".into(),
            (Verdict::NotReproduced, Kind::Finding) => "not reproduced".into(),
            (Verdict::Reproduced, Kind::Base) => "met".into(),
            (Verdict::NotReproduced, Kind::Base) => "not met".into(),
            (Verdict::NotTestable(why), _) => format!("not testable ({why})"),
        }
    }
}

/// A number the report shows without a rule ("shown, not judged").
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Observation {
    pub what: &'static str,
    pub numbers: String,
}

/// The whole study: base criteria, gated findings, and what is shown but not judged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Study {
    pub base_criteria: Vec<Finding>,
    pub findings: Vec<Finding>,
    pub observations: Vec<Observation>,
}

/// Apply every rule to the results.
pub fn evaluate(r: &StudyResults) -> Study {
    Study { base_criteria: base_criteria(r), findings: findings(r), observations: observations(r) }
}

// ---------------------------------------------------------------------------------------------
// The judge: collects missing inputs, clauses and numbers of one rule.

struct Judge {
    f: Finding,
    missing: Vec<String>,
    untestable: Option<String>,
}

impl Judge {
    fn new(id: &'static str, kind: Kind, claim: &'static str, rule: &'static str, published: &'static str) -> Judge {
        Judge {
            f: Finding { id, kind, claim, verdict: Verdict::NotReproduced, clauses: vec![], numbers: vec![], noise: Noise::NoMargin, rule, published },
            missing: vec![],
            untestable: None,
        }
    }

    /// An input the rule needs; records its name when absent.
    fn need<T>(&mut self, what: &str, v: Option<T>) -> Option<T> {
        if v.is_none() {
            self.missing.push(what.to_string());
        }
        v
    }

    /// A recipe's field over its seeds (needed).
    fn stat(&mut self, what: &str, runs: &Runs, f: impl Fn(&Measures) -> Option<f64>) -> Option<Stat> {
        let v = runs.stat(f);
        self.need(what, v)
    }

    fn num(&mut self, s: String) {
        self.f.numbers.push(s);
    }

    fn check(&mut self, text: String, holds: bool) {
        self.f.clauses.push(Clause { text, holds, holds_on_mean: holds });
    }

    /// A lower-bound refusal margin: `margin ≥ min`, and with seeds to judge it (`sd` given)
    /// `margin > NOISE_SDS · sd` as well.
    fn margin(&mut self, what: &str, margin: f64, min: f64, sd: Option<f64>) {
        let on_mean = margin >= min;
        let holds = on_mean && sd.is_none_or(|s| margin > NOISE_SDS * s);
        let text = match sd {
            Some(s) => format!("{what} {} pp ≥ {} pp and > {NOISE_SDS} SD = {} pp", pp(margin), pp_abs(min), pp_abs(NOISE_SDS * s)),
            None => format!("{what} {} pp ≥ {} pp", pp(margin), pp_abs(min)),
        };
        self.f.clauses.push(Clause { text, holds, holds_on_mean: on_mean });
        self.f.noise = match (self.f.noise, sd) {
            (_, None) | (Noise::Unjudged, _) => Noise::Unjudged,
            _ => Noise::Judged,
        };
    }

    /// The rule cannot be judged for a reason other than a missing input.
    fn untestable(&mut self, why: String) {
        self.untestable.get_or_insert(why);
    }

    fn finish(mut self) -> Finding {
        self.f.verdict = if !self.missing.is_empty() {
            Verdict::NotTestable(format!("missing: {}", self.missing.join(", ")))
        } else if let Some(why) = self.untestable {
            Verdict::NotTestable(why)
        } else if self.f.clauses.iter().all(|c| c.holds) {
            Verdict::Reproduced
        } else {
            Verdict::NotReproduced
        };
        if self.f.verdict != Verdict::Reproduced && self.f.verdict != Verdict::NotReproduced {
            // A rule that was not judged has no noise to speak of.
            self.f.noise = Noise::NoMargin;
        }
        self.f
    }
}

/// A fraction as percent with one decimal.
fn pc(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}
/// A difference of fractions as signed percentage points.
fn pp(x: f64) -> String {
    format!("{:+.1}", 100.0 * x)
}
fn pp_abs(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}
fn d3(x: f64) -> String {
    format!("{x:.3}")
}
/// A seed statistic in percent: "80.0 %" or "80.0 % (3 seeds, SD 2.1)".
fn pcs(s: Stat) -> String {
    match s.sd {
        Some(sd) => format!("{} % ({} seeds, SD {})", pc(s.mean), s.n, pp_abs(sd)),
        None => format!("{} %", pc(s.mean)),
    }
}
/// A seed statistic in points (×100, no unit): "62.3" or "62.3 (3 seeds, SD 1.2)".
fn pts(s: Stat) -> String {
    match s.sd {
        Some(sd) => format!("{} ({} seeds, SD {})", pc(s.mean), s.n, pp_abs(sd)),
        None => pc(s.mean),
    }
}
/// A seed statistic as an IoU: "0.612" or "0.612 (3 seeds, SD 0.020)".
fn ious(s: Stat) -> String {
    match s.sd {
        Some(sd) => format!("{} ({} seeds, SD {:.3})", d3(s.mean), s.n, sd),
        None => d3(s.mean),
    }
}

fn neg(m: &Measures) -> Option<f64> {
    m.neg_correct
}
fn pos(m: &Measures) -> Option<f64> {
    m.pos_mean_iou
}
fn lvis(m: &Measures) -> Option<f64> {
    m.lvis_miou
}
fn narrow(m: &Measures) -> Option<f64> {
    m.narrow_iou
}
fn bias_cos(m: &Measures) -> Option<f64> {
    m.bias_cos
}
fn scalar_cos(m: &Measures) -> Option<f64> {
    m.scalar_bias_cos
}

// ---------------------------------------------------------------------------------------------
// Base criteria

/// B1–B6 on the results.
pub fn base_criteria(r: &StudyResults) -> Vec<Finding> {
    vec![b1(r), b2(r), b3(r), b4(r), b5(r), b6(r)]
}

/// B1: the base grounds and refuses on the broad domain.
pub fn b1(r: &StudyResults) -> Finding {
    let mut j = Judge::new("B1", Kind::Base, "The base grounds and refuses on the broad domain", B1_RULE, "base SAM3: neg_correct 95.8 %, pos_mean_IoU 63.0, LVIS mIoU 56.4");
    let b = &r.base;
    let checks: [(&str, Option<f64>, f64); 4] = [
        ("base broad-eval neg_correct", b.neg_correct, B1_NEG_CORRECT_MIN),
        ("base broad-eval detection", b.detection, B1_DETECTION_MIN),
        ("base broad-eval pos_mean_IoU", b.pos_mean_iou, B1_POS_MEAN_IOU_MIN),
        ("base LVIS mIoU", b.lvis_miou, B1_LVIS_MIOU_MIN),
    ];
    for (what, v, min) in checks {
        if let Some(v) = j.need(what, v) {
            j.num(format!("{} {:.3}", what.trim_start_matches("base "), v));
            j.check(format!("{what} {v:.3} ≥ {min}"), v >= min);
        }
    }
    j.finish()
}

/// B2: refusal lives in the presence gate.
pub fn b2(r: &StudyResults) -> Finding {
    let mut j = Judge::new("B2", Kind::Base, "Refusal lives in the presence gate", B2_RULE, "base SAM3: σ ≤ 0.08 on 12/12 (§1); gate forced open: not published");
    let sig = j.need("base Fig 1.1 σ(presence)", r.base.fig11_sigma.clone());
    if let Some(s) = sig {
        let closed = s.iter().filter(|x| **x <= B2_SIGMA_MAX).count();
        j.num(format!("σ(presence) ≤ {B2_SIGMA_MAX} on {closed}/{} Fig 1.1 negatives (mean {:.3})", s.len(), stats::mean(&s)));
        j.check(format!("{closed} of {} negatives at σ ≤ {B2_SIGMA_MAX}, need ≥ {B2_SIGMA_COUNT_MIN} of {FIG11_NEGATIVES}", s.len()), closed >= B2_SIGMA_COUNT_MIN);
    }
    if let Some(g) = j.need("gate-forced-open base neg_correct", r.gate_open_base_neg_correct) {
        j.num(format!("gate forced open: neg_correct {} %", pc(g)));
        j.check(format!("gate-open neg_correct {} % ≤ {} %", pc(g), pc(B2_GATE_OPEN_NEG_CORRECT_MAX)), g <= B2_GATE_OPEN_NEG_CORRECT_MAX);
    }
    j.finish()
}

/// B3: the base half-knows the narrow task.
pub fn b3(r: &StudyResults) -> Finding {
    let mut j = Judge::new("B3", Kind::Base, "The base half-knows the narrow task", B3_RULE, "base SAM3 watch IoU 0.227");
    if let Some(v) = j.need("base narrow-eval IoU", r.base.narrow_iou) {
        j.num(format!("base narrow-eval IoU {}", d3(v)));
        j.check(format!("{} in [{B3_NARROW_IOU_MIN}, {B3_NARROW_IOU_MAX}]", d3(v)), (B3_NARROW_IOU_MIN..=B3_NARROW_IOU_MAX).contains(&v));
    }
    j.finish()
}

/// B4: the text encoder knows the narrow words.
pub fn b4(r: &StudyResults) -> Finding {
    let mut j = Judge::new("B4", Kind::Base, "The text encoder knows the narrow words", B4_RULE, "— (CLIP's encoder knows watch words)");
    if let Some(t) = j.need("text-encoder token rows and features", r.text_encoder.as_ref()) {
        if t.narrow_row_norms.is_empty() || t.broad_row_norms.is_empty() {
            j.untestable("no narrow or no broad token rows measured".into());
        } else {
            let broad = stats::mean(&t.broad_row_norms);
            let ratios: Vec<f64> = t.narrow_row_norms.iter().map(|n| n / broad).collect();
            let (lo, hi) = (ratios.iter().copied().fold(f64::INFINITY, f64::min), ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            j.num(format!("narrow row norms / broad mean ({:.3}): {lo:.2}–{hi:.2} over {} rows", broad, ratios.len()));
            j.check(format!("every ratio in [{B4_ROW_NORM_RATIO_MIN}, {B4_ROW_NORM_RATIO_MAX}]: {lo:.2}–{hi:.2}"), lo >= B4_ROW_NORM_RATIO_MIN && hi <= B4_ROW_NORM_RATIO_MAX);
            j.num(format!("largest pairwise feature cosine: part names {:.2}, broad phrases {:.2}", t.max_cos_narrow, t.max_cos_broad));
            j.check(format!("{:.2} ≤ {:.2} + {B4_COS_SLACK}", t.max_cos_narrow, t.max_cos_broad), t.max_cos_narrow <= t.max_cos_broad + B4_COS_SLACK);
        }
    }
    j.finish()
}

/// B5: the narrow task is learnable in this world.
pub fn b5(r: &StudyResults) -> Finding {
    let mut j = Judge::new("B5", Kind::Base, "The narrow task is learnable", B5_RULE, "the post's frozen-TE fine-tune reaches watch IoU 0.922");
    if let Some(v) = j.need("long unfrozen fine-tune narrow IoU", r.long_unfrozen_narrow_iou) {
        j.num(format!("long unfrozen fine-tune: narrow-eval IoU {}", d3(v)));
        j.check(format!("{} ≥ {B5_LONG_UNFROZEN_NARROW_IOU_MIN}", d3(v)), v >= B5_LONG_UNFROZEN_NARROW_IOU_MIN);
    }
    if let Some(parts) = j.need("oracle best-query IoU per part", r.oracle_part_iou.as_ref()) {
        if parts.is_empty() {
            j.untestable("no part has an oracle IoU".into());
        } else {
            let worst = parts.iter().min_by(|a, b| a.1.total_cmp(&b.1)).expect("non-empty");
            j.num(format!("oracle best-query IoU: lowest {} ({}) over {} parts", d3(worst.1), worst.0, parts.len()));
            j.check(format!("every part ≥ {B5_ORACLE_PART_IOU_MIN} (lowest {} {})", worst.0, d3(worst.1)), worst.1 >= B5_ORACLE_PART_IOU_MIN);
        }
    }
    j.finish()
}

/// B6: the null fine-tune leaves the broad domain where it was.
pub fn b6(r: &StudyResults) -> Finding {
    let mut j = Judge::new("B6", Kind::Base, "A null fine-tune (the recipe on broad pretraining data) leaves the broad domain alone", B6_RULE, "—");
    let bn = j.need("base neg_correct", r.base.neg_correct);
    let nn = j.stat("null fine-tune neg_correct", &r.null_ft, neg);
    if let (Some(b), Some(n)) = (bn, nn) {
        let d = n.mean - b;
        j.num(format!("neg_correct {} → {} ({} pp)", pc(b), pcs(n), pp(d)));
        j.check(format!("|{} pp| ≤ {} pp", pp(d), pp_abs(B6_NULL_NEG_CORRECT_MAX)), d.abs() <= B6_NULL_NEG_CORRECT_MAX);
    }
    let bp = j.need("base pos_mean_IoU", r.base.pos_mean_iou);
    let np = j.stat("null fine-tune pos_mean_IoU", &r.null_ft, pos);
    if let (Some(b), Some(n)) = (bp, np) {
        let d = n.mean - b;
        j.num(format!("pos_mean_IoU {} → {} ({} points)", pc(b), pts(n), pp(d)));
        j.check(format!("|{} points| ≤ {} points", pp(d), pp_abs(B6_NULL_POS_MEAN_IOU_MAX)), d.abs() <= B6_NULL_POS_MEAN_IOU_MAX);
    }
    j.finish()
}

// ---------------------------------------------------------------------------------------------
// Findings

/// F1–F8 on the results, gated: F1 not reproduced → F2–F8 "not testable (premise)"; F2 not
/// reproduced → F3–F8 "not testable (no break)".
pub fn findings(r: &StudyResults) -> Vec<Finding> {
    let mut v = vec![f1(r), f2(r), f3(r), f4(r), f5(r), f6(r), f7(r), f8(r)];
    let gate = |v: &mut [Finding], why: &str, by: &Verdict| {
        let why = match by {
            Verdict::NotTestable(_) => format!("{why}: itself not testable"),
            _ => why.to_string(),
        };
        for f in v {
            f.verdict = Verdict::NotTestable(why.clone());
            f.noise = Noise::NoMargin;
        }
    };
    if v[0].verdict != Verdict::Reproduced {
        let by = v[0].verdict.clone();
        gate(&mut v[1..], "premise", &by);
    } else if v[1].verdict != Verdict::Reproduced {
        let by = v[1].verdict.clone();
        gate(&mut v[2..], "no break", &by);
    }
    v
}

/// F1: the narrow fine-tune learns the narrow task (the premise).
pub fn f1(r: &StudyResults) -> Finding {
    let mut j = Judge::new("F1", Kind::Finding, "The positive-only fine-tune (frozen_te) learns the narrow task — the premise of everything below", F1_RULE, "watch IoU 0.227 → 0.922");
    let b = j.need("base narrow-eval IoU", r.base.narrow_iou);
    let f = j.stat("frozen_te narrow-eval IoU", &r.frozen_te, narrow);
    if let (Some(b), Some(f)) = (b, f) {
        j.num(format!("narrow-eval IoU {} → {} (frozen_te)", d3(b), ious(f)));
        j.check(format!("frozen_te {} ≥ {F1_NARROW_IOU_MIN}", d3(f.mean)), f.mean >= F1_NARROW_IOU_MIN);
        j.check(format!("gain {:+.3} ≥ +{F1_NARROW_GAIN_MIN}", f.mean - b), f.mean - b >= F1_NARROW_GAIN_MIN);
    }
    j.finish()
}

/// F2: the fine-tune breaks refusal through the presence gate, keeping positive quality.
pub fn f2(r: &StudyResults) -> Finding {
    let mut j = Judge::new(
        "F2",
        Kind::Finding,
        "The positive-only fine-tune breaks refusal: neg_correct collapses, the presence gate opens on absent concepts, positives stay",
        F2_RULE,
        "neg_correct 95.8 → 3.2 %; σ ≤ 0.08 → ≈ 1.000 on 12/12; pos_mean_IoU 63.0 → 58.7; LVIS 56.4 → 53.9",
    );
    let bn = j.need("base neg_correct", r.base.neg_correct);
    let fneg = j.stat("frozen_te neg_correct", &r.frozen_te, neg);
    if let (Some(b), Some(f)) = (bn, fneg) {
        j.num(format!("neg_correct {} → {}", pc(b), pcs(f)));
        j.margin("drop", b - f.mean, F2_NEG_CORRECT_DROP_MIN, margin_sd(&r.frozen_te, None, neg));
    }
    if let Some(s) = j.need("frozen_te Fig 1.1 σ(presence)", r.frozen_te.fig11_sigma()) {
        let (m, open) = (stats::mean(&s), s.iter().filter(|x| **x >= F2_SIGMA_OPEN).count());
        let base = r.base.fig11_sigma.as_ref().map(|b| format!("{:.3} ({}/{} ≥ {F2_SIGMA_OPEN}) → ", stats::mean(b), b.iter().filter(|x| **x >= F2_SIGMA_OPEN).count(), b.len())).unwrap_or_default();
        j.num(format!("Fig 1.1 mean σ(presence) {base}{m:.3} ({open}/{} ≥ {F2_SIGMA_OPEN})", s.len()));
        j.check(format!("mean σ {m:.3} ≥ {F2_SIGMA_MEAN_MIN}"), m >= F2_SIGMA_MEAN_MIN);
        j.check(format!("{open}/{} ≥ {F2_SIGMA_OPEN}, need ≥ {F2_SIGMA_OPEN_COUNT_MIN}/{FIG11_NEGATIVES}", s.len()), open >= F2_SIGMA_OPEN_COUNT_MIN);
    }
    for (what, f) in [("pos_mean_IoU", pos as fn(&Measures) -> Option<f64>), ("LVIS mIoU", lvis)] {
        let b = j.need(&format!("base {what}"), f(&r.base));
        let ft = j.stat(&format!("frozen_te {what}"), &r.frozen_te, f);
        if let (Some(b), Some(ft)) = (b, ft) {
            j.num(format!("{what} {} → {}", pc(b), pts(ft)));
            j.check(format!("{what} {} ≥ base − {} = {}", pc(ft.mean), pp_abs(F2_POSITIVE_LOSS_MAX), pc(b - F2_POSITIVE_LOSS_MAX)), ft.mean >= b - F2_POSITIVE_LOSS_MAX);
        }
    }
    j.finish()
}

/// F3: replay during the fine-tune leaves refusal broken while keeping positive quality.
pub fn f3(r: &StudyResults) -> Finding {
    let mut j = Judge::new(
        "F3",
        Kind::Finding,
        "Replay at either density (every 10th / 100th batch) leaves refusal broken, keeping LVIS and the narrow task",
        F3_RULE,
        "neg_correct 2.9 / 2.9 % vs frozen_te 3.2 (base 95.8); LVIS 56.9 vs base 56.4; watch IoU 0.919 / 0.916 vs 0.922",
    );
    let bn = j.need("base neg_correct", r.base.neg_correct);
    let fneg = j.stat("frozen_te neg_correct", &r.frozen_te, neg);
    let fnar = j.stat("frozen_te narrow-eval IoU", &r.frozen_te, narrow);
    for (name, runs) in [("lvis_replay", &r.lvis_replay), ("lvis_replay_n100", &r.lvis_replay_n100)] {
        let n = j.stat(&format!("{name} neg_correct"), runs, neg);
        if let (Some(b), Some(f), Some(n)) = (bn, fneg, n) {
            let gap = b - f.mean;
            if gap <= 0.0 {
                j.num(format!("{name}: neg_correct {} vs frozen_te {} (base {})", pcs(n), pc(f.mean), pc(b)));
                j.untestable(format!("frozen_te lost no refusal ({} pp)", pp(-gap)));
            } else {
                let share = (n.mean - f.mean) / gap;
                j.num(format!("{name}: neg_correct {} vs frozen_te {} (base {}): {:.0} % of the gap", pcs(n), pc(f.mean), pc(b), 100.0 * share));
                j.check(format!("{name} recovers {:.0} % ≤ {:.0} % of the gap", 100.0 * share, 100.0 * F3_RECOVERED_MAX), share <= F3_RECOVERED_MAX);
            }
        }
        let nar = j.stat(&format!("{name} narrow-eval IoU"), runs, narrow);
        if let (Some(f), Some(n)) = (fnar, nar) {
            j.num(format!("{name}: narrow-eval IoU {} vs frozen_te {}", ious(n), d3(f.mean)));
            j.check(format!("{name} narrow IoU {} ≥ frozen_te − {F3_NARROW_LOSS_MAX} = {}", d3(n.mean), d3(f.mean - F3_NARROW_LOSS_MAX)), n.mean >= f.mean - F3_NARROW_LOSS_MAX);
        }
    }
    let bl = j.need("base LVIS mIoU", r.base.lvis_miou);
    let ll = j.stat("lvis_replay LVIS mIoU", &r.lvis_replay, lvis);
    if let (Some(b), Some(l)) = (bl, ll) {
        j.num(format!("lvis_replay: LVIS mIoU {} (base {})", pts(l), pc(b)));
        j.check(format!("LVIS {} ≥ base − {} = {}", pc(l.mean), pp_abs(F3_LVIS_LOSS_MAX), pc(b - F3_LVIS_LOSS_MAX)), l.mean >= b - F3_LVIS_LOSS_MAX);
    }
    j.finish()
}

/// F4: the negatives stream recovers part of refusal.
pub fn f4(r: &StudyResults) -> Finding {
    let mut j = Judge::new("F4", Kind::Finding, "The negatives stream recovers part of refusal (lvis_replay_neg vs lvis_replay)", F4_RULE, "neg_correct 2.9 → 41.3 % (base 95.8)");
    let bn = j.need("base neg_correct", r.base.neg_correct);
    let lr = j.stat("lvis_replay neg_correct", &r.lvis_replay, neg);
    let ln = j.stat("lvis_replay_neg neg_correct", &r.lvis_replay_neg, neg);
    if let (Some(b), Some(lr), Some(ln)) = (bn, lr, ln) {
        j.num(format!("neg_correct {} (lvis_replay) → {} (lvis_replay_neg); base {}", pcs(lr), pcs(ln), pc(b)));
        j.margin("gain", ln.mean - lr.mean, F4_GAIN_MIN, margin_sd(&r.lvis_replay_neg, Some(&r.lvis_replay), neg));
        j.check(format!("lvis_replay_neg {} % ≤ base − {} pp = {} % (partial)", pc(ln.mean), pp_abs(F4_BELOW_BASE_MIN), pc(b - F4_BELOW_BASE_MIN)), ln.mean <= b - F4_BELOW_BASE_MIN);
    }
    j.finish()
}

/// F5: post-hoc recovery costs positive quality, barely restores refusal, and continues the break.
pub fn f5(r: &StudyResults) -> Finding {
    let mut j = Judge::new(
        "F5",
        Kind::Finding,
        "Post-hoc recovery (broad positives after the fine-tune) degrades positive quality, restores little refusal, and moves the presence bias further along the break axis",
        F5_RULE,
        "pos_mean_IoU 55.2 vs frozen_te 58.7, lvis_replay 62.3; LVIS 56.3 vs 56.9; neg_correct 3.2 → 10.6 % (8 % of the gap); cos +0.76",
    );
    let rp = j.stat("recovery pos_mean_IoU", &r.recovery, pos);
    let fp = j.stat("frozen_te pos_mean_IoU", &r.frozen_te, pos);
    let lp = j.stat("lvis_replay pos_mean_IoU", &r.lvis_replay, pos);
    if let (Some(rp), Some(fp), Some(lp)) = (rp, fp, lp) {
        j.num(format!("broad pos_mean_IoU: recovery {}, frozen_te {}, lvis_replay {}", pts(rp), pc(fp.mean), pc(lp.mean)));
        j.check(format!("recovery {} < frozen_te − 1 = {}", pc(rp.mean), pc(fp.mean - F5_POS_BELOW_FROZEN_TE)), rp.mean < fp.mean - F5_POS_BELOW_FROZEN_TE);
        j.check(format!("recovery {} < lvis_replay − 2 = {}", pc(rp.mean), pc(lp.mean - F5_POS_BELOW_LVIS_REPLAY)), rp.mean < lp.mean - F5_POS_BELOW_LVIS_REPLAY);
    }
    let rl = j.stat("recovery LVIS mIoU", &r.recovery, lvis);
    let ll = j.stat("lvis_replay LVIS mIoU", &r.lvis_replay, lvis);
    if let (Some(rl), Some(ll)) = (rl, ll) {
        j.num(format!("LVIS mIoU: recovery {}, lvis_replay {}", pts(rl), pc(ll.mean)));
        j.check(format!("recovery LVIS {} ≥ lvis_replay − 3 = {}", pc(rl.mean), pc(ll.mean - F5_LVIS_LOSS_MAX)), rl.mean >= ll.mean - F5_LVIS_LOSS_MAX);
    }
    let bn = j.need("base neg_correct", r.base.neg_correct);
    let fneg = j.stat("frozen_te neg_correct", &r.frozen_te, neg);
    let rneg = j.stat("recovery neg_correct", &r.recovery, neg);
    if let (Some(b), Some(f), Some(rn)) = (bn, fneg, rneg) {
        let gap = b - f.mean;
        if gap <= 0.0 {
            j.num(format!("neg_correct frozen_te {} → recovery {} (base {})", pc(f.mean), pcs(rn), pc(b)));
            j.untestable(format!("frozen_te lost no refusal ({} pp)", pp(-gap)));
        } else {
            let share = (rn.mean - f.mean) / gap;
            j.num(format!("neg_correct frozen_te {} → recovery {} (base {}): {:.0} % of the gap", pc(f.mean), pcs(rn), pc(b), 100.0 * share));
            j.check(format!("refusal gain {:.0} % ≤ {:.0} % of the gap", 100.0 * share, 100.0 * F5_RECOVERED_MAX), share <= F5_RECOVERED_MAX);
        }
    }
    if let Some(c) = j.stat("cos(recovery − frozen_te, frozen_te − base)", &r.recovery, bias_cos) {
        j.num(format!("cos(recovery − frozen_te, frozen_te − base) = {:+.2}", c.mean));
        j.check(format!("cos {:+.2} > {F5_COS_MIN}", c.mean), c.mean > F5_COS_MIN);
    }
    j.finish()
}

/// F6: presence_only, trained on narrow pairs only, repairs broad refusal and reverses the bias.
pub fn f6(r: &StudyResults) -> Finding {
    let mut j = Judge::new(
        "F6",
        Kind::Finding,
        "presence_only (the presence head retrained on narrow pairs) recovers most broad refusal and reverses the presence-bias direction; only it flips the scalar bias",
        F6_RULE,
        "neg_correct 2.9 → 87.85 % (91 % of the gap); cos −0.40; only presence_only flips the scalar",
    );
    let bn = j.need("base neg_correct", r.base.neg_correct);
    let lr = j.stat("lvis_replay neg_correct", &r.lvis_replay, neg);
    let po = j.stat("presence_only neg_correct", &r.presence_only, neg);
    if let (Some(b), Some(lr), Some(po)) = (bn, lr, po) {
        let gap = b - lr.mean;
        if gap <= 0.0 {
            j.num(format!("neg_correct lvis_replay {} → presence_only {} (base {})", pcs(lr), pcs(po), pc(b)));
            j.untestable(format!("lvis_replay lost no refusal ({} pp)", pp(-gap)));
        } else {
            let gain = po.mean - lr.mean;
            j.num(format!("neg_correct lvis_replay {} → presence_only {} (base {}): {:.0} % of the gap", pcs(lr), pcs(po), pc(b), 100.0 * gain / gap));
            j.margin("gain (≥ 50 % of the gap)", gain, F6_RECOVERED_MIN * gap, margin_sd(&r.presence_only, Some(&r.lvis_replay), neg));
        }
    }
    if let Some(c) = j.stat("cos(presence_only − base, frozen_te − base)", &r.presence_only, bias_cos) {
        j.num(format!("cos(presence_only − base, frozen_te − base) = {:+.2}", c.mean));
        j.check(format!("cos {:+.2} < {F6_COS_MAX}", c.mean), c.mean < F6_COS_MAX);
    }
    let mut signs = vec![];
    let mut flipped_others = vec![];
    let mut all = true;
    for (name, runs) in [("presence_only", &r.presence_only), ("frozen_te", &r.frozen_te), ("lvis_replay", &r.lvis_replay), ("lvis_replay_neg", &r.lvis_replay_neg), ("recovery", &r.recovery)] {
        match j.stat(&format!("{name} scalar-bias sign"), runs, scalar_cos) {
            Some(s) => {
                signs.push(format!("{name} {:+.0}", s.mean));
                if name != "presence_only" && s.mean < 0.0 {
                    flipped_others.push(name);
                }
                if name == "presence_only" {
                    j.check(format!("presence_only flips the scalar ({:+.0})", s.mean), s.mean < 0.0);
                }
            }
            None => all = false,
        }
    }
    if all {
        j.num(format!("scalar presence_token_head.layers.2.bias, sign vs frozen_te's delta: {}", signs.join(", ")));
        j.check(
            if flipped_others.is_empty() { "no other recipe flips it".into() } else { format!("also flipped by {}", flipped_others.join(", ")) },
            flipped_others.is_empty(),
        );
    }
    j.finish()
}

/// F7: weight-space geometry of the presence bias.
pub fn f7(r: &StudyResults) -> Finding {
    let mut j = Judge::new(
        "F7",
        Kind::Finding,
        "Geometry: replay walks the break axis more than the negatives stream does; presence_only points against it",
        F7_RULE,
        "cos +0.96 (lvis_replay), +0.47 (lvis_replay_neg), −0.40 (presence_only); seed floor not published",
    );
    let lr = j.stat("cos(lvis_replay − base, frozen_te − base)", &r.lvis_replay, bias_cos);
    let ln = j.stat("cos(lvis_replay_neg − base, frozen_te − base)", &r.lvis_replay_neg, bias_cos);
    if let (Some(lr), Some(ln)) = (lr, ln) {
        j.num(format!("cos to frozen_te − base: lvis_replay {:+.2}, lvis_replay_neg {:+.2}", lr.mean, ln.mean));
        j.check(format!("{:+.2} ≥ {:+.2} + {F7_COS_GAP_MIN}", lr.mean, ln.mean), lr.mean >= ln.mean + F7_COS_GAP_MIN);
    }
    if let Some(po) = j.stat("cos(presence_only − base, frozen_te − base)", &r.presence_only, bias_cos) {
        j.num(format!("presence_only {:+.2}", po.mean));
        j.check(format!("presence_only {:+.2} < {F7_PRESENCE_ONLY_COS_MAX}", po.mean), po.mean < F7_PRESENCE_ONLY_COS_MAX);
    }
    j.num(match r.seed_floor_cos {
        Some(c) => format!("seed floor cos(frozen_te seed 0, seed 1) = {c:+.2}"),
        None => "seed floor: not measured (needs two frozen_te seeds)".into(),
    });
    j.finish()
}

/// F8: the §9 training-free interventions do not restore refusal.
pub fn f8(r: &StudyResults) -> Finding {
    let mut j = Judge::new(
        "F8",
        Kind::Finding,
        "The §9 training-free interventions (head surgery, steering) do not restore refusal",
        F8_RULE,
        "best 2.9 % (surgery 2.84–2.90, steering 0–2.4) from lvis_replay 2.9 %: 0 % of the gap",
    );
    let bn = j.need("base neg_correct", r.base.neg_correct);
    let lr = j.stat("lvis_replay neg_correct", &r.lvis_replay, neg);
    let best = j.need("best §9 intervention neg_correct", r.best_intervention.as_ref());
    if let (Some(b), Some(lr), Some((name, v))) = (bn, lr, best) {
        let gap = b - lr.mean;
        if gap <= 0.0 {
            j.num(format!("best intervention ({name}) {} % vs lvis_replay {} (base {})", pc(*v), pcs(lr), pc(b)));
            j.untestable(format!("lvis_replay lost no refusal ({} pp)", pp(-gap)));
        } else {
            let share = (v - lr.mean) / gap;
            j.num(format!("best intervention ({name}) {} % vs lvis_replay {} (base {}): {:.0} % of the gap", pc(*v), pcs(lr), pc(b), 100.0 * share));
            j.check(format!("{:.0} % < {:.0} % of the gap", 100.0 * share, 100.0 * F8_RECOVERED_MAX), share < F8_RECOVERED_MAX);
        }
    }
    j.finish()
}

// ---------------------------------------------------------------------------------------------
// Shown, not judged

/// Numbers the report shows beside the rules without deciding anything.
pub fn observations(r: &StudyResults) -> Vec<Observation> {
    let mut o = vec![];
    let seeds: Vec<String> = [("frozen_te", &r.frozen_te), ("lvis_replay", &r.lvis_replay), ("lvis_replay_neg", &r.lvis_replay_neg)]
        .iter()
        .map(|(n, runs)| format!("{n} {}", runs.seeds.len()))
        .collect();
    o.push(Observation { what: "Seeds per recipe (refusal margins are judged against 2 SDs over them; one seed leaves them unjudged)", numbers: seeds.join(", ") });
    if let Some(g) = &r.group_movement {
        o.push(Observation {
            what: "Table 6.1: Spearman ρ (ties averaged) between the recipes' module-group rankings of weight movement (presence_only left out: it moves only the presence head)",
            numbers: group_rank_agreement(g),
        });
    }
    let u = &r.unfrozen_te;
    if !u.seeds.is_empty() {
        let f = |s: Option<Stat>, p: bool| s.map(|s| if p { pcs(s) } else { ious(s) }).unwrap_or_else(|| "—".into());
        o.push(Observation {
            what: "Control: the unfrozen-TE fine-tune (the post's predecessor's premise)",
            numbers: format!("narrow-eval IoU {}, neg_correct {}, pos_mean_IoU {}", f(u.stat(narrow), false), f(u.stat(neg), true), u.stat(pos).map(pts).unwrap_or_else(|| "—".into())),
        });
    }
    o
}

/// Spearman ρ between every pair of recipes' group movements (over the groups both have).
fn group_rank_agreement(g: &GroupMovement) -> String {
    let cols: Vec<&(String, Vec<Option<f64>>)> = g.recipes.iter().filter(|(n, _)| n != "presence_only").collect();
    let mut pairs: Vec<(String, Option<f64>)> = vec![];
    for (i, a) in cols.iter().enumerate() {
        for b in &cols[i + 1..] {
            let (x, y): (Vec<f64>, Vec<f64>) = a.1.iter().zip(&b.1).filter_map(|(x, y)| Some(((*x)?, (*y)?))).unzip();
            pairs.push((format!("{}/{}", a.0, b.0), stats::spearman(&x, &y)));
        }
    }
    let vals: Vec<f64> = pairs.iter().filter_map(|p| p.1).collect();
    if vals.is_empty() {
        return "no pair of recipes with a defined ρ".into();
    }
    let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let each: Vec<String> = pairs.iter().map(|(n, r)| r.map(|r| format!("{n} {r:+.2}")).unwrap_or_else(|| format!("{n} undefined"))).collect();
    format!("min {min:+.2}, mean {:+.2} over {} pairs ({})", stats::mean(&vals), vals.len(), each.join("; "))
}

#[cfg(test)]
mod tests {
    //! Synthetic inputs only. `post()` is the post's published numbers (Tables 1.1, 3.1, 5.2, 7.1,
    //! 8.1) as fractions, with base criteria values made up to meet B1–B6: the post's own story must
    //! pass its own rules, and each test below breaks or removes one input.
    use super::*;
    use crate::results::{GroupMovement, TextEncoderCheck};

    fn m(neg: f64, pos: f64, lvis: f64, narrow: f64) -> Measures {
        Measures { neg_correct: Some(neg), pos_mean_iou: Some(pos), lvis_miou: Some(lvis), narrow_iou: Some(narrow), ..Default::default() }
    }

    fn with(mut x: Measures, cos: f64, scalar: f64) -> Measures {
        x.bias_cos = Some(cos);
        x.scalar_bias_cos = Some(scalar);
        x
    }

    fn post() -> StudyResults {
        let mut base = m(0.958, 0.6295, 0.564, 0.227);
        base.detection = Some(0.85);
        base.pmf1 = Some(0.6708);
        base.fig11_sigma = Some(vec![0.01, 0.02, 0.08, 0.01, 0.0, 0.03, 0.05, 0.01, 0.01, 0.02, 0.04, 0.07]);
        let mut frozen_te = with(m(0.032, 0.5872, 0.539, 0.922), 1.0, 1.0);
        frozen_te.fig11_sigma = Some(vec![1.0; 12]);
        StudyResults {
            base,
            frozen_te: Runs::one(frozen_te),
            lvis_replay: Runs::one(with(m(0.029, 0.6228, 0.569, 0.919), 0.96, 1.0)),
            lvis_replay_n100: Runs::one(m(0.029, 0.6096, 0.549, 0.916)),
            lvis_replay_neg: Runs::one(with(m(0.413, 0.6256, 0.589, 0.913), 0.47, 1.0)),
            recovery: Runs::one(with(m(0.106, 0.552, 0.563, 0.901), 0.76, 1.0)),
            presence_only: Runs::one(with(m(0.8785, 0.661, 0.569, 0.879), -0.40, -1.0)),
            null_ft: Runs::one(m(0.950, 0.620, 0.56, 0.227)),
            unfrozen_te: Runs::one(m(0.05, 0.58, 0.54, 0.93)),
            gate_open_base_neg_correct: Some(0.10),
            long_unfrozen_narrow_iou: Some(0.85),
            oracle_part_iou: Some(vec![("minute hand".into(), 0.7), ("strap lug".into(), 0.9)]),
            text_encoder: Some(TextEncoderCheck { narrow_row_norms: vec![0.40, 0.45], broad_row_norms: vec![0.42, 0.44], max_cos_narrow: 0.55, max_cos_broad: 0.50 }),
            group_movement: None,
            seed_floor_cos: None,
            best_intervention: Some(("steering α = 3".into(), 0.029)),
        }
    }

    fn seeds(v: &[Measures]) -> Runs {
        Runs { seeds: v.to_vec() }
    }

    fn first(r: &mut Runs) -> &mut Measures {
        &mut r.seeds[0]
    }

    #[track_caller]
    fn reproduced(f: &Finding) {
        assert_eq!(f.verdict, Verdict::Reproduced, "{}: {:?}", f.id, f.clauses);
    }
    #[track_caller]
    fn fails(f: &Finding, clause: &str) {
        assert_eq!(f.verdict, Verdict::NotReproduced, "{}: {:?}", f.id, f.clauses);
        assert!(f.clauses.iter().any(|c| !c.holds && c.text.contains(clause)), "{}: no failing clause with {clause:?}: {:?}", f.id, f.clauses);
    }
    #[track_caller]
    fn missing(f: &Finding, what: &str) {
        match &f.verdict {
            Verdict::NotTestable(why) => assert!(why.starts_with("missing: ") && why.contains(what), "{}: {why}", f.id),
            v => panic!("{}: {v:?}, expected not testable (missing: {what})", f.id),
        }
    }
    #[track_caller]
    fn untestable(f: &Finding, why: &str) {
        assert_eq!(f.verdict, Verdict::NotTestable(why.into()), "{}", f.id);
    }

    #[test]
    fn the_posts_own_numbers_meet_every_rule() {
        let s = evaluate(&post());
        for f in s.base_criteria.iter().chain(&s.findings) {
            reproduced(f);
        }
        // One seed each: every finding with a refusal margin says it is unjudged for noise.
        for id in ["F2", "F4", "F6"] {
            assert_eq!(s.findings.iter().find(|f| f.id == id).unwrap().noise, Noise::Unjudged, "{id}");
        }
        assert_eq!(s.findings[0].noise, Noise::NoMargin);
    }

    #[test]
    fn an_empty_run_is_not_testable_everywhere_and_says_what_is_missing() {
        let s = evaluate(&StudyResults::default());
        for f in &s.base_criteria {
            assert!(matches!(&f.verdict, Verdict::NotTestable(w) if w.starts_with("missing: ")), "{}: {:?}", f.id, f.verdict);
        }
        missing(&s.findings[0], "base narrow-eval IoU, frozen_te narrow-eval IoU");
        for f in &s.findings[1..] {
            untestable(f, "premise: itself not testable");
        }
    }

    // --- base criteria ---------------------------------------------------------------------------

    #[test]
    fn b1_pass_fail_missing() {
        reproduced(&b1(&post()));
        let mut r = post();
        r.base.detection = Some(0.79);
        fails(&b1(&r), "detection 0.790 ≥ 0.8");
        let mut r = post();
        r.base.lvis_miou = Some(0.549);
        fails(&b1(&r), "LVIS mIoU 0.549 ≥ 0.55");
        let mut r = post();
        r.base.detection = None;
        missing(&b1(&r), "base broad-eval detection");
    }

    #[test]
    fn b2_pass_fail_missing() {
        let mut r = post();
        // Exactly 11 of 12 closed still meets it.
        r.base.fig11_sigma.as_mut().unwrap()[0] = 0.5;
        reproduced(&b2(&r));
        r.base.fig11_sigma.as_mut().unwrap()[1] = 0.11;
        fails(&b2(&r), "10 of 12 negatives at σ ≤ 0.1");
        let mut r = post();
        r.gate_open_base_neg_correct = Some(0.41);
        fails(&b2(&r), "gate-open neg_correct 41.0 % ≤ 40.0 %");
        let mut r = post();
        r.gate_open_base_neg_correct = None;
        missing(&b2(&r), "gate-forced-open base neg_correct");
    }

    #[test]
    fn b3_pass_fail_missing() {
        reproduced(&b3(&post()));
        for v in [0.09, 0.36] {
            let mut r = post();
            r.base.narrow_iou = Some(v);
            fails(&b3(&r), "in [0.1, 0.35]");
        }
        let mut r = post();
        r.base.narrow_iou = None;
        missing(&b3(&r), "base narrow-eval IoU");
    }

    #[test]
    fn b4_pass_fail_missing() {
        reproduced(&b4(&post()));
        // Today's world: decayed narrow rows (0.05 vs 0.42) and near-identical part-name features.
        let mut r = post();
        r.text_encoder = Some(TextEncoderCheck { narrow_row_norms: vec![0.05, 0.05], broad_row_norms: vec![0.42], max_cos_narrow: 0.99, max_cos_broad: 0.50 });
        let f = b4(&r);
        fails(&f, "every ratio in [0.5, 2]");
        fails(&f, "0.99 ≤ 0.50 + 0.1");
        let mut r = post();
        r.text_encoder.as_mut().unwrap().narrow_row_norms.push(0.9); // 0.9 / 0.43 > 2
        fails(&b4(&r), "every ratio");
        let mut r = post();
        r.text_encoder = None;
        missing(&b4(&r), "text-encoder");
    }

    #[test]
    fn b5_pass_fail_missing() {
        reproduced(&b5(&post()));
        let mut r = post();
        r.oracle_part_iou.as_mut().unwrap().push(("hour marker".into(), 0.3));
        fails(&b5(&r), "lowest hour marker 0.300");
        let mut r = post();
        r.long_unfrozen_narrow_iou = Some(0.74);
        fails(&b5(&r), "0.740 ≥ 0.75");
        let mut r = post();
        r.oracle_part_iou = None;
        missing(&b5(&r), "oracle best-query IoU per part");
    }

    #[test]
    fn b6_pass_fail_missing() {
        reproduced(&b6(&post()));
        let mut r = post();
        first(&mut r.null_ft).neg_correct = Some(0.958 + 0.04); // a rise counts as movement too
        fails(&b6(&r), "pp| ≤ 3.0 pp");
        let mut r = post();
        first(&mut r.null_ft).pos_mean_iou = Some(0.59);
        fails(&b6(&r), "points| ≤ 3.0 points");
        let mut r = post();
        r.null_ft = Runs::default();
        missing(&b6(&r), "null fine-tune neg_correct, null fine-tune pos_mean_IoU");
    }

    // --- findings --------------------------------------------------------------------------------

    #[test]
    fn f1_pass_fail_missing_and_its_gate() {
        reproduced(&f1(&post()));
        let mut r = post();
        first(&mut r.frozen_te).narrow_iou = Some(0.59);
        fails(&f1(&r), "frozen_te 0.590 ≥ 0.6");
        // ≥ 0.6 but less than base + 0.3.
        let mut r = post();
        r.base.narrow_iou = Some(0.35);
        first(&mut r.frozen_te).narrow_iou = Some(0.62);
        fails(&f1(&r), "gain +0.270 ≥ +0.3");
        let all = findings(&r);
        for f in &all[1..] {
            untestable(f, "premise");
        }
        let mut r = post();
        r.frozen_te = Runs::default();
        missing(&f1(&r), "frozen_te narrow-eval IoU");
    }

    #[test]
    fn f2_pass_fail_missing_and_its_gate() {
        reproduced(&f2(&post()));
        let mut r = post();
        first(&mut r.frozen_te).neg_correct = Some(0.6); // a 35.8 pp drop
        fails(&f2(&r), "drop +35.8 pp ≥ 40.0 pp");
        let all = findings(&r);
        reproduced(&all[0]);
        assert_eq!(all[1].verdict, Verdict::NotReproduced);
        for f in &all[2..] {
            untestable(f, "no break");
        }
        let mut r = post();
        first(&mut r.frozen_te).fig11_sigma = Some(vec![0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.4, 0.4, 0.4]);
        fails(&f2(&r), "9/12 ≥ 0.5, need ≥ 10/12");
        let mut r = post();
        first(&mut r.frozen_te).fig11_sigma = Some(vec![0.6; 12]);
        fails(&f2(&r), "mean σ 0.600 ≥ 0.8");
        let mut r = post();
        first(&mut r.frozen_te).lvis_miou = Some(0.46); // base 56.4 − 10 = 46.4
        fails(&f2(&r), "LVIS mIoU 46.0 ≥ base − 10.0");
        let mut r = post();
        first(&mut r.frozen_te).pos_mean_iou = Some(0.52);
        fails(&f2(&r), "pos_mean_IoU 52.0 ≥ base − 10.0");
        let mut r = post();
        first(&mut r.frozen_te).fig11_sigma = None;
        missing(&f2(&r), "frozen_te Fig 1.1 σ(presence)");
        let all = findings(&r);
        for f in &all[2..] {
            untestable(f, "no break: itself not testable");
        }
    }

    #[test]
    fn f2_judges_the_drop_against_two_seed_sds() {
        let ft = post().frozen_te.seeds[0].clone();
        let at = |neg: f64| Measures { neg_correct: Some(neg), ..ft.clone() };
        // Three seeds, mean drop 95.8 − 35.0 = 60.8 pp, SD 30 pp: 2 SD = 60 pp < 60.8 → holds.
        let mut r = post();
        r.frozen_te = seeds(&[at(0.05), at(0.35), at(0.65)]);
        let f = f2(&r);
        reproduced(&f);
        assert_eq!(f.noise, Noise::Judged);
        assert!(!f.seed_spread_changed());
        // Mean drop 55.8 pp ≥ 40 but SD 40 pp: 2 SD = 80 pp → the spread refuses it.
        r.frozen_te = seeds(&[at(0.0), at(0.4), at(0.8)]);
        let f = f2(&r);
        fails(&f, "> 2 SD = 80.0 pp");
        assert!(f.seed_spread_changed());
        assert_eq!(f.noise, Noise::Judged);
    }

    #[test]
    fn f3_pass_fail_missing() {
        reproduced(&f3(&post()));
        // lvis_replay_n100 recovers 30 % of frozen_te's gap (92.6 pp): 3.2 + 27.8 = 31.0 %.
        let mut r = post();
        first(&mut r.lvis_replay_n100).neg_correct = Some(0.032 + 0.3 * 0.926);
        fails(&f3(&r), "lvis_replay_n100 recovers 30 % ≤ 25 %");
        let mut r = post();
        first(&mut r.lvis_replay).lvis_miou = Some(0.50); // base 56.4 − 5 = 51.4
        fails(&f3(&r), "LVIS 50.0 ≥ base − 5.0 = 51.4");
        let mut r = post();
        first(&mut r.lvis_replay_n100).narrow_iou = Some(0.85); // frozen_te 0.922 − 0.05 = 0.872
        fails(&f3(&r), "lvis_replay_n100 narrow IoU 0.850 ≥ frozen_te − 0.05 = 0.872");
        let mut r = post();
        r.lvis_replay_n100 = Runs::default();
        missing(&f3(&r), "lvis_replay_n100 neg_correct, lvis_replay_n100 narrow-eval IoU");
        // No gap to recover (refusal rose): not testable, whatever the rest says.
        let mut r = post();
        first(&mut r.frozen_te).neg_correct = Some(1.0);
        let f = f3(&r);
        untestable(&f, "frozen_te lost no refusal (+4.2 pp)");
        assert!(f.numbers.iter().any(|n| n == "lvis_replay: neg_correct 2.9 % vs frozen_te 100.0 (base 95.8)"), "{:?}", f.numbers);
    }

    #[test]
    fn f4_pass_fail_missing_and_noise() {
        let f = f4(&post());
        reproduced(&f);
        assert_eq!(f.noise, Noise::Unjudged);
        let mut r = post();
        first(&mut r.lvis_replay_neg).neg_correct = Some(0.029 + 0.09);
        fails(&f4(&r), "gain +9.0 pp ≥ 10.0 pp");
        // Full recovery is not the post's partial one.
        let mut r = post();
        first(&mut r.lvis_replay_neg).neg_correct = Some(0.90);
        fails(&f4(&r), "≤ base − 10.0 pp = 85.8 % (partial)");
        let mut r = post();
        r.lvis_replay_neg = Runs::default();
        missing(&f4(&r), "lvis_replay_neg neg_correct");
        // Paired seeds: differences 7, 47, 57 pp (mean 37, SD 26.5): 2 SD = 52.9 pp > 37 → refused.
        let lr = post().lvis_replay.seeds[0].clone();
        let ln = post().lvis_replay_neg.seeds[0].clone();
        let at = |m: &Measures, neg: f64| Measures { neg_correct: Some(neg), ..m.clone() };
        let mut r = post();
        r.lvis_replay = seeds(&[at(&lr, 0.03), at(&lr, 0.03), at(&lr, 0.03)]);
        r.lvis_replay_neg = seeds(&[at(&ln, 0.10), at(&ln, 0.50), at(&ln, 0.60)]);
        let f = f4(&r);
        fails(&f, "> 2 SD = 52.9 pp");
        assert!(f.seed_spread_changed());
        // Tight seeds: differences 37, 38, 39 pp → SD 1 pp, holds.
        r.lvis_replay_neg = seeds(&[at(&ln, 0.40), at(&ln, 0.41), at(&ln, 0.42)]);
        let f = f4(&r);
        reproduced(&f);
        assert_eq!(f.noise, Noise::Judged);
    }

    #[test]
    fn f5_pass_fail_missing() {
        reproduced(&f5(&post()));
        let mut r = post();
        first(&mut r.recovery).pos_mean_iou = Some(0.58); // frozen_te 58.72 − 1 = 57.72
        fails(&f5(&r), "recovery 58.0 < frozen_te − 1 = 57.7");
        let mut r = post();
        first(&mut r.lvis_replay).pos_mean_iou = Some(0.57); // 57 − 2 = 55 < recovery 55.2
        fails(&f5(&r), "< lvis_replay − 2 = 55.0");
        let mut r = post();
        first(&mut r.recovery).lvis_miou = Some(0.53); // lvis_replay 56.9 − 3 = 53.9
        fails(&f5(&r), "recovery LVIS 53.0 ≥ lvis_replay − 3 = 53.9");
        let mut r = post();
        first(&mut r.recovery).neg_correct = Some(0.032 + 0.3 * 0.926);
        fails(&f5(&r), "refusal gain 30 % ≤ 25 %");
        let mut r = post();
        first(&mut r.recovery).bias_cos = Some(-0.1);
        fails(&f5(&r), "cos -0.10 > 0");
        let mut r = post();
        first(&mut r.recovery).bias_cos = None;
        missing(&f5(&r), "cos(recovery − frozen_te, frozen_te − base)");
    }

    #[test]
    fn f6_pass_fail_missing() {
        reproduced(&f6(&post()));
        // 40 % of lvis_replay's gap (92.9 pp).
        let mut r = post();
        first(&mut r.presence_only).neg_correct = Some(0.029 + 0.4 * 0.929);
        fails(&f6(&r), "gain (≥ 50 % of the gap)");
        let mut r = post();
        first(&mut r.presence_only).bias_cos = Some(0.05);
        fails(&f6(&r), "cos +0.05 < 0");
        let mut r = post();
        first(&mut r.presence_only).scalar_bias_cos = Some(1.0);
        fails(&f6(&r), "presence_only flips the scalar (+1)");
        let mut r = post();
        first(&mut r.lvis_replay_neg).scalar_bias_cos = Some(-1.0);
        fails(&f6(&r), "also flipped by lvis_replay_neg");
        let mut r = post();
        first(&mut r.recovery).scalar_bias_cos = None;
        missing(&f6(&r), "recovery scalar-bias sign");
        let mut r = post();
        first(&mut r.lvis_replay).neg_correct = Some(0.97);
        untestable(&f6(&r), "lvis_replay lost no refusal (+1.2 pp)");
    }

    #[test]
    fn f7_pass_fail_missing() {
        let f = f7(&post());
        reproduced(&f);
        assert!(f.numbers.iter().any(|n| n.contains("seed floor: not measured")));
        let mut r = post();
        r.seed_floor_cos = Some(0.83);
        assert!(f7(&r).numbers.iter().any(|n| n == "seed floor cos(frozen_te seed 0, seed 1) = +0.83"));
        let mut r = post();
        first(&mut r.lvis_replay_neg).bias_cos = Some(0.80); // 0.96 < 0.80 + 0.2
        fails(&f7(&r), "+0.96 ≥ +0.80 + 0.2");
        let mut r = post();
        first(&mut r.presence_only).bias_cos = Some(0.0);
        fails(&f7(&r), "presence_only +0.00 < 0");
        let mut r = post();
        first(&mut r.lvis_replay).bias_cos = None;
        missing(&f7(&r), "cos(lvis_replay − base, frozen_te − base)");
    }

    #[test]
    fn f8_pass_fail_missing() {
        reproduced(&f8(&post()));
        let mut r = post();
        r.best_intervention = Some(("surgery_top4".into(), 0.029 + 0.25 * 0.929)); // exactly 25 %: not < 25 %
        fails(&f8(&r), "< 25 % of the gap");
        let mut r = post();
        r.best_intervention = None;
        missing(&f8(&r), "best §9 intervention neg_correct");
    }

    #[test]
    fn gated_findings_keep_their_numbers() {
        let mut r = post();
        first(&mut r.frozen_te).narrow_iou = Some(0.1);
        let all = findings(&r);
        let f4 = &all[3];
        untestable(f4, "premise");
        assert!(f4.numbers.iter().any(|n| n.contains("41.3 % (lvis_replay_neg)")), "{:?}", f4.numbers);
        assert_eq!(f4.noise, Noise::NoMargin);
    }

    #[test]
    fn group_rankings_are_shown_with_spearman_over_shared_groups() {
        let mut r = post();
        r.group_movement = Some(GroupMovement {
            groups: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            recipes: vec![
                ("frozen_te".into(), vec![Some(1.0), Some(2.0), Some(2.0), Some(3.0)]),
                ("lvis_replay".into(), vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0)]),
                ("presence_only".into(), vec![Some(9.0), None, None, None]),
                ("recovery".into(), vec![None, Some(5.0), Some(6.0), Some(7.0)]),
            ],
        });
        let o = observations(&r);
        let g = o.iter().find(|x| x.what.starts_with("Table 6.1")).unwrap();
        // frozen_te/lvis_replay: 3/√10 = 0.95 (see stats); frozen_te/recovery over b, c, d: ranks 1.5 1.5 3 vs 1 2 3 → 0.87;
        // lvis_replay/recovery over b, c, d: 1.
        assert!(g.numbers.contains("frozen_te/lvis_replay +0.95"), "{}", g.numbers);
        assert!(g.numbers.contains("frozen_te/recovery +0.87"), "{}", g.numbers);
        assert!(g.numbers.contains("lvis_replay/recovery +1.00"), "{}", g.numbers);
        assert!(g.numbers.starts_with("min +0.87"), "{}", g.numbers);
        assert!(!g.numbers.contains("presence_only"));
    }
}
