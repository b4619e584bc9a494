//! The one table of SAM3's hook points. Everything that spells a hook name is derived from
//! [`TABLE`]: the registry ([`crate::hook_registry`], what `sam3lab hooks list` prints), the
//! editable/read-only flag the spec validation checks, the ViT's "is a block after the last global
//! one wanted" test, parity's reference-key map ([`hook_name`]), surgery's head → checkpoint-tensor
//! map ([`checkpoint_module`]) and the table in docs/hooks.md ([`markdown_table`]; a test keeps it
//! in sync). The taps in the forward name their points with [`point!`], which checks the template
//! against this table at compile time: a misspelt tap does not build. The registry test (capture-all
//! forward == registry) is left to check that every row has a tap.
//!
//! A row is a name template with `{i}` (layer / block / level index) and `{h}` (head index),
//! expanded per config in table order; consecutive rows with the same text before `{i}` form one
//! loop, so the registry comes out in forward order.

use sam3lab_hooks::{HookInfo, HookPoint, HookRegistry};

use crate::Sam3Config;

/// Whether an edit at a point reaches the outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Edits flow downstream.
    Edit,
    /// A readout: the model never uses the tapped value, so an edit would be silently lost.
    Read,
    /// A per-decoder-layer output: only the last layer's feeds the outputs.
    LastLayer,
    /// A neck level: read-only where the model drops the level (`neck.scalp`).
    KeptLevel,
    /// A ViT block's point: read-only after the last global block (those blocks do not feed the
    /// trunk output; they run only for hooks).
    UpToLastGlobal,
}

/// One row: a family of hook points.
#[derive(Clone, Copy, Debug)]
pub struct PointDef {
    /// Name template, e.g. `decoder.layers.{i}.q0`.
    pub name: &'static str,
    /// Comma-separated axes at batch 1 and a text-only prompt, symbols as in docs/hooks.md.
    pub shape: &'static str,
    pub access: Access,
    /// Checkpoint tensor-name prefix of the module that computes the point (`{i}` as in the name;
    /// empty for model inputs).
    pub module: &'static str,
    /// Description; `{h}`, `{i}`, `{kind}`, `{tail}`, `{sc}` are filled per point.
    pub doc: &'static str,
    /// The reference fixture's `expected` key, where it is not the hook name.
    pub reference: Option<&'static str>,
}

const fn p(name: &'static str, shape: &'static str, access: Access, module: &'static str, doc: &'static str) -> PointDef {
    PointDef { name, shape, access, module, doc, reference: None }
}

const fn aka(mut d: PointDef, reference: &'static str) -> PointDef {
    d.reference = Some(reference);
    d
}

/// An attention module's points (`M.head.{h}`, `M.attn_weights`, `M.out`) for the heads' stacks.
macro_rules! attn {
    ($m:literal, $lq:literal, $lk:literal, $module:literal, $what:literal) => {
        [
            p(concat!($m, ".head.{h}"), concat!("B,", $lq, ",d"), Edit, $module, concat!($what, ": head {h}'s contribution to .out (no bias)")),
            p(concat!($m, ".attn_weights"), concat!("B,H,", $lq, ",", $lk), Edit, $module, concat!($what, ": softmax weights (B,H,Lq,Lk)")),
            p(concat!($m, ".out"), concat!("B,", $lq, ",d"), Edit, $module, concat!($what, ": output after out_proj, before the residual add")),
        ]
    };
}

use Access::*;

const VIT: &str = "backbone.vision_backbone.trunk";
const VIT_BLOCK: &str = "backbone.vision_backbone.trunk.blocks.{i}";
const TEXT: &str = "backbone.language_backbone.encoder";
const TEXT_BLOCK: &str = "backbone.language_backbone.encoder.transformer.resblocks.{i}";
const GEO: &str = "geometry_encoder.encode.{i}";
const FUSION: &str = "transformer.encoder.layers.{i}";
const DEC: &str = "transformer.decoder.layers.{i}";

