//! Burn module paths ↔ ORIGINAL checkpoint names, and selecting parameters by glob.
//!
//! burn's derive visits a module tree calling `enter_module(field, "Struct:Parent")` for every
//! field (a `Vec` element enters `(index, "Vec")`; an `Option` adds nothing), so the joined field
//! names are the parameter's burn path and the innermost `Struct:` container is the module that owns
//! it. The model's field names are the torch attribute names, so the burn path IS the checkpoint key
//! except where burn-store's PyTorch adapter renames or re-lays-out: a LayerNorm/GroupNorm/BatchNorm
//! `gamma`/`beta` is torch's `weight`/`bias`, and a `Linear` weight is stored `[in, out]` (torch
//! `[out, in]`). [`original_name`] undoes exactly that, so globs match the names a user sees in the
//! checkpoint.

use std::collections::BTreeSet;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use regex::Regex;

use crate::error::{Result, TrainError};

const NORMS: [&str; 4] = ["Struct:LayerNorm", "Struct:GroupNorm", "Struct:BatchNorm", "Struct:RmsNorm"];

/// The checkpoint name of a parameter reached through `path` with `containers` (the container type
/// passed with each path segment), under `prefix`; and whether burn stores it transposed.
pub fn original_name(prefix: &str, path: &[String], containers: &[String]) -> (String, bool) {
    let owner = containers.iter().rev().find(|c| c.starts_with("Struct:")).map(String::as_str).unwrap_or("");
    let mut segs: Vec<&str> = path.iter().map(String::as_str).collect();
    let last = segs.last().copied().unwrap_or("");
    if NORMS.contains(&owner) {
        match last {
            "gamma" => *segs.last_mut().expect("non-empty") = "weight",
            "beta" => *segs.last_mut().expect("non-empty") = "bias",
            _ => {}
        }
    }
    let transposed = owner == "Struct:Linear" && last == "weight";
    (format!("{prefix}{}", segs.join(".")), transposed)
}

#[derive(Default)]
struct Walk {
    path: Vec<String>,
    containers: Vec<String>,
}

impl Walk {
    fn enter(&mut self, name: &str, container: &str) {
        self.path.push(name.to_string());
        self.containers.push(container.to_string());
    }
    fn exit(&mut self) {
        self.path.pop();
        self.containers.pop();
    }
}

/// One float parameter of a module, by original name.
#[derive(Clone, Debug)]
pub struct NamedParam {
    pub name: String,
    /// Shape in torch layout.
    pub shape: Vec<usize>,
    pub require_grad: bool,
    /// The module type that owns it, e.g. `LayerNorm`, `Linear` (burn's `Struct:` container).
    pub owner: String,
}

struct Lister {
    walk: Walk,
    prefix: String,
    out: Vec<NamedParam>,
}

impl ModuleVisitor for Lister {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.walk.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.walk.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let (name, transposed) = original_name(&self.prefix, &self.walk.path, &self.walk.containers);
        let mut shape = param.val().dims().to_vec();
        if transposed && shape.len() == 2 {
            shape.swap(0, 1);
        }
        let require_grad = param.val().is_require_grad();
        let owner = self.walk.containers.iter().rev().find_map(|c| c.strip_prefix("Struct:")).unwrap_or("").to_string();
        self.out.push(NamedParam { name, shape, require_grad, owner });
    }
}

/// Every float parameter of `module` (whose paths sit under `prefix`) by original name, in visit order.
pub fn list<M: Module>(module: &M, prefix: &str) -> Vec<NamedParam> {
    let mut l = Lister { walk: Walk::default(), prefix: prefix.to_string(), out: vec![] };
    module.visit(&mut l);
    l.out
}

struct Grad<'a> {
    walk: Walk,
    prefix: String,
    train: &'a dyn Fn(&str) -> bool,
}

