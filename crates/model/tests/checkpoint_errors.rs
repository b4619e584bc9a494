//! Checkpoint loading on crafted files made from fixture A's weights: each bad file gives one clear
//! error naming the file and the culprit (missing key, unexpected key, wrong shape — all at once —,
//! truncated file, non-safetensors file); the `detector.`-prefixed video layout with tracker keys,
//! the HF-transformers layout (renamed, q/k/v split, cls row dropped, text projection transposed)
//! and a fixture directory all load to exactly the same parameters as the plain file. A `.pt` with
//! complex64 RoPE tables (as the released sam3.pt has) loads the source bytes, read in place
//! (nothing written, not even with an unusable TMPDIR); complex tensors other than RoPE tables are
//! refused by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::ModuleSnapshot;
use regex::Regex;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sam3lab_model::checkpoint::{CheckpointFormat, load_into_with_scratch, read_index, read_index_with_scratch, resolve};
use sam3lab_model::params::param_shapes;
use sam3lab_model::{ModelError, Sam3, Sam3Config};

mod common;
use common::fixture;

fn config() -> PathBuf {
    fixture().join("config.json")
}

/// (name → (shape, f32 bytes)) of the fixture weights.
fn weights() -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(fixture().join("weights.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors().into_iter().map(|(k, v)| (k, (v.shape().to_vec(), v.data().to_vec()))).collect()
}

fn write(path: &Path, t: &BTreeMap<String, (Vec<usize>, Vec<u8>)>) {
    let views: Vec<(String, TensorView<'_>)> =
        t.iter().map(|(k, (s, b))| (k.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn load(path: &Path) -> Result<Sam3, ModelError> {
    Sam3::load(path, Some(&config()), &Device::flex()).map(|(m, _)| m)
}

/// Every parameter of a model in torch naming, as raw bytes.
fn params(m: &Sam3) -> BTreeMap<String, Vec<u8>> {
    m.collect(None, None, false).into_iter().map(|t| (t.name.clone(), t.to_bytes().unwrap().to_vec())).collect()
}

#[test]
fn missing_unexpected_and_wrong_shape_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = weights();
    w.remove("backbone.vision_backbone.trunk.ln_pre.bias").unwrap();
    w.remove("transformer.decoder.presence_token.weight").unwrap();
    let (_, b) = w.get_mut("backbone.language_backbone.resizer.weight").unwrap().clone();
    w.insert("backbone.language_backbone.resizer.weight".into(), (vec![32, 4], b[..32 * 4 * 4].to_vec()));
    w.insert("backbone.vision_backbone.trunk.bogus".into(), (vec![2], vec![0; 8]));
    let p = dir.path().join("bad_keys.safetensors");
    write(&p, &w);
    let err = load(&p).err().expect("a bad checkpoint must not load");
    assert!(matches!(err, ModelError::CheckpointMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    for needle in [
        "bad_keys.safetensors",
        "missing keys (2)",
        "backbone.vision_backbone.trunk.ln_pre.bias",
        "transformer.decoder.presence_token.weight",
        "unexpected keys (1): backbone.vision_backbone.trunk.bogus",
        "shape mismatch backbone.language_backbone.resizer.weight: expected [32, 8], found [32, 4]",
    ] {
        assert!(msg.contains(needle), "`{needle}` not in:\n{msg}");
    }
}

#[test]
fn truncated_and_foreign_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture().join("weights.safetensors")).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &good[..good.len() / 2]).unwrap();
    let msg = load(&cut).err().unwrap().to_string();
    assert!(msg.contains("cut.safetensors") && msg.contains("truncated"), "{msg}");

    let txt = dir.path().join("readme.safetensors");
    std::fs::write(&txt, "this is a text file, not a checkpoint\n").unwrap();
    let msg = load(&txt).err().unwrap().to_string();
    assert!(msg.contains("readme.safetensors") && msg.contains("not a safetensors file"), "{msg}");

    let tiny = dir.path().join("tiny.bin");
    std::fs::write(&tiny, "abc").unwrap();
    let msg = load(&tiny).err().unwrap().to_string();
    assert!(msg.contains("tiny.bin") && msg.contains("only 3 bytes"), "{msg}");

    let zip = dir.path().join("broken.pt");
    std::fs::write(&zip, b"PK\x03\x04 definitely not a torch zip").unwrap();
    let msg = load(&zip).err().unwrap().to_string();
    assert!(msg.contains("broken.pt") && msg.contains("PyTorch"), "{msg}");

    let msg = load(&dir.path().join("nope.safetensors")).err().unwrap().to_string();
    assert!(msg.contains("nope.safetensors") && msg.contains("no such file"), "{msg}");
}

#[test]
fn video_checkpoint_layout_loads_the_same_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let mut w: BTreeMap<String, (Vec<usize>, Vec<u8>)> =
        weights().into_iter().map(|(k, v)| (format!("detector.{k}"), v)).collect();
    // keys the image model must ignore
    w.insert("tracker.maskmem_tpos_enc".into(), (vec![3], vec![0; 12]));
    w.insert("detector.backbone.vision_backbone.sam2_convs.0.conv_1x1.weight".into(), (vec![1], vec![0; 4]));
    w.insert("detector.backbone.vision_backbone.trunk.blocks.0.attn.freqs_cis".into(), (vec![16, 16, 2], vec![0; 16 * 16 * 2 * 4]));
    let p = dir.path().join("video.safetensors");
    write(&p, &w);
    let idx = read_index(&p).unwrap();
    assert_eq!(idx.format, CheckpointFormat::Safetensors);
    assert_eq!(idx.skipped.len(), 3, "{:?}", idx.skipped);
    let reference = params(&load(&fixture().join("weights.safetensors")).unwrap());
    assert_eq!(params(&load(&p).unwrap()), reference);
    // a fixture directory is a checkpoint too (weights + its config)
    let r = resolve(&fixture()).unwrap();
    assert!(r.weights.ends_with("weights.safetensors") && r.config.is_some());
    let (m, info) = Sam3::load(&fixture(), None, &Device::flex()).unwrap();
    assert_eq!(params(&m), reference);
    assert_eq!(info.sha256.len(), 64);
}

/// Original → HF names, written independently of the loader from transformers'
/// `convert_sam3_to_hf.py` conventions (design doc §5).
fn to_hf(key: &str) -> String {
    let rules: &[(&str, &str)] = &[
        (r"^backbone\.vision_backbone\.trunk\.pos_embed$", "vision_encoder.backbone.embeddings.position_embeddings"),
        (r"^backbone\.vision_backbone\.trunk\.patch_embed\.proj\.", "vision_encoder.backbone.embeddings.patch_embeddings.projection."),
        (r"^backbone\.vision_backbone\.trunk\.ln_pre\.", "vision_encoder.backbone.layer_norm."),
        (r"^backbone\.vision_backbone\.trunk\.blocks\.(\d+)\.norm1\.", "vision_encoder.backbone.layers.$1.layer_norm1."),
        (r"^backbone\.vision_backbone\.trunk\.blocks\.(\d+)\.norm2\.", "vision_encoder.backbone.layers.$1.layer_norm2."),
        (r"^backbone\.vision_backbone\.trunk\.blocks\.(\d+)\.attn\.qkv\.", "vision_encoder.backbone.layers.$1.attention.qkv."),
        (r"^backbone\.vision_backbone\.trunk\.blocks\.(\d+)\.attn\.proj\.", "vision_encoder.backbone.layers.$1.attention.o_proj."),
        (r"^backbone\.vision_backbone\.trunk\.blocks\.(\d+)\.mlp\.", "vision_encoder.backbone.layers.$1.mlp."),
        (r"^backbone\.vision_backbone\.convs\.(\d+)\.dconv_2x2_0\.", "vision_encoder.neck.fpn_layers.$1.scale_layers.0."),
        (r"^backbone\.vision_backbone\.convs\.(\d+)\.dconv_2x2_1\.", "vision_encoder.neck.fpn_layers.$1.scale_layers.2."),
        (r"^backbone\.vision_backbone\.convs\.(\d+)\.dconv_2x2\.", "vision_encoder.neck.fpn_layers.$1.scale_layers.0."),
        (r"^backbone\.vision_backbone\.convs\.(\d+)\.conv_1x1\.", "vision_encoder.neck.fpn_layers.$1.proj1."),
        (r"^backbone\.vision_backbone\.convs\.(\d+)\.conv_3x3\.", "vision_encoder.neck.fpn_layers.$1.proj2."),
        (r"^backbone\.language_backbone\.encoder\.token_embedding\.", "text_encoder.text_model.embeddings.token_embedding."),
        (r"^backbone\.language_backbone\.encoder\.positional_embedding$", "text_encoder.text_model.embeddings.position_embedding.weight"),
        (r"^backbone\.language_backbone\.encoder\.ln_final\.", "text_encoder.text_model.final_layer_norm."),
        (r"^backbone\.language_backbone\.encoder\.text_projection$", "text_encoder.text_projection.weight"),
        (r"^backbone\.language_backbone\.encoder\.transformer\.resblocks\.(\d+)\.attn\.", "text_encoder.text_model.encoder.layers.$1.self_attn."),
        (r"^backbone\.language_backbone\.encoder\.transformer\.resblocks\.(\d+)\.ln_([12])\.", "text_encoder.text_model.encoder.layers.$1.layer_norm$2."),
        (r"^backbone\.language_backbone\.encoder\.transformer\.resblocks\.(\d+)\.mlp\.c_fc\.", "text_encoder.text_model.encoder.layers.$1.mlp.fc1."),
        (r"^backbone\.language_backbone\.encoder\.transformer\.resblocks\.(\d+)\.mlp\.c_proj\.", "text_encoder.text_model.encoder.layers.$1.mlp.fc2."),
        (r"^backbone\.language_backbone\.resizer\.", "text_projection."),
        (r"^geometry_encoder\.encode\.(\d+)\.cross_attn_image\.out_proj\.", "geometry_encoder.layers.$1.cross_attn.o_proj."),
        (r"^geometry_encoder\.encode\.(\d+)\.cross_attn_image\.", "geometry_encoder.layers.$1.cross_attn."),
        (r"^geometry_encoder\.encode\.(\d+)\.self_attn\.out_proj\.", "geometry_encoder.layers.$1.self_attn.o_proj."),
        (r"^geometry_encoder\.encode\.(\d+)\.self_attn\.", "geometry_encoder.layers.$1.self_attn."),
        (r"^geometry_encoder\.encode\.(\d+)\.linear([12])\.", "geometry_encoder.layers.$1.mlp.fc$2."),
        (r"^geometry_encoder\.encode\.(\d+)\.norm([123])\.", "geometry_encoder.layers.$1.layer_norm$2."),
        (r"^geometry_encoder\.img_pre_norm\.", "geometry_encoder.vision_layer_norm."),
        (r"^geometry_encoder\.norm\.", "geometry_encoder.prompt_layer_norm."),
        (r"^geometry_encoder\.encode_norm\.", "geometry_encoder.output_layer_norm."),
        (r"^transformer\.encoder\.layers\.(\d+)\.cross_attn_image\.out_proj\.", "detr_encoder.layers.$1.cross_attn.o_proj."),
        (r"^transformer\.encoder\.layers\.(\d+)\.cross_attn_image\.", "detr_encoder.layers.$1.cross_attn."),
        (r"^transformer\.encoder\.layers\.(\d+)\.self_attn\.out_proj\.", "detr_encoder.layers.$1.self_attn.o_proj."),
        (r"^transformer\.encoder\.layers\.(\d+)\.self_attn\.", "detr_encoder.layers.$1.self_attn."),
        (r"^transformer\.encoder\.layers\.(\d+)\.linear([12])\.", "detr_encoder.layers.$1.mlp.fc$2."),
        (r"^transformer\.encoder\.layers\.(\d+)\.norm([123])\.", "detr_encoder.layers.$1.layer_norm$2."),
        (r"^transformer\.decoder\.presence_token_head\.layers\.0\.", "detr_decoder.presence_head.layer1."),
        (r"^transformer\.decoder\.presence_token_head\.layers\.1\.", "detr_decoder.presence_head.layer2."),
        (r"^transformer\.decoder\.presence_token_head\.layers\.2\.", "detr_decoder.presence_head.layer3."),
        (r"^transformer\.decoder\.presence_token_out_norm\.", "detr_decoder.presence_layer_norm."),
        (r"^transformer\.decoder\.norm\.", "detr_decoder.output_layer_norm."),
        (r"^transformer\.decoder\.bbox_embed\.layers\.0\.", "detr_decoder.box_head.layer1."),
        (r"^transformer\.decoder\.bbox_embed\.layers\.1\.", "detr_decoder.box_head.layer2."),
        (r"^transformer\.decoder\.bbox_embed\.layers\.2\.", "detr_decoder.box_head.layer3."),
        (r"^transformer\.decoder\.ref_point_head\.layers\.0\.", "detr_decoder.ref_point_head.layer1."),
        (r"^transformer\.decoder\.ref_point_head\.layers\.1\.", "detr_decoder.ref_point_head.layer2."),
        (r"^transformer\.decoder\.boxRPB_embed_([xy])\.layers\.0\.", "detr_decoder.box_rpb_embed_$1.layer1."),
        (r"^transformer\.decoder\.boxRPB_embed_([xy])\.layers\.1\.", "detr_decoder.box_rpb_embed_$1.layer2."),
        (r"^transformer\.decoder\.layers\.(\d+)\.self_attn\.out_proj\.", "detr_decoder.layers.$1.self_attn.o_proj."),
        (r"^transformer\.decoder\.layers\.(\d+)\.self_attn\.", "detr_decoder.layers.$1.self_attn."),
        (r"^transformer\.decoder\.layers\.(\d+)\.ca_text\.out_proj\.", "detr_decoder.layers.$1.text_cross_attn.o_proj."),
        (r"^transformer\.decoder\.layers\.(\d+)\.ca_text\.", "detr_decoder.layers.$1.text_cross_attn."),
        (r"^transformer\.decoder\.layers\.(\d+)\.cross_attn\.out_proj\.", "detr_decoder.layers.$1.vision_cross_attn.o_proj."),
        (r"^transformer\.decoder\.layers\.(\d+)\.cross_attn\.", "detr_decoder.layers.$1.vision_cross_attn."),
        (r"^transformer\.decoder\.layers\.(\d+)\.linear([12])\.", "detr_decoder.layers.$1.mlp.fc$2."),
        (r"^transformer\.decoder\.layers\.(\d+)\.norm1\.", "detr_decoder.layers.$1.vision_cross_attn_layer_norm."),
        (r"^transformer\.decoder\.layers\.(\d+)\.catext_norm\.", "detr_decoder.layers.$1.text_cross_attn_layer_norm."),
        (r"^transformer\.decoder\.layers\.(\d+)\.norm2\.", "detr_decoder.layers.$1.self_attn_layer_norm."),
        (r"^transformer\.decoder\.layers\.(\d+)\.norm3\.", "detr_decoder.layers.$1.mlp_layer_norm."),
        (r"^transformer\.decoder\.", "detr_decoder."),
        (r"^dot_prod_scoring\.prompt_mlp\.layers\.0\.", "dot_product_scoring.text_mlp.layer1."),
        (r"^dot_prod_scoring\.prompt_mlp\.layers\.1\.", "dot_product_scoring.text_mlp.layer2."),
        (r"^dot_prod_scoring\.prompt_mlp\.out_norm\.", "dot_product_scoring.text_mlp_out_norm."),
        (r"^dot_prod_scoring\.prompt_proj\.", "dot_product_scoring.text_proj."),
        (r"^dot_prod_scoring\.hs_proj\.", "dot_product_scoring.query_proj."),
        (r"^segmentation_head\.pixel_decoder\.", "mask_decoder.pixel_decoder."),
        (r"^segmentation_head\.mask_predictor\.mask_embed\.layers\.", "mask_decoder.mask_embedder.layers."),
        (r"^segmentation_head\.instance_seg_head\.", "mask_decoder.instance_projection."),
        (r"^segmentation_head\.semantic_seg_head\.", "mask_decoder.semantic_projection."),
        (r"^segmentation_head\.cross_attend_prompt\.out_proj\.", "mask_decoder.prompt_cross_attn.o_proj."),
        (r"^segmentation_head\.cross_attend_prompt\.", "mask_decoder.prompt_cross_attn."),
        (r"^segmentation_head\.cross_attn_norm\.", "mask_decoder.prompt_cross_attn_norm."),
    ];
    for (p, r) in rules {
        let re = Regex::new(p).unwrap();
        if re.is_match(key) {
            return re.replace(key, *r).into_owned();
        }
    }
    key.to_string()
}

/// The fixture's weights as transformers' conversion writes them: renamed ([`to_hf`]), q/k/v split,
/// the cls row of `pos_embed` dropped, `text_projection` transposed.
fn hf_weights() -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let mut hf: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (k, (shape, bytes)) in weights() {
        let name = to_hf(&k);
        if name.ends_with(".attention.qkv.weight") || name.ends_with(".attention.qkv.bias") || name.contains(".in_proj_") {
            // split in 3 along dim 0 → {q,k,v}_proj
            let third = bytes.len() / 3;
            let mut s = shape.clone();
            s[0] /= 3;
            for (i, p) in ["q", "k", "v"].iter().enumerate() {
                let n = if name.contains(".attention.qkv.") {
                    name.replace(".qkv.", &format!(".{p}_proj."))
                } else {
                    name.replace("in_proj_weight", &format!("{p}_proj.weight")).replace("in_proj_bias", &format!("{p}_proj.bias"))
                };
                hf.insert(n, (s.clone(), bytes[i * third..(i + 1) * third].to_vec()));
            }
        } else if name == "vision_encoder.backbone.embeddings.position_embeddings" {
            let c = shape[2];
            hf.insert(name, (vec![1, shape[1] - 1, c], bytes[c * 4..].to_vec())); // cls row dropped
        } else if name == "text_encoder.text_projection.weight" {
            let (r, c) = (shape[0], shape[1]);
            let mut t = vec![0u8; bytes.len()];
            for i in 0..r {
                for j in 0..c {
                    t[(j * r + i) * 4..(j * r + i) * 4 + 4].copy_from_slice(&bytes[(i * c + j) * 4..(i * c + j) * 4 + 4]);
                }
            }
            hf.insert(name, (vec![c, r], t));
        } else {
            hf.insert(name, (shape, bytes));
        }
    }
    hf
}

#[test]
fn hf_transformers_layout_loads_the_same_parameters() {
    let mut hf = hf_weights();
    // spot checks of the renaming itself
    for k in [
        "vision_encoder.backbone.layers.1.attention.k_proj.weight",
        "text_encoder.text_model.encoder.layers.0.self_attn.v_proj.bias",
        "detr_decoder.layers.1.vision_cross_attn.o_proj.weight",
        "vision_encoder.neck.fpn_layers.0.scale_layers.2.weight",
        "dot_product_scoring.query_proj.bias",
    ] {
        assert!(hf.contains_key(k), "{k}");
    }
    assert!(!hf.keys().any(|k| k.starts_with("backbone.") || k.starts_with("transformer.")));
    hf.insert("vision_encoder.backbone.layers.0.rotary_emb.rope_embeddings".into(), (vec![2], vec![0; 8]));

    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hf.safetensors");
    write(&p, &hf);
    assert_eq!(read_index(&p).unwrap().format, CheckpointFormat::HfSafetensors);
    let m = load(&p).unwrap();
    let mut got = params(&m);
    let mut want = params(&load(&fixture().join("weights.safetensors")).unwrap());
    // the restored cls row of pos_embed is zeros (SAM3 drops it); compare the rest
    let pe = "backbone.vision_backbone.trunk.pos_embed";
    let c = 64 * 4;
    assert!(got[pe][..c].iter().all(|&b| b == 0));
    got.get_mut(pe).unwrap().drain(..c);
    want.get_mut(pe).unwrap().drain(..c);
    assert_eq!(got, want);

    // a missing projection part is named
    hf.remove("detr_decoder.layers.0.self_attn.k_proj.weight");
    write(&p, &hf);
    let msg = load(&p).err().unwrap().to_string();
    assert!(msg.contains("hf.safetensors") && msg.contains("transformer.decoder.layers.0.self_attn.in_proj_weight"), "{msg}");
}

/// transformers' video checkpoint layout (`convert_sam3_video_to_hf.py`: `sam3_model.` →
/// `detector_model.`, the tracker under `tracker_model.`, its neck moved to `tracker_neck.`): the
/// image model loads from `detector_model.*` alone, and its forward equals the fixture's bit for
/// bit (the zero cls row the loader restores is never read).
#[test]
fn hf_video_layout_under_detector_model_runs_like_the_original() {
    use sam3lab_model::predict::Predictor;
    let mut hf: BTreeMap<String, (Vec<usize>, Vec<u8>)> =
        hf_weights().into_iter().map(|(k, v)| (format!("detector_model.{k}"), v)).collect();
    for k in [
        "tracker_model.memory_encoder.projection.weight",
        "tracker_model.mask_decoder.transformer.layers.0.mlp.proj_in.weight",
        "tracker_neck.fpn_layers.0.proj1.weight",
        "detector_model.vision_encoder.backbone.layers.0.rotary_emb.rope_embeddings",
    ] {
        hf.insert(k.into(), (vec![2], vec![0; 8]));
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hf-video.safetensors");
    write(&p, &hf);
    let idx = read_index(&p).unwrap();
    assert_eq!(idx.format, CheckpointFormat::HfSafetensors);
    assert_eq!(idx.skipped.len(), 4, "{:?}", idx.skipped);

    let dev = Device::flex();
    let ours = Predictor::load(&p, Some(&config()), &dev).unwrap();
    let reference = Predictor::load(&fixture(), None, &dev).unwrap();
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/examples/fixture-a.png");
    let names = ["trunk.blocks.0", "decoder.layers.*.q0", "presence_logit"];
    let (a, ca) = ours.run_with_cache(&image, "a red cat", &names).unwrap();
    let (b, cb) = reference.run_with_cache(&image, "a red cat", &names).unwrap();
    fn bits<const D: usize>(t: Tensor<D>) -> Vec<u32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
    }
    assert_eq!(bits(a.pred_logits), bits(b.pred_logits));
    assert_eq!(bits(a.pred_boxes), bits(b.pred_boxes));
    assert_eq!(bits(a.pred_masks), bits(b.pred_masks));
    assert_eq!(bits(a.presence_logit), bits(b.presence_logit));
    assert_eq!(ca.len(), cb.len());
    for (name, t) in cb.iter() {
        assert_eq!(ca.get(name).unwrap().to_vec(), t.to_vec(), "{name}");
    }
}

/// The storage class a crafted `.pt` gives a tensor (shapes count complex elements).
#[derive(Clone, Copy, PartialEq)]
enum Storage {
    Float,
    Complex64,
    Complex128,
}

/// As in the released sam3.pt: the RoPE tables are complex64, the rest float32.
fn sam3_storages(key: &str) -> Storage {
    if key.ends_with(".attn.freqs_cis") { Storage::Complex64 } else { Storage::Float }
}

/// A minimal `torch.save` zip writer (pickle of `{"model": {key: tensor}}`, stored entries),
/// enough for pickle-free readers; written here so the `.pt` path is tested without torch. Like
/// torch's pickler it memoizes each storage class on first use (BINPUT) and refers back to it
/// (BINGET). The storage class is a protocol-2 `GLOBAL`, or with `protocol4` the
/// `SHORT_BINUNICODE`×2 + `STACK_GLOBAL` form of newer protocols.
fn write_torch_zip(path: &Path, tensors: &BTreeMap<String, (Vec<usize>, Vec<u8>)>, storage: impl Fn(&str) -> Storage, protocol4: bool) {
    fn unicode(p: &mut Vec<u8>, s: &str) {
        p.push(b'X');
        p.extend((s.len() as u32).to_le_bytes());
        p.extend(s.as_bytes());
    }
    fn int(p: &mut Vec<u8>, v: i64) {
        p.push(b'J');
        p.extend((v as i32).to_le_bytes());
    }
    let mut pkl = vec![0x80, if protocol4 { 4 } else { 2 }, b'}'];
    let mut memo: BTreeMap<&str, u8> = BTreeMap::new();
    unicode(&mut pkl, "model");
    pkl.extend(b"}(");
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, (k, (shape, bytes))) in tensors.iter().enumerate() {
        unicode(&mut pkl, k);
        pkl.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        unicode(&mut pkl, "storage");
        let (class, esize) = match storage(k) {
            Storage::Float => ("FloatStorage", 4),
            Storage::Complex64 => ("ComplexFloatStorage", 8),
            Storage::Complex128 => ("ComplexDoubleStorage", 16),
        };
        if let Some(&m) = memo.get(class) {
            pkl.extend([b'h', m]);
        } else {
            if protocol4 {
                pkl.extend([0x8c, 5]);
                pkl.extend(b"torch");
                pkl.extend([0x8c, class.len() as u8]);
                pkl.extend(class.as_bytes());
                pkl.push(0x93);
            } else {
                pkl.extend(format!("ctorch\n{class}\n").bytes());
            }
            let m = memo.len() as u8;
            pkl.extend([b'q', m]);
            memo.insert(class, m);
        }
        unicode(&mut pkl, &i.to_string());
        unicode(&mut pkl, "cpu");
        int(&mut pkl, (bytes.len() / esize) as i64);
        pkl.extend(b"tQ");
        int(&mut pkl, 0);
        pkl.push(b'(');
        for &d in shape {
            int(&mut pkl, d as i64);
        }
        pkl.extend(b"t(");
        let mut stride = 1usize;
        let mut strides = vec![0usize; shape.len()];
        for j in (0..shape.len()).rev() {
            strides[j] = stride;
            stride *= shape[j];
        }
        for s in strides {
            int(&mut pkl, s as i64);
        }
        pkl.extend(b"t\x89ccollections\nOrderedDict\n)RtR");
        entries.push((format!("archive/data/{i}"), bytes.clone()));
    }
    pkl.extend(b"us.");
    entries.insert(0, ("archive/data.pkl".into(), pkl));
    entries.push(("archive/byteorder".into(), b"little".to_vec()));
    entries.push(("archive/version".into(), b"3\n".to_vec()));

    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in &entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let crc = crc.sum();
        let offset = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend(20u16.to_le_bytes()); // version needed
            v.extend(0u16.to_le_bytes()); // flags
            v.extend(0u16.to_le_bytes()); // stored
            v.extend(0u32.to_le_bytes()); // time, date
            v.extend(crc.to_le_bytes());
            v.extend((data.len() as u32).to_le_bytes());
            v.extend((data.len() as u32).to_le_bytes());
            v.extend((name.len() as u16).to_le_bytes());
            v.extend(0u16.to_le_bytes()); // extra
        };
        out.extend(0x04034b50u32.to_le_bytes());
        common(&mut out);
        out.extend(name.as_bytes());
        out.extend(data);
        central.extend(0x02014b50u32.to_le_bytes());
        central.extend(20u16.to_le_bytes()); // made by
        common(&mut central);
        central.extend([0u8; 6]); // comment len, disk, internal attr
        central.extend(0u32.to_le_bytes()); // external attr
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x06054b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    std::fs::write(path, out).unwrap();
}

