//! transformers' SAM3 naming (design doc §5), mapped back to the reference's: the inverse of
//! transformers' `convert_sam3_to_hf.py`. Keys are renamed, q/k/v re-concatenated into `in_proj_*`
//! / the ViT `qkv`, the dropped cls row of `pos_embed` restored (zeros: SAM3 never reads it) and
//! `text_projection` transposed back; transformers' video checkpoints (`Sam3VideoModel`) hold the
//! image model under `detector_model.` (only those keys are read).

use std::collections::{BTreeMap, HashSet};

use regex::Regex;

use crate::dtype::Dtype;
use crate::error::{CheckpointError, Result};
use crate::keys::is_skipped_key;
use crate::reader::{Checkpoint, TensorEntry};

/// Does a file with these keys use transformers' naming?
pub fn is_hf<'a>(mut keys: impl Iterator<Item = &'a str>) -> bool {
    keys.any(|k| {
        let k = hf_strip(k);
        k.starts_with("vision_encoder.backbone.") || k.starts_with("detr_decoder.") || k.starts_with("text_encoder.text_model.")
    })
}

/// The image model's prefix in transformers' video checkpoints (`Sam3VideoModel`:
/// `convert_sam3_video_to_hf.py` maps the original `sam3_model.` to `detector_model.`, beside
/// `tracker_model.*` and `tracker_neck.*`).
const HF_DETECTOR: &str = "detector_model.";

