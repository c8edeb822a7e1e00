//! A 4-bit weight matrix (GGUF `q4_0` or `Q4_1`) re-laid out for our kernels: the nibbles
//! of each row contiguous, and each block's scale (and for Q4_1 its minimum) as f32 in
//! arrays beside them, converted from f16 once at load instead of at every dot product.

use candle_core::quantized::GgmlDType;
use half::f16;

use super::activations::ActRow;
use super::matrix::{BlockRows, FromGgmlBlocks};
use super::{backend, BLOCK};

/// One weight row's blocks, as the kernels read them.
pub(crate) struct WeightRow<'a> {
    pub nibbles: &'a [[u8; 16]],
    pub scales: &'a [f32],
    /// Empty for q4_0.
    pub mins: &'a [f32],
}

/// A q4_0 or Q4_1 matrix in our layout.
pub(crate) struct Q4Matrix {
    dtype: GgmlDType,
    nibbles: Vec<[u8; 16]>,
    scales: Vec<f32>,
    /// Per-block minimum (Q4_1); empty for q4_0, whose minimum is always −8 × scale.
    mins: Vec<f32>,
    /// Blocks per row.
    row_blocks: usize,
}

impl FromGgmlBlocks for Q4Matrix {
    /// q4_0 blocks are `f16 d, 16 bytes`; Q4_1 blocks `f16 d, f16 m, 16 bytes`.
    fn empty(dtype: GgmlDType, blocks: usize, columns: usize) -> Option<Self> {
        let with_mins = match dtype {
            GgmlDType::Q4_0 => false,
            GgmlDType::Q4_1 => true,
            _ => return None,
        };
        columns.is_multiple_of(BLOCK).then(|| Self {
            dtype,
            nibbles: Vec::with_capacity(blocks),
            scales: Vec::with_capacity(blocks),
            mins: Vec::with_capacity(if with_mins { blocks } else { 0 }),
            row_blocks: columns / BLOCK,
        })
    }

    fn block_bytes(&self) -> usize {
        self.header_bytes() + 16
    }

    fn push_block(&mut self, block: &[u8]) {
        let half = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
        self.scales.push(half(&block[0..2]));
        let header = self.header_bytes();
        if header == 4 {
            self.mins.push(half(&block[2..4]));
        }
        let mut nibbles = [0u8; 16];
        nibbles.copy_from_slice(&block[header..header + 16]);
        self.nibbles.push(nibbles);
    }
}

impl Q4Matrix {
    /// The bytes before a block's nibbles: its scale, and for Q4_1 its minimum.
    fn header_bytes(&self) -> usize {
        if self.dtype == GgmlDType::Q4_1 {
            4
        } else {
            2
        }
    }

    #[cfg(test)]
    pub fn test_row(&self, j: usize) -> WeightRow<'_> {
        self.row(j)
    }

    /// The `W × R` dot products of weight rows `first..first + W` with `x`.
    fn dot<const W: usize, const R: usize>(&self, first: usize, x: &[ActRow; R]) -> [[f32; R]; W] {
        let rows: [WeightRow; W] = std::array::from_fn(|i| self.row(first + i));
        if self.mins.is_empty() {
            backend::dot_q4::<W, R, false>(&rows, x)
        } else {
            backend::dot_q4::<W, R, true>(&rows, x)
        }
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
}

impl BlockRows for Q4Matrix {
    const STEP: usize = 2;
    const TILE_ROWS: usize = 4;

    fn dtype(&self) -> GgmlDType {
        self.dtype
    }

    fn rows(&self) -> usize {
        self.nibbles.len() / self.row_blocks
    }

    fn row_blocks(&self) -> usize {
        self.row_blocks
    }

    fn products<const R: usize>(
        &self,
        first: usize,
        x: &[ActRow; R],
        out: &mut [f32],
        stride: usize,
    ) {
        // Two weight rows by R activation rows: 2R accumulators fit in registers.
        let mut store = |i: usize, values: [f32; R]| {
            for (r, value) in values.into_iter().enumerate() {
                out[r * stride + i] = value;
            }
        };
        if first + 1 < self.rows() {
            let [a, b] = self.dot::<2, R>(first, x);
            store(0, a);
            store(1, b);
        } else {
            store(0, self.dot::<1, R>(first, x)[0]);
        }
    }

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
}