impl ModuleMapper for Grad<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.walk.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.walk.exit();
    }
    fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (name, _) = original_name(&self.prefix, &self.walk.path, &self.walk.containers);
        // A parameter's id is its name's hash, so optimiser state saved by one process (keyed by
        // id) finds its parameters again in the next (resuming a run).
        param.id = stable_id(&name);
        param.set_require_grad((self.train)(&name))
    }
}

/// The parameter id derived from an original name (first 8 bytes of its sha256).
pub fn stable_id(name: &str) -> burn::module::ParamId {
    use sha2::Digest;
    let h = sha2::Sha256::digest(name.as_bytes());
    burn::module::ParamId::from(u64::from_le_bytes(h[..8].try_into().expect("8 bytes")))
}

/// Set `require_grad` on every float parameter: true exactly where `train(original name)`; every
/// parameter's id becomes [`stable_id`] of its name.
/// On a plain device the setting takes effect with `Module::train`.
pub fn set_trainable<M: Module>(module: M, prefix: &str, train: &dyn Fn(&str) -> bool) -> M {
    let mut g = Grad { walk: Walk::default(), prefix: prefix.to_string(), train };
    module.map(&mut g)
}

/// What [`Collector`] reads from each parameter.
enum What<'a> {
    /// The values of the parameters named in the set.
    Values(&'a BTreeSet<String>),
    /// The gradient of every parameter that has one.
    Grads(&'a burn::tensor::Gradients),
}

struct Collector<'a> {
    walk: Walk,
    prefix: String,
    what: What<'a>,
    out: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl ModuleVisitor for Collector<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.walk.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.walk.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let (name, transposed) = original_name(&self.prefix, &self.walk.path, &self.walk.containers);
        let t = match self.what {
            What::Values(want) if want.contains(&name) => param.val(),
            What::Grads(grads) => match param.val().grad(grads) {
                Some(g) => g,
                None => return,
            },
            What::Values(_) => return,
        };
        let shape = t.dims().to_vec();
        let data = t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 tensor");
        let (shape, data) = if transposed && shape.len() == 2 { transpose(&shape, data) } else { (shape, data) };
        self.out.push((name, shape, data));
    }
}

fn collect<M: Module>(module: &M, prefix: &str, what: What<'_>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut c = Collector { walk: Walk::default(), prefix: prefix.to_string(), what, out: vec![] };
    module.visit(&mut c);
    c.out
}

/// The values (torch layout, row-major f32) of the named parameters of `module`.
pub fn values<M: Module>(module: &M, prefix: &str, names: &BTreeSet<String>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    collect(module, prefix, What::Values(names))
}

/// The gradient of every parameter that has one, by original name, in torch layout.
pub fn grads<M: Module>(module: &M, prefix: &str, grads: &burn::tensor::Gradients) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    collect(module, prefix, What::Grads(grads))
}

fn transpose(shape: &[usize], data: Vec<f32>) -> (Vec<usize>, Vec<f32>) {
    let (r, c) = (shape[0], shape[1]);
    let mut tr = vec![0f32; data.len()];
    for i in 0..r {
        for j in 0..c {
            tr[j * r + i] = data[i * c + j];
        }
    }
    (vec![c, r], tr)
}


/// Comma-separated globs over parameter names: `*` matches any run of characters (dots included),
/// `?` one character.
pub struct Globs {
    pub text: Vec<String>,
    res: Vec<Regex>,
}

impl Globs {
    pub fn parse(args: &[String]) -> Result<Self> {
        let text: Vec<String> =
            args.iter().flat_map(|a| a.split(',')).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if text.is_empty() {
            return Err(TrainError::Usage("at least one parameter glob is needed".into()));
        }
        let res = text
            .iter()
            .map(|g| {
                let mut re = String::from("^");
                for c in g.chars() {
                    match c {
                        '*' => re.push_str(".*"),
                        '?' => re.push('.'),
                        c => re.push_str(&regex::escape(&c.to_string())),
                    }
                }
                re.push('$');
                Regex::new(&re).map_err(|e| TrainError::Usage(format!("bad glob `{g}`: {e}")))
            })
            .collect::<Result<_>>()?;
        Ok(Self { text, res })
    }

