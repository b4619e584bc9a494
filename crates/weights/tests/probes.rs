//! Diff, groups, cosines and the reader on small generated checkpoints with known answers.

mod common;

use common::{T, t, values, write_pt, write_st};
use sam3lab_util::progress::NoProgress;
use safetensors::Dtype;
use sam3lab_weights::cosines::{Trajectory, cosines};
use sam3lab_weights::diff::{diff, summarize, tensor_sums};
use sam3lab_checkpoint::{Checkpoint, CheckpointError};
use sam3lab_weights::{GroupRule, Groups, WeightsError};

fn hidden() -> NoProgress {
    NoProgress
}

fn scaled(ts: &[T], f: impl Fn(usize, f32) -> f32) -> Vec<T> {
    ts.iter()
        .map(|x| T {
            values: x.values.iter().enumerate().map(|(i, v)| f(i, *v)).collect(),
            ..x.clone()
        })
        .collect()
}

fn f64_sums(a: &[f32], b: &[f32]) -> (f64, f64) {
    a.iter().zip(b).fold((0.0, 0.0), |(sb, sd), (&x, &y)| {
        let d = f64::from(y) - f64::from(x);
        (sb + f64::from(x) * f64::from(x), sd + d * d)
    })
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300)
}

/// Δ = c·base exactly (1 + c a power of two) → rel_change = |c| for every tensor; arbitrary deltas
/// agree with an f64 reference computed here.
#[test]
fn rel_change_matches_known_scaling_and_f64_reference() {
    let dir = tempfile::tempdir().unwrap();
    let base = vec![
        t("a.weight", &[64, 33], values(1, 64 * 33)),
        t("b.bias", &[7], values(2, 7)),
        t("big.weight", &[3000, 700], values(3, 2_100_000)), // spans several work chunks
    ];
    for (c, factor) in [(1.0f64, 2.0f32), (-0.5, 0.5), (3.0, 4.0), (-2.0, -1.0)] {
        let other = scaled(&base, |_, v| v * factor);
        write_st(&dir.path().join("base.safetensors"), &base, Dtype::F32);
        write_st(&dir.path().join("other.safetensors"), &other, Dtype::F32);
        let b = Checkpoint::open(dir.path().join("base.safetensors")).unwrap();
        let o = Checkpoint::open(dir.path().join("other.safetensors")).unwrap();
        let r = diff(&b, &o, &Groups::default_sam3(), "x", &hidden()).unwrap();
        assert_eq!(r.tensors.len(), 3);
        for row in &r.tensors {
            let rc = row.rel_change.unwrap();
            assert!(close(rc, c.abs(), 1e-6), "{}: {rc} vs {c}", row.name);
        }
    }
    // Arbitrary deltas of different sizes per tensor vs an independent f64 computation.
    let other = scaled(&base, |i, v| v + 0.01 * ((i % 17) as f32 - 8.0) / 8.0);
    write_st(&dir.path().join("other.safetensors"), &other, Dtype::F32);
    let b = Checkpoint::open(dir.path().join("base.safetensors")).unwrap();
    let o = Checkpoint::open(dir.path().join("other.safetensors")).unwrap();
    let r = diff(&b, &o, &Groups::default_sam3(), "x", &hidden()).unwrap();
    for (row, (x, y)) in r.tensors.iter().zip(base.iter().zip(&other)) {
        assert_eq!(row.name, x.name);
        let (sb, sd) = f64_sums(&x.values, &y.values);
        assert!(close(row.base_norm, sb.sqrt(), 1e-6), "{}", row.name);
        assert!(close(row.delta_norm, sd.sqrt(), 1e-5), "{}", row.name);
        assert_eq!(row.numel as usize, x.values.len());
    }
    // The identity is the file's sha256 (checked against a second hashing route).
    let expect = sha256_bytes(&std::fs::read(dir.path().join("other.safetensors")).unwrap());
    assert_eq!(r.other.sha256, expect);
}