/// Every hook point family, in forward order (groups as the forward runs them).
pub static TABLE: &[&[PointDef]] = &[
    &[
        p("image", "B,3,S,S", Edit, "", "pixel values entering the trunk (B,3,S,S), normalised to [-1,1]"),
        p("trunk.patch_embed", "B,g,g,C", Edit, "backbone.vision_backbone.trunk.patch_embed", "patch embedding (B,g,g,C), channels-last, no bias"),
        p("trunk.embed", "B,g,g,C", Edit, "backbone.vision_backbone.trunk.pos_embed", "patch embedding + tiled abs pos, before ln_pre (B,g,g,C)"),
        p("trunk.ln_pre", "B,g,g,C", Edit, "backbone.vision_backbone.trunk.ln_pre", "after ln_pre (B,g,g,C)"),
        p("trunk.blocks.{i}.attn.freqs_cis", "N,hd/2,2", UpToLastGlobal, "backbone.vision_backbone.trunk.blocks.{i}.attn", "RoPE table (N,hd/2,2) = (cos,sin), {kind} block{tail}"),
        p("trunk.blocks.{i}.attn.head.{h}", "B·nW,N,C", UpToLastGlobal, "backbone.vision_backbone.trunk.blocks.{i}.attn", "head {h}'s contribution to attn.out (no bias), {kind} layout (B·nW,N,C){tail}"),
        p("trunk.blocks.{i}.attn.attn_weights", "B·nW,H,N,N", UpToLastGlobal, "backbone.vision_backbone.trunk.blocks.{i}.attn", "softmax attention (B·nW,H,N,N), {kind}{tail}"),
        p("trunk.blocks.{i}.attn.out", "B·nW,N,C", UpToLastGlobal, "backbone.vision_backbone.trunk.blocks.{i}.attn", "attention output after proj, {kind} layout (B·nW,N,C){tail}"),
        p("trunk.blocks.{i}.mlp.out", "B,g,g,C", UpToLastGlobal, "backbone.vision_backbone.trunk.blocks.{i}.mlp", "MLP output before the residual add (B,g,g,C){tail}"),
        p("trunk.blocks.{i}", "B,g,g,C", UpToLastGlobal, VIT_BLOCK, "block output (B,g,g,C){tail}"),
        p("trunk.out", "B,C,g,g", Edit, VIT, "trunk output = last global block (B,C,g,g)"),
        p("neck.fpn.{i}", "B,d,h,w", KeptLevel, "backbone.vision_backbone.convs.{i}", "neck level {i} (scale {sc}) (B,d,h,w)"),
        p("text.input_ids", "B,L", Read, "", "token ids (B,L) as float (read-only)"),
        p("text.token_embedding", "B,L,W", Edit, "backbone.language_backbone.encoder.token_embedding", "token embedding lookup, before + positional (B,L,W)"),
        p("text.blocks.{i}.attn.head.{h}", "B,L,W", Edit, "backbone.language_backbone.encoder.transformer.resblocks.{i}.attn", "head {h}'s contribution to attn.out (no bias) (B,L,W)"),
        p("text.blocks.{i}.attn.attn_weights", "B,H,L,L", Edit, "backbone.language_backbone.encoder.transformer.resblocks.{i}.attn", "causal softmax attention (B,H,L,L)"),
        p("text.blocks.{i}.attn.out", "B,L,W", Edit, "backbone.language_backbone.encoder.transformer.resblocks.{i}.attn", "attention output after out_proj (B,L,W)"),
        p("text.blocks.{i}.mlp.out", "B,L,W", Edit, "backbone.language_backbone.encoder.transformer.resblocks.{i}.mlp", "MLP output before the residual add (B,L,W)"),
        p("text.blocks.{i}", "B,L,W", Edit, TEXT_BLOCK, "block output (B,L,W)"),
        p("text.ln_final", "B,L,W", Edit, "backbone.language_backbone.encoder.ln_final", "after ln_final (B,L,W)"),
        p("text.out", "B,L,d", Edit, "backbone.language_backbone.resizer", "resizer output = language_features, batch-first (B,L,d)"),
        p("text.padding_mask", "B,L", Read, TEXT, "1 = padding (token id 0) (B,L) (read-only)"),
        p("fusion.pos_embed", "B,HW,d", Edit, "", "sine position map of the 1× level, flattened (B,HW,d)"),
        p("geometry.tokens_in", "B,G,d", Edit, "geometry_encoder.norm", "norm(final_proj([boxes…, CLS])) entering the geometry layers (B,S,d)"),
    ],
    &attn!("geometry.layers.{i}.self_attn", "G", "G", "geometry_encoder.encode.{i}.self_attn", "geometry self-attention over prompt tokens"),
    &attn!("geometry.layers.{i}.cross_attn", "G", "HW", "geometry_encoder.encode.{i}.cross_attn_image", "geometry cross-attention to the raw 1× image (torch cross_attn_image)"),
    &[
        p("geometry.layers.{i}.ffn.out", "B,G,d", Edit, "geometry_encoder.encode.{i}.linear", "FFN output before the residual add"),
        p("geometry.layers.{i}", "B,G,d", Edit, GEO, "geometry layer output (B,S,d)"),
        p("geometry.out", "B,G,d", Edit, "geometry_encoder.encode_norm", "after encode_norm (B,S,d); S = boxes + 1 (CLS last)"),
        p("geometry.padding_mask", "B,G", Edit, "", "1 = padding (B,S); editable (thresholded at 0.5), flows into prompt.padding_mask"),
        p("prompt.feats", "B,P,d", Edit, "", "prompt = [text (L), geometry (S)] (B,P,d)"),
        p("prompt.padding_mask", "B,P", Edit, "", "1 = padding (B,P); editable (thresholded at 0.5)"),
    ],
    &attn!("fusion.layers.{i}.self_attn", "HW", "HW", "transformer.encoder.layers.{i}.self_attn", "fusion image self-attention (with position)"),
    &attn!("fusion.layers.{i}.cross_attn", "HW", "P", "transformer.encoder.layers.{i}.cross_attn_image", "fusion image→prompt cross-attention (torch cross_attn_image)"),
    &[
        p("fusion.layers.{i}.ffn.out", "B,HW,d", Edit, "transformer.encoder.layers.{i}.linear", "FFN output before the residual add"),
        p("fusion.layers.{i}", "B,HW,d", Edit, FUSION, "fusion layer output (B,HW,d)"),
        p("fusion.memory", "B,HW,d", Edit, "transformer.encoder", "fusion encoder output = memory (B,HW,d)"),
        p("decoder.layers.{i}.in", "B,Q,d", Edit, DEC, "queries entering the layer (B,Q,d)"),
        p("decoder.layers.{i}.presence_in", "B,1,d", Edit, DEC, "presence token entering the layer (B,1,d)"),
        p("decoder.layers.{i}.ref_boxes", "B,Q,4", Edit, DEC, "reference boxes used by the layer, σ-space cxcywh (B,Q,4)"),
        p("decoder.layers.{i}.query_pos", "B,Q,d", Edit, "transformer.decoder.ref_point_head", "ref_point_head(sine(ref_boxes)) (B,Q,d)"),
        p("decoder.layers.{i}.rpb_bias", "B,H,Q,HW", Edit, "transformer.decoder.boxRPB_embed", "boxRPB bias of the image cross-attention, no presence row (B,H,Q,HW)"),
    ],
    &attn!("decoder.layers.{i}.self_attn", "1+Q", "1+Q", "transformer.decoder.layers.{i}.self_attn", "decoder self-attention over [presence, queries]"),
    &attn!("decoder.layers.{i}.ca_text", "1+Q", "P", "transformer.decoder.layers.{i}.ca_text", "decoder cross-attention to the prompt"),
    &attn!("decoder.layers.{i}.ca_image", "1+Q", "HW", "transformer.decoder.layers.{i}.cross_attn", "decoder cross-attention to the image memory (torch cross_attn)"),
    &[
        p("decoder.layers.{i}.ffn.out", "B,1+Q,d", Edit, "transformer.decoder.layers.{i}.linear", "FFN output before the residual add and norm3"),
        p("decoder.layers.{i}.out", "B,1+Q,d", Edit, DEC, "raw layer output, row 0 = presence token (B,1+Q,d)"),
        p("decoder.layers.{i}.q0", "B,d", Edit, DEC, "presence token after the layer = out[:,0] (B,d); edits flow downstream"),
        p("decoder.layers.{i}.queries", "B,Q,d", Edit, DEC, "queries after the layer = out[:,1:] (B,Q,d); edits flow downstream"),
        p("decoder.layers.{i}.mean", "B,d", Read, DEC, "mean over the 1+Q tokens of the (edited) layer output (B,d); READ-ONLY: edits have no effect"),
        p("decoder.layers.{i}.hs_normed", "B,Q,d", Edit, "transformer.decoder.norm", "decoder norm(queries) (B,Q,d)"),
        p("decoder.layers.{i}.pred_boxes", "B,Q,4", Edit, "transformer.decoder.bbox_embed", "refined boxes cxcywh (B,Q,4) = next layer's ref_boxes"),
        p("decoder.layers.{i}.pred_boxes_xyxy", "B,Q,4", Read, "transformer.decoder.bbox_embed", "refined boxes xyxy (B,Q,4) (read-only)"),
        p("decoder.layers.{i}.presence_logit", "B,1", LastLayer, "transformer.decoder.presence_token_head", "presence logit of this layer, unclamped (B,1); edits flow into presence_logit and scores"),
        p("decoder.ref_boxes_all", "B,layers,Q,4", Read, "transformer.decoder", "reference boxes entering each layer (B,L,Q,4) (read-only)"),
        p("scoring.prompt_mlp", "B,P,d", Edit, "dot_prod_scoring.prompt_mlp", "out_norm(prompt + MLP(prompt)) (B,P,d)"),
        p("scoring.pooled_prompt", "B,d", Edit, "dot_prod_scoring", "mean of scoring.prompt_mlp over valid tokens (B,d)"),
        p("decoder.layers.{i}.pred_logits", "B,Q,1", LastLayer, "dot_prod_scoring", "dot-product score logits of this layer, clamped ±12 (B,Q,1); edits flow into pred_logits and scores"),
        aka(p("pred_logits", "B,Q,1", Edit, "dot_prod_scoring", "final score logits (B,Q,1), presence not included"), "out.pred_logits"),
        aka(p("pred_boxes", "B,Q,4", Edit, "transformer.decoder.bbox_embed", "final boxes cxcywh in [0,1] (B,Q,4)"), "out.pred_boxes"),
        aka(p("pred_boxes_xyxy", "B,Q,4", Edit, "transformer.decoder.bbox_embed", "final boxes xyxy in [0,1] (B,Q,4)"), "out.pred_boxes_xyxy"),
        aka(p("presence_logit", "B,1", Edit, "transformer.decoder.presence_token_head", "final presence logit (B,1)"), "decoder.presence_logit"),
    ],
    &attn!("seg.prompt_cross_attn", "HW", "P", "segmentation_head.cross_attend_prompt", "seg head memory→prompt cross-attention (torch cross_attend_prompt)"),
    &[
        p("seg.encoder_visual", "B,d,g,g", Edit, "segmentation_head", "memory + prompt cross-attention on the 1× grid (B,d,h,w)"),
        p("seg.pixel_embed", "B,d,H4,W4", Edit, "segmentation_head.pixel_decoder", "pixel decoder output (B,d,H4,W4)"),
        p("seg.instance_embeds", "B,d,H4,W4", Edit, "segmentation_head.instance_seg_head", "instance_seg_head(pixel_embed) (B,d,H4,W4)"),
        p("seg.mask_embed", "B,Q,d", Edit, "segmentation_head.mask_predictor.mask_embed", "mask_embed MLP of the last normed queries (B,Q,d)"),
        aka(p("pred_masks", "B,Q,H4,W4", Edit, "segmentation_head.mask_predictor", "mask logits (B,Q,H4,W4)"), "out.pred_masks"),
        aka(p("semantic_seg", "B,1,H4,W4", Edit, "segmentation_head.semantic_seg_head", "semantic logits (B,1,H4,W4)"), "out.semantic_seg"),
        aka(p("scores", "B,Q", Edit, "", "σ(pred_logits)·σ(presence_logit) (B,Q)"), "post.scores"),
    ],
];

