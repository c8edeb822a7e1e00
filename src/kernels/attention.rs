//! The float steps of attention, written so that every value is summed in one fixed order:
//! the same bits natively and in wasm, with SIMD or without, on any CPU, and whatever else
//! shares the call (other queries, how many keys follow a query's causal limit).
//!
//! Why not candle's: its matmul (gemm) picks a micro-kernel and a blocking by instruction
//! set (AVX-512, AVX2 with FMA natively, no FMA in wasm) and by shape, and its softmax sums
//! in vectors whose split depends on the row's length and calls the platform's `expf`. So a
//! position's numbers changed with how a prompt was split into prefill calls, and with the
//! CPU; at a near-tie that flips a greedy choice. Here each value is accumulated in a fixed
//! sequence (vectorized across independent outputs only), products and sums are never
//! fused, and `exp` is our own polynomial. BERT (`embed`) and both generators use them.

/// Keys per block of the score kernel and dimensions per register of the context kernel: one
/// AVX register, two wasm SIMD registers.
pub(crate) const LANES: usize = 8;
/// Queries per block of the score kernel: that many independent sums in flight.
pub(crate) const QUERIES: usize = 8;
/// Dimensions the context kernel keeps in registers per pass (32 = MiniLM's head width).
pub(crate) const CONTEXT_WIDTH: usize = 32;

/// e^x for x ≤ 0 (softmax after subtracting the row's maximum), to about one ulp:
/// x = n·ln2 + r with |r| ≤ ln2/2, e^r by its Taylor series to r⁶, scaled by 2ⁿ.
pub(crate) fn exp_non_positive(x: f32) -> f32 {
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

/// Sum of `x` as eight interleaved partial sums combined in a fixed tree: the same result
/// everywhere, and a shape LLVM vectorizes without reordering anything.
pub(crate) fn sum(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    let tail: f32 = chunks.remainder().iter().fold(0.0, |a, &v| a + v);
    ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6]))
        + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
        + tail
}

/// Softmax over `x`: the exponentials element-wise (so they vectorize), then one sum in the
/// fixed order of [`sum`].
pub(crate) fn softmax_in_place(x: &mut [f32]) {
    // A comparison, not `f32::max`, which is a libm call in wasm.
    let max = x
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    for v in x.iter_mut() {
        *v = exp_non_positive(*v - max);
    }
    let inverse = 1.0 / sum(x);
    for v in x.iter_mut() {
        *v *= inverse;
    }
}

/// `scores[i][j] = Σ_c queries[i][c] · keys_t[c][j]`, summed over c in order. `queries`
/// holds rows of `d`; `keys_t` is d rows of `stride` values, of which the first `keys` (a
/// multiple of 8) are scored; `scores` has rows of `keys`. Blocks of 8 queries × 8 keys are
/// held in registers while the dimensions stream by; the rows past the last multiple of 8
/// (a decoding step's few queries) go one at a time against 32 keys. Every score is the same
/// sum in the same order whichever block computes it, so the bits do not depend on how many
/// queries share a call.
pub(crate) fn score_blocks(
    queries: &[f32],
    keys_t: &[f32],
    d: usize,
    stride: usize,
    keys: usize,
    scores: &mut [f32],
) {
    debug_assert!(keys.is_multiple_of(LANES) && keys <= stride);
    let rows = queries.len() / d.max(1);
    let full = rows / QUERIES * QUERIES;
    let (block_queries, rest_queries) = queries.split_at(full * d);
    let (block_scores, rest_scores) = scores.split_at_mut(full * keys);
    for (block, out) in block_queries
        .chunks_exact(QUERIES * d)
        .zip(block_scores.chunks_exact_mut(QUERIES * keys))
    {
        score_tiles::<QUERIES, 1>(block, keys_t, d, stride, keys, out);
    }
    for (row, out) in rest_queries
        .chunks_exact(d)
        .zip(rest_scores.chunks_exact_mut(keys))
    {
        score_tiles::<1, 4>(row, keys_t, d, stride, keys, out);
    }
}

/// `Q` queries against the keys, `KB` blocks of 8 keys at a time (then one block at a time
/// for what is left): `Q × KB × 8` independent sums in flight.
fn score_tiles<const Q: usize, const KB: usize>(
    queries: &[f32],
    keys_t: &[f32],
    d: usize,
    stride: usize,
    keys: usize,
    out: &mut [f32],
) {
    let wide = keys / (KB * LANES) * (KB * LANES);
    for j in (0..wide).step_by(KB * LANES) {
        score_tile::<Q, KB>(queries, keys_t, d, stride, keys, j, out);
    }
    for j in (wide..keys).step_by(LANES) {
        score_tile::<Q, 1>(queries, keys_t, d, stride, keys, j, out);
    }
}

