//! The portable kernel: the definition the SIMD kernels are tested against, and the one used
//! where neither AVX2 nor wasm SIMD is enabled at compile time.

use super::activations::ActRow;
use super::q4::WeightRow;
use super::q8::{Q8PanelBlock, PANEL};
use super::BLOCK;

/// One block of activations to 8 bits: scale `d` = largest magnitude / 127, each value
/// `v / d` rounded half to even (as ggml's AVX code rounds, and one SIMD instruction does),
/// widened to 16 bits too; returns `d` and the sum of the quantized values.
pub(crate) fn quantize_block(
    block: &[f32; BLOCK],
    q: &mut [i8; BLOCK],
    wide: &mut [i16; BLOCK],
) -> (f32, i32) {
    // The largest magnitude as the largest bit pattern of |v|: for non-negative floats the
    // two orders agree, and an integer max vectorizes everywhere, where `f32::max` is a
    // libm call in wasm (its `f32.max` treats NaN differently).
    let amax = f32::from_bits(block.iter().map(|v| v.abs().to_bits()).max().unwrap_or(0));
    let d = amax / 127.0;
    let inverse = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut total = 0i32;
    for ((q, wide), v) in q.iter_mut().zip(wide.iter_mut()).zip(block) {
        *q = (v * inverse).round_ties_even() as i8;
        *wide = *q as i16;
        total += *q as i32;
    }
    (d, total)
}

pub(crate) fn dot_q4<const W: usize, const R: usize, const HAS_MIN: bool>(
    w: &[WeightRow; W],
    x: &[ActRow; R],
) -> [[f32; R]; W] {
    let mut out = [[0f32; R]; W];
    for (w, out) in w.iter().zip(&mut out) {
        for (b, nibbles) in w.nibbles.iter().enumerate() {
            let d = w.scales[b];
            let min = if HAS_MIN { w.mins[b] } else { -8.0 * d };
            for (acc, x) in out.iter_mut().zip(x) {
                let q = &x.qs[b];
                let mut s = 0i32;
                for j in 0..16 {
                    s += (nibbles[j] & 0x0F) as i32 * q[j] as i32;
                    s += (nibbles[j] >> 4) as i32 * q[j + 16] as i32;
                }
                *acc += d * x.scales[b] * s as f32 + min * x.sums[b];
            }
        }
    }
    out
}

/// The definition every q8_0 kernel reproduces bit for bit: per block, the exact integer
/// sum of the 32 products, times (weight scale × activation scale), added to the running
/// sum, block after block. Integer sums are exact in any order, and this leaves the float
/// steps one order, so the int8 embedder gives the same vectors natively and in wasm.
/// `out[r][lane]` is the panel's row `lane` · `x[r]`.
pub(crate) fn dot_q8<const R: usize>(panel: &[Q8PanelBlock], x: &[ActRow; R]) -> [[f32; PANEL]; R] {
    let mut out = [[0f32; PANEL]; R];
    for (b, block) in panel.iter().enumerate() {
        for (out, x) in out.iter_mut().zip(x) {
            for (lane, acc) in out.iter_mut().enumerate() {
                let s: i32 = x.qs[b]
                    .iter()
                    .enumerate()
                    .map(|(c, &a)| block.weight(lane, c) as i32 * a as i32)
                    .sum();
                *acc += block.scales[lane] * x.scales[b] * s as f32;
            }
        }
    }
    out
}

/// Integer dot product of two int8 vectors (index search): exact, so every kernel gives the
/// same number.
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| x as i16 as i32 * y as i16 as i32)
        .sum()
}

/// Dot product of an f32 query with int8 values (index search; the caller applies the
/// scale). The definition every kernel computes bit for bit: four groups of eight partial
/// sums (so four additions are in flight, not one chain), products and sums never fused,
/// combined in a fixed tree, then the tail past the last 32 in order. LLVM vectorizes it for
/// wasm simd128.
pub(crate) fn dot_f32_i8(query: &[f32], values: &[i8]) -> f32 {
    let mut acc = [[0.0f32; 8]; 4];
    let body = query.len() / 32 * 32;
    for (q, v) in query[..body]
        .chunks_exact(32)
        .zip(values[..body].chunks_exact(32))
    {
        for (j, acc) in acc.iter_mut().enumerate() {
            for (lane, acc) in acc.iter_mut().enumerate() {
                *acc += q[8 * j + lane] * v[8 * j + lane] as f32;
            }
        }
    }
    let s: [f32; 8] = std::array::from_fn(|l| (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]));
    let total = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
    let tail = query[body..]
        .iter()
        .zip(&values[body..])
        .fold(0.0f32, |sum, (q, &v)| sum + q * v as f32);
    total + tail
}
