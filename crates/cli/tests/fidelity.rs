//! Probe fidelity end to end on the shipped fixture: `probe drift`'s main table is the per-concept
//! reading, `eval predict` scores interventions (hook specs) on a fixed seeded subsample, and
//! `probe presence` writes Fig 1.1's input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};


mod common;
use common::{fails, fixture, json, ok, path_string as s};

#[test]
fn drift_json_is_per_concept_and_drift_pair_mean_json_the_pair_mean() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let fx = s(&fixture());
    ok(&["probe", "demo-inputs", "--out", &s(d), "--images", "3", "--perturb", &format!("pert={fx}"), "--noise", "0.05"]);
    let out = d.join("drift");
    ok(&[
        "probe", "drift", "--base", &fx, "--ckpt", &format!("pert={}", s(&d.join("pert"))), "--images", &s(&d.join("images.txt")),
        "--prompts", &format!("shapes={}", s(&d.join("shapes.txt"))), "--points", "fusion.layers.1,decoder.layers.1.q0", "--out", &s(&out),
    ]);
    // Recompute both readings from the per-input norms in drift_pairs.csv.
    let csv = std::fs::read_to_string(out.join("drift_pairs.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), "checkpoint,point,group,image,prompt,ref_norm,delta_norm,rel_delta");
    // (point, prompt) → [(ref², Δ²)]
    let mut by: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let (r, dn): (f64, f64) = (f[5].parse().unwrap(), f[6].parse().unwrap());
        by.entry((f[1].to_string(), f[4].to_string())).or_default().push((r * r, dn * dn));
    }
    let main = json(&out.join("drift.json"));
    let alt = json(&out.join("drift_pair_mean.json"));
    assert_eq!(main["metric"], "rel_delta");
    assert_eq!(alt["metric"], "rel_delta_pair_mean");
    let mut differ = false;
    for point in ["fusion.layers.1", "decoder.layers.1.q0"] {
        let inputs: Vec<&Vec<(f64, f64)>> = by.iter().filter(|((p, _), _)| p == point).map(|(_, v)| v).collect();
        assert_eq!(inputs.len(), 4, "four shape prompts");
        let per_concept = inputs
            .iter()
            .map(|v| (v.iter().map(|x| x.1).sum::<f64>() / v.iter().map(|x| x.0).sum::<f64>()).sqrt())
            .sum::<f64>()
            / inputs.len() as f64;
        let rels: Vec<f64> = inputs.iter().flat_map(|v| v.iter().map(|(r2, d2)| (d2 / r2).sqrt())).collect();
        let pair_mean = rels.iter().sum::<f64>() / rels.len() as f64;
        let got = main["rows"][0]["values"][point]["shapes"].as_f64().unwrap();
        let got_alt = alt["rows"][0]["values"][point]["shapes"].as_f64().unwrap();
        assert!((got - per_concept).abs() < 1e-9, "{point}: drift.json {got} vs per-concept {per_concept}");
        assert!((got_alt - pair_mean).abs() < 1e-9, "{point}: drift_pair_mean.json {got_alt} vs {pair_mean}");
        differ |= (per_concept - pair_mean).abs() > 1e-9;
    }
    assert!(differ, "the two readings differ on these inputs, so the check above tells them apart");
    let prompts = std::fs::read_to_string(out.join("drift_prompts.csv")).unwrap();
    assert_eq!(prompts.lines().count(), 1 + 2 * 4);
    // The figures read the main table.
    ok(&["figures", "--from", &s(&out.join("drift.json")), "--kind", "heatmap", "--out", &s(&d.join("figs"))]);
}

/// Two PNG images × three phrases for the tiny fixture, all instance-exhaustive, no instances.
fn predict_setup(dir: &Path) -> PathBuf {
    use sam3lab_eval::image::{Rgb, RgbImage};
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut entries = Vec::new();
    for (i, (w, h)) in [(64u32, 48u32), (40, 40)].into_iter().enumerate() {
        RgbImage::from_fn(w, h, |x, y| Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 3) as u8])).save(images.join(format!("im{i}.png"))).unwrap();
        for (j, phrase) in ["a cat", "a red ball", "a tree"].into_iter().enumerate() {
            entries.push(serde_json::json!({
                "id": 10 * i + j, "file_name": format!("im{i}.png"), "text_input": phrase,
                "height": h, "width": w, "is_instance_exhaustive": 1,
            }));
        }
    }
    let gt = serde_json::json!({"images": entries, "annotations": [], "categories": [{"id": 1, "name": "object"}]});
    let path = dir.join("gt.json");
    std::fs::write(&path, serde_json::to_vec(&gt).unwrap()).unwrap();
    path
}