fn sha256_bytes(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Group rows: parameter-count-weighted mean of per-tensor rel_change and the aggregate ratio,
/// recomputed here from the tensor rows' definition with known per-tensor factors.
#[test]
fn group_weighting_matches_independent_computation() {
    let dir = tempfile::tempdir().unwrap();
    let base = vec![
        t(
            "transformer.decoder.layers.0.self_attn.in_proj_weight",
            &[24, 8],
            values(10, 192),
        ),
        t(
            "transformer.decoder.layers.0.norm2.weight",
            &[8],
            values(11, 8),
        ),
        t(
            "transformer.decoder.layers.1.ca_text.out_proj.weight",
            &[8, 8],
            values(12, 64),
        ),
        t(
            "transformer.decoder.presence_token_out_norm.bias",
            &[8],
            values(13, 8),
        ),
        t("dot_prod_scoring.hs_proj.weight", &[8, 8], values(14, 64)),
        t(
            "backbone.vision_backbone.trunk.blocks.0.attn.qkv.weight",
            &[24, 8],
            values(15, 192),
        ),
    ];
    // Per-tensor factor 1 + c with c = 2^k - 1 exact: rel_change = |c| exactly.
    let factors = [2.0f32, 0.5, 4.0, -1.0, 0.25, 1.0];
    let other: Vec<T> = base
        .iter()
        .zip(factors)
        .map(|(x, f)| T {
            values: x.values.iter().map(|v| v * f).collect(),
            ..x.clone()
        })
        .collect();
    write_st(&dir.path().join("b.safetensors"), &base, Dtype::F32);
    write_st(&dir.path().join("o.safetensors"), &other, Dtype::F32);
    let groups = Groups::new(
        vec![
            GroupRule {
                group: "decoder".into(),
                regex: r"^transformer\.decoder\.".into(),
            },
            GroupRule {
                group: "self_attn".into(),
                regex: r"self_attn|norm2".into(),
            },
            GroupRule {
                group: "everything".into(),
                regex: ".".into(),
            },
            GroupRule {
                group: "nothing".into(),
                regex: "^zzz".into(),
            },
        ],
        "test",
    )
    .unwrap();
    let b = Checkpoint::open(dir.path().join("b.safetensors")).unwrap();
    let o = Checkpoint::open(dir.path().join("o.safetensors")).unwrap();
    let r = diff(&b, &o, &groups, "x", &hidden()).unwrap();

    let expect = |members: &[usize]| {
        let (mut wn, mut w, mut sb, mut sd) = (0f64, 0f64, 0f64, 0f64);
        for &i in members {
            let n = base[i].values.len() as f64;
            let c = f64::from(factors[i]) - 1.0;
            wn += n * c.abs();
            w += n;
            let (b2, d2) = f64_sums(&base[i].values, &other[i].values);
            sb += b2;
            sd += d2;
        }
        (
            wn / w,
            (sd / sb).sqrt(),
            members
                .iter()
                .map(|&i| base[i].values.len() as u64)
                .sum::<u64>(),
        )
    };
    for (g, members) in [
        ("decoder", vec![0, 1, 2, 3]),
        ("self_attn", vec![0, 1]),
        ("everything", vec![0, 1, 2, 3, 4, 5]),
    ] {
        let row = r.groups.iter().find(|x| x.group == g).unwrap();
        let (wm, agg, numel) = expect(&members);
        assert_eq!(row.tensors, Some(members.len()), "{g}");
        assert_eq!(row.numel, Some(numel), "{g}");
        assert!(
            close(row.rel_change_weighted.unwrap(), wm, 1e-6),
            "{g}: {:?} vs {wm}",
            row.rel_change_weighted
        );
        assert!(close(row.rel_change_aggregate.unwrap(), agg, 1e-6), "{g}");
    }
    let none = r.groups.iter().find(|x| x.group == "nothing").unwrap();
    assert_eq!(
        (
            none.tensors,
            none.rel_change_weighted,
            none.rel_change_aggregate
        ),
        (Some(0), None, None)
    );
}

/// The default groups reproduce the design doc's parameter counts on SAM3's real layout.
#[test]
fn default_groups_cover_the_design_doc_counts() {
    use sam3lab_weights::TensorSums;
    use sam3lab_weights::synth::{SAM3_PARAMS, sam3_layout};
    let layout = sam3_layout();
    let total: u64 = layout
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() as u64)
        .sum();
    assert_eq!(total, SAM3_PARAMS);
    let sums: Vec<TensorSums> = layout
        .iter()
        .map(|(n, s)| TensorSums {
            name: n.clone(),
            numel: s.iter().product::<usize>() as u64,
            base_sq: 1.0,
            delta_sq: 0.0,
        })
        .collect();
    let (_, groups) = summarize(&sums, &Groups::default_sam3());
    let get = |g: &str| {
        groups
            .iter()
            .find(|x| x.group == g)
            .map(|x| (x.numel.unwrap(), x.tensors.unwrap()))
            .unwrap()
    };
    // Design doc §1.3 / §4 (counts verified there by instantiating the reference model).
    assert_eq!(get("vision_trunk"), (446_237_696, 388));
    assert_eq!(get("neck"), (7_802_112, 22));
    assert_eq!(get("text_encoder"), (353_724_672, 295));
    assert_eq!(get("geometry_encoder"), (8_215_808, 76));
    assert_eq!(get("fusion_encoder"), (9_472_512, 108));
    assert_eq!(get("transformer_decoder"), (11_575_093, 175));
    assert_eq!(get("dot_prod_scoring"), (1_182_976, 10));
    assert_eq!(get("segmentation_head"), (2_298_881, 28));
    assert_eq!(get("presence_head").0, 132_609);
    assert_eq!(get("decoder_self_attn").0, 1_579_008 + 3_072);
    assert_eq!(get("decoder_ca_text").0, 1_579_008 + 3_072);
    assert_eq!(get("decoder_ca_image").0, 1_579_008 + 3_072);
    assert_eq!(get("decoder_ffn").0, 6_305_280 + 3_072);
}

