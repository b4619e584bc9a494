//! `sam3lab figures` end to end: the published suite regenerates the committed `figures/post02/`
//! byte for byte, live JSON renders, and bad inputs exit 2 naming the file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn sam3lab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sam3lab"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn published_figures_match_the_committed_ones() {
    let out = tempfile::tempdir().unwrap();
    // Sources are written relative to --root, the repository: the same bytes wherever the
    // repository and the temporary directory live (without it, the default root is the deepest
    // directory holding both, which depends on the machine's layout).
    let repo = root();
    let o = sam3lab(&[
        "figures",
        "--data",
        "data/post02",
        "--root",
        repo.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let mut names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 18, "{names:?}");
    for ext in ["png", "svg", "json"] {
        assert_eq!(names.iter().filter(|n| n.ends_with(ext)).count(), 6);
    }
    // Regenerating gives exactly what is committed (run `sam3lab figures --data data/post02
    // --out figures/post02` from the repository root after changing the renderers).
    for n in &names {
        let fresh = std::fs::read(out.path().join(n)).unwrap();
        let committed = std::fs::read(root().join("figures/post02").join(n)).unwrap_or_else(|_| {
            panic!("figures/post02/{n} is missing; re-render the committed figures")
        });
        assert!(
            fresh == committed,
            "figures/post02/{n} is stale; re-render the committed figures"
        );
    }
}

