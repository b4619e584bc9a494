//! Rendering: every published figure comes out as a non-blank PNG of the size its layout asks
//! for, an SVG holding its title, and a sidecar with the numbers drawn; derived numbers (Fig 8.1
//! coordinates, Fig 6.2 trend) match hand computations; live JSON shapes render the same way; bad
//! inputs fail with errors that name the file.

use std::path::{Path, PathBuf};

use sam3lab_figures::geometry::projection_from_cosines;
use sam3lab_figures::published::{self, PublishedCosines};
use sam3lab_figures::render::drift_steps::DriftStepsOptions;
use sam3lab_figures::render::{DriftSteps, Plot, ScatterPlot};
use sam3lab_figures::suite::{self, Kind, LiveOptions};
use sam3lab_figures::{convert, schema::DriftTable};
use serde_json::{Value, json};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/post02")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Checks one written figure: PNG size = sidecar size, enough ink, SVG with the title, and
/// returns the sidecar.
fn check_written(w: &sam3lab_figures::render::Written) -> Value {
    let side: Value = serde_json::from_str(&std::fs::read_to_string(&w.json).unwrap()).unwrap();
    let img = image::open(&w.png).unwrap().to_rgb8();
    let (width, height) = (
        side["width"].as_u64().unwrap() as u32,
        side["height"].as_u64().unwrap() as u32,
    );
    assert_eq!(img.dimensions(), (width, height), "{}", w.png.display());
    assert!(
        width >= 600 && height >= 200,
        "{}: {width}×{height}",
        w.png.display()
    );
    let paper = [0xFF, 0xFE, 0xFB];
    let ink = img.pixels().filter(|p| p.0 != paper).count();
    assert!(
        ink * 100 > img.pixels().len() * 3,
        "{} is almost blank ({ink} drawn pixels)",
        w.png.display()
    );
    let svg = std::fs::read_to_string(&w.svg).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{}",
        w.svg.display()
    );
    assert!(svg.contains(&format!("width=\"{width}\" height=\"{height}\"")));
    // XML-ish: every opened <text> is closed, and no raw '&' outside an entity.
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    assert!(
        svg.match_indices('&')
            .all(|(i, _)| svg[i..].starts_with("&amp;")
                || svg[i..].starts_with("&lt;")
                || svg[i..].starts_with("&gt;")
                || svg[i..].starts_with("&quot;")
                || svg[i..].starts_with("&apos;"))
    );
    let title = side["title"].as_str().unwrap();
    // The title may wrap onto several <text> lines; each of its words must be there.
    for word in title.split_whitespace() {
        assert!(
            svg.contains(&xml_escape(word)),
            "{}: title word `{word}` missing",
            w.svg.display()
        );
    }
    assert_eq!(
        side["png"],
        format!("{}", w.png.file_name().unwrap().to_string_lossy())
    );
    side
}

#[test]
fn published_suite_renders_every_figure_deterministically() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let written = suite::render_published(&data(), a.path()).unwrap();
    assert_eq!(written.len(), 6);
    // Fixed canvas widths of the chart figures (heights follow the text layout).
    let width = |stem: &str| {
        image::image_dimensions(a.path().join(format!("{stem}.png")))
            .unwrap()
            .0
    };
    assert_eq!(width(suite::FIG61), 1560);
    assert_eq!(width(suite::FIG62), 1200);
    assert_eq!(width(suite::FIG81), 1200);
    for w in &written {
        let side = check_written(w);
        assert!(!side["sources"].as_array().unwrap().is_empty());
        assert_eq!(side["sources"][0]["sha256"].as_str().unwrap().len(), 64);
    }
    // Exactly 18 files: nothing temporary left behind.
    assert_eq!(std::fs::read_dir(a.path()).unwrap().count(), 18);
    // Same inputs, same bytes.
    suite::render_published(&data(), b.path()).unwrap();
    for e in std::fs::read_dir(a.path()).unwrap() {
        let name = e.unwrap().file_name();
        assert_eq!(
            std::fs::read(a.path().join(&name)).unwrap(),
            std::fs::read(b.path().join(&name)).unwrap(),
            "{name:?}"
        );
    }
}

