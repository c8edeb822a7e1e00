//! f32 matrices (the reference MiniLM the builder embeds the catalogue with, GPT-2's f32
//! weights) on our AVX2 kernel (`dense_avx2.rs`) where the SIMD kernels run, on gemm
//! otherwise; both called directly rather than through a candle tensor: no tensor built
//! around the input and read back out of the result, and the threads chosen here, so that a
//! matmul run on one of rayon's workers (the builder embeds several batches at once, one per
//! thread) stays on that thread instead of splitting into the pool its caller already fills.

use candle_core::quantized::GgmlDType;
use candle_core::Result as CandleResult;

use super::matrix::FromGgmlBlocks;

/// A row-major matrix of f32 values, `columns` wide.
pub(crate) struct DenseMatrix {
    values: Vec<f32>,
    columns: usize,
    /// The values packed for the AVX2 kernel, at the first product (a table only ever read
    /// by rows, such as a token embedding, is never packed).
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    panels: std::sync::OnceLock<super::dense_avx2::Panels>,
}

/// GGML's f32 "blocks" are single little-endian values (its block size for f32 is 1), so
/// the matrix is read as our quantized layouts are, a piece at a time.
impl FromGgmlBlocks for DenseMatrix {
    fn empty(dtype: GgmlDType, blocks: usize, columns: usize) -> Option<Self> {
        (dtype == GgmlDType::F32 && columns > 0).then(|| Self {
            values: Vec::with_capacity(blocks),
            columns,
            #[cfg(all(
                target_arch = "x86_64",
                target_feature = "avx2",
                target_feature = "fma"
            ))]
            panels: std::sync::OnceLock::new(),
        })
    }

    fn block_bytes(&self) -> usize {
        4
    }

    fn push_block(&mut self, block: &[u8]) {
        self.values
            .push(f32::from_le_bytes([block[0], block[1], block[2], block[3]]));
    }
}

impl DenseMatrix {
    pub fn dims(&self) -> (usize, usize) {
        (self.values.len() / self.columns, self.columns)
    }

    /// `x` (rows of `columns` values) times the matrix transposed.
    pub fn matmul_rows(&self, x: &[f32], columns: usize) -> CandleResult<Vec<f32>> {
        let m = self.check(x, columns)?;
        let mut dst = vec![0f32; m * self.dims().0];
        self.gemm(x, m, &mut dst, false);
        Ok(dst)
    }

    /// `x · Wᵀ + bias` (`bias` one row, added to each): gemm accumulates onto the bias rows,
    /// which replace the zeros it would otherwise start from.
    pub fn matmul_rows_onto(
        &self,
        x: &[f32],
        columns: usize,
        bias: &[f32],
    ) -> CandleResult<Vec<f32>> {
        let m = self.check(x, columns)?;
        let n = self.dims().0;
        if bias.len() != n {
            candle_core::bail!("f32 matmul: a bias of {} for {n} outputs", bias.len());
        }
        let mut dst = Vec::with_capacity(m * n);
        for _ in 0..m {
            dst.extend_from_slice(bias);
        }
        self.gemm(x, m, &mut dst, true);
        Ok(dst)
    }

    /// The rows in `x`, after checking that it holds whole rows of the matrix's width.
    fn check(&self, x: &[f32], columns: usize) -> CandleResult<usize> {
        let (n, k) = self.dims();
        if columns != k || !x.len().is_multiple_of(k.max(1)) {
            candle_core::bail!(
                "f32 matmul: {} values in rows of {columns} against {n}×{k} weights",
                x.len()
            );
        }
        Ok(x.len() / k.max(1))
    }

    /// `dst = x · Wᵀ`, or `dst += x · Wᵀ` when `accumulate`; `x` is `m` checked rows and
    /// `dst` m × n.
    fn gemm(&self, x: &[f32], m: usize, dst: &mut [f32], accumulate: bool) {
        let (n, k) = self.dims();
        if m == 0 || n == 0 || k == 0 || dst.len() != m * n {
            return;
        }
        let threads = super::pool_threads();
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        if super::simd_enabled() {
            use super::dense_avx2::{Panels, MC};
            use rayon::prelude::*;
            let panels = self.panels.get_or_init(|| Panels::pack(&self.values, n, k));
            if !accumulate {
                dst.fill(0.0);
            }
            if threads > 1 {
                x.par_chunks(MC * k)
                    .zip(dst.par_chunks_mut(MC * n))
                    .for_each(|(x, dst)| panels.multiply_block(x, dst));
            } else {
                // On one of rayon's workers (or a one-thread pool): stay on this thread.
                x.chunks(MC * k)
                    .zip(dst.chunks_mut(MC * n))
                    .for_each(|(x, dst)| panels.multiply_block(x, dst));
            }
            return;
        }
        let parallelism = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: dst is m × n (row stride n), x is m × k (row stride k), and the right-hand
        // side is the matrix read transposed: element (p, j) is values[j * k + p], so its
        // row stride is 1 and its column stride k; every index stays inside its buffer.
        // gemm writes dst = alpha · dst + beta · x · Wᵀ, reading dst only when asked to
        // (`read_dst`; alpha is then 1).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                1,
                n as isize,
                accumulate,
                x.as_ptr(),
                1,
                k as isize,
                self.values.as_ptr(),
                k as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    }

    /// Rows `ids`, one after another.
    pub fn rows_of(&self, ids: &[u32]) -> CandleResult<Vec<f32>> {
        let (rows, _) = self.dims();
        let mut out = Vec::with_capacity(ids.len() * self.columns);
        for &id in ids {
            let id = id as usize;
            if id >= rows {
                candle_core::bail!("row {id} is out of range for {rows} rows");
            }
            out.extend_from_slice(&self.values[id * self.columns..(id + 1) * self.columns]);
        }
        Ok(out)
    }

    pub fn values(&self) -> &[f32] {
        &self.values
    }
}
