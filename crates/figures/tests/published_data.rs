//! The transcription of the post's tables in `data/post02/` against values typed again,
//! separately, from the post's text (some from the tables, some from the prose that quotes them).

use std::path::{Path, PathBuf};

use sam3lab_figures::csv::CsvTable;
use sam3lab_figures::published::{self, PublishedCosines};
use sam3lab_figures::schema::DriftTable;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/post02")
}

fn table(name: &str) -> CsvTable {
    CsvTable::read(&data().join(name)).unwrap()
}

/// The cell in the row whose `key_col` is `key`.
fn cell(t: &CsvTable, key_col: &str, key: &str, col: &str) -> f64 {
    let row = t
        .rows
        .iter()
        .find(|r| t.str(r, key_col).unwrap() == key)
        .unwrap_or_else(|| panic!("no row {key}"));
    t.f64(row, col).unwrap()
}

#[test]
fn every_file_names_its_source_and_is_listed_in_the_readme() {
    let readme = std::fs::read_to_string(data().join("README.md")).unwrap();
    let mut on_disk: Vec<String> = std::fs::read_dir(data())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".csv"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = published::FILES
        .iter()
        .map(|(f, _)| f.to_string())
        .collect();
    listed.sort();
    assert_eq!(on_disk, listed, "published::FILES and data/post02 disagree");
    for (file, _) in published::FILES {
        let t = table(file);
        assert!(
            t.source().unwrap().starts_with("sam3-post02 "),
            "{file}: {:?}",
            t.source()
        );
        assert!(!t.rows.is_empty(), "{file} has no rows");
        assert!(readme.contains(file), "README.md does not list {file}");
        let first = std::fs::read_to_string(data().join(file)).unwrap();
        assert!(
            first.starts_with("# source: sam3-post02"),
            "{file} must start with its source line"
        );
    }
}

#[test]
fn tables_match_values_typed_from_the_post() {
    // Table 1.1
    let t = table("table1_1_saco_base_vs_ft.csv");
    assert_eq!(cell(&t, "metric", "IL_MCC", "delta"), -0.657);
    assert_eq!(cell(&t, "metric", "LVIS_mIoU", "watch_ft_frozen_te"), 53.9);
    assert_eq!(cell(&t, "metric", "neg_correct", "base_sam3"), 95.8);
    // Table 3.1
    let t = table("table3_1_all_recipes.csv");
    assert_eq!(cell(&t, "recipe", "lvis_replay_n100", "saco_cgf1"), 7.93);
    assert_eq!(cell(&t, "recipe", "recovery@2000", "saco_pos_mean"), 55.20);
    assert_eq!(cell(&t, "recipe", "base", "lvis_pmf1"), 48.14);
    assert_eq!(
        cell(&t, "recipe", "lvis_replay_neg", "saco_neg_correct_pct"),
        41.3
    );
    assert_eq!(cell(&t, "recipe", "frozen_te", "saco_il_mcc"), 0.171);
    // Table 4.1
    let t = table("table4_1_replay_vs_recovery.csv");
    assert_eq!(cell(&t, "quantity", "LVIS mIoU", "recovery@2000"), 56.3);
    assert_eq!(
        cell(&t, "quantity", "SA-Co pos_mean_IoU", "base_sam3_ref"),
        63.0
    );
    // Table 5.1 (§5)
    let t = table("table5_1_presence_only_trajectory.csv");
    assert_eq!(cell(&t, "step", "150", "neg_pres_sigma"), 0.208);
    assert_eq!(cell(&t, "step", "75", "neg_bce"), 3.77);
    assert_eq!(cell(&t, "step", "999", "pos_pres_sigma"), 0.893);
    // Table 5.2
    let t = table("table5_2_presence_only_endpoint.csv");
    assert_eq!(
        cell(&t, "recipe", "presence_only", "saco_neg_correct_pct"),
        87.85
    );
    assert_eq!(
        cell(&t, "recipe", "presence_only", "saco_mean_mask_iou"),
        82.8
    );
    assert_eq!(
        cell(&t, "recipe", "recovery@2000", "saco_mean_mask_iou"),
        20.2
    );
    // Table 6.1
    let t = table("table6_1_weight_movement.csv");
    assert_eq!(
        cell(&t, "group", "geometry_encoder", "lvis_replay_neg-base"),
        0.168
    );
    assert_eq!(
        cell(&t, "group", "vision_trunk", "recovery-frozen_te"),
        0.010
    );
    assert_eq!(
        cell(&t, "group", "dot_prod_scoring", "lvis_replay_neg-base"),
        0.206
    );
    assert_eq!(
        cell(&t, "group", "decoder_ca_text", "lvis_replay-base"),
        0.165
    );
    // Table 7.1
    let t = table("table7_1_bias_cosines.csv");
    assert_eq!(
        cell(&t, "label", "presence_only", "delta_norm_rel_base"),
        1.77
    );
    assert_eq!(
        cell(&t, "label", "recovery@2000", "cos_to_presence_only"),
        -0.67
    );
    assert_eq!(
        cell(&t, "label", "lvis_replay_neg", "cos_to_frozen_te"),
        0.47
    );
    assert_eq!(cell(&t, "label", "lvis_replay", "cos_to_frozen_te"), 0.96);
    // Table 8.1
    let t = table("table8_1_interventions.csv");
    assert_eq!(
        cell(
            &t,
            "intervention",
            "surgery_top4 (α=1.0)",
            "neg_correct_pct_low"
        ),
        2.84
    );
    assert_eq!(
        cell(
            &t,
            "intervention",
            "Activation steering at d[5].q0",
            "neg_correct_pct_high"
        ),
        2.4
    );
    assert_eq!(
        cell(
            &t,
            "intervention",
            "Activation steering at d[5].q0",
            "neg_correct_pct_low"
        ),
        0.0
    );
}

