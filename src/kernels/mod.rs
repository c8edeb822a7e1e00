//! Quantized matrix kernels of our own, for the formats where candle's are slow or missing:
//! Q4_1 (SmolLM2's file) has only a scalar kernel in candle, on x86 and in wasm; candle's
//! wasm kernels convert f16 scales in software for every block of 32 weights; and its
//! matmul reads each weight block once per activation row.
//!
//! [`qmatmul`] turns a q4_0, Q4_1 or q8_0 matrix, as read from a GGUF file, into a
//! [`Matmul`] over one of our layouts ([`q4::Q4Matrix`], [`q8::Q8Matrix`]: the same weights,
//! f32 scales), run by our own candle op ([`matrix::Relaid`]); any other dtype keeps
//! candle's `QMatMul`. The llama loader takes each tensor out of its `Weights` before
//! converting it, so SmolLM2 never holds both layouts of all its matrices. Each dot product
//! is one generic function per instruction set, over a tile of weight rows × activation
//! rows: AVX2 natively, simd128 in wasm, and a scalar one that defines the result and runs
//! elsewhere.

mod activations;
mod matrix;
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

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
use dot_avx2 as backend;
#[cfg(not(any(
    all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ),
    all(target_arch = "wasm32", target_feature = "simd128")
)))]
use dot_scalar as backend;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use dot_simd128 as backend;

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};

use crate::error::Result;
use matrix::Relaid;
use q4::Q4Matrix;
use q8::Q8Matrix;

/// Values per quantization block, in every format here.
const BLOCK: usize = 32;

/// A weight matrix `W` ([out, in]) for `x @ Wᵀ`, whose rows can also be looked up (an
/// embedding table): on our kernels for q4_0, Q4_1 and q8_0, on candle's otherwise.
#[derive(Clone)]
pub struct Matmul(Kind);

#[derive(Clone)]
enum Kind {
    Candle(QMatMul),
    Q4(Arc<Relaid<Q4Matrix>>),
    Q8(Arc<Relaid<Q8Matrix>>),
}

/// `weights` as a [`Matmul`]. The GGUF blocks are converted, not kept: drop the tensor
/// afterwards (or hand over its only handle) so a model does not hold both.
pub fn qmatmul(weights: Arc<QTensor>) -> Result<Matmul> {
    let columns = match weights.shape().dims2() {
        Ok((_, columns)) => columns,
        Err(_) => return Ok(Matmul(Kind::Candle(QMatMul::from_arc(weights)?))),
    };
    let kind = match weights.dtype() {
        dtype @ (GgmlDType::Q4_0 | GgmlDType::Q4_1) => {
            Q4Matrix::from_ggml(dtype, &weights.data()?, columns)
                .map(|m| Kind::Q4(Arc::new(Relaid(m))))
        }
        GgmlDType::Q8_0 => {
            Q8Matrix::from_ggml(&weights.data()?, columns).map(|m| Kind::Q8(Arc::new(Relaid(m))))
        }
        _ => None,
    };
    match kind {
        Some(kind) => Ok(Matmul(kind)),
        None => Ok(Matmul(Kind::Candle(QMatMul::from_arc(weights)?))),
    }
}

impl Matmul {
    /// Rows `ids` (any shape, u32) of the matrix as floats: shape `ids` × columns.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        let (rows, columns) = match &self.0 {
            Kind::Candle(m) => return Ok(m.embedding(ids)?),
            Kind::Q4(m) => (
                m.rows_of(&ids.flatten_all()?.to_vec1::<u32>()?)?,
                m.dims().1,
            ),
            Kind::Q8(m) => (
                m.rows_of(&ids.flatten_all()?.to_vec1::<u32>()?)?,
                m.dims().1,
            ),
        };
        let mut shape = ids.dims().to_vec();
        shape.push(columns);
        Ok(Tensor::from_vec(rows, shape, ids.device())?)
    }

    /// `x @ Wᵀ` for `x` given as rows of the matrix's width, row-major: on our kernels
    /// straight from the slice (no tensor to build and read back, which cost MiniLM's small
    /// matmuls ~5% of their time in wasm); candle's formats go through a tensor.
    pub fn forward_rows(&self, x: &[f32], columns: usize) -> Result<Vec<f32>> {
        match &self.0 {
            Kind::Candle(m) => {
                let rows = x.len() / columns.max(1);
                let x = Tensor::from_slice(x, (rows, columns), &candle_core::Device::Cpu)?;
                Ok(m.forward(&x)?.flatten_all()?.to_vec1::<f32>()?)
            }
            Kind::Q4(m) => Ok(m.matmul_rows(x, columns)?),
            Kind::Q8(m) => Ok(m.matmul_rows(x, columns)?),
        }
    }

    /// Whether our kernels run it (tests and benchmarks).
    pub fn is_ours(&self) -> bool {
        !matches!(self.0, Kind::Candle(_))
    }
}

impl Module for Matmul {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.0 {
            Kind::Candle(m) => m.forward(x),
            Kind::Q4(m) => x.contiguous()?.apply_op1_no_bwd(m.as_ref()),
            Kind::Q8(m) => x.contiguous()?.apply_op1_no_bwd(m.as_ref()),
        }
    }
}
