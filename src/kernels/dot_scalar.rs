//! The portable kernel: the definition the SIMD kernels are tested against, and the one used
//! where neither AVX2 nor wasm SIMD is enabled at compile time.

use super::activations::ActRow;
use super::q4::WeightRow;
use super::q8::Q8WeightRow;

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
pub(crate) fn dot_q8<const W: usize, const R: usize>(
    w: &[Q8WeightRow; W],
    x: &[ActRow; R],
) -> [[f32; R]; W] {
    let mut out = [[0f32; R]; W];
    for (w, out) in w.iter().zip(&mut out) {
        for (b, block) in w.blocks.iter().enumerate() {
            for (acc, x) in out.iter_mut().zip(x) {
                let s: i32 = block
                    .qs
                    .iter()
                    .zip(&x.qs[b])
                    .map(|(&a, &b)| a as i32 * b as i32)
                    .sum();
                *acc += block.scale * x.scales[b] * s as f32;
            }
        }
    }
    out
}
