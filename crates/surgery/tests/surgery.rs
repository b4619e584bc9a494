//! Head surgery on generated checkpoints and on the vendored tiny fixture: α = 0 reproduces INTO,
//! α = 1 moves exactly the named heads' slices (checked by an independent per-element membership
//! rule, not by the crate's range code), intermediate α blends, errors name the culprit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sam3lab_util::progress::NoProgress;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sam3lab_surgery::{F32Tensor, HeadCounts, SurgeryRequest, head_ref, patch_heads, surgery};

fn enc(v: &[f32], dt: Dtype) -> Vec<u8> {
    match dt {
        Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::BF16 => v
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_bits().to_le_bytes())
            .collect(),
        _ => unreachable!(),
    }
}

fn write(path: &Path, ts: &[(String, Vec<usize>, Vec<f32>)], dt: Dtype) {
    let bytes: Vec<Vec<u8>> = ts.iter().map(|t| enc(&t.2, dt)).collect();
    let views: Vec<(String, TensorView)> = ts
        .iter()
        .zip(&bytes)
        .map(|(t, b)| (t.0.clone(), TensorView::new(dt, t.1.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn vals(seed: u32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed * 97) % 1000) as f32 / 500.0
                - 1.0
        })
        .collect()
}

/// Width 8 with 2 heads (hd 4) for the decoder and the ViT block, so slices are easy to picture.
fn counts() -> HeadCounts {
    HeadCounts {
        vit: 2,
        text: 2,
        geometry: 2,
        fusion: 2,
        decoder: 2,
        seg: 2,
    }
}

fn layout(prefix: &str, seed: u32) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut ts = Vec::new();
    let mut add = |name: &str, shape: &[usize]| {
        let n = shape.iter().product();
        ts.push((
            format!("{prefix}{name}"),
            shape.to_vec(),
            vals(seed + ts.len() as u32, n),
        ));
    };
    for l in 0..2 {
        add(
            &format!("transformer.decoder.layers.{l}.ca_text.in_proj_weight"),
            &[24, 8],
        );
        add(
            &format!("transformer.decoder.layers.{l}.ca_text.in_proj_bias"),
            &[24],
        );
        add(
            &format!("transformer.decoder.layers.{l}.ca_text.out_proj.weight"),
            &[8, 8],
        );
        add(
            &format!("transformer.decoder.layers.{l}.ca_text.out_proj.bias"),
            &[8],
        );
    }
    add(
        "backbone.vision_backbone.trunk.blocks.0.attn.qkv.weight",
        &[24, 8],
    );
    add(
        "backbone.vision_backbone.trunk.blocks.0.attn.qkv.bias",
        &[24],
    );
    add(
        "backbone.vision_backbone.trunk.blocks.0.attn.proj.weight",
        &[8, 8],
    );
    add(
        "backbone.vision_backbone.trunk.blocks.0.attn.proj.bias",
        &[8],
    );
    add("transformer.decoder.presence_token_out_norm.bias", &[8]);
    if !prefix.is_empty() {
        ts.push(("tracker.some.buffer".into(), vec![3], vals(seed, 3)));
    }
    ts
}