#[test]
fn pytorch_zip_state_dict_wrapped_in_model_loads_the_same_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let mut w: BTreeMap<String, (Vec<usize>, Vec<u8>)> =
        weights().into_iter().map(|(k, v)| (format!("detector.{k}"), v)).collect();
    w.insert("tracker.some.weight".into(), (vec![2], vec![0; 8]));
    let p = dir.path().join("sam3_tiny.pt");
    write_torch_zip(&p, &w, sam3_storages, false);
    let idx = read_index(&p).unwrap();
    assert_eq!(idx.format, CheckpointFormat::Pytorch);
    assert_eq!(idx.skipped, vec!["model.tracker.some.weight".to_string()]);
    let reference = params(&load(&fixture().join("weights.safetensors")).unwrap());
    assert_eq!(params(&load(&p).unwrap()), reference);

    // the same errors as for safetensors
    w.remove("detector.geometry_encoder.cls_embed.weight");
    write_torch_zip(&p, &w, sam3_storages, false);
    let msg = load(&p).err().unwrap().to_string();
    assert!(msg.contains("sam3_tiny.pt") && msg.contains("missing keys (1): geometry_encoder.cls_embed.weight"), "{msg}");
}

/// The fixture under `detector.` with complex64 RoPE tables in two blocks (as the released sam3.pt
/// stores them; arbitrary bytes, never read) and a tracker key.
fn sam3_like() -> BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let mut w: BTreeMap<String, (Vec<usize>, Vec<u8>)> =
        weights().into_iter().map(|(k, v)| (format!("detector.{k}"), v)).collect();
    w.insert("tracker.some.weight".into(), (vec![2], vec![0; 8]));
    for b in 0..2 {
        let table: Vec<u8> = (0..16 * 16 * 8).map(|i| (i * 7 + b) as u8).collect();
        w.insert(format!("detector.backbone.vision_backbone.trunk.blocks.{b}.attn.freqs_cis"), (vec![16, 16], table));
    }
    w
}

