//! What our weight matrices share: the matmul driver (activation quantization, tiling,
//! threads) and the candle custom op that runs it. A format only says how to read its rows.

use candle_core::quantized::GgmlDType;
use candle_core::{CpuStorage, CustomOp1, Layout, Result as CandleResult, Shape};

use super::activations::{ActRow, Q8Rows};
use super::BLOCK;

/// A weight matrix in one of our layouts, rows of `row_blocks()` blocks of 32 values.
pub(crate) trait BlockRows: Send + Sync {
    /// Weight rows one call of [`BlockRows::products`] covers; divides 64 (the decode chunk).
    const STEP: usize;
    /// Activation rows per prefill tile: as many as the kernel's accumulators leave
    /// registers for.
    const TILE_ROWS: usize;
    /// The GGUF dtype it was read from (what candle reports).
    fn dtype(&self) -> GgmlDType;
    fn rows(&self) -> usize;
    fn row_blocks(&self) -> usize;
    /// The products of weight rows `first..first + STEP` (fewer at the matrix's end;
    /// `first` a multiple of `STEP`) with each of `x`: row `first + i` · `x[r]` into
    /// `out[r * stride + i]`. A tile, so each weight block is loaded and unpacked once for
    /// several products and the accumulators form independent dependency chains.
    fn products<const R: usize>(
        &self,
        first: usize,
        x: &[ActRow; R],
        out: &mut [f32],
        stride: usize,
    );
    /// Row `j` as floats into `out`.
    fn dequantize_row(&self, j: usize, out: &mut [f32]);
}

/// A layout built from GGUF blocks one at a time, so a matrix can be converted as its
/// bytes are read instead of from a whole copy of them.
pub(crate) trait FromGgmlBlocks: Sized {
    /// A matrix of `columns`-wide rows with room for `blocks` blocks of `dtype`; `None` when
    /// this layout does not hold `dtype` or `columns` is not a whole number of blocks.
    fn empty(dtype: GgmlDType, blocks: usize, columns: usize) -> Option<Self>;
    /// The size of one GGUF block of its dtype.
    fn block_bytes(&self) -> usize;
    /// Appends one block (`block_bytes()` bytes, as GGUF stores it).
    fn push_block(&mut self, block: &[u8]);

    /// `blocks` blocks read from `reader` a piece at a time (a few hundred kB), so only the
    /// converted matrix is ever whole in memory.
    fn read(
        dtype: GgmlDType,
        blocks: usize,
        columns: usize,
        reader: &mut impl std::io::Read,
    ) -> std::io::Result<Option<Self>> {
        const PIECE_BLOCKS: usize = 8192;
        let Some(mut matrix) = Self::empty(dtype, blocks, columns) else {
            return Ok(None);
        };
        let block_bytes = matrix.block_bytes();
        let mut piece = vec![0u8; block_bytes * blocks.min(PIECE_BLOCKS)];
        let mut left = blocks;
        while left > 0 {
            let bytes = &mut piece[..block_bytes * left.min(PIECE_BLOCKS)];
            reader.read_exact(bytes)?;
            bytes
                .chunks_exact(block_bytes)
                .for_each(|block| matrix.push_block(block));
            left -= bytes.len() / block_bytes;
        }
        Ok(Some(matrix))
    }
}

/// A [`BlockRows`] as a candle op: `x.apply_op1_no_bwd(&relaid)` is `x @ Wᵀ`. Our own op
/// rather than a `QTensor` storage: candle's quantized matmul may repack a q8_0 or q4_0
/// tensor's bytes for its own kernels (AVX-512 VNNI, Arm dot-product), reading them as
/// GGUF blocks, which ours are not.
pub(crate) struct Relaid<M>(pub M);

