//! The findings of a [`Study`] as markdown: the base criteria and the findings (id, claim, verdict,
//! numbers, rule, published value), and what is shown without a rule.

use crate::criteria::{Finding, Noise, Observation, Study, Verdict};

/// A markdown table; `|` inside a cell is escaped.
pub fn md(header: &[&str], rows: &[Vec<String>]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut o = format!("| {} |\n|{}\n", header.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | "), "---|".repeat(header.len()));
    for r in rows {
        o.push_str(&format!("| {} |\n", r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")));
    }
    o
}

/// The verdict cell: the verdict in bold, the failing clauses, and how the seed spread stands.
pub fn verdict_cell(f: &Finding) -> String {
    let mut o = format!("**{}**", f.verdict_text());
    if f.verdict == Verdict::NotReproduced {
        let failed: Vec<&str> = f.clauses.iter().filter(|c| !c.holds).map(|c| c.text.as_str()).collect();
        o.push_str(&format!(" — fails: {}", failed.join("; ")));
    }
    if f.seed_spread_changed() {
        o.push_str(" — the seed spread decides it (the mean alone meets the rule)");
    }
    if f.noise == Noise::Unjudged {
        o.push_str(" — margins unjudged for noise (one seed)");
    }
    o
}

/// One table of rules applied to the run.
pub fn findings_table(rows: &[Finding]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|f| {
            let numbers = if f.numbers.is_empty() { "—".to_string() } else { f.numbers.join("; ") };
            vec![f.id.to_string(), f.claim.to_string(), verdict_cell(f), numbers, f.rule.to_string(), f.published.to_string()]
        })
        .collect();
    md(&["", "claim", "verdict", "numbers (this run)", "rule (pre-registered)", "published"], &body)
}

/// The "shown, not judged" table.
pub fn observations_table(rows: &[Observation]) -> String {
    md(&["shown, not judged", "numbers (this run)"], &rows.iter().map(|o| vec![o.what.to_string(), o.numbers.clone()]).collect::<Vec<_>>())
}

/// The findings section of REPORT.md: base criteria, findings F1–F8 (gated), observations.
pub fn render(s: &Study) -> String {
    let mut o = String::new();
    o.push_str("## Findings\n\n");
    o.push_str(
        "The pre-registered rules of world v2 (issue 26; thresholds in `crates/study/src/rules.rs`). F1 fails → F2–F8 are not testable (premise); F2 fails → F3–F8 are not testable (no break). A rule whose inputs this run did not produce reads \"not testable (missing: …)\". Every refusal margin is judged against 2 SDs over the seeds; with one seed it says so.\n\n",
    );
    o.push_str(&findings_table(&s.findings));
    o.push_str("\n### Base criteria (B1–B6: what the world's base must be for the findings to mean anything)\n\n");
    o.push_str(&findings_table(&s.base_criteria));
    if !s.observations.is_empty() {
        o.push_str("\n### Shown, not judged\n\n");
        o.push_str(&observations_table(&s.observations));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Measures, Runs, StudyResults};

    #[test]
    fn md_escapes_pipes_and_has_one_row_per_entry() {
        let t = md(&["a", "b"], &[vec!["x|y".into(), "1".into()], vec!["z".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| x\\|y | 1 |\n| z | 2 |\n");
    }

    #[test]
    fn render_prints_each_rule_with_its_verdict_and_the_runs_numbers() {
        // Only the base's and frozen_te's narrow IoU: F1 is judged (fails), F2–F8 gated.
        let r = StudyResults {
            base: Measures { narrow_iou: Some(0.123), neg_correct: Some(0.876), ..Default::default() },
            frozen_te: Runs::one(Measures { narrow_iou: Some(0.456), ..Default::default() }),
            ..Default::default()
        };
        let s = crate::evaluate(&r);
        let text = render(&s);
        assert!(text.contains("| F1 |"), "{text}");
        assert!(text.contains("narrow-eval IoU 0.123 → 0.456"), "{text}");
        assert!(text.contains("**not reproduced** — fails: frozen_te 0.456 ≥ 0.6"), "{text}");
        assert_eq!(text.matches("**not testable (premise)**").count(), 7, "{text}");
        // B1 has the base's neg_correct but not the rest.
        assert!(text.contains("neg_correct 0.876"), "{text}");
        assert!(text.contains("not testable (missing: base broad-eval detection, base broad-eval pos_mean_IoU, base LVIS mIoU)"), "{text}");
        for id in ["B1", "B2", "B3", "B4", "B5", "B6", "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8"] {
            assert_eq!(text.matches(&format!("| {id} |")).count(), 1, "{id}");
        }
    }
}
