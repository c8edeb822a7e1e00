//! Embeddings stored as int8 with one f32 scale per vector: `x ≈ scale * q`, q in [-127, 127].
//! A 384-wide MiniLM vector takes 388 bytes instead of 1,536, and cosine scores move by
//! about 1e-3 (see the tests), far below the gaps that decide a ranking.
//!
//! The width is a const generic so that a vector is one inline record: the HNSW keeps its
//! points in one `Vec`, and each distance costs one memory access instead of two (with a
//! heap-allocated `Vec<i8>` per point, graph search was dominated by that pointer chase).

use serde::{Deserialize, Serialize};

pub use crate::kernels::{dot_f32_i8, dot_i8};
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
