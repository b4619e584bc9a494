//! Attention heads by their hook-API names, the checkpoint keys behind them, and how many heads each
//! module has (from a fixture `config.json` or SAM3's defaults). Names and tensor prefixes come from
//! the model's hook table (`sam3lab_model::points`).

use std::ops::Range;
use std::path::Path;

use regex::Regex;
use sam3lab_model::points;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SurgeryError};

/// Which stack a module belongs to (they differ in head count).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// ViT trunk: fused `qkv` / `proj`.
    Vit,
    /// Text encoder: `nn.MultiheadAttention` (`in_proj_*`, `out_proj`).
    Text,
    Geometry,
    Fusion,
    Decoder,
    /// Segmentation head's prompt cross-attention.
    Seg,
}

/// Heads per attention module, per family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadCounts {
    pub vit: usize,
    pub text: usize,
    pub geometry: usize,
    pub fusion: usize,
    pub decoder: usize,
    pub seg: usize,
}

impl Default for HeadCounts {
    /// The released SAM3's head counts.
    fn default() -> Self {
        Self::of(&sam3lab_model::Sam3Config::sam3())
    }
}

impl HeadCounts {
    pub fn get(&self, f: Family) -> usize {
        match f {
            Family::Vit => self.vit,
            Family::Text => self.text,
            Family::Geometry => self.geometry,
            Family::Fusion => self.fusion,
            Family::Decoder => self.decoder,
            Family::Seg => self.seg,
        }
    }

    /// The head counts of a model config.
    pub fn of(c: &sam3lab_model::Sam3Config) -> Self {
        Self {
            vit: c.vit.num_heads,
            text: c.text.heads,
            geometry: c.geometry.num_heads,
            fusion: c.fusion.num_heads,
            decoder: c.decoder.num_heads,
            seg: c.seg_head.cross_attend_prompt_heads,
        }
    }

    /// From a model config file (`config.json` of a fixture or a run), read and validated by
    /// [`sam3lab_model::Sam3Config`].
    pub fn from_config(path: &Path) -> Result<Self> {
        let c = sam3lab_model::Sam3Config::from_file(path).map_err(|e| SurgeryError::Config {
            path: path.display().to_string(),
            reason: match e {
                sam3lab_model::ModelError::Config { why, .. } => why,
                other => other.to_string(),
            },
        })?;
        Ok(Self::of(&c))
    }
}

/// An attention module's three weight tensors that carry per-head slices. The output bias is shared
/// by all heads and never touched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttnKeys {
    /// Hook-API module name, e.g. `decoder.layers.4.ca_text`.
    pub module: String,
    pub family: Family,
    /// `[3C, D_in]`: rows are [q | k | v] blocks of width C.
    pub in_weight: String,
    /// `[3C]`.
    pub in_bias: String,
    /// `[D_out, C]`: column block h·hd..(h+1)·hd is head h.
    pub out_weight: String,
}

/// One head: its module's keys and its index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadRef {
    /// Canonical hook name, e.g. `decoder.layers.4.ca_text.head.0`.
    pub name: String,
    pub keys: AttnKeys,
    pub head: usize,
}

/// The hook-name patterns of attention heads (shown in errors), from the model's hook table:
/// modules that differ only in their last segment share one pattern
/// (`decoder.layers.{i}.{self_attn,ca_text,ca_image}.head.{h}`).
pub fn head_patterns() -> Vec<String> {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for m in points::head_modules() {
        let (parent, last) = m.rsplit_once('.').expect("attention modules are nested");
        match groups.iter_mut().find(|(p, _)| *p == parent) {
            Some((_, lasts)) => lasts.push(last),
            None => groups.push((parent, vec![last])),
        }
    }
    groups
        .into_iter()
        .map(|(p, l)| {
            if l.len() == 1 {
                format!("{p}.{}.head.{{h}}", l[0])
            } else {
                format!("{p}.{{{}}}.head.{{h}}", l.join(","))
            }
        })
        .collect()
}

