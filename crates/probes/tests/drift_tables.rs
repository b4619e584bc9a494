//! The §6 drift table is the post's per-concept reading, not the mean over (image, prompt) pairs:
//! a hand-derived case where the two differ.

use sam3lab_probes::drift::{self, DriftPairValue};

/// One checkpoint `ft`, one point `x`, group `g` = prompts p1, p2, images i1, i2, with squared norms
/// (‖a_ref‖², ‖a_ft − a_ref‖²):
///
/// | prompt | i1      | i2     | per-input rel_Δ | per concept (stacked)          |
/// |--------|---------|--------|-----------------|--------------------------------|
/// | p1     | (24, 0) | (1, 1) | 0, 1            | sqrt((0 + 1) / (24 + 1)) = 0.2 |
/// | p2     | (4, 1)  | (4, 1) | 0.5, 0.5        | sqrt((1 + 1) / (4 + 4)) = 0.5  |
///
/// per concept, mean over prompts: (0.2 + 0.5) / 2 = 0.35; mean over pairs: (0 + 1 + 0.5 + 0.5) / 4 = 0.5.
fn hand_case() -> Vec<DriftPairValue> {
    [("p1", "i1", 24.0, 0.0), ("p1", "i2", 1.0, 1.0), ("p2", "i1", 4.0, 1.0), ("p2", "i2", 4.0, 1.0)]
        .into_iter()
        .map(|(prompt, image, r2, d2)| DriftPairValue::new("ft", "x", "g", image, prompt, r2, d2))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn main_table_is_per_concept_and_pair_mean_is_the_named_alternative() {
    let pairs = hand_case();
    let groups = vec![("g".to_string(), vec!["p1".to_string(), "p2".to_string()])];
    let (main, alt) = drift::tables("base", &["ft".into()], &["x".into()], &groups, &pairs, serde_json::Value::Null);
    assert_eq!(main.metric, "rel_delta");
    assert_eq!(alt.metric, "rel_delta_pair_mean");
    let (m, a) = (main.value("ft", "x", "g").unwrap(), alt.value("ft", "x", "g").unwrap());
    assert!(close(m, 0.35), "main table = per-concept mean over prompts: {m}");
    assert!(close(a, 0.5), "pair-mean table: {a}");
    // Per prompt, the stacked reading.
    let p1: Vec<&DriftPairValue> = pairs.iter().filter(|v| v.prompt == "p1").collect();
    assert!(close(drift::per_concept(&p1).unwrap(), 0.2));
    assert_eq!(pairs[1].rel_delta, Some(1.0));
    assert_eq!(pairs[0].rel_delta, Some(0.0));
    main.check().unwrap();
}

#[test]
fn zero_reference_prompts_drop_out_and_empty_cells_are_null() {
    let mut pairs = hand_case();
    // p3: a zero reference activation on every image → no per-concept value, no per-input rel_Δ.
    pairs.push(DriftPairValue::new("ft", "x", "g", "i1", "p3", 0.0, 5.0));
    let groups = vec![
        ("g".to_string(), vec!["p1".to_string(), "p2".to_string(), "p3".to_string()]),
        ("empty".to_string(), vec!["q".to_string()]),
    ];
    let (main, alt) = drift::tables("base", &["ft".into()], &["x".into()], &groups, &pairs, serde_json::Value::Null);
    assert!(close(main.value("ft", "x", "g").unwrap(), 0.35));
    assert!(close(alt.value("ft", "x", "g").unwrap(), 0.5));
    assert_eq!(main.value("ft", "x", "empty"), None);
    assert_eq!(alt.value("ft", "x", "empty"), None);
}
