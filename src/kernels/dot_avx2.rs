//! The x86-64 kernel (AVX2 + FMA, which `.cargo/config.toml` enables for native builds):
//! unsigned nibbles × signed bytes with `vpmaddubsw`, 32 products per instruction, as
//! llama.cpp does. One weight block is unpacked once and used for all `R` activation rows.

use std::arch::x86_64::*;

use super::activations::ActRow;
use super::q4::WeightRow;
use super::q8::Q8WeightRow;

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

pub(crate) fn dot_q8<const W: usize, const R: usize>(
    w: &[Q8WeightRow; W],
    x: &[ActRow; R],
) -> [[f32; R]; W] {
    // SAFETY: as for `dot_q4`: the build enables AVX2 and FMA for this module to exist.
    unsafe { dot_q8_with_features::<W, R>(w, x) }
}

/// Signed × signed bytes through `vpmaddubsw` (unsigned × signed) as ggml does: |w| times x
/// carrying w's sign.
#[target_feature(enable = "avx2,fma")]
fn dot_q8_with_features<const W: usize, const R: usize>(
    w: &[Q8WeightRow; W],
    x: &[ActRow; R],
) -> [[f32; R]; W] {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); R]; W];
    for b in 0..x[0].qs.len() {
        let activations: [__m256i; R] = std::array::from_fn(|r| load_32(&x[r].qs[b]));
        for i in 0..W {
            let block = &w[i].blocks[b];
            let weights = load_32(&block.qs);
            let magnitudes = _mm256_sign_epi8(weights, weights);
            let d = block.scale;
            for r in 0..R {
                let signed = _mm256_sign_epi8(activations[r], weights);
                let products = _mm256_maddubs_epi16(magnitudes, signed);
                let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(products, ones));
                let scale = _mm256_set1_ps(d * x[r].scales[b]);
                acc[i][r] = _mm256_fmadd_ps(sums, scale, acc[i][r]);
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