fn vecs(dir: &std::path::Path, name: &str, param: &str, v: &[f32]) -> std::path::PathBuf {
    let p = dir.join(name);
    write_st(
        &p,
        &[
            t(param, &[v.len()], v.to_vec()),
            t("other.weight", &[2], vec![1.0, 2.0]),
        ],
        Dtype::F32,
    );
    p
}

fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// Hand-computed Fig. 8.1 geometry in 4-d: base = (0,0,0,5) so ‖base‖ = 5.
/// A: Δ=(10,0,0,0) → x = 2. T: Δ=(−5,5,0,0) → (−1, 1). C starts at A's tip: Δ=(2.5,0,0,7) → (0.5, 0)
/// from (2,0). D: Δ=(0,0,3,0) ⟂ both → (0,0). E starts at X = base+(0,2.5,0,0) (no trajectory ends
/// there) → origin (0, 0.5), Δ=(5,0,0,0) → tip (1, 0.5).
#[test]
fn cosines_and_projection_match_hand_computation() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = "transformer.decoder.presence_token_out_norm.bias";
    let base_v = [0.0, 0.0, 0.0, 5.0];
    let a_to = add(&base_v, &[10.0, 0.0, 0.0, 0.0]);
    let base = Checkpoint::open(vecs(d, "base.safetensors", p, &base_v)).unwrap();
    let a = Checkpoint::open(vecs(d, "a.safetensors", p, &a_to)).unwrap();
    let tw = Checkpoint::open(vecs(
        d,
        "t.safetensors",
        p,
        &add(&base_v, &[-5.0, 5.0, 0.0, 0.0]),
    ))
    .unwrap();
    let c = Checkpoint::open(vecs(
        d,
        "c.safetensors",
        p,
        &add(&a_to, &[2.5, 0.0, 0.0, 7.0]),
    ))
    .unwrap();
    let dd = Checkpoint::open(vecs(
        d,
        "d.safetensors",
        p,
        &add(&base_v, &[0.0, 0.0, 3.0, 0.0]),
    ))
    .unwrap();
    let x_v = add(&base_v, &[0.0, 2.5, 0.0, 0.0]);
    let x = Checkpoint::open(vecs(d, "x.safetensors", p, &x_v)).unwrap();
    let e = Checkpoint::open(vecs(
        d,
        "e.safetensors",
        p,
        &add(&x_v, &[5.0, 0.0, 0.0, 0.0]),
    ))
    .unwrap();
    // A second handle on A's file: chaining must go by content (sha256), not by which handle.
    let a2 = Checkpoint::open(d.join("a.safetensors")).unwrap();
    let trajs = vec![
        Trajectory {
            label: "A".into(),
            from: &base,
            to: &a,
        },
        Trajectory {
            label: "T".into(),
            from: &base,
            to: &tw,
        },
        Trajectory {
            label: "C".into(),
            from: &a2,
            to: &c,
        },
        Trajectory {
            label: "D".into(),
            from: &base,
            to: &dd,
        },
        Trajectory {
            label: "E".into(),
            from: &x,
            to: &e,
        },
    ];
    let r = cosines(p, &base, &trajs, Some("A"), Some("T")).unwrap();
    assert_eq!(r.base_norm, Some(5.0));
    let norms = [10.0, 50f64.sqrt(), (2.5f64 * 2.5 + 49.0).sqrt(), 3.0, 5.0];
    for (tr, n) in r.trajectories.iter().zip(norms) {
        assert!(close(tr.delta_norm.unwrap(), n, 1e-12), "{}", tr.label);
        assert!(close(tr.rel_base.unwrap(), n / 5.0, 1e-12), "{}", tr.label);
    }
    let deltas: [[f64; 4]; 5] = [
        [10.0, 0.0, 0.0, 0.0],
        [-5.0, 5.0, 0.0, 0.0],
        [2.5, 0.0, 0.0, 7.0],
        [0.0, 0.0, 3.0, 0.0],
        [5.0, 0.0, 0.0, 0.0],
    ];
    for s in 0..5 {
        for u in 0..5 {
            let dot: f64 = (0..4).map(|k| deltas[s][k] * deltas[u][k]).sum();
            let want = dot / (norms[s] * norms[u]);
            let got = r.cosine[s][u].unwrap();
            assert!((got - want).abs() < 1e-12, "cos[{s}][{u}] {got} vs {want}");
        }
    }
    assert_eq!(r.cosine[0][3], Some(0.0)); // orthogonal deltas
    assert!((r.cosine[0][1].unwrap() + 1.0 / 2f64.sqrt()).abs() < 1e-12);
    let pts = &r.projection.as_ref().unwrap().points;
    let want = [
        ([0.0, 0.0], [2.0, 0.0]),
        ([0.0, 0.0], [-1.0, 1.0]),
        ([2.0, 0.0], [2.5, 0.0]),
        ([0.0, 0.0], [0.0, 0.0]),
        ([0.0, 0.5], [1.0, 0.5]),
    ];
    for (pt, (o, tip)) in pts.iter().zip(want) {
        for k in 0..2 {
            assert!(
                (pt.origin[k] - o[k]).abs() < 1e-12,
                "{} origin {:?}",
                pt.label,
                pt.origin
            );
            assert!(
                (pt.tip[k] - tip[k]).abs() < 1e-12,
                "{} tip {:?}",
                pt.label,
                pt.tip
            );
        }
    }
    // Default toward = the largest component orthogonal to the axis: C (‖(0,0,0,7)‖ = 7).
    let r2 = cosines(p, &base, &trajs, None, None).unwrap();
    assert_eq!(
        (r2.projection.as_ref().unwrap().axis.as_str(), r2.projection.as_ref().unwrap().toward.as_str()),
        ("A", "C")
    );
    // With toward = C, T's y is its component along (0,0,0,1): 0; C's y is 7/5.
    assert!((r2.projection.as_ref().unwrap().points[2].tip[1] - 1.4).abs() < 1e-12);
    assert!(r2.projection.as_ref().unwrap().points[1].tip[1].abs() < 1e-12);
}

