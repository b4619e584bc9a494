//! `sam3lab probe …` and `sam3lab retrain` end to end on the shipped fixture with generated inputs:
//! every subcommand writes its files, the JSON renders through `sam3lab figures`, the same command
//! twice gives the same bytes, and bad inputs exit 2 with the file / line / name at fault.

use std::path::Path;


mod common;
use common::{fails, fixture, json, ok, path_string as s};

/// Every file of a directory (not recursive): name → bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn every_probe_runs_on_the_fixture_and_plots() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let fx = s(&fixture());
    ok(&["probe", "demo-inputs", "--out", &s(d), "--images", "2", "--perturb", &format!("pert={fx}"), "--perturb", &format!("pert2={fx}")]);
    let pairs = s(&d.join("pairs.jsonl"));
    let (pert, pert2) = (s(&d.join("pert")), s(&d.join("pert2")));
    let lvis = s(&fixture().join("../../prompts/lvis.txt"));

    // drift, twice: same bytes; renders as heatmap and Fig 6.1.
    let drift = |out: &Path| {
        ok(&[
            "probe", "drift", "--base", &fx, "--ckpt", &format!("pert={pert}"), "--ckpt", &format!("recovery@100={pert2}"),
            "--images", &s(&d.join("images.txt")), "--prompts", &format!("shapes={}", s(&d.join("shapes.txt"))),
            "--prompts", &format!("lvis={lvis}"), "--points", "fusion.layers.1,decoder.layers.1.q0,decoder.layers.1.mean",
            "--out", &s(out),
        ])
    };
    let printed = drift(&d.join("drift1"));
    assert!(printed.contains("recovery@100") && printed.contains("decoder.layers.1.q0"), "{printed}");
    drift(&d.join("drift2"));
    let (f1, f2) = (files(&d.join("drift1")), files(&d.join("drift2")));
    assert_eq!(f1.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["drift.csv", "drift.json", "drift_pair_mean.json", "drift_pairs.csv", "drift_prompts.csv", "manifest.json"]);
    assert!(f1 == f2, "same inputs and seed must give the same bytes");
    assert!(!d.join("drift1/.spill").exists());
    let table = json(&d.join("drift1/drift.json"));
    assert_eq!(table["metric"], "rel_delta");
    assert_eq!(table["rows"][1]["checkpoint"], "recovery@100");
    assert_eq!(table["manifest"]["checkpoints"][0]["label"], "base");
    assert_eq!(table["manifest"]["checkpoints"][0]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(table["manifest"]["images"].as_array().unwrap().len(), 2);
    let figs = d.join("figs");
    ok(&["figures", "--from", &s(&d.join("drift1/drift.json")), "--kind", "heatmap", "--out", &s(&figs)]);
    ok(&[
        "figures", "--from", &s(&d.join("drift1/drift.json")), "--kind", "fig61", "--point", "fusion.layers.1", "--references", "pert",
        "--out", &s(&figs),
    ]);

    // heads (ranking + heatmaps that render), and the layer-level probe.
    let printed = ok(&["probe", "heads", "--a", &fx, "--b", &pert, "--ref", &pert2, "--pairs", &pairs, "--module", "decoder.layers.0..1.ca_text", "--out", &s(&d.join("heads"))]);
    assert!(printed.contains("decoder.layers.1.ca_text.head.3") || printed.contains("decoder.layers.0.ca_text.head.0"), "{printed}");
    let h = json(&d.join("heads/heads.json"));
    assert_eq!(h["units"].as_array().unwrap().len(), 8);
    assert_eq!(h["units"][0]["rank"], 1);
    for name in ["heads_delta_heatmap.json", "heads_cos_heatmap.json"] {
        ok(&["figures", "--from", &s(&d.join("heads").join(name)), "--kind", "heatmap", "--out", &s(&figs)]);
    }
    ok(&["probe", "heads", "--a", &fx, "--b", &pert, "--ref", &pert2, "--pairs", &pairs, "--module", "decoder.layers.*.q0", "--label", "all", "--out", &s(&d.join("layers"))]);
    assert_eq!(json(&d.join("layers/heads.json"))["units"].as_array().unwrap().len(), 2);

    // patch: three conditions side by side.
    ok(&["probe", "patch", "--source", &pert, "--target", &fx, "--points", "decoder.layers.1.out", "--pairs", &pairs, "--out", &s(&d.join("patch"))]);
    let p = json(&d.join("patch/patch.json"));
    let names: Vec<&str> = p["conditions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["patch", "q0_only@1", "layer_out@1"]);
    ok(&["figures", "--from", &s(&d.join("patch/patch_heatmap.json")), "--kind", "heatmap", "--out", &s(&figs)]);

    // steer from a mean difference, then from the direction file it wrote.
    ok(&[
        "probe", "steer", "--ckpt", &fx, "--point", "decoder.layers.1.q0", "--direction", &format!("mean-diff:{fx},{pert}"), "--alphas", "1,2",
        "--pairs", &pairs, "--out", &s(&d.join("steer")),
    ]);
    ok(&[
        "probe", "steer", "--ckpt", &fx, "--point", "decoder.layers.1.q0", "--direction", &s(&d.join("steer/direction.safetensors")),
        "--alphas", "1,2", "--pairs", &pairs, "--out", &s(&d.join("steer2")),
    ]);
    assert_eq!(std::fs::read(d.join("steer/steer.csv")).unwrap(), std::fs::read(d.join("steer2/steer.csv")).unwrap());
    let st = json(&d.join("steer/steer.json"));
    assert_eq!(st["alphas"][0]["alpha"], 0.0);
    ok(&["figures", "--from", &s(&d.join("steer/steer_heatmap.json")), "--kind", "heatmap", "--out", &s(&figs)]);

    // capture for the SAE: one cache per pair with extra.pair / extra.label.
    ok(&["probe", "capture", "--ckpt", &format!("base={fx}"), "--pairs", &pairs, "--points", "decoder.layers.1.q0", "--out", &s(&d.join("caps"))]);
    let m = json(&d.join("caps/base/pair_00001.json"));
    assert_eq!((m["extra"]["pair"].as_u64(), m["extra"]["label"].as_str()), (Some(1), Some("neg")));
    assert_eq!(std::fs::read_to_string(d.join("caps/base/list.jsonl")).unwrap().lines().count(), 8);

    // retrain (cached): manifest + trajectory next to the checkpoint.
    let out = d.join("ret/presence_only.safetensors");
    let printed = ok(&["retrain", "--ckpt", &fx, "--cached", "--pairs", &pairs, "--steps", "30", "--lr", "1e-2", "--log-every", "10", "--out", &s(&out)]);
    assert!(printed.contains("cached mode: 8 tensors"), "{printed}");
    let r = json(&d.join("ret/presence_only.manifest.json"));
    assert_eq!(r["trajectory"].as_array().unwrap().len(), 4);
    assert_eq!(r["output"]["sha256"].as_str().unwrap().len(), 64);
    let csv = std::fs::read_to_string(d.join("ret/presence_only.trajectory.csv")).unwrap();
    assert!(csv.starts_with("step,pos_sigma,neg_sigma,pos_bce,neg_bce"), "{csv}");
}

#[test]
fn bad_inputs_exit_2_naming_the_fault() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let fx = s(&fixture());
    ok(&["probe", "demo-inputs", "--out", &s(d), "--images", "1"]);
    let bad = d.join("bad.jsonl");
    std::fs::write(&bad, "{\"image\": \"images/img_00.png\", \"prompt\": \"a cat\", \"label\": \"pos\"}\n{\"image\": \"images/img_00.png\", \"prompt\": \"a dog\", \"label\": \"yes\"}\n").unwrap();
    let e = fails(&["probe", "patch", "--source", &fx, "--target", &fx, "--points", "decoder.layers.1.out", "--pairs", &s(&bad), "--out", &s(&d.join("o"))]);
    assert!(e.contains("bad.jsonl:2") && e.contains("yes"), "{e}");
    let e = fails(&["probe", "patch", "--source", &fx, "--target", &fx, "--points", "decoder.layers.1.oot", "--pairs", &s(&d.join("pairs.jsonl")), "--out", &s(&d.join("o"))]);
    assert!(e.contains("decoder.layers.1.oot") && e.contains("decoder.layers.1.out"), "{e}");
    let e = fails(&["probe", "drift", "--base", &fx, "--ckpt", &fx, "--images", &s(&d.join("images")), "--prompts", &format!("s={}", s(&d.join("shapes.txt"))), "--out", &s(&d.join("o"))]);
    assert!(e.contains("LABEL=CKPT"), "{e}");
    let e = fails(&["probe", "drift", "--base", &fx, "--ckpt", &format!("x={fx}"), "--images", &s(&d.join("images")), "--prompts", &format!("s={}", s(&d.join("missing.txt"))), "--out", &s(&d.join("o"))]);
    assert!(e.contains("missing.txt"), "{e}");
    let e = fails(&["retrain", "--ckpt", &fx, "--train", "nothing.matches*", "--pairs", &s(&d.join("pairs.jsonl")), "--steps", "1", "--out", &s(&d.join("r.safetensors"))]);
    assert!(e.contains("nothing.matches*"), "{e}");
    assert!(!d.join("r.safetensors").exists() && !d.join("o").exists(), "no partial output");
}

