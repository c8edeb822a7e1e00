//! A 4-bit weight matrix (GGUF `q4_0` or `Q4_1`) re-laid out for our kernels: the nibbles
//! of each row contiguous, and each block's scale (and for Q4_1 its minimum) as f32 in
//! arrays beside them, converted from f16 once at load instead of at every dot product.
//! It plugs into candle as a [`QuantizedType`], so `QMatMul` and the models stay unchanged.

use candle_core::quantized::{GgmlDType, QuantizedType};
use candle_core::{CpuStorage, Result as CandleResult};
use half::f16;

use super::q8::{ActRow, Q8Rows};
use super::{dot, WeightRow, BLOCK};

pub(crate) struct Q4Matrix {
    dtype: GgmlDType,
    nibbles: Vec<[u8; 16]>,
    scales: Vec<f32>,
    /// Per-block minimum (Q4_1); empty for q4_0, whose minimum is always −8 × scale.
    mins: Vec<f32>,
    /// Blocks per row.
    row_blocks: usize,
}

impl Q4Matrix {
    /// From GGUF block bytes: q4_0 blocks are `f16 d, 16 bytes`; Q4_1 blocks `f16 d, f16 m,
    /// 16 bytes`. `None` for any other dtype.
    pub fn from_ggml(dtype: GgmlDType, data: &[u8], columns: usize) -> Option<Self> {
        let header = match dtype {
            GgmlDType::Q4_0 => 2,
            GgmlDType::Q4_1 => 4,
            _ => return None,
        };
        let block_bytes = header + 16;
        if columns % BLOCK != 0 || data.len() % block_bytes != 0 {
            return None;
        }
        let blocks = data.len() / block_bytes;
        let mut matrix = Self {
            dtype,
            nibbles: Vec::with_capacity(blocks),
            scales: Vec::with_capacity(blocks),
            mins: Vec::with_capacity(if header == 4 { blocks } else { 0 }),
            row_blocks: columns / BLOCK,
        };
        let half = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
        for block in data.chunks_exact(block_bytes) {
            matrix.scales.push(half(&block[0..2]));
            if header == 4 {
                matrix.mins.push(half(&block[2..4]));
            }
            let mut nibbles = [0u8; 16];
            nibbles.copy_from_slice(&block[header..]);
            matrix.nibbles.push(nibbles);
        }
        Some(matrix)
    }

    /// Re-quantizes every block from `xs` as ggml's reference code does (q4_0: the value of
    /// largest magnitude maps to −8; Q4_1: the block's range maps to 0..=15).
    pub fn quantize(&mut self, xs: &[f32]) {
        let has_min = !self.mins.is_empty();
        for (b, block) in xs.chunks_exact(BLOCK).take(self.nibbles.len()).enumerate() {
            let (d, min) = if has_min {
                let lo = block.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = block.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                ((hi - lo) / 15.0, lo)
            } else {
                let extreme =
                    block
                        .iter()
                        .copied()
                        .fold(0f32, |e, v| if v.abs() > e.abs() { v } else { e });
                (extreme / -8.0, 0.0)
            };
            let inverse = if d != 0.0 { 1.0 / d } else { 0.0 };
            let level = |v: f32| {
                let q = if has_min {
                    (v - min) * inverse + 0.5
                } else {
                    v * inverse + 8.5
                };
                (q as u8).min(15)
            };
            for i in 0..16 {
                self.nibbles[b][i] = level(block[i]) | (level(block[i + 16]) << 4);
            }
            // Stored as f16 in GGUF; rounding here keeps a round trip through a file exact.
            self.scales[b] = f16::from_f32(d).to_f32();
            if has_min {
                self.mins[b] = f16::from_f32(min).to_f32();
            }
        }
    }

    fn rows(&self) -> usize {
        self.nibbles.len() / self.row_blocks
    }

