//! sam3lab-hooks: named hook points through which probes read and change SAM3's forward pass.
//!
//! This crate owns the vocabulary probes are written in: [`HookPoint`] (a dotted canonical name such as
//! `decoder.layers.5.q0`), [`HookPattern`] (globs and ranges over those names), [`HookSpec`] (an
//! ordered list of `pattern → action` entries), the run-time [`Hooks`] context the model threads
//! through its forward, the [`ActivationCache`] that captures land in (safetensors + a JSON
//! manifest), and [`FrozenLayerNorm`] for head attribution through the decoder's post-norm. It knows
//! nothing about SAM3's layers: the model crate taps named points and publishes a [`HookRegistry`]
//! (`sam3lab_model::hook_registry(&cfg)`: every valid name with its shape and a description), which
//! validates names and suggests the nearest valid ones on a typo.
//!
//! # Entry points
//! Most probes never build a [`Hooks`] themselves: `sam3lab_model::predict::Predictor` has
//! `run_with_cache(&image, prompt, &names)` and `run_with_hooks(&image, prompt, spec)` (plus
//! `…_batch` forms over images × prompts) that validate the names against the registry, run each
//! encoder under the hooks only when the spec reaches into it, and return `(outputs, cache)`.
//! [`Hooks`] is the level below: the context the model's own `encode_image` / `encode_text` /
//! `ground` take, for box prompts and for features you keep yourself. [`cosine`] compares captures.
//!
//! # Names
//! Names follow the model's module tree (`trunk.blocks.{i}`, `text.blocks.{i}`, `geometry.layers.{i}`,
//! `fusion.layers.{i}`, `decoder.layers.{i}`, `seg.*`) and equal the reference fixture's `expected`
//! keys wherever both exist. Every attention module `M` (ViT `trunk.blocks.{i}.attn`, text
//! `text.blocks.{i}.attn`, geometry/fusion `….self_attn` / `….cross_attn`, decoder `….self_attn` /
//! `….ca_text` / `….ca_image`, `seg.prompt_cross_attn`) offers `M.out` (after the output projection,
//! before the residual add), `M.head.{h}` (head h's output times its slice of the output projection,
//! no bias) and `M.attn_weights` (softmax, `(B, H, Lq, Lk)`). The decoder adds `decoder.layers.{i}.q0`
//! (presence token = row 0 of the layer output, `(B, d)`), `.queries` (`(B, Q, d)`) — both editable,
//! edits flow downstream — and `.mean` (mean of the 1+Q tokens, a READ-ONLY readout). Run
//! `sam3lab hooks list` for the full table with shapes.
//!
//! # Layouts
//! A hook tensor has the reference's layout with the batch axis moved first: seq-first `(S, B, d)`
//! becomes `(B, S, d)`, `(B·nH, Q, HW)` becomes `(B, nH, Q, HW)`, `(L, Q, B, 4)` becomes `(B, L, Q, 4)`.
//! Boolean masks are float 0/1 (1 = padding; an edited mask is thresholded at 0.5); token ids are
//! float. ViT window blocks use the attention's own layout `(B·nW, w·w, C)` (padded windows,
//! row-major window order) for `.attn.out`/`.head.{h}`/`.attn_weights`.
//!
//! # Patterns
//! `*` = one segment, `**` = any number of segments, `head*` = a wildcard inside a segment,
//! `3..5` = an inclusive index range, `{ca_text,ca_image}` = alternatives. A pattern that matches no
//! registered point is an error ([`HookRegistry::expand`], [`Hooks::validated`]) naming the nearest
//! valid names; [`Hooks::unmatched`] reports entries that never fired in a run that skipped
//! validation.
//!
//! # Actions and order of composition
//! [`Action`]: capture, replace, add `α·v` (`v` of the point's shape or a `[d]` steering vector),
//! scale, zero, or any closure ([`HookSpec::map`]). Per-head ablation/scaling/replacement is the same
//! actions on `M.head.{h}`. At each point, the matching entries run **in the order they were added to
//! the spec**, each seeing the tensor as the previous one left it; a capture records the value at its
//! position in that chain (put it last to record the edited value). The returned value is what the
//! model uses from then on, so an edit changes everything downstream of the point and nothing
//! upstream. A few points are readouts whose edits would have no effect ([`HookInfo::editable`] is
//! false and the description says "read-only"): `….mean`, masks and ids tapped for reading, earlier
//! decoder layers' `presence_logit` / `pred_logits`, the dropped neck level. Validation
//! ([`HookSpec::validate`], [`Hooks::validated`]) refuses an edit that reaches one, naming the point.
//!
//! # Cost model
//! With no entries ([`Hooks::none`] or an empty spec) a tap is one branch: no name is built, nothing
//! is cloned (the model builds names lazily inside [`Hooks::tap`], or only behind
//! [`Hooks::is_active`] where it needs a name or a module prefix up front). With entries, each tap builds its name and looks it up (one hash lookup for the exact
//! names of the spec, an allocation-free match per wildcard entry); a capture keeps the tensor
//! (reference-counted; a flat view, copied only when the tensor is not contiguous), so that buffer can
//! no longer be reused in place downstream.
//! Per-head contributions and attention maps are computed only when an entry matches
//! `M.head.*` / `M.attn_weights`: that module then runs the explicit attention path (scores →
//! softmax → per-head products) instead of the fused kernel — numerically equal to ≤ 1e-5, not bit
//! for bit, so compare runs that want the same head points. Points the plain model never computes
//! (the dropped neck level, ViT blocks after the last global one, earlier layers' `pred_logits`) are
//! computed only when wanted. `sam3lab bench hooks` measures all of this against `Hooks::none()`.
//!
//! # Per-head attribution and the post-norm decoder
//! `M.out = Σ_h M.head.{h} + b_o` exactly. In the pre-norm stacks (ViT, text, geometry, fusion, seg)
//! that sum adds straight into the residual stream. The decoder is post-norm: a head's contribution
//! adds to `x + attn` BEFORE `norm2` / `catext_norm` / `norm1`, so a raw `….head.{h}` is a pre-norm
//! quantity. [`FrozenLayerNorm`] pushes components through a LayerNorm with its per-token scale frozen
//! at the actual input, which makes them add up exactly to the normalised output (see
//! [`attribution`] for how to use it and its limits).

pub mod attribution;
mod cache;
mod ctx;
mod error;
mod point;
mod registry;
mod spec;
mod tensor;

pub use attribution::FrozenLayerNorm;
pub use cache::{ActivationCache, CacheManifest, ImageIdentity, manifest_path, sha256_file, sha256_hex};
pub use ctx::Hooks;
pub use error::HookError;
pub use point::{HookPattern, HookPoint};
pub use registry::{HookInfo, HookRegistry, nearest_names};
pub use spec::{Action, HookSpec, MapFn};
pub use tensor::{DynTensor, cosine};