/// Whether `a` and `b` hold the same bytes (a `const fn`, for the compile-time name checks).
const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut k = 0;
    while k < a.len() {
        if a[k] != b[k] {
            return false;
        }
        k += 1;
    }
    true
}

/// Whether some row of [`TABLE`] satisfies `test(name)`, evaluated at compile time by [`point!`].
const fn any_row(template: &[u8], how: u8) -> bool {
    let mut g = 0;
    while g < TABLE.len() {
        let rows = TABLE[g];
        let mut r = 0;
        while r < rows.len() {
            let n = rows[r].name.as_bytes();
            let hit = match how {
                // the whole name
                0 => same(n, template),
                // a prefix ending before a '.'
                1 => n.len() > template.len() && n[template.len()] == b'.' && same(n.split_at(template.len()).0, template),
                // a suffix
                2 => n.len() >= template.len() && same(n.split_at(n.len() - template.len()).1, template),
                // a whole segment run inside: `.x.y` followed by a dot
                _ => {
                    let mut at = 0;
                    let mut found = false;
                    while !found && at + template.len() < n.len() {
                        found = n[at + template.len()] == b'.' && same(n.split_at(at).1.split_at(template.len()).0, template);
                        at += 1;
                    }
                    found
                }
            };
            if hit {
                return true;
            }
            r += 1;
        }
        g += 1;
    }
    false
}

