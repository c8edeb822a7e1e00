//! Quantized matrix kernels of our own, for the 4-bit formats where candle's are slow:
//! Q4_1 (SmolLM2's file) has only a scalar kernel in candle, on x86 and in wasm; and candle's
//! wasm q4_0 kernel converts two f16 scales in software for every block of 32 weights.
//!
//! [`relay`] turns a q4_0 or Q4_1 matrix, as read from a GGUF file, into a [`q4::Q4Matrix`]
//! (the same weights, laid out for these kernels) that candle's `QMatMul` then runs; every
//! other dtype keeps candle's kernels (q8_0 has good ones). `Weights::from_gguf_with_metadata`
//! relays each tensor as it reads it, so a model never holds both layouts at once. The
//! dot product is one generic function per instruction set: AVX2 natively, simd128 in wasm,
//! and a scalar one that defines the result and runs elsewhere.

mod q4;
mod q8;

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod dot_avx2;
// Always built: the SIMD kernels are tested against it.
#[cfg_attr(not(test), allow(dead_code))]
mod dot_scalar;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod dot_simd128;
#[cfg(test)]
mod tests;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};

use crate::error::Result;
use q8::ActRow;

/// Values per quantization block, in every format here.
const BLOCK: usize = 32;

/// One weight row's blocks, as the kernels read them.
pub(crate) struct WeightRow<'a> {
    pub nibbles: &'a [[u8; 16]],
    pub scales: &'a [f32],
    /// Empty for q4_0.
    pub mins: &'a [f32],
}

/// The `W × R` dot products of `W` weight rows with `R` activation rows (all of the same
/// length): a tile, so that each block is loaded and unpacked once for several products and
/// the accumulators form independent dependency chains.
#[inline]
fn dot<const W: usize, const R: usize>(w: &[WeightRow; W], x: &[ActRow; R]) -> [[f32; R]; W] {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    use dot_avx2 as kernel;
    #[cfg(not(any(
        all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ),
        all(target_arch = "wasm32", target_feature = "simd128")
    )))]
    use dot_scalar as kernel;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    use dot_simd128 as kernel;
    // Rows of one matrix are all q4_0 or all Q4_1.
    if w[0].mins.is_empty() {
        kernel::dot::<W, R, false>(w, x)
    } else {
        kernel::dot::<W, R, true>(w, x)
    }
}

/// `tensor` in our layout if it is a 2-D q4_0 or Q4_1 matrix (candle's QTensor of it is
/// dropped), otherwise `tensor` itself. Call it once, on tensors as read from a file: a
/// relaid tensor reports its GGUF dtype but no longer holds GGUF blocks.
pub fn relay(tensor: QTensor) -> Result<QTensor> {
    let (GgmlDType::Q4_0 | GgmlDType::Q4_1) = tensor.dtype() else {
        return Ok(tensor);
    };
    let Ok((_, columns)) = tensor.shape().dims2() else {
        return Ok(tensor);
    };
    let matrix = q4::Q4Matrix::from_ggml(tensor.dtype(), &tensor.data()?, columns);
    match matrix {
        Some(matrix) => Ok(QTensor::new(
            QStorage::Cpu(Box::new(matrix)),
            tensor.shape().clone(),
        )?),
        None => Ok(tensor),
    }
}
