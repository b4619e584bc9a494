//! Train-mode dropout and stochastic depth (drop-path), as the reference's `nn.Dropout`,
//! `nn.MultiheadAttention(dropout=p)` and timm's `DropPath`.
//!
//! A [`DropRate`] is the rate one module uses in one forward: the heads' train-mode forward
//! (`Sam3::ground_train`) and the trunk's train-mode forward pass the config's rates, every other
//! forward passes [`DropRate::OFF`]. Even then nothing is drawn unless the tensor lives on an autodiff
//! device (burn's `nn::Dropout` rule), so inference, evaluation and probes never change. The masks
//! come from burn's random generator (`Device::seed`), so a seeded run repeats bit for bit; with
//! `p = 0` no random number is drawn and the forward is the eval one, to the bit.

use burn::nn::DropoutConfig;
use burn::prelude::*;
use burn::tensor::Distribution;

/// A dropout / drop-path rate in one forward; `p = 0` (or a non-autodiff tensor) is the identity.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DropRate {
    pub p: f64,
}

impl DropRate {
    /// No dropout (every eval-mode forward).
    pub const OFF: DropRate = DropRate { p: 0.0 };

    pub fn new(p: f64) -> Self {
        Self { p }
    }

    /// Whether this rate changes a tensor on `device` (p > 0 and an autodiff device).
    pub fn active(self, device: &Device) -> bool {
        self.p > 0.0 && device.is_autodiff()
    }

    /// Element-wise dropout (`nn.Dropout(p)` in train mode): each element is zeroed with
    /// probability `p`, the survivors are scaled by `1/(1−p)`. burn's `nn::Dropout`.
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        if self.p <= 0.0 {
            return x;
        }
        DropoutConfig::new(self.p).init().forward(x)
    }

    /// Stochastic depth (timm `DropPath(p)` in train mode): per sample (axis 0) the whole residual
    /// branch `x` is zeroed with probability `p`, else scaled by `1/(1−p)`.
    pub fn path<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        let device = x.device();
        if !self.active(&device) {
            return x;
        }
        let keep = 1.0 - self.p;
        let dims = x.dims();
        let mut per_sample = [1usize; D];
        per_sample[0] = dims[0];
        let mask = Tensor::<D>::random(per_sample, Distribution::Bernoulli(keep), &device);
        x * mask.mul_scalar(1.0 / keep).expand(dims)
    }
}

/// The reference ViT's per-block drop-path rates: `torch.linspace(0, rate, depth)`, i.e. block `i`
/// of `depth` drops with `rate · i / (depth − 1)` (the first block never, the last with `rate`).
pub fn drop_path_schedule(rate: f64, depth: usize) -> Vec<f64> {
    match depth {
        0 => vec![],
        1 => vec![0.0],
        n => (0..n).map(|i| rate * i as f64 / (n - 1) as f64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_linspace() {
        let s = drop_path_schedule(0.1, 5);
        let want = [0.0, 0.025, 0.05, 0.075, 0.1];
        for (a, b) in s.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{s:?}");
        }
        assert_eq!(drop_path_schedule(0.1, 1), vec![0.0]);
        assert!(drop_path_schedule(0.3, 0).is_empty());
    }

    #[test]
    fn off_and_eval_devices_are_the_identity() {
        let dev = Device::flex();
        let x = Tensor::<2>::ones([4, 8], &dev);
        for d in [DropRate::OFF, DropRate::new(0.5)] {
            assert_eq!(d.apply(x.clone()).into_data(), x.clone().into_data());
            assert_eq!(d.path(x.clone()).into_data(), x.clone().into_data());
        }
        assert!(!DropRate::new(0.5).active(&dev));
        assert!(DropRate::new(0.5).active(&dev.clone().autodiff()));
        assert!(!DropRate::OFF.active(&dev.autodiff()));
    }
}
