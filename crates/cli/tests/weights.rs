//! `sam3lab weights diff|cosines|ls` and `sam3lab surgery` end to end on generated checkpoints and on
//! the vendored tiny fixture (vs a copy with known changes).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use sam3lab_checkpoint::dtype::Dtype;
use sam3lab_checkpoint::{Checkpoint, SafetensorsWriter, TensorHeader};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sam3lab");

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny")
}

fn sam3lab(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run sam3lab");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = sam3lab(args);
    assert_eq!(code, 0, "sam3lab {args:?} failed:\n{out}\n{err}");
    out
}

fn json(p: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(k: &[&str]) -> BTreeSet<String> {
    k.iter().map(|s| s.to_string()).collect()
}

/// Copy `src` to `dst` (f32 tensors), mapping each tensor's values through `f(name, index, value)`.
fn rewrite(src: &Path, dst: &Path, f: impl Fn(&str, usize, f32) -> f32) {
    let c = Checkpoint::open(src).unwrap();
    let entries = c.all_entries();
    let hs: Vec<TensorHeader> = entries
        .iter()
        .map(|e| TensorHeader {
            name: e.stored_name.clone(),
            dtype: e.dtype,
            shape: e.shape.clone(),
        })
        .collect();
    let mut w = SafetensorsWriter::create(dst, &hs, None).unwrap();
    for e in entries {
        assert_eq!(e.dtype, Dtype::F32);
        let raw = c.raw_bytes(e).unwrap();
        let out: Vec<u8> = raw
            .chunks_exact(4)
            .enumerate()
            .flat_map(|(i, b)| {
                f(&e.name, i, f32::from_le_bytes(b.try_into().unwrap())).to_le_bytes()
            })
            .collect();
        w.write(&e.stored_name, &out).unwrap();
    }
    w.finish().unwrap();
}

fn write_vec(dst: &Path, tensors: &[(&str, Vec<f32>)]) {
    let hs: Vec<TensorHeader> = tensors
        .iter()
        .map(|(n, v)| TensorHeader {
            name: n.to_string(),
            dtype: Dtype::F32,
            shape: vec![v.len()],
        })
        .collect();
    let mut w = SafetensorsWriter::create(dst, &hs, None).unwrap();
    for (n, v) in tensors {
        let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        w.write(n, &b).unwrap();
    }
    w.finish().unwrap();
}

/// The fixture vs a copy whose presence head is doubled (Δ = base there, 0 elsewhere): the
/// presence_head group moves by exactly 1, transformer_decoder by its parameter share, the rest 0.
#[test]
fn diff_on_the_fixture_finds_exactly_the_changed_group() {
    let dir = tempfile::tempdir().unwrap();
    let base = fixture().join("weights.safetensors");
    let moved = dir.path().join("moved.safetensors");
    rewrite(&base, &moved, |n, _, v| {
        if n.starts_with("transformer.decoder.presence_token") {
            2.0 * v
        } else {
            v
        }
    });
    let out = dir.path().join("diff");
    let stdout = ok(&[
        "weights",
        "diff",
        base.to_str().unwrap(),
        moved.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stdout.contains("presence_head"), "{stdout}");
    let d = json(&out.join("diff.json"));
    assert_eq!(
        keys(&d),
        set(&["base", "other", "label", "group_rules", "tensors", "groups"])
    );
    assert_eq!(keys(&d["base"]), set(&["path", "sha256"]));
    assert_eq!(
        d["other"]["sha256"].as_str().unwrap(),
        sam3lab_checkpoint::sha256_file(&moved).unwrap()
    );
    assert_eq!(d["label"], "moved");
    let tensors = d["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 298); // fixture keys minus nothing skipped (freqs_cis not stored)
    assert_eq!(
        keys(&tensors[0]),
        set(&["name", "numel", "base_norm", "delta_norm", "rel_change"])
    );
    let groups = d["groups"].as_array().unwrap();
    assert_eq!(
        keys(&groups[0]),
        set(&[
            "group",
            "numel",
            "tensors",
            "rel_change_weighted",
            "rel_change_aggregate"
        ])
    );
    let g = |name: &str| groups.iter().find(|x| x["group"] == name).unwrap().clone();
    let close = |v: &Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-6;
    assert!(close(&g("presence_head")["rel_change_weighted"], 1.0));
    assert!(close(&g("presence_head")["rel_change_aggregate"], 1.0));
    // Independent: presence numel / decoder numel, from the tensor rows.
    let numel = |pred: &dyn Fn(&str) -> bool| -> f64 {
        tensors
            .iter()
            .filter(|t| pred(t["name"].as_str().unwrap()))
            .map(|t| t["numel"].as_f64().unwrap())
            .sum()
    };
    let share = numel(&|n| n.starts_with("transformer.decoder.presence_token"))
        / numel(&|n| n.starts_with("transformer.decoder."));
    assert!(close(
        &g("transformer_decoder")["rel_change_weighted"],
        share
    ));
    for other in [
        "vision_trunk",
        "text_encoder",
        "fusion_encoder",
        "decoder_ca_text",
        "dot_prod_scoring",
    ] {
        assert_eq!(
            g(other)["rel_change_weighted"].as_f64(),
            Some(0.0),
            "{other}"
        );
    }
    for f in ["tensors.csv", "groups.csv", "table.csv", "table.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let csv = std::fs::read_to_string(out.join("groups.csv")).unwrap();
    assert!(
        csv.starts_with("# sam3lab weights diff")
            && csv.contains("\ngroup,numel,tensors,rel_change_weighted,rel_change_aggregate\n")
    );
}

/// Several trajectories, each with its own start: per-label directories plus Table 6.1 as CSV and
/// as the heatmap JSON the figures crate reads; a groups file overrides the default groups.
#[test]
fn diff_with_several_trajectories_writes_table_6_1() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let names = [
        "transformer.decoder.layers.0.ca_text.in_proj_bias",
        "dot_prod_scoring.hs_proj.bias",
    ];
    let b = vec![1.0f32, -2.0, 0.5, 4.0];
    write_vec(
        &p("base.safetensors"),
        &[(names[0], b.clone()), (names[1], b.clone())],
    );
    // ft: ca_text ×2 (rel 1), scoring ×0.5 (rel 0.5); rec from ft: ca_text ×0.5 → rel 0.5 vs ft.
    let twice: Vec<f32> = b.iter().map(|x| 2.0 * x).collect();
    let half: Vec<f32> = b.iter().map(|x| 0.5 * x).collect();
    write_vec(
        &p("ft.safetensors"),
        &[(names[0], twice.clone()), (names[1], half.clone())],
    );
    write_vec(
        &p("rec.safetensors"),
        &[(names[0], b.clone()), (names[1], half)],
    );
    std::fs::write(
        p("groups.json"),
        r#"{"ca_text": "ca_text", "scoring": "^dot_prod_scoring\\.", "none": "^zzz"}"#,
    )
    .unwrap();
    let s = |x: &str| p(x).to_str().unwrap().to_string();
    let out = p("t61");
    ok(&[
        "weights",
        "diff",
        &s("base.safetensors"),
        &format!("frozen_te={}", s("ft.safetensors")),
        &format!("recovery={}:{}", s("ft.safetensors"), s("rec.safetensors")),
        "--groups",
        &s("groups.json"),
        "--out",
        out.to_str().unwrap(),
    ]);
    let t = json(&out.join("table.json"));
    assert_eq!(
        keys(&t),
        set(&["title", "source", "rows", "cols", "values"])
    );
    assert_eq!(t["rows"], serde_json::json!(["ca_text", "scoring", "none"]));
    assert_eq!(t["cols"], serde_json::json!(["frozen_te", "recovery"]));
    assert_eq!(
        t["values"],
        serde_json::json!([[1.0, 0.5], [0.5, 0.0], [null, null]])
    );
    let rec = json(&out.join("recovery/diff.json"));
    assert!(
        rec["base"]["path"]
            .as_str()
            .unwrap()
            .ends_with("ft.safetensors")
    );
    assert!(out.join("frozen_te/tensors.csv").is_file());
    let csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
    assert!(
        csv.contains("\ngroup,frozen_te,recovery\nca_text,1,0.5\nscoring,0.5,0\nnone,,\n"),
        "{csv}"
    );
}

/// Table 7.1 / Fig. 8.1 on a hand example (‖base‖ = 5): A = (10,0,0,0), T = (−5,5,0,0), C chained
/// from A's tip = (2.5,0,0,7).
#[test]
fn cosines_writes_the_issue_fields_and_hand_checked_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let name = "transformer.decoder.presence_token_out_norm.bias";
    let base = [0.0f32, 0.0, 0.0, 5.0];
    let add =
        |a: &[f32], d: [f32; 4]| -> Vec<f32> { a.iter().zip(d).map(|(x, y)| x + y).collect() };
    let a_to = add(&base, [10.0, 0.0, 0.0, 0.0]);
    write_vec(&p("base.safetensors"), &[(name, base.to_vec())]);
    write_vec(&p("a.safetensors"), &[(name, a_to.clone())]);
    write_vec(
        &p("t.safetensors"),
        &[(name, add(&base, [-5.0, 5.0, 0.0, 0.0]))],
    );
    write_vec(
        &p("c.safetensors"),
        &[(name, add(&a_to, [2.5, 0.0, 0.0, 7.0]))],
    );
    let s = |x: &str| p(x).to_str().unwrap().to_string();
    let out = p("cos");
    let stdout = ok(&[
        "weights",
        "cosines",
        "--param",
        &format!("detector.{name}"),
        "--base",
        &s("base.safetensors"),
        "--traj",
        &format!("A={}", s("a.safetensors")),
        "--traj",
        &format!("T={}:{}", s("base.safetensors"), s("t.safetensors")),
        "--traj",
        &format!("C={}:{}", s("a.safetensors"), s("c.safetensors")),
        "--axis",
        "A",
        "--toward",
        "T",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stdout.contains("presence_token_out_norm.bias"), "{stdout}");
    let c = json(&out.join("cosines.json"));
    assert_eq!(
        keys(&c),
        set(&[
            "param",
            "numel",
            "base",
            "base_norm",
            "trajectories",
            "cosine",
            "projection"
        ])
    );
    assert_eq!(c["param"], name);
    let tr = c["trajectories"].as_array().unwrap();
    assert_eq!(
        keys(&tr[0]),
        set(&["label", "from", "to", "delta_norm", "rel_base"])
    );
    assert_eq!(tr[0]["rel_base"].as_f64(), Some(2.0));
    assert!((c["cosine"][0][1].as_f64().unwrap() + 0.5f64.sqrt()).abs() < 1e-12);
    assert_eq!(keys(&c["projection"]), set(&["axis", "toward", "points"]));
    let pt = &c["projection"]["points"][2];
    assert_eq!(keys(pt), set(&["label", "origin", "tip"]));
    assert_eq!(
        (pt["origin"][0].as_f64(), pt["origin"][1].as_f64()),
        (Some(2.0), Some(0.0))
    );
    assert!((pt["tip"][0].as_f64().unwrap() - 2.5).abs() < 1e-12);
    let heat = json(&out.join("cosine_table.json"));
    assert_eq!(heat["rows"], serde_json::json!(["A", "T", "C"]));
    assert!(
        std::fs::read_to_string(out.join("cosines.csv"))
            .unwrap()
            .contains("label,from,to,delta_norm,rel_base,cos_A,cos_T,cos_C")
    );
}

#[test]
fn surgery_on_the_fixture_writes_a_checkpoint_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let into = fixture().join("weights.safetensors");
    let donor = dir.path().join("donor.safetensors");
    rewrite(&into, &donor, |_, i, v| v + 0.001 * (i % 7) as f32);
    let out = dir.path().join("patched.safetensors");
    let cfg = fixture().join("config.json");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let stdout = ok(&[
        "surgery",
        "--into",
        &s(&into),
        "--donor",
        &s(&donor),
        "--heads",
        "decoder.layers.1.ca_text.head.0,decoder.layers.1.ca_text.head.2",
        "--heads",
        "trunk.blocks.0.attn.head.1",
        "--alpha",
        "1",
        "--config",
        &s(&cfg),
        "--out",
        &s(&out),
    ]);
    assert!(
        stdout.contains("decoder.layers.1.ca_text.head.2"),
        "{stdout}"
    );
    let m = json(&dir.path().join("patched.manifest.json"));
    assert_eq!(m["heads"].as_array().unwrap().len(), 3);
    assert_eq!(
        m["output"]["sha256"].as_str().unwrap(),
        sam3lab_checkpoint::sha256_file(&out).unwrap()
    );
    assert_eq!(m["config"]["path"].as_str().unwrap(), s(&cfg));
    assert_eq!(m["head_counts"]["decoder"], 4);
    // Decoder head 2 of 4 with width 32 (hd 8): rows 16..24, 48..56, 80..88; cols 16..24.
    let h = &m["heads"][1]["slices"];
    assert_eq!(
        h[0]["ranges"],
        serde_json::json!([[16, 24], [48, 56], [80, 88]])
    );
    assert_eq!(h[2]["ranges"], serde_json::json!([[16, 24]]));
    // The moved head equals the donor there; the shared out-proj bias stays INTO's.
    let (o, d, i) = (
        Checkpoint::open(&out).unwrap(),
        Checkpoint::open(&donor).unwrap(),
        Checkpoint::open(&into).unwrap(),
    );
    let key = "transformer.decoder.layers.1.ca_text.in_proj_bias";
    let (ov, dv, iv) = (
        o.read_f32(key).unwrap(),
        d.read_f32(key).unwrap(),
        i.read_f32(key).unwrap(),
    );
    for k in 0..96 {
        let head = (k % 32) / 8;
        let want = if head == 0 || head == 2 { dv[k] } else { iv[k] };
        assert_eq!(ov[k].to_bits(), want.to_bits(), "{key}[{k}]");
    }
    let bias = "transformer.decoder.layers.1.ca_text.out_proj.bias";
    assert_eq!(o.read_f32(bias).unwrap(), i.read_f32(bias).unwrap());
    // α = 0 reproduces every tensor of INTO bit for bit.
    let zero = dir.path().join("zero.safetensors");
    ok(&[
        "surgery",
        "--into",
        &s(&into),
        "--donor",
        &s(&donor),
        "--heads",
        "seg.prompt_cross_attn.head.3",
        "--alpha",
        "0",
        "--config",
        &s(&cfg),
        "--out",
        &s(&zero),
    ]);
    let z = Checkpoint::open(&zero).unwrap();
    for e in i.all_entries() {
        let ze = z.get(&e.name).unwrap();
        assert_eq!(
            z.raw_bytes(ze).unwrap(),
            i.raw_bytes(e).unwrap(),
            "{}",
            e.name
        );
    }
}

#[test]
fn weights_ls_lists_normalised_names() {
    let out = ok(&[
        "weights",
        "ls",
        fixture().join("weights.safetensors").to_str().unwrap(),
        "--sha256",
    ]);
    assert!(
        out.contains("transformer.decoder.presence_token_out_norm.bias\tF32\t[32]"),
        "{out}"
    );
    assert!(out.contains(&format!(
        "sha256\t{}",
        sam3lab_checkpoint::sha256_file(&fixture().join("weights.safetensors")).unwrap()
    )));
}

#[test]
fn bad_inputs_exit_2_and_name_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let w = fixture().join("weights.safetensors");
    let w = w.to_str().unwrap();
    let out = dir.path().join("o");
    let o = out.to_str().unwrap();
    // Missing parameter → nearest names.
    let (code, _, err) = sam3lab(&[
        "weights",
        "cosines",
        "--param",
        "transformer.decoder.presence_token_out_norm.bais",
        "--base",
        w,
        "--traj",
        &format!("a={w}"),
        "--out",
        o,
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no parameter named 'transformer.decoder.presence_token_out_norm.bais'")
            && err.contains("nearest: transformer.decoder.presence_token_out_norm.bias"),
        "{err}"
    );
    // Truncated checkpoint.
    let cut = dir.path().join("cut.safetensors");
    let bytes = std::fs::read(w).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, _, err) = sam3lab(&["weights", "diff", w, cut.to_str().unwrap(), "--out", o]);
    assert_eq!(code, 2);
    assert!(
        err.contains("cut.safetensors") && err.contains("truncated"),
        "{err}"
    );
    assert!(!out.exists(), "no output for a failed diff");
    // Checkpoints of different models (shape mismatch) and unknown heads.
    let small = dir.path().join("small.safetensors");
    write_vec(&small, &[("transformer.decoder.norm.weight", vec![1.0; 3])]);
    let (code, _, err) = sam3lab(&["weights", "diff", w, small.to_str().unwrap(), "--out", o]);
    assert_eq!(code, 2);
    assert!(
        err.contains("small.safetensors") && err.contains("missing"),
        "{err}"
    );
    let (code, _, err) = sam3lab(&[
        "surgery",
        "--into",
        w,
        "--donor",
        w,
        "--heads",
        "decoder.layers.1.ca_txt.head.0",
        "--alpha",
        "1",
        "--out",
        &format!("{o}.safetensors"),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown head 'decoder.layers.1.ca_txt.head.0'")
            && err.contains("did you mean decoder.layers.1.ca_text.head.0"),
        "{err}"
    );
    // A layer the fixture does not have (it has 2 decoder layers).
    let (code, _, err) = sam3lab(&[
        "surgery",
        "--into",
        w,
        "--donor",
        w,
        "--heads",
        "decoder.layers.5.ca_text.head.0",
        "--alpha",
        "1",
        "--out",
        &format!("{o}.safetensors"),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("transformer.decoder.layers.5.ca_text.in_proj_weight"),
        "{err}"
    );
}

#[test]
fn weights_convert_writes_a_safetensors_copy_and_names_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture().join("weights.safetensors");
    let out = dir.path().join("sub/converted.safetensors");
    let msg = ok(&["weights", "convert", src.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(msg.contains("converted.safetensors") && msg.contains("sha256"), "{msg}");
    // the same tensors, listed the same way (the segment / probe commands then mmap this file)
    let ls = |p: &Path| ok(&["weights", "ls", p.to_str().unwrap()]);
    assert_eq!(ls(&out), ls(&src));
    // a file that is not a checkpoint: exit 2, named, no output left behind
    let junk = dir.path().join("junk.pt");
    std::fs::write(&junk, b"PK\x03\x04 not a zip").unwrap();
    let bad_out = dir.path().join("bad.safetensors");
    let (code, _, err) = sam3lab(&["weights", "convert", junk.to_str().unwrap(), bad_out.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("junk.pt"), "{err}");
    assert!(!bad_out.exists());
}