/// `probe drift --shard K/N` on three machines' worth of shards + `merge` writes what the unsharded
/// run writes, byte for byte (every file), whatever order the shards are given in and with a shard
/// that got no image; a missing, repeated or foreign shard is refused by name.
#[test]
fn drift_in_shards_merges_to_the_unsharded_bytes() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let fx = s(&fixture());
    ok(&["probe", "demo-inputs", "--out", &s(d), "--images", "3", "--perturb", &format!("pert={fx}"), "--perturb", &format!("pert2={fx}")]);
    let drift = |images: &str, extra: &[&str], out: &Path| {
        let mut args = vec![
            "probe".to_string(), "drift".into(), "--base".into(), fx.clone(), "--ckpt".into(), format!("pert={}", s(&d.join("pert"))),
            "--ckpt".into(), format!("recovery@100={}", s(&d.join("pert2"))), "--images".into(), images.to_string(),
            "--prompts".into(), format!("shapes={}", s(&d.join("shapes.txt"))), "--points".into(),
            "fusion.layers.1,decoder.layers.1.q0,decoder.layers.1.mean".into(), "--out".into(), s(out),
        ];
        args.extend(extra.iter().map(|x| x.to_string()));
        ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let images = s(&d.join("images.txt"));
    drift(&images, &[], &d.join("whole"));
    for k in 0..3 {
        let printed = drift(&images, &["--shard", &format!("{k}/3")], &d.join(format!("s{k}")));
        assert!(printed.contains(&format!("shard {k}/3: 1 of 3 images")), "{printed}");
        assert!(!d.join(format!("s{k}/drift.json")).exists(), "a shard writes no partial table");
    }
    let (s0, s1, s2) = (s(&d.join("s0")), s(&d.join("s1")), s(&d.join("s2")));
    ok(&["merge", "--out", &s(&d.join("merged")), &s2, &s0, &s1]);
    let (whole, merged) = (files(&d.join("whole")), files(&d.join("merged")));
    assert_eq!(whole.len(), 6);
    assert!(whole == merged, "merged shards must equal the unsharded run byte for byte");

    // Five shards of three images: two run no image at all, and still merge.
    for k in 0..5 {
        drift(&images, &["--shard", &format!("{k}/5")], &d.join(format!("f{k}")));
    }
    let five: Vec<String> = (0..5).map(|k| s(&d.join(format!("f{k}")))).collect();
    let mut args = vec!["merge", "--out"];
    let out5 = s(&d.join("merged5"));
    args.push(&out5);
    args.extend(five.iter().map(String::as_str));
    ok(&args);
    assert!(files(&d.join("merged5")) == whole);

    // A missing shard, a repeated one, and one from another run (other images) are refused.
    let e = fails(&["merge", "--out", &s(&d.join("m1")), &s0, &s1]);
    assert!(e.contains("shard 2/3 is missing"), "{e}");
    let e = fails(&["merge", "--out", &s(&d.join("m2")), &s0, &s1, &s1]);
    assert!(e.contains("shard 1/3 given twice"), "{e}");
    std::fs::write(d.join("two.txt"), std::fs::read_to_string(d.join("images.txt")).unwrap().lines().take(2).collect::<Vec<_>>().join("\n")).unwrap();
    drift(&s(&d.join("two.txt")), &["--shard", "2/3"], &d.join("other"));
    let e = fails(&["merge", "--out", &s(&d.join("m3")), &s0, &s1, &s(&d.join("other"))]);
    assert!(e.contains("not from the same run"), "{e}");
    let e = fails(&["merge", "--out", &s(&d.join("m4")), &s0, &s(&d.join("images.txt"))]);
    assert!(e.contains("not a drift shard"), "{e}");
}

