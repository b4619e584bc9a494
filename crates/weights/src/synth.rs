//! Synthetic checkpoints with SAM3's real tensor names and shapes (840,509,750 parameters, design
//! doc §1.3), for the `weights-diff` benchmark and for tests of the default groups.

use std::path::Path;

use sam3lab_util::progress::Progress;
use sam3lab_util::rng::Rng;

use sam3lab_checkpoint::Checkpoint;
use sam3lab_checkpoint::dtype::Dtype;
use crate::error::{Result, WeightsError};
use sam3lab_checkpoint::{SafetensorsWriter, TensorHeader};

/// Parameters of the SAM3 image detector without the tracker neck.
pub const SAM3_PARAMS: u64 = 840_509_750;

fn push(v: &mut Vec<(String, Vec<usize>)>, name: impl Into<String>, shape: &[usize]) {
    v.push((name.into(), shape.to_vec()));
}

fn linear(v: &mut Vec<(String, Vec<usize>)>, p: &str, out: usize, inp: usize) {
    push(v, format!("{p}.weight"), &[out, inp]);
    push(v, format!("{p}.bias"), &[out]);
}

fn norm(v: &mut Vec<(String, Vec<usize>)>, p: &str, d: usize) {
    push(v, format!("{p}.weight"), &[d]);
    push(v, format!("{p}.bias"), &[d]);
}

fn mha(v: &mut Vec<(String, Vec<usize>)>, p: &str, d: usize) {
    push(v, format!("{p}.in_proj_weight"), &[3 * d, d]);
    push(v, format!("{p}.in_proj_bias"), &[3 * d]);
    linear(v, &format!("{p}.out_proj"), d, d);
}

fn conv(v: &mut Vec<(String, Vec<usize>)>, p: &str, shape: &[usize], bias: usize) {
    push(v, format!("{p}.weight"), shape);
    push(v, format!("{p}.bias"), &[bias]);
}