#[test]
fn fig81_coordinates_match_hand_computation() {
    // By hand from Table 7.1, with F = frozen_te − base, P = presence_only − base, c = cos(F, P) =
    // −0.40, √(1 − c²) = √0.84 = 0.916515:  x = r·a,  y = r·(b − c·a)/0.916515.
    //   lvis_replay     r 0.93 a 0.96 b −0.43: x 0.8928,  y 0.93·(−0.43 + 0.384)/0.916515 = −0.046677
    //   lvis_replay_neg r 1.00 a 0.47 b −0.32: x 0.47,    y (−0.32 + 0.188)/0.916515   = −0.144024
    //   presence_only   r 1.77 a −0.40 b 1.00: x −0.708,  y 1.77·0.84/0.916515          =  1.622232
    //   recovery@2000   r 0.50 a 0.76 b −0.67: Δ (0.38, 0.5·(−0.67 + 0.304)/0.916515 = −0.199669),
    //                   drawn from frozen_te's tip (0.88, 0) to (1.26, −0.199669).
    let c = PublishedCosines::load(&data().join("table7_1_bias_cosines.csv")).unwrap();
    let rows = c.cosine_rows("frozen_te", "presence_only", "t").unwrap();
    let p = projection_from_cosines(&rows, "frozen_te", "presence_only", "t").unwrap();
    let expect = [
        ("frozen_te", [0.0, 0.0], [0.88, 0.0]),
        ("lvis_replay", [0.0, 0.0], [0.8928, -0.046677]),
        ("lvis_replay_neg", [0.0, 0.0], [0.47, -0.144024]),
        ("presence_only", [0.0, 0.0], [-0.708, 1.622232]),
        ("recovery@2000", [0.88, 0.0], [1.26, -0.199669]),
    ];
    assert_eq!(p.points.len(), expect.len());
    for (pt, (label, origin, tip)) in p.points.iter().zip(expect) {
        assert_eq!(pt.label, label);
        for k in 0..2 {
            assert!(
                (pt.origin[k] - origin[k]).abs() < 1e-6,
                "{label} origin {:?}",
                pt.origin
            );
            assert!(
                (pt.tip[k] - tip[k]).abs() < 1e-6,
                "{label} tip {:?} vs {tip:?}",
                pt.tip
            );
        }
    }
}

#[test]
fn fig62_trend_matches_hand_computation() {
    let drift = published::load_drift_csv(&data().join("table6_rel_delta.csv")).unwrap();
    let neg = published::load_neg_correct(&[
        &data().join("table3_1_all_recipes.csv"),
        &data().join("table5_2_presence_only_endpoint.csv"),
    ])
    .unwrap();
    let s = convert::gate_scatter(
        &drift,
        "decoder.layers.5.q0",
        "lvis",
        &neg,
        &Default::default(),
        "t",
        "",
    )
    .unwrap();
    let plot = ScatterPlot::new(&s, "t", "t").unwrap();
    assert_eq!(
        plot.fit_over,
        [
            "lvis_replay",
            "lvis_replay_n100",
            "lvis_replay_neg",
            "recovery@2000"
        ]
    );
    // By hand over (0.744, 2.9), (0.734, 2.9), (0.655, 10.6), (0.604, 41.3), with the raw-sum
    // form slope = (nΣxy − ΣxΣy) / (nΣx² − (Σx)²):
    //   Σx = 2.737, Σy = 57.7, Σxy = 2.1576 + 2.1286 + 6.943 + 24.9452 = 36.1744,
    //   Σx² = 0.553536 + 0.538756 + 0.429025 + 0.364816 = 1.886133
    //   slope = (144.6976 − 157.9249) / (7.544532 − 7.491169) = −13.2273 / 0.053363 = −247.874
    //   intercept = (57.7 − slope·2.737) / 4 = 184.033
    let slope = -13.2273 / 0.053363;
    let intercept = (57.7 - slope * 2.737) / 4.0;
    assert!((plot.fit.slope - slope).abs() < 1e-6, "{:?}", plot.fit);
    assert!(
        (plot.fit.intercept - intercept).abs() < 1e-6,
        "{:?}",
        plot.fit
    );
    // presence_only sits 87.85 − (184.033 − 247.874·0.744) ≈ 88.2 pp above the trend.
    let po = plot
        .residuals
        .iter()
        .find(|r| r.label == "presence_only")
        .unwrap();
    assert!((po.residual - (87.85 - (intercept + slope * 0.744))).abs() < 1e-9);
    assert!(po.residual > 88.0 && po.residual < 88.4);
    let roles: Vec<_> = plot
        .points
        .iter()
        .map(|p| (p.label.as_str(), format!("{:?}", p.role)))
        .collect();
    assert!(
        roles.contains(&("frozen_te", "Reference".into())),
        "{roles:?}"
    );
    assert!(
        roles.contains(&("presence_only", "OffTrend".into())),
        "{roles:?}"
    );
}

