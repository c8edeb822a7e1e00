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
        attend_sequence(rows, mask, shape, context);
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

/// One sequence's `[q | k | v]` rows laid out per head as the two kernels stream through
/// them: queries pre-scaled by 1/√d (rows past the last token zero), keys transposed
/// (d × keys, zero past the last key), values as rows. Built for all heads in one pass over
/// the rows: a pass per head re-read the rows (600 KB for 128 tokens, more than a core's
/// L2) twelve times at a 4.6 KB stride, and that gather was a third of attention's time.
struct HeadLayouts {
    /// Per head: `padded_queries` rows of `d`.
    queries: Vec<f32>,
    /// Per head: `d` rows of `padded_keys`.
    keys_t: Vec<f32>,
    /// Per head: one row of `d` per key.
    values: Vec<f32>,
    keys: usize,
    padded_keys: usize,
    padded_queries: usize,
}

impl HeadLayouts {
    fn new(rows: &[f32], mask: &[u32], shape: Shape) -> Self {
        let (n, d, hidden, heads) = (shape.tokens, shape.head_dim, shape.hidden(), shape.heads);
        let row = |part: usize, t: usize| &rows[t * 3 * hidden + part * hidden..][..hidden];
        let keys: Vec<usize> = (0..n).filter(|&t| mask[t] != 0).collect();
        let padded_keys = keys.len().div_ceil(LANES) * LANES;
        let padded_queries = n.div_ceil(QUERIES) * QUERIES;
        let scale = 1.0 / (d as f32).sqrt();
        let mut queries = vec![0f32; heads * padded_queries * d];
        for t in 0..n {
            for (h, q) in row(0, t).chunks_exact(d).enumerate() {
                let out = &mut queries[(h * padded_queries + t) * d..][..d];
                for (o, &q) in out.iter_mut().zip(q) {
                    *o = q * scale;
                }
            }
        }
        let mut values = vec![0f32; heads * keys.len() * d];
        for (j, &t) in keys.iter().enumerate() {
            for (h, v) in row(2, t).chunks_exact(d).enumerate() {
                values[(h * keys.len() + j) * d..][..d].copy_from_slice(v);
            }
        }
        // Column `h·d + c` of the key rows is row c of head h's transposed keys, so the
        // transposed keys of all heads are one (hidden × padded_keys) matrix. Eight keys at a
        // time: their rows stay in L1 while each column's eight values are stored together.
        let mut keys_t = vec![0f32; hidden * padded_keys];
        for (block, group) in keys.chunks(LANES).enumerate() {
            let group: Vec<&[f32]> = group.iter().map(|&t| row(1, t)).collect();
            for (column, out) in keys_t.chunks_exact_mut(padded_keys).enumerate() {
                for (o, key) in out[block * LANES..].iter_mut().zip(&group) {
                    *o = key[column];
                }
            }
        }
        Self {
            queries,
            keys_t,
            values,
            keys: keys.len(),
            padded_keys,
            padded_queries,
        }
    }
}

/// All heads of one sequence, writing its rows of `context`.
fn attend_sequence(rows: &[f32], mask: &[u32], shape: Shape, context: &mut [f32]) {
    let (n, d, hidden) = (shape.tokens, shape.head_dim, shape.hidden());
    let layouts = HeadLayouts::new(rows, mask, shape);
    let (keys, padded_keys) = (layouts.keys, layouts.padded_keys);
    let mut scores = vec![0f32; layouts.padded_queries * padded_keys];
    for head in 0..shape.heads {
        let queries =
            &layouts.queries[head * layouts.padded_queries * d..][..layouts.padded_queries * d];
        let keys_t = &layouts.keys_t[head * d * padded_keys..][..d * padded_keys];
        let values = &layouts.values[head * keys * d..][..keys * d];
        score_blocks(queries, keys_t, d, padded_keys, padded_keys, &mut scores);
        for row in scores.chunks_exact_mut(padded_keys).take(n) {
            softmax_in_place(&mut row[..keys]);
        }
        for i in (0..n).step_by(2) {
            let pair = [i, (i + 1).min(n - 1)];
            let weights = pair.map(|q| &scores[q * padded_keys..q * padded_keys + keys]);
            for c in (0..d).step_by(CONTEXT_WIDTH) {
                let width = CONTEXT_WIDTH.min(d - c);
                let sums = weighted_values(weights, values, d, c);
                for (q, sum) in pair.into_iter().zip(sums) {
                    let start = q * hidden + head * d + c;
                    context[start..start + width].copy_from_slice(&sum[..width]);
                }
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
