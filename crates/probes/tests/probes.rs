//! The probes on the fixture weights (`data/fixtures/sam3-tiny`) with small generated images, each
//! checked against an independent computation: captured caches for drift, head contributions
//! rebuilt from the checkpoint's weights and the attention maps for the head ranking, bit-identity
//! for self-patching, and the source's scores for patching the final outputs. (Retraining moved to
//! the training engine: `crates/train/tests/retrain.rs`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::Device;
use sam3lab_util::progress::NoProgress;
use sam3lab_hooks::Hooks;
use sam3lab_model::predict::Predictor;
use sam3lab_probes::demo;
use sam3lab_probes::drift::{self, DriftRequest};
use sam3lab_probes::heads::{self, HeadsRequest, Slot};
use sam3lab_probes::inputs::{self, Label, LabelFilter};
use sam3lab_probes::model::{CkptSpec, Outcome};
use sam3lab_probes::patch::{self, Lockstep, PatchRequest};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny")
}

struct Setup {
    dir: tempfile::TempDir,
    inputs: demo::DemoInputs,
    pert: PathBuf,
    pert2: PathBuf,
}

fn setup(images: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let inputs = demo::write_demo_inputs(dir.path(), images, 7).unwrap();
    let pert = demo::write_perturbed(&fixture(), &dir.path().join("pert"), 0.02, 1).unwrap();
    let pert2 = demo::write_perturbed(&fixture(), &dir.path().join("pert2"), 0.02, 2).unwrap();
    Setup { dir, inputs, pert, pert2 }
}

fn dev() -> Device {
    Device::flex()
}

