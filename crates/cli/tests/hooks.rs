//! `sam3lab hooks list` and `sam3lab run` end to end: listings for the released config and the
//! shipped fixture, a captured cache whose values equal the reference's activations and whose
//! manifest identifies checkpoint, config, image, prompt and spec; bad names exit 2 naming the
//! nearest valid points and leave no file behind.

use std::collections::BTreeMap;
use std::process::Output;

use sam3lab_model::hooks::{ActivationCache, CacheManifest};

mod common;
use common::{fixture, fixture_png, read_st, s, sam3lab};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn list_json(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["hooks", "list", "--json"];
    a.extend_from_slice(args);
    let o = sam3lab(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn shapes(v: &serde_json::Value) -> BTreeMap<String, Vec<usize>> {
    v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), serde_json::from_value(p["shape"].clone()).unwrap()))
        .collect()
}

#[test]
fn list_the_released_config_names_every_point_the_post_uses() {
    let o = sam3lab(&["hooks", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    // SAM3: 72² = 5184 image tokens, d = 256, 1 + 200 decoder tokens.
    for (name, shape) in [
        ("fusion.layers.4", "[1, 5184, 256]"),
        ("decoder.layers.5.q0", "[1, 256]"),
        ("decoder.layers.5.mean", "[1, 256]"),
        ("decoder.layers.4.ca_text.head.0", "[1, 201, 256]"),
        ("presence_logit", "[1, 1]"),
    ] {
        let line = table.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_else(|| panic!("{name} not listed"));
        assert!(line.contains(shape), "{name}: {line}");
    }
    let v = list_json(&[]);
    let n = v["count"].as_u64().unwrap() as usize;
    assert_eq!(v["points"].as_array().unwrap().len(), n);
    // One table row per point, plus the header, the column titles and the footer.
    assert_eq!(table.lines().count(), n + 3);
    assert_eq!(v["config"]["decoder"]["num_layers"], 6);
    // Every point described.
    assert!(v["points"].as_array().unwrap().iter().all(|p| p["doc"].as_str().unwrap().len() >= 10));
}

#[test]
fn fixture_and_config_listings_agree_and_filters_validate() {
    let dir = tempfile::tempdir().unwrap();
    let by_fixture = list_json(&["--fixture", s(&fixture())]);
    // The same config as a bare model config file.
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture().join("config.json")).unwrap()).unwrap();
    let bare = dir.path().join("model.json");
    std::fs::write(&bare, serde_json::to_vec(&cfg["model"]).unwrap()).unwrap();
    let by_config = list_json(&["--config", s(&bare)]);
    assert_eq!(shapes(&by_fixture), shapes(&by_config));
    assert_eq!(shapes(&by_fixture)["decoder.layers.1.q0"], vec![1, 32]);

    let f = list_json(&["--fixture", s(&fixture()), "--filter", "decoder.layers.*.q0", "--filter", "presence_logit"]);
    let names: Vec<String> = shapes(&f).into_keys().collect();
    assert_eq!(names, ["decoder.layers.0.q0", "decoder.layers.1.q0", "presence_logit"]);

    for (bad, want) in [("decoder.layers.1.qo", "decoder.layers.1.q0"), ("fusion.layer.*", "fusion.layers.")] {
        let o = sam3lab(&["hooks", "list", "--fixture", s(&fixture()), "--filter", bad]);
        assert_eq!(o.status.code(), Some(2));
        let e = stderr(&o);
        assert!(e.contains(bad) && e.contains("nearest valid names") && e.contains(want), "{e}");
    }
    let o = sam3lab(&["hooks", "list", "--fixture", s(&fixture()), "--config", s(&bare)]);
    assert_eq!(o.status.code(), Some(2), "--fixture and --config together");
    let o = sam3lab(&["hooks", "list", "--fixture", s(dir.path())]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("config.json"), "{}", stderr(&o));
}

/// Reference tensor in the hook layout for the few keys compared here (batch 1: `S,B,d` → `B,S,d`
/// is a reshape).
fn expected(key: &str) -> (Vec<usize>, Vec<f32>) {
    let e = read_st(&fixture().join("expected.safetensors"));
    let (shape, v, _) = &e[key];
    (shape.clone(), v.clone())
}