/// `probe attrib` on the fixture: its causal "actual" is what `probe patch` measures for the same
/// point (σ of target logit + actual = patch's after-presence, pair by pair), the estimate ranks the
/// points as the causal patch does (Spearman ρ of the point means, measured), a checkpoint against
/// itself attributes exactly nothing, and a read-only point is refused by name.
#[test]
fn attribution_patching_agrees_with_the_causal_patch() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let fx = s(&fixture());
    ok(&["probe", "demo-inputs", "--out", &s(d), "--images", "2", "--perturb", &format!("pert={fx}")]);
    let (pairs, pert) = (s(&d.join("pairs.jsonl")), s(&d.join("pert")));
    let points = "decoder.layers.*.q0,fusion.layers.*.ffn.out,fusion.layers.*.self_attn.out,decoder.layers.*.ca_image.out,decoder.layers.*.ca_text.out";
    let printed = ok(&["probe", "attrib", "--source", &fx, "--target", &pert, "--pairs", &pairs, "--points", points, "--verify", "--out", &s(&d.join("a"))]);
    assert!(printed.contains("agreement with the causal patch"), "{printed}");
    let a = json(&d.join("a/attrib.json"));
    let rho = a["agreement"]["spearman_point_means"].as_f64().unwrap();
    println!("Spearman ρ (point means) {rho}, over pairs {}, signs {}", a["agreement"]["spearman_pairs"], a["agreement"]["sign_agreement"]);
    assert!(rho > 0.8, "the screen should rank points as the causal patch does: ρ = {rho}");
    let ranks: Vec<u64> = a["points"].as_array().unwrap().iter().map(|p| p["rank_estimate"].as_u64().unwrap()).collect();
    assert_eq!(ranks, (1..=ranks.len() as u64).collect::<Vec<_>>(), "attrib.json lists points in the screen's order");

    // The causal side equals `probe patch` on the same point, pair by pair.
    ok(&["probe", "patch", "--source", &fx, "--target", &pert, "--pairs", &pairs, "--points", "decoder.layers.1.q0", "--no-lockstep", "--out", &s(&d.join("p"))]);
    let p = json(&d.join("p/patch.json"));
    let sigma = |x: f64| 1.0 / (1.0 + (-x).exp());
    let rows = a["pairs"].as_array().unwrap();
    let mut checked = 0;
    for pp in p["pairs"].as_array().unwrap() {
        let r = rows.iter().find(|r| r["pair"] == pp["pair"] && r["point"] == "decoder.layers.1.q0").unwrap();
        let mine = sigma(r["target_logit"].as_f64().unwrap() + r["actual"].as_f64().unwrap());
        let theirs = pp["after"][0]["presence_sigma"].as_f64().unwrap();
        assert!((mine - theirs).abs() < 1e-5, "pair {}: attrib {mine} vs patch {theirs}", pp["pair"]);
        assert!((sigma(r["target_logit"].as_f64().unwrap()) - pp["before"]["presence_sigma"].as_f64().unwrap()).abs() < 1e-5);
        checked += 1;
    }
    assert!(checked >= 4, "{checked}");

    // A checkpoint against itself: nothing to patch, exactly.
    ok(&["probe", "attrib", "--source", &pert, "--target", &pert, "--pairs", &pairs, "--points", "decoder.layers.*.q0", "--verify", "--out", &s(&d.join("self"))]);
    for r in json(&d.join("self/attrib.json"))["pairs"].as_array().unwrap() {
        assert_eq!((r["estimate"].as_f64().unwrap(), r["actual"].as_f64().unwrap()), (0.0, 0.0), "{r}");
    }
    let e = fails(&["probe", "attrib", "--source", &fx, "--target", &pert, "--pairs", &pairs, "--points", "decoder.layers.1.mean", "--out", &s(&d.join("ro"))]);
    assert!(e.contains("decoder.layers.1.mean") && e.contains("read-only"), "{e}");
}

