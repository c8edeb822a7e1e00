//! An 8-bit weight matrix (GGUF `q8_0`) re-laid out for our kernels: each block's 32 bytes
//! contiguous and its scale as f32 beside them (converted from f16 once at load). Used for
//! SmolLM2's token embedding, which is also its LM head, and MiniLM's matrices.

use candle_core::quantized::GgmlDType;
use half::f16;

use super::activations::ActRow;
use super::matrix::BlockRows;
use super::{backend, BLOCK};

/// One block: its scale beside its bytes, so a row is one stream through memory (the
/// LM head, 49152 rows, is read from DRAM at every token; two arrays measured 2× slower).
pub(crate) struct Q8Block {
    pub scale: f32,
    pub qs: [i8; BLOCK],
}

/// One weight row's blocks, as the kernels read them.
pub(crate) struct Q8WeightRow<'a> {
    pub blocks: &'a [Q8Block],
}

/// A q8_0 matrix in our layout.
pub(crate) struct Q8Matrix {
    blocks: Vec<Q8Block>,
    row_blocks: usize,
}

impl Q8Matrix {
    /// From GGUF q8_0 block bytes (`f16 d, 32 × i8`); `None` if they do not fit `columns`.
    pub fn from_ggml(data: &[u8], columns: usize) -> Option<Self> {
        const BLOCK_BYTES: usize = 2 + BLOCK;
        if columns % BLOCK != 0 || data.len() % BLOCK_BYTES != 0 {
            return None;
        }
        let blocks = data.len() / BLOCK_BYTES;
        let mut matrix = Self {
            blocks: Vec::with_capacity(blocks),
            row_blocks: columns / BLOCK,
        };
        for block in data.chunks_exact(BLOCK_BYTES) {
            let mut qs = [0i8; BLOCK];
            for (q, &byte) in qs.iter_mut().zip(&block[2..]) {
                *q = byte as i8;
            }
            matrix.blocks.push(Q8Block {
                scale: f16::from_le_bytes([block[0], block[1]]).to_f32(),
                qs,
            });
        }
        Some(matrix)
    }

    #[cfg(test)]
    pub fn test_row(&self, j: usize) -> Q8WeightRow<'_> {
        self.row(j)
    }

    fn row(&self, j: usize) -> Q8WeightRow<'_> {
        let blocks = j * self.row_blocks..(j + 1) * self.row_blocks;
        Q8WeightRow {
            blocks: &self.blocks[blocks],
        }
    }
}

impl BlockRows for Q8Matrix {
    fn dtype(&self) -> GgmlDType {
        GgmlDType::Q8_0
    }

    fn rows(&self) -> usize {
        self.blocks.len() / self.row_blocks
    }

    fn row_blocks(&self) -> usize {
        self.row_blocks
    }

    fn dot<const W: usize, const R: usize>(&self, first: usize, x: &[ActRow; R]) -> [[f32; R]; W] {
        backend::dot_q8::<W, R>(&std::array::from_fn(|i| self.row(first + i)), x)
    }

    fn dequantize_row(&self, j: usize, out: &mut [f32]) {
        let row = self.row(j);
        for (block, out) in row.blocks.iter().zip(out.chunks_exact_mut(BLOCK)) {
            for (out, &q) in out.iter_mut().zip(&block.qs) {
                *out = block.scale * q as f32;
            }
        }
    }
}