fn load_with_scratch(path: &Path, scratch: &Path) -> Result<Sam3, ModelError> {
    let cfg = Sam3Config::from_file(&config())?;
    let mut m = Sam3::new(&cfg, &Device::flex());
    load_into_with_scratch(&mut m, path, &param_shapes(&cfg), "", scratch)?;
    Ok(m)
}

/// Equal parameter sets, naming the differing keys rather than dumping the bytes.
fn assert_same_params(got: &BTreeMap<String, Vec<u8>>, want: &BTreeMap<String, Vec<u8>>) {
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    let differ: Vec<&String> = got.iter().filter(|(k, b)| want[*k] != **b).map(|(k, _)| k).collect();
    assert!(differ.is_empty(), "parameters differ from the reference: {differ:?}");
}

fn scratch_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
}

#[test]
fn pytorch_zip_with_complex64_rope_tables_loads_the_source_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let w = sam3_like();
    let source = weights();
    let reference = params(&load(&fixture().join("weights.safetensors")).unwrap());
    let freqs: Vec<String> =
        (0..2).map(|b| format!("model.detector.backbone.vision_backbone.trunk.blocks.{b}.attn.freqs_cis")).collect();
    // the storage class as a protocol-2 GLOBAL and as a protocol-4 STACK_GLOBAL
    for protocol4 in [false, true] {
        let p = dir.path().join(format!("sam3_complex_{protocol4}.pt"));
        write_torch_zip(&p, &w, sam3_storages, protocol4);
        let raw = std::fs::read(&p).unwrap();
        let needle: &[u8] = if protocol4 { b"\x8c\x13ComplexFloatStorage" } else { b"ctorch\nComplexFloatStorage\n" };
        assert!(raw.windows(needle.len()).any(|x| x == needle), "the crafted file must hold the complex class");

        let idx = read_index_with_scratch(&p, scratch.path()).unwrap();
        assert_eq!(idx.format, CheckpointFormat::Pytorch);
        let mut skipped = idx.skipped.clone();
        skipped.sort();
        assert_eq!(skipped, [freqs.clone(), vec!["model.tracker.some.weight".to_string()]].concat());
        assert_eq!(idx.tensors.len(), source.len());
        assert!(idx.tensors.values().all(|e| e.dtype == "F32"), "{:?}", idx.tensors.values().next());
        assert!(scratch_files(scratch.path()).is_empty(), "nothing written to the scratch directory");

        // every parameter holds the source's bytes: the same as loading the fixture's safetensors
        let m = load_with_scratch(&p, scratch.path()).unwrap();
        assert_same_params(&params(&m), &reference);
        assert!(scratch_files(scratch.path()).is_empty(), "nothing written to the scratch directory");
        // the plain loader (system temp dir) does the same
        assert_same_params(&params(&load(&p).unwrap()), &reference);
    }
}

