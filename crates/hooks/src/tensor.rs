use burn::prelude::*;
use burn::tensor::TensorData;

use crate::HookError;

/// A float tensor with its rank erased, so one cache and one closure type serve every hook point.
///
/// Stored flat with its shape; converting back to `Tensor<D>` is a reshape (no copy for contiguous data).
#[derive(Clone, Debug)]
pub struct DynTensor {
    flat: Tensor<1>,
    shape: Vec<usize>,
}

impl DynTensor {
    pub fn new<const D: usize>(t: Tensor<D>) -> Self {
        let shape = t.dims().to_vec();
        let n = shape.iter().product::<usize>();
        Self { flat: t.reshape([n]), shape }
    }

    /// Build from raw f32 values (row-major) on `device`.
    pub fn from_vec(values: Vec<f32>, shape: Vec<usize>, device: &Device) -> Self {
        let n = values.len();
        assert_eq!(n, shape.iter().product::<usize>(), "DynTensor::from_vec: value count vs shape");
        let flat = Tensor::<1>::from_data(TensorData::new(values, [n]), device);
        Self { flat, shape }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Back to a ranked tensor; errors (naming `name`) when the rank differs.
    pub fn to_rank<const D: usize>(&self, name: &str) -> Result<Tensor<D>, HookError> {
        if self.shape.len() != D {
            return Err(HookError::Shape {
                name: name.to_string(),
                what: format!("a rank-{} tensor used where rank {D} is needed", self.shape.len()),
                expected: vec![],
                found: self.shape.clone(),
            });
        }
        let mut dims = [0usize; D];
        dims.copy_from_slice(&self.shape);
        Ok(self.flat.clone().reshape(dims))
    }

    /// An element-wise function of the values, shape kept: handy inside [`crate::HookSpec::map`],
    /// e.g. `|_, t| t.map_values(|v| v.clamp_min(0.0))`. Panics if `f` changes the element count.
    pub fn map_values(&self, f: impl FnOnce(Tensor<1>) -> Tensor<1>) -> Self {
        let flat = f(self.flat.clone());
        assert_eq!(flat.dims()[0], self.numel(), "DynTensor::map_values: the function changed the element count");
        Self { flat, shape: self.shape.clone() }
    }

    /// The flat view (row-major).
    pub fn flat(&self) -> Tensor<1> {
        self.flat.clone()
    }

    pub fn to_vec(&self) -> Vec<f32> {
        self.flat.to_data().convert::<f32>().try_to_vec::<f32>().expect("f32 data")
    }

    pub fn device(&self) -> Device {
        self.flat.device()
    }

    /// A zero tensor of `shape` on `device` whose flat storage is an autodiff leaf that requires
    /// grad (so [`DynTensor::flat`] is the leaf itself); `device` must be an autodiff device.
    pub(crate) fn zero_leaf(shape: &[usize], device: &Device) -> Self {
        let n = shape.iter().product::<usize>();
        Self { flat: Tensor::<1>::zeros([n], device).require_grad(), shape: shape.to_vec() }
    }

    /// The gradient `grads` holds for this tensor's flat storage (a leaf from
    /// [`DynTensor::zero_leaf`]), with this tensor's shape.
    pub(crate) fn grad(&self, grads: &burn::tensor::Gradients) -> Option<Self> {
        self.flat.grad(grads).map(|flat| Self { flat, shape: self.shape.clone() })
    }

    pub fn detach(self) -> Self {
        Self { flat: self.flat.detach(), shape: self.shape }
    }
}

/// Cosine similarity along the last axis, kept with size 1: `(…, d)` → `(…, 1)`, like torch's
/// `F.cosine_similarity(a, b, dim=-1)` with the axis kept. A zero vector gives 0 (the product of the
/// norms is clamped at 1e-12). For two batch-1 captures of shape `(1, d)`,
/// `cosine(a, b).into_scalar::<f32>()` is their cosine; for `(pairs, d)`, `.mean()` averages over pairs.
pub fn cosine<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    let dot = (a.clone() * b.clone()).sum_dim(D - 1);
    let norms = (a.clone() * a).sum_dim(D - 1).sqrt() * (b.clone() * b).sum_dim(D - 1).sqrt();
    dot / norms.clamp_min(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_along_the_last_axis() {
        let dev = Device::flex();
        let a = Tensor::<2>::from_data(TensorData::new(vec![1f32, 0., 2., 2., 0., 0.], [3, 2]), &dev);
        let b = Tensor::<2>::from_data(TensorData::new(vec![3f32, 0., -1., -1., 1., 0.], [3, 2]), &dev);
        let c = cosine(a, b);
        assert_eq!(c.dims(), [3, 1]);
        let v = c.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        assert!((v[0] - 1.0).abs() < 1e-6 && (v[1] + 1.0).abs() < 1e-6 && v[2] == 0.0, "{v:?}");
    }
}
