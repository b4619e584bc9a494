use std::collections::HashMap;

use burn::prelude::*;

use crate::{Action, ActivationCache, DynTensor, HookError, HookPattern, HookPoint, HookRegistry, HookSpec};

/// The run-time hook context a forward pass threads through every named point.
///
/// The model calls [`Hooks::tap`] at each point with a closure that builds the name, so a forward
/// with an empty spec never formats a string. Errors raised inside a tap (a replacement of the wrong
/// shape, say) do not abort the forward mid-way: the first one is kept and [`Hooks::finish`] (or the
/// model's `Result`-returning entry points) report it.
///
/// Matching cost: exact-name entries are found with one hash lookup per tap, wildcard entries are
/// tested one by one (allocation-free), so a spec listing hundreds of exact names stays cheap.
#[derive(Default)]
pub struct Hooks {
    spec: HookSpec,
    /// Exact-name entries: name → their indices in `spec` (ascending).
    exact: HashMap<String, Vec<usize>>,
    /// Indices of the entries with wildcards, ranges or alternations (ascending).
    globs: Vec<usize>,
    /// Taps each entry matched so far (see [`Hooks::unmatched`]).
    hits: Vec<u64>,
    /// Reused buffer of matching entry indices.
    scratch: Vec<usize>,
    cache: ActivationCache,
    error: Option<HookError>,
}

