//! Module groups for the diff: named regexes over normalised tensor names. A tensor may belong to
//! several groups (the decoder sub-groups are subsets of `transformer_decoder`).

use std::fmt;

use regex::Regex;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::{Result, WeightsError};

pub use sam3lab_results::GroupRule;

/// Design doc §4: the post's Table 6.1 groups plus the extra ones, in this order.
pub const DEFAULT_GROUPS: &[(&str, &str)] = &[
    ("vision_trunk", r"^backbone\.vision_backbone\.trunk\."),
    ("text_encoder", r"^backbone\.language_backbone\."),
    ("geometry_encoder", r"^geometry_encoder\."),
    ("fusion_encoder", r"^transformer\.encoder\."),
    ("transformer_decoder", r"^transformer\.decoder\."),
    (
        "decoder_self_attn",
        r"^transformer\.decoder\.layers\.\d+\.(self_attn|norm2)\.",
    ),
    (
        "decoder_ca_text",
        r"^transformer\.decoder\.layers\.\d+\.(ca_text|catext_norm)\.",
    ),
    ("dot_prod_scoring", r"^dot_prod_scoring\."),
    ("presence_head", r"^transformer\.decoder\.presence_token"),
    ("neck", r"^backbone\.vision_backbone\.convs\."),
    ("segmentation_head", r"^segmentation_head\."),
    (
        "decoder_ca_image",
        r"^transformer\.decoder\.layers\.\d+\.(cross_attn|norm1)\.",
    ),
    (
        "decoder_ffn",
        r"^transformer\.decoder\.layers\.\d+\.(linear[12]|norm3)\.",
    ),
];

/// Compiled group rules.
#[derive(Clone, Debug)]
pub struct Groups {
    rules: Vec<GroupRule>,
    compiled: Vec<Regex>,
}

impl Groups {
    pub fn default_sam3() -> Self {
        let rules = DEFAULT_GROUPS
            .iter()
            .map(|(g, r)| GroupRule {
                group: g.to_string(),
                regex: r.to_string(),
            })
            .collect();
        Self::new(rules, "built-in defaults").expect("default group regexes compile")
    }

    /// Compile rules; `origin` names where they came from (for errors).
    pub fn new(rules: Vec<GroupRule>, origin: &str) -> Result<Self> {
        if rules.is_empty() {
            return Err(WeightsError::Groups {
                path: origin.to_string(),
                reason: "no groups defined".into(),
            });
        }
        let mut compiled = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            if rules[..i].iter().any(|p| p.group == r.group) {
                return Err(WeightsError::Groups {
                    path: origin.to_string(),
                    reason: format!("group '{}' is defined twice", r.group),
                });
            }
            compiled.push(Regex::new(&r.regex).map_err(|e| WeightsError::Groups {
                path: origin.to_string(),
                reason: format!("group '{}': invalid regex '{}': {e}", r.group, r.regex),
            })?);
        }
        Ok(Self { rules, compiled })
    }

    /// Read a JSON object `{"group name": "regex", …}`; the file's order is kept.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| WeightsError::io(path, e))?;
        let origin = path.display().to_string();
        let ordered: OrderedPairs =
            serde_json::from_str(&text).map_err(|e| WeightsError::Groups {
                path: origin.clone(),
                reason: format!("expected a JSON object of group name → regex string: {e}"),
            })?;
        let rules = ordered
            .0
            .into_iter()
            .map(|(group, regex)| GroupRule { group, regex })
            .collect();
        Self::new(rules, &origin)
    }

    pub fn rules(&self) -> &[GroupRule] {
        &self.rules
    }

    /// Indices of the groups `name` belongs to.
    pub fn matching(&self, name: &str) -> impl Iterator<Item = usize> + '_ {
        let name = name.to_string();
        self.compiled
            .iter()
            .enumerate()
            .filter(move |(_, re)| re.is_match(&name))
            .map(|(i, _)| i)
    }
}

/// A JSON object read as an ordered list of (key, string value) pairs.
struct OrderedPairs(Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedPairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedPairs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping group names to regex strings")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<OrderedPairs, A::Error> {
                let mut v = Vec::new();
                while let Some((k, r)) = m.next_entry::<String, String>()? {
                    v.push((k, r));
                }
                Ok(OrderedPairs(v))
            }
        }
        d.deserialize_map(V)
    }
}