impl<M: BlockRows> Relaid<M> {
    /// `dst` (m × n) = `lhs` (m × k) × weightsᵀ.
    fn matmul(
        &self,
        (m, k, n): (usize, usize, usize),
        lhs: &[f32],
        dst: &mut [f32],
    ) -> CandleResult<()> {
        let w = &self.0;
        if k != w.row_blocks() * BLOCK || n != w.rows() || lhs.len() != m * k || dst.len() < m * n {
            candle_core::bail!(
                "{:?} matmul: ({m}×{k}) × ({}×{})ᵀ into {} values",
                w.dtype(),
                w.rows(),
                w.row_blocks() * BLOCK,
                dst.len()
            );
        }
        let x = Q8Rows::quantize(lhs, k);
        const { assert!(64 % M::STEP == 0 && M::TILE_ROWS <= 4) };
        if m == 1 {
            // Decode: one activation row against every weight row, row after row, so the
            // weights stream through memory in order (a whole model is read from DRAM at
            // every token; interleaving four short rows was 2-4× slower on the LM head,
            // measured by benches/kernels.rs, and 15-50% slower decoding, by
            // benches/generation.rs, even where a lone matrix that stays in cache is faster
            // four rows at a time), in chunks split across threads.
            let x = [x.row(0)];
            for_each_chunk(&mut dst[..n], 64, n * k, |first, out| {
                for i in (0..out.len()).step_by(M::STEP) {
                    w.products::<1>(first + i, &x, &mut out[i..], 0);
                }
            });
        } else {
            // Prefill: tiles of `TILE_ROWS` activation rows, so each weight block is
            // unpacked once per tile; every tile writes whole rows of `dst`.
            for_each_chunk(
                &mut dst[..m * n],
                M::TILE_ROWS * n,
                m * n * k,
                |first, out| {
                    let first_row = first / n;
                    match out.len() / n {
                        4 => self.tile::<4>(&x, first_row, out),
                        3 => self.tile::<3>(&x, first_row, out),
                        2 => self.tile::<2>(&x, first_row, out),
                        _ => self.tile::<1>(&x, first_row, out),
                    }
                },
            );
        }
        Ok(())
    }

    fn tile<const R: usize>(&self, x: &Q8Rows, first_row: usize, out: &mut [f32]) {
        let n = self.0.rows();
        let rows: [ActRow; R] = std::array::from_fn(|r| x.row(first_row + r));
        for j in (0..n).step_by(M::STEP) {
            self.0.products::<R>(j, &rows, &mut out[j..], n);
        }
    }
}

/// Runs `f(offset, piece)` over `chunk`-sized pieces of `dst`: on rayon's threads natively
/// when there are several free to take it (`pool_threads`) and the work (`macs`
/// multiply-adds) outweighs waking them, in order otherwise (always on the one wasm thread).
/// Handing a job to rayon's pool costs tens of µs when its threads sleep, as much as a
/// decode step's whole 576 × 576 matmul.
fn for_each_chunk(
    dst: &mut [f32],
    chunk: usize,
    macs: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    #[cfg(not(target_arch = "wasm32"))]
    if macs >= PARALLEL_MACS && super::pool_threads() > 1 {
        use rayon::prelude::*;
        dst.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, out)| f(i * chunk, out));
        return;
    }
    let _ = macs;
    for (i, out) in dst.chunks_mut(chunk).enumerate() {
        f(i * chunk, out);
    }
}

/// Below this many multiply-adds a matmul runs on the calling thread (measured with
/// `benches/kernels.rs`: a 576 × 1536 decode matmul is about 1M).
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_MACS: usize = 1 << 21;

impl<M: BlockRows> Relaid<M> {
    /// `x` (rows of `columns` values) times the weights transposed.
    pub fn matmul_rows(&self, x: &[f32], columns: usize) -> CandleResult<Vec<f32>> {
        let (n, k) = self.dims();
        if columns != k || !x.len().is_multiple_of(k) {
            candle_core::bail!(
                "quantized matmul: {} values in rows of {columns} against {n}×{k} weights",
                x.len()
            );
        }
        let m = x.len() / k;
        let mut dst = vec![0f32; m * n];
        self.matmul((m, k, n), x, &mut dst)?;
        Ok(dst)
    }

    /// Rows `ids` as floats, one after another.
    pub fn rows_of(&self, ids: &[u32]) -> CandleResult<Vec<f32>> {
        let width = self.0.row_blocks() * BLOCK;
        let mut out = vec![0f32; ids.len() * width];
        for (&id, out) in ids.iter().zip(out.chunks_exact_mut(width)) {
            if id as usize >= self.0.rows() {
                candle_core::bail!("row {id} is out of range for {} rows", self.0.rows());
            }
            self.0.dequantize_row(id as usize, out);
        }
        Ok(out)
    }

    pub fn dims(&self) -> (usize, usize) {
        (self.0.rows(), self.0.row_blocks() * BLOCK)
    }
}

impl<M: BlockRows> CustomOp1 for Relaid<M> {
    fn name(&self) -> &'static str {
        "marquee-quantized-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> CandleResult<(CpuStorage, Shape)> {
        let (n, k) = self.dims();
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("quantized matmul: the input is not contiguous");
        };
        let mut dims = layout.shape().dims().to_vec();
        if dims.last() != Some(&k) {
            candle_core::bail!("quantized matmul: input {dims:?} against {n}×{k} weights");
        }
        let x = &storage.as_slice::<f32>()?[start..end];
        let m = x.len() / k;
        let mut dst = vec![0f32; m * n];
        self.matmul((m, k, n), x, &mut dst)?;
        if let Some(last) = dims.last_mut() {
            *last = n;
        }
        Ok((CpuStorage::F32(dst), Shape::from(dims)))
    }
}
