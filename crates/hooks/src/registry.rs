use crate::{Action, HookError, HookPattern, HookPoint, HookSpec};

/// One hook point the model offers, with its shape for batch 1 and the default (text-only) prompt.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct HookInfo {
    pub name: HookPoint,
    /// Shape at batch size 1 with a text-only prompt; prompt-length axes grow with box prompts.
    pub shape: Vec<usize>,
    /// What the tensor is, in a few words (layout included).
    pub doc: String,
    /// Whether an edit here reaches the outputs; editing a read-only point is a validation error.
    /// Not serialised: the `hooks list --json` format predates it, and the doc says "read-only".
    #[serde(skip_serializing, default = "editable")]
    pub editable: bool,
}

fn editable() -> bool {
    true
}

/// Every hook point a model offers for its config, in forward order. Published by the model crate;
/// used to validate names, expand patterns and suggest the nearest names on a typo.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct HookRegistry {
    pub points: Vec<HookInfo>,
}

impl HookRegistry {
    pub fn push(&mut self, name: impl AsRef<str>, shape: impl Into<Vec<usize>>, doc: impl Into<String>) {
        let name = name.as_ref().parse().unwrap_or_else(|e| panic!("model registered a bad hook name: {e}"));
        self.points.push(HookInfo { name, shape: shape.into(), doc: doc.into(), editable: true });
    }

    pub fn get(&self, name: &str) -> Option<&HookInfo> {
        self.points.iter().find(|p| p.name.as_str() == name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Parse and check one exact name.
    pub fn point(&self, name: &str) -> Result<HookPoint, HookError> {
        let p: HookPoint = name.parse()?;
        if self.contains(name) {
            Ok(p)
        } else {
            Err(HookError::Unknown { name: name.to_string(), nearest: self.nearest(name, 3) })
        }
    }

    /// Every registered point a pattern matches, in forward order; an error when none does.
    pub fn expand(&self, pattern: &HookPattern) -> Result<Vec<HookPoint>, HookError> {
        let hits: Vec<HookPoint> =
            self.points.iter().filter(|p| pattern.matches(p.name.as_str())).map(|p| p.name.clone()).collect();
        if hits.is_empty() {
            let nearest = self.nearest(pattern.as_str(), 3);
            return Err(if pattern.is_exact() {
                HookError::Unknown { name: pattern.to_string(), nearest }
            } else {
                HookError::NoMatch { pattern: pattern.to_string(), nearest }
            });
        }
        Ok(hits)
    }

    /// An edit (any action but capture) through `pattern` must not reach a read-only point: the
    /// model would silently drop it. The error names the first such point.
    pub fn check_edit(&self, pattern: &HookPattern, action: &Action) -> Result<(), HookError> {
        if !action.edits() {
            return Ok(());
        }
        match self.points.iter().find(|p| !p.editable && pattern.matches(p.name.as_str())) {
            Some(p) => Err(HookError::ReadOnly {
                point: p.name.to_string(),
                pattern: pattern.to_string(),
                action: action.kind().to_string(),
            }),
            None => Ok(()),
        }
    }

    /// The registered points any entry of `spec` matches, in forward order, each once; an error
    /// (with the nearest valid names) for the first pattern that matches nothing.
    pub fn expand_spec(&self, spec: &HookSpec) -> Result<Vec<&HookInfo>, HookError> {
        spec.validate(self)?;
        Ok(self.points.iter().filter(|p| spec.entries().iter().any(|(pat, _)| pat.matches(p.name.as_str()))).collect())
    }

    /// Bytes (f32) the captures of `spec` hold after one forward at batch 1 with a text-only
    /// prompt: an estimate to print before a large capture.
    pub fn capture_bytes(&self, spec: &HookSpec) -> usize {
        self.points
            .iter()
            .filter(|p| spec.entries().iter().any(|(pat, a)| matches!(a, Action::Capture) && pat.matches(p.name.as_str())))
            .map(|p| 4 * p.shape.iter().product::<usize>())
            .sum()
    }

    /// The `k` registered names closest to `query` (edit distance over the text, ties in forward order).
    pub fn nearest(&self, query: &str, k: usize) -> Vec<String> {
        nearest_names(self.points.iter().map(|p| p.name.as_str()), query, k)
    }
}

/// The `k` candidates closest to `query` by Levenshtein distance (stable for ties).
pub fn nearest_names<'a>(candidates: impl Iterator<Item = &'a str>, query: &str, k: usize) -> Vec<String> {
    sam3lab_util::nearest_names(query, candidates, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> HookRegistry {
        let mut r = HookRegistry::default();
        for i in 0..3 {
            r.push(format!("decoder.layers.{i}.q0"), vec![1, 32], "q0");
            r.push(format!("decoder.layers.{i}.queries"), vec![1, 8, 32], "queries");
        }
        r
    }

    #[test]
    fn unknown_name_suggests_close_match() {
        let err = reg().point("decoder.layers.1.qo").unwrap_err().to_string();
        assert!(err.contains("decoder.layers.1.q0"), "{err}");
    }

    #[test]
    fn editing_a_read_only_point_is_an_error_naming_it() {
        let mut r = reg();
        r.points[0].editable = false;
        let spec = |p: &str| HookSpec::new().capture("**").unwrap().scale(p, 2.0).unwrap();
        let e = spec("decoder.layers.0.q0").validate(&r).unwrap_err().to_string();
        assert!(e.contains("cannot scale hook point `decoder.layers.0.q0`: it is read-only"), "{e}");
        let e = spec("decoder.layers.*.q0").validate(&r).unwrap_err().to_string();
        assert!(e.contains("`decoder.layers.0.q0` (matched by `decoder.layers.*.q0`)"), "{e}");
        assert!(spec("decoder.layers.1.q0").validate(&r).is_ok());
        assert!(HookSpec::new().capture("decoder.layers.0.q0").unwrap().validate(&r).is_ok());
    }

    #[test]
    fn pattern_expands_in_order_and_empty_match_errors() {
        let r = reg();
        let hits = r.expand(&"decoder.layers.*.q0".parse().unwrap()).unwrap();
        assert_eq!(hits.len(), 3);
        assert_eq!(hits[2].as_str(), "decoder.layers.2.q0");
        let err = r.expand(&"decoder.layers.*.q1".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("matches no hook point") && err.contains("q0"), "{err}");
    }
}
