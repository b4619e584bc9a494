//! sam3lab-study: the plan-independent science of `sam3lab reproduce`.
//!
//! This crate owns what the reproduce study *decides*, as opposed to how a run is produced:
//!
//! * [`results`]: the typed inputs ([`StudyResults`]) — per checkpoint or recipe (base, the post's
//!   six recipes, the controls of issue 26: null fine-tune, unfrozen-TE fine-tune, gate forced open
//!   on the base) the numbers the findings need, one [`Measures`] per seed. Everything a run may not
//!   have produced yet is an `Option`; a rule whose inputs are missing reads
//!   "not testable (missing: …)" instead of guessing.
//! * [`rules`]: every threshold of the pre-registered rules of world v2, as named constants with the
//!   issue's wording beside them — one place, committed before any v2 run.
//! * [`criteria`]: the base criteria B1–B6 and the findings F1–F8, each a small pure function over
//!   [`StudyResults`] returning a [`Finding`] (verdict, the numbers, the rule and the published
//!   value), the gating (F1 fails → F2–F8 "not testable (premise)"; F2 fails → F3–F8 "not testable
//!   (no break)"), and the seed-noise rule (a refusal margin must also exceed 2 SDs over the seeds;
//!   with one seed the verdict says its margins are unjudged for noise).
//! * [`stats`]: mean, sample SD, average ranks and Spearman's ρ with ties.
//! * [`report`]: the markdown of the findings (base criteria, findings, what is shown but not judged).
//!
//! It does no IO and knows nothing of the CLI, the model or the file formats: `sam3lab reproduce`
//! reads its run's files into a [`StudyResults`] and prints what this crate renders.
//!
//! Units: every rate and IoU is a fraction in [0, 1] as the evaluator writes it (neg_correct 0.958,
//! not 95.8). The "pp" and "points" are hundredths of these (40 pp = 0.40, 1 point = 0.01).

pub mod criteria;
pub mod report;
pub mod results;
pub mod rules;
/// The statistics live in `sam3lab-util` (the probes use them too); re-exported under the name the rules use.
pub use sam3lab_util::stats;

pub use criteria::{Clause, Finding, Kind, Noise, Observation, Study, Verdict, base_criteria, evaluate, findings, observations};
pub use results::{GroupMovement, Measures, Runs, StudyResults, TextEncoderCheck};