/// A one-element parameter: every cosine is exactly ±1 (the post's sanity check).
#[test]
fn scalar_parameter_gives_plus_minus_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = "transformer.decoder.presence_token_head.layers.2.bias";
    let base = Checkpoint::open(vecs(d, "base.safetensors", p, &[0.37])).unwrap();
    let moves = [0.3f32, 0.12, -1.7, 2.25, 1e-3];
    let cks: Vec<Checkpoint> = moves
        .iter()
        .enumerate()
        .map(|(i, m)| {
            Checkpoint::open(vecs(d, &format!("m{i}.safetensors"), p, &[0.37 + m])).unwrap()
        })
        .collect();
    let trajs: Vec<Trajectory> = cks
        .iter()
        .enumerate()
        .map(|(i, c)| Trajectory {
            label: format!("t{i}"),
            from: &base,
            to: c,
        })
        .collect();
    let r = cosines(p, &base, &trajs, None, None).unwrap();
    for s in 0..moves.len() {
        for u in 0..moves.len() {
            let sign = (moves[s] * moves[u]).signum() as f64;
            assert_eq!(r.cosine[s][u], Some(sign), "cos[{s}][{u}]");
        }
    }
    assert!(r.projection.as_ref().unwrap().points.iter().all(|p| p.tip[1] == 0.0));
}

