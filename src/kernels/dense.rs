//! f32 matrices (the reference MiniLM the builder embeds the catalogue with, GPT-2's f32
//! weights) on gemm, called directly rather than through a candle tensor: no tensor built
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
}

/// GGML's f32 "blocks" are single little-endian values (its block size for f32 is 1), so
/// the matrix is read as our quantized layouts are, a piece at a time.
impl FromGgmlBlocks for DenseMatrix {
    fn empty(dtype: GgmlDType, blocks: usize, columns: usize) -> Option<Self> {
        (dtype == GgmlDType::F32 && columns > 0).then(|| Self {
            values: Vec::with_capacity(blocks),
            columns,
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
        let (n, k) = self.dims();
        if columns != k || !x.len().is_multiple_of(k.max(1)) {
            candle_core::bail!(
                "f32 matmul: {} values in rows of {columns} against {n}×{k} weights",
                x.len()
            );
        }
        let m = x.len() / k.max(1);
        let mut dst = vec![0f32; m * n];
        if m == 0 || n == 0 || k == 0 {
            return Ok(dst);
        }
        let threads = super::pool_threads();
        let parallelism = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: dst is m × n (row stride n), x is m × k (row stride k), and the right-hand
        // side is the matrix read transposed: element (p, j) is values[j * k + p], so its
        // row stride is 1 and its column stride k; every index stays inside its buffer.
        // With `read_dst` false gemm writes dst = 1 · x · Wᵀ (alpha is then ignored).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                1,
                n as isize,
                false,
                x.as_ptr(),
                1,
                k as isize,
                self.values.as_ptr(),
                k as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
        Ok(dst)
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
