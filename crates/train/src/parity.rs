//! Training parity: one step of Meta's training code, recorded in a fixture (`sam3-tiny-train`
//! layout), replayed here — train-mode outputs, o2o/o2m matching of every output, every loss term,
//! every gradient, one AdamW step, and the presence-only case — as one table.
//!
//! Tolerances come from the fixture's `config.json` (`suggested_tolerance`, per group: losses,
//! outputs, grads, adamw; rule `max|got − ref| ≤ atol + rtol·max|ref|` per tensor); matching indices
//! must be identical. Nothing here is specific to the fixture's sizes or batch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use sam3lab_hooks::Hooks;
use sam3lab_model::parity::{Fixture, HostTensor, ParityReport, ParityRow, Status};
use sam3lab_model::{BoxPrompt, GeometryPrompt, Sam3, TrainOutput};

use crate::data::Batch;
use crate::engine::forward;
use crate::error::{Result, TrainError};
use crate::loss::{LossConfig, LossOutput, compute_loss, host};
use crate::params;
use crate::targets::Targets;

/// Whether a fixture directory holds a training fixture (its `config.json` has a `loss` block and
/// `train_mode` facts).
pub fn is_train_fixture(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("loss").is_some() && v.get("train_mode").is_some())
}

/// One tolerance group of `suggested_tolerance`.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub atol: f64,
    pub rtol: f64,
}

fn tol(fx: &Fixture, group: &str) -> Result<Tol> {
    let g = fx
        .config_json
        .get("suggested_tolerance")
        .and_then(|t| t.get(group))
        .ok_or_else(|| TrainError::input(fx.dir.join("config.json"), format!("suggested_tolerance.{group} is missing")))?;
    let num = |k: &str| {
        g.get(k).and_then(|v| v.as_f64()).ok_or_else(|| {
            TrainError::input(fx.dir.join("config.json"), format!("suggested_tolerance.{group}.{k} is missing"))
        })
    };
    Ok(Tol { atol: num("atol")?, rtol: num("rtol_of_tensor_maxabs")? })
}

fn input<'a>(fx: &'a Fixture, k: &str) -> Result<&'a HostTensor> {
    fx.input(k).map_err(TrainError::from)
}

fn ids(t: &HostTensor) -> Vec<usize> {
    t.data.iter().map(|&v| v as usize).collect()
}

/// The fixture's batch (pixel values, token ids, per-query image and phrase ids, targets) on `device`.
pub fn fixture_batch(fx: &Fixture, device: &Device) -> Result<Batch> {
    let nb = input(fx, "target.num_boxes")?;
    let boxes = input(fx, "target.boxes")?;
    let masks = input(fx, "target.masks")?;
    let valid = input(fx, "target.is_valid_mask")?;
    let exh = input(fx, "target.is_exhaustive")?;
    let oid = input(fx, "target.object_ids")?;
    let r = *masks.shape.last().unwrap_or(&0);
    let num_boxes = ids(nb);
    let total: usize = num_boxes.iter().sum();
    let bx: Vec<[f32; 4]> = boxes.data.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect();
    if bx.len() != total || valid.data.len() != total || oid.data.len() != total {
        return Err(TrainError::input(fx.dir.join("inputs.safetensors"), "target.* tensors disagree on the instance count"));
    }
    let targets = Targets {
        boxes_xyxy: bx.iter().map(|&b| crate::targets::cxcywh_to_xyxy(b)).collect(),
        boxes: bx,
        num_boxes,
        object_ids: oid.data.iter().map(|&v| v as i64).collect(),
        masks: masks.data.iter().map(|&v| (v != 0.0) as u8 as f32).collect(),
        mask_size: r,
        is_valid_mask: valid.data.iter().map(|&v| v != 0.0).collect(),
        is_exhaustive: exh.data.iter().map(|&v| v != 0.0).collect(),
    };
    let (pv, ii) = (input(fx, "pixel_values")?, input(fx, "input_ids")?);
    let img_ids = ids(input(fx, "find.img_ids")?);
    let geometry = fixture_box_prompt(fx, img_ids.len())?;
    Ok(Batch {
        pixels: Tensor::from_data(TensorData::new(pv.data.clone(), [pv.shape[0], pv.shape[1], pv.shape[2], pv.shape[3]]), device),
        input_ids: Tensor::from_data(
            TensorData::new(ii.data.iter().map(|&v| v as i64).collect::<Vec<_>>(), [ii.shape[0], ii.shape[1]]),
            device,
        ),
        pair_ids: (0..img_ids.len()).map(|q| format!("fixture:{q}")).collect(),
        img_ids,
        text_ids: ids(input(fx, "find.text_ids")?),
        targets,
        geometry,
    })
}