/// f16 and bf16 checkpoints decode to the same values as f32 (values exactly representable).
#[test]
fn f16_and_bf16_decode_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // Multiples of 1/64 in (−2, 2) are exact in f16 and bf16 (≤ 8 significant bits).
    let v: Vec<f32> = (0..300)
        .map(|i| ((i * 37 % 251) as f32 - 125.0) / 64.0)
        .collect();
    let ts = vec![t("x.weight", &[300], v.clone())];
    for (name, dt) in [
        ("f32", Dtype::F32),
        ("f16", Dtype::F16),
        ("bf16", Dtype::BF16),
        ("f64", Dtype::F64),
    ] {
        write_st(&dir.path().join(format!("{name}.safetensors")), &ts, dt);
    }
    let f32c = Checkpoint::open(dir.path().join("f32.safetensors")).unwrap();
    for name in ["f16", "bf16", "f64"] {
        let c = Checkpoint::open(dir.path().join(format!("{name}.safetensors"))).unwrap();
        assert_eq!(c.read_f32("x.weight").unwrap(), v, "{name}");
        let r = diff(&f32c, &c, &Groups::default_sam3(), name, &hidden()).unwrap();
        assert_eq!(r.tensors[0].delta_norm, 0.0, "{name}");
        let (sb, _) = f64_sums(&v, &v);
        assert!(close(r.tensors[0].base_norm, sb.sqrt(), 1e-6));
    }
    // A value that is not representable rounds as half does.
    let odd = vec![t("y", &[1], vec![1.0 + 1.0 / 4096.0])];
    write_st(&dir.path().join("odd.safetensors"), &odd, Dtype::BF16);
    let c = Checkpoint::open(dir.path().join("odd.safetensors")).unwrap();
    assert_eq!(
        c.read_f32("y").unwrap(),
        vec![half::bf16::from_f32(1.0 + 1.0 / 4096.0).to_f32()]
    );
}

/// `detector.`-prefixed video checkpoints compare with plain image checkpoints; tracker keys,
/// sam2_convs and freqs_cis are skipped; lookups accept either spelling.
#[test]
fn detector_prefix_is_normalised_and_tracker_keys_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let plain = vec![
        t("transformer.decoder.norm.weight", &[4], values(1, 4)),
        t(
            "backbone.vision_backbone.trunk.blocks.0.attn.qkv.weight",
            &[6, 2],
            values(2, 12),
        ),
    ];
    let mut video: Vec<T> = plain
        .iter()
        .map(|x| T {
            name: format!("detector.{}", x.name),
            ..x.clone()
        })
        .collect();
    video.push(t("tracker.maskmem_tpos_enc", &[3], values(3, 3)));
    video.push(t(
        "detector.backbone.vision_backbone.sam2_convs.0.conv_1x1.weight",
        &[2],
        values(4, 2),
    ));
    video.push(t(
        "detector.backbone.vision_backbone.trunk.blocks.0.attn.freqs_cis",
        &[2],
        values(5, 2),
    ));
    write_st(&dir.path().join("plain.safetensors"), &plain, Dtype::F32);
    write_st(&dir.path().join("video.safetensors"), &video, Dtype::F32);
    let p = Checkpoint::open(dir.path().join("plain.safetensors")).unwrap();
    let v = Checkpoint::open(dir.path().join("video.safetensors")).unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v.all_entries().len(), 5);
    assert!(v.get("detector.transformer.decoder.norm.weight").is_some());
    assert!(v.get("transformer.decoder.norm.weight").is_some());
    let r = diff(&p, &v, &Groups::default_sam3(), "x", &hidden()).unwrap();
    let names: Vec<&str> = r.tensors.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "backbone.vision_backbone.trunk.blocks.0.attn.qkv.weight",
            "transformer.decoder.norm.weight"
        ]
    );
    assert!(r.tensors.iter().all(|x| x.delta_norm == 0.0));
}

