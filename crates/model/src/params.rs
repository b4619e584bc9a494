//! Every checkpoint tensor of the image-grounding path, by ORIGINAL name and torch-layout shape,
//! derived from a [`Sam3Config`] by shape arithmetic alone (nothing is allocated).
//!
//! This is the single list the loader checks a checkpoint against (missing / unexpected / shape
//! mismatch, all reported at once), and what parameter counts per group are computed from. The
//! order follows the reference `state_dict` (module registration order).

use crate::Sam3Config;
use crate::config::TEXT_PROJECTION_DIM;

/// `(key, torch-layout shape)` for every tensor the image path loads, without the `detector.`
/// prefix and without the recomputed RoPE buffers (`*.attn.freqs_cis`).
pub fn param_shapes(cfg: &Sam3Config) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    backbone_shapes(cfg, &mut out);
    heads_shapes(cfg, &mut out);
    out
}

/// Parameter count of a key list (sum of shape products).
pub fn count_params(shapes: &[(String, Vec<usize>)]) -> usize {
    shapes.iter().map(|(_, s)| s.iter().product::<usize>()).sum()
}

/// Checkpoint key prefixes of the model's parameter groups (design doc §1.3), in model order.
pub const PARAM_GROUPS: [(&str, &str); 8] = [
    ("vision_trunk", "backbone.vision_backbone.trunk."),
    ("neck", "backbone.vision_backbone.convs."),
    ("text_encoder", "backbone.language_backbone."),
    ("geometry_encoder", "geometry_encoder."),
    ("fusion_encoder", "transformer.encoder."),
    ("transformer_decoder", "transformer.decoder."),
    ("dot_prod_scoring", "dot_prod_scoring."),
    ("segmentation_head", "segmentation_head."),
];

struct Keys<'a> {
    out: &'a mut Vec<(String, Vec<usize>)>,
}

impl Keys<'_> {
    fn t(&mut self, key: impl Into<String>, shape: &[usize]) {
        self.out.push((key.into(), shape.to_vec()));
    }
    /// torch `nn.Linear(d_in, d_out)`: weight `[d_out, d_in]`, bias `[d_out]`.
    fn linear(&mut self, p: &str, d_in: usize, d_out: usize, bias: bool) {
        self.t(format!("{p}.weight"), &[d_out, d_in]);
        if bias {
            self.t(format!("{p}.bias"), &[d_out]);
        }
    }
    fn norm(&mut self, p: &str, d: usize) {
        self.t(format!("{p}.weight"), &[d]);
        self.t(format!("{p}.bias"), &[d]);
    }
    fn conv(&mut self, p: &str, c_in: usize, c_out: usize, k: usize, bias: bool) {
        self.t(format!("{p}.weight"), &[c_out, c_in, k, k]);
        if bias {
            self.t(format!("{p}.bias"), &[c_out]);
        }
    }
    /// torch `nn.ConvTranspose2d`: weight `[c_in, c_out, k, k]`.
    fn conv_t(&mut self, p: &str, c_in: usize, c_out: usize, k: usize) {
        self.t(format!("{p}.weight"), &[c_in, c_out, k, k]);
        self.t(format!("{p}.bias"), &[c_out]);
    }
    fn mha(&mut self, p: &str, d: usize) {
        self.t(format!("{p}.in_proj_weight"), &[3 * d, d]);
        self.t(format!("{p}.in_proj_bias"), &[3 * d]);
        self.linear(&format!("{p}.out_proj"), d, d, true);
    }
    /// The reference `MLP(d_in, hidden, d_out, n)` (`layers.{i}` Linears).
    fn mlp(&mut self, p: &str, d_in: usize, hidden: usize, d_out: usize, n: usize) {
        let mut dims = vec![d_in];
        dims.extend(std::iter::repeat_n(hidden, n - 1));
        dims.push(d_out);
        for (i, w) in dims.windows(2).enumerate() {
            self.linear(&format!("{p}.layers.{i}"), w[0], w[1], true);
        }
    }
}