/// The released sam3.pt's layout is read in place: the old loader wrote a relabelled copy of the
/// whole archive into the scratch directory (TMPDIR), so a scratch directory that cannot be written
/// made it fail; now nothing is written, so a missing one does not matter.
#[test]
fn complex_pytorch_zip_is_read_in_place_without_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sam3_complex.pt");
    write_torch_zip(&p, &sam3_like(), sam3_storages, true);
    let nowhere = dir.path().join("no-such-dir");
    let idx = read_index_with_scratch(&p, &nowhere).unwrap();
    assert_eq!(idx.format, CheckpointFormat::Pytorch);
    let reference = params(&load(&fixture().join("weights.safetensors")).unwrap());
    assert_same_params(&params(&load_with_scratch(&p, &nowhere).unwrap()), &reference);
    assert!(!nowhere.exists());
    let names: Vec<PathBuf> = scratch_files(dir.path());
    assert_eq!(names, vec![p.clone()], "only the checkpoint is in its directory");

    // the shared opener (the weight tools' reader) sees the RoPE tables as their real views
    let pt = sam3lab_checkpoint::open_pytorch(&p).unwrap();
    let rope: Vec<_> = pt.iter().filter(|t| t.complex).collect();
    assert_eq!(rope.len(), 2);
    for t in rope {
        assert!(t.name.ends_with(".attn.freqs_cis"), "{}", t.name);
        assert_eq!(t.shape, vec![16, 16, 2]);
        assert_eq!(t.dtype, burn::store::pytorch_reader::DType::F32);
        let b: usize = t.name.split("blocks.").nth(1).unwrap()[..1].parse().unwrap();
        let want: Vec<u8> = (0..16 * 16 * 8).map(|i| (i * 7 + b) as u8).collect();
        assert_eq!(t.read().unwrap(), want);
    }
}