/// Every image-detector tensor of SAM3 (names without `detector.`), with its shape.
pub fn sam3_layout() -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    let d = 256;
    // Vision trunk: ViT-L-ish, width 1024, 32 blocks, MLP 4736.
    let t = "backbone.vision_backbone.trunk";
    push(
        &mut v,
        format!("{t}.patch_embed.proj.weight"),
        &[1024, 3, 14, 14],
    );
    push(&mut v, format!("{t}.pos_embed"), &[1, 577, 1024]);
    norm(&mut v, &format!("{t}.ln_pre"), 1024);
    for i in 0..32 {
        let b = format!("{t}.blocks.{i}");
        norm(&mut v, &format!("{b}.norm1"), 1024);
        linear(&mut v, &format!("{b}.attn.qkv"), 3072, 1024);
        linear(&mut v, &format!("{b}.attn.proj"), 1024, 1024);
        norm(&mut v, &format!("{b}.norm2"), 1024);
        linear(&mut v, &format!("{b}.mlp.fc1"), 4736, 1024);
        linear(&mut v, &format!("{b}.mlp.fc2"), 1024, 4736);
    }
    // Neck.
    let c = "backbone.vision_backbone.convs";
    conv(
        &mut v,
        &format!("{c}.0.dconv_2x2_0"),
        &[1024, 512, 2, 2],
        512,
    );
    conv(
        &mut v,
        &format!("{c}.0.dconv_2x2_1"),
        &[512, 256, 2, 2],
        256,
    );
    conv(&mut v, &format!("{c}.0.conv_1x1"), &[256, 256, 1, 1], 256);
    conv(&mut v, &format!("{c}.0.conv_3x3"), &[256, 256, 3, 3], 256);
    conv(&mut v, &format!("{c}.1.dconv_2x2"), &[1024, 512, 2, 2], 512);
    conv(&mut v, &format!("{c}.1.conv_1x1"), &[256, 512, 1, 1], 256);
    conv(&mut v, &format!("{c}.1.conv_3x3"), &[256, 256, 3, 3], 256);
    for k in 2..4 {
        conv(
            &mut v,
            &format!("{c}.{k}.conv_1x1"),
            &[256, 1024, 1, 1],
            256,
        );
        conv(&mut v, &format!("{c}.{k}.conv_3x3"), &[256, 256, 3, 3], 256);
    }
    // Text encoder.
    let l = "backbone.language_backbone";
    push(
        &mut v,
        format!("{l}.encoder.token_embedding.weight"),
        &[49408, 1024],
    );
    push(
        &mut v,
        format!("{l}.encoder.positional_embedding"),
        &[32, 1024],
    );
    for i in 0..24 {
        let b = format!("{l}.encoder.transformer.resblocks.{i}");
        norm(&mut v, &format!("{b}.ln_1"), 1024);
        mha(&mut v, &format!("{b}.attn"), 1024);
        norm(&mut v, &format!("{b}.ln_2"), 1024);
        linear(&mut v, &format!("{b}.mlp.c_fc"), 4096, 1024);
        linear(&mut v, &format!("{b}.mlp.c_proj"), 1024, 4096);
    }
    norm(&mut v, &format!("{l}.encoder.ln_final"), 1024);
    push(&mut v, format!("{l}.encoder.text_projection"), &[1024, 512]);
    linear(&mut v, &format!("{l}.resizer"), d, 1024);
    // Geometry encoder.
    let g = "geometry_encoder";
    linear(&mut v, &format!("{g}.boxes_direct_project"), d, 4);
    conv(&mut v, &format!("{g}.boxes_pool_project"), &[d, d, 7, 7], d);
    linear(&mut v, &format!("{g}.boxes_pos_enc_project"), d, d + 2);
    push(&mut v, format!("{g}.cls_embed.weight"), &[1, d]);
    for i in 0..3 {
        encoder_layer(&mut v, &format!("{g}.encode.{i}"), d);
    }
    norm(&mut v, &format!("{g}.encode_norm"), d);
    linear(&mut v, &format!("{g}.final_proj"), d, d);
    norm(&mut v, &format!("{g}.img_pre_norm"), d);
    push(&mut v, format!("{g}.label_embed.weight"), &[2, d]);
    norm(&mut v, &format!("{g}.norm"), d);
    linear(&mut v, &format!("{g}.points_direct_project"), d, 2);
    linear(&mut v, &format!("{g}.points_pool_project"), d, d);
    linear(&mut v, &format!("{g}.points_pos_enc_project"), d, d);
    // Fusion encoder.
    for i in 0..6 {
        encoder_layer(&mut v, &format!("transformer.encoder.layers.{i}"), d);
    }
    // Decoder.
    let td = "transformer.decoder";
    for i in 0..6 {
        let b = format!("{td}.layers.{i}");
        mha(&mut v, &format!("{b}.self_attn"), d);
        norm(&mut v, &format!("{b}.norm2"), d);
        mha(&mut v, &format!("{b}.ca_text"), d);
        norm(&mut v, &format!("{b}.catext_norm"), d);
        mha(&mut v, &format!("{b}.cross_attn"), d);
        norm(&mut v, &format!("{b}.norm1"), d);
        linear(&mut v, &format!("{b}.linear1"), 2048, d);
        linear(&mut v, &format!("{b}.linear2"), d, 2048);
        norm(&mut v, &format!("{b}.norm3"), d);
    }
    norm(&mut v, &format!("{td}.norm"), d);
    linear(&mut v, &format!("{td}.bbox_embed.layers.0"), d, d);
    linear(&mut v, &format!("{td}.bbox_embed.layers.1"), d, d);
    linear(&mut v, &format!("{td}.bbox_embed.layers.2"), 4, d);
    push(&mut v, format!("{td}.query_embed.weight"), &[200, d]);
    push(&mut v, format!("{td}.reference_points.weight"), &[200, 4]);
    for axis in ["x", "y"] {
        linear(&mut v, &format!("{td}.boxRPB_embed_{axis}.layers.0"), d, 2);
        linear(&mut v, &format!("{td}.boxRPB_embed_{axis}.layers.1"), 8, d);
    }
    push(&mut v, format!("{td}.presence_token.weight"), &[1, d]);
    linear(&mut v, &format!("{td}.presence_token_head.layers.0"), d, d);
    linear(&mut v, &format!("{td}.presence_token_head.layers.1"), d, d);
    linear(&mut v, &format!("{td}.presence_token_head.layers.2"), 1, d);
    norm(&mut v, &format!("{td}.presence_token_out_norm"), d);
    linear(&mut v, &format!("{td}.ref_point_head.layers.0"), d, 2 * d);
    linear(&mut v, &format!("{td}.ref_point_head.layers.1"), d, d);
    // Scoring.
    let s = "dot_prod_scoring";
    linear(&mut v, &format!("{s}.hs_proj"), d, d);
    linear(&mut v, &format!("{s}.prompt_mlp.layers.0"), 2048, d);
    linear(&mut v, &format!("{s}.prompt_mlp.layers.1"), d, 2048);
    norm(&mut v, &format!("{s}.prompt_mlp.out_norm"), d);
    linear(&mut v, &format!("{s}.prompt_proj"), d, d);
    // Segmentation head.
    let sh = "segmentation_head";
    mha(&mut v, &format!("{sh}.cross_attend_prompt"), d);
    norm(&mut v, &format!("{sh}.cross_attn_norm"), d);
    conv(&mut v, &format!("{sh}.instance_seg_head"), &[d, d, 1, 1], d);
    for k in 0..3 {
        linear(
            &mut v,
            &format!("{sh}.mask_predictor.mask_embed.layers.{k}"),
            d,
            d,
        );
    }
    for k in 0..3 {
        conv(
            &mut v,
            &format!("{sh}.pixel_decoder.conv_layers.{k}"),
            &[d, d, 3, 3],
            d,
        );
        norm(&mut v, &format!("{sh}.pixel_decoder.norms.{k}"), d);
    }
    conv(&mut v, &format!("{sh}.semantic_seg_head"), &[1, d, 1, 1], 1);
    v
}