/// Is `template` (e.g. `decoder.layers.{i}.q0`) a row of [`TABLE`]?
pub const fn is_template(template: &str) -> bool {
    any_row(template.as_bytes(), 0)
}

/// Is `prefix` (e.g. `decoder.layers.{i}.ca_text`, a module whose points a sub-module names) the
/// start of a row of [`TABLE`], up to a dot?
pub const fn is_prefix(prefix: &str) -> bool {
    any_row(prefix.as_bytes(), 1)
}

/// Is `suffix` (e.g. `.ffn.out`, appended by a module shared by several stages) the end of a row?
pub const fn is_suffix(suffix: &str) -> bool {
    any_row(suffix.as_bytes(), 2)
}

/// Does some row of [`TABLE`] contain `segment` (e.g. `.self_attn`, the name a shared layer gives its
/// attention) followed by a dot?
pub const fn is_segment(segment: &str) -> bool {
    any_row(segment.as_bytes(), 3)
}

/// A hook name for a tap, from a template of [`TABLE`], checked at compile time: a template that is
/// not a row (a misspelt tap) does not compile. `point!("trunk.out")`, `point!("decoder.layers.{i}.q0", i)`;
/// `point!(prefix "decoder.layers.{i}.ca_text", i)` for a module's name prefix and
/// `point!(suffix name, ".ffn.out")` for a point a shared module appends to a runtime prefix
/// (`point!(suffix name, ".head.{h}", h)` for a head), `point!(segment name, ".self_attn")` for the
/// name a shared layer passes on to its attention.
macro_rules! point {
    ($t:literal) => {{
        const _: () = assert!($crate::points::is_template($t), "not a hook point template of points::TABLE (the invocation below names it)");
        String::from($t)
    }};
    ($t:literal, $i:expr) => {{
        const _: () = assert!($crate::points::is_template($t), "not a hook point template of points::TABLE (the invocation below names it)");
        $t.replace("{i}", &($i).to_string())
    }};
    (prefix $t:literal, $i:expr) => {{
        const _: () = assert!($crate::points::is_prefix($t), "not a module prefix of points::TABLE (the invocation below names it)");
        $t.replace("{i}", &($i).to_string())
    }};
    (prefix $t:literal) => {{
        const _: () = assert!($crate::points::is_prefix($t), "not a module prefix of points::TABLE (the invocation below names it)");
        String::from($t)
    }};
    (segment $name:expr, $s:literal) => {{
        const _: () = assert!($crate::points::is_segment($s), "no hook point of points::TABLE has this segment (the invocation below names it)");
        format!("{}{}", $name, $s)
    }};
    (suffix $name:expr, $s:literal, $h:expr) => {{
        const _: () = assert!($crate::points::is_suffix($s), "no hook point of points::TABLE ends so (the invocation below names it)");
        format!("{}{}", $name, $s).replace("{h}", &($h).to_string())
    }};
    (suffix $name:expr, $s:literal) => {{
        const _: () = assert!($crate::points::is_suffix($s), "no hook point of points::TABLE ends so (the invocation below names it)");
        format!("{}{}", $name, $s)
    }};
}

