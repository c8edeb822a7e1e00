//! The wasm kernels (`+simd128`, see `.cargo/config.toml`). wasm has no 8-bit dot product:
//! each block's bytes are widened to 16-bit lanes once (weights per row, activations per
//! block) and multiplied with `i32x4.dot_i16x8_s`, eight products per instruction. Scales
//! are f32 already (candle converts f16 scales in software here, per block).

use core::arch::wasm32::*;

use super::activations::ActRow;
use super::q4::WeightRow;
use super::q8::Q8WeightRow;

#[target_feature(enable = "simd128")]
#[inline]
fn load_16(bytes: &[u8; 16]) -> v128 {
    // SAFETY: `bytes` is 16 readable bytes and `v128_load` has no alignment requirement.
    unsafe { v128_load(bytes.as_ptr().cast()) }
}

#[target_feature(enable = "simd128")]
#[inline]
fn load_halves(bytes: &[i8; 32]) -> (v128, v128) {
    // SAFETY: `bytes` is 32 readable bytes; both loads stay inside it, unaligned is fine.
    unsafe {
        (
            v128_load(bytes.as_ptr().cast()),
            v128_load(bytes.as_ptr().add(16).cast()),
        )
    }
}

/// A block's 32 signed bytes as four vectors of 16-bit lanes.
#[target_feature(enable = "simd128")]
#[inline]
fn widen(bytes: &[i8; 32]) -> [v128; 4] {
    let (low, high) = load_halves(bytes);
    [
        i16x8_extend_low_i8x16(low),
        i16x8_extend_high_i8x16(low),
        i16x8_extend_low_i8x16(high),
        i16x8_extend_high_i8x16(high),
    ]
}

/// The 32 products of two widened blocks, summed into four 32-bit lanes.
#[target_feature(enable = "simd128")]
#[inline]
fn dot_32(a: &[v128; 4], b: &[v128; 4]) -> v128 {
    i32x4_add(
        i32x4_add(i32x4_dot_i16x8(a[0], b[0]), i32x4_dot_i16x8(a[1], b[1])),
        i32x4_add(i32x4_dot_i16x8(a[2], b[2]), i32x4_dot_i16x8(a[3], b[3])),
    )
}

#[target_feature(enable = "simd128")]
#[inline]
fn horizontal_sum(v: v128) -> f32 {
    f32x4_extract_lane::<0>(v)
        + f32x4_extract_lane::<1>(v)
        + f32x4_extract_lane::<2>(v)
        + f32x4_extract_lane::<3>(v)
}

// On wasm a `target_feature` function is safe to call: an engine without SIMD refuses the
// whole module when it loads, so this code never runs without it.
#[target_feature(enable = "simd128")]
pub(crate) fn dot_q4<const W: usize, const R: usize, const HAS_MIN: bool>(
    w: &[WeightRow; W],
    x: &[ActRow; R],
) -> [[f32; R]; W] {
    let mut acc = [[f32x4_splat(0.0); R]; W];
    let mut offsets = [[0f32; R]; W];
    for b in 0..x[0].qs.len() {
        // Each block's bytes widened to 16 bits once, then shared by all W × R products.
        let activations: [[v128; 4]; R] = std::array::from_fn(|r| widen(&x[r].qs[b]));
        for i in 0..W {
            let packed = load_16(&w[i].nibbles[b]);
            let low = v128_and(packed, u8x16_splat(0x0F));
            let high = u8x16_shr(packed, 4);
            let weights = [
                u16x8_extend_low_u8x16(low),
                u16x8_extend_high_u8x16(low),
                u16x8_extend_low_u8x16(high),
                u16x8_extend_high_u8x16(high),
            ];
            let d = w[i].scales[b];
            // q4_0's minimum is −8 × d: sum d × block sums and scale once at the end.
            let min = if HAS_MIN { w[i].mins[b] } else { d };
            for r in 0..R {
                let sums = dot_32(&weights, &activations[r]);
                let scale = f32x4_splat(d * x[r].scales[b]);
                acc[i][r] = f32x4_add(acc[i][r], f32x4_mul(f32x4_convert_i32x4(sums), scale));
                offsets[i][r] += min * x[r].sums[b];
            }
        }
    }
    let mut out = offsets;
    for (out, acc) in out.iter_mut().zip(acc) {
        for (out, acc) in out.iter_mut().zip(acc) {
            if !HAS_MIN {
                *out *= -8.0;
            }
            *out += horizontal_sum(acc);
        }
    }
    out
}

#[target_feature(enable = "simd128")]
pub(crate) fn dot_q8<const W: usize, const R: usize>(
    w: &[Q8WeightRow; W],
    x: &[ActRow; R],
) -> [[f32; R]; W] {
    let mut acc = [[f32x4_splat(0.0); R]; W];
    for b in 0..x[0].qs.len() {
        let activations: [[v128; 4]; R] = std::array::from_fn(|r| widen(&x[r].qs[b]));
        for i in 0..W {
            let block = &w[i].blocks[b];
            let weights = widen(&block.qs);
            let d = block.scale;
            for r in 0..R {
                let sums = dot_32(&weights, &activations[r]);
                let scale = f32x4_splat(d * x[r].scales[b]);
                acc[i][r] = f32x4_add(acc[i][r], f32x4_mul(f32x4_convert_i32x4(sums), scale));
            }
        }
    }
    let mut out = [[0f32; R]; W];
    for (out, acc) in out.iter_mut().zip(acc) {
        for (out, acc) in out.iter_mut().zip(acc) {
            *out = horizontal_sum(acc);
        }
    }
    out
}
