//! Quantized matrix kernels of our own, for the formats where candle's are slow or missing:
//! Q4_1 (SmolLM2's file) has only a scalar kernel in candle, on x86 and in wasm; candle's
//! wasm kernels convert f16 scales in software for every block of 32 weights; and its
//! matmul reads each weight block once per activation row.
//!
//! [`qmatmul`] turns a q4_0, Q4_1 or q8_0 matrix, as read from a GGUF file, into a
//! [`Matmul`] over one of our layouts ([`q4::Q4Matrix`], [`q8::Q8Matrix`]: the same weights,
//! f32 scales), run by our own candle op ([`matrix::Relaid`]); any other dtype keeps
//! candle's `QMatMul`. The llama loader reads each matrix from the file straight into our
//! layout ([`read_qmatmul`]), so SmolLM2 never holds a second copy of any of them. Each dot product
//! is one generic function per instruction set, over a tile of weight rows × activation
//! rows: AVX2 natively, simd128 in wasm, and a scalar one that defines the result and runs
//! elsewhere.

mod activations;
pub(crate) mod attention;
mod dense;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod dense_avx2;
mod matrix;
mod q4;
mod q8;

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod dot_avx2;
// Always built: it defines the results, the SIMD kernels are tested against it, and
// `MARQUEE_PORTABLE=1` runs it natively.
mod dot_scalar;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod dot_simd128;
#[cfg(test)]
mod tests;

// The build's SIMD kernel whatever `MARQUEE_PORTABLE` says, for the tests that hold it to the
// portable definition (the portable one itself where no SIMD kernel is compiled in).
#[cfg(all(
    test,
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
use dot_avx2 as compiled_simd;
#[cfg(all(
    test,
    not(any(
        all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ),
        all(target_arch = "wasm32", target_feature = "simd128")
    ))
))]
use dot_scalar as compiled_simd;
#[cfg(all(test, target_arch = "wasm32", target_feature = "simd128"))]
use dot_simd128 as compiled_simd;

/// Whether the SIMD kernels run. Natively they are compiled in for the build's instruction
/// set (AVX2 + FMA, see `.cargo/config.toml`) and used unless the environment variable
/// `MARQUEE_PORTABLE` is set to anything but `0` or empty, which runs the portable code
/// instead: the test command runs the whole suite both ways, so a result that holds only
/// on one path is caught on any machine. Read once per process. In wasm the choice is
/// made at compile time (`simd128`).
pub fn simd_enabled() -> bool {
    #[cfg(target_arch = "wasm32")]
    return cfg!(target_feature = "simd128");
    #[cfg(not(target_arch = "wasm32"))]
    {
        static SIMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *SIMD.get_or_init(|| {
            let portable =
                std::env::var("MARQUEE_PORTABLE").is_ok_and(|v| !v.is_empty() && v != "0");
            cfg!(all(
                target_arch = "x86_64",
                target_feature = "avx2",
                target_feature = "fma"
            )) && !portable
        })
    }
}

/// Integer dot product of two int8 vectors (index search), over the shorter one's length:
/// exact, so every kernel gives the same number.
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    if simd_enabled() {
        return dot_avx2::dot_i8(&a[..n], &b[..n]);
    }
    dot_scalar::dot_i8(&a[..n], &b[..n])
}

/// Dot product of an f32 query with int8 values (index search; the caller applies the
/// scale), over the shorter one's length: the same bits from every kernel
/// (`dot_scalar::dot_f32_i8` defines them), so a score and a ranking are the same natively
/// and in wasm.
pub fn dot_f32_i8(query: &[f32], values: &[i8]) -> f32 {
    let n = query.len().min(values.len());
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    if simd_enabled() {
        return dot_avx2::dot_f32_i8(&query[..n], &values[..n]);
    }
    dot_scalar::dot_f32_i8(&query[..n], &values[..n])
}

/// The tile kernels the matrices call: the build's SIMD kernel, or the portable definition
/// where none is compiled in or [`simd_enabled`] says no.
mod backend {
    use super::activations::ActRow;
    use super::q4::WeightRow;
    use super::q8::{Q8PanelBlock, PANEL};
    use super::BLOCK;