fn hidden() -> NoProgress {
    NoProgress
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// Every tensor of a safetensors file: name → (shape, raw bytes).
fn tensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors().into_iter().map(|(k, v)| (k, (v.shape().to_vec(), v.data().to_vec()))).collect()
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn drift_of_self_is_zero_and_of_a_perturbed_copy_matches_captured_caches() {
    let s = setup(2);
    let g1 = write(&s.dir.path().join("g1.txt"), "# shapes\na red circle\na blue square\n");
    let g2 = write(&s.dir.path().join("g2.txt"), "cat\na blue square\n"); // shared prompt across groups
    let points = ["fusion.layers.1", "decoder.layers.1.q0", "decoder.layers.1.mean"].map(String::from).to_vec();
    let req = DriftRequest {
        base: CkptSpec::new("base", fixture()),
        checkpoints: vec![CkptSpec::new("self", fixture()), CkptSpec::new("pert", &s.pert)],
        config: None,
        images: inputs::read_images(&s.dir.path().join("images")).unwrap(),
        groups: inputs::read_prompt_groups(&[format!("shapes={}", g1.display()), format!("other={}", g2.display())]).unwrap(),
        points: points.clone(),
        seed: 0,
        spill_dir: s.dir.path().join("spill"),
        keep_spill: false,
        device: dev(),
    };
    let r = drift::run(&req, &hidden()).unwrap();
    assert!(!req.spill_dir.exists(), "the spill is removed");
    for p in &points {
        for g in ["shapes", "other"] {
            assert_eq!(r.table.value("self", p, g), Some(0.0), "{p}/{g}");
            assert_eq!(r.pair_mean.value("self", p, g), Some(0.0), "{p}/{g}");
        }
    }

    // Independent: capture the three points for every (image, prompt) under both checkpoints.
    let base = Predictor::load(&fixture(), None, &dev()).unwrap();
    let pert = Predictor::load(&s.pert, None, &dev()).unwrap();
    let capture = |m: &Predictor, img: &Path, prompt: &str| {
        let enc = m.encode_image_file(img).unwrap();
        let text = m.encode_prompt(prompt, &mut Hooks::none()).unwrap();
        let mut hooks = Hooks::capture(&points.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        m.ground(&enc, &text, &[], &mut hooks).unwrap();
        let c = hooks.finish().unwrap();
        points.iter().map(|p| c.get(p).unwrap().to_vec()).collect::<Vec<_>>()
    };
    for (g, prompts) in [("shapes", vec!["a red circle", "a blue square"]), ("other", vec!["cat", "a blue square"])] {
        for (k, p) in points.iter().enumerate() {
            let (mut rel_sum, mut n) = (0.0, 0);
            let mut pooled = 0.0;
            for prompt in &prompts {
                let (mut d2s, mut r2s) = (0.0, 0.0);
                for img in &s.inputs.images {
                    let a = &capture(&base, img, prompt)[k];
                    let b = &capture(&pert, img, prompt)[k];
                    let r2: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum();
                    let d2: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
                    rel_sum += (d2 / r2).sqrt();
                    n += 1;
                    d2s += d2;
                    r2s += r2;
                }
                pooled += (d2s / r2s).sqrt();
            }
            // The main table is per concept (each prompt's activations over the images stacked,
            // mean over the group's prompts); the pair mean is the named alternative.
            let want_pair_mean = rel_sum / n as f64;
            let got_pair_mean = r.pair_mean.value("pert", p, g).unwrap();
            assert!(want_pair_mean > 0.01, "a perturbed copy drifts ({p}/{g}: {want_pair_mean})");
            assert!(close(got_pair_mean, want_pair_mean, 1e-12), "{p}/{g} pair mean: {got_pair_mean} vs caches {want_pair_mean}");
            let want = pooled / prompts.len() as f64;
            let got = r.table.value("pert", p, g).unwrap();
            assert!(close(got, want, 1e-12), "{p}/{g}: probe {got} vs caches {want}");
        }
    }
    // 2 checkpoints × 3 points × (2 + 2) (group, prompt) × 2 images per-input rows.
    assert_eq!(r.pairs.len(), 2 * 3 * 4 * 2);
    r.table.check().unwrap();
}

/// Head contributions of `decoder.layers.{i}.ca_text` at row 0, rebuilt from the checkpoint's
/// weights, the captured attention map and the prompt it attends to; checks that the heads plus the
/// out-projection bias give the captured attention output.
fn direct_contributions(ckpt: &Path, pairs: &[inputs::Pair], layers: usize, heads: usize) -> Vec<Vec<Vec<f64>>> {
    let w = tensors(&ckpt.join("weights.safetensors"));
    let m = Predictor::load(ckpt, None, &dev()).unwrap();
    let mut out = Vec::new(); // [pair][layer*heads + h] -> d-vector
    for pair in pairs {
        let enc = m.encode_image_file(&pair.image).unwrap();
        let text = m.encode_prompt(&pair.prompt, &mut Hooks::none()).unwrap();
        let mut hooks = Hooks::capture(&["prompt.feats", "decoder.layers.*.ca_text.attn_weights", "decoder.layers.*.ca_text.out"]).unwrap();
        m.ground(&enc, &text, &[], &mut hooks).unwrap();
        let c = hooks.finish().unwrap();
        let prompt = c.get("prompt.feats").unwrap();
        let (np, d) = (prompt.shape()[1], prompt.shape()[2]);
        let pv = prompt.to_vec();
        let dh = d / heads;
        let mut units = Vec::new();
        for i in 0..layers {
            let key = |s: &str| format!("transformer.decoder.layers.{i}.ca_text.{s}");
            let win = f32s(&w[&key("in_proj_weight")].1);
            let bin = f32s(&w[&key("in_proj_bias")].1);
            let wo = f32s(&w[&key("out_proj.weight")].1);
            let bo = f32s(&w[&key("out_proj.bias")].1);
            // V = prompt · W_vᵀ + b_v, rows 2d..3d of the in-projection.
            let v: Vec<f64> = (0..np)
                .flat_map(|k| {
                    let (win, bin, pv) = (&win, &bin, &pv);
                    (0..d).map(move |j| {
                        bin[2 * d + j] as f64 + (0..d).map(|c| pv[k * d + c] as f64 * win[(2 * d + j) * d + c] as f64).sum::<f64>()
                    })
                })
                .collect();
            let attn = c.get(&format!("decoder.layers.{i}.ca_text.attn_weights")).unwrap();
            let lq = attn.shape()[2];
            let av = attn.to_vec();
            let captured_out = c.get(&format!("decoder.layers.{i}.ca_text.out")).unwrap().to_vec();
            let mut total = vec![0f64; lq * d];
            for h in 0..heads {
                let mut row0 = vec![0f64; d];
                for q in 0..lq {
                    let o: Vec<f64> = (0..dh)
                        .map(|c2| (0..np).map(|k| av[((h * lq) + q) * np + k] as f64 * v[k * d + h * dh + c2]).sum())
                        .collect();
                    for j in 0..d {
                        let x: f64 = (0..dh).map(|c2| o[c2] * wo[j * d + h * dh + c2] as f64).sum();
                        total[q * d + j] += x;
                        if q == 0 {
                            row0[j] = x;
                        }
                    }
                }
                units.push(row0);
            }
            for q in 0..lq {
                for j in 0..d {
                    let want = total[q * d + j] + bo[j] as f64;
                    let got = captured_out[q * d + j] as f64;
                    assert!((want - got).abs() < 1e-4, "layer {i} row {q} dim {j}: heads + bias {want} vs .out {got}");
                }
            }
        }
        out.push(units);
    }
    out
}

#[test]
fn head_ranking_agrees_with_contributions_computed_from_weights() {
    let s = setup(2);
    let pairs = inputs::read_pairs(&s.inputs.pairs).unwrap();
    let req = HeadsRequest {
        a: CkptSpec::new("a", fixture()),
        b: CkptSpec::new("b", &s.pert),
        reference: CkptSpec::new("ref", &s.pert2),
        config: None,
        pairs: pairs.clone(),
        module: "decoder.layers.0..1.ca_text".into(),
        label: LabelFilter::All,
        slot: Slot::Q0,
        seed: 0,
        device: dev(),
    };
    let r = heads::run(&req, &hidden()).unwrap();
    let (layers, nh) = (2, 4);
    assert_eq!(r.units.len(), layers * nh);
    let a = direct_contributions(&fixture(), &pairs.pairs, layers, nh);
    let b = direct_contributions(&s.pert, &pairs.pairs, layers, nh);
    let c = direct_contributions(&s.pert2, &pairs.pairs, layers, nh);
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut direct: Vec<(String, f64, f64, f64)> = Vec::new(); // unit, delta, cos, |a|
    for u in 0..layers * nh {
        let (mut dn, mut cs, mut ma) = (0.0, 0.0, 0.0);
        for p in 0..pairs.pairs.len() {
            let ba: Vec<f64> = b[p][u].iter().zip(&a[p][u]).map(|(x, y)| x - y).collect();
            let ra: Vec<f64> = c[p][u].iter().zip(&a[p][u]).map(|(x, y)| x - y).collect();
            dn += norm(&ba);
            cs += ba.iter().zip(&ra).map(|(x, y)| x * y).sum::<f64>() / (norm(&ba) * norm(&ra));
            ma += norm(&a[p][u]);
        }
        let n = pairs.pairs.len() as f64;
        direct.push((format!("decoder.layers.{}.ca_text.head.{}", u / nh, u % nh), dn / n, cs / n, ma / n));
    }
    for (unit, dn, cs, ma) in &direct {
        let got = r.units.iter().find(|x| &x.unit == unit).unwrap();
        assert!((got.delta_norm - dn).abs() < 1e-4, "{unit}: ‖b−a‖ {} vs direct {dn}", got.delta_norm);
        assert!((got.cos_toward_ref.unwrap() - cs).abs() < 1e-4, "{unit}: cos {:?} vs direct {cs}", got.cos_toward_ref);
        assert!((got.mag_a - ma).abs() < 1e-4, "{unit}: |a| {} vs direct {ma}", got.mag_a);
    }
    direct.sort_by(|x, y| y.1.total_cmp(&x.1));
    let ranked: Vec<&str> = r.units.iter().map(|u| u.unit.as_str()).collect();
    for (k, w) in direct.windows(2).enumerate() {
        if w[0].1 - w[1].1 > 1e-4 {
            assert_eq!(ranked[k], w[0].0, "rank {} (direct order {:?})", k + 1, direct);
        }
    }
    assert!(direct[0].1 > direct[direct.len() - 1].1 + 1e-3, "the ranking is not degenerate");
    assert_eq!(r.units[0].rank, 1);
}

#[test]
fn patching_every_point_from_a_checkpoint_into_itself_changes_nothing() {
    let s = setup(1);
    let all: Vec<String> = sam3lab_model::hook_registry(&Predictor::load(&fixture(), None, &dev()).unwrap().model.config)
        .points
        .iter()
        .map(|p| p.name.as_str().to_string())
        .collect();
    assert!(all.len() > 100, "{} points", all.len());
    let req = PatchRequest {
        source: CkptSpec::new("source", fixture()),
        target: CkptSpec::new("target", fixture()),
        config: None,
        pairs: inputs::read_pairs(&s.inputs.pairs).unwrap(),
        points: all,
        lockstep: Lockstep::Last,
        label: LabelFilter::All,
        seed: 0,
        device: dev(),
    };
    let r = patch::run(&req, &hidden()).unwrap();
    assert_eq!(r.conditions.len(), 3);
    assert_eq!(r.pairs.len(), 4);
    for p in &r.pairs {
        assert_eq!(p.source.scores, p.before.scores, "pair {}: same checkpoint, same scores", p.pair);
        for (c, a) in r.conditions.iter().zip(&p.after) {
            assert_eq!(a.scores, p.before.scores, "pair {} {}: scores changed", p.pair, c.name);
            assert_eq!(a.presence_logit.to_bits(), p.before.presence_logit.to_bits(), "pair {} {}", p.pair, c.name);
            assert_eq!(a.kept, p.before.kept);
        }
        assert!(p.point_rel_diff.iter().all(|(_, d)| d.unwrap_or(0.0) == 0.0));
    }
}

#[test]
fn patching_the_final_outputs_reproduces_the_source_scores() {
    let s = setup(2);
    let pairs = inputs::read_pairs(&s.inputs.pairs).unwrap();
    for points in [vec!["pred_logits", "presence_logit"], vec!["scores"]] {
        let req = PatchRequest {
            source: CkptSpec::new("source", fixture()),
            target: CkptSpec::new("target", &s.pert),
            config: None,
            pairs: pairs.clone(),
            points: points.iter().map(|p| p.to_string()).collect(),
            lockstep: Lockstep::Off,
            label: LabelFilter::All,
            seed: 0,
            device: dev(),
        };
        let r = patch::run(&req, &hidden()).unwrap();
        assert_eq!(r.conditions.len(), 1);
        // The source's scores, independently: a plain forward of the source checkpoint.
        let src = Predictor::load(&fixture(), None, &dev()).unwrap();
        let mut differs = false;
        for p in &r.pairs {
            assert_eq!(p.after[0].scores, p.source.scores, "{points:?} pair {}", p.pair);
            assert_eq!(p.after[0].kept, p.source.kept);
            differs |= p.before.scores != p.source.scores;
            let pair = &pairs.pairs[p.pair];
            let enc = src.encode_image_file(&pair.image).unwrap();
            let dets = src.segment(&enc, &pair.prompt, &[], 0.0, &mut Hooks::none()).unwrap();
            assert!((dets.presence_prob as f64 - p.source.presence_sigma).abs() < 1e-6);
            let kept = dets.detections.iter().filter(|d| d.score >= 0.5).count();
            assert_eq!(kept, p.source.kept, "kept count = post-processing's detections scoring ≥ 0.5");
        }
        assert!(differs, "the perturbed target scores differently before the patch");
    }
}

#[test]
fn patch_reports_silenced_false_positives_and_the_lockstep_pair() {
    let s = setup(2);
    let req = PatchRequest {
        source: CkptSpec::new("source", &s.pert),
        target: CkptSpec::new("target", fixture()),
        config: None,
        pairs: inputs::read_pairs(&s.inputs.pairs).unwrap(),
        points: vec!["decoder.layers.1.out".into()],
        lockstep: Lockstep::Last,
        label: LabelFilter::All,
        seed: 0,
        device: dev(),
    };
    let r = patch::run(&req, &hidden()).unwrap();
    let names: Vec<&str> = r.conditions.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["patch", "q0_only@1", "layer_out@1"]);
    // Patching the whole last layer output is the same transplant as the user's point here.
    for p in &r.pairs {
        assert_eq!(p.after[0].scores, p.after[2].scores);
    }
    // The summary counts are the per-pair counts.
    for (k, c) in r.conditions.iter().enumerate() {
        let fp: Vec<_> = r.pairs.iter().filter(|p| p.label == Label::Neg && p.before.kept > 0).collect();
        assert_eq!(c.target_false_positives, fp.len());
        assert_eq!(c.silenced, fp.iter().filter(|p| p.after[k].kept == 0).count());
        // neg_correct / recall are the evaluator's (score ≥ 0.5), from the raw scores.
        let negs: Vec<Vec<f64>> =
            r.pairs.iter().filter(|p| p.label == Label::Neg).map(|p| p.after[k].scores.iter().map(|&x| x as f64).collect()).collect();
        let refused = negs.iter().filter(|sc| sc.iter().all(|&x| x < 0.5)).count();
        assert_eq!(c.neg_correct_after, Some(refused as f64 / negs.len() as f64));
        assert_eq!(c.neg_correct_after, sam3lab_eval::neg_correct(negs));
    }
    assert_eq!(r.threshold, 0.5);
    assert_eq!(r.manifest.options["threshold"], 0.5);
    let e = patch::run(&PatchRequest { points: vec!["decoder.layers.1.oot".into()], ..req }, &hidden()).unwrap_err().to_string();
    assert!(e.contains("decoder.layers.1.out"), "unknown point names the nearest: {e}");
}

/// The generic sweep (`sweep::run`) on its own: a self-patch is the baseline bit for bit, a patch
/// from another checkpoint moves the metric, patching the final presence logit gives the source's,
/// and the table's pair-set reduction sees the same columns.
#[test]
fn sweep_self_patch_is_the_baseline_and_a_patch_from_another_checkpoint_moves_it() {
    use sam3lab_hooks::Action;
    use sam3lab_probes::model;
    use sam3lab_probes::sweep::{self, Edit, Intervention, Sweep};
    let s = setup(2);
    let pairs = inputs::read_pairs(&s.inputs.pairs).unwrap();
    let all: Vec<&inputs::Pair> = pairs.pairs.iter().collect();
    let load = |p: &Path, l: &str| model::load(&CkptSpec::new(l, p), None, &dev()).unwrap();
    let (target, same, pert) = (load(&fixture(), "target"), load(&fixture(), "same"), load(&s.pert, "pert"));
    let points: Vec<String> = ["decoder.layers.0.ca_text.head.1", "decoder.layers.1.q0"].map(String::from).to_vec();
    let sw = Sweep {
        target: &target,
        sources: vec![&same, &pert],
        capture: vec!["decoder.layers.0.out".into()],
        interventions: vec![
            Intervention::patch("self", &points, 0),
            Intervention::patch("pert", &points, 1),
            Intervention::patch("pert presence", &["presence_logit".into()], 1),
            Intervention::new("zero q0").with(Edit::Hook { point: "decoder.layers.1.q0".into(), action: Action::Zero }),
        ],
    };
    assert_eq!(sw.points(), ["decoder.layers.0.out", "decoder.layers.0.ca_text.head.1", "decoder.layers.1.q0", "presence_logit"]);
    let t = sweep::run(&sw, &all, &hidden(), |out| Ok(model::outcome(out))).unwrap();
    assert_eq!(t.interventions, ["self", "pert", "pert presence", "zero q0"]);
    assert_eq!(t.rows.iter().map(|r| r.pair.index).collect::<Vec<_>>(), (0..pairs.pairs.len()).collect::<Vec<_>>());
    for r in &t.rows {
        let bits = |o: &Outcome| o.presence_logit.to_bits();
        assert_eq!(r.sources[0].scores, r.baseline.scores, "pair {}: the same checkpoint as a source", r.pair.index);
        assert_eq!(bits(&r.patched[0]), bits(&r.baseline), "pair {}: self-patch", r.pair.index);
        assert_eq!(r.patched[0].scores, r.baseline.scores, "pair {}: self-patch", r.pair.index);
        assert_ne!(bits(&r.patched[1]), bits(&r.baseline), "pair {}: patching q0 from another checkpoint", r.pair.index);
        assert_ne!(bits(&r.sources[1]), bits(&r.baseline));
        assert_eq!(bits(&r.patched[2]), bits(&r.sources[1]), "pair {}: the patched presence logit is the source's", r.pair.index);
        assert_ne!(bits(&r.patched[3]), bits(&r.baseline), "pair {}: zeroing q0", r.pair.index);
    }
    // A pair-set metric per column: the mean presence σ.
    let (base, each) = t.reduce(|col| col.iter().map(|(_, o)| o.presence_sigma).sum::<f64>() / col.len() as f64);
    assert_eq!(each[0], base);
    assert_ne!(each[1], base);
    // Patching from a source the sweep does not have is refused before anything runs.
    let bad = Sweep { target: &target, sources: vec![], capture: vec![], interventions: vec![Intervention::patch("x", &points, 0)] };
    let e = sweep::run(&bad, &all, &hidden(), |out| Ok(model::outcome(out))).unwrap_err().to_string();
    assert!(e.contains("source 0") && e.contains("0 source"), "{e}");
}

#[test]
fn a_pair_is_refused_by_the_evaluators_rule_not_the_processors_0_3() {
    // A query at 0.4 was "kept" under the old `> 0.3` rule, so this negative counted as a false
    // positive; the evaluator keeps only score ≥ 0.5, and an exact 0.5 is kept.
    let low = Outcome::from_scores(0.0, vec![0.4, 0.1]);
    assert_eq!(low.kept, 0);
    let edge = Outcome::from_scores(0.0, vec![0.5, 0.2]);
    assert_eq!(edge.kept, 1);
    let none = Outcome::from_scores(-3.0, vec![]);
    assert_eq!(sam3lab_probes::model::neg_correct([&low, &edge, &none]), Some(2.0 / 3.0));
    assert_eq!(sam3lab_probes::model::pos_recall([&low, &edge]), Some(0.5));
}