fn read_all(path: &Path) -> HashMap<String, (Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| (k, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect()
}

/// Independent membership rule: is element `i` of tensor `key` (shape) inside head `h` of a module
/// with `num_heads` heads? In-projection: row r with (r mod C) / hd == h; out-projection weight:
/// column c with c / hd == h; out-projection bias: never.
fn in_head(
    key: &str,
    shape: &[usize],
    i: usize,
    module_prefix: &str,
    h: usize,
    num_heads: usize,
) -> bool {
    let Some(rest) = key.strip_prefix(module_prefix) else {
        return false;
    };
    match rest {
        "in_proj_weight" | "qkv.weight" => {
            let (rows, cols) = (shape[0], shape[1]);
            let c = rows / 3;
            let r = i / cols;
            (r % c) / (c / num_heads) == h
        }
        "in_proj_bias" | "qkv.bias" => {
            let c = shape[0] / 3;
            (i % c) / (c / num_heads) == h
        }
        "out_proj.weight" | "proj.weight" => {
            let c = shape[1];
            (i % c) / (c / num_heads) == h
        }
        _ => false,
    }
}

struct Named {
    prefix: &'static str,
    head: usize,
    heads: usize,
}

fn run(
    into: &Path,
    donor: &Path,
    heads: &[&str],
    alpha: f64,
    c: HeadCounts,
    out: &Path,
) -> sam3lab_surgery::Result<sam3lab_surgery::Manifest> {
    let heads: Vec<String> = heads.iter().map(|s| s.to_string()).collect();
    surgery(
        &SurgeryRequest {
            into,
            donor,
            heads: &heads,
            alpha,
            counts: c,
            config: None,
            out,
        },
        &NoProgress,
    )
}

fn check_moved(into: &Path, donor: &Path, out: &Path, named: &[Named], strip: &str) {
    let (a, d, o) = (read_all(into), read_all(donor), read_all(out));
    assert_eq!(a.len(), o.len());
    let mut moved = 0;
    for (key, (dt, shape, ib)) in &a {
        let (odt, oshape, ob) = &o[key];
        assert_eq!((dt, shape), (odt, oshape), "{key}");
        let size = ib.len() / shape.iter().product::<usize>().max(1);
        let norm = key.strip_prefix(strip).unwrap_or(key);
        for i in 0..ib.len() / size {
            let member = named
                .iter()
                .any(|n| in_head(norm, shape, i, n.prefix, n.head, n.heads));
            let want = if member { &d[key].2 } else { ib };
            assert_eq!(
                &ob[i * size..(i + 1) * size],
                &want[i * size..(i + 1) * size],
                "{key}[{i}] member={member}"
            );
            moved += usize::from(member);
        }
    }
    assert!(moved > 0);
}

/// The INTO, DONOR and OUT checkpoint paths of a test in `dir`.
fn into_donor_out(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (dir.join("into.safetensors"), dir.join("donor.safetensors"), dir.join("out.safetensors"))
}

#[test]
fn alpha_zero_reproduces_into_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (i, d, o) = into_donor_out(dir.path());
    write(&i, &layout("", 1), Dtype::F32);
    write(&d, &layout("", 50), Dtype::F32);
    let m = run(
        &i,
        &d,
        &[
            "decoder.layers.1.ca_text.head.0",
            "trunk.blocks.0.attn.head.1",
        ],
        0.0,
        counts(),
        &o,
    )
    .unwrap();
    assert_eq!(
        std::fs::read(&i).unwrap(),
        std::fs::read(&o).unwrap(),
        "whole file identical"
    );
    assert!(
        m.heads
            .iter()
            .flat_map(|h| &h.slices)
            .all(|s| s.delta_norm == 0.0)
    );
    assert_eq!(m.output.sha256, m.into.sha256);
}

#[test]
fn alpha_one_moves_exactly_the_named_slices() {
    let dir = tempfile::tempdir().unwrap();
    let (i, d, o) = into_donor_out(dir.path());
    write(&i, &layout("detector.", 1), Dtype::F32);
    write(&d, &layout("", 50), Dtype::F32); // donor without the prefix: keys are matched normalised
    let m = run(
        &i,
        &d,
        &[
            "decoder.layers.1.ca_text.head.0",
            "decoder.layers.1.ca_text.head.1",
            "decoder.layers.0.ca_text.head.1",
            "trunk.blocks.0.attn.head.1",
        ],
        1.0,
        counts(),
        &o,
    )
    .unwrap();
    // The donor has no prefix, so compare against a prefixed copy of it.
    let dp = dir.path().join("donor_prefixed.safetensors");
    let mut donor_prefixed = layout("detector.", 50);
    let into_l = layout("detector.", 1);
    let tracker = donor_prefixed
        .iter()
        .position(|t| t.0.starts_with("tracker."))
        .unwrap();
    donor_prefixed[tracker] = into_l[tracker].clone();
    write(&dp, &donor_prefixed, Dtype::F32);
    check_moved(
        &i,
        &dp,
        &o,
        &[
            Named {
                prefix: "transformer.decoder.layers.1.ca_text.",
                head: 0,
                heads: 2,
            },
            Named {
                prefix: "transformer.decoder.layers.1.ca_text.",
                head: 1,
                heads: 2,
            },
            Named {
                prefix: "transformer.decoder.layers.0.ca_text.",
                head: 1,
                heads: 2,
            },
            Named {
                prefix: "backbone.vision_backbone.trunk.blocks.0.attn.",
                head: 1,
                heads: 2,
            },
        ],
        "detector.",
    );
    // Keys keep INTO's spelling; the manifest's norms match an independent computation.
    assert!(
        read_all(&o).contains_key("detector.transformer.decoder.layers.1.ca_text.in_proj_weight")
    );
    assert!(read_all(&o).contains_key("tracker.some.buffer"));
    let s = &m.heads[0].slices[0];
    assert_eq!(
        s.key,
        "detector.transformer.decoder.layers.1.ca_text.in_proj_weight"
    );
    assert_eq!(s.ranges, vec![[0, 4], [8, 12], [16, 20]]);
    let (a, b) = (&into_l[0 + 4 * 1].2, &layout("", 50)[4].2); // layer 1 in_proj_weight
    let want: f64 = (0..24 * 8)
        .filter(|&k| in_head("in_proj_weight", &[24, 8], k, "", 0, 2))
        .map(|k| (f64::from(b[k]) - f64::from(a[k])).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        (s.delta_norm - want).abs() < 1e-9,
        "{} vs {want}",
        s.delta_norm
    );
    assert_eq!(m.elements_rewritten, 4 * (3 * 4 * 8 + 3 * 4 + 8 * 4));
}

