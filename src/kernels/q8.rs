//! An 8-bit weight matrix (GGUF `q8_0`) re-laid out for our kernels, in panels of 16 weight
//! rows. Used for SmolLM2's token embedding, which is also its LM head, and MiniLM's
//! matrices.
//!
//! Why panels: a kernel that takes one row at a time must sum each block's products across
//! the vector's lanes before it can scale them, and that reduction (shuffles, adds, a
//! conversion per product) cost as much as the products themselves in wasm, which has no
//! 8-bit dot product. In a panel, a vector of weights holds the same two columns of
//! several rows, so each lane accumulates one output: an activation pair is broadcast, one
//! `dot_i16x8` gives four rows' sums, and no lane is ever summed with another. MiniLM's
//! six layers of products at 20 tokens ran 2× faster in wasm this way, bit for bit the same.

use candle_core::quantized::GgmlDType;
use half::f16;

use super::activations::ActRow;
use super::matrix::{BlockRows, FromGgmlBlocks};
use super::{backend, BLOCK};

/// Weight rows per panel: four 128-bit vectors of accumulators (two 256-bit ones) per
/// activation row, and two activation rows' worth still fit in x86's 16 vector registers.
pub(crate) const PANEL: usize = 16;

/// Column pairs per block.
pub(crate) const PAIRS: usize = BLOCK / 2;

/// One block (32 columns) of a panel's 16 rows.
#[derive(Clone, Copy)]
pub(crate) struct Q8PanelBlock {
    /// Each row's scale for this block, as f32 (converted from f16 once, at load).
    pub scales: [f32; PANEL],
    /// `pairs[t]` holds columns `2t` and `2t + 1` of every row: row `r`'s at bytes `2r` and
    /// `2r + 1`, so one 16-byte load is eight rows' pair.
    pub pairs: [[i8; 2 * PANEL]; PAIRS],
}

impl Q8PanelBlock {
    const EMPTY: Self = Self {
        scales: [0.0; PANEL],
        pairs: [[0; 2 * PANEL]; PAIRS],
    };

    /// Row `lane`'s weight in column `c` of the block.
    pub fn weight(&self, lane: usize, c: usize) -> i8 {
        self.pairs[c / 2][2 * lane + c % 2]
    }
}

/// A q8_0 matrix in our layout: panel `p` is `row_blocks` blocks, rows `16p..16p + 16`
/// (the last panel padded with zero rows).
pub(crate) struct Q8Matrix {
    blocks: Vec<Q8PanelBlock>,
    rows: usize,
    row_blocks: usize,
    /// GGUF blocks pushed so far (they come row after row).
    pushed: usize,
}

impl FromGgmlBlocks for Q8Matrix {
    /// q8_0 blocks are `f16 d, 32 × i8`.
    fn empty(dtype: GgmlDType, blocks: usize, columns: usize) -> Option<Self> {
        if dtype != GgmlDType::Q8_0 || columns == 0 || !columns.is_multiple_of(BLOCK) {
            return None;
        }
        let row_blocks = columns / BLOCK;
        let rows = blocks / row_blocks;
        Some(Self {
            blocks: vec![Q8PanelBlock::EMPTY; rows.div_ceil(PANEL) * row_blocks],
            rows,
            row_blocks,
            pushed: 0,
        })
    }

    fn block_bytes(&self) -> usize {
        2 + BLOCK
    }

    fn push_block(&mut self, block: &[u8]) {
        let (row, b) = (self.pushed / self.row_blocks, self.pushed % self.row_blocks);
        self.pushed += 1;
        let Some(target) = self.blocks.get_mut((row / PANEL) * self.row_blocks + b) else {
            return; // more blocks than `empty` was told of: `read` never sends them
        };
        let lane = row % PANEL;
        target.scales[lane] = f16::from_le_bytes([block[0], block[1]]).to_f32();
        for (c, &byte) in block[2..2 + BLOCK].iter().enumerate() {
            target.pairs[c / 2][2 * lane + c % 2] = byte as i8;
        }
    }
}

impl Q8Matrix {
    /// Panel `p`'s blocks.
    pub fn panel(&self, p: usize) -> &[Q8PanelBlock] {
        &self.blocks[p * self.row_blocks..(p + 1) * self.row_blocks]
    }
}

impl BlockRows for Q8Matrix {
    const STEP: usize = PANEL;
    /// Two activation rows per tile: with four, the accumulators no longer fit in
    /// registers (measured 1.4× slower in wasm).
    const TILE_ROWS: usize = 2;

    fn dtype(&self) -> GgmlDType {
        GgmlDType::Q8_0
    }

    fn rows(&self) -> usize {
        self.rows
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
        let values = backend::dot_q8::<R>(self.panel(first / PANEL), x);
        let width = PANEL.min(self.rows - first);
        for (r, values) in values.iter().enumerate() {
            out[r * stride..r * stride + width].copy_from_slice(&values[..width]);
        }
    }

    fn dequantize_row(&self, j: usize, out: &mut [f32]) {
        let lane = j % PANEL;
        for (block, out) in self
            .panel(j / PANEL)
            .iter()
            .zip(out.chunks_exact_mut(BLOCK))
        {
            for (c, out) in out.iter_mut().enumerate() {
                *out = block.scales[lane] * block.weight(lane, c) as f32;
            }
        }
    }
}