/// Map an attention module's hook name (`decoder.layers.4.ca_text`, `trunk.blocks.3.attn`,
/// `seg.prompt_cross_attn`, …) to its checkpoint keys (normalised, no `detector.` prefix); the
/// module's tensor-name prefix comes from the hook table.
pub fn module_keys(module: &str) -> Result<AttnKeys> {
    let prefix =
        points::checkpoint_module(&format!("{module}.head.0")).ok_or_else(|| unknown(module))?;
    let family = match module.split('.').next() {
        Some("trunk") => Family::Vit,
        Some("text") => Family::Text,
        Some("geometry") => Family::Geometry,
        Some("fusion") => Family::Fusion,
        Some("decoder") => Family::Decoder,
        _ => Family::Seg,
    };
    // The ViT fuses q/k/v into `qkv` and names its output `proj`; the rest are nn.MultiheadAttention.
    let (qkv, proj) = if family == Family::Vit {
        ("qkv.", "proj.")
    } else {
        ("in_proj_", "out_proj.")
    };
    Ok(AttnKeys {
        module: module.to_string(),
        family,
        in_weight: format!("{prefix}.{qkv}weight"),
        in_bias: format!("{prefix}.{qkv}bias"),
        out_weight: format!("{prefix}.{proj}weight"),
    })
}

/// Map a head's hook name (`decoder.layers.4.ca_text.head.0`) to its module's keys and index.
pub fn head_ref(name: &str) -> Result<HeadRef> {
    let (module, head) = name
        .rsplit_once(".head.")
        .and_then(|(m, h)| Some((m, h.parse::<usize>().ok()?)))
        .ok_or_else(|| unknown(name))?;
    let keys = module_keys(module).map_err(|_| unknown(name))?;
    Ok(HeadRef {
        name: format!("{module}.head.{head}"),
        keys,
        head,
    })
}

fn unknown(name: &str) -> SurgeryError {
    // Suggest a concrete valid name: every head form, filled with the numbers the user typed.
    let nums: Vec<&str> = Regex::new(r"\d+")
        .expect("static")
        .find_iter(name)
        .map(|m| m.as_str())
        .collect();
    let i = nums.first().copied().unwrap_or("0");
    let h = nums.last().copied().unwrap_or("0");
    let candidates: Vec<String> = points::head_modules()
        .map(|m| format!("{}.head.{h}", m.replace("{i}", i)))
        .collect();
    let nearest = sam3lab_util::nearest_names(name, candidates.iter().map(String::as_str), 1);
    SurgeryError::UnknownHead {
        name: name.to_string(),
        nearest: nearest.into_iter().next(),
        patterns: head_patterns(),
    }
}

/// Flat element ranges of head `head` (of `num_heads`) inside a module with embedding width `c`:
/// the in-projection's rows in each of the q, k, v blocks (weight `[3c, d_in]`, bias `[3c]`) and the
/// out-projection's columns (weight `[d_out, c]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadRanges {
    pub in_weight: Vec<Range<usize>>,
    pub in_bias: Vec<Range<usize>>,
    pub out_weight: Vec<Range<usize>>,
}

pub fn head_ranges(
    c: usize,
    d_in: usize,
    d_out: usize,
    num_heads: usize,
    head: usize,
) -> HeadRanges {
    let hd = c / num_heads;
    let rows = (0..3).map(|blk| blk * c + head * hd..blk * c + (head + 1) * hd);
    HeadRanges {
        in_weight: rows.clone().map(|r| r.start * d_in..r.end * d_in).collect(),
        in_bias: rows.collect(),
        out_weight: (0..d_out)
            .map(|r| r * c + head * hd..r * c + (head + 1) * hd)
            .collect(),
    }
}