/// An HF key without its model prefix (`detector_model.` or `sam3_model.`).
fn hf_strip(key: &str) -> &str {
    key.strip_prefix(HF_DETECTOR).or_else(|| key.strip_prefix("sam3_model.")).unwrap_or(key)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum HfFix {
    None,
    /// `position_embeddings` lost the cls row: prepend one (zeros).
    PrependClsRow,
    /// `text_projection` was stored transposed.
    Transpose,
}

struct HfTarget {
    /// The parts (one, or q/k/v in order), as indices into the file's entries.
    sources: Vec<usize>,
    fix: HfFix,
    shape: Vec<usize>,
    dtype: Dtype,
}

/// How an HF file's tensors become the reference's: each reference tensor from one HF tensor (maybe
/// fixed up) or from q/k/v concatenated.
pub struct HfPlan {
    targets: BTreeMap<String, HfTarget>,
    /// Stored keys the image model does not use.
    pub skipped: Vec<String>,
}

/// Ordered rename rules HF → reference (`$1` = captured layer index).
fn hf_rules() -> &'static [(Regex, &'static str)] {
    static RULES: std::sync::OnceLock<Vec<(Regex, &'static str)>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        let vb = "backbone.vision_backbone.";
        let lb = "backbone.language_backbone.";
        let rules: Vec<(String, String)> = vec![
            // vision trunk
            (r"^vision_encoder\.backbone\.embeddings\.position_embeddings$".into(), format!("{vb}trunk.pos_embed")),
            (r"^vision_encoder\.backbone\.embeddings\.patch_embeddings\.projection\.".into(), format!("{vb}trunk.patch_embed.proj.")),
            (r"^vision_encoder\.backbone\.layer_norm\.".into(), format!("{vb}trunk.ln_pre.")),
            (r"^vision_encoder\.backbone\.layers\.(\d+)\.layer_norm1\.".into(), format!("{vb}trunk.blocks.$1.norm1.")),
            (r"^vision_encoder\.backbone\.layers\.(\d+)\.layer_norm2\.".into(), format!("{vb}trunk.blocks.$1.norm2.")),
            (r"^vision_encoder\.backbone\.layers\.(\d+)\.attention\.([qkv])_proj\.".into(), format!("{vb}trunk.blocks.$1.attn.qkv.${{2}}_part.")),
            (r"^vision_encoder\.backbone\.layers\.(\d+)\.attention\.qkv\.".into(), format!("{vb}trunk.blocks.$1.attn.qkv.")),
            (r"^vision_encoder\.backbone\.layers\.(\d+)\.attention\.o_proj\.".into(), format!("{vb}trunk.blocks.$1.attn.proj.")),
            (r"^vision_encoder\.backbone\.layers\.(\d+)\.mlp\.".into(), format!("{vb}trunk.blocks.$1.mlp.")),
            // neck (scale_layers.0 of a 4× level is dconv_2x2_0: fixed up in HfPlan::new)
            (r"^vision_encoder\.neck\.fpn_layers\.(\d+)\.scale_layers\.0\.".into(), format!("{vb}convs.$1.dconv_2x2.")),
            (r"^vision_encoder\.neck\.fpn_layers\.(\d+)\.scale_layers\.2\.".into(), format!("{vb}convs.$1.dconv_2x2_1.")),
            (r"^vision_encoder\.neck\.fpn_layers\.(\d+)\.proj1\.".into(), format!("{vb}convs.$1.conv_1x1.")),
            (r"^vision_encoder\.neck\.fpn_layers\.(\d+)\.proj2\.".into(), format!("{vb}convs.$1.conv_3x3.")),
            // text
            (r"^text_encoder\.text_model\.embeddings\.token_embedding\.".into(), format!("{lb}encoder.token_embedding.")),
            (r"^text_encoder\.text_model\.embeddings\.position_embedding\.weight$".into(), format!("{lb}encoder.positional_embedding")),
            (r"^text_encoder\.text_model\.final_layer_norm\.".into(), format!("{lb}encoder.ln_final.")),
            (r"^text_encoder\.text_projection\.weight$".into(), format!("{lb}encoder.text_projection")),
            (r"^text_encoder\.text_model\.encoder\.layers\.(\d+)\.self_attn\.".into(), format!("{lb}encoder.transformer.resblocks.$1.attn.")),
            (r"^text_encoder\.text_model\.encoder\.layers\.(\d+)\.layer_norm1\.".into(), format!("{lb}encoder.transformer.resblocks.$1.ln_1.")),
            (r"^text_encoder\.text_model\.encoder\.layers\.(\d+)\.layer_norm2\.".into(), format!("{lb}encoder.transformer.resblocks.$1.ln_2.")),
            (r"^text_encoder\.text_model\.encoder\.layers\.(\d+)\.mlp\.fc1\.".into(), format!("{lb}encoder.transformer.resblocks.$1.mlp.c_fc.")),
            (r"^text_encoder\.text_model\.encoder\.layers\.(\d+)\.mlp\.fc2\.".into(), format!("{lb}encoder.transformer.resblocks.$1.mlp.c_proj.")),
            (r"^text_projection\.".into(), format!("{lb}resizer.")),
            // geometry encoder
            (r"^geometry_encoder\.layers\.(\d+)\.cross_attn\.".into(), "geometry_encoder.encode.$1.cross_attn_image.".into()),
            (r"^geometry_encoder\.layers\.(\d+)\.self_attn\.".into(), "geometry_encoder.encode.$1.self_attn.".into()),
            (r"^geometry_encoder\.layers\.(\d+)\.mlp\.fc([12])\.".into(), "geometry_encoder.encode.$1.linear$2.".into()),
            (r"^geometry_encoder\.layers\.(\d+)\.layer_norm([123])\.".into(), "geometry_encoder.encode.$1.norm$2.".into()),
            (r"^geometry_encoder\.vision_layer_norm\.".into(), "geometry_encoder.img_pre_norm.".into()),
            (r"^geometry_encoder\.prompt_layer_norm\.".into(), "geometry_encoder.norm.".into()),
            (r"^geometry_encoder\.output_layer_norm\.".into(), "geometry_encoder.encode_norm.".into()),
            // fusion encoder
            (r"^detr_encoder\.layers\.(\d+)\.cross_attn\.".into(), "transformer.encoder.layers.$1.cross_attn_image.".into()),
            (r"^detr_encoder\.layers\.(\d+)\.self_attn\.".into(), "transformer.encoder.layers.$1.self_attn.".into()),
            (r"^detr_encoder\.layers\.(\d+)\.mlp\.fc([12])\.".into(), "transformer.encoder.layers.$1.linear$2.".into()),
            (r"^detr_encoder\.layers\.(\d+)\.layer_norm([123])\.".into(), "transformer.encoder.layers.$1.norm$2.".into()),
            // decoder
            (r"^detr_decoder\.layers\.(\d+)\.self_attn_layer_norm\.".into(), "transformer.decoder.layers.$1.norm2.".into()),
            (r"^detr_decoder\.layers\.(\d+)\.text_cross_attn_layer_norm\.".into(), "transformer.decoder.layers.$1.catext_norm.".into()),
            (r"^detr_decoder\.layers\.(\d+)\.vision_cross_attn_layer_norm\.".into(), "transformer.decoder.layers.$1.norm1.".into()),
            (r"^detr_decoder\.layers\.(\d+)\.mlp_layer_norm\.".into(), "transformer.decoder.layers.$1.norm3.".into()),
            (r"^detr_decoder\.layers\.(\d+)\.self_attn\.".into(), "transformer.decoder.layers.$1.self_attn.".into()),
            (r"^detr_decoder\.layers\.(\d+)\.text_cross_attn\.".into(), "transformer.decoder.layers.$1.ca_text.".into()),
            (r"^detr_decoder\.layers\.(\d+)\.vision_cross_attn\.".into(), "transformer.decoder.layers.$1.cross_attn.".into()),
            (r"^detr_decoder\.layers\.(\d+)\.mlp\.fc([12])\.".into(), "transformer.decoder.layers.$1.linear$2.".into()),
            (r"^detr_decoder\.presence_layer_norm\.".into(), "transformer.decoder.presence_token_out_norm.".into()),
            (r"^detr_decoder\.output_layer_norm\.".into(), "transformer.decoder.norm.".into()),
            (r"^detr_decoder\.presence_head\.layer(\d)\.".into(), "transformer.decoder.presence_token_head.layers.#$1.".into()),
            (r"^detr_decoder\.box_head\.layer(\d)\.".into(), "transformer.decoder.bbox_embed.layers.#$1.".into()),
            (r"^detr_decoder\.ref_point_head\.layer(\d)\.".into(), "transformer.decoder.ref_point_head.layers.#$1.".into()),
            (r"^detr_decoder\.box_rpb_embed_([xy])\.layer(\d)\.".into(), "transformer.decoder.boxRPB_embed_$1.layers.#$2.".into()),
            (r"^detr_decoder\.".into(), "transformer.decoder.".into()),
            // scoring
            (r"^dot_product_scoring\.text_mlp\.layer(\d)\.".into(), "dot_prod_scoring.prompt_mlp.layers.#$1.".into()),
            (r"^dot_product_scoring\.text_mlp_out_norm\.".into(), "dot_prod_scoring.prompt_mlp.out_norm.".into()),
            (r"^dot_product_scoring\.text_proj\.".into(), "dot_prod_scoring.prompt_proj.".into()),
            (r"^dot_product_scoring\.query_proj\.".into(), "dot_prod_scoring.hs_proj.".into()),
            // segmentation head
            (r"^mask_decoder\.pixel_decoder\.".into(), "segmentation_head.pixel_decoder.".into()),
            (r"^mask_decoder\.mask_embedder\.layers\.".into(), "segmentation_head.mask_predictor.mask_embed.layers.".into()),
            (r"^mask_decoder\.instance_projection\.".into(), "segmentation_head.instance_seg_head.".into()),
            (r"^mask_decoder\.semantic_projection\.".into(), "segmentation_head.semantic_seg_head.".into()),
            (r"^mask_decoder\.prompt_cross_attn_norm\.".into(), "segmentation_head.cross_attn_norm.".into()),
            (r"^mask_decoder\.prompt_cross_attn\.".into(), "segmentation_head.cross_attend_prompt.".into()),
        ];
        rules.into_iter().map(|(p, r)| (Regex::new(&p).expect("static HF rule"), &*Box::leak(r.into_boxed_str()))).collect()
    })
}