#[test]
fn live_cosines_json_renders_fig81_and_heatmap() {
    let dir = tempfile::tempdir().unwrap();
    let ck = |p: &str| serde_json::json!({"path": p, "sha256": "cd".repeat(32)});
    // Shape of `sam3lab weights cosines` output; generated numbers.
    let cos = serde_json::json!({
        "param": "transformer.decoder.presence_token_out_norm.bias", "numel": 256, "base": ck("base.pt"), "base_norm": 2.0,
        "trajectories": [
            {"label": "ft", "from": ck("base.pt"), "to": ck("ft.pt"), "delta_norm": 2.0, "rel_base": 1.0},
            {"label": "fix", "from": ck("base.pt"), "to": ck("fix.pt"), "delta_norm": 3.0, "rel_base": 1.5},
            {"label": "more", "from": ck("ft.pt"), "to": ck("more.pt"), "delta_norm": 1.0, "rel_base": 0.5}],
        "cosine": [[1.0, -0.5, 0.8], [-0.5, 1.0, null], [0.8, null, 1.0]],
        "projection": {"axis": "ft", "toward": "fix", "points": [
            {"label": "ft", "origin": [0.0, 0.0], "tip": [1.0, 0.0]},
            {"label": "fix", "origin": [0.0, 0.0], "tip": [-0.75, 1.299]},
            {"label": "more", "origin": [1.0, 0.0], "tip": [1.4, -0.2]}]}});
    let f = dir.path().join("cosines.json");
    std::fs::write(&f, cos.to_string()).unwrap();
    let out = dir.path().join("figs");
    for kind in ["fig81", "heatmap"] {
        let o = sam3lab(&[
            "figures",
            "--from",
            f.to_str().unwrap(),
            "--kind",
            kind,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{kind}: {}", text(&o));
        let png = out.join(format!("{kind}_cosines.png"));
        let (w, h) = image::image_dimensions(&png).unwrap();
        let side: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("{kind}_cosines.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(
            (w as u64, h as u64),
            (
                side["width"].as_u64().unwrap(),
                side["height"].as_u64().unwrap()
            )
        );
        assert!(
            std::fs::metadata(out.join(format!("{kind}_cosines.svg")))
                .unwrap()
                .len()
                > 1000
        );
    }
}

#[test]
fn live_presence_bars_with_custom_name() {
    let dir = tempfile::tempdir().unwrap();
    let bars = serde_json::json!({"prompts": ["p1", "p2", "p3"],
        "series": [{"label": "ft (generated)", "role": "finetune", "values": [1.0, 0.99, 0.98]},
                   {"label": "base (generated)", "role": "base", "values": [0.01, 0.02, 0.0]}], "threshold": 0.3});
    let f = dir.path().join("bars.json");
    std::fs::write(&f, bars.to_string()).unwrap();
    let out = dir.path().join("o");
    let o = sam3lab(&[
        "figures",
        "--from",
        f.to_str().unwrap(),
        "--kind",
        "fig11",
        "--name",
        "gate",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.join("gate.png").exists()
            && out.join("gate.svg").exists()
            && out.join("gate.json").exists()
    );
}

#[test]
fn bad_inputs_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let bad = dir.path().join("truncated.json");
    std::fs::write(&bad, "{\"param\": \"p\", \"trajectories\": [").unwrap();
    let o = sam3lab(&[
        "figures",
        "--from",
        bad.to_str().unwrap(),
        "--kind",
        "fig81",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("truncated.json"), "{}", text(&o));
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().count() == 0);

    // A published table with a column renamed.
    let data = dir.path().join("post02");
    std::fs::create_dir(&data).unwrap();
    for e in std::fs::read_dir(root().join("data/post02")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), data.join(e.file_name())).unwrap();
    }
    let t71 = data.join("table7_1_bias_cosines.csv");
    let s = std::fs::read_to_string(&t71)
        .unwrap()
        .replace(",delta_norm_rel_base,", ",norm,");
    std::fs::write(&t71, s).unwrap();
    let o = sam3lab(&[
        "figures",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let msg = text(&o);
    assert!(
        msg.contains("table7_1_bias_cosines.csv")
            && msg.contains("missing column `delta_norm_rel_base`"),
        "{msg}"
    );

    // --from needs --kind; --data and --from exclude each other.
    let o = sam3lab(&[
        "figures",
        "--from",
        bad.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = sam3lab(&[
        "figures",
        "--data",
        "data/post02",
        "--from",
        "x.json",
        "--kind",
        "fig81",
        "--out",
        "o",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

/// Writes a small f32 safetensors checkpoint.
fn write_ckpt(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// The three-command workflow on generated checkpoints: `weights diff` and `weights cosines`
/// output plots as is, and each sidecar holds the producer's numbers.
#[test]
fn weights_outputs_plot_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let bias = "transformer.decoder.presence_token_out_norm.bias";
    let base: Vec<f32> = vec![1.0, 0.5, -0.5, 0.25, 0.0, 0.1, 0.2, -0.3];
    let add = |a: &[f32], d: [f32; 8]| a.iter().zip(d).map(|(x, y)| x + y).collect::<Vec<f32>>();
    let ft = add(&base, [0.5, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 0.1]);
    let po = add(&base, [-0.3, 0.6, 0.2, 0.1, 0.0, 0.2, 0.0, 0.0]);
    let rec = add(&ft, [0.2, -0.1, 0.0, 0.1, 0.0, 0.0, 0.05, 0.0]);
    let w: Vec<f32> = (0..16).map(|i| 0.1 * i as f32).collect();
    for (name, b, scale) in [
        ("base", &base, 1.0f32),
        ("ft", &ft, 1.1),
        ("po", &po, 1.2),
        ("rec", &rec, 1.05),
    ] {
        let w2: Vec<f32> = w.iter().map(|x| x * scale).collect();
        write_ckpt(
            &dir.path().join(format!("{name}.safetensors")),
            &[
                (bias, vec![8], b.clone()),
                (
                    "transformer.encoder.layers.0.linear1.weight",
                    vec![4, 4],
                    w2,
                ),
            ],
        );
    }
    let (b, f, o, r) = (
        p("base.safetensors"),
        p("ft.safetensors"),
        p("po.safetensors"),
        p("rec.safetensors"),
    );
    let o1 = sam3lab(&[
        "weights",
        "diff",
        &b,
        &format!("frozen_te={f}"),
        &format!("presence_only={o}"),
        &format!("recovery={f}:{r}"),
        "--out",
        &p("diff"),
    ]);
    assert!(o1.status.success(), "{}", text(&o1));
    let o2 = sam3lab(&[
        "weights",
        "cosines",
        "--param",
        bias,
        "--base",
        &b,
        "--traj",
        &format!("frozen_te={f}"),
        "--traj",
        &format!("presence_only={o}"),
        "--traj",
        &format!("recovery={f}:{r}"),
        "--out",
        &p("cos"),
    ]);
    assert!(o2.status.success(), "{}", text(&o2));
    let read = |path: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let figs = p("figs");
    for (from, kind, stem) in [
        (p("diff/table.json"), "heatmap", "t61"),
        (p("cos/cosine_table.json"), "heatmap", "t71"),
        (p("cos/cosines.json"), "heatmap", "t71b"),
        (p("cos/cosines.json"), "fig81", "f81"),
    ] {
        let o = sam3lab(&[
            "figures", "--from", &from, "--kind", kind, "--name", stem, "--out", &figs,
        ]);
        assert!(o.status.success(), "{from} {kind}: {}", text(&o));
    }
    let side = |stem: &str| read(&format!("{figs}/{stem}.json"));
    assert_eq!(
        side("t61")["data"]["values"],
        read(&p("diff/table.json"))["values"]
    );
    assert_eq!(
        side("t71")["data"]["values"],
        read(&p("cos/cosine_table.json"))["values"]
    );
    assert_eq!(
        side("t71b")["data"]["values"],
        read(&p("cos/cosines.json"))["cosine"]
    );
    assert_eq!(
        side("f81")["data"]["points"],
        read(&p("cos/cosines.json"))["projection"]["points"]
    );
    // recovery is drawn from frozen_te's tip.
    let pts = side("f81")["data"]["points"].clone();
    assert_eq!(pts[2]["origin"], pts[0]["tip"]);
}