#[test]
fn complex_tensors_that_are_not_rope_tables_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let p = dir.path().join("odd.pt");

    // a complex128 RoPE table is skipped like a complex64 one (read in place, never relabelled)
    let mut w = sam3_like();
    let k128 = "detector.backbone.vision_backbone.trunk.blocks.1.attn.freqs_cis";
    w.insert(k128.into(), (vec![16, 16], vec![1; 16 * 16 * 16]));
    write_torch_zip(&p, &w, |k| if k == k128 { Storage::Complex128 } else { sam3_storages(k) }, false);
    let reference = params(&load(&fixture().join("weights.safetensors")).unwrap());
    assert_same_params(&params(&load_with_scratch(&p, scratch.path()).unwrap()), &reference);

    // complex128 anywhere else: refused, naming the key and its type
    let mut w = sam3_like();
    let k128 = "detector.geometry_encoder.phase128";
    w.insert(k128.into(), (vec![16, 16], vec![1; 16 * 16 * 16]));
    write_torch_zip(&p, &w, |k| if k == k128 { Storage::Complex128 } else { sam3_storages(k) }, false);
    let msg = load_with_scratch(&p, scratch.path()).err().unwrap().to_string();
    assert!(msg.contains("odd.pt") && msg.contains("complex128") && msg.contains(&format!("model.{k128}")), "{msg}");
    assert!(!msg.contains("blocks.0"), "only the foreign complex key is named: {msg}");
    assert!(scratch_files(scratch.path()).is_empty());

    // a complex64 tensor that is not a RoPE table: refused, naming it
    let mut w = sam3_like();
    let odd = "detector.geometry_encoder.phase";
    w.insert(odd.into(), (vec![4], vec![0; 4 * 8]));
    write_torch_zip(&p, &w, |k| if k == odd { Storage::Complex64 } else { sam3_storages(k) }, true);
    let msg = load_with_scratch(&p, scratch.path()).err().unwrap().to_string();
    assert!(msg.contains("odd.pt") && msg.contains("other than the RoPE tables") && msg.contains("model.detector.geometry_encoder.phase"), "{msg}");
    assert!(!msg.contains("blocks.0"), "{msg}");
    assert!(scratch_files(scratch.path()).is_empty());
}

