//! The wasm kernels (`+simd128`, see `.cargo/config.toml`). wasm has no 8-bit dot product:
//! weight bytes are widened to 16-bit lanes as they are loaded (activations come widened,
//! see `Q8Rows`) and multiplied with `i32x4.dot_i16x8_s`, eight products per instruction.
//! Scales are f32 already (candle converts f16 scales in software here, per block).

use core::arch::wasm32::*;

use super::activations::ActRow;
use super::q4::WeightRow;
use super::q8::{Q8PanelBlock, PAIRS, PANEL};
use super::BLOCK;

#[target_feature(enable = "simd128")]
#[inline]
fn load_16(bytes: &[u8; 16]) -> v128 {
    // SAFETY: `bytes` is 16 readable bytes and `v128_load` has no alignment requirement.
    unsafe { v128_load(bytes.as_ptr().cast()) }
}

/// Bytes `16 × half .. 16 × half + 16` of a panel's column pair (eight rows' pairs).
#[target_feature(enable = "simd128")]
#[inline]
fn load_pair_half(bytes: &[i8; 2 * PANEL], half: usize) -> v128 {
    assert!(half < 2);
    // SAFETY: `half` is 0 or 1, so the 16 bytes read lie inside `bytes`; unaligned is fine.
    unsafe { v128_load(bytes.as_ptr().add(16 * half).cast()) }
}

/// Scales `4 × quarter .. 4 × quarter + 4` of a panel block.
#[target_feature(enable = "simd128")]
#[inline]
fn load_scales(scales: &[f32; PANEL], quarter: usize) -> v128 {
    assert!(quarter < PANEL / 4);
    // SAFETY: `quarter < 4`, so the 16 bytes read lie inside `scales`.
    unsafe { v128_load(scales.as_ptr().add(4 * quarter).cast()) }
}