/// `.pt` through burn's PytorchReader, with a `{"model": …}` wrapper and `detector.` keys.
#[test]
fn pytorch_checkpoint_reads_like_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let ts = vec![
        t("transformer.decoder.norm.weight", &[4], values(1, 4)),
        t("dot_prod_scoring.hs_proj.weight", &[3, 5], values(2, 15)),
    ];
    let wrapped: Vec<T> = ts
        .iter()
        .map(|x| T {
            name: format!("detector.{}", x.name),
            ..x.clone()
        })
        .collect();
    write_pt(&dir.path().join("m.pt"), &wrapped, true);
    write_pt(&dir.path().join("plain.pt"), &ts, false);
    write_st(
        &dir.path().join("m.safetensors"),
        &scaled(&ts, |_, v| v * 2.0),
        Dtype::F32,
    );
    for name in ["m.pt", "plain.pt"] {
        let pt = Checkpoint::open(dir.path().join(name)).unwrap();
        assert_eq!(pt.format(), sam3lab_checkpoint::Format::Pytorch);
        assert_eq!(
            pt.read_f32("dot_prod_scoring.hs_proj.weight").unwrap(),
            ts[1].values,
            "{name}"
        );
        let st = Checkpoint::open(dir.path().join("m.safetensors")).unwrap();
        let r = diff(&pt, &st, &Groups::default_sam3(), "x", &hidden()).unwrap();
        for row in &r.tensors {
            assert!(
                close(row.rel_change.unwrap(), 1.0, 1e-6),
                "{name} {}",
                row.name
            );
        }
    }
    let pt = Checkpoint::open(dir.path().join("m.pt")).unwrap();
    let stored: Vec<&str> = pt
        .all_entries()
        .iter()
        .map(|e| e.stored_name.as_str())
        .collect();
    assert!(
        stored.contains(&"detector.transformer.decoder.norm.weight"),
        "{stored:?}"
    );
}

#[test]
fn missing_parameter_names_the_file_and_nearest_names() {
    let dir = tempfile::tempdir().unwrap();
    let p = "transformer.decoder.presence_token_out_norm.bias";
    let base = Checkpoint::open(vecs(dir.path(), "base.safetensors", p, &[1.0, 2.0])).unwrap();
    let o = Checkpoint::open(vecs(dir.path(), "o.safetensors", p, &[1.0, 3.0])).unwrap();
    let trajs = vec![Trajectory {
        label: "a".into(),
        from: &base,
        to: &o,
    }];
    let err = cosines(
        "transformer.decoder.presence_token_out_norm.bais",
        &base,
        &trajs,
        None,
        None,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, WeightsError::Checkpoint(CheckpointError::MissingParam { .. })));
    assert!(
        msg.contains("presence_token_out_norm.bais") && msg.contains("base.safetensors"),
        "{msg}"
    );
    assert!(msg.contains(&format!("nearest: {p}")), "{msg}");
}

#[test]
fn mismatched_shapes_and_missing_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let a = vec![
        t("x.weight", &[2, 3], values(1, 6)),
        t("y.bias", &[3], values(2, 3)),
    ];
    let b = vec![
        t("x.weight", &[3, 2], values(1, 6)),
        t("y.bias", &[3], values(2, 3)),
    ];
    let c = vec![t("x.weight", &[2, 3], values(1, 6))];
    write_st(&dir.path().join("a.safetensors"), &a, Dtype::F32);
    write_st(&dir.path().join("b.safetensors"), &b, Dtype::F32);
    write_st(&dir.path().join("c.safetensors"), &c, Dtype::F32);
    let (ca, cb, cc) = (
        Checkpoint::open(dir.path().join("a.safetensors")).unwrap(),
        Checkpoint::open(dir.path().join("b.safetensors")).unwrap(),
        Checkpoint::open(dir.path().join("c.safetensors")).unwrap(),
    );
    let msg = tensor_sums(&ca, &cb, &hidden()).unwrap_err().to_string();
    assert!(
        msg.contains("x.weight") && msg.contains("[2, 3]") && msg.contains("[3, 2]"),
        "{msg}"
    );
    assert!(
        msg.contains("a.safetensors") && msg.contains("b.safetensors"),
        "{msg}"
    );
    let msg = tensor_sums(&ca, &cc, &hidden()).unwrap_err().to_string();
    assert!(
        msg.contains("y.bias") && msg.contains("c.safetensors"),
        "{msg}"
    );
    // Cosines: the parameter's shape differs in one trajectory's checkpoint.
    let trajs = vec![Trajectory {
        label: "t".into(),
        from: &ca,
        to: &cb,
    }];
    let msg = cosines("x.weight", &ca, &trajs, None, None)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("shape mismatch for 'x.weight'") && msg.contains("b.safetensors"),
        "{msg}"
    );
}