#[test]
fn broken_complex_pytorch_zips_give_the_readers_errors() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let w = sam3_like();
    let p = dir.path().join("sam3_complex.pt");
    write_torch_zip(&p, &w, sam3_storages, false);
    let good = std::fs::read(&p).unwrap();

    // cut off: no zip directory, so burn's reader gives its own error
    let cut = dir.path().join("cut.pt");
    std::fs::write(&cut, &good[..good.len() * 2 / 3]).unwrap();
    let msg = load_with_scratch(&cut, scratch.path()).err().unwrap().to_string();
    assert!(msg.contains("cut.pt") && msg.contains("not a readable PyTorch checkpoint"), "{msg}");

    // one flipped byte inside a storage: the in-place reader checks the entry's CRC and refuses the
    // tensor, naming it
    let (_, (_, victim)) = weights().into_iter().max_by_key(|(_, (_, b))| b.len()).unwrap();
    let at = good.windows(64).position(|x| x == &victim[..64]).expect("storage bytes in the file") + victim.len() / 2;
    let mut bad = good.clone();
    bad[at] ^= 0x5a;
    let flipped = dir.path().join("flipped.pt");
    std::fs::write(&flipped, &bad).unwrap();
    let msg = load_with_scratch(&flipped, scratch.path()).err().unwrap().to_string();
    assert!(msg.contains("flipped.pt") && msg.contains("damaged") && msg.contains("Invalid checksum"), "{msg}");
    assert!(msg.contains("tensor '") && msg.contains("storage `archive/data/"), "{msg}");
    assert!(scratch_files(scratch.path()).is_empty(), "nothing written, also on an error");
}
