//! Embeddings stored as int8 with one f32 scale per vector: `x ≈ scale * q`, q in [-127, 127].
//! A 384-wide MiniLM vector takes 388 bytes instead of 1,536, and cosine scores move by
//! about 1e-3 (see the tests), far below the gaps that decide a ranking.
//!
//! The width is a const generic so that a vector is one inline record: the HNSW keeps its
//! points in one `Vec`, and each distance costs one memory access instead of two (with a
//! heap-allocated `Vec<i8>` per point, graph search was dominated by that pointer chase).

use serde::{Deserialize, Serialize};
use serde_big_array::BigArray;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizedVector<const N: usize> {
    scale: f32,
    #[serde(with = "BigArray")]
    values: [i8; N],
}

impl<const N: usize> QuantizedVector<N> {
    /// Symmetric per-vector quantization; a zero vector stays zero. `None` unless `v` has
    /// exactly `N` values.
    pub fn quantize(v: &[f32]) -> Option<Self> {
        if v.len() != N {
            return None;
        }
        let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        let mut values = [0i8; N];
        for (q, x) in values.iter_mut().zip(v) {
            *q = (x / scale).round().clamp(-127.0, 127.0) as i8;
        }
        Some(Self { scale, values })
    }

    /// A vector from its stored parts.
    pub fn from_parts(scale: f32, values: [i8; N]) -> Self {
        Self { scale, values }
    }

    pub fn into_values(self) -> [i8; N] {
        self.values
    }

    pub fn scale(&self) -> f32 {
        self.scale
    }

    pub fn values(&self) -> &[i8] {
        &self.values
    }

    pub fn dequantize(&self) -> Vec<f32> {
        self.values.iter().map(|&q| q as f32 * self.scale).collect()
    }

    /// Dot product of two quantized vectors, in integers (exact for 384-wide vectors:
    /// 384 * 127² fits an i32 many times over).
    pub fn dot(&self, other: &Self) -> f32 {
        dot_i8(&self.values, &other.values) as f32 * self.scale * other.scale
    }
}

/// Integer dot product: exact, so every version gives the same number. Natively 32 products
/// per `vpmaddubsw` (unless `MARQUEE_PORTABLE`, see `kernels::simd_enabled`); elsewhere a
/// plain zip that LLVM vectorizes (wasm simd128).
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    if crate::kernels::simd_enabled() {
        return dot_i8_simd(&a[..n], &b[..n]);
    }
    dot_i8_portable(&a[..n], &b[..n])
}

/// [`dot_i8`] on AVX2, for equally long slices.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
fn dot_i8_simd(a: &[i8], b: &[i8]) -> i32 {
    let body = a.len() / 32 * 32;
    // SAFETY: the CPU has AVX2 (checked at compile time, above), and `dot_i8_avx2` reads
    // only the `body` values of each slice it is given.
    let sum = unsafe { dot_i8_avx2(&a[..body], &b[..body]) };
    sum + dot_i8_portable(&a[body..], &b[body..])
}

fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| x as i16 as i32 * y as i16 as i32)
        .sum()
}

/// Signed × signed bytes through `vpmaddubsw` (unsigned × signed): |a| times b carrying a's
/// sign. The pairwise 16-bit sums cannot saturate for values in [-127, 127].
///
/// # Safety
/// The CPU must have AVX2; `a` and `b` must be equally long, a multiple of 32.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    use std::arch::x86_64::*;
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_si256(); 2];
    for (i, (a, b)) in a.chunks_exact(32).zip(b.chunks_exact(32)).enumerate() {
        let a = _mm256_loadu_si256(a.as_ptr() as *const __m256i);
        let b = _mm256_loadu_si256(b.as_ptr() as *const __m256i);
        let products = _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
        acc[i % 2] = _mm256_add_epi32(acc[i % 2], _mm256_madd_epi16(products, ones));
    }
    let sum = _mm256_add_epi32(acc[0], acc[1]);
    let half = _mm_add_epi32(
        _mm256_castsi256_si128(sum),
        _mm256_extracti128_si256(sum, 1),
    );
    let pairs = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0b01_00_11_10));
    _mm_cvtsi128_si32(_mm_add_epi32(
        pairs,
        _mm_shuffle_epi32(pairs, 0b10_11_00_01),
    ))
}

/// Dot product of an f32 query with int8 values (the caller applies the scale).
pub fn dot_f32_i8(query: &[f32], values: &[i8]) -> f32 {
    let n = query.len().min(values.len());
    let (query, values) = (&query[..n], &values[..n]);
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    if crate::kernels::simd_enabled() {
        return dot_f32_i8_simd(query, values);
    }
    dot_portable(query, values)
}

/// [`dot_f32_i8`] on AVX2, for equally long slices.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
fn dot_f32_i8_simd(query: &[f32], values: &[i8]) -> f32 {
    let body = query.len() / 32 * 32;
    // SAFETY: the CPU has AVX2 and FMA (checked at compile time, above), and `dot_avx2`
    // reads only the `body` values of each slice it is given.
    let sum = unsafe { dot_avx2(&query[..body], &values[..body]) };
    sum + dot_portable(&query[body..], &values[body..])
}