#[test]
fn intermediate_alpha_blends_and_matches_the_in_memory_patch() {
    let dir = tempfile::tempdir().unwrap();
    let (i, d, o) = into_donor_out(dir.path());
    let (li, ld) = (layout("", 1), layout("", 50));
    write(&i, &li, Dtype::F32);
    write(&d, &ld, Dtype::F32);
    let name = "decoder.layers.0.ca_text.head.1";
    run(&i, &d, &[name], 0.25, counts(), &o).unwrap();
    let out = read_all(&o);
    // In-memory patch on the same tensors gives the same values.
    let to_map = |l: &[(String, Vec<usize>, Vec<f32>)]| -> HashMap<String, F32Tensor> {
        l.iter()
            .map(|t| {
                (
                    t.0.clone(),
                    F32Tensor {
                        shape: t.1.clone(),
                        data: t.2.clone(),
                    },
                )
            })
            .collect()
    };
    let mut mem = to_map(&li);
    let changed = patch_heads(
        &mut mem,
        &to_map(&ld),
        &[head_ref(name).unwrap()],
        &counts(),
        0.25,
    )
    .unwrap();
    assert_eq!(
        changed.iter().map(|c| c.1).sum::<usize>(),
        3 * 4 * 8 + 3 * 4 + 8 * 4
    );
    for (k, t) in &mem {
        let file: Vec<f32> = out[k]
            .2
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(&file, &t.data, "{k}");
    }
    // And the blended values are (0.75·into + 0.25·donor) rounded once to f32.
    let key = "transformer.decoder.layers.0.ca_text.in_proj_bias";
    let (a, b) = (&li[1].2, &ld[1].2);
    for k in 0..24 {
        let want = if in_head("in_proj_bias", &[24], k, "", 1, 2) {
            (0.75 * f64::from(a[k]) + 0.25 * f64::from(b[k])) as f32
        } else {
            a[k]
        };
        assert_eq!(mem[key].data[k], want, "{k}");
    }
}

#[test]
fn bf16_checkpoints_stay_bf16_and_take_donor_bits_at_alpha_one() {
    let dir = tempfile::tempdir().unwrap();
    let (i, d, o) = into_donor_out(dir.path());
    write(&i, &layout("", 1), Dtype::BF16);
    write(&d, &layout("", 50), Dtype::BF16);
    run(&i, &d, &["trunk.blocks.0.attn.head.0"], 1.0, counts(), &o).unwrap();
    assert!(read_all(&o).values().all(|t| t.0 == Dtype::BF16));
    check_moved(
        &i,
        &d,
        &o,
        &[Named {
            prefix: "backbone.vision_backbone.trunk.blocks.0.attn.",
            head: 0,
            heads: 2,
        }],
        "",
    );
}

