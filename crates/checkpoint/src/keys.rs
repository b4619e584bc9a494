//! Which stored keys make up SAM3's image model, and under which names: the one naming rule shared
//! by the model's loader and the weight-space probes, so both agree on what a checkpoint holds.
//!
//! A file's keys may sit under a state-dict wrapper (`model.` or `state_dict.`, when every key has
//! it) and, in the video checkpoint, under `detector.` beside the tracker (`tracker.*`). The image
//! model's keys are those under the file's prefix (wrapper, then `detector.` when any key has it),
//! named without it. Skipped whatever their prefix: the video tracker, the tracker's neck copy and
//! the RoPE buffers (see [`skip_reason`]).

/// Why the image model never loads `key` (a name after the file's prefix is stripped), or `None`
/// when it does.
pub fn skip_reason(key: &str) -> Option<&'static str> {
    if key.starts_with("tracker.") {
        Some("video tracker")
    } else if key.starts_with("backbone.vision_backbone.sam2_convs.") || key.starts_with("vision_encoder.tracker_neck.") {
        Some("tracker neck (sam2_convs)")
    } else if key.ends_with(".attn.freqs_cis") || key.contains(".rotary_emb.") {
        Some("RoPE buffer (freqs_cis)")
    } else {
        None
    }
}

/// Keys the image model never loads (see [`skip_reason`]).
pub fn is_skipped_key(key: &str) -> bool {
    skip_reason(key).is_some()
}

/// How a stored key maps to the image model's parameter namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyClass {
    /// An image-model tensor, under this name (the file's prefix removed).
    Keep(String),
    /// A tensor the image path does not use, and why (shown by `weights ls`).
    Skip(&'static str),
}

/// A file's naming: the state-dict wrapper every key carries (`""`, `model.` or `state_dict.`) and
/// the prefix of the image model's keys (the wrapper, then `detector.` when any key has it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naming {
    pub wrapper: &'static str,
    pub prefix: String,
}

impl Naming {
    /// The naming of a file holding `keys`.
    pub fn of<'a>(keys: impl IntoIterator<Item = &'a str> + Clone) -> Naming {
        let mut all = keys.clone().into_iter().peekable();
        let nonempty = all.peek().is_some();
        let wrapper = ["model.", "state_dict."]
            .into_iter()
            .find(|w| nonempty && keys.clone().into_iter().all(|k| k.starts_with(w)))
            .unwrap_or("");
        let detector = keys.into_iter().any(|k| k[wrapper.len()..].starts_with("detector."));
        Naming { wrapper, prefix: format!("{wrapper}{}", if detector { "detector." } else { "" }) }
    }

    /// The key without the wrapper (how a copy of the file names it).
    pub fn unwrapped<'k>(&self, key: &'k str) -> &'k str {
        key.strip_prefix(self.wrapper).unwrap_or(key)
    }

    /// Keep or skip one stored key.
    pub fn classify(&self, key: &str) -> KeyClass {
        match key.strip_prefix(self.prefix.as_str()) {
            Some(n) => match skip_reason(n) {
                Some(why) => KeyClass::Skip(why),
                None => KeyClass::Keep(n.to_string()),
            },
            None => KeyClass::Skip("outside the image detector (the file's other keys are `detector.*`)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_video_layout_keeps_the_detector_and_skips_the_rest() {
        let keys = ["detector.a.weight", "detector.backbone.vision_backbone.sam2_convs.0.w", "tracker.x", "other.y"];
        let n = Naming::of(keys.iter().copied());
        assert_eq!(n.prefix, "detector.");
        assert_eq!(n.classify("detector.a.weight"), KeyClass::Keep("a.weight".into()));
        assert!(matches!(n.classify("detector.backbone.vision_backbone.sam2_convs.0.w"), KeyClass::Skip(_)));
        assert!(matches!(n.classify("tracker.x"), KeyClass::Skip(_)));
        assert!(matches!(n.classify("other.y"), KeyClass::Skip(_)));
    }

    #[test]
    fn a_wrapper_is_stripped_only_when_every_key_has_it() {
        let n = Naming::of(["model.a", "model.detector.b"].iter().copied());
        assert_eq!((n.wrapper, n.prefix.as_str()), ("model.", "model.detector."));
        assert_eq!(n.unwrapped("model.detector.b"), "detector.b");
        let n = Naming::of(["model.a", "b"].iter().copied());
        assert_eq!((n.wrapper, n.prefix.as_str()), ("", ""));
        assert_eq!(n.classify("model.a"), KeyClass::Keep("model.a".into()));
        assert!(matches!(n.classify("x.attn.freqs_cis"), KeyClass::Skip(_)));
    }
}
