use std::fmt;
use std::sync::Arc;

use crate::{DynTensor, HookPattern, HookPoint};

/// A user function over a hook point's tensor; it must return the same shape.
pub type MapFn = Arc<dyn Fn(&HookPoint, DynTensor) -> DynTensor + Send + Sync>;

/// What a hook does at the points its pattern matches.
#[derive(Clone)]
pub enum Action {
    /// Keep a detached copy in the [`crate::ActivationCache`] (the value as it is at this point of
    /// the action list, i.e. after earlier entries changed it).
    Capture,
    /// Replace the tensor with this value (same shape).
    Replace(DynTensor),
    /// Add `alpha · value`; `value` has the point's shape or broadcasts along its last axis
    /// (a `[d]` steering vector).
    Add { value: DynTensor, alpha: f32 },
    /// Multiply by a scalar.
    Scale(f32),
    /// Set to zero (on a `….head.{h}` point: ablate that head).
    Zero,
    /// Any function of the tensor.
    Map(MapFn),
    /// Record the gradient at this point (an autodiff device only). The value is unchanged: a
    /// zero leaf `z` that requires grad is added, `x + z`, so after `metric.backward()` the
    /// gradient of the metric with respect to the point is `∂metric/∂z`
    /// ([`crate::ActivationCache::gradients`]). Like an edit, it needs a point whose value the model
    /// uses (a read-only point is refused), since a gradient only reaches values on the path.
    Grad,
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Capture => "capture",
            Action::Replace(_) => "replace",
            Action::Add { .. } => "add",
            Action::Scale(_) => "scale",
            Action::Zero => "zero",
            Action::Map(_) => "map",
            Action::Grad => "grad",
        }
    }

    pub(crate) fn edits(&self) -> bool {
        !matches!(self, Action::Capture)
    }
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Capture => write!(f, "Capture"),
            Action::Replace(t) => write!(f, "Replace({:?})", t.shape()),
            Action::Add { value, alpha } => write!(f, "Add({:?} × {alpha})", value.shape()),
            Action::Scale(s) => write!(f, "Scale({s})"),
            Action::Zero => write!(f, "Zero"),
            Action::Map(_) => write!(f, "Map(<fn>)"),
            Action::Grad => write!(f, "Grad"),
        }
    }
}

/// An ordered list of `pattern → action` entries. At each point, the matching entries run in the
/// order they were added; each sees the tensor as the previous one left it.
///
/// ```
/// use sam3lab_hooks::HookSpec;
/// let spec = HookSpec::new()
///     .capture("decoder.layers.*.q0").unwrap()
///     .zero("decoder.layers.4.ca_text.head.0").unwrap();
/// assert_eq!(spec.len(), 2);
/// ```
#[derive(Clone, Debug, Default)]
pub struct HookSpec {
    pub(crate) entries: Vec<(HookPattern, Action)>,
}

impl HookSpec {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn entries(&self) -> &[(HookPattern, Action)] {
        &self.entries
    }

    pub fn push(mut self, pattern: &str, action: Action) -> Result<Self, crate::HookError> {
        self.entries.push((pattern.parse()?, action));
        Ok(self)
    }

    pub fn capture(self, pattern: &str) -> Result<Self, crate::HookError> {
        self.push(pattern, Action::Capture)
    }
    /// A capture of every one of `patterns`, in order (what a probe's list of points becomes).
    pub fn capture_all<P: AsRef<str>>(mut self, patterns: impl IntoIterator<Item = P>) -> Result<Self, crate::HookError> {
        for p in patterns {
            self = self.capture(p.as_ref())?;
        }
        Ok(self)
    }
    pub fn replace(self, pattern: &str, value: DynTensor) -> Result<Self, crate::HookError> {
        self.push(pattern, Action::Replace(value))
    }
    pub fn add(self, pattern: &str, value: DynTensor, alpha: f32) -> Result<Self, crate::HookError> {
        self.push(pattern, Action::Add { value, alpha })
    }
    pub fn scale(self, pattern: &str, s: f32) -> Result<Self, crate::HookError> {
        self.push(pattern, Action::Scale(s))
    }
    pub fn zero(self, pattern: &str) -> Result<Self, crate::HookError> {
        self.push(pattern, Action::Zero)
    }
    /// Record the gradient at every point `pattern` matches ([`Action::Grad`]).
    pub fn grad(self, pattern: &str) -> Result<Self, crate::HookError> {
        self.push(pattern, Action::Grad)
    }
    pub fn map(
        self,
        pattern: &str,
        f: impl Fn(&HookPoint, DynTensor) -> DynTensor + Send + Sync + 'static,
    ) -> Result<Self, crate::HookError> {
        self.push(pattern, Action::Map(Arc::new(f)))
    }

    /// Append every entry of `other` after this spec's entries.
    pub fn then(mut self, other: HookSpec) -> Self {
        self.entries.extend(other.entries);
        self
    }

    /// Check every pattern against a registry: unknown names → error with nearest valid names; an
    /// edit reaching a read-only point → error naming it.
    pub fn validate(&self, registry: &crate::HookRegistry) -> Result<(), crate::HookError> {
        for (p, a) in &self.entries {
            registry.expand(p)?;
            registry.check_edit(p, a)?;
        }
        Ok(())
    }

    /// A serialisable description (pattern + action kind) for manifests.
    pub fn describe(&self) -> Vec<(String, String)> {
        self.entries.iter().map(|(p, a)| (p.to_string(), format!("{a:?}"))).collect()
    }
}
