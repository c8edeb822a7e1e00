//! The x86-64 kernel (AVX2 + FMA, which `.cargo/config.toml` enables for native builds):
//! unsigned nibbles × signed bytes with `vpmaddubsw`, 32 products per instruction, as
//! llama.cpp does. One weight block is unpacked once and used for all `R` activation rows.

use std::arch::x86_64::*;

use super::activations::ActRow;
use super::q4::WeightRow;
use super::q8::{Q8PanelBlock, PANEL};

#[target_feature(enable = "avx2,fma")]
#[inline]
fn load_16(bytes: &[u8; 16]) -> __m128i {
    // SAFETY: `bytes` is 16 readable bytes and `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
}

#[target_feature(enable = "avx2,fma")]
#[inline]
fn load_32(bytes: &[i8; 32]) -> __m256i {
    // SAFETY: `bytes` is 32 readable bytes and `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
}

#[target_feature(enable = "avx2,fma")]
#[inline]
fn horizontal_sum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

pub(crate) fn dot_q4<const W: usize, const R: usize, const HAS_MIN: bool>(
    w: &[WeightRow; W],
    x: &[ActRow; R],
) -> [[f32; R]; W] {
    // SAFETY: this module is compiled only when the build itself enables AVX2 and FMA (see the
    // `cfg` in mod.rs), so every machine that can run this code has them.
    unsafe { dot_q4_with_features::<W, R, HAS_MIN>(w, x) }
}

#[target_feature(enable = "avx2,fma")]
fn dot_q4_with_features<const W: usize, const R: usize, const HAS_MIN: bool>(
    w: &[WeightRow; W],
    x: &[ActRow; R],
) -> [[f32; R]; W] {
    let low_nibbles = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); R]; W];
    let mut offsets = [[0f32; R]; W];
    for b in 0..x[0].qs.len() {
        let activations: [__m256i; R] = std::array::from_fn(|r| load_32(&x[r].qs[b]));
        for i in 0..W {
            let packed = load_16(&w[i].nibbles[b]);
            // Bytes 0..16 hold elements 0..16 in their low nibbles, 16..32 in their high ones.
            let both = _mm256_set_m128i(_mm_srli_epi16::<4>(packed), packed);
            let weights = _mm256_and_si256(both, low_nibbles);
            let d = w[i].scales[b];
            // q4_0's minimum is −8 × d: sum d × block sums and scale once at the end.
            let min = if HAS_MIN { w[i].mins[b] } else { d };
            for r in 0..R {
                let products = _mm256_maddubs_epi16(weights, activations[r]);
                let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(products, ones));
                let scale = _mm256_set1_ps(d * x[r].scales[b]);
                acc[i][r] = _mm256_fmadd_ps(sums, scale, acc[i][r]);
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

pub(crate) fn dot_q8<const R: usize>(panel: &[Q8PanelBlock], x: &[ActRow; R]) -> [[f32; PANEL]; R] {
    // SAFETY: as for `dot_q4`: the build enables AVX2 and FMA for this module to exist.
    unsafe { dot_q8_with_features::<R>(panel, x) }
}

/// q8_0 panel × 8-bit activations, bit-identical to `dot_scalar::dot_q8` (see there), as
/// the wasm kernel does it (see `dot_simd128::dot_q8`) at twice the width: a panel's column
/// pair (32 bytes) widens to two vectors of eight rows, `vpmaddwd` with the activation pair
/// broadcast gives eight rows' sums, each lane one row's exact block total; scaled lane by
/// lane with separate multiplies and adds (no FMA, which wasm does not have).
#[target_feature(enable = "avx2,fma")]
fn dot_q8_with_features<const R: usize>(
    panel: &[Q8PanelBlock],
    x: &[ActRow; R],
) -> [[f32; PANEL]; R] {
    const HALVES: usize = PANEL / 8;
    let mut acc = [[_mm256_setzero_ps(); HALVES]; R];
    for (b, block) in panel.iter().enumerate() {
        let mut sums = [[_mm256_setzero_si256(); HALVES]; R];
        for (t, pair) in block.pairs.iter().enumerate() {
            let bytes = load_32(pair);
            let weights = [
                _mm256_cvtepi8_epi16(_mm256_castsi256_si128(bytes)),
                _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(bytes)),
            ];
            for (sums, x) in sums.iter_mut().zip(x) {
                let wide = &x.wide[b];
                let pair =
                    (wide[2 * t] as u16 as u32 | (wide[2 * t + 1] as u16 as u32) << 16) as i32;
                let a = _mm256_set1_epi32(pair);
                for (sum, &w) in sums.iter_mut().zip(&weights) {
                    *sum = _mm256_add_epi32(*sum, _mm256_madd_epi16(w, a));
                }
            }
        }
        let scales: [__m256; HALVES] = std::array::from_fn(|h| load_8_f32(&block.scales, h));
        for ((acc, sums), x) in acc.iter_mut().zip(&sums).zip(x) {
            let activation_scale = _mm256_set1_ps(x.scales[b]);
            for ((acc, &sum), &scale) in acc.iter_mut().zip(sums).zip(&scales) {
                let scale = _mm256_mul_ps(scale, activation_scale);
                *acc = _mm256_add_ps(*acc, _mm256_mul_ps(_mm256_cvtepi32_ps(sum), scale));
            }
        }
    }
    acc.map(|halves| {
        let mut out = [0f32; PANEL];
        for (out, v) in out.chunks_exact_mut(8).zip(halves) {
            // SAFETY: `out` is 8 writable floats; `storeu` has no alignment requirement.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
        }
        out
    })
}

/// Scales `8 × half .. 8 × half + 8` of a panel block.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn load_8_f32(scales: &[f32; PANEL], half: usize) -> __m256 {
    assert!(half < PANEL / 8);
    // SAFETY: `half < 2`, so the 32 bytes read lie inside `scales`; unaligned is fine.
    unsafe { _mm256_loadu_ps(scales.as_ptr().add(8 * half)) }
}