    #[inline(always)]
    pub(crate) fn dot_q4<const W: usize, const R: usize, const HAS_MIN: bool>(
        w: &[WeightRow; W],
        x: &[ActRow; R],
    ) -> [[f32; R]; W] {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        if super::simd_enabled() {
            return super::dot_avx2::dot_q4::<W, R, HAS_MIN>(w, x);
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return super::dot_simd128::dot_q4::<W, R, HAS_MIN>(w, x);
        #[allow(unreachable_code)]
        super::dot_scalar::dot_q4::<W, R, HAS_MIN>(w, x)
    }

    /// Activations are quantized in wasm's SIMD (LLVM leaves that loop scalar there, where
    /// it was a tenth of MiniLM's matmul time); natively the portable loop vectorizes.
    #[inline(always)]
    pub(crate) fn quantize_block(
        block: &[f32; BLOCK],
        q: &mut [i8; BLOCK],
        wide: &mut [i16; BLOCK],
    ) -> (f32, i32) {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return super::dot_simd128::quantize_block(block, q, wide);
        #[allow(unreachable_code)]
        super::dot_scalar::quantize_block(block, q, wide)
    }

    #[inline(always)]
    pub(crate) fn dot_q8<const R: usize>(
        panel: &[Q8PanelBlock],
        x: &[ActRow; R],
    ) -> [[f32; PANEL]; R] {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        if super::simd_enabled() {
            return super::dot_avx2::dot_q8::<R>(panel, x);
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        return super::dot_simd128::dot_q8::<R>(panel, x);
        #[allow(unreachable_code)]
        super::dot_scalar::dot_q8::<R>(panel, x)
    }
}

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Tensor};

use crate::error::Result;
use dense::DenseMatrix;
use matrix::{BlockRows, FromGgmlBlocks, Relaid};
use q4::Q4Matrix;
use q8::Q8Matrix;

/// Values per quantization block, in every format here.
const BLOCK: usize = 32;

/// A weight matrix `W` ([out, in]) for `x @ Wᵀ`, whose rows can also be looked up (an
/// embedding table): on our kernels for q4_0, Q4_1 and q8_0, on gemm for f32, on candle's
/// otherwise.
#[derive(Clone)]
pub struct Matmul(Kind);

#[derive(Clone)]
enum Kind {
    Candle(QMatMul),
    Dense(Arc<DenseMatrix>),
    Q4(Arc<Relaid<Q4Matrix>>),
    Q8(Arc<Relaid<Q8Matrix>>),
}

/// How many of rayon's threads a matmul may split into: one when called from one of them
/// (a caller that shares its work across the pool, as the builder's batches do, has already
/// filled it, and splitting again only adds waiting) and always in wasm; the pool's size
/// otherwise.
pub(crate) fn pool_threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    if rayon::current_thread_index().is_none() {
        return rayon::current_num_threads();
    }
    1
}

/// `weights` as a [`Matmul`]. The GGUF blocks are converted, not kept: drop the tensor
/// afterwards (or hand over its only handle) so a model does not hold both.
pub fn qmatmul(weights: Arc<QTensor>) -> Result<Matmul> {
    let bytes = weights.data()?;
    let converted = read_qmatmul(weights.dtype(), weights.shape().dims(), &mut &bytes[..])
        .map_err(|e| crate::Error::ModelFile(format!("a quantized matrix's blocks: {e}")))?;
    match converted {
        Some(matmul) => Ok(matmul),
        None => Ok(Matmul(Kind::Candle(QMatMul::from_arc(weights)?))),
    }
}

/// A q4_0, Q4_1, q8_0 or f32 matrix of `dims` (rows, columns) read from `reader` straight
/// into our layout, a piece at a time, so neither the file's bytes nor candle's copy of its
/// blocks is ever held whole beside ours (the token embedding alone is 30 MB); `None` for
/// any other dtype or shape, which [`qmatmul`] takes through candle.
pub fn read_qmatmul(
    dtype: GgmlDType,
    dims: &[usize],
    reader: &mut impl std::io::Read,
) -> std::io::Result<Option<Matmul>> {
    let &[rows, columns] = dims else {
        return Ok(None);
    };
    let blocks = rows * columns / dtype.block_size();
    Ok(match dtype {
        GgmlDType::Q4_0 | GgmlDType::Q4_1 => Q4Matrix::read(dtype, blocks, columns, reader)?
            .map(|m| Matmul(Kind::Q4(Arc::new(Relaid(m))))),
        GgmlDType::Q8_0 => Q8Matrix::read(dtype, blocks, columns, reader)?
            .map(|m| Matmul(Kind::Q8(Arc::new(Relaid(m))))),
        GgmlDType::F32 => DenseMatrix::read(dtype, blocks, columns, reader)?
            .map(|m| Matmul(Kind::Dense(Arc::new(m)))),
        _ => None,
    })
}

