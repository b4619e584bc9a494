//! The pre-registered rules of world v2 (issue 26), in one place.
//!
//! Every threshold the base criteria B1–B6 and the findings F1–F8 use is a named constant here,
//! with the rule quoted in its doc comment. Units are fractions (see the crate doc): the
//! issue's "40 pp" is `0.40`, its "10 points" of pos_mean_IoU or LVIS mIoU is `0.10`.
//!
//! The issue: "Commit the rules (the study crate's thresholds and gates) in their own commit before
//! the first v2 default run; a later change reruns and reports both versions." Changing anything here
//! after a v2 run is such a change.
//!
//! Readings the issue leaves open, fixed here before any v2 run:
//! * **"The gap"** of a repair is the refusal the checkpoint it repairs lost against the base:
//!   recovery starts from frozen_te (gap = base − frozen_te, as F3 says "frozen_te's refusal gap"),
//!   presence_only and the §9 interventions start from lvis_replay (gap = base − lvis_replay). The
//!   share recovered is (repair − start) / gap. A gap ≤ 0 leaves nothing to recover: not testable.
//! * **Seeds.** A recipe run with `--seeds N` is judged on the mean over its seeds; Fig 1.1's σ on
//!   each prompt is averaged over the seeds that measured it.
//! * **"Every refusal margin is judged against 2 SDs over the seeds"**: a refusal margin that a rule
//!   requires to be *at least* some size (F2's drop, F4's and F6's gains) must also exceed
//!   [`NOISE_SDS`] × the SD over the seeds (of the per-seed differences when both sides have the
//!   same number of seeds, else √ of the summed variances of the sides with ≥ 2 seeds). An upper
//!   bound on a repair ("recovers ≤ 25 %": F3, F5, F8) is a claim of no effect, judged on the mean
//!   with its spread printed. With one seed no margin can be judged: the row says so.
//! * **B4's row norms**: every narrow token row's norm lies within 0.5–2× of the mean norm of the
//!   broad rows.
//! * **F6's scalar**: "flips" means the delta of `presence_token_head.layers.2.bias` has the opposite
//!   sign to frozen_te's (cosine to frozen_te's delta < 0); "none of the other four" are frozen_te,
//!   lvis_replay, lvis_replay_neg and recovery.

// ----------------------------------------------------------------------------------------------
// Base criteria (may steer the design of the world)

/// B1 "broad-eval: neg_correct ≥ 0.90, …".
pub const B1_NEG_CORRECT_MIN: f64 = 0.90;
/// B1 "… detection ≥ 0.80, …".
pub const B1_DETECTION_MIN: f64 = 0.80;
/// B1 "… pos_mean_IoU ≥ 0.55; …".
pub const B1_POS_MEAN_IOU_MIN: f64 = 0.55;
/// B1 "… LVIS stand-in mIoU ≥ 0.55."
pub const B1_LVIS_MIOU_MIN: f64 = 0.55;
pub const B1_RULE: &str = "broad-eval neg_correct ≥ 0.90, detection ≥ 0.80, pos_mean_IoU ≥ 0.55; LVIS stand-in mIoU ≥ 0.55";

/// B2 "refusal lives in the gate: σ(presence) ≤ 0.10 on ≥ 11 of the 12 Fig 1.1 negatives; …".
pub const B2_SIGMA_MAX: f64 = 0.10;
/// B2 "… on ≥ 11 of the 12 Fig 1.1 negatives".
pub const B2_SIGMA_COUNT_MIN: usize = 11;
/// B2 "… with the gate forced open, neg_correct ≤ 0.40."
pub const B2_GATE_OPEN_NEG_CORRECT_MAX: f64 = 0.40;
pub const B2_RULE: &str = "base σ(presence) ≤ 0.10 on ≥ 11 of the 12 Fig 1.1 negatives; with the gate forced open, neg_correct ≤ 0.40";

