//! An 8-bit weight matrix (GGUF `q8_0`) re-laid out for our kernels: each block's 32 bytes
//! contiguous and its scale as f32 beside them (converted from f16 once at load). Used for
//! SmolLM2's token embedding, which is also its LM head, and MiniLM's matrices.

use candle_core::quantized::GgmlDType;
use half::f16;

use super::activations::ActRow;
use super::matrix::{BlockRows, FromGgmlBlocks};
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

/// How the SIMD q8 kernels arrange a tile's W × R products: numbered row-major as (weight
/// row, activation row), in groups of four that share one vector of accumulators.
pub(crate) mod tile {
    use super::{ActRow, Q8WeightRow};

    /// Groups of four covering a W × R tile.
    pub const fn groups(w: usize, r: usize) -> usize {
        (w * r).div_ceil(4)
    }

    /// Lane `lane` of group `group` as (weight row, activation row); `None` past the tile.
    pub fn product<const W: usize, const R: usize>(
        group: usize,
        lane: usize,
    ) -> Option<(usize, usize)> {
        let p = group * 4 + lane;
        (p < W * R).then_some((p / R, p % R))
    }

    /// Block `b`'s scale (weight scale × activation scale) for each lane of `group`, 0 for
    /// lanes past the tile: multiplied as `dot_scalar::dot_q8` does, so the bits agree.
    pub fn scales<const W: usize, const R: usize>(
        w: &[Q8WeightRow; W],
        x: &[ActRow; R],
        b: usize,
        group: usize,
    ) -> [f32; 4] {
        std::array::from_fn(|lane| {
            product::<W, R>(group, lane).map_or(0.0, |(i, r)| w[i].blocks[b].scale * x[r].scales[b])
        })
    }

    /// The tile's results from its groups' accumulator lanes.
    pub fn unpack<const W: usize, const R: usize>(lanes: [[f32; 4]; 4]) -> [[f32; R]; W] {
        std::array::from_fn(|i| std::array::from_fn(|r| lanes[(i * R + r) / 4][(i * R + r) % 4]))
    }
}

/// A q8_0 matrix in our layout.
pub(crate) struct Q8Matrix {
    blocks: Vec<Q8Block>,
    row_blocks: usize,
}

impl FromGgmlBlocks for Q8Matrix {
    /// q8_0 blocks are `f16 d, 32 × i8`.
    fn empty(dtype: GgmlDType, blocks: usize, columns: usize) -> Option<Self> {
        (dtype == GgmlDType::Q8_0 && columns.is_multiple_of(BLOCK)).then(|| Self {
            blocks: Vec::with_capacity(blocks),
            row_blocks: columns / BLOCK,
        })
    }

    fn block_bytes(&self) -> usize {
        2 + BLOCK
    }

    fn push_block(&mut self, block: &[u8]) {
        let mut qs = [0i8; BLOCK];
        for (q, &byte) in qs.iter_mut().zip(&block[2..2 + BLOCK]) {
            *q = byte as i8;
        }
        self.blocks.push(Q8Block {
            scale: f16::from_le_bytes([block[0], block[1]]).to_f32(),
            qs,
        });
    }
}

impl Q8Matrix {
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