/// Every file under a directory, recursively: relative path → bytes.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(dir).unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `probe capture --shard K/N` + `merge`: the caches, each label's list.jsonl and the manifest equal
/// the unsharded run's byte for byte (two checkpoints, shards given out of order); a missing shard is refused.
#[test]
fn capture_in_shards_merges_to_the_unsharded_bytes() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let fx = s(&fixture());
    ok(&["probe", "demo-inputs", "--out", &s(d), "--images", "3", "--perturb", &format!("pert={fx}")]);
    let capture = |extra: &[&str], out: &Path| {
        let mut args = vec![
            "probe".to_string(), "capture".into(), "--ckpt".into(), format!("base={fx}"), "--ckpt".into(), format!("pert={}", s(&d.join("pert"))),
            "--pairs".into(), s(&d.join("pairs.jsonl")), "--points".into(), "decoder.layers.1.q0,fusion.layers.0.ffn.out".into(), "--out".into(), s(out),
        ];
        args.extend(extra.iter().map(|x| x.to_string()));
        ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    capture(&[], &d.join("whole"));
    let mut counts = Vec::new();
    for k in 0..2 {
        let said = capture(&["--shard", &format!("{k}/2")], &d.join(format!("s{k}")));
        // "shard K/2: OWN of ALL pairs → …": the shard's own count, the whole run's after it.
        let line = said.lines().find(|l| l.starts_with(&format!("shard {k}/2: "))).unwrap_or_else(|| panic!("{said}"));
        let nums: Vec<usize> = line.split(' ').filter_map(|w| w.parse().ok()).collect();
        counts.push((nums[0], nums[1]));
    }
    let total = counts[0].1;
    assert!(counts[0].0 > 0 && counts[1].0 > 0 && counts[0].0 + counts[1].0 == total && counts[1].1 == total, "{counts:?}");
    let (s0, s1) = (s(&d.join("s0")), s(&d.join("s1")));
    ok(&["merge", "--out", &s(&d.join("merged")), &s1, &s0]);
    let (whole, merged) = (tree(&d.join("whole")), tree(&d.join("merged")));
    assert!(whole.len() > 20, "{}", whole.len());
    assert!(whole == merged, "merged capture shards must equal the unsharded run byte for byte");
    let e = fails(&["merge", "--out", &s(&d.join("m1")), &s0]);
    assert!(e.contains("shard 1/2 is missing"), "{e}");
}