/// The definition both versions compute, bit for bit: four groups of eight partial sums (so
/// four additions are in flight, not one chain), products and sums never fused, combined in a
/// fixed tree. LLVM vectorizes it for wasm simd128; natively `dot_avx2` is the same sums.
fn dot_portable(query: &[f32], values: &[i8]) -> f32 {
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

/// `dot_portable`'s sums with AVX2 intrinsics (LLVM keeps the portable loop's 4 × 8 sums in
/// memory natively): four registers of eight partial sums, multiplies and adds unfused.
///
/// # Safety
/// The CPU must have AVX2; `query` and `values` must be equally long, a multiple of 32.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
unsafe fn dot_avx2(query: &[f32], values: &[i8]) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_ps(); 4];
    for (q, v) in query.chunks_exact(32).zip(values.chunks_exact(32)) {
        for (j, sums) in acc.iter_mut().enumerate() {
            // Eight int8 values widened to f32, times eight query values.
            let bytes = _mm_loadl_epi64(v.as_ptr().add(8 * j) as *const __m128i);
            let v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
            let products = _mm256_mul_ps(_mm256_loadu_ps(q.as_ptr().add(8 * j)), v);
            *sums = _mm256_add_ps(*sums, products);
        }
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    // (s0 + s4, s1 + s5, s2 + s6, s3 + s7), then ((s0+s4) + (s2+s6)) + ((s1+s5) + (s3+s7)).
    let half = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    let pairs = _mm_add_ps(half, _mm_movehl_ps(half, half));
    _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1)))
}

/// HNSW distance: 1 - cosine, for normalized inputs.
impl<const N: usize> instant_distance::Point for QuantizedVector<N> {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - self.dot(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(seed: u32, dim: usize) -> Vec<f32> {
        // A small deterministic generator is enough for shape tests.
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        let v: Vec<f32> = (0..dim)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) - 0.5
            })
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    #[test]
    fn quantization_keeps_cosines_within_a_few_thousandths() {
        for seed in 0..50 {
            let (a, b) = (normalized(seed, 384), normalized(seed + 1000, 384));
            let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let qa = QuantizedVector::<384>::quantize(&a).expect("384 wide");
            let qb = QuantizedVector::<384>::quantize(&b).expect("384 wide");
            assert!((qa.dot(&qb) - exact).abs() < 3e-3, "seed {seed}");
            let asym = dot_f32_i8(&a, qb.values()) * qb.scale();
            assert!((asym - exact).abs() < 2e-3, "seed {seed}");
            assert!((qa.dot(&qa) - 1.0).abs() < 3e-3);
        }
    }

    /// Natively the AVX2 sums, in wasm the portable loop: the same bits, so a score (and so
    /// a ranking) is the same on both.
    #[test]
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    fn every_build_scores_with_the_same_bits() {
        for seed in 0..50 {
            let (a, b) = (normalized(seed, 384), normalized(seed + 77, 384));
            let q = QuantizedVector::<384>::quantize(&b).expect("384 wide");
            assert_eq!(
                dot_f32_i8_simd(&a, q.values()).to_bits(),
                dot_portable(&a, q.values()).to_bits()
            );
        }
    }

    #[test]
    fn integer_dot_products_agree_with_the_plain_loop() {
        for (seed, len) in (0..20).zip([384, 383, 32, 31, 1, 0].into_iter().cycle()) {
            let a = QuantizedVector::<384>::quantize(&normalized(seed, 384)).expect("384");
            let b = QuantizedVector::<384>::quantize(&normalized(seed + 9, 384)).expect("384");
            let (a, b) = (&a.values()[..len], &b.values()[..len]);
            assert_eq!(dot_i8(a, b), dot_i8_portable(a, b));
            #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
            assert_eq!(dot_i8_simd(a, b), dot_i8_portable(a, b));
        }
        assert_eq!(dot_i8(&[-127; 64], &[-127; 64]), 64 * 127 * 127);
    }

    #[test]
    fn zero_vector_and_odd_lengths_are_handled() {
        let z = QuantizedVector::<5>::quantize(&[0.0; 5]).expect("5 wide");
        assert_eq!(z.values(), &[0; 5]);
        assert_eq!(z.dot(&z), 0.0);
        let q = [0.5f32, -0.25, 1.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.9, -0.9, 0.7];
        let v = QuantizedVector::<11>::quantize(&q).expect("11 wide");
        assert!(QuantizedVector::<12>::quantize(&q).is_none());
        let expected: f32 = q.iter().zip(v.dequantize()).map(|(a, b)| a * b).sum();
        assert!((dot_f32_i8(&q, v.values()) * v.scale() - expected).abs() < 1e-5);
    }
}