/// Rename one HF key. Returns `(reference key, q/k/v part)`; HF's 1-based `layerN` indices come
/// back 0-based.
fn hf_rename(key: &str) -> Option<(String, Option<usize>)> {
    let key = hf_strip(key);
    let mut name = None;
    for (re, rep) in hf_rules() {
        if re.is_match(key) {
            name = Some(re.replace(key, *rep).into_owned());
            break;
        }
    }
    let mut name = name.unwrap_or_else(|| key.to_string());
    // 1-based `layerK` → 0-based `layers.K-1`
    if let Some(i) = name.find(".#") {
        let rest = &name[i + 2..];
        let end = rest.find('.').unwrap_or(rest.len());
        let k: usize = rest[..end].parse().ok()?;
        name = format!("{}.{}{}", &name[..i], k.checked_sub(1)?, &rest[end..]);
    }
    // attention projections: q/k/v parts and o_proj
    static QKV: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let qkv = QKV.get_or_init(|| Regex::new(r"^(.*)\.(?:([qkv])_proj|qkv\.([qkv])_part)\.(weight|bias)$").unwrap());
    if let Some(c) = qkv.captures(&name) {
        let part = ["q", "k", "v"].iter().position(|p| Some(*p) == c.get(2).or(c.get(3)).map(|m| m.as_str()))?;
        let base = &c[1];
        let wb = &c[4];
        let target = if name.contains(".attn.qkv.") { format!("{base}.qkv.{wb}") } else { format!("{base}.in_proj_{wb}") };
        return Some((target, Some(part)));
    }
    Some((name.replace(".o_proj.", ".out_proj."), None))
}