/// On the vendored tiny SAM3 with its config's head counts: one head of every family.
#[test]
fn fixture_heads_of_every_family_move_exactly() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny");
    let dir = tempfile::tempdir().unwrap();
    let donor = dir.path().join("donor.safetensors");
    let bytes = std::fs::read(fixture.join("weights.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let perturbed: Vec<(String, Vec<usize>, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| {
            let x: Vec<f32> = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) + 1.0)
                .collect();
            (k, v.shape().to_vec(), x)
        })
        .collect();
    write(&donor, &perturbed, Dtype::F32);
    let counts = HeadCounts::from_config(&fixture.join("config.json")).unwrap();
    let out = dir.path().join("out.safetensors");
    let heads = [
        "trunk.blocks.1.attn.head.1",
        "text.blocks.0.attn.head.1",
        "geometry.layers.0.cross_attn.head.2",
        "fusion.layers.1.self_attn.head.3",
        "decoder.layers.1.ca_image.head.0",
        "decoder.layers.0.self_attn.head.2",
        "seg.prompt_cross_attn.head.1",
    ];
    let m = run(
        &fixture.join("weights.safetensors"),
        &donor,
        &heads,
        1.0,
        counts,
        &out,
    )
    .unwrap();
    assert_eq!(m.heads.len(), heads.len());
    check_moved(
        &fixture.join("weights.safetensors"),
        &donor,
        &out,
        &[
            Named {
                prefix: "backbone.vision_backbone.trunk.blocks.1.attn.",
                head: 1,
                heads: 2,
            },
            Named {
                prefix: "backbone.language_backbone.encoder.transformer.resblocks.0.attn.",
                head: 1,
                heads: 2,
            },
            Named {
                prefix: "geometry_encoder.encode.0.cross_attn_image.",
                head: 2,
                heads: 4,
            },
            Named {
                prefix: "transformer.encoder.layers.1.self_attn.",
                head: 3,
                heads: 4,
            },
            Named {
                prefix: "transformer.decoder.layers.1.cross_attn.",
                head: 0,
                heads: 4,
            },
            Named {
                prefix: "transformer.decoder.layers.0.self_attn.",
                head: 2,
                heads: 4,
            },
            Named {
                prefix: "segmentation_head.cross_attend_prompt.",
                head: 1,
                heads: 4,
            },
        ],
        "",
    );
}

fn err_of(r: sam3lab_surgery::Result<sam3lab_surgery::Manifest>) -> String {
    r.err().expect("should fail").to_string()
}

#[test]
fn bad_requests_name_the_culprit_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (i, d, o) = into_donor_out(dir.path());
    write(&i, &layout("", 1), Dtype::F32);
    write(&d, &layout("", 50), Dtype::F32);
    let e = err_of(run(
        &i,
        &d,
        &["decoder.layers.0.ca_txt.head.0"],
        1.0,
        counts(),
        &o,
    ));
    assert!(
        e.contains("unknown head 'decoder.layers.0.ca_txt.head.0'"),
        "{e}"
    );
    let e = err_of(run(
        &i,
        &d,
        &["decoder.layers.0.ca_text.head.2"],
        1.0,
        counts(),
        &o,
    ));
    assert!(
        e.contains("index 2 out of range") && e.contains("2 heads"),
        "{e}"
    );
    let e = err_of(run(
        &i,
        &d,
        &["decoder.layers.9.ca_text.head.0"],
        1.0,
        counts(),
        &o,
    ));
    assert!(
        e.contains("transformer.decoder.layers.9.ca_text.in_proj_weight")
            && e.contains("into.safetensors"),
        "{e}"
    );
    let e = err_of(run(
        &i,
        &d,
        &[
            "decoder.layers.0.ca_text.head.0",
            "decoder.layers.0.ca_text.head.0",
        ],
        1.0,
        counts(),
        &o,
    ));
    assert!(e.contains("listed twice"), "{e}");
    let e = err_of(run(
        &i,
        &d,
        &["decoder.layers.0.ca_text.head.0"],
        1.0,
        HeadCounts {
            decoder: 3,
            ..counts()
        },
        &o,
    ));
    assert!(e.contains("not divisible by 3 heads"), "{e}");
    let e = err_of(run(
        &i,
        &d,
        &["decoder.layers.0.ca_text.head.0"],
        1.0,
        counts(),
        &i,
    ));
    assert!(e.contains("is an input checkpoint"), "{e}");
    // Donor with a differently shaped module.
    let mut bad = layout("", 50);
    bad[0] = (bad[0].0.clone(), vec![12, 16], bad[0].2.clone());
    let bd: PathBuf = dir.path().join("bad_donor.safetensors");
    write(&bd, &bad, Dtype::F32);
    let e = err_of(run(
        &i,
        &bd,
        &["decoder.layers.0.ca_text.head.0"],
        1.0,
        counts(),
        &o,
    ));
    assert!(
        e.contains("shape mismatch")
            && e.contains("bad_donor.safetensors")
            && e.contains("[12, 16]"),
        "{e}"
    );
    assert!(!o.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        3,
        "no partial files left"
    );
}