#[test]
fn run_captures_reference_values_with_a_complete_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let png = fixture_png(dir.path());
    let out = dir.path().join("caps/run.safetensors");
    let o = sam3lab(&[
        "run", "--ckpt", s(&fixture()), "--image", s(&png), "--prompt", "a red cat",
        "--capture", "decoder.layers.*.q0", "fusion.layers.1", "presence_logit", "decoder.layers.0.ca_text.head.*",
        "--out", s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c = read_st(&out);
    let mut names: Vec<&str> = c.keys().map(|k| k.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "decoder.layers.0.ca_text.head.0", "decoder.layers.0.ca_text.head.1", "decoder.layers.0.ca_text.head.2",
            "decoder.layers.0.ca_text.head.3", "decoder.layers.0.q0", "decoder.layers.1.q0", "fusion.layers.1", "presence_logit"
        ]
    );
    // Values: the PNG path (load → preprocess → model) reproduces the reference's activations.
    for (name, key) in [("presence_logit", "decoder.presence_logit"), ("fusion.layers.1", "fusion.layers.1")] {
        let (shape, want) = expected(key);
        let (got_shape, got, _) = &c[name];
        assert_eq!(got_shape, &shape, "{name}");
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4 + 1e-3 * w.abs(), "{name}: {g} vs {w}");
        }
    }
    // q0 of the last layer is row 0 of the reference's seq-first layer output (1+Q, B, d).
    let (shape, layer_out) = expected("decoder.layers.1.out");
    let q0 = &c["decoder.layers.1.q0"].1;
    assert_eq!(q0.len(), shape[2]);
    for (g, w) in q0.iter().zip(&layer_out[..shape[2]]) {
        assert!((g - w).abs() <= 1e-4 + 1e-3 * w.abs(), "q0: {g} vs {w}");
    }

    // The manifest, in the sidecar and inside the file, identifies the run.
    let m: CacheManifest = serde_json::from_slice(&std::fs::read(out.with_extension("json")).unwrap()).unwrap();
    let loaded = ActivationCache::load(&out, &burn::prelude::Device::flex()).unwrap();
    assert_eq!(loaded.manifest, m);
    assert_eq!(m.checkpoint_sha256, sam3lab_model::checkpoint::sha256_file(&fixture().join("weights.safetensors")).unwrap());
    let cfg = sam3lab_model::Sam3Config::from_file(&fixture().join("config.json")).unwrap();
    assert_eq!(m.config, serde_json::to_value(&cfg).unwrap());
    assert_eq!(m.image.path, s(&png));
    assert_eq!(m.image.sha256, sam3lab_model::hooks::sha256_hex(&std::fs::read(&png).unwrap()));
    assert_eq!(m.prompt, "a red cat");
    let pats: Vec<&str> = m.hook_spec.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(pats, ["decoder.layers.*.q0", "fusion.layers.1", "presence_logit", "decoder.layers.0.ca_text.head.*"]);
    assert!(m.hook_spec.iter().all(|(_, a)| a == "Capture"));
    assert_eq!(m.sam3lab_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(m.seed, None);
    assert_eq!(m.extra["prompt_token_ids"][0], 49406);
    // Capture order is forward order.
    let order: Vec<&str> = loaded.names_in_capture_order().collect();
    assert_eq!(order.first(), Some(&"fusion.layers.1"));
    assert_eq!(order.last(), Some(&"presence_logit"));

    // A box prompt adds a geometry token: compare with the fixture's box-prompt pass.
    let out2 = dir.path().join("box.safetensors");
    let o = sam3lab(&[
        "run", "--ckpt", s(&fixture()), "--image", s(&png), "--prompt", "a red cat", "--box", "0.45,0.55,0.3,0.4",
        "--capture", "geometry.out", "--out", s(&out2),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (shape, want) = expected("box_prompt.geometry.out"); // (S=2, B=1, d)
    let (got_shape, got, _) = &read_st(&out2)["geometry.out"];
    assert_eq!(got_shape, &vec![1, shape[0], shape[2]]);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-4 + 1e-3 * w.abs(), "box geometry.out: {g} vs {w}");
    }
}

#[test]
fn run_rejects_bad_names_and_inputs_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let png = fixture_png(dir.path());
    let out = dir.path().join("out/c.safetensors");
    let (fx, json_out) = (fixture(), dir.path().join("c.json"));
    let base = ["run", "--ckpt", s(&fx), "--image", s(&png), "--prompt", "a red cat"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--capture", "decoder.layers.1.qo", "--out", s(&out)], "decoder.layers.1.q0"),
        (vec!["--capture", "presence_logit", "decoder.layers.*.q1", "--out", s(&out)], "matches no hook point"),
        (vec!["--capture", "fusion.layers.9", "--out", s(&out)], "fusion.layers.1"),
        (vec!["--capture", "Bad-Name", "--out", s(&out)], "Bad-Name"),
        (vec!["--capture", "**", "--max-gib", "0.0001", "--out", s(&out)], "--max-gib"),
        (vec!["--capture", "presence_logit", "--out", s(&json_out)], ".safetensors"),
        (vec!["--capture", "presence_logit", "--box", "0.5,0.5,2,0.1", "--out", s(&out)], "--box"),
    ];
    for (extra, want) in cases {
        let mut a: Vec<&str> = base.to_vec();
        a.extend(extra.iter().copied());
        let o = sam3lab(&a);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{extra:?}: {}", stderr(&o));
    }
    let o = sam3lab(&["run", "--ckpt", s(&fixture()), "--image", s(&dir.path().join("nope.png")), "--prompt", "a cat", "--capture", "scores", "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope.png"), "{}", stderr(&o));
    assert!(!out.exists() && !dir.path().join("out").exists(), "a failed run left files behind");
}

#[test]
fn bench_hooks_runs_every_case() {
    let o = sam3lab(&["bench", "hooks", "--fixture", s(&fixture()), "--iters", "1", "--warmup", "0"]);
    // 0 = within budget, 1 = over (one iteration is all noise): both mean it ran.
    assert!(matches!(o.status.code(), Some(0 | 1)), "{}", stderr(&o));
    let t = stdout(&o);
    for case in ["none", "empty", "one", "all-no-heads", "all"] {
        assert!(t.lines().any(|l| l.split_whitespace().next() == Some(case)), "{case} missing:\n{t}");
    }
}
