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

    pub fn detach(self) -> Self {
        Self { flat: self.flat.detach(), shape: self.shape }
    }
}