impl HfPlan {
    /// The plan for an opened HF checkpoint.
    pub fn new(ckpt: &Checkpoint) -> Result<Self> {
        let path = ckpt.path();
        let raw: BTreeMap<&str, (usize, &TensorEntry)> = ckpt.all_entries().iter().enumerate().map(|(i, e)| (e.stored_name.as_str(), (i, e))).collect();
        let four_x: HashSet<String> = raw
            .keys()
            .filter_map(|k| {
                let rest = hf_strip(k).strip_prefix("vision_encoder.neck.fpn_layers.")?;
                let (lvl, tail) = rest.split_once('.')?;
                tail.starts_with("scale_layers.2.").then(|| lvl.to_string())
            })
            .collect();
        let mut parts: BTreeMap<String, [Option<usize>; 3]> = BTreeMap::new();
        let mut targets = BTreeMap::new();
        let mut skipped = Vec::new();
        // A video checkpoint: only `detector_model.*` is the image model (the tracker is skipped).
        let video = raw.keys().any(|k| k.starts_with(HF_DETECTOR));
        for (&k, &(i, e)) in &raw {
            let shape = &e.shape;
            if (video && !k.starts_with(HF_DETECTOR)) || is_skipped_key(hf_strip(k)) {
                skipped.push(k.to_string());
                continue;
            }
            let Some((mut name, part)) = hf_rename(k) else {
                return Err(CheckpointError::format(path, format!("HF key `{k}` has a malformed layer index")));
            };
            if let Some(lvl) = name.strip_prefix("backbone.vision_backbone.convs.").and_then(|r| r.split('.').next())
                && four_x.contains(lvl)
            {
                name = name.replace(&format!("convs.{lvl}.dconv_2x2."), &format!("convs.{lvl}.dconv_2x2_0."));
            }
            match part {
                Some(p) => parts.entry(name).or_default()[p] = Some(i),
                None => {
                    let (fix, shape) = if name == "backbone.vision_backbone.trunk.pos_embed" {
                        let (n, c) = (shape[shape.len() - 2], shape[shape.len() - 1]);
                        (HfFix::PrependClsRow, vec![1, n + 1, c])
                    } else if name == "backbone.language_backbone.encoder.text_projection" && shape.len() == 2 {
                        (HfFix::Transpose, vec![shape[1], shape[0]])
                    } else {
                        (HfFix::None, shape.clone())
                    };
                    targets.insert(name, HfTarget { sources: vec![i], fix, shape, dtype: e.dtype });
                }
            }
        }
        for (name, [q, k, v]) in parts {
            let (Some(q), Some(k), Some(v)) = (q, k, v) else {
                return Err(CheckpointError::format(path, format!("HF checkpoint lacks one of the q/k/v projections of `{name}`")));
            };
            let entries = ckpt.all_entries();
            let (sq, dq) = (&entries[q].shape, entries[q].dtype);
            if entries[k].shape != *sq || entries[v].shape != *sq {
                return Err(CheckpointError::format(path, format!("q/k/v projections of `{name}` differ in shape")));
            }
            let mut shape = sq.clone();
            shape[0] *= 3;
            targets.insert(name, HfTarget { sources: vec![q, k, v], fix: HfFix::None, shape, dtype: dq });
        }
        Ok(HfPlan { targets, skipped })
    }