fn preds(p: &Path) -> Vec<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn eval_predict_scores_hook_interventions_on_a_fixed_subsample() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let gt = predict_setup(d);
    let (fx, images) = (s(&fixture()), s(&d.join("images")));
    let predict = |out: &str, extra: &[&str]| {
        let mut args = vec!["eval", "predict", "--ckpt", &fx, "--gt", gt.to_str().unwrap(), "--images", &images, "--threshold", "0"];
        let out = s(&d.join(out));
        args.extend(["--out", &out]);
        args.extend(extra);
        ok(&args);
        d.join(out)
    };
    // Threshold 0: every query is written, so any change of a score shows in the file.
    let plain = predict("plain.json", &[]);
    let zeroed = predict("zero.json", &["--hook", "zero:presence_logit"]);
    let (a, b) = (std::fs::read(&plain).unwrap(), std::fs::read(&zeroed).unwrap());
    assert_ne!(a, b, "zeroing the presence logit changes the predictions");
    // σ(0) = 0.5 gates every query: no score above 0.5.
    let z = preds(&zeroed);
    assert_eq!(z.len(), preds(&plain).len());
    assert!(z.iter().all(|p| p["score"].as_f64().unwrap() <= 0.5), "scores are σ(logit)·σ(0)");
    let meta = json(&d.join("zero.json.meta.json"));
    assert_eq!(meta["intervention"][0]["kind"], "zero");
    assert_eq!(meta["intervention"][0]["points"], serde_json::json!(["presence_logit"]));
    // Patching a checkpoint's own values back in, and steering with α = 0, change nothing.
    let selfpatch = predict("self.json", &["--hook", &format!("patch:decoder.layers.1.q0={fx}")]);
    assert_eq!(std::fs::read(&selfpatch).unwrap(), a, "self-patch = plain forward");
    // Patching from another checkpoint changes them.
    ok(&["probe", "demo-inputs", "--out", &s(&d.join("demo")), "--images", "1", "--perturb", &format!("pert={fx}"), "--noise", "0.05"]);
    let pert = s(&d.join("demo/pert"));
    let patched = predict("patch.json", &["--hook", &format!("patch:decoder.layers.1.q0={pert}")]);
    assert_ne!(std::fs::read(&patched).unwrap(), a, "patching q0 from a perturbed copy moves the scores");
    let meta = json(&d.join("patch.json.meta.json"));
    assert_eq!(meta["intervention"][0]["source"]["sha256"].as_str().unwrap().len(), 64);
    // Image-encoder points are patched once per image (the source's image encoded under its
    // captures, the target's under the edits), text-encoder points per noun phrase: a self-patch of
    // both is the plain forward, a patch from the perturbed copy is not.
    let own = format!("patch:neck.fpn.{{0,1,2}}={fx}");
    let own_text = format!("patch:text.blocks.1={fx}");
    let selfpatch2 = predict("self2.json", &["--hook", &own, "--hook", &own_text]);
    assert_eq!(std::fs::read(&selfpatch2).unwrap(), a, "image- and text-point self-patch = plain forward");
    let trunk = predict("trunk.json", &["--hook", &format!("patch:trunk.blocks.0={pert}")]);
    assert_ne!(std::fs::read(&trunk).unwrap(), a, "patching a trunk block from a perturbed copy moves the scores");
    let text = predict("text.json", &["--hook", &format!("patch:text.blocks.1={pert}")]);
    assert_ne!(std::fs::read(&text).unwrap(), a, "patching a text block from a perturbed copy moves the scores");
    // Steering: a [d] direction at q0 (d = 32 on the fixture); α = 0 is the plain forward, α = 4 is not.
    let dir_file = d.join("direction.safetensors");
    let values: Vec<u8> = (0..32).flat_map(|i| ((i as f32 - 15.5) / 8.0).to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![32], &values).unwrap();
    safetensors::serialize_to_file([("decoder.layers.1.q0", view)], None, &dir_file).unwrap();
    let steer0 = predict("steer0.json", &["--hook", &format!("add:decoder.layers.1.q0={}@0", s(&dir_file))]);
    assert_eq!(std::fs::read(&steer0).unwrap(), a, "α = 0 adds nothing");
    let steer4 = predict("steer4.json", &["--hook", &format!("add:decoder.layers.1.q0={}@4", s(&dir_file))]);
    assert_ne!(std::fs::read(&steer4).unwrap(), a, "steering moves the scores");
    assert_eq!(json(&d.join("steer4.json.meta.json"))["intervention"][0]["alpha"], 4.0);
    // Scaling the presence logit by 1 is the identity; by 0 equals zeroing.
    let scaled = predict("scale0.json", &["--hook", "scale:presence_logit=0"]);
    assert_eq!(std::fs::read(&scaled).unwrap(), b);
    // Bad specs exit 2 naming the fault.
    let e = fails(&["eval", "predict", "--ckpt", &fx, "--gt", gt.to_str().unwrap(), "--images", &images, "--out", &s(&d.join("x.json")), "--hook", "zero:decoder.layers.1.qo"]);
    assert!(e.contains("decoder.layers.1.qo") && e.contains("decoder.layers.1.q0"), "{e}");
    let e = fails(&["eval", "predict", "--ckpt", &fx, "--gt", gt.to_str().unwrap(), "--images", &images, "--out", &s(&d.join("x.json")), "--hook", "ablate:x"]);
    assert!(e.contains("ablate"), "{e}");
    // A read-only point (only the last layer's logit feeds the outputs) cannot be edited.
    let e = fails(&["eval", "predict", "--ckpt", &fx, "--gt", gt.to_str().unwrap(), "--images", &images, "--out", &s(&d.join("x.json")), "--hook", "zero:decoder.layers.0.presence_logit"]);
    assert!(e.contains("read-only") && e.contains("decoder.layers.0.presence_logit"), "{e}");

    // --subsample N --seed S: the same N entries every time; the scorer scores exactly those.
    let sub1 = predict("sub1.json", &["--subsample", "3", "--seed", "0"]);
    let sub2 = predict("sub2.json", &["--subsample", "3", "--seed", "0"]);
    assert_eq!(std::fs::read(&sub1).unwrap(), std::fs::read(&sub2).unwrap());
    let ids: std::collections::BTreeSet<i64> = preds(&sub1).iter().map(|p| p["image_id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 3, "N entries");
    let meta = json(&d.join("sub1.json.meta.json"));
    assert_eq!(meta["subsample"]["image_ids"].as_array().unwrap().len(), 3);
    assert_eq!(meta["num_entries"], 3);
    let printed = ok(&["eval", "score", "--gt", gt.to_str().unwrap(), "--pred", &s(&sub1), "--subsample", "3", "--seed", "0", "--out", &s(&d.join("score.json"))]);
    assert!(printed.contains("3 entries scored"), "{printed}");
    let sc = json(&d.join("score.json"));
    assert_eq!(sc["num_entries_scored"], 3);
    assert_eq!(sc["subsample"]["n"], 3);
    // The full-sweep predictions scored on the same subsample give the same numbers.
    let printed_full = ok(&["eval", "score", "--gt", gt.to_str().unwrap(), "--pred", &s(&plain), "--subsample", "3", "--seed", "0", "--out", &s(&d.join("score_full.json"))]);
    assert!(printed_full.contains("3 entries scored"), "{printed_full}");
    assert_eq!(json(&d.join("score_full.json"))["neg_correct"], sc["neg_correct"]);
}

#[test]
fn probe_presence_writes_fig_1_1_input_that_renders() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let fx = s(&fixture());
    ok(&["probe", "demo-inputs", "--out", &s(d), "--images", "2", "--perturb", &format!("ft={fx}"), "--noise", "0.05"]);
    let out = d.join("presence");
    let printed = ok(&[
        "probe", "presence", "--ckpt", &format!("ft={}", s(&d.join("ft"))), "--ckpt", &format!("base={fx}"),
        "--pairs", &s(&d.join("pairs.jsonl")), "--label", "neg", "--out", &s(&out),
    ]);
    assert!(printed.contains("threshold line 0.3"), "{printed}");
    let bars = json(&out.join("presence.json"));
    assert_eq!(bars["threshold"], 0.3);
    assert_eq!(bars["series"][0]["role"], "finetune");
    assert_eq!(bars["series"][1]["role"], "base");
    // presence.csv holds the logits: each value is σ(logit).
    let csv = std::fs::read_to_string(out.join("presence.csv")).unwrap();
    let n = bars["prompts"].as_array().unwrap().len();
    for (k, l) in csv.lines().skip(1).enumerate() {
        let f: Vec<&str> = l.split(',').collect();
        let (logit, sigma): (f64, f64) = (f[5].parse().unwrap(), f[6].parse().unwrap());
        assert_eq!(sigma, 1.0 / (1.0 + (-logit).exp()));
        assert_eq!(bars["series"][k / n]["values"][k % n].as_f64().unwrap(), sigma);
    }
    // The Fig 1.1 renderer reads it; its sidecar holds the same numbers and the line.
    let figs = d.join("figs");
    ok(&["figures", "--from", &s(&out.join("presence.json")), "--kind", "fig11", "--name", "fig11", "--out", &s(&figs)]);
    let side = json(&figs.join("fig11.json"));
    assert_eq!(side["kind"], "fig11");
    assert_eq!(side["data"]["series"], bars["series"]);
    assert_eq!(side["data"]["prompts"], bars["prompts"]);
    assert_eq!(side["data"]["threshold"], 0.3);
    assert!(figs.join("fig11.png").exists() && figs.join("fig11.svg").exists());
}