#[inline(always)]
fn score_tile<const Q: usize, const KB: usize>(
    queries: &[f32],
    keys_t: &[f32],
    d: usize,
    stride: usize,
    keys: usize,
    j: usize,
    out: &mut [f32],
) {
    let mut acc = [[[0f32; LANES]; KB]; Q];
    for c in 0..d {
        for (kb, lanes) in (0..KB).map(|kb| (kb, c * stride + j + kb * LANES)) {
            let Ok(k) = <&[f32; LANES]>::try_from(&keys_t[lanes..lanes + LANES]) else {
                continue; // unreachable: the slice is LANES long
            };
            for (q, acc) in acc.iter_mut().enumerate() {
                let query = queries[q * d + c];
                for (a, &k) in acc[kb].iter_mut().zip(k) {
                    *a += query * k;
                }
            }
        }
    }
    for (q, acc) in acc.iter().enumerate() {
        for (kb, acc) in acc.iter().enumerate() {
            let at = q * keys + j + kb * LANES;
            out[at..at + LANES].copy_from_slice(acc);
        }
    }
}

/// `Σ_j weights[q][j] · values[j][first..first + 32]` for `R` queries (two, or one for an
/// odd one out), summed over j in key order, the R × 32 sums in registers (dimensions past
/// `d` come out zero); a query's sums do not depend on `R`. `values` holds
/// rows of `d`. A weight of zero adds an exact zero, so keys past a query's causal limit
/// (given weight 0) leave its sums as they would be without them.
pub(crate) fn weighted_values<const R: usize>(
    weights: [&[f32]; R],
    values: &[f32],
    d: usize,
    first: usize,
) -> [[f32; CONTEXT_WIDTH]; R] {
    let mut acc = [[0f32; CONTEXT_WIDTH]; R];
    let width = CONTEXT_WIDTH.min(d - first);
    if width == CONTEXT_WIDTH {
        // The same sums as below, over fixed-size rows: the compiler then keeps the R × 32
        // sums in registers with no bounds check per key (the loop below spilled them to
        // the stack, a third of the builder's attention time).
        for (j, row) in values.chunks_exact(d).take(weights[0].len()).enumerate() {
            let Ok(v) = <&[f32; CONTEXT_WIDTH]>::try_from(&row[first..first + CONTEXT_WIDTH])
            else {
                continue; // unreachable: first + 32 ≤ d
            };
            for (acc, w) in acc.iter_mut().zip(weights) {
                let w = w[j];
                for (a, &v) in acc.iter_mut().zip(v) {
                    *a += w * v;
                }
            }
        }
        return acc;
    }
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

    /// A query's scores have the same bits in a full block of eight and alone.
    #[test]
    fn scores_do_not_depend_on_the_block() {
        let (d, keys) = (24, 48);
        let keys_t: Vec<f32> = (0..d * keys)
            .map(|i| ((i * 31 % 97) as f32 - 48.0) / 13.0)
            .collect();
        let queries: Vec<f32> = (0..11 * d)
            .map(|i| ((i * 17 % 89) as f32 - 44.0) / 11.0)
            .collect();
        let mut all = vec![0f32; 11 * keys];
        score_blocks(&queries, &keys_t, d, keys, keys, &mut all);
        for row in 0..11 {
            let mut alone = vec![0f32; keys];
            score_blocks(
                &queries[row * d..(row + 1) * d],
                &keys_t,
                d,
                keys,
                keys,
                &mut alone,
            );
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&alone),
                bits(&all[row * keys..(row + 1) * keys]),
                "row {row}"
            );
            let naive: Vec<f32> = (0..keys)
                .map(|j| (0..d).fold(0f32, |s, c| s + queries[row * d + c] * keys_t[c * keys + j]))
                .collect();
            assert_eq!(bits(&alone), bits(&naive), "row {row}: the sum in order");
        }
    }

    #[test]
    fn trailing_zero_weights_change_no_bit() {
        let d = 40;
        let values: Vec<f32> = (0..12 * d)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let weights: Vec<f32> = (0..7).map(|j| 1.0 / (j as f32 + 1.5)).collect();
        let mut padded = weights.clone();
        padded.resize(12, 0.0);
        for first in [0, 32] {
            let short = weighted_values([&weights, &weights], &values[..7 * d], d, first);
            let long = weighted_values([&padded, &padded], &values, d, first);
            assert_eq!(short[0].map(f32::to_bits), long[0].map(f32::to_bits));
        }
    }
}