#[test]
fn fig61_takes_steps_from_checkpoint_labels() {
    let drift = published::load_drift_csv(&data().join("table6_rel_delta.csv")).unwrap();
    let p = DriftSteps::from_table(&drift, &DriftStepsOptions::default(), "t", "").unwrap();
    let lvis = p.panels.iter().find(|p| p.group == "lvis").unwrap();
    assert_eq!(lvis.steps, [50, 400, 800, 1200, 2000]);
    assert_eq!(lvis.values, [0.816, 0.809, 0.804, 0.798, 0.903]);
    let refs: Vec<(&str, f64)> = lvis
        .references
        .iter()
        .map(|r| (r.checkpoint.as_str(), r.value))
        .collect();
    assert_eq!(
        refs,
        [
            ("frozen_te", 0.817),
            ("lvis_replay", 0.755),
            ("lvis_replay_neg", 0.677)
        ]
    );
    assert!(p.y_range[0] <= 0.677 && p.y_range[1] >= 0.903);
    let e = DriftSteps::from_table(
        &drift,
        &DriftStepsOptions {
            point: "fusion.layer.4".into(),
            ..Default::default()
        },
        "drift.json",
        "",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("drift.json") && e.contains("did you mean `fusion.layers.4`"),
        "{e}"
    );
    let e = DriftSteps::from_table(
        &drift,
        &DriftStepsOptions {
            run: "recover".into(),
            ..Default::default()
        },
        "d.json",
        "",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no checkpoints named `recover@STEP`"), "{e}");
}

fn write_json(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p
}

fn opts(name: &str) -> LiveOptions {
    LiveOptions {
        name: Some(name.into()),
        ..Default::default()
    }
}

fn ck(path: &str) -> Value {
    json!({"path": path, "sha256": "ab".repeat(32)})
}

#[test]
fn live_weight_outputs_render_like_published_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // Generic heatmap table as `weights diff` writes table.json (heatmap-schema.md §1), with a null.
    let table = json!({"title": "t61", "source": "sam3lab weights diff", "rows": ["vision_trunk", "text_encoder"],
                       "cols": ["frozen_te", "recovery"], "values": [[0.015, 0.010], [null, 0.0]]});
    let w = suite::render_from_file(
        Kind::Heatmap,
        &write_json(dir.path(), "table.json", &table),
        &opts("h1"),
        &out,
    )
    .unwrap();
    let side = check_written(&w);
    assert_eq!(side["data"]["values"], json!([[0.015, 0.010], [null, 0.0]]));
    // A list of diff.json reports gives the groups × recipes layout.
    let diff = |label: &str, a: f64, b: Option<f64>| {
        json!({"base": ck("/c/base.safetensors"), "other": ck(&format!("/c/{label}.safetensors")), "label": label,
               "tensors": [], "groups": [{"group": "fusion_encoder", "numel": 10, "tensors": 2, "rel_change_weighted": a, "rel_change_aggregate": a},
                                         {"group": "vision_trunk", "numel": 10, "tensors": 2, "rel_change_weighted": b, "rel_change_aggregate": b}]})
    };
    let list = json!([
        diff("frozen_te", 0.129, Some(0.015)),
        diff("lvis_replay", 0.136, None)
    ]);
    let w = suite::render_from_file(
        Kind::Heatmap,
        &write_json(dir.path(), "diffs.json", &list),
        &opts("h2"),
        &out,
    )
    .unwrap();
    let side = check_written(&w);
    assert_eq!(
        side["data"]["rows"],
        json!(["fusion_encoder", "vision_trunk"])
    );
    assert_eq!(side["data"]["cols"], json!(["frozen_te", "lvis_replay"]));
    assert_eq!(
        side["data"]["values"],
        json!([[0.129, 0.136], [0.015, null]])
    );
    // cosines.json: the cosine matrix as a heatmap and the projection as Fig 8.1.
    let cos = json!({"param": "p.bias", "numel": 256, "base": ck("/c/base"), "base_norm": 1.5,
        "trajectories": [{"label": "a", "from": ck("/c/base"), "to": ck("/c/a"), "delta_norm": 1.0, "rel_base": 0.5},
                         {"label": "b", "from": ck("/c/base"), "to": ck("/c/b"), "delta_norm": 2.0, "rel_base": 1.0}],
        "cosine": [[1.0, -0.4], [-0.4, 1.0]],
        "projection": {"axis": "a", "toward": "b", "points": [{"label": "a", "origin": [0.0, 0.0], "tip": [0.5, 0.0]},
                                                             {"label": "b", "origin": [0.0, 0.0], "tip": [-0.4, 0.916515]}]}});
    let cos_path = write_json(dir.path(), "cosines.json", &cos);
    let w = suite::render_from_file(Kind::Heatmap, &cos_path, &opts("h3"), &out).unwrap();
    let side = check_written(&w);
    assert_eq!(side["data"]["values"], json!([[1.0, -0.4], [-0.4, 1.0]]));
    assert_eq!(side["data"]["scale"]["kind"], "diverging");
    let w = suite::render_from_file(Kind::Fig81, &cos_path, &opts("f81"), &out).unwrap();
    let side = check_written(&w);
    assert_eq!(side["data"]["points"][1]["tip"], json!([-0.4, 0.916515]));
    assert_eq!(side["data"]["param"], "p.bias");
    // In-plane share from rel_base: a lies fully in the plane; b has ‖(−0.4, 0.9165)‖ = 1.0 of 1.0.
    let share = side["data"]["in_plane_fraction"].as_array().unwrap();
    assert!((share[0][1].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert!((share[1][1].as_f64().unwrap() - 1.0).abs() < 1e-6);
}

/// A drift table in the live shape, generated (not the post's numbers).
fn generated_drift() -> Value {
    let mut rows = Vec::new();
    for (i, ck) in ["start", "run@10", "run@20", "run@30", "ref"]
        .iter()
        .enumerate()
    {
        let v = 0.5 + 0.05 * i as f64;
        rows.push(json!({"checkpoint": ck, "values": {"fusion.layers.4": {"g1": v, "g2": v + 0.01},
                                                      "decoder.layers.5.q0": {"g1": 1.0 - v, "g2": null}}}));
    }
    json!({"metric": "rel_delta", "reference": "base", "points": ["fusion.layers.4", "decoder.layers.5.q0"],
           "groups": ["g1", "g2"], "rows": rows, "manifest": {"config": "generated"}})
}

#[test]
fn live_drift_table_renders_fig61_fig62_and_heatmap() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let drift = write_json(dir.path(), "drift.json", &generated_drift());
    let o = LiveOptions {
        name: Some("f61".into()),
        run: Some("run".into()),
        references: Some(vec!["start".into(), "ref".into()]),
        ..Default::default()
    };
    let side = check_written(&suite::render_from_file(Kind::Fig61, &drift, &o, &out).unwrap());
    assert_eq!(side["data"]["panels"][0]["steps"], json!([10, 20, 30]));
    assert_eq!(
        side["data"]["panels"][1]["values"],
        json!([0.56, 0.61, 0.66])
    );
    let side =
        check_written(&suite::render_from_file(Kind::Heatmap, &drift, &opts("hd"), &out).unwrap());
    assert_eq!(side["data"]["values"][0], json!([0.5, 0.51, 0.5, null]));
    let neg = write_json(
        dir.path(),
        "neg.json",
        &json!({"start": 3.0, "run@10": 10.0, "run@30": 40.0, "ref": 90.0}),
    );
    let o = LiveOptions {
        name: Some("f62".into()),
        neg_correct: Some(neg),
        group: Some("g1".into()),
        fit: Some(vec!["start".into(), "run@10".into(), "run@30".into()]),
        off_trend: Some(vec!["ref".into()]),
        ..Default::default()
    };
    let side = check_written(&suite::render_from_file(Kind::Fig62, &drift, &o, &out).unwrap());
    assert_eq!(side["data"]["points"].as_array().unwrap().len(), 4);
    assert_eq!(side["sources"].as_array().unwrap().len(), 2);
    // Without --neg-correct, fig62 from a drift table is refused with a reason.
    let e = suite::render_from_file(Kind::Fig62, &drift, &opts("x"), &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--neg-correct"), "{e}");
}

#[test]
fn fig11_renders_generated_presence_sigmoids() {
    let dir = tempfile::tempdir().unwrap();
    // Generated values (the post publishes none): a saturated and a closed gate.
    let prompts: Vec<String> = (0..12).map(|i| format!("generated prompt {i}")).collect();
    let ft: Vec<f64> = (0..12).map(|i| 0.99 + 0.0008 * i as f64).collect();
    let base: Vec<f64> = (0..12).map(|i| 0.005 * i as f64).collect();
    let bars = json!({"prompts": prompts, "series": [{"label": "fine-tune", "values": ft}, {"label": "base", "values": base}], "threshold": 0.3});
    let w = suite::render_from_file(
        Kind::Fig11,
        &write_json(dir.path(), "bars.json", &bars),
        &opts("f11"),
        &dir.path().join("o"),
    )
    .unwrap();
    let side = check_written(&w);
    assert_eq!(side["data"]["series"][0]["values"], json!(ft));
    assert_eq!(side["data"]["threshold"], 0.3);
    // 12 prompts × 2 bars fit: the canvas grows with the number of prompts.
    let bars13 =
        json!({"prompts": vec!["a"; 13], "series": [{"label": "x", "values": vec![0.5; 13]}]});
    let w13 = suite::render_from_file(
        Kind::Fig11,
        &write_json(dir.path(), "b13.json", &bars13),
        &opts("f13"),
        &dir.path().join("o"),
    )
    .unwrap();
    assert!(check_written(&w13)["height"].as_u64() != side["height"].as_u64());
}

#[test]
fn bad_inputs_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // Malformed JSON.
    let bad = dir.path().join("broken.json");
    std::fs::write(&bad, "{\"rows\": [").unwrap();
    let e = suite::render_from_file(Kind::Heatmap, &bad, &opts("x"), &out)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("broken.json") && e.contains("not valid JSON"),
        "{e}"
    );
    // Ragged heatmap.
    let ragged = write_json(
        dir.path(),
        "ragged.json",
        &json!({"title": "t", "rows": ["a", "b"], "cols": ["x", "y"], "values": [[1.0, 2.0], [3.0]]}),
    );
    let e = suite::render_from_file(Kind::Heatmap, &ragged, &opts("x"), &out)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ragged.json") && e.contains("`values[1]`"),
        "{e}"
    );
    // Heatmap table missing a field.
    let nocols = write_json(
        dir.path(),
        "nocols.json",
        &json!({"title": "t", "rows": ["a"], "cols": ["x"], "values": [[1.0]], "scale": {"kind": "rainbow", "min": 0, "max": 1}}),
    );
    let e = suite::render_from_file(Kind::Heatmap, &nocols, &opts("x"), &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nocols.json") && e.contains("rainbow"), "{e}");
    // Unrecognised shape.
    let other = write_json(dir.path(), "other.json", &json!({"hello": 1}));
    let e = suite::render_from_file(Kind::Heatmap, &other, &opts("x"), &out)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("other.json") && e.contains("not a heatmap input"),
        "{e}"
    );
    // Presence bars with a missing value.
    let bars = write_json(
        dir.path(),
        "bars.json",
        &json!({"prompts": ["a", "b"], "series": [{"label": "ft", "values": [0.9]}]}),
    );
    let e = suite::render_from_file(Kind::Fig11, &bars, &opts("x"), &out)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bars.json") && e.contains("1 values for 2 prompts"),
        "{e}"
    );
    // A drift table naming a group it does not declare.
    let mut d = generated_drift();
    d["rows"][0]["values"]["fusion.layers.4"]["g3"] = json!(0.1);
    let drift = write_json(dir.path(), "drift.json", &d);
    let e = suite::render_from_file(Kind::Fig61, &drift, &opts("x"), &out)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("drift.json") && e.contains("`g3`") && e.contains("did you mean `g1`"),
        "{e}"
    );
    // cosines.json without a projection cannot give Fig 8.1.
    let cos = write_json(
        dir.path(),
        "cos.json",
        &json!({"param": "p", "trajectories": [{"label": "a", "rel_base": 1.0}], "cosine": [[1.0]]}),
    );
    let e = suite::render_from_file(Kind::Fig81, &cos, &opts("x"), &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cos.json") && e.contains("projection"), "{e}");
    // Nothing was written by any failed call.
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().count() == 0);
    // A published table with a column removed.
    let pub_dir = dir.path().join("post02");
    std::fs::create_dir(&pub_dir).unwrap();
    for e in std::fs::read_dir(data()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), pub_dir.join(e.file_name())).unwrap();
    }
    let wm = pub_dir.join("table6_1_weight_movement.csv");
    let text = std::fs::read_to_string(&wm)
        .unwrap()
        .replace("group,published_label,", "grp,published_label,");
    std::fs::write(&wm, text).unwrap();
    let e = suite::render_published(&pub_dir, &dir.path().join("pub_out"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("table6_1_weight_movement.csv") && e.contains("missing column `group`"),
        "{e}"
    );
    // A published file missing entirely.
    std::fs::remove_file(pub_dir.join("table7_1_bias_cosines.csv")).unwrap();
    std::fs::write(
        &wm,
        std::fs::read(data().join("table6_1_weight_movement.csv")).unwrap(),
    )
    .unwrap();
    let e = suite::render_published(&pub_dir, &dir.path().join("pub_out"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("table7_1_bias_cosines.csv") && e.contains("cannot read"),
        "{e}"
    );
    // A non-number in a drift cell names file and line.
    let dr = pub_dir.join("table6_rel_delta.csv");
    let text = std::fs::read_to_string(&dr)
        .unwrap()
        .replace("frozen_te,frozen_te,0.813", "frozen_te,frozen_te,0.8l3");
    std::fs::write(&dr, text).unwrap();
    let e = published::load_drift_csv(&dr).unwrap_err().to_string();
    assert!(
        e.contains("table6_rel_delta.csv:4") && e.contains("`0.8l3`"),
        "{e}"
    );
}

#[test]
fn published_drift_table_renders_through_the_generic_plot_path() {
    // The published table, serialised as a live probe would write it, renders identically.
    let dir = tempfile::tempdir().unwrap();
    let t = published::load_drift_csv(&data().join("table6_rel_delta.csv")).unwrap();
    let p = write_json(dir.path(), "drift.json", &serde_json::to_value(&t).unwrap());
    let back: DriftTable = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let a = DriftSteps::from_table(&t, &DriftStepsOptions::default(), "a", "").unwrap();
    let b = DriftSteps::from_table(&back, &DriftStepsOptions::default(), "a", "").unwrap();
    let (pa, pb) = (Plot::DriftSteps(a), Plot::DriftSteps(b));
    assert_eq!(pa.render_png("x").unwrap(), pb.render_png("x").unwrap());
}