/// The fixture's box prompt (`find.input_boxes` `(N_boxes, n, 4)` cxcywh, `find.input_boxes_label`
/// `(N_boxes, n)`, `find.input_boxes_mask` `(n, N_boxes)`, true = padding), if it has one. sam3lab's
/// training batch gives one geometric prompt to every query, so the boxes must be the same for
/// every query and unpadded.
fn fixture_box_prompt(fx: &Fixture, n: usize) -> Result<GeometryPrompt> {
    let Some(boxes) = fx.inputs.get("find.input_boxes") else {
        return Ok(GeometryPrompt::default());
    };
    let path = fx.dir.join("inputs.safetensors");
    let labels = input(fx, "find.input_boxes_label")?;
    let mask = input(fx, "find.input_boxes_mask")?;
    let nb = boxes.shape.first().copied().unwrap_or(0);
    if boxes.shape != [nb, n, 4] || labels.shape != [nb, n] || mask.shape != [n, nb] {
        return Err(TrainError::input(
            &path,
            format!(
                "find.input_boxes {:?} / _label {:?} / _mask {:?} do not fit {n} find queries",
                boxes.shape, labels.shape, mask.shape
            ),
        ));
    }
    if mask.data.iter().any(|&m| m != 0.0) {
        return Err(TrainError::input(&path, "find.input_boxes_mask pads some box: per-query box counts are not supported"));
    }
    let mut out = Vec::with_capacity(nb);
    for k in 0..nb {
        let at = |q: usize| &boxes.data[(k * n + q) * 4..(k * n + q + 1) * 4];
        let label = labels.data[k * n];
        if (0..n).any(|q| at(q) != at(0) || labels.data[k * n + q] != label) {
            return Err(TrainError::input(&path, format!("box prompt {k} differs between find queries: not supported")));
        }
        let b = at(0);
        let p = BoxPrompt { cxcywh: [b[0], b[1], b[2], b[3]], positive: label != 0.0 };
        p.validate().map_err(|e| TrainError::input(&path, format!("box prompt {k}: {e}")))?;
        out.push(p);
    }
    Ok(GeometryPrompt::boxes(&out))
}

struct Table {
    rows: Vec<ParityRow>,
}

impl Table {
    fn compare(&mut self, key: &str, kind: &str, ours: Option<(&[usize], &[f32])>, reference: &HostTensor, t: Tol, note: &str) {
        let Some((shape, v)) = ours else {
            self.rows.push(row(key, kind, &reference.shape, None, None, t, Status::NotCovered, note));
            return;
        };
        if v.len() != reference.data.len() {
            let why = format!("shape {shape:?} vs reference {:?}", reference.shape);
            self.rows.push(row(key, kind, shape, None, None, t, Status::Fail, &why));
            return;
        }
        let max_ref = reference.data.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
        let mut max_abs = 0f64;
        let mut finite = true;
        for (a, b) in v.iter().zip(&reference.data) {
            finite &= a.is_finite();
            max_abs = max_abs.max((*a as f64 - *b as f64).abs());
        }
        let bound = t.atol + t.rtol * max_ref;
        let ok = finite && max_abs <= bound;
        let rel = (max_ref > 0.0).then(|| max_abs / max_ref);
        let why = if ok {
            note.to_string()
        } else if !finite {
            "non-finite values".into()
        } else {
            format!("max|d| {max_abs:.3e} > {bound:.3e}")
        };
        self.rows.push(row(key, kind, shape, Some(max_abs), rel, t, if ok { Status::Pass } else { Status::Fail }, &why));
    }

    fn exact(&mut self, key: &str, ours: String, reference: String) {
        let ok = ours == reference;
        let note = if ok { ours } else { format!("ours {ours} vs reference {reference}") };
        self.rows.push(row(key, "matching", &[], None, None, Tol { atol: 0.0, rtol: 0.0 }, if ok { Status::Pass } else { Status::Fail }, &note));
    }
}

