//! BERT's self-attention on the fixed-order kernels of `kernels::attention`: the same bits
//! natively and in wasm. That matters here because the int8 path rounds activations to 8 bits
//! before every matmul, which turns an ulp at a rounding boundary into a whole quantization
//! step; with it, the query a visitor embeds in the browser is the vector the native build
//! computes for the same text.

use crate::kernels::attention::{
    score_blocks, softmax_in_place, weighted_values, CONTEXT_WIDTH, LANES, QUERIES,
};

/// The shape of one attention call: `qkv` rows are `[q | k | v]`, each `heads × head_dim`.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub batch: usize,
    pub tokens: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl Shape {
    fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// Multi-head attention: `qkv` is (batch, tokens, 3 × hidden), `mask` (batch, tokens) with 1
/// for real tokens; returns the context, (batch, tokens, hidden). Padded keys get no weight.
pub fn attention(qkv: &[f32], mask: &[u32], shape: Shape) -> Vec<f32> {
    let hidden = shape.hidden();
    let mut context = vec![0f32; shape.batch * shape.tokens * hidden];
    let per_sequence = shape.tokens * hidden;
    let run = |(b, context): (usize, &mut [f32])| {
        let rows = &qkv[b * shape.tokens * 3 * hidden..(b + 1) * shape.tokens * 3 * hidden];
        let mask = &mask[b * shape.tokens..(b + 1) * shape.tokens];
        for head in 0..shape.heads {
            attend_one_head(rows, mask, head, shape, context);
        }
    };
    // Sequences are independent, so splitting them across threads changes no sum.
    #[cfg(not(target_arch = "wasm32"))]
    if shape.batch > 1 && crate::kernels::pool_threads() > 1 {
        use rayon::prelude::*;
        context
            .par_chunks_mut(per_sequence)
            .enumerate()
            .for_each(run);
        return context;
    }
    context.chunks_mut(per_sequence).enumerate().for_each(run);
    context
}

/// One head of one sequence, writing its `head_dim` columns of `context`.
fn attend_one_head(rows: &[f32], mask: &[u32], head: usize, shape: Shape, context: &mut [f32]) {
    let (n, d, hidden) = (shape.tokens, shape.head_dim, shape.hidden());
    let column = |part: usize, t: usize| {
        let start = t * 3 * hidden + part * hidden + head * d;
        &rows[start..start + d]
    };
    let keys: Vec<usize> = (0..n).filter(|&t| mask[t] != 0).collect();
    let padded_keys = keys.len().div_ceil(LANES) * LANES;
    let padded_queries = n.div_ceil(QUERIES) * QUERIES;
    // Queries pre-scaled by 1/√d (rows past `n` are zero), keys transposed (d × keys, zero
    // past the last key), values as rows: the layouts the two kernels below stream through.
    let scale = 1.0 / (d as f32).sqrt();
    let mut queries = vec![0f32; padded_queries * d];
    for (i, row) in queries.chunks_exact_mut(d).take(n).enumerate() {
        for (out, &q) in row.iter_mut().zip(column(0, i)) {
            *out = q * scale;
        }
    }
    let mut keys_t = vec![0f32; d * padded_keys];
    let mut values = vec![0f32; keys.len() * d];
    for (j, &t) in keys.iter().enumerate() {
        for (c, &k) in column(1, t).iter().enumerate() {
            keys_t[c * padded_keys + j] = k;
        }
        values[j * d..(j + 1) * d].copy_from_slice(column(2, t));
    }
    let mut scores = vec![0f32; padded_queries * padded_keys];
    score_blocks(&queries, &keys_t, d, padded_keys, padded_keys, &mut scores);
    for row in scores.chunks_exact_mut(padded_keys).take(n) {
        softmax_in_place(&mut row[..keys.len()]);
    }
    for i in (0..n).step_by(2) {
        let pair = [i, (i + 1).min(n - 1)];
        let weights = pair.map(|q| &scores[q * padded_keys..q * padded_keys + keys.len()]);
        for c in (0..d).step_by(CONTEXT_WIDTH) {
            let width = CONTEXT_WIDTH.min(d - c);
            let sums = weighted_values(weights, &values, d, c);
            for (q, sum) in pair.into_iter().zip(sums) {
                let start = q * hidden + head * d + c;
                context[start..start + width].copy_from_slice(&sum[..width]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention written out naively in f64 for comparison.
    fn reference(qkv: &[f32], mask: &[u32], s: Shape) -> Vec<f32> {
        let h = s.hidden();
        let mut out = vec![0f32; s.batch * s.tokens * h];
        for b in 0..s.batch {
            let row = |t: usize| &qkv[(b * s.tokens + t) * 3 * h..(b * s.tokens + t + 1) * 3 * h];
            for head in 0..s.heads {
                for i in 0..s.tokens {
                    let logits: Vec<f64> = (0..s.tokens)
                        .map(|j| {
                            if mask[b * s.tokens + j] == 0 {
                                return f64::NEG_INFINITY;
                            }
                            (0..s.head_dim)
                                .map(|c| {
                                    row(i)[head * s.head_dim + c] as f64
                                        * row(j)[h + head * s.head_dim + c] as f64
                                })
                                .sum::<f64>()
                                / (s.head_dim as f64).sqrt()
                        })
                        .collect();
                    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let weights: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                    let total: f64 = weights.iter().sum();
                    for c in 0..s.head_dim {
                        let v: f64 = (0..s.tokens)
                            .map(|j| {
                                weights[j] / total * row(j)[2 * h + head * s.head_dim + c] as f64
                            })
                            .sum();
                        out[(b * s.tokens + i) * h + head * s.head_dim + c] = v as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_naive_attention_and_ignores_padding() {
        let shape = Shape {
            batch: 2,
            tokens: 5,
            heads: 3,
            head_dim: 4,
        };
        let qkv: Vec<f32> = (0..2 * 5 * 3 * 12)
            .map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 2.0)
            .collect();
        let mask = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
        let ours = attention(&qkv, &mask, shape);
        for (a, b) in ours.iter().zip(reference(&qkv, &mask, shape)) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        // The second sequence alone, unpadded, gives the same context for its real tokens.
        let alone = attention(
            &qkv[5 * 36..8 * 36],
            &[1, 1, 1],
            Shape {
                batch: 1,
                tokens: 3,
                ..shape
            },
        );
        assert_eq!(&ours[5 * 12..8 * 12], alone.as_slice());
    }
}
