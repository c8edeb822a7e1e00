//! Activations quantized to 8 bits per block of 32, the other operand of the 4-bit dot
//! products (ggml's `q8_1`: a scale per block, and the block's sum so that a weight block's
//! offset costs one multiply instead of 32).

use super::{backend, BLOCK};

/// Rows of activations, each `blocks_per_row` blocks of 32 values.
pub(crate) struct Q8Rows {
    qs: Vec<[i8; BLOCK]>,
    /// The same blocks widened to 16 bits, for the kernels that multiply in 16-bit lanes
    /// (wasm has no 8-bit dot product; the q8_0 panels broadcast a pair of them): widening
    /// once here beats widening once per tile of weight rows.
    wide: Vec<[i16; BLOCK]>,
    scales: Vec<f32>,
    /// `scale × Σ qs` per block: the block's sum as the dot product sees it.
    sums: Vec<f32>,
    blocks_per_row: usize,
}

/// One row of [`Q8Rows`].
#[derive(Clone, Copy)]
pub(crate) struct ActRow<'a> {
    pub qs: &'a [[i8; BLOCK]],
    pub wide: &'a [[i16; BLOCK]],
    pub scales: &'a [f32],
    pub sums: &'a [f32],
}

impl Q8Rows {
    /// `x` is row-major with rows of `k` values; `k` is a multiple of 32.
    pub fn quantize(x: &[f32], k: usize) -> Self {
        debug_assert!(k.is_multiple_of(BLOCK) && x.len().is_multiple_of(k));
        let blocks = x.len() / BLOCK;
        let mut qs = vec![[0i8; BLOCK]; blocks];
        let mut wide = vec![[0i16; BLOCK]; blocks];
        let mut scales = vec![0f32; blocks];
        let mut sums = vec![0f32; blocks];
        for ((((block, q), wide), scale), sum) in x
            .chunks_exact(BLOCK)
            .zip(&mut qs)
            .zip(&mut wide)
            .zip(&mut scales)
            .zip(&mut sums)
        {
            let Ok(block) = <&[f32; BLOCK]>::try_from(block) else {
                continue; // unreachable: chunks of 32
            };
            let (d, total) = backend::quantize_block(block, q, wide);
            *scale = d;
            *sum = d * total as f32;
        }
        Self {
            qs,
            wide,
            scales,
            sums,
            blocks_per_row: k / BLOCK,
        }
    }

    pub fn row(&self, i: usize) -> ActRow<'_> {
        let blocks = i * self.blocks_per_row..(i + 1) * self.blocks_per_row;
        ActRow {
            qs: &self.qs[blocks.clone()],
            wide: &self.wide[blocks.clone()],
            scales: &self.scales[blocks.clone()],
            sums: &self.sums[blocks],
        }
    }
}