/// Demo inputs for the sharding tests: 3 images, a perturbed checkpoint, and `mixed.jsonl`, the
/// pair file with its lines interleaved across images (so the order a run measures pairs in, by
/// image, differs from the pair file's order, and a merge that confuses the two shows).
fn shard_inputs(d: &Path) -> (String, String, String) {
    let fx = s(&fixture());
    ok(&["probe", "demo-inputs", "--out", &s(d), "--images", "3", "--perturb", &format!("pert={fx}")]);
    let text = std::fs::read_to_string(d.join("pairs.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let per_image = lines.len() / 3;
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by_key(|&i| (i % per_image, i));
    let mixed: String = order.iter().map(|&i| format!("{}\n", lines[i])).collect();
    std::fs::write(d.join("mixed.jsonl"), mixed).unwrap();
    (fx, s(&d.join("pert")), s(&d.join("mixed.jsonl")))
}

/// Run `args` (a `probe …` command line without `--out`) unsharded and in `n` shards, merge the
/// shards (given in reverse order) and require the merged directory to equal the unsharded one,
/// every file byte for byte; each shard directory holds only `PROBE_shard.json`. Returns the
/// shard directories.
fn sharded_run_merges_to_the_whole(d: &Path, probe: &str, args: &[String], n: usize) -> Vec<String> {
    let run = |extra: &[String], out: &Path| {
        let mut v: Vec<String> = ["probe".to_string(), probe.to_string()].into_iter().chain(args.iter().cloned()).collect();
        v.extend(extra.iter().cloned());
        v.extend(["--out".to_string(), s(out)]);
        ok(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let whole_dir = d.join(format!("{probe}_whole"));
    run(&[], &whole_dir);
    let mut dirs = Vec::new();
    for k in 0..n {
        let dir = d.join(format!("{probe}_s{k}"));
        let printed = run(&["--shard".into(), format!("{k}/{n}")], &dir);
        assert!(printed.contains(&format!("shard {k}/{n}: ")), "{printed}");
        let names: Vec<String> = tree(&dir).into_iter().map(|f| f.0).collect();
        assert_eq!(names, [format!("{probe}_shard.json")], "a shard writes only its shard file");
        dirs.push(s(&dir));
    }
    let merged_dir = d.join(format!("{probe}_merged"));
    let mut m = vec!["merge".to_string(), "--out".into(), s(&merged_dir)];
    m.extend(dirs.iter().rev().cloned());
    let printed = ok(&m.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(printed.contains(&format!("merged {n} {probe} shards")), "{printed}");
    let (whole, merged) = (tree(&whole_dir), tree(&merged_dir));
    assert!(whole.len() >= 3, "{}", whole.len());
    assert_eq!(whole.iter().map(|f| &f.0).collect::<Vec<_>>(), merged.iter().map(|f| &f.0).collect::<Vec<_>>());
    for ((name, a), (_, b)) in whole.iter().zip(&merged) {
        assert!(a == b, "{probe}: merged {name} differs from the unsharded run's");
    }
    dirs
}

/// `probe presence --shard K/N` + `merge` = the unsharded run, byte for byte (3 shards of an
/// interleaved pair file, two checkpoints); a missing shard, a shard of another run and a shard of
/// another probe are refused by name.
#[test]
fn presence_in_shards_merges_to_the_unsharded_bytes() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (fx, pert, mixed) = shard_inputs(d);
    let args = |pairs: &str| -> Vec<String> {
        ["--ckpt", &format!("base={fx}"), "--ckpt", &format!("pert={pert}"), "--pairs", pairs, "--title", "gate"].map(String::from).to_vec()
    };
    let dirs = sharded_run_merges_to_the_whole(d, "presence", &args(&mixed), 3);
    let e = fails(&["merge", "--out", &s(&d.join("m1")), &dirs[0], &dirs[2]]);
    assert!(e.contains("shard 1/3 is missing"), "{e}");
    // Another run: the same command on the pair file in its original order.
    let mut other = vec!["probe".to_string(), "presence".into()];
    other.extend(args(&s(&d.join("pairs.jsonl"))));
    other.extend(["--shard", "1/3", "--out", &s(&d.join("other"))].map(String::from));
    ok(&other.iter().map(String::as_str).collect::<Vec<_>>());
    let e = fails(&["merge", "--out", &s(&d.join("m2")), &dirs[0], &s(&d.join("other")), &dirs[2]]);
    assert!(e.contains("other") && e.contains("not from the same run"), "{e}");
    let e = fails(&["merge", "--out", &s(&d.join("m3")), &dirs[0], &dirs[1], &s(&d.join("images.txt"))]);
    assert!(e.contains("images.txt") && e.contains("not a presence shard"), "{e}");
    // A truncated shard file is an error naming it, not a panic.
    let f = d.join("presence_s1/presence_shard.json");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, &text[..text.len() / 2]).unwrap();
    let e = fails(&["merge", "--out", &s(&d.join("m4")), &dirs[0], &dirs[1], &dirs[2]]);
    assert!(e.contains("presence_shard.json"), "{e}");
    // An unsharded output directory is not a shard; a bad --shard is refused before any work.
    let e = fails(&["merge", "--out", &s(&d.join("m5")), &s(&d.join("presence_whole"))]);
    assert!(e.contains("presence_whole") && e.contains("holding no shard"), "{e}");
    let e = fails(&["probe", "presence", "--ckpt", &format!("base={fx}"), "--pairs", &mixed, "--shard", "3/3", "--out", &s(&d.join("m6"))]);
    assert!(e.contains("3/3") && e.contains("0 ≤ K < N"), "{e}");
    for m in ["m1", "m2", "m4", "m5", "m6"] {
        assert!(!d.join(m).exists(), "a refused merge or run writes nothing ({m})");
    }
}

/// `probe patch --shard K/N` (with the lockstep conditions) and `probe attrib --shard K/N --verify`,
/// then `merge`, give the unsharded runs' bytes (2 and 3 shards of an interleaved pair file); a
/// patch shard and an attrib shard do not merge together.
#[test]
fn patch_and_attrib_in_shards_merge_to_the_unsharded_bytes() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (fx, pert, mixed) = shard_inputs(d);
    let st = |points: &str| -> Vec<String> { ["--source", &fx, "--target", &pert, "--pairs", &mixed, "--points", points].map(String::from).to_vec() };
    let patch = sharded_run_merges_to_the_whole(d, "patch", &st("decoder.layers.1.out"), 2);
    let mut a = st("decoder.layers.*.q0,fusion.layers.0.ffn.out");
    a.push("--verify".into());
    let attrib = sharded_run_merges_to_the_whole(d, "attrib", &a, 3);
    let e = fails(&["merge", "--out", &s(&d.join("m")), &patch[0], &attrib[1]]);
    assert!(e.contains("attrib shard, but other shards given are patch shards"), "{e}");
}

/// `probe heads --shard K/N` + `merge` = the unsharded run, byte for byte: per-head contributions
/// (3 shards) and the layer-level probe on whole points (2 shards), over an interleaved pair file.
#[test]
fn heads_in_shards_merge_to_the_unsharded_bytes() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (fx, pert, mixed) = shard_inputs(d);
    let args = |module: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["--a", &fx, "--b", &pert, "--ref", &fx, "--pairs", &mixed, "--module", module].map(String::from).to_vec();
        v.extend(extra.iter().map(|x| x.to_string()));
        v
    };
    sharded_run_merges_to_the_whole(d, "heads", &args("decoder.layers.0..1.ca_text", &["--label", "all"]), 3);
    std::fs::create_dir(d.join("layers")).unwrap();
    sharded_run_merges_to_the_whole(&d.join("layers"), "heads", &args("decoder.layers.*.q0", &["--slot", "all"]), 2);
}

