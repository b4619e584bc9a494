//! `probe presence` (Fig 1.1 from live runs): per-pair σ(presence_logit) of several checkpoints,
//! equal to a direct forward's, written as presence bars (`sam3lab-results`) with the processor's
//! 0.3 threshold line, and read back in the shape the Fig 1.1 renderer checks.

use std::path::{Path, PathBuf};

use burn::prelude::Device;
use sam3lab_util::progress::NoProgress;
use sam3lab_results::{PresenceBars, SeriesRole};
use sam3lab_hooks::Hooks;
use sam3lab_model::predict::Predictor;
use sam3lab_probes::demo;
use sam3lab_probes::inputs::{self, LabelFilter};
use sam3lab_probes::model::{CkptSpec, host};
use sam3lab_probes::presence::{self, PROCESSOR_THRESHOLD, PresenceRequest};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny")
}

#[test]
fn presence_sigmas_match_a_direct_forward_and_render_as_fig_1_1() {
    let dir = tempfile::tempdir().unwrap();
    let d = demo::write_demo_inputs(dir.path(), 2, 7).unwrap();
    let pert = demo::write_perturbed(&fixture(), &dir.path().join("pert"), 0.05, 1).unwrap();
    let pairs = inputs::read_pairs(&d.pairs).unwrap();
    let req = PresenceRequest {
        checkpoints: vec![CkptSpec::new("ft", &pert), CkptSpec::new("base", fixture())],
        config: None,
        pairs: pairs.clone(),
        label: LabelFilter::Neg,
        base: None,
        threshold: PROCESSOR_THRESHOLD,
        title: None,
        seed: 0,
        device: Device::flex(),
    };
    let r = presence::run(&req, &NoProgress).unwrap();
    let negs: Vec<&inputs::Pair> = pairs.pairs.iter().filter(|p| p.label == inputs::Label::Neg).collect();
    assert!(negs.len() >= 2);
    assert_eq!(r.bars.prompts.len(), negs.len());
    assert_eq!(r.bars.threshold, Some(0.3), "the processor's confidence threshold is the line");
    assert_eq!(r.bars.series.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(), ["ft", "base"]);
    assert_eq!(r.bars.series[1].role, Some(SeriesRole::Base), "a checkpoint labelled base is the base");
    assert_eq!(r.bars.series[0].role, Some(SeriesRole::Finetune));

    // Independent: σ(presence_logit) of a plain forward, per checkpoint and negative pair.
    for (s, ckpt) in r.bars.series.iter().zip([pert.clone(), fixture()]) {
        let m = Predictor::load(&ckpt, None, &Device::flex()).unwrap();
        for (k, pair) in negs.iter().enumerate() {
            let enc = m.encode_image_file(&pair.image).unwrap();
            let text = m.encode_prompt(&pair.prompt, &mut Hooks::none()).unwrap();
            let out = m.ground(&enc, &text, &[], &mut Hooks::none()).unwrap();
            let logit = host(out.presence_logit)[0] as f64;
            let want = 1.0 / (1.0 + (-logit).exp());
            assert_eq!(s.values[k], want, "{} pair {}: σ(presence_logit)", s.label, pair.index);
        }
    }
    // The two checkpoints differ (a perturbed copy moves the gate).
    assert_ne!(r.bars.series[0].values, r.bars.series[1].values);

    // Written and read back as the Fig 1.1 input.
    let out = dir.path().join("out");
    presence::write(&out, &r).unwrap();
    let text = std::fs::read_to_string(out.join("presence.json")).unwrap();
    let back: PresenceBars = serde_json::from_str(&text).unwrap();
    assert_eq!(back.prompts, r.bars.prompts);
    assert_eq!(back.series, r.bars.series, "values survive the JSON round trip exactly");
    assert_eq!(back.threshold, Some(0.3));
    // The shape the Fig 1.1 renderer checks; the render itself is tested end to end in
    // crates/cli/tests/fidelity.rs (`figures --kind fig11` on `probe presence` output).
    back.check().unwrap();
    assert_eq!(back.manifest["checkpoints"][0]["label"], "ft");
    let csv = std::fs::read_to_string(out.join("presence.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * negs.len());
    assert!(csv.starts_with("checkpoint,pair,image,prompt,label,presence_logit,presence_sigma"));
}

#[test]
fn presence_rejects_an_unknown_base_and_repeated_labels() {
    let dir = tempfile::tempdir().unwrap();
    let d = demo::write_demo_inputs(dir.path(), 1, 7).unwrap();
    let pairs = inputs::read_pairs(&d.pairs).unwrap();
    let mk = |ckpts: Vec<CkptSpec>, base: Option<&str>| PresenceRequest {
        checkpoints: ckpts,
        config: None,
        pairs: pairs.clone(),
        label: LabelFilter::All,
        base: base.map(String::from),
        threshold: PROCESSOR_THRESHOLD,
        title: None,
        seed: 0,
        device: Device::flex(),
    };
    let e = presence::run(&mk(vec![CkptSpec::new("a", fixture())], Some("b")), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("`b`"), "{e}");
    let e = presence::run(&mk(vec![CkptSpec::new("a", fixture()), CkptSpec::new("a", fixture())], None), &NoProgress)
        .unwrap_err();
    assert!(e.to_string().contains("given twice"), "{e}");
}
