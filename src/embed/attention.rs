//! BERT's self-attention and the other float steps around its matmuls, written so that
//! every sum has one order: the same bits natively and in wasm.
//!
//! Why not candle's: its matmul (gemm) picks a different micro-kernel per instruction set
//! (FMA natively, none in wasm) and its softmax calls the platform's `expf`. Those differ by
//! an ulp, and the int8 path rounds activations to 8 bits before every matmul, which turns
//! an ulp at a rounding boundary into a whole quantization step. Here each value is
//! accumulated in a fixed sequence (vectorized across independent outputs only), products
//! and sums are never fused, and `exp` is our own polynomial, so the query a visitor embeds
//! in the browser is the vector the native build computes for the same text.

/// e^x for x ≤ 0 (softmax after subtracting the row's maximum), to about one ulp:
/// x = n·ln2 + r with |r| ≤ ln2/2, e^r by its Taylor series to r⁶, scaled by 2ⁿ.
fn exp_non_positive(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75; // ln 2 split so that n · LN2_HI is exact
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 0.0); // below -87, e^x is under f32's smallest normal
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

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
    if shape.batch > 1 {
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

/// Keys per block of the score kernel and dimensions per register of the context kernel: one
/// AVX register, two wasm SIMD registers.
const LANES: usize = 8;
/// Queries per block of the score kernel: that many independent sums in flight.
const QUERIES: usize = 8;
/// Dimensions the context kernel keeps in registers per pass (32 = MiniLM's head width).
const CONTEXT_WIDTH: usize = 32;

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
    score_blocks(&queries, &keys_t, d, padded_keys, &mut scores);
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

/// `scores[i][j] = Σ_c queries[i][c] · keys_t[c][j]`, summed over c in order, for blocks of
/// 8 queries × 8 keys held in registers while the dimensions stream by.
fn score_blocks(queries: &[f32], keys_t: &[f32], d: usize, padded_keys: usize, scores: &mut [f32]) {
    for (block, out) in queries
        .chunks_exact(QUERIES * d)
        .zip(scores.chunks_exact_mut(QUERIES * padded_keys))
    {
        for j in (0..padded_keys).step_by(LANES) {
            let mut acc = [[0f32; LANES]; QUERIES];
            for c in 0..d {
                let start = c * padded_keys + j;
                let Ok(k) = <&[f32; LANES]>::try_from(&keys_t[start..start + LANES]) else {
                    continue; // unreachable: the slice is LANES long
                };
                for (q, acc) in acc.iter_mut().enumerate() {
                    let query = block[q * d + c];
                    for (a, &k) in acc.iter_mut().zip(k) {
                        *a += query * k;
                    }
                }
            }
            for (q, acc) in acc.iter().enumerate() {
                out[q * padded_keys + j..q * padded_keys + j + LANES].copy_from_slice(acc);
            }
        }
    }
}

/// `Σ_j weights[q][j] · values[j][first..first + 32]` for two queries, summed over j in key
/// order, the 2 × 32 sums in registers (dimensions past `d` come out zero).
fn weighted_values(
    weights: [&[f32]; 2],
    values: &[f32],
    d: usize,
    first: usize,
) -> [[f32; CONTEXT_WIDTH]; 2] {
    let mut acc = [[0f32; CONTEXT_WIDTH]; 2];
    let width = CONTEXT_WIDTH.min(d - first);
    for j in 0..weights[0].len() {
        let v = &values[j * d + first..j * d + first + width];
        for (acc, w) in acc.iter_mut().zip(weights) {
            let w = w[j];
            for (a, &v) in acc.iter_mut().zip(v) {
                *a += w * v;
            }
        }
    }
    acc
}

/// Softmax over `x`: the exponentials element-wise (so they vectorize), then one sum in the
/// fixed order of `norm::sum`.
fn softmax_in_place(x: &mut [f32]) {
    // A comparison, not `f32::max`, which is a libm call in wasm.
    let max = x
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    for v in x.iter_mut() {
        *v = exp_non_positive(*v - max);
    }
    let inverse = 1.0 / super::norm::sum(x);
    for v in x.iter_mut() {
        *v *= inverse;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_to_a_few_ulp() {
        for i in 0..=87_000 {
            let x = -(i as f32) / 1000.0;
            let (ours, reference) = (exp_non_positive(x), (x as f64).exp());
            let error = ((ours as f64 - reference) / reference).abs();
            assert!(error < 4e-7, "exp({x}) = {ours}, not {reference}");
        }
        assert_eq!(exp_non_positive(0.0), 1.0);
        assert_eq!(exp_non_positive(-1e4), exp_non_positive(-87.0));
    }

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
