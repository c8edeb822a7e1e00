//! The wasm kernels (`+simd128`, see `.cargo/config.toml`). wasm has no 8-bit dot product:
//! weight bytes are widened to 16-bit lanes as they are loaded (activations come widened,
//! see `Q8Rows`) and multiplied with `i32x4.dot_i16x8_s`, eight products per instruction.
//! Scales are f32 already (candle converts f16 scales in software here, per block).

use core::arch::wasm32::*;

use super::activations::ActRow;
use super::q4::WeightRow;
use super::q8::{tile, Q8WeightRow};

#[target_feature(enable = "simd128")]
#[inline]
fn load_16(bytes: &[u8; 16]) -> v128 {
    // SAFETY: `bytes` is 16 readable bytes and `v128_load` has no alignment requirement.
    unsafe { v128_load(bytes.as_ptr().cast()) }
}

#[target_feature(enable = "simd128")]
#[inline]
fn load_half(bytes: &[i8; 32], half: usize) -> v128 {
    assert!(half < 2);
    // SAFETY: `half` is 0 or 1, so the 16 bytes read lie inside `bytes`; unaligned is fine.
    unsafe { v128_load(bytes.as_ptr().add(16 * half).cast()) }
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

/// Four vectors' lane totals as one vector, `[Σa, Σb, Σc, Σd]`: integer adds, so exact in
/// any order.
#[target_feature(enable = "simd128")]
#[inline]
fn totals_of_four([a, b, c, d]: [v128; 4]) -> v128 {
    let ab = i32x4_add(
        i32x4_shuffle::<0, 4, 1, 5>(a, b),
        i32x4_shuffle::<2, 6, 3, 7>(a, b),
    );
    let cd = i32x4_add(
        i32x4_shuffle::<0, 4, 1, 5>(c, d),
        i32x4_shuffle::<2, 6, 3, 7>(c, d),
    );
    i32x4_add(
        i32x4_shuffle::<0, 1, 4, 5>(ab, cd),
        i32x4_shuffle::<2, 3, 6, 7>(ab, cd),
    )
}

#[target_feature(enable = "simd128")]
#[inline]
fn total(v: v128) -> i32 {
    let v = i32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    i32x4_extract_lane::<0>(v) + i32x4_extract_lane::<1>(v)
}

/// q8_0 weights × 8-bit activations, bit-identical to `dot_scalar::dot_q8` (see there): each
/// block's products are summed exactly in 32-bit integers, and only then scaled and added,
/// block after block. Four products' block totals are gathered into one vector, so their
/// scaling and accumulation are one multiply and one add.
#[target_feature(enable = "simd128")]
pub(crate) fn dot_q8<const W: usize, const R: usize>(
    w: &[Q8WeightRow; W],
    x: &[ActRow; R],
) -> [[f32; R]; W] {
    let mut out = [[0f32; R]; W];
    // Float accumulators, four products each, in (weight row, activation row) order.
    let mut acc = [f32x4_splat(0.0); 4];
    debug_assert!(W * R <= 16);
    for b in 0..x[0].qs.len() {
        let mut sums = [[i32x4_splat(0); R]; W];
        for half in 0..2 {
            for (i, sums) in sums.iter_mut().enumerate() {
                let packed = load_half(&w[i].blocks[b].qs, half);
                let (low, high) = (
                    i16x8_extend_low_i8x16(packed),
                    i16x8_extend_high_i8x16(packed),
                );
                for (r, sum) in sums.iter_mut().enumerate() {
                    let (a0, a1) = load_wide(&x[r].wide[b], half);
                    *sum = i32x4_add(
                        *sum,
                        i32x4_add(i32x4_dot_i16x8(low, a0), i32x4_dot_i16x8(high, a1)),
                    );
                }
            }
        }
        if W * R == 1 {
            // Decode: one product, so a scalar total and a scalar accumulator.
            let scale = w[0].blocks[b].scale * x[0].scales[b];
            out[0][0] += scale * total(sums[0][0]) as f32;
            continue;
        }
        // With four activation rows (prefill), group i is weight row i: its scales are that
        // row's scale times the four rows' ones, the same products `tile::scales` forms.
        let activation_scales = (R == 4).then(|| {
            f32x4(
                x[0].scales[b],
                x[1 % R].scales[b],
                x[2 % R].scales[b],
                x[3 % R].scales[b],
            )
        });
        for (group, acc) in acc.iter_mut().enumerate().take(tile::groups(W, R)) {
            let totals = totals_of_four(std::array::from_fn(|lane| {
                tile::product::<W, R>(group, lane).map_or(i32x4_splat(0), |(i, r)| sums[i][r])
            }));
            let scales = match activation_scales {
                Some(xs) => f32x4_mul(f32x4_splat(w[group].blocks[b].scale), xs),
                None => {
                    let [s0, s1, s2, s3] = tile::scales(w, x, b, group);
                    f32x4(s0, s1, s2, s3)
                }
            };
            *acc = f32x4_add(*acc, f32x4_mul(f32x4_convert_i32x4(totals), scales));
        }
    }
    if W * R == 1 {
        return out;
    }
    tile::unpack(acc.map(|v| {
        [
            f32x4_extract_lane::<0>(v),
            f32x4_extract_lane::<1>(v),
            f32x4_extract_lane::<2>(v),
            f32x4_extract_lane::<3>(v),
        ]
    }))
}