/// `probe steer --shard K/N` + `merge` = the unsharded run, byte for byte (direction.safetensors
/// included): from a mean difference (each shard averages it over every pair) in 3 shards, and
/// from a direction file with --unit in 2.
#[test]
fn steer_in_shards_merges_to_the_unsharded_bytes() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (fx, pert, mixed) = shard_inputs(d);
    let common = ["--ckpt", &fx, "--point", "decoder.layers.1.q0", "--alphas", "-1,1,2.5", "--pairs", &mixed].map(String::from);
    let mut a = common.to_vec();
    a.extend(["--direction".into(), format!("mean-diff:{fx},{pert}")]);
    let dirs = sharded_run_merges_to_the_whole(d, "steer", &a, 3);
    let mut b = common.to_vec();
    b.extend(["--direction".into(), s(&d.join("steer_whole/direction.safetensors")), "--unit".into()]);
    std::fs::create_dir(d.join("file")).unwrap();
    sharded_run_merges_to_the_whole(&d.join("file"), "steer", &b, 2);
    let e = fails(&["merge", "--out", &s(&d.join("m")), &dirs[0], &dirs[1], &s(&d.join("file/steer_s1"))]);
    assert!(e.contains("not from the same run") || e.contains("a shard of 2"), "{e}");
}