fn backbone_shapes(cfg: &Sam3Config, out: &mut Vec<(String, Vec<usize>)>) {
    let mut k = Keys { out };
    let v = &cfg.vit;
    let c = v.embed_dim;
    let t = "backbone.vision_backbone.trunk";
    if v.use_abs_pos {
        let p = v.pretrain_img_size / v.patch_size;
        let n = p * p + usize::from(v.pretrain_use_cls_token);
        k.t(format!("{t}.pos_embed"), &[1, n, c]);
    }
    k.conv(&format!("{t}.patch_embed.proj"), 3, c, v.patch_size, v.bias_patch_embed);
    let hidden = cfg.vit_mlp_hidden();
    for i in 0..v.depth {
        let b = format!("{t}.blocks.{i}");
        k.norm(&format!("{b}.norm1"), c);
        k.linear(&format!("{b}.attn.qkv"), c, 3 * c, v.qkv_bias);
        k.linear(&format!("{b}.attn.proj"), c, c, true);
        k.norm(&format!("{b}.norm2"), c);
        k.linear(&format!("{b}.mlp.fc1"), c, hidden, true);
        k.linear(&format!("{b}.mlp.fc2"), hidden, c, true);
    }
    if v.ln_pre {
        k.norm(&format!("{t}.ln_pre"), c);
    }
    if v.ln_post {
        k.norm(&format!("{t}.ln_post"), c);
    }

    let d = cfg.d_model;
    for (i, &s) in cfg.neck.scale_factors.iter().enumerate() {
        let p = format!("backbone.vision_backbone.convs.{i}");
        let c_mid = if s == 4.0 {
            k.conv_t(&format!("{p}.dconv_2x2_0"), c, c / 2, 2);
            k.conv_t(&format!("{p}.dconv_2x2_1"), c / 2, c / 4, 2);
            c / 4
        } else if s == 2.0 {
            k.conv_t(&format!("{p}.dconv_2x2"), c, c / 2, 2);
            c / 2
        } else {
            c
        };
        k.conv(&format!("{p}.conv_1x1"), c_mid, d, 1, true);
        k.conv(&format!("{p}.conv_3x3"), d, d, 3, true);
    }

    let tx = &cfg.text;
    let w = tx.width;
    let e = "backbone.language_backbone.encoder";
    k.t(format!("{e}.positional_embedding"), &[tx.context_length, w]);
    k.t(format!("{e}.text_projection"), &[w, TEXT_PROJECTION_DIM]);
    k.t(format!("{e}.token_embedding.weight"), &[tx.vocab_size, w]);
    let th = cfg.text_mlp_hidden();
    for i in 0..tx.layers {
        let b = format!("{e}.transformer.resblocks.{i}");
        k.mha(&format!("{b}.attn"), w);
        k.norm(&format!("{b}.ln_1"), w);
        k.norm(&format!("{b}.ln_2"), w);
        k.linear(&format!("{b}.mlp.c_fc"), w, th, true);
        k.linear(&format!("{b}.mlp.c_proj"), th, w, true);
    }
    if tx.use_ln_post {
        k.norm(&format!("{e}.ln_final"), w);
    }
    k.linear("backbone.language_backbone.resizer", w, d, true);
}