/// B3 "narrow-eval IoU in [0.10, 0.35] (half-known)": lower end.
pub const B3_NARROW_IOU_MIN: f64 = 0.10;
/// B3 "narrow-eval IoU in [0.10, 0.35] (half-known)": upper end.
pub const B3_NARROW_IOU_MAX: f64 = 0.35;
pub const B3_RULE: &str = "base narrow-eval IoU in [0.10, 0.35] (half-known)";

/// B4 "the TE knows the words: narrow token-row norms within 0.5–2× of the broad rows; …": lower.
pub const B4_ROW_NORM_RATIO_MIN: f64 = 0.5;
/// B4 "… within 0.5–2× of the broad rows": upper.
pub const B4_ROW_NORM_RATIO_MAX: f64 = 2.0;
/// B4 "… the largest pairwise cosine of part-name features ≤ the largest among broad phrases + 0.1."
pub const B4_COS_SLACK: f64 = 0.1;
pub const B4_RULE: &str = "every narrow token-row norm within 0.5–2× of the broad rows' mean; largest pairwise cosine of part-name features ≤ largest among broad phrases + 0.1";

/// B5 "learnable: one long unfrozen fine-tune (run once, recorded) reaches narrow IoU ≥ 0.75; …".
pub const B5_LONG_UNFROZEN_NARROW_IOU_MIN: f64 = 0.75;
/// B5 "… every part's oracle best-query IoU ≥ 0.5."
pub const B5_ORACLE_PART_IOU_MIN: f64 = 0.5;
pub const B5_RULE: &str = "one long unfrozen fine-tune reaches narrow IoU ≥ 0.75; every part's oracle best-query IoU ≥ 0.5";

/// B6 "the null fine-tune moves neg_correct by ≤ 3 pp …".
pub const B6_NULL_NEG_CORRECT_MAX: f64 = 0.03;
/// B6 "… and broad pos_mean_IoU by ≤ 3 points."
pub const B6_NULL_POS_MEAN_IOU_MAX: f64 = 0.03;
pub const B6_RULE: &str = "the null fine-tune moves neg_correct by ≤ 3 pp and broad pos_mean_IoU by ≤ 3 points";

// ----------------------------------------------------------------------------------------------
// Findings, pre-registered (never steer)

/// F1 "premise: frozen_te narrow IoU ≥ 0.6 …".
pub const F1_NARROW_IOU_MIN: f64 = 0.6;
/// F1 "… and ≥ base + 0.3. If it fails, F2–F8 read "not testable (premise)"."
pub const F1_NARROW_GAIN_MIN: f64 = 0.3;
pub const F1_RULE: &str = "frozen_te narrow IoU ≥ 0.6 and ≥ base + 0.3; if it fails, F2–F8 are not testable (premise)";

/// F2 "break: neg_correct ≤ base − 40 pp; …" (a refusal margin: also > 2 seed SDs).
pub const F2_NEG_CORRECT_DROP_MIN: f64 = 0.40;
/// F2 "… Fig 1.1 mean σ ≥ 0.8 …".
pub const F2_SIGMA_MEAN_MIN: f64 = 0.8;
/// F2 "… with ≥ 10/12 ≥ 0.5; …": the σ that counts as open.
pub const F2_SIGMA_OPEN: f64 = 0.5;
/// F2 "… with ≥ 10/12 ≥ 0.5; …": how many must be open.
pub const F2_SIGMA_OPEN_COUNT_MIN: usize = 10;
/// F2 "… broad pos_mean_IoU and LVIS each ≥ base − 10. If it fails, F3–F8 read "not testable (no break)"."
pub const F2_POSITIVE_LOSS_MAX: f64 = 0.10;
pub const F2_RULE: &str = "frozen_te neg_correct ≤ base − 40 pp (and > 2 seed SDs); Fig 1.1 mean σ ≥ 0.8 with ≥ 10/12 ≥ 0.5; broad pos_mean_IoU and LVIS mIoU each ≥ base − 10; if it fails, F3–F8 are not testable (no break)";