/// Every row, in table order.
pub fn rows() -> impl Iterator<Item = &'static PointDef> {
    TABLE.iter().flat_map(|g| g.iter())
}

/// The loop a name template belongs to: its text before `{i}` (`None` for a single point).
fn loop_key(name: &str) -> Option<&str> {
    name.find("{i}").map(|k| &name[..k])
}

/// Iterations of a loop for `cfg`.
fn loop_len(cfg: &Sam3Config, key: &str) -> usize {
    match key {
        "trunk.blocks." => cfg.vit.depth,
        "neck.fpn." => cfg.neck.scale_factors.len(),
        "text.blocks." => cfg.text.layers,
        "geometry.layers." => cfg.geometry.num_layers,
        "fusion.layers." => cfg.fusion.num_layers,
        "decoder.layers." => cfg.decoder.num_layers,
        k => unreachable!("hook table: no loop length for `{k}`"),
    }
}

/// Heads per attention module of the stage a name template belongs to.
fn heads(cfg: &Sam3Config, name: &str) -> usize {
    match name.split('.').next() {
        Some("trunk") => cfg.vit.num_heads,
        Some("text") => cfg.text.heads,
        Some("geometry") => cfg.geometry.num_heads,
        Some("fusion") => cfg.fusion.num_heads,
        Some("decoder") => cfg.decoder.num_heads,
        Some("seg") => cfg.seg_head.cross_attend_prompt_heads,
        _ => 0,
    }
}