fn heads_shapes(cfg: &Sam3Config, out: &mut Vec<(String, Vec<usize>)>) {
    let mut k = Keys { out };
    let d = cfg.d_model;

    let g = "geometry_encoder";
    let roi = cfg.geometry.roi_size;
    k.t(format!("{g}.label_embed.weight"), &[2, d]);
    k.t(format!("{g}.cls_embed.weight"), &[1, d]);
    k.linear(&format!("{g}.points_direct_project"), 2, d, true);
    k.linear(&format!("{g}.points_pool_project"), d, d, true);
    k.linear(&format!("{g}.points_pos_enc_project"), d, d, true);
    k.linear(&format!("{g}.boxes_direct_project"), 4, d, true);
    k.conv(&format!("{g}.boxes_pool_project"), d, d, roi, true);
    k.linear(&format!("{g}.boxes_pos_enc_project"), d + 2, d, true);
    k.linear(&format!("{g}.final_proj"), d, d, true);
    k.norm(&format!("{g}.norm"), d);
    k.norm(&format!("{g}.img_pre_norm"), d);
    for i in 0..cfg.geometry.num_layers {
        let l = format!("{g}.encode.{i}");
        k.mha(&format!("{l}.self_attn"), d);
        k.mha(&format!("{l}.cross_attn_image"), d);
        k.linear(&format!("{l}.linear1"), d, cfg.geometry.dim_feedforward, true);
        k.linear(&format!("{l}.linear2"), cfg.geometry.dim_feedforward, d, true);
        for n in ["norm1", "norm2", "norm3"] {
            k.norm(&format!("{l}.{n}"), d);
        }
    }
    k.norm(&format!("{g}.encode_norm"), d);

    for i in 0..cfg.fusion.num_layers {
        let l = format!("transformer.encoder.layers.{i}");
        k.mha(&format!("{l}.self_attn"), d);
        k.mha(&format!("{l}.cross_attn_image"), d);
        k.linear(&format!("{l}.linear1"), d, cfg.fusion.dim_feedforward, true);
        k.linear(&format!("{l}.linear2"), cfg.fusion.dim_feedforward, d, true);
        for n in ["norm1", "norm2", "norm3"] {
            k.norm(&format!("{l}.{n}"), d);
        }
    }

    let dec = &cfg.decoder;
    let td = "transformer.decoder";
    for i in 0..dec.num_layers {
        let l = format!("{td}.layers.{i}");
        k.mha(&format!("{l}.cross_attn"), d);
        k.norm(&format!("{l}.norm1"), d);
        k.mha(&format!("{l}.ca_text"), d);
        k.norm(&format!("{l}.catext_norm"), d);
        k.mha(&format!("{l}.self_attn"), d);
        k.norm(&format!("{l}.norm2"), d);
        k.linear(&format!("{l}.linear1"), d, dec.dim_feedforward, true);
        k.linear(&format!("{l}.linear2"), dec.dim_feedforward, d, true);
        k.norm(&format!("{l}.norm3"), d);
    }
    k.norm(&format!("{td}.norm"), d);
    k.mlp(&format!("{td}.bbox_embed"), d, d, 4, 3);
    k.t(format!("{td}.query_embed.weight"), &[dec.num_queries, d]);
    k.t(format!("{td}.reference_points.weight"), &[dec.num_queries, 4]);
    k.mlp(&format!("{td}.boxRPB_embed_x"), 2, d, dec.num_heads, 2);
    k.mlp(&format!("{td}.boxRPB_embed_y"), 2, d, dec.num_heads, 2);
    k.t(format!("{td}.presence_token.weight"), &[1, d]);
    k.mlp(&format!("{td}.presence_token_head"), d, d, 1, 3);
    k.norm(&format!("{td}.presence_token_out_norm"), d);
    k.mlp(&format!("{td}.ref_point_head"), 2 * d, d, d, 2);

    let s = "segmentation_head";
    for i in 0..cfg.seg_head.num_upsampling_stages {
        k.conv(&format!("{s}.pixel_decoder.conv_layers.{i}"), d, d, 3, true);
    }
    for i in 0..cfg.seg_head.num_upsampling_stages {
        k.norm(&format!("{s}.pixel_decoder.norms.{i}"), d);
    }
    k.mlp(&format!("{s}.mask_predictor.mask_embed"), d, d, d, 3);
    k.mha(&format!("{s}.cross_attend_prompt"), d);
    k.norm(&format!("{s}.cross_attn_norm"), d);
    k.conv(&format!("{s}.semantic_seg_head"), d, 1, 1, true);
    k.conv(&format!("{s}.instance_seg_head"), d, d, 1, true);

    let p = "dot_prod_scoring";
    k.linear(&format!("{p}.prompt_mlp.layers.0"), d, cfg.scoring.prompt_mlp_hidden, true);
    k.linear(&format!("{p}.prompt_mlp.layers.1"), cfg.scoring.prompt_mlp_hidden, d, true);
    k.norm(&format!("{p}.prompt_mlp.out_norm"), d);
    k.linear(&format!("{p}.prompt_proj"), d, d, true);
    k.linear(&format!("{p}.hs_proj"), d, d, true);
}