fn encoder_layer(v: &mut Vec<(String, Vec<usize>)>, p: &str, d: usize) {
    mha(v, &format!("{p}.self_attn"), d);
    mha(v, &format!("{p}.cross_attn_image"), d);
    linear(v, &format!("{p}.linear1"), 2048, d);
    linear(v, &format!("{p}.linear2"), d, 2048);
    norm(v, &format!("{p}.norm1"), d);
    norm(v, &format!("{p}.norm2"), d);
    norm(v, &format!("{p}.norm3"), d);
}

/// The SAM3 layout cut to `params` parameters: whole tensors while they fit, then one
/// `bench.remainder` tensor for the rest. With [`SAM3_PARAMS`] it is exactly [`sam3_layout`].
pub fn layout_with_params(params: u64) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let mut left = params;
    for (name, shape) in sam3_layout() {
        let n: u64 = shape.iter().product::<usize>() as u64;
        if n <= left {
            left -= n;
            out.push((name, shape));
        }
    }
    if left > 0 {
        out.push(("bench.remainder".into(), vec![left as usize]));
    }
    out
}

fn headers(layout: &[(String, Vec<usize>)]) -> Vec<TensorHeader> {
    layout
        .iter()
        .map(|(n, s)| TensorHeader {
            name: n.clone(),
            dtype: Dtype::F32,
            shape: s.clone(),
        })
        .collect()
}

/// Size in bytes of the f32 safetensors file [`write_base`] produces for `layout`.
pub fn file_size(layout: &[(String, Vec<usize>)]) -> Result<u64> {
    let h = headers(layout);
    let data: usize = h.iter().map(TensorHeader::byte_len).sum();
    Ok((sam3lab_checkpoint::header_bytes(&h, None)?.len() + data) as u64)
}

const PIECE: usize = 1 << 20;

/// Write an f32 checkpoint of `layout` with values uniform in ±0.05 (seeded; same seed → same bytes).
pub fn write_base(
    path: &Path,
    layout: &[(String, Vec<usize>)],
    seed: u64,
    progress: &dyn Progress,
) -> Result<()> {
    let h = headers(layout);
    progress.set_len(h.iter().map(|t| t.byte_len() as u64).sum());
    let mut w = SafetensorsWriter::create(path, &h, None)?;
    let mut rng = Rng::new(seed);
    let mut buf = Vec::with_capacity(PIECE * 4);
    for t in &h {
        let mut left = t.byte_len() / 4;
        while left > 0 {
            let n = left.min(PIECE);
            buf.clear();
            for _ in 0..n {
                let x = rng.range(-0.05, 0.05) as f32;
                buf.extend_from_slice(&x.to_le_bytes());
            }
            w.write(&t.name, &buf)?;
            progress.inc(buf.len() as u64);
            left -= n;
        }
    }
    w.finish()?;
    Ok(())
}

/// Write `base` + uniform noise of amplitude `noise` to `path` (same names, shapes, f32).
pub fn write_perturbed(
    path: &Path,
    base: &Path,
    noise: f32,
    seed: u64,
    progress: &dyn Progress,
) -> Result<()> {
    let ck = Checkpoint::open(base)?;
    let entries: Vec<_> = ck.all_entries().to_vec();
    if let Some(e) = entries.iter().find(|e| e.dtype != Dtype::F32) {
        return Err(ck.tensor_err(e, "write_perturbed handles f32 checkpoints only").into());
    }
    let h: Vec<TensorHeader> = entries.iter().map(|e| e.header()).collect();
    progress.set_len(h.iter().map(|t| t.byte_len() as u64).sum());
    let mut w = SafetensorsWriter::create(path, &h, None)?;
    let mut rng = Rng::new(seed);
    let mut buf = Vec::with_capacity(PIECE * 4);
    for e in &entries {
        let n = e.numel();
        let mut s = 0;
        while s < n {
            let m = (n - s).min(PIECE);
            let src = ck.bytes(e, s..s + m)?;
            buf.clear();
            for c in src.chunks_exact(4) {
                let x =
                    f32::from_le_bytes([c[0], c[1], c[2], c[3]]) + rng.range(-f64::from(noise), f64::from(noise)) as f32;
                buf.extend_from_slice(&x.to_le_bytes());
            }
            drop(src);
            ck.release(e, s..s + m);
            w.write(&e.stored_name, &buf)?;
            progress.inc(buf.len() as u64);
            s += m;
        }
    }
    w.finish()?;
    Ok(())
}

/// Is `path` a file of exactly `size` bytes whose header equals the one `layout` produces?
pub fn matches_layout(path: &Path, layout: &[(String, Vec<usize>)]) -> Result<bool> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(false);
    };
    if meta.len() != file_size(layout)? {
        return Ok(false);
    }
    let want = sam3lab_checkpoint::header_bytes(&headers(layout), None)?;
    let mut got = vec![0u8; want.len()];
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| WeightsError::io(path, e))?;
    f.read_exact(&mut got)
        .map_err(|e| WeightsError::io(path, e))?;
    Ok(got == want)
}