#[allow(clippy::too_many_arguments)]
fn row(key: &str, kind: &str, shape: &[usize], max_abs: Option<f64>, max_rel: Option<f64>, t: Tol, status: Status, note: &str) -> ParityRow {
    ParityRow {
        key: key.to_string(),
        hook: kind.to_string(),
        shape: shape.to_vec(),
        max_abs,
        max_rel,
        atol: t.atol,
        rtol: t.rtol,
        status,
        note: note.to_string(),
    }
}

fn output_tensors(out: &TrainOutput) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut m = BTreeMap::new();
    let n = out.layers.len();
    for (i, l) in out.layers.iter().enumerate() {
        let p = if i + 1 == n { "out.".to_string() } else { format!("out.aux_{i}.") };
        let mut put3 = |k: &str, t: &Tensor<3>| {
            m.insert(format!("{p}{k}"), (t.dims().to_vec(), host(t)));
        };
        put3("pred_logits", &l.o2o.pred_logits);
        put3("pred_boxes", &l.o2o.pred_boxes);
        put3("pred_boxes_xyxy", &l.o2o.pred_boxes_xyxy);
        put3("pred_logits_o2m", &l.o2m.pred_logits);
        put3("pred_boxes_o2m", &l.o2m.pred_boxes);
        put3("pred_boxes_xyxy_o2m", &l.o2m.pred_boxes_xyxy);
        m.insert(format!("{p}presence_logit_dec"), (l.presence_logit.dims().to_vec(), host(&l.presence_logit)));
        if let Some(t) = &l.o2o.pred_masks {
            m.insert(format!("{p}pred_masks"), (t.dims().to_vec(), host(t)));
        }
        if let Some(t) = &l.o2m.pred_masks {
            m.insert(format!("{p}pred_masks_o2m"), (t.dims().to_vec(), host(t)));
        }
    }
    m
}

fn fmt_indices(batch: &[usize], src: &[usize], tgt: Option<&[usize]>) -> String {
    let t = tgt.map(|t| format!("{t:?}")).unwrap_or_else(|| "packed".into());
    format!("b{batch:?} q{src:?} t{t}")
}

fn json_indices(v: &serde_json::Value) -> Option<(Vec<usize>, Vec<usize>, Option<Vec<usize>>)> {
    let arr = |k: &str| v.get(k)?.as_array().map(|a| a.iter().filter_map(|x| x.as_u64()).map(|x| x as usize).collect::<Vec<_>>());
    Some((arr("batch_idx")?, arr("src_idx")?, if v.get("tgt_idx")?.is_null() { None } else { arr("tgt_idx") }))
}

/// Load the fixture's model on an autodiff device with exactly the parameters `trainable` selects.
fn load_trainable(fx: &Fixture, device: &Device, trainable: &dyn Fn(&str) -> bool) -> Result<Sam3> {
    let (model, _) = Sam3::load(&fx.dir, None, &device.clone().autodiff())?;
    Ok(params::set_trainable(model, "", trainable).train())
}

fn loss_and_grads(fx: &Fixture, batch: &Batch, cfg: &LossConfig, device: &Device, trainable: &dyn Fn(&str) -> bool)
    -> Result<(Sam3, TrainOutput, LossOutput, burn::tensor::Gradients)> {
    let model = load_trainable(fx, device, trainable)?;
    let out = forward(&model, batch, &mut Hooks::none())?;
    let loss = compute_loss(&out, &batch.targets, cfg).map_err(TrainError::Usage)?;
    let grads = loss.core.backward();
    Ok((model, out, loss, grads))
}