/// Values `16 × half .. 16 × half + 16` of a widened activation block, as two vectors.
#[target_feature(enable = "simd128")]
#[inline]
fn load_wide(values: &[i16; 32], half: usize) -> (v128, v128) {
    assert!(half < 2);
    // SAFETY: `half` is 0 or 1, so both 16-byte reads lie inside the 64-byte `values`.
    unsafe {
        let p = values.as_ptr().add(16 * half);
        (v128_load(p.cast()), v128_load(p.add(8).cast()))
    }
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
        // Activation blocks come widened to 16 bits (`Q8Rows`), shared by all W × R products.
        let activations: [[v128; 4]; R] = std::array::from_fn(|r| {
            let ((a0, a1), (a2, a3)) = (load_wide(&x[r].wide[b], 0), load_wide(&x[r].wide[b], 1));
            [a0, a1, a2, a3]
        });
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

/// Columns `2t` and `2t + 1` of a widened activation block as one 32-bit value, in every
/// lane.
#[target_feature(enable = "simd128")]
#[inline]
fn pair_splat(values: &[i16; BLOCK], t: usize) -> v128 {
    assert!(t < PAIRS);
    // SAFETY: `t < 16`, so the 4 bytes read (values 2t and 2t + 1) lie inside `values`.
    unsafe { v128_load32_splat(values.as_ptr().add(2 * t).cast()) }
}

/// q8_0 panel × 8-bit activations, bit-identical to `dot_scalar::dot_q8` (see there). Each
/// 16-byte load of a panel is eight rows' column pair; widened, `dot_i16x8` with the
/// activation pair broadcast leaves four rows' sums in four lanes, so each lane of the
/// 32-bit accumulators is one weight row's exact block total, scaled lane by lane (weight
/// scale × activation scale, then times the total, then added, as the definition does).
#[target_feature(enable = "simd128")]
pub(crate) fn dot_q8<const R: usize>(panel: &[Q8PanelBlock], x: &[ActRow; R]) -> [[f32; PANEL]; R] {
    const QUARTERS: usize = PANEL / 4;
    let mut acc = [[f32x4_splat(0.0); QUARTERS]; R];
    for (b, block) in panel.iter().enumerate() {
        let mut sums = [[i32x4_splat(0); QUARTERS]; R];
        for (t, pair) in block.pairs.iter().enumerate() {
            let (front, back) = (load_pair_half(pair, 0), load_pair_half(pair, 1));
            let weights = [
                i16x8_extend_low_i8x16(front),
                i16x8_extend_high_i8x16(front),
                i16x8_extend_low_i8x16(back),
                i16x8_extend_high_i8x16(back),
            ];
            for (sums, x) in sums.iter_mut().zip(x) {
                let a = pair_splat(&x.wide[b], t);
                for (sum, &w) in sums.iter_mut().zip(&weights) {
                    *sum = i32x4_add(*sum, i32x4_dot_i16x8(w, a));
                }
            }
        }
        let scales: [v128; QUARTERS] = std::array::from_fn(|q| load_scales(&block.scales, q));
        for ((acc, sums), x) in acc.iter_mut().zip(&sums).zip(x) {
            let activation_scale = f32x4_splat(x.scales[b]);
            for ((acc, &sum), &scale) in acc.iter_mut().zip(sums).zip(&scales) {
                let scale = f32x4_mul(scale, activation_scale);
                *acc = f32x4_add(*acc, f32x4_mul(f32x4_convert_i32x4(sum), scale));
            }
        }
    }
    acc.map(|quarters| {
        let mut out = [0f32; PANEL];
        for (out, v) in out.chunks_exact_mut(4).zip(quarters) {
            out.copy_from_slice(&[
                f32x4_extract_lane::<0>(v),
                f32x4_extract_lane::<1>(v),
                f32x4_extract_lane::<2>(v),
                f32x4_extract_lane::<3>(v),
            ]);
        }
        out
    })
}

/// `dot_scalar::quantize_block`, the same bits: the largest |v| as the largest bit pattern
/// (an unsigned max), `v × (1 / d)` rounded half to even by `f32x4.nearest`, then narrowed
/// (the values are integers in −127..=127, so no conversion or narrowing saturates).
#[target_feature(enable = "simd128")]
pub(crate) fn quantize_block(
    block: &[f32; BLOCK],
    q: &mut [i8; BLOCK],
    wide: &mut [i16; BLOCK],
) -> (f32, i32) {
    // SAFETY: every access is 16 bytes at an offset below the array's end: eight of `block`'s
    // 128 bytes, four of `wide`'s 64, two of `q`'s 32; unaligned is fine.
    unsafe {
        let values: [v128; 8] =
            std::array::from_fn(|i| v128_load(block.as_ptr().add(4 * i).cast()));
        let magnitude = |v: v128| v128_and(v, u32x4_splat(0x7fff_ffff));
        let mut largest = magnitude(values[0]);
        for &v in &values[1..] {
            largest = u32x4_max(largest, magnitude(v));
        }
        largest = u32x4_max(largest, i32x4_shuffle::<2, 3, 0, 1>(largest, largest));
        largest = u32x4_max(largest, i32x4_shuffle::<1, 0, 3, 2>(largest, largest));
        let d = f32::from_bits(u32x4_extract_lane::<0>(largest)) / 127.0;
        let inverse = f32x4_splat(if d > 0.0 { 1.0 / d } else { 0.0 });
        let ints = values.map(|v| i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(v, inverse))));
        let halves: [v128; 4] =
            std::array::from_fn(|i| i16x8_narrow_i32x4(ints[2 * i], ints[2 * i + 1]));
        for (i, &half) in halves.iter().enumerate() {
            v128_store(wide.as_mut_ptr().add(8 * i).cast(), half);
        }
        v128_store(
            q.as_mut_ptr().cast(),
            i8x16_narrow_i16x8(halves[0], halves[1]),
        );
        v128_store(
            q.as_mut_ptr().add(16).cast(),
            i8x16_narrow_i16x8(halves[2], halves[3]),
        );
        let mut total = ints[0];
        for &v in &ints[1..] {
            total = i32x4_add(total, v);
        }
        total = i32x4_add(total, i32x4_shuffle::<2, 3, 0, 1>(total, total));
        total = i32x4_add(total, i32x4_shuffle::<1, 0, 3, 2>(total, total));
        (d, i32x4_extract_lane::<0>(total))
    }
}