impl Hooks {
    /// No hooks: the forward runs exactly as the plain model.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn new(spec: HookSpec) -> Self {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut globs = Vec::new();
        for (i, (p, _)) in spec.entries.iter().enumerate() {
            if p.is_exact() {
                exact.entry(p.as_str().to_string()).or_default().push(i);
            } else {
                globs.push(i);
            }
        }
        let hits = vec![0; spec.entries.len()];
        Self { spec, exact, globs, hits, ..Self::default() }
    }

    /// [`Hooks::new`] after checking every pattern against the model's registry: an unknown name or
    /// a pattern that matches nothing is an error naming the nearest valid names, an edit reaching a
    /// read-only point an error naming that point.
    pub fn validated(spec: HookSpec, registry: &HookRegistry) -> Result<Self, HookError> {
        spec.validate(registry)?;
        Ok(Self::new(spec))
    }

    /// Capture every point matching each pattern, nothing else.
    pub fn capture(patterns: &[&str]) -> Result<Self, HookError> {
        Ok(Self::new(HookSpec::new().capture_all(patterns)?))
    }

    pub fn spec(&self) -> &HookSpec {
        &self.spec
    }

    #[inline(always)]
    pub fn is_active(&self) -> bool {
        !self.spec.entries.is_empty()
    }

    /// Does any entry match this exact name? (Used by the model to decide whether to compute
    /// optional values such as per-head contributions or attention maps.)
    pub fn wants(&self, name: &str) -> bool {
        self.is_active()
            && (self.exact.contains_key(name) || self.globs.iter().any(|&i| self.spec.entries[i].0.matches(name)))
    }

    /// Does any entry that *edits* (anything but capture) match this name?
    pub fn edits(&self, name: &str) -> bool {
        if !self.is_active() {
            return false;
        }
        let e = &self.spec.entries;
        self.exact.get(name).is_some_and(|ix| ix.iter().any(|&i| e[i].1.edits()))
            || self.globs.iter().any(|&i| e[i].1.edits() && e[i].0.matches(name))
    }

    /// The entries that have matched no tap so far, e.g. a pattern naming a point of a stage that
    /// did not run, or (without [`Hooks::validated`]) a typo.
    pub fn unmatched(&self) -> Vec<&HookPattern> {
        self.spec.entries.iter().zip(&self.hits).filter(|(_, h)| **h == 0).map(|((p, _), _)| p).collect()
    }

    /// Pass `x` through the point named `name()`: apply every matching entry in order.
    #[inline(always)]
    pub fn tap<const D: usize>(&mut self, name: impl FnOnce() -> String, x: Tensor<D>) -> Tensor<D> {
        if !self.is_active() {
            return x;
        }
        self.tap_active(&name(), x)
    }

    /// Like [`Hooks::tap`] with an already-built name.
    pub fn tap_named<const D: usize>(&mut self, name: &str, x: Tensor<D>) -> Tensor<D> {
        if !self.is_active() {
            return x;
        }
        self.tap_active(name, x)
    }

    /// Indices of the entries matching `name`, ascending (= spec order).
    fn collect_matches(&self, name: &str, out: &mut Vec<usize>) {
        let ex: &[usize] = self.exact.get(name).map(Vec::as_slice).unwrap_or(&[]);
        let mut a = 0;
        for &g in &self.globs {
            if self.spec.entries[g].0.matches(name) {
                while a < ex.len() && ex[a] < g {
                    out.push(ex[a]);
                    a += 1;
                }
                out.push(g);
            }
        }
        out.extend_from_slice(&ex[a..]);
    }

    fn tap_active<const D: usize>(&mut self, name: &str, mut x: Tensor<D>) -> Tensor<D> {
        let mut idx = std::mem::take(&mut self.scratch);
        idx.clear();
        self.collect_matches(name, &mut idx);
        for &i in &idx {
            self.hits[i] += 1;
            let action = self.spec.entries[i].1.clone();
            match self.apply(name, &action, x.clone()) {
                Ok(y) => x = y,
                Err(e) => {
                    self.error.get_or_insert(e);
                }
            }
        }
        self.scratch = idx;
        x
    }

    fn apply<const D: usize>(&mut self, name: &str, action: &Action, x: Tensor<D>) -> Result<Tensor<D>, HookError> {
        let shape = x.dims().to_vec();
        let check = |what: &str, found: &[usize]| -> Result<(), HookError> {
            if found == shape.as_slice() {
                Ok(())
            } else {
                Err(HookError::Shape {
                    name: name.to_string(),
                    what: what.to_string(),
                    expected: shape.clone(),
                    found: found.to_vec(),
                })
            }
        };
        Ok(match action {
            Action::Capture => {
                self.cache.insert(name, DynTensor::new(x.clone()).detach());
                x
            }
            Action::Replace(v) => {
                check("the replacement", v.shape())?;
                v.to_rank::<D>(name)?.to_device(&x.device())
            }
            Action::Add { value, alpha } => {
                let v = if value.shape() == shape.as_slice() {
                    value.to_rank::<D>(name)?
                } else if value.rank() == 1 && value.shape()[0] == shape[D - 1] {
                    let mut dims = [1usize; D];
                    dims[D - 1] = shape[D - 1];
                    value.flat().reshape(dims)
                } else {
                    return Err(HookError::Shape {
                        name: name.to_string(),
                        what: "the added value (point shape or [last dim])".into(),
                        expected: shape.clone(),
                        found: value.shape().to_vec(),
                    });
                };
                x.clone() + v.to_device(&x.device()).mul_scalar(*alpha)
            }
            Action::Scale(s) => x.mul_scalar(*s),
            Action::Zero => x.zeros_like(),
            Action::Grad => {
                let device = x.device();
                if !device.is_autodiff() {
                    return Err(HookError::NotAutodiff { point: name.to_string(), device: format!("{device:?}") });
                }
                let leaf = DynTensor::zero_leaf(&shape, &device);
                self.cache.insert_grad_leaf(name, leaf.clone());
                x + leaf.to_rank::<D>(name)?
            }
            Action::Map(f) => {
                let point: HookPoint = name.parse()?;
                let y = f(&point, DynTensor::new(x));
                check("the map's result", y.shape())?;
                y.to_rank::<D>(name)?
            }
        })
    }

    pub fn cache(&self) -> &ActivationCache {
        &self.cache
    }

    pub fn cache_mut(&mut self) -> &mut ActivationCache {
        &mut self.cache
    }

    /// The first error raised inside a tap, if any (clears it).
    pub fn take_error(&mut self) -> Option<HookError> {
        self.error.take()
    }

    /// End of run: the captured activations, or the first error a tap raised.
    pub fn finish(mut self) -> Result<ActivationCache, HookError> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(self.cache),
        }
    }

    /// Take the captured activations and keep the spec for the next forward.
    pub fn take_cache(&mut self) -> Result<ActivationCache, HookError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        Ok(std::mem::take(&mut self.cache))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use crate::HookRegistry;

    fn t(v: Vec<f32>, s: [usize; 2]) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, s), &Device::flex())
    }

    #[test]
    fn empty_spec_is_identity_and_never_builds_names() {
        let mut h = Hooks::none();
        let x = t(vec![1., 2., 3., 4.], [2, 2]);
        let y = h.tap(|| panic!("name built with no hooks"), x.clone());
        assert_eq!(y.to_data(), x.to_data());
    }

    #[test]
    fn actions_compose_in_order() {
        let dev = Device::flex();
        let spec = HookSpec::new()
            .capture("a.b")
            .unwrap()
            .add("a.*", DynTensor::from_vec(vec![10., 20.], vec![2], &dev), 0.5)
            .unwrap()
            .scale("a.b", 2.0)
            .unwrap()
            .push("a.b", Action::Capture)
            .unwrap();
        let mut h = Hooks::new(spec);
        let y = h.tap(|| "a.b".into(), t(vec![1., 2., 3., 4.], [2, 2]));
        // (x + 0.5*[10,20]) * 2
        assert_eq!(y.to_data().try_to_vec::<f32>().unwrap(), vec![12., 24., 16., 28.]);
        // the last capture sees the final value (it overwrote the first)
        let c = h.finish().unwrap();
        assert_eq!(c.get("a.b").unwrap().to_vec(), vec![12., 24., 16., 28.]);
    }

    #[test]
    fn add_with_zero_alpha_is_identity_and_bad_shapes_error() {
        let dev = Device::flex();
        let x = t(vec![1., 2., 3., 4.], [2, 2]);
        let mut h = Hooks::new(HookSpec::new().add("p", DynTensor::from_vec(vec![5., 6.], vec![2], &dev), 0.0).unwrap());
        assert_eq!(h.tap(|| "p".into(), x.clone()).to_data(), x.to_data());
        let mut h = Hooks::new(HookSpec::new().replace("p", DynTensor::from_vec(vec![5., 6., 7.], vec![3], &dev)).unwrap());
        let y = h.tap(|| "p".into(), x.clone());
        assert_eq!(y.to_data(), x.to_data(), "a failed replace leaves the value alone");
        let err = h.finish().unwrap_err().to_string();
        assert!(err.contains("`p`") && err.contains("[3]") && err.contains("[2, 2]"), "{err}");
    }

    #[test]
    fn zero_and_map() {
        let x = t(vec![1., 2., 3., 4.], [2, 2]);
        let mut h = Hooks::new(
            HookSpec::new().zero("z").unwrap().map("m", |_, v| v).unwrap().map("r", |_, v| v.map_values(|f| f.clamp_min(2.5))).unwrap(),
        );
        assert_eq!(h.tap(|| "r".into(), x.clone()).to_data().try_to_vec::<f32>().unwrap(), vec![2.5, 2.5, 3., 4.]);
        assert_eq!(h.tap(|| "z".into(), x.clone()).to_data().try_to_vec::<f32>().unwrap(), vec![0.; 4]);
        assert_eq!(h.tap(|| "m".into(), x.clone()).to_data(), x.to_data());
        assert!(h.wants("z") && !h.wants("q") && h.edits("m"));
    }

    #[test]
    fn exact_and_pattern_entries_interleave_in_spec_order_and_unmatched_is_reported() {
        let dev = Device::flex();
        let one = |v: f32| DynTensor::from_vec(vec![v, v], vec![2], &dev);
        // exact, glob, exact, glob: (x + 1) * 2 + 3, then * 10
        let spec = HookSpec::new()
            .add("m.p", one(1.0), 1.0)
            .unwrap()
            .scale("m.*", 2.0)
            .unwrap()
            .add("m.p", one(3.0), 1.0)
            .unwrap()
            .scale("{m,n}.p", 10.0)
            .unwrap()
            .capture("m.never")
            .unwrap();
        let mut h = Hooks::new(spec);
        let y = h.tap(|| "m.p".into(), t(vec![0., 1., 2., 3.], [2, 2]));
        assert_eq!(y.to_data().try_to_vec::<f32>().unwrap(), vec![50., 70., 90., 110.]);
        let y = h.tap(|| "m.q".into(), t(vec![1., 1., 1., 1.], [2, 2]));
        assert_eq!(y.to_data().try_to_vec::<f32>().unwrap(), vec![2.; 4]);
        let un: Vec<String> = h.unmatched().iter().map(|p| p.to_string()).collect();
        assert_eq!(un, ["m.never"]);
        assert!(h.edits("n.p") && h.edits("m.never") && !h.edits("q.r") && !h.wants("q.r"));
    }

    #[test]
    fn validated_rejects_unknown_names_with_suggestions() {
        let mut reg = HookRegistry::default();
        reg.push("decoder.layers.0.q0", vec![1, 4], "q0");
        reg.push("decoder.layers.1.q0", vec![1, 4], "q0");
        assert!(Hooks::validated(HookSpec::new().capture("decoder.layers.*.q0").unwrap(), &reg).is_ok());
        let e = Hooks::validated(HookSpec::new().capture("decoder.layers.1.qo").unwrap(), &reg).err().unwrap().to_string();
        assert!(e.contains("unknown hook point") && e.contains("decoder.layers.1.q0"), "{e}");
        let e = Hooks::validated(HookSpec::new().capture("decoder.layer.*.q0").unwrap(), &reg).err().unwrap().to_string();
        assert!(e.contains("matches no hook point") && e.contains("decoder.layers.0.q0"), "{e}");
        let spec = HookSpec::new().capture("decoder.layers.*.q0").unwrap().zero("decoder.layers.0.q0").unwrap();
        assert_eq!(reg.capture_bytes(&spec), 2 * 4 * 4);
        assert_eq!(reg.expand_spec(&spec).unwrap().len(), 2);
    }
}
