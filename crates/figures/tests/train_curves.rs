//! Training curves from a `sam3lab train` loss.csv: every logged value lands in its term's panel.

use sam3lab_figures::suite::{Kind, LiveOptions, render_from_file};

#[test]
fn loss_csv_renders_one_panel_per_term_with_the_logged_values() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("loss.csv");
    std::fs::write(
        &csv,
        "# recipe: r.toml\n# seed: 0\nstep,lr,grad_norm,ce_f1,core_loss,loss_ce,presence_loss\n1,0,3.5,0.1,200.5,0.07,0.43\n2,0.0001,3.1,0.2,180.25,0.06,0.41\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    render_from_file(Kind::TrainCurves, &csv, &LiveOptions::default(), &out).unwrap();
    let side: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("train_curves_loss.json")).unwrap()).unwrap();
    let text = side.to_string();
    assert!(out.join("train_curves_loss.png").is_file() && out.join("train_curves_loss.svg").is_file());
    for want in ["core_loss", "loss_ce", "presence_loss", "200.5", "180.25", "0.41"] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
    assert!(!text.contains("\"ce_f1\""), "metrics are not drawn");
    // Not a loss log: a clear error naming the file.
    std::fs::write(&csv, "step,foo\n1,2\n").unwrap();
    let e = render_from_file(Kind::TrainCurves, &csv, &LiveOptions::default(), &out).unwrap_err().to_string();
    assert!(e.contains("loss.csv") && e.contains("loss"), "{e}");
}