/// One concrete point of a row.
struct At<'a> {
    cfg: &'a Sam3Config,
    row: &'static PointDef,
    i: usize,
}

impl At<'_> {
    fn global(&self) -> bool {
        self.cfg.vit.global_att_blocks.contains(&self.i)
    }

    fn dim(&self, sym: &str) -> usize {
        let c = self.cfg;
        let (g, v) = (c.grid(), &c.vit);
        let window_tokens = || if self.global() { (1, g * g) } else { (g.div_ceil(v.window_size).pow(2), v.window_size.pow(2)) };
        let level = || (g as f64 * c.neck.scale_factors[self.i]) as usize;
        match sym {
            "B" => 1,
            "S" => c.image_size,
            "g" => g,
            "C" => v.embed_dim,
            "hd/2" => v.embed_dim / v.num_heads / 2,
            "B·nW" => window_tokens().0,
            "N" => window_tokens().1,
            "H" => heads(c, self.row.name),
            "d" => c.d_model,
            "h" | "w" => level(),
            "L" => c.text.context_length,
            "W" => c.text.width,
            "G" => 1, // a text-only prompt: the CLS token alone
            "P" => c.text.context_length + 1,
            "HW" => g * g,
            "Q" => c.decoder.num_queries,
            "1+Q" => 1 + c.decoder.num_queries,
            "layers" => c.decoder.num_layers,
            // Masks come out at the finest kept neck level (4× the token grid for SAM3).
            "H4" | "W4" => c.neck.scale_factors.first().map_or(g, |&sc| (g as f64 * sc) as usize),
            n => n.parse().unwrap_or_else(|_| panic!("hook table: unknown axis `{n}` in {}", self.row.name)),
        }
    }

    fn shape(&self) -> Vec<usize> {
        self.row.shape.split(',').map(|s| self.dim(s)).collect()
    }

    /// Does the model drop neck level `i` (`scalp` drops the coarsest ones)?
    fn dropped_level(&self) -> bool {
        self.i + self.cfg.neck.scalp >= self.cfg.neck.scale_factors.len()
    }

    fn after_last_global(&self) -> bool {
        self.i > *self.cfg.vit.global_att_blocks.last().unwrap_or(&0)
    }

    fn last_layer(&self) -> bool {
        self.i + 1 == self.cfg.decoder.num_layers
    }

    fn editable(&self) -> bool {
        match self.row.access {
            Edit => true,
            Read => false,
            LastLayer => self.last_layer(),
            KeptLevel => !self.dropped_level(),
            UpToLastGlobal => !self.after_last_global(),
        }
    }

    fn doc(&self, h: usize) -> String {
        let tail = if self.after_last_global() { "; after the last global block: read-only, computed only when hooked" } else { "" };
        let mut doc = self
            .row
            .doc
            .replace("{h}", &h.to_string())
            .replace("{i}", &self.i.to_string())
            .replace("{kind}", if self.global() { "global" } else { "window" })
            .replace("{tail}", tail);
        if self.row.access == KeptLevel {
            doc = doc.replace("{sc}", &self.cfg.neck.scale_factors[self.i].to_string());
            if self.dropped_level() {
                doc.push_str(": dropped by the model, computed only when hooked");
            }
        }
        // A LastLayer row's doc ends in what an edit does; earlier layers say why it does nothing.
        if self.row.access == LastLayer && !self.last_layer() {
            let keep = doc.rfind("; ").unwrap_or(doc.len());
            doc.truncate(keep);
            doc.push_str("; read-only: only the last layer's feeds the outputs");
        }
        doc
    }
}