/// Run a training fixture and compare everything it records.
pub fn run_train_parity(dir: &Path, device: &Device) -> Result<ParityReport> {
    let fx = Fixture::load(dir)?;
    let cfg_path = dir.join("config.json");
    let loss_cfg = LossConfig::from_reference_json(fx.config_json.get("loss").unwrap_or(&serde_json::Value::Null))
        .map_err(|why| TrainError::input(&cfg_path, why))?;
    let (t_loss, t_out, t_grad, t_adam) = (tol(&fx, "losses")?, tol(&fx, "outputs")?, tol(&fx, "grads")?, tol(&fx, "adamw")?);
    let matching: serde_json::Value = std::fs::read_to_string(dir.join("matching.json"))
        .map_err(|e| TrainError::io(dir.join("matching.json"), e))
        .and_then(|t| serde_json::from_str(&t).map_err(|e| TrainError::input(dir.join("matching.json"), e.to_string())))?;
    let batch = fixture_batch(&fx, &device.clone().autodiff())?;
    let expected: BTreeMap<&str, &HostTensor> = fx.expected.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut table = Table { rows: vec![] };

    // Full case: every parameter trainable.
    let (model, out, loss, grads) = loss_and_grads(&fx, &batch, &loss_cfg, device, &|_| true)?;

    // Outputs.
    let outs = output_tensors(&out);
    for (k, r) in expected.iter().filter(|(k, _)| k.starts_with("out.")) {
        let ours = outs.get(*k).map(|(s, v)| (s.as_slice(), v.as_slice()));
        table.compare(k, "output", ours, r, t_out, "the model has no such output");
    }
    // Matching: every output's o2o and o2m indices.
    let n = out.layers.len();
    for m in matching.get("outputs").and_then(|v| v.as_array()).into_iter().flatten() {
        let name = m.get("name").and_then(|v| v.as_str()).unwrap_or("?");
        let suffix = m.get("loss_suffix").and_then(|v| v.as_str()).unwrap_or("");
        let ours = loss.matching.iter().find(|o| o.suffix == suffix);
        for kind in ["o2o", "o2m"] {
            let key = format!("matching.{name}.{kind}");
            let Some((b, s, t)) = m.get(kind).and_then(json_indices) else { continue };
            let theirs = fmt_indices(&b, &s, t.as_deref());
            match ours {
                Some(o) => {
                    let idx = if kind == "o2o" { &o.o2o } else { &o.o2m };
                    table.exact(&key, fmt_indices(&idx.batch, &idx.src, idx.tgt.as_deref()), theirs);
                }
                None => table.rows.push(row(&key, "matching", &[], None, None, t_loss, Status::NotCovered, &format!("{n} decoder layers"))),
            }
        }
    }
    // Loss terms.
    let values = loss.values();
    for (k, r) in expected.iter().filter(|(k, _)| k.starts_with("loss.")) {
        let name = &k["loss.".len()..];
        let v = values.get(name).map(|v| vec![*v]);
        table.compare(k, "loss", v.as_ref().map(|v| (&[][..], v.as_slice())), r, t_loss, "no such loss term");
    }
    // Gradients (torch layout). Parameters the reference saw only through empty tensors get an
    // all-zero gradient there and none here: compared as zeros.
    let ours: BTreeMap<String, (Vec<usize>, Vec<f32>)> = params::grads(&model, "", &grads).into_iter().map(|(n, s, v)| (n, (s, v))).collect();
    let names: BTreeSet<String> = params::list(&model, "").into_iter().map(|p| p.name).collect();
    let mut sq = 0f64;
    for (_, v) in ours.values() {
        sq += v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>();
    }
    let zeros_for: Vec<(String, Vec<usize>, Vec<f32>)> = expected
        .iter()
        .filter_map(|(k, r)| k.strip_prefix("grad.").map(|p| (p.to_string(), r)))
        .filter(|(p, _)| !ours.contains_key(p) && names.contains(p))
        .map(|(p, r)| (p, r.shape.clone(), vec![0f32; r.data.len()]))
        .collect();
    for (k, r) in expected.iter().filter(|(k, _)| k.starts_with("grad.")) {
        let p = &k["grad.".len()..];
        if let Some((s, v)) = ours.get(p) {
            table.compare(k, "grad", Some((s, v)), r, t_grad, "");
        } else if let Some((_, s, v)) = zeros_for.iter().find(|z| z.0 == p) {
            table.compare(k, "grad", Some((s, v)), r, t_grad, "no gradient here (unused by this batch): compared as zeros");
        } else {
            table.compare(k, "grad", None, r, t_grad, "no such parameter");
        }
    }
    for (p, (s, v)) in &ours {
        if !expected.contains_key(format!("grad.{p}").as_str()) {
            let zero = HostTensor { shape: s.clone(), data: vec![0.0; v.len()] };
            table.compare(&format!("grad.{p}"), "grad (reference: none)", Some((s, v)), &zero, t_grad, "reference has no gradient; ours is zero");
        }
    }
    if let Some(r) = expected.get("grad_total_norm") {
        table.compare("grad_total_norm", "grad", Some((&[], &[sq.sqrt() as f32])), r, t_grad, "");
    }

    // One AdamW step on these gradients (torch.optim.AdamW(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, wd=0.01)).
    let gp = GradientsParams::from_grads(grads, &model);
    let mut optim = AdamWConfig::new().with_beta_1(0.9).with_beta_2(0.999).with_epsilon(1e-8).with_weight_decay(0.01).init();
    let stepped = optim.step(1e-3, model, gp).valid();
    let want: BTreeSet<String> = expected.keys().filter_map(|k| k.strip_prefix("adamw.")).map(str::to_string).collect();
    let after: BTreeMap<String, (Vec<usize>, Vec<f32>)> =
        params::values(&stepped, "", &want).into_iter().map(|(n, s, v)| (n, (s, v))).collect();
    for (k, r) in expected.iter().filter(|(k, _)| k.starts_with("adamw.")) {
        let ours = after.get(&k["adamw.".len()..]).map(|(s, v)| (s.as_slice(), v.as_slice()));
        table.compare(k, "adamw", ours, r, t_adam, "no such parameter");
    }
    for (k, r) in expected.iter().filter(|(k, _)| k.starts_with("adamw_state.")) {
        table.compare(k, "adamw state", None, r, t_adam, "burn keeps AdamW moments inside its optimizer; checked through the stepped values");
    }

    // Presence-only: a fresh model with only the presence head trainable.
    let presence: Vec<String> = fx
        .config_json
        .pointer("/presence_only/trainable")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if !presence.is_empty() {
        let set: BTreeSet<String> = presence.iter().cloned().collect();
        let (pm, _, ploss, pgrads) = loss_and_grads(&fx, &batch, &loss_cfg, device, &|n| set.contains(n))?;
        let pg: BTreeMap<String, (Vec<usize>, Vec<f32>)> =
            params::grads(&pm, "", &pgrads).into_iter().map(|(n, s, v)| (n, (s, v))).collect();
        if let Some(r) = expected.get("presence_only.loss.core_loss") {
            table.compare("presence_only.loss.core_loss", "loss", Some((&[], &[ploss.values()["core_loss"]])), r, t_loss, "");
        }
        for (k, r) in expected.iter().filter(|(k, _)| k.starts_with("presence_only.grad.")) {
            let p = &k["presence_only.grad.".len()..];
            table.compare(k, "grad", pg.get(p).map(|(s, v)| (s.as_slice(), v.as_slice())), r, t_grad, "no gradient");
        }
        // Exactly the selected tensors received gradients (BTreeMap/BTreeSet: both sorted).
        let got: Vec<&String> = pg.keys().collect();
        let want: Vec<&String> = set.iter().collect();
        table.exact("presence_only.trainable", format!("{} tensors {got:?}", got.len()), format!("{} tensors {want:?}", want.len()));
    }

    let passed = table.rows.iter().filter(|r| r.status == Status::Pass).count();
    let failed = table.rows.iter().filter(|r| r.status == Status::Fail).count();
    let not_covered = table.rows.iter().filter(|r| r.status == Status::NotCovered).count();
    Ok(ParityReport {
        fixture: dir.display().to_string(),
        config_sha256: fx.config_sha256.clone(),
        weights_sha256: sam3lab_model::checkpoint::sha256_file(&dir.join("weights.safetensors"))?,
        mode: "train".into(),
        atol: t_grad.atol,
        rtol: t_grad.rtol,
        mask_atol: t_out.atol,
        passed,
        failed,
        not_covered,
        rows: table.rows,
        rule: Some(format!(
            "per tensor max|d| <= atol + rtol*max|ref|: losses {:e}+{:e}, outputs {:e}+{:e}, grads {:e}+{:e}, adamw {:e}+{:e}; matching exact",
            t_loss.atol, t_loss.rtol, t_out.atol, t_out.rtol, t_grad.atol, t_grad.rtol, t_adam.atol, t_adam.rtol
        )),
    })
}