    #[cfg(test)]
    pub fn test_row(&self, j: usize) -> WeightRow<'_> {
        self.row(j)
    }

    fn row(&self, j: usize) -> WeightRow<'_> {
        let blocks = j * self.row_blocks..(j + 1) * self.row_blocks;
        WeightRow {
            nibbles: &self.nibbles[blocks.clone()],
            scales: &self.scales[blocks.clone()],
            mins: if self.mins.is_empty() {
                &[]
            } else {
                &self.mins[blocks]
            },
        }
    }

    /// Row `j` as floats into `out` (`row_blocks × 32` values).
    fn dequantize_row(&self, j: usize, out: &mut [f32]) {
        let row = self.row(j);
        for (b, (nibbles, out)) in row
            .nibbles
            .iter()
            .zip(out.chunks_exact_mut(BLOCK))
            .enumerate()
        {
            let d = row.scales[b];
            let min = row.mins.get(b).copied().unwrap_or(-8.0 * d);
            for (i, byte) in nibbles.iter().enumerate() {
                out[i] = d * (byte & 0x0F) as f32 + min;
                out[i + 16] = d * (byte >> 4) as f32 + min;
            }
        }
    }

    /// `dst` (m × n) = `lhs` (m × k) × selfᵀ.
    fn matmul(
        &self,
        (m, k, n): (usize, usize, usize),
        lhs: &[f32],
        dst: &mut [f32],
    ) -> CandleResult<()> {
        if k != self.row_blocks * BLOCK
            || n != self.rows()
            || lhs.len() != m * k
            || dst.len() < m * n
        {
            candle_core::bail!(
                "4-bit matmul: ({m}×{k}) × ({}×{})ᵀ into {} values",
                self.rows(),
                self.row_blocks * BLOCK,
                dst.len()
            );
        }
        let x = Q8Rows::quantize(lhs, k);
        if m == 1 {
            // Decode: one activation row against every weight row, four weight rows at a
            // time, in chunks split across threads.
            let x = [x.row(0)];
            for_each_chunk(&mut dst[..n], 64, n * k, |first, out| {
                let done = first + out.len() / 4 * 4;
                let mut quads = out.chunks_exact_mut(4);
                for (q, out) in quads.by_ref().enumerate() {
                    let j = first + 4 * q;
                    let values = dot::<4, 1>(&std::array::from_fn(|i| self.row(j + i)), &x);
                    for (out, value) in out.iter_mut().zip(values) {
                        *out = value[0];
                    }
                }
                for (i, out) in quads.into_remainder().iter_mut().enumerate() {
                    *out = dot::<1, 1>(&[self.row(done + i)], &x)[0][0];
                }
            });
        } else {
            // Prefill: tiles of four activation rows, so each weight block is unpacked once per
            // four rows; every tile writes four whole rows of `dst`.
            for_each_chunk(&mut dst[..m * n], 4 * n, m * n * k, |first, out| {
                let first_row = first / n;
                match out.len() / n {
                    4 => self.tile::<4>(&x, first_row, out),
                    3 => self.tile::<3>(&x, first_row, out),
                    2 => self.tile::<2>(&x, first_row, out),
                    _ => self.tile::<1>(&x, first_row, out),
                }
            });
        }
        Ok(())
    }

    fn tile<const R: usize>(&self, x: &Q8Rows, first_row: usize, out: &mut [f32]) {
        let n = self.rows();
        let rows: [ActRow; R] = std::array::from_fn(|r| x.row(first_row + r));
        let mut store = |j: usize, values: [f32; R]| {
            for (r, value) in values.into_iter().enumerate() {
                out[r * n + j] = value;
            }
        };
        // Two weight rows by R activation rows per step: 2R accumulators fit in registers.
        for j in (0..n / 2 * 2).step_by(2) {
            let [a, b] = dot::<2, R>(&[self.row(j), self.row(j + 1)], &rows);
            store(j, a);
            store(j + 1, b);
        }
        if n % 2 == 1 {
            store(n - 1, dot::<1, R>(&[self.row(n - 1)], &rows)[0]);
        }
    }
}

/// Runs `f(offset, piece)` over `chunk`-sized pieces of `dst`: on rayon's threads natively
/// when there are several and the work (`macs` multiply-adds) outweighs waking them, in order
/// otherwise (always on the one wasm thread). Handing a job to rayon's pool costs tens of µs
/// when its threads sleep, as much as a decode step's whole 576 × 576 matmul.
fn for_each_chunk(
    dst: &mut [f32],
    chunk: usize,
    macs: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    #[cfg(not(target_arch = "wasm32"))]
    if macs >= PARALLEL_MACS && rayon::current_num_threads() > 1 {
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

impl QuantizedType for Q4Matrix {
    fn dtype(&self) -> GgmlDType {
        self.dtype
    }

    fn matmul_t(
        &self,
        mkn: (usize, usize, usize),
        lhs: &[f32],
        dst: &mut [f32],
    ) -> CandleResult<()> {
        self.matmul(mkn, lhs, dst)
    }

    fn matmul_t_f16(&self, _: (usize, usize, usize), _: &[f16], _: &mut [f16]) -> CandleResult<()> {
        candle_core::bail!("4-bit matmul runs on f32 activations only")
    }

    fn embedding(&self, ids: &[u32], rows: usize, hidden: usize) -> CandleResult<CpuStorage> {
        if rows != self.rows() || hidden != self.row_blocks * BLOCK {
            candle_core::bail!(
                "embedding of {rows}×{hidden} from a {}-row matrix",
                self.rows()
            );
        }
        let mut out = vec![0f32; ids.len() * hidden];
        for (&id, out) in ids.iter().zip(out.chunks_exact_mut(hidden)) {
            if id as usize >= rows {
                candle_core::bail!("embedding id {id} is out of range for {rows} rows");
            }
            self.dequantize_row(id as usize, out);
        }
        Ok(CpuStorage::F32(out))
    }

    fn dequantize(&self, elem_count: usize) -> CandleResult<CpuStorage> {
        let width = self.row_blocks * BLOCK;
        if elem_count != self.rows() * width {
            candle_core::bail!(
                "dequantize {elem_count} values of a {}-value matrix",
                self.rows() * width
            );
        }
        let mut out = vec![0f32; elem_count];
        for (j, row) in out.chunks_exact_mut(width).enumerate() {
            self.dequantize_row(j, row);
        }
        Ok(CpuStorage::F32(out))
    }

    fn storage_size_in_bytes(&self) -> usize {
        self.nibbles.len() * 16 + (self.scales.len() + self.mins.len()) * 4
    }

    fn as_ptr(&self) -> *const u8 {
        self.nibbles.as_ptr().cast()
    }

    fn block_size(&self) -> usize {
        BLOCK
    }

    fn from_float(&mut self, xs: &[f32]) {
        self.quantize(xs);
    }

    fn from_float_imatrix(&mut self, xs: &[f32], _: &[f32], _: usize) {
        self.quantize(xs);
    }

    fn size(&self) -> usize {
        self.storage_size_in_bytes()
    }
}