/// Every hook point of the model for `cfg`, in forward order, with its shape at batch 1 and a
/// text-only prompt (prompt-length axes grow by one per box).
pub fn hook_registry(cfg: &Sam3Config) -> HookRegistry {
    let mut points = Vec::new();
    let all: Vec<&'static PointDef> = rows().collect();
    let mut k = 0;
    while k < all.len() {
        // A loop: the run of consecutive rows with the same text before `{i}`.
        let key = loop_key(all[k].name);
        let end = match key {
            Some(key) => k + all[k..].iter().take_while(|r| loop_key(r.name) == Some(key)).count(),
            None => k + 1,
        };
        for i in 0..key.map_or(1, |key| loop_len(cfg, key)) {
            for row in &all[k..end] {
                let at = At { cfg, row, i };
                let name = row.name.replace("{i}", &i.to_string());
                let hs = if name.contains("{h}") { heads(cfg, row.name) } else { 1 };
                for h in 0..hs {
                    let name: HookPoint = name.replace("{h}", &h.to_string()).parse().expect("hook table: bad name template");
                    points.push(HookInfo { name, shape: at.shape(), doc: at.doc(h), editable: at.editable() });
                }
            }
        }
        k = end;
    }
    HookRegistry { points }
}

/// The `{i}`/`{h}` values of `name` if it is an instance of `template`.
fn instance(template: &str, name: &str) -> Option<(Option<usize>, Option<usize>)> {
    let (mut i, mut h) = (None, None);
    let (mut t, mut n) = (template.split('.'), name.split('.'));
    loop {
        match (t.next(), n.next()) {
            (None, None) => return Some((i, h)),
            (Some("{i}"), Some(s)) => i = Some(s.parse().ok()?),
            (Some("{h}"), Some(s)) => h = Some(s.parse().ok()?),
            (Some(a), Some(b)) if a == b => {}
            _ => return None,
        }
    }
}

/// The row a concrete name is an instance of, with its index and head (no config check: indices
/// are not bounded).
pub fn lookup(name: &str) -> Option<(&'static PointDef, Option<usize>, Option<usize>)> {
    rows().find_map(|r| instance(r.name, name).map(|(i, h)| (r, i, h)))
}

/// The checkpoint tensor-name prefix of the module computing `name` (`{i}` filled in), e.g.
/// `decoder.layers.4.ca_text.head.0` → `transformer.decoder.layers.4.ca_text`.
pub fn checkpoint_module(name: &str) -> Option<String> {
    let (row, i, _) = lookup(name)?;
    Some(i.map_or(row.module.to_string(), |i| row.module.replace("{i}", &i.to_string())))
}

/// The attention modules whose heads are hook points: the templates `M` of every `M.head.{h}` row.
pub fn head_modules() -> impl Iterator<Item = &'static str> {
    rows().filter_map(|r| r.name.strip_suffix(".head.{h}"))
}

/// Every hook name of the `trunk.blocks.{i}` loop for block `i` (heads `0..heads`).
pub fn block_points(prefix: &str, i: usize, heads: usize) -> impl Iterator<Item = String> + '_ {
    rows().filter(move |r| loop_key(r.name) == Some(prefix)).flat_map(move |r| {
        let name = r.name.replace("{i}", &i.to_string());
        let hs = if name.contains("{h}") { heads } else { 1 };
        (0..hs).map(move |h| name.replace("{h}", &h.to_string()))
    })
}

/// The hook name a reference fixture key is compared with (without the `box_prompt.` prefix): the
/// row's `reference` alias, an attention module's `.out` for the module's own key (the reference
/// captures the module's output under its name), else the key itself.
pub fn hook_name(key: &str) -> String {
    let key = key.strip_prefix("box_prompt.").unwrap_or(key);
    if let Some(r) = rows().find(|r| r.reference == Some(key)) {
        return r.name.to_string();
    }
    if lookup(key).is_none() && head_modules().any(|m| instance(m, key).is_some()) {
        return format!("{key}.out");
    }
    key.to_string()
}