#[target_feature(enable = "avx2,fma")]
#[inline]
fn total(v: __m256i) -> i32 {
    let v = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let v = _mm_add_epi32(v, _mm_shuffle_epi32::<0b01_00_11_10>(v));
    let v = _mm_add_epi32(v, _mm_shuffle_epi32::<0b10_11_00_01>(v));
    _mm_cvtsi128_si32(v)
}

/// `dot_scalar::dot_i8` with 32 products per `vpmaddubsw` (signed × signed through |a| times
/// b carrying a's sign; the pairwise 16-bit sums cannot saturate for values in [-127, 127]).
/// `a` and `b` are equally long.
pub(crate) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let body = a.len() / 32 * 32;
    // SAFETY: the build enables AVX2 for this module to exist (see mod.rs).
    let sum = unsafe { dot_i8_body(&a[..body], &b[..body]) };
    sum + super::dot_scalar::dot_i8(&a[body..], &b[body..])
}

#[target_feature(enable = "avx2,fma")]
fn dot_i8_body(a: &[i8], b: &[i8]) -> i32 {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_si256(); 2];
    for (i, (a, b)) in a.chunks_exact(32).zip(b.chunks_exact(32)).enumerate() {
        let Ok(a) = <&[i8; 32]>::try_from(a) else {
            continue; // unreachable: chunks of 32
        };
        let Ok(b) = <&[i8; 32]>::try_from(b) else {
            continue;
        };
        let (a, b) = (load_32(a), load_32(b));
        let products = _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
        acc[i % 2] = _mm256_add_epi32(acc[i % 2], _mm256_madd_epi16(products, ones));
    }
    total(_mm256_add_epi32(acc[0], acc[1]))
}

/// `dot_scalar::dot_f32_i8`'s sums with AVX2 intrinsics (LLVM keeps the portable loop's
/// 4 × 8 sums in memory natively): four registers of eight partial sums, multiplies and adds
/// unfused, the same tree. `query` and `values` are equally long.
pub(crate) fn dot_f32_i8(query: &[f32], values: &[i8]) -> f32 {
    let body = query.len() / 32 * 32;
    // SAFETY: the build enables AVX2 and FMA for this module to exist (see mod.rs).
    let sum = unsafe { dot_f32_i8_body(&query[..body], &values[..body]) };
    sum + super::dot_scalar::dot_f32_i8(&query[body..], &values[body..])
}

#[target_feature(enable = "avx2,fma")]
fn dot_f32_i8_body(query: &[f32], values: &[i8]) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 4];
    for (q, v) in query.chunks_exact(32).zip(values.chunks_exact(32)) {
        for (j, sums) in acc.iter_mut().enumerate() {
            // Eight int8 values widened to f32, times eight query values.
            // SAFETY: `v` and `q` hold 32 values, so 8 at offset 8 × j (j < 4) are readable;
            // the loads have no alignment requirement.
            let (v, q) = unsafe {
                let bytes = _mm_loadl_epi64(v.as_ptr().add(8 * j).cast());
                (
                    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)),
                    _mm256_loadu_ps(q.as_ptr().add(8 * j)),
                )
            };
            *sums = _mm256_add_ps(*sums, _mm256_mul_ps(q, v));
        }
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    // (s0 + s4, s1 + s5, s2 + s6, s3 + s7), then ((s0+s4) + (s2+s6)) + ((s1+s5) + (s3+s7)).
    let half = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
    let pairs = _mm_add_ps(half, _mm_movehl_ps(half, half));
    _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps::<1>(pairs, pairs)))
}