impl Matmul {
    /// Rows `ids` (any shape, u32) of the matrix as floats: shape `ids` × columns.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        let wanted = || -> candle_core::Result<Vec<u32>> { ids.flatten_all()?.to_vec1() };
        let (rows, columns) = match &self.0 {
            Kind::Candle(m) => return Ok(m.embedding(ids)?),
            Kind::Dense(m) => (m.rows_of(&wanted()?)?, m.dims().1),
            Kind::Q4(m) => (m.rows_of(&wanted()?)?, m.dims().1),
            Kind::Q8(m) => (m.rows_of(&wanted()?)?, m.dims().1),
        };
        let mut shape = ids.dims().to_vec();
        shape.push(columns);
        Ok(Tensor::from_vec(rows, shape, ids.device())?)
    }

    /// `x @ Wᵀ` for `x` given as rows of the matrix's width, row-major: on our kernels and
    /// gemm straight from the slice (no tensor to build and read back, which cost MiniLM's
    /// small matmuls ~5% of their time in wasm); candle's formats go through a tensor.
    pub fn forward_rows(&self, x: &[f32], columns: usize) -> Result<Vec<f32>> {
        match &self.0 {
            Kind::Candle(m) => {
                let rows = x.len() / columns.max(1);
                let x = Tensor::from_slice(x, (rows, columns), &candle_core::Device::Cpu)?;
                Ok(m.forward(&x)?.flatten_all()?.to_vec1::<f32>()?)
            }
            Kind::Dense(m) => Ok(m.matmul_rows(x, columns)?),
            Kind::Q4(m) => Ok(m.matmul_rows(x, columns)?),
            Kind::Q8(m) => Ok(m.matmul_rows(x, columns)?),
        }
    }

    /// `x @ Wᵀ + bias`, `bias` added to every row. On f32 matrices gemm starts from the
    /// bias instead of from zeros (one pass over the output fewer, and no zeroing of it);
    /// on the others the bias is added after the product, in the order the int8 path has
    /// always had (wasm is held to its bits).
    pub fn forward_rows_biased(&self, x: &[f32], columns: usize, bias: &[f32]) -> Result<Vec<f32>> {
        let outputs = self.dims()?.0;
        if bias.len() != outputs {
            return Err(crate::Error::InvalidArgument(format!(
                "a bias of {} values for a matrix of {outputs} outputs",
                bias.len()
            )));
        }
        if let Kind::Dense(m) = &self.0 {
            return Ok(m.matmul_rows_onto(x, columns, bias)?);
        }
        let mut y = self.forward_rows(x, columns)?;
        for row in y.chunks_exact_mut(outputs.max(1)) {
            for (v, &b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
        Ok(y)
    }

    /// (out, in): the matrix's rows and columns.
    pub fn dims(&self) -> Result<(usize, usize)> {
        match &self.0 {
            Kind::Candle(QMatMul::QTensor(t)) => Ok(t.shape().dims2()?),
            Kind::Candle(QMatMul::Tensor(t) | QMatMul::TensorF16(t)) => Ok(t.dims2()?),
            Kind::Dense(m) => Ok(m.dims()),
            Kind::Q4(m) => Ok(m.dims()),
            Kind::Q8(m) => Ok(m.dims()),
        }
    }

    /// The matrix as f32 values (out × in) and the GGUF format it is stored in: to merge an
    /// update into it and store it again.
    pub fn dequantize(&self) -> Result<(Tensor, GgmlDType)> {
        let device = &candle_core::Device::Cpu;
        let all = |rows: usize| (0..rows as u32).collect::<Vec<_>>();
        match &self.0 {
            Kind::Candle(QMatMul::QTensor(t)) => Ok((t.dequantize(device)?, t.dtype())),
            Kind::Candle(QMatMul::Tensor(t)) => Ok((t.clone(), GgmlDType::F32)),
            Kind::Candle(QMatMul::TensorF16(t)) => Ok((t.clone(), GgmlDType::F16)),
            Kind::Dense(m) => Ok((
                Tensor::from_slice(m.values(), m.dims(), device)?,
                GgmlDType::F32,
            )),
            Kind::Q4(m) => {
                let (rows, columns) = m.dims();
                let values = Tensor::from_vec(m.rows_of(&all(rows))?, (rows, columns), device)?;
                Ok((values, m.0.dtype()))
            }
            Kind::Q8(m) => {
                let (rows, columns) = m.dims();
                let values = Tensor::from_vec(m.rows_of(&all(rows))?, (rows, columns), device)?;
                Ok((values, m.0.dtype()))
            }
        }
    }

    /// Whether our quantized kernels run it, which compute each activation row on its
    /// own (so a row's result does not depend on how many rows came with it; gemm's blocking
    /// does).
    pub fn is_ours(&self) -> bool {
        matches!(self.0, Kind::Q4(_) | Kind::Q8(_))
    }
}

impl Module for Matmul {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.0 {
            Kind::Candle(m) => m.forward(x),
            Kind::Dense(m) => {
                let mut dims = x.dims().to_vec();
                let (n, k) = m.dims();
                let y = m.matmul_rows(&x.flatten_all()?.to_vec1::<f32>()?, k)?;
                if let Some(last) = dims.last_mut() {
                    *last = n;
                }
                Tensor::from_vec(y, dims, x.device())
            }
            Kind::Q4(m) => x.contiguous()?.apply_op1_no_bwd(m.as_ref()),
            Kind::Q8(m) => x.contiguous()?.apply_op1_no_bwd(m.as_ref()),
        }
    }
}