    pub fn matches(&self, name: &str) -> bool {
        self.res.iter().any(|r| r.is_match(name))
    }

    /// Check every glob matches at least one of `names`; otherwise name the glob and the closest names.
    pub fn check_each_matches(&self, names: &[String]) -> Result<()> {
        for (g, r) in self.text.iter().zip(&self.res) {
            if !names.iter().any(|n| r.is_match(n)) {
                let stem: String = g.chars().filter(|c| *c != '*' && *c != '?').collect();
                let nearest = sam3lab_util::nearest_names(&stem, names.iter().map(String::as_str), 4);
                return Err(TrainError::Usage(format!(
                    "parameter glob `{g}` matches no parameter; nearest names: {}",
                    nearest.join(", ")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};

    #[derive(Module, Debug)]
    struct Inner {
        layers: Vec<Linear>,
        norm: LayerNorm,
    }

    #[derive(Module, Debug)]
    struct Outer {
        head: Inner,
        token: Param<Tensor<2>>,
    }

    fn outer(dev: &Device) -> Outer {
        Outer {
            head: Inner {
                layers: vec![LinearConfig::new(3, 2).init(dev), LinearConfig::new(2, 1).init(dev)],
                norm: LayerNormConfig::new(3).init(dev),
            },
            token: Param::from_tensor(Tensor::zeros([1, 3], dev)),
        }
    }

    #[test]
    fn names_follow_torch() {
        let dev = Device::flex();
        let names: Vec<(String, Vec<usize>)> = list(&outer(&dev), "m.").into_iter().map(|p| (p.name, p.shape)).collect();
        let want = [
            ("m.head.layers.0.weight", vec![2, 3]),
            ("m.head.layers.0.bias", vec![2]),
            ("m.head.layers.1.weight", vec![1, 2]),
            ("m.head.layers.1.bias", vec![1]),
            ("m.head.norm.weight", vec![3]),
            ("m.head.norm.bias", vec![3]),
            ("m.token", vec![1, 3]),
        ];
        assert_eq!(names, want.iter().map(|(n, s)| (n.to_string(), s.clone())).collect::<Vec<_>>());
    }

    #[test]
    fn values_come_back_in_torch_layout() {
        let dev = Device::flex();
        let o = outer(&dev);
        let w = o.head.layers[0].weight.val(); // burn [in=3, out=2]
        let burn_vals = w.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let want: BTreeSet<String> = ["m.head.layers.0.weight".to_string()].into();
        let v = values(&o, "m.", &want);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].1, vec![2, 3]);
        for i in 0..3 {
            for j in 0..2 {
                assert_eq!(v[0].2[j * 3 + i], burn_vals[i * 2 + j]);
            }
        }
    }

    #[test]
    fn globs_select_and_explain() {
        let g = Globs::parse(&["m.head.*".into(), "m.tok?n".into()]).unwrap();
        assert!(g.matches("m.head.layers.1.bias") && g.matches("m.token") && !g.matches("m.headx"));
        let names = vec!["m.head.norm.weight".to_string(), "m.token".to_string()];
        let e = Globs::parse(&["m.tokn*".into()]).unwrap().check_each_matches(&names).unwrap_err().to_string();
        assert!(e.contains("m.tokn*") && e.contains("m.token"), "{e}");
    }

    #[test]
    fn trainable_flags_follow_names() {
        let dev = Device::flex().autodiff();
        let o = set_trainable(outer(&dev), "m.", &|n| n.starts_with("m.head.norm"));
        let flags: Vec<(String, bool)> = list(&o, "m.").into_iter().map(|p| (p.name, p.require_grad)).collect();
        for (n, f) in flags {
            assert_eq!(f, n.starts_with("m.head.norm"), "{n}");
        }
    }
}