    /// The reference tensors: name, shape and dtype, sorted by name.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, &[usize], Dtype)> {
        self.targets.iter().map(|(n, t)| (n.as_str(), t.shape.as_slice(), t.dtype))
    }

    /// The bytes of reference tensor `name`, built from the HF tensors of `ckpt` (the file the plan
    /// was made from).
    pub fn read(&self, ckpt: &Checkpoint, name: &str) -> Result<Vec<u8>> {
        let t = self.targets.get(name).ok_or_else(|| CheckpointError::Tensor {
            path: ckpt.path().into(),
            name: name.into(),
            reason: "not a tensor of this HF checkpoint's plan".into(),
        })?;
        let entries: Vec<&TensorEntry> = t.sources.iter().map(|&i| &ckpt.all_entries()[i]).collect();
        let parts: Vec<std::borrow::Cow<'_, [u8]>> = entries.iter().map(|e| ckpt.raw_bytes(e)).collect::<Result<_>>()?;
        let esize = t.dtype.bitsize() / 8;
        let built = match t.fix {
            HfFix::None => parts.iter().flat_map(|v| v.iter().copied()).collect(),
            HfFix::PrependClsRow => {
                let c = t.shape[2];
                let mut d = vec![0u8; c * esize];
                d.extend_from_slice(&parts[0]);
                d
            }
            HfFix::Transpose => {
                let src = &parts[0];
                let (r, c) = (t.shape[1], t.shape[0]); // source is (r, c)
                let mut d = vec![0u8; src.len()];
                for i in 0..r {
                    for j in 0..c {
                        let s = (i * c + j) * esize;
                        let o = (j * r + i) * esize;
                        d[o..o + esize].copy_from_slice(&src[s..s + esize]);
                    }
                }
                d
            }
        };
        // The built copy is the caller's; the mapped source pages leave the resident set.
        drop(parts);
        for e in entries {
            ckpt.release_entry(e);
        }
        Ok(built)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_names_map_back() {
        let cases = [
            ("vision_encoder.backbone.layers.3.attention.k_proj.weight", "backbone.vision_backbone.trunk.blocks.3.attn.qkv.weight", Some(1)),
            ("vision_encoder.backbone.layers.0.attention.o_proj.bias", "backbone.vision_backbone.trunk.blocks.0.attn.proj.bias", None),
            ("text_encoder.text_model.encoder.layers.1.self_attn.v_proj.bias", "backbone.language_backbone.encoder.transformer.resblocks.1.attn.in_proj_bias", Some(2)),
            ("text_encoder.text_model.encoder.layers.1.self_attn.out_proj.weight", "backbone.language_backbone.encoder.transformer.resblocks.1.attn.out_proj.weight", None),
            ("detr_decoder.layers.0.text_cross_attn.o_proj.weight", "transformer.decoder.layers.0.ca_text.out_proj.weight", None),
            ("detr_decoder.presence_head.layer3.bias", "transformer.decoder.presence_token_head.layers.2.bias", None),
            ("detr_decoder.box_rpb_embed_y.layer1.weight", "transformer.decoder.boxRPB_embed_y.layers.0.weight", None),
            ("mask_decoder.prompt_cross_attn.q_proj.weight", "segmentation_head.cross_attend_prompt.in_proj_weight", Some(0)),
            ("text_projection.bias", "backbone.language_backbone.resizer.bias", None),
            ("geometry_encoder.label_embed.weight", "geometry_encoder.label_embed.weight", None),
        ];
        for (hf, want, part) in cases {
            assert_eq!(hf_rename(hf), Some((want.to_string(), part)), "{hf}");
        }
    }
}