#[test]
fn drift_table_matches_the_post_and_loads_into_the_live_type() {
    let path = data().join("table6_rel_delta.csv");
    let t = published::load_drift_csv(&path).unwrap();
    assert_eq!(
        t.points,
        [
            "fusion.layers.4",
            "decoder.layers.5.q0",
            "decoder.layers.5.mean"
        ]
    );
    assert_eq!(t.groups, ["watch", "lvis", "saco"]);
    assert_eq!(t.rows.len(), 10);
    // From the prose of §6: "recovery@2000 0.903" (LVIS, fusion[4]), "0.809 → 0.804 → 0.798"
    // (steps 400, 800, 1200), frozen-TE 0.733 → recovery@2000 0.655 at decoder[5].q0 on LVIS.
    assert_eq!(
        t.value("recovery@2000", "fusion.layers.4", "lvis"),
        Some(0.903)
    );
    assert_eq!(
        t.value("recovery@400", "fusion.layers.4", "lvis"),
        Some(0.809)
    );
    assert_eq!(
        t.value("recovery@800", "fusion.layers.4", "lvis"),
        Some(0.804)
    );
    assert_eq!(
        t.value("recovery@1200", "fusion.layers.4", "lvis"),
        Some(0.798)
    );
    assert_eq!(
        t.value("frozen_te", "decoder.layers.5.q0", "lvis"),
        Some(0.733)
    );
    assert_eq!(
        t.value("recovery@2000", "decoder.layers.5.q0", "lvis"),
        Some(0.655)
    );
    // From the table: the one cell where presence_only differs from lvis_replay.
    assert_eq!(
        t.value("presence_only", "decoder.layers.5.q0", "saco"),
        Some(0.754)
    );
    assert_eq!(
        t.value("lvis_replay", "decoder.layers.5.q0", "saco"),
        Some(0.755)
    );
    assert_eq!(
        t.value("lvis_replay_neg", "decoder.layers.5.mean", "saco"),
        Some(0.567)
    );
    assert_eq!(
        t.value("lvis_replay_n100", "fusion.layers.4", "watch"),
        Some(0.843)
    );
    // The same data through JSON, as a live probe would write it, is the same table.
    let json = serde_json::to_string(&t).unwrap();
    let back: DriftTable = serde_json::from_str(&json).unwrap();
    assert_eq!(back, t);
}

#[test]
fn cosines_and_neg_correct_load() {
    let c = PublishedCosines::load(&data().join("table7_1_bias_cosines.csv")).unwrap();
    assert_eq!(c.param, "transformer.decoder.presence_token_out_norm.bias");
    assert_eq!(c.references, ["frozen_te", "presence_only"]);
    let rec = c.rows.iter().find(|r| r.label == "recovery@2000").unwrap();
    assert_eq!(
        (rec.from.as_str(), rec.to.as_str(), rec.rel_base),
        ("frozen_te", "recovery@2000", 0.50)
    );
    let neg = published::load_neg_correct(&[
        &data().join("table3_1_all_recipes.csv"),
        &data().join("table5_2_presence_only_endpoint.csv"),
    ])
    .unwrap();
    assert_eq!(neg["presence_only"], 87.85);
    assert_eq!(neg["recovery@2000"], 10.6);
    assert_eq!(neg["lvis_replay_n100"], 2.9);
    assert_eq!(neg.len(), 7);
}
