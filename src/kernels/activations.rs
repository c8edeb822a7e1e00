//! Activations quantized to 8 bits per block of 32, the other operand of the 4-bit dot
//! products (ggml's `q8_1`: a scale per block, and the block's sum so that a weight block's
//! offset costs one multiply instead of 32).

use super::BLOCK;

/// Rows of activations, each `blocks_per_row` blocks of 32 values.
pub(crate) struct Q8Rows {
    qs: Vec<[i8; BLOCK]>,
    /// The same blocks widened to 16 bits, in wasm only: it has no 8-bit dot product, and
    /// widening once here beats widening once per tile of weight rows.
    #[cfg(target_arch = "wasm32")]
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
    #[cfg(target_arch = "wasm32")]
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
        let mut scales = vec![0f32; blocks];
        let mut sums = vec![0f32; blocks];
        for (((block, q), scale), sum) in x
            .chunks_exact(BLOCK)
            .zip(&mut qs)
            .zip(&mut scales)
            .zip(&mut sums)
        {
            // The largest magnitude as the largest bit pattern of |v|: for non-negative
            // floats the two orders agree, and an integer max vectorizes everywhere, where
            // `f32::max` is a libm call in wasm (its `f32.max` treats NaN differently).
            let amax = f32::from_bits(block.iter().map(|v| v.abs().to_bits()).max().unwrap_or(0));
            let d = amax / 127.0;
            let inverse = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut total = 0i32;
            for (q, v) in q.iter_mut().zip(block) {
                // Ties to even, as ggml's AVX code rounds (and a single SIMD instruction).
                *q = (v * inverse).round_ties_even() as i8;
                total += *q as i32;
            }
            *scale = d;
            *sum = d * total as f32;
        }
        Self {
            #[cfg(target_arch = "wasm32")]
            wide: qs.iter().map(|q| q.map(i16::from)).collect(),
            qs,
            scales,
            sums,
            blocks_per_row: k / BLOCK,
        }
    }

    pub fn row(&self, i: usize) -> ActRow<'_> {
        let blocks = i * self.blocks_per_row..(i + 1) * self.blocks_per_row;
        ActRow {
            qs: &self.qs[blocks.clone()],
            #[cfg(target_arch = "wasm32")]
            wide: &self.wide[blocks.clone()],
            scales: &self.scales[blocks.clone()],
            sums: &self.sums[blocks],
        }
    }
}