/// F3 "replay (both densities): recovers ≤ 25 % of frozen_te's refusal gap; …".
pub const F3_RECOVERED_MAX: f64 = 0.25;
/// F3 "… LVIS (every 10th) ≥ base − 5; …".
pub const F3_LVIS_LOSS_MAX: f64 = 0.05;
/// F3 "… narrow IoU ≥ frozen_te − 0.05."
pub const F3_NARROW_LOSS_MAX: f64 = 0.05;
pub const F3_RULE: &str = "lvis_replay and lvis_replay_n100 each recover ≤ 25 % of frozen_te's refusal gap and keep narrow IoU ≥ frozen_te − 0.05; lvis_replay's LVIS mIoU ≥ base − 5";

/// F4 "negatives: lvis_replay_neg − lvis_replay ≥ max(10 pp, 2 seed SDs) …".
pub const F4_GAIN_MIN: f64 = 0.10;
/// F4 "… and still ≤ base − 10 (partial)."
pub const F4_BELOW_BASE_MIN: f64 = 0.10;
pub const F4_RULE: &str = "lvis_replay_neg − lvis_replay ≥ max(10 pp, 2 seed SDs) and lvis_replay_neg still ≤ base − 10 pp (partial)";

/// F5 "recovery: broad pos_mean < frozen_te − 1 …".
pub const F5_POS_BELOW_FROZEN_TE: f64 = 0.01;
/// F5 "… and < lvis_replay − 2; …".
pub const F5_POS_BELOW_LVIS_REPLAY: f64 = 0.02;
/// F5 "… LVIS ≥ lvis_replay − 3; …".
pub const F5_LVIS_LOSS_MAX: f64 = 0.03;
/// F5 "… refusal gain ≤ 25 % of the gap; …".
pub const F5_RECOVERED_MAX: f64 = 0.25;
/// F5 "… cos(recovery − frozen_te, frozen_te − base) > 0."
pub const F5_COS_MIN: f64 = 0.0;
pub const F5_RULE: &str = "recovery's broad pos_mean_IoU < frozen_te − 1 and < lvis_replay − 2; LVIS mIoU ≥ lvis_replay − 3; refusal gain ≤ 25 % of frozen_te's gap; cos(recovery − frozen_te, frozen_te − base) > 0";

/// F6 "presence_only: ≥ 50 % of the gap recovered; …" (a refusal margin: also > 2 seed SDs).
pub const F6_RECOVERED_MIN: f64 = 0.5;
/// F6 "… cos < 0; …": cos(presence_only − base, frozen_te − base).
pub const F6_COS_MAX: f64 = 0.0;
pub const F6_RULE: &str = "presence_only recovers ≥ 50 % of lvis_replay's refusal gap (gain > 2 seed SDs); cos(presence_only − base, frozen_te − base) < 0; the scalar presence_token_head.layers.2.bias flips for presence_only and for none of frozen_te, lvis_replay, lvis_replay_neg, recovery";

/// F7 "geometry: cos(lvis_replay) ≥ cos(lvis_replay_neg) + 0.2; …".
pub const F7_COS_GAP_MIN: f64 = 0.2;
/// F7 "… cos(presence_only) < 0; report the seed floor cos(frozen_te seed 0, frozen_te seed 1)."
pub const F7_PRESENCE_ONLY_COS_MAX: f64 = 0.0;
pub const F7_RULE: &str = "cos(lvis_replay − base, frozen_te − base) ≥ cos(lvis_replay_neg − base, frozen_te − base) + 0.2; cos(presence_only − base, frozen_te − base) < 0; the seed floor cos(frozen_te seed 0, seed 1) reported";

/// F8 "§9: the best training-free intervention recovers < 25 % of the gap."
pub const F8_RECOVERED_MAX: f64 = 0.25;
pub const F8_RULE: &str = "the best training-free intervention on lvis_replay recovers < 25 % of lvis_replay's refusal gap";

/// "Every refusal margin is judged against 2 SDs over the seeds."
pub const NOISE_SDS: f64 = 2.0;

/// How many Fig 1.1 negatives the rules count against (B2's "11 of the 12", F2's "10/12").
pub const FIG11_NEGATIVES: usize = 12;
