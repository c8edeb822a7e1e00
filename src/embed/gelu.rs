//! GELU with the exact (erf) formulation BERT was trained with, as a candle op whose inner
//! loop vectorizes. candle's `gelu_erf` calls libm's scalar `erff` per element, which took
//! ~9% of the builder's time; this rational approximation (the one Eigen and XLA use for
//! f32 erf) is accurate to a few ulp and has no branches, so LLVM turns it into SIMD code.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Shape, Tensor};

/// erf(x) for f32: an odd rational function of x on [-4, 4], where f32 erf is not yet ±1.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2.mul_add(-2.726_142_3e-10, 2.770_681_4e-8);
    p = x2.mul_add(p, -2.101_024e-6);
    p = x2.mul_add(p, -5.692_506_4e-5);
    p = x2.mul_add(p, -7.349_906_3e-4);
    p = x2.mul_add(p, -2.954_6e-3);
    p = x2.mul_add(p, -1.609_603_3e-2);
    let mut q = x2.mul_add(-1.456_607_2e-5, -2.133_740_6e-4);
    q = x2.mul_add(q, -1.682_827e-3);
    q = x2.mul_add(q, -7.373_329e-3);
    q = x2.mul_add(q, -1.426_474e-2);
    x * p / q
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "marquee-gelu-erf"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            bail!("gelu_erf expects f32, got {:?}", storage.dtype())
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("gelu_erf expects a contiguous tensor")
        };
        let out: Vec<f32> = data[start..end].iter().map(|&x| gelu(x)).collect();
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// GELU(x) = x/2 · (1 + erf(x/√2)), element-wise.
pub fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&GeluErf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_candle_reference_gelu() {
        let xs: Vec<f32> = (-800..=800).map(|i| i as f32 / 100.0).collect();
        let t = Tensor::new(xs.as_slice(), &candle_core::Device::Cpu).expect("tensor");
        let ours = gelu_erf(&t).expect("ours").to_vec1::<f32>().expect("vec");
        let reference = t.gelu_erf().expect("candle").to_vec1::<f32>().expect("vec");
        for ((x, a), b) in xs.iter().zip(ours).zip(reference) {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "gelu({x}) = {a}, candle says {b}"
            );
        }
    }
}
