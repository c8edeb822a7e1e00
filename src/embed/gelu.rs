//! GELU with the exact (erf) formulation BERT was trained with. candle's `gelu_erf` calls
//! libm's scalar `erff` per element (about 9% of the builder's time, and a platform's libm
//! is not bit-identical to another's); this rational approximation (the one Eigen and XLA
//! use for f32 erf) is accurate to a few ulp and has no branches, so LLVM turns it into SIMD
//! code. Products and sums are written separately, never `mul_add`: wasm has no fused
//! multiply-add, so there `mul_add` is a call to a software `fmaf`, and an unfused Horner
//! step gives the same bits on every target.

/// erf(x) for f32: an odd rational function of x on [-4, 4], where f32 erf is not yet ±1.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    x * p / q
}

/// GELU(x) = x/2 · (1 + erf(x/√2)).
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU of every element, in place.
pub fn gelu_erf_in_place(x: &mut [f32]) {
    for v in x {
        *v = gelu(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    #[test]
    fn matches_candle_reference_gelu() {
        let xs: Vec<f32> = (-800..=800).map(|i| i as f32 / 100.0).collect();
        let t = Tensor::new(xs.as_slice(), &candle_core::Device::Cpu).expect("tensor");
        let reference = t.gelu_erf().expect("candle").to_vec1::<f32>().expect("vec");
        let mut ours = xs.clone();
        gelu_erf_in_place(&mut ours);
        for ((x, a), b) in xs.iter().zip(ours).zip(reference) {
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "gelu({x}) = {a}, candle says {b}"
            );
        }
    }
}