/// Check the three shapes against the layout and the head count; returns (c, d_in, d_out).
pub fn check_shapes(
    keys: &AttnKeys,
    in_w: &[usize],
    in_b: &[usize],
    out_w: &[usize],
    num_heads: usize,
) -> Result<(usize, usize, usize)> {
    let bad = |reason: String| SurgeryError::Layout {
        module: keys.module.clone(),
        reason,
    };
    let [rows, d_in] = in_w else {
        return Err(bad(format!(
            "'{}' has shape {in_w:?}, expected [3C, D_in]",
            keys.in_weight
        )));
    };
    if rows % 3 != 0 {
        return Err(bad(format!(
            "'{}' has {rows} rows, not a multiple of 3 (q|k|v)",
            keys.in_weight
        )));
    }
    let c = rows / 3;
    if in_b != [3 * c] {
        return Err(bad(format!(
            "'{}' has shape {in_b:?}, expected [{}]",
            keys.in_bias,
            3 * c
        )));
    }
    let [d_out, oc] = out_w else {
        return Err(bad(format!(
            "'{}' has shape {out_w:?}, expected [D_out, {c}]",
            keys.out_weight
        )));
    };
    if *oc != c {
        return Err(bad(format!(
            "'{}' has {oc} columns, expected {c} (= in-projection rows / 3)",
            keys.out_weight
        )));
    }
    if num_heads == 0 || c % num_heads != 0 {
        return Err(bad(format!(
            "width {c} is not divisible by {num_heads} heads (check --config)"
        )));
    }
    Ok((c, *d_in, *d_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_head_name_maps_to_its_checkpoint_keys() {
        let cases = [
            (
                "trunk.blocks.7.attn.head.3",
                "backbone.vision_backbone.trunk.blocks.7.attn.qkv.weight",
                "backbone.vision_backbone.trunk.blocks.7.attn.qkv.bias",
                "backbone.vision_backbone.trunk.blocks.7.attn.proj.weight",
                Family::Vit,
            ),
            (
                "text.blocks.23.attn.head.15",
                "backbone.language_backbone.encoder.transformer.resblocks.23.attn.in_proj_weight",
                "backbone.language_backbone.encoder.transformer.resblocks.23.attn.in_proj_bias",
                "backbone.language_backbone.encoder.transformer.resblocks.23.attn.out_proj.weight",
                Family::Text,
            ),
            (
                "geometry.layers.2.self_attn.head.0",
                "geometry_encoder.encode.2.self_attn.in_proj_weight",
                "geometry_encoder.encode.2.self_attn.in_proj_bias",
                "geometry_encoder.encode.2.self_attn.out_proj.weight",
                Family::Geometry,
            ),
            (
                "geometry.layers.0.cross_attn.head.1",
                "geometry_encoder.encode.0.cross_attn_image.in_proj_weight",
                "geometry_encoder.encode.0.cross_attn_image.in_proj_bias",
                "geometry_encoder.encode.0.cross_attn_image.out_proj.weight",
                Family::Geometry,
            ),
            (
                "fusion.layers.5.self_attn.head.7",
                "transformer.encoder.layers.5.self_attn.in_proj_weight",
                "transformer.encoder.layers.5.self_attn.in_proj_bias",
                "transformer.encoder.layers.5.self_attn.out_proj.weight",
                Family::Fusion,
            ),
            (
                "fusion.layers.1.cross_attn.head.2",
                "transformer.encoder.layers.1.cross_attn_image.in_proj_weight",
                "transformer.encoder.layers.1.cross_attn_image.in_proj_bias",
                "transformer.encoder.layers.1.cross_attn_image.out_proj.weight",
                Family::Fusion,
            ),
            (
                "decoder.layers.0.self_attn.head.1",
                "transformer.decoder.layers.0.self_attn.in_proj_weight",
                "transformer.decoder.layers.0.self_attn.in_proj_bias",
                "transformer.decoder.layers.0.self_attn.out_proj.weight",
                Family::Decoder,
            ),
            (
                "decoder.layers.4.ca_text.head.0",
                "transformer.decoder.layers.4.ca_text.in_proj_weight",
                "transformer.decoder.layers.4.ca_text.in_proj_bias",
                "transformer.decoder.layers.4.ca_text.out_proj.weight",
                Family::Decoder,
            ),
            (
                "decoder.layers.5.ca_image.head.6",
                "transformer.decoder.layers.5.cross_attn.in_proj_weight",
                "transformer.decoder.layers.5.cross_attn.in_proj_bias",
                "transformer.decoder.layers.5.cross_attn.out_proj.weight",
                Family::Decoder,
            ),
            (
                "seg.prompt_cross_attn.head.4",
                "segmentation_head.cross_attend_prompt.in_proj_weight",
                "segmentation_head.cross_attend_prompt.in_proj_bias",
                "segmentation_head.cross_attend_prompt.out_proj.weight",
                Family::Seg,
            ),
        ];
        for (name, w, b, o, fam) in cases {
            let h = head_ref(name).unwrap();
            assert_eq!(h.name, name);
            assert_eq!(
                (
                    h.keys.in_weight.as_str(),
                    h.keys.in_bias.as_str(),
                    h.keys.out_weight.as_str()
                ),
                (w, b, o),
                "{name}"
            );
            assert_eq!(h.keys.family, fam, "{name}");
            assert_eq!(
                h.head,
                name.rsplit('.').next().unwrap().parse::<usize>().unwrap()
            );
            assert_eq!(h.keys.module, name.rsplit_once(".head.").unwrap().0);
        }
    }

    #[test]
    fn unknown_head_names_are_refused_with_the_nearest_pattern() {
        for bad in [
            "decoder.layers.4.ca_txt.head.0",
            "decoder.layers.4.ca_text",
            "decoder.layers.4.ca_text.head.x",
            "encoder.layers.1.self_attn.head.0",
            "trunk.blocks.1.attn.head.",
            "",
        ] {
            let err = head_ref(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("unknown head '{bad}'")), "{err}");
            assert!(
                err.contains("decoder.layers.{i}.{self_attn,ca_text,ca_image}.head.{h}"),
                "{err}"
            );
        }
        let err = head_ref("decoder.layers.4.ca_txt.head.0")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("did you mean decoder.layers.4.ca_text.head.0?"),
            "{err}"
        );
    }

    /// Width 8, 2 heads (hd 4), d_in 3, d_out 5: head 1 owns rows 4..8, 12..16, 20..24 of the
    /// in-projection and columns 4..8 of the out-projection, written out by hand.
    #[test]
    fn head_ranges_match_a_hand_layout() {
        let r = head_ranges(8, 3, 5, 2, 1);
        assert_eq!(r.in_bias, vec![4..8, 12..16, 20..24]);
        assert_eq!(r.in_weight, vec![12..24, 36..48, 60..72]);
        assert_eq!(r.out_weight, vec![4..8, 12..16, 20..24, 28..32, 36..40]);
        let r0 = head_ranges(8, 3, 5, 2, 0);
        assert_eq!(r0.in_bias, vec![0..4, 8..12, 16..20]);
    }

    #[test]
    fn head_counts_come_from_the_fixture_config() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny/config.json");
        let c = HeadCounts::from_config(&path).unwrap();
        assert_eq!(
            c,
            HeadCounts {
                vit: 2,
                text: 2,
                geometry: 4,
                fusion: 4,
                decoder: 4,
                seg: 4
            }
        );
        assert_eq!(
            HeadCounts::default(),
            HeadCounts {
                vit: 16,
                text: 16,
                geometry: 8,
                fusion: 8,
                decoder: 8,
                seg: 8
            }
        );
        let dir = std::env::temp_dir().join(format!("sam3lab-surgery-cfg-{}", std::process::id()));
        std::fs::write(&dir, r#"{"model": {"vit": {"num_heads": 2}}}"#).unwrap();
        let err = HeadCounts::from_config(&dir).unwrap_err().to_string();
        std::fs::remove_file(&dir).unwrap();
        assert!(err.contains("missing field"), "{err}");
    }
}