/// The table as the markdown in docs/hooks.md (between its `hook-table` markers).
pub fn markdown_table() -> String {
    let mut s = String::from("| point | shape (B = batch) | edits | checkpoint module | what |\n|---|---|---|---|---|\n");
    for r in rows() {
        let access = match r.access {
            Edit => "flow downstream",
            Read => "**read-only**",
            LastLayer => "last layer only",
            KeptLevel => "kept levels only",
            UpToLastGlobal => "up to the last global block",
        };
        let module = if r.module.is_empty() { "–".to_string() } else { format!("`{}`", r.module) };
        let doc = r.doc.replace("{tail}", "").replace('|', "\\|");
        let reference = r.reference.map(|k| format!(" Reference key `{k}`.")).unwrap_or_default();
        s.push_str(&format!("| `{}` | ({}) | {access} | {module} | {doc}{reference} |\n", r.name, r.shape));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compile_time_name_checks_accept_the_table_and_refuse_misspellings() {
        // What `point!` asserts at compile time (a misspelt tap does not build).
        assert!(is_template("decoder.layers.{i}.q0") && is_template("trunk.out") && is_template("scores"));
        assert!(!is_template("decoder.layers.{i}.qo") && !is_template("decoder.layers.{i}") && !is_template("decoder.layers.3.q0"));
        assert!(is_prefix("decoder.layers.{i}.ca_text") && is_prefix("fusion.layers.{i}") && is_prefix("seg.prompt_cross_attn"));
        assert!(!is_prefix("decoder.layers.{i}.ca_txt") && !is_prefix("decoder.layers.{i}.q"));
        assert!(is_suffix(".ffn.out") && is_suffix(".head.{h}") && is_suffix(".attn_weights"));
        assert!(!is_suffix(".ffn.outs") && !is_suffix(".head.{i}"));
        assert!(is_segment(".self_attn") && is_segment(".cross_attn") && !is_segment(".self_atn"));
        // Every row is found, at every position of the table.
        assert!(rows().all(|r| is_template(r.name)));
    }

    #[test]
    fn reference_keys_map_to_hook_names() {
        assert_eq!(hook_name("out.pred_masks"), "pred_masks");
        assert_eq!(hook_name("box_prompt.post.scores"), "scores");
        assert_eq!(hook_name("decoder.presence_logit"), "presence_logit");
        assert_eq!(hook_name("seg.prompt_cross_attn"), "seg.prompt_cross_attn.out");
        assert_eq!(hook_name("trunk.blocks.1"), "trunk.blocks.1");
    }

    #[test]
    fn read_only_points_say_so() {
        let tiny = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny/config.json");
        let tiny = Sam3Config::from_file(&tiny).unwrap();
        // Blocks after the last global one do not feed the trunk output.
        let mut early_global = tiny.clone();
        early_global.vit.global_att_blocks = vec![1];
        for cfg in [Sam3Config::sam3(), tiny, early_global] {
            for p in hook_registry(&cfg).points {
                let says = ["read-only", "READ-ONLY", "dropped by the model"].iter().any(|w| p.doc.contains(w));
                assert_eq!(says, !p.editable, "{}: {}", p.name, p.doc);
            }
        }
    }

    /// docs/hooks.md carries the rendered table; `SAM3LAB_UPDATE_DOCS=1` rewrites it.
    #[test]
    fn docs_table_is_the_code_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/hooks.md");
        let text = std::fs::read_to_string(&path).unwrap();
        let (begin, end) = ("<!-- hook-table:begin (generated from crates/model/src/points.rs) -->\n", "<!-- hook-table:end -->");
        let a = text.find(begin).expect("docs/hooks.md: no hook-table:begin marker") + begin.len();
        let b = text.find(end).expect("docs/hooks.md: no hook-table:end marker");
        let table = markdown_table();
        if text[a..b] == table {
            return;
        }
        if std::env::var_os("SAM3LAB_UPDATE_DOCS").is_some() {
            std::fs::write(&path, format!("{}{table}{}", &text[..a], &text[b..])).unwrap();
        } else {
            panic!("docs/hooks.md's hook table differs from crates/model/src/points.rs; run SAM3LAB_UPDATE_DOCS=1 cargo test --release -p sam3lab-model --lib points");
        }
    }

    #[test]
    fn names_resolve_to_checkpoint_modules() {
        assert_eq!(checkpoint_module("decoder.layers.4.ca_image.head.0").unwrap(), "transformer.decoder.layers.4.cross_attn");
        assert_eq!(checkpoint_module("trunk.blocks.7.attn.head.3").unwrap(), "backbone.vision_backbone.trunk.blocks.7.attn");
        assert_eq!(checkpoint_module("seg.prompt_cross_attn.out").unwrap(), "segmentation_head.cross_attend_prompt");
        assert!(checkpoint_module("decoder.layers.x.q0").is_none());
    }
}