#[test]
fn truncated_and_foreign_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let ts = vec![
        t("a.weight", &[100], values(1, 100)),
        t("z.weight", &[100], values(2, 100)),
    ];
    let path = dir.path().join("full.safetensors");
    write_st(&path, &ts, Dtype::F32);
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let err = Checkpoint::open(&cut).err().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, CheckpointError::Truncated { .. }), "{msg}");
    assert!(
        msg.contains("cut.safetensors") && msg.contains("z.weight"),
        "{msg}"
    );
    // A text file is neither safetensors nor PyTorch.
    let txt = dir.path().join("notes.txt");
    std::fs::write(
        &txt,
        "these are not weights, just some text that is long enough",
    )
    .unwrap();
    let msg = Checkpoint::open(&txt).err().unwrap().to_string();
    assert!(
        msg.contains("notes.txt") && msg.contains("not a safetensors file"),
        "{msg}"
    );
    // A file too short for a header, and a missing file.
    std::fs::write(dir.path().join("tiny"), b"abc").unwrap();
    assert!(
        Checkpoint::open(dir.path().join("tiny"))
            .err()
            .unwrap()
            .to_string()
            .contains("tiny")
    );
    assert!(
        Checkpoint::open(dir.path().join("nope.safetensors"))
            .err()
            .unwrap()
            .to_string()
            .contains("nope.safetensors")
    );
    // A corrupt .pt (ZIP signature, garbage after it) names the file.
    std::fs::write(
        dir.path().join("bad.pt"),
        b"PK\x03\x04 garbage garbage garbage",
    )
    .unwrap();
    let msg = Checkpoint::open(dir.path().join("bad.pt"))
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("bad.pt"), "{msg}");
}

/// The streaming writer produces files the safetensors crate reads back identically.
#[test]
fn writer_round_trips_through_the_safetensors_crate() {
    use sam3lab_checkpoint::{SafetensorsWriter, TensorHeader};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let hs = vec![
        TensorHeader {
            name: "b".into(),
            dtype: Dtype::F32,
            shape: vec![3],
        },
        TensorHeader {
            name: "a".into(),
            dtype: Dtype::BF16,
            shape: vec![2, 2],
        },
        TensorHeader {
            name: "e".into(),
            dtype: Dtype::F32,
            shape: vec![0],
        },
    ];
    let mut w = SafetensorsWriter::create(&path, &hs, None).unwrap();
    w.write("b", &common::encode(&[1.0, 2.0], Dtype::F32))
        .unwrap();
    w.write("b", &common::encode(&[3.0], Dtype::F32)).unwrap();
    w.write("a", &common::encode(&[1.0, -1.0, 0.5, 4.0], Dtype::BF16))
        .unwrap();
    assert!(w.write("zzz", &[0]).is_err());
    let sha = w.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(sha, sha256_bytes(&bytes));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        st.tensor("b").unwrap().data(),
        common::encode(&[1.0, 2.0, 3.0], Dtype::F32)
    );
    assert_eq!(st.tensor("a").unwrap().dtype(), Dtype::BF16);
    // An unfinished writer leaves nothing behind.
    let path2 = dir.path().join("partial.safetensors");
    let mut w = SafetensorsWriter::create(&path2, &hs, None).unwrap();
    w.write("b", &common::encode(&[1.0], Dtype::F32)).unwrap();
    assert!(w.finish().is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
