//! Causal self-attention over a KV cache, shared by both generators (SmolLM2's grouped
//! query heads, GPT-2's one KV head per query head), on the fixed-order kernels of
//! `kernels::attention`.
//!
//! What that buys: a position's keys, values and output have the same bits however the
//! tokens before it were split into calls (a whole prompt at once, a primed prefix and then
//! the rest, one token at a time) and on any CPU, with SIMD or without. Each score sums the
//! same dimensions in the same order whichever queries share its block; each softmax covers
//! exactly the keys up to the query's own position; and keys past that position get weight
//! zero, which adds exact zeros to the context sums. So priming a prefix changes nothing but
//! the time it takes (`tests/generation_parity.rs` splits a prompt at every position).

use crate::error::{Error, Result};
use crate::kernels::attention::{
    score_blocks, softmax_in_place, weighted_values, CONTEXT_WIDTH, LANES,
};

/// The smallest cache allocation, in positions: a short prompt and its first tokens fit
/// without growing.
const MIN_CAPACITY: usize = 64;

/// Below this many score products one call runs on the calling thread.
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_MACS: usize = 1 << 18;

/// Positions copied out of a [`KvCache`]: what a primed prefix keeps so that it can be put
/// back without running the model again.
#[derive(Clone)]
pub(super) struct SavedRows {
    len: usize,
    keys: Vec<f32>,
    values: Vec<f32>,
}

/// The keys and values of one layer's past positions, laid out for the kernels: per KV
/// head, keys transposed (`head_dim` rows of `capacity`) and values as rows (`capacity` ×
/// `head_dim`). The capacity doubles when full, so a token costs one row write, not a copy.
pub(super) struct KvCache {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    max_len: usize,
    capacity: usize,
    len: usize,
    keys_t: Vec<f32>,
    values: Vec<f32>,
}

impl KvCache {
    /// A cache for `heads` query heads sharing `kv_heads` key/value heads (adjacent query
    /// heads share one, as in llama's `repeat_kv`), up to `max_len` positions.
    pub fn new(heads: usize, kv_heads: usize, head_dim: usize, max_len: usize) -> Self {
        Self {
            heads,
            kv_heads,
            head_dim,
            max_len,
            capacity: 0,
            len: 0,
            keys_t: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Keeps the first `len` positions; later ones are overwritten in place.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Forgets every position and frees the memory.
    pub fn clear(&mut self) {
        *self = Self::new(self.heads, self.kv_heads, self.head_dim, self.max_len);
    }

    /// A copy of the first `len` positions' keys and values (rows of `kv_heads × head_dim`),
    /// which [`KvCache::restore`] puts back.
    pub fn save(&self, len: usize) -> SavedRows {
        self.save_range(0, len)
    }

    /// A copy of positions `start..end` (as many as are held), which [`KvCache::append`]
    /// puts after other positions: beam search keeps each hypothesis's own positions past
    /// the prompt this way (`beam/kv.rs`).
    pub fn save_range(&self, start: usize, end: usize) -> SavedRows {
        let (d, end) = (self.head_dim, end.min(self.len));
        let len = end.saturating_sub(start);
        let mut keys = Vec::with_capacity(len * self.kv_heads * d);
        let mut values = Vec::with_capacity(len * self.kv_heads * d);
        for t in start..start + len {
            for h in 0..self.kv_heads {
                keys.extend((0..d).map(|c| self.keys_t[(h * d + c) * self.capacity + t]));
                let at = (h * self.capacity + t) * d;
                values.extend_from_slice(&self.values[at..at + d]);
            }
        }
        SavedRows { len, keys, values }
    }

    /// Holds exactly the positions of `saved`.
    pub fn restore(&mut self, saved: &SavedRows) {
        self.len = 0;
        self.reserve(saved.len);
        self.write(0, &saved.keys, &saved.values);
        self.len = saved.len;
    }

    /// Appends the positions of `saved` after those held, the same bits as if they had been
    /// computed here (keys and values are stored as computed; attention reads them in one
    /// order whatever the capacity).
    pub fn append(&mut self, saved: &SavedRows) -> Result<()> {
        let end = self.len + saved.len;
        if end > self.max_len {
            return Err(Error::InvalidArgument(format!(
                "{end} positions exceed the cache's {}",
                self.max_len
            )));
        }
        let start = self.len;
        self.reserve(end);
        self.write(start, &saved.keys, &saved.values);
        self.len = end;
        Ok(())
    }

    /// Appends the keys and values of `n` new positions and returns their attention output.
    /// `q` is n rows of `heads × head_dim` (rotated already, where the model rotates), `k`
    /// and `v` n rows of `kv_heads × head_dim`; the result is n rows of `heads × head_dim`.
    pub fn attend(&mut self, q: &[f32], k: &[f32], v: &[f32]) -> Result<Vec<f32>> {
        let (d, kv_width) = (self.head_dim, self.kv_heads * self.head_dim);
        let n = k.len() / kv_width.max(1);
        if n == 0 || k.len() != n * kv_width || v.len() != k.len() || q.len() != n * self.heads * d
        {
            return Err(Error::InvalidArgument(format!(
                "attention: {} query, {} key and {} value values for {} heads, {} KV heads of {d}",
                q.len(),
                k.len(),
                v.len(),
                self.heads,
                self.kv_heads
            )));
        }
        if self.len + n > self.max_len {
            return Err(Error::InvalidArgument(format!(
                "{} positions exceed the cache's {}",
                self.len + n,
                self.max_len
            )));
        }
        let start = self.len;
        self.reserve(start + n);
        self.write(start, k, v);
        self.len = start + n;
        let per_head = |h: usize| self.attend_kv_head(h, q, n, start);
        // KV heads are independent, so threads change no sum; a decode step's few thousand
        // products are not worth waking them.
        #[cfg(not(target_arch = "wasm32"))]
        if self.heads * n * self.len * d >= PARALLEL_MACS {
            use rayon::prelude::*;
            let outputs: Vec<Vec<f32>> = (0..self.kv_heads).into_par_iter().map(per_head).collect();
            return Ok(self.interleave(&outputs, n));
        }
        let outputs: Vec<Vec<f32>> = (0..self.kv_heads).map(per_head).collect();
        Ok(self.interleave(&outputs, n))
    }

    /// The per-KV-head outputs as n rows of `heads × head_dim`: each KV head's output holds
    /// its group's query heads, group member by member.
    fn interleave(&self, outputs: &[Vec<f32>], n: usize) -> Vec<f32> {
        let d = self.head_dim;
        let group = self.heads / self.kv_heads;
        let mut context = vec![0f32; n * self.heads * d];
        for (h, output) in outputs.iter().enumerate() {
            for (row, values) in output.chunks_exact(d).enumerate() {
                let (g, i) = (row / n, row % n);
                let at = (i * self.heads + h * group + g) * d;
                context[at..at + d].copy_from_slice(values);
            }
        }
        context
    }

    /// Makes room for `len` positions, keeping what is held.
    fn reserve(&mut self, len: usize) {
        if len <= self.capacity {
            return;
        }
        let capacity = len
            .next_power_of_two()
            .max(MIN_CAPACITY)
            .min(self.max_len)
            .max(len)
            .next_multiple_of(LANES);
        let d = self.head_dim;
        let mut keys_t = vec![0f32; self.kv_heads * d * capacity];
        let mut values = vec![0f32; self.kv_heads * capacity * d];
        for h in 0..self.kv_heads {
            for c in 0..d {
                let old = (h * d + c) * self.capacity;
                let new = (h * d + c) * capacity;
                keys_t[new..new + self.len].copy_from_slice(&self.keys_t[old..old + self.len]);
            }
            let (old, new) = (h * self.capacity * d, h * capacity * d);
            values[new..new + self.len * d].copy_from_slice(&self.values[old..old + self.len * d]);
        }
        (self.capacity, self.keys_t, self.values) = (capacity, keys_t, values);
    }

    fn write(&mut self, start: usize, k: &[f32], v: &[f32]) {
        let (d, capacity) = (self.head_dim, self.capacity);
        for (i, (k, v)) in k
            .chunks_exact(self.kv_heads * d)
            .zip(v.chunks_exact(self.kv_heads * d))
            .enumerate()
        {
            let t = start + i;
            for h in 0..self.kv_heads {
                for (c, &key) in k[h * d..(h + 1) * d].iter().enumerate() {
                    self.keys_t[(h * d + c) * capacity + t] = key;
                }
                let at = (h * capacity + t) * d;
                self.values[at..at + d].copy_from_slice(&v[h * d..(h + 1) * d]);
            }
        }
    }

    /// The outputs of KV head `h`'s query heads for the `n` new positions (the first at
    /// `start`): rows `g × n + i` for group member g and position i, each `head_dim` wide.
    fn attend_kv_head(&self, h: usize, q: &[f32], n: usize, start: usize) -> Vec<f32> {
        let (d, capacity) = (self.head_dim, self.capacity);
        let group = self.heads / self.kv_heads;
        let rows = group * n;
        let keys = self.len;
        let padded_keys = keys.next_multiple_of(LANES);
        // Queries pre-scaled by 1/√d (exact for head widths that are powers of four).
        let scale = 1.0 / (d as f32).sqrt();
        let mut queries = vec![0f32; rows * d];
        for (row, out) in queries.chunks_exact_mut(d).take(rows).enumerate() {
            let (g, i) = (row / n, row % n);
            let at = (i * self.heads + h * group + g) * d;
            for (out, &q) in out.iter_mut().zip(&q[at..at + d]) {
                *out = q * scale;
            }
        }
        let keys_t = &self.keys_t[h * d * capacity..(h + 1) * d * capacity];
        let values = &self.values[h * capacity * d..h * capacity * d + keys * d];
        let mut scores = vec![0f32; queries.len() / d * padded_keys];
        score_blocks(&queries, keys_t, d, capacity, padded_keys, &mut scores);
        let weights: Vec<&mut [f32]> = scores
            .chunks_exact_mut(padded_keys)
            .take(rows)
            .enumerate()
            .map(|(row, scores)| {
                // Position `start + i` sees the keys up to and including its own.
                let visible = start + row % n + 1;
                softmax_in_place(&mut scores[..visible]);
                scores[visible..].fill(0.0);
                &mut scores[..keys]
            })
            .collect();
        let mut out = vec![0f32; rows * d];
        let mut write = |r: usize, first: usize, sum: &[f32; CONTEXT_WIDTH]| {
            let width = CONTEXT_WIDTH.min(d - first);
            out[r * d + first..r * d + first + width].copy_from_slice(&sum[..width]);
        };
        for first in (0..d).step_by(CONTEXT_WIDTH) {
            for r in (0..rows / 2 * 2).step_by(2) {
                let sums = weighted_values([&*weights[r], &*weights[r + 1]], values, d, first);
                write(r, first, &sums[0]);
                write(r + 1, first, &sums[1]);
            }
            if rows % 2 == 1 {
                let [sum] = weighted_values([&*weights[rows - 1]], values, d, first);
                write(rows - 1, first, &sum);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i + seed) * 7919 % 1013) as f32 / 506.0 - 1.0) * 1.5)
            .collect()
    }

    /// Causal grouped-query attention written out naively in f64.
    fn reference(q: &[f32], k: &[f32], v: &[f32], heads: usize, kv: usize, d: usize) -> Vec<f32> {
        let n = k.len() / (kv * d);
        let group = heads / kv;
        let mut out = vec![0f32; n * heads * d];
        for i in 0..n {
            for head in 0..heads {
                let h = head / group;
                let qi = &q[(i * heads + head) * d..][..d];
                let logits: Vec<f64> = (0..=i)
                    .map(|j| {
                        let kj = &k[(j * kv + h) * d..][..d];
                        qi.iter()
                            .zip(kj)
                            .map(|(&a, &b)| a as f64 * b as f64)
                            .sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                let total: f64 = w.iter().sum();
                for c in 0..d {
                    let s: f64 = (0..=i)
                        .map(|j| w[j] / total * v[(j * kv + h) * d + c] as f64)
                        .sum();
                    out[(i * heads + head) * d + c] = s as f32;
                }
            }
        }
        out
    }

    #[test]
    fn matches_naive_causal_grouped_attention() {
        let (heads, kv, d, n) = (6, 2, 40, 11);
        let (q, k, v) = (
            values(n * heads * d, 1),
            values(n * kv * d, 2),
            values(n * kv * d, 3),
        );
        let ours = KvCache::new(heads, kv, d, 64)
            .attend(&q, &k, &v)
            .expect("attends");
        for (a, b) in ours.iter().zip(reference(&q, &k, &v, heads, kv, d)) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    /// The property the generator's primed prefixes rely on: the same bits however the
    /// positions are split into calls, across a capacity growth too.
    #[test]
    fn splitting_the_positions_changes_no_bit() {
        let (heads, kv, d, n) = (4, 2, 64, 70);
        let (q, k, v) = (
            values(n * heads * d, 4),
            values(n * kv * d, 5),
            values(n * kv * d, 6),
        );
        let whole = KvCache::new(heads, kv, d, 128)
            .attend(&q, &k, &v)
            .expect("attends");
        let (qw, kw) = (heads * d, kv * d);
        for split in [1, 5, 8, 9, 63, 64, 69] {
            let mut cache = KvCache::new(heads, kv, d, 128);
            let mut parts = cache
                .attend(&q[..split * qw], &k[..split * kw], &v[..split * kw])
                .expect("first part");
            // The rest one position at a time past the split's next eight, as decoding does.
            let next = (split + 8).min(n);
            parts.extend(
                cache
                    .attend(
                        &q[split * qw..next * qw],
                        &k[split * kw..next * kw],
                        &v[split * kw..next * kw],
                    )
                    .expect("second part"),
            );
            for i in next..n {
                parts.extend(
                    cache
                        .attend(
                            &q[i * qw..(i + 1) * qw],
                            &k[i * kw..(i + 1) * kw],
                            &v[i * kw..(i + 1) * kw],
                        )
                        .expect("one position"),
                );
            }
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&parts), bits(&whole), "split at {split}");
        }
    }

    #[test]
    fn truncation_rewinds_and_overflow_is_refused() {
        let (heads, kv, d) = (2, 1, 8);
        let (q, k, v) = (values(3 * 16, 7), values(3 * 8, 8), values(3 * 8, 9));
        let mut cache = KvCache::new(heads, kv, d, 4);
        let first = cache.attend(&q, &k, &v).expect("three positions");
        cache.truncate(1);
        let again = cache
            .attend(&q[16..], &k[8..], &v[8..])
            .expect("two positions after the first");
        assert_eq!(&first[16..], again.as_slice());
        let saved = cache.save(2);
        cache.truncate(0);
        cache.restore(&saved);
        assert_eq!(cache.len(), 2);
        let after_restore = cache.attend(&q[32..], &k[16..], &v[16..]).expect("third");
        assert_eq!(&first[32..], after_restore.as_slice());
        // The second position alone, put back after the first: the third attends the same.
        let second = cache.save_range(1, 2);
        cache.truncate(1);
        cache.append(&second).expect("fits");
        let after_append = cache.attend(&q[32..], &k[16..], &v[16..]).expect("third");
        assert_eq!(&first[32..], after_append.as_slice());
        assert!(
            cache.append(&cache.save_range(0, 3)).is_err(),
            "past max_len"
        );
        assert!(cache.attend(&q, &k, &v).is_err(), "past max_len");
        assert!(
            cache.attend(&q[..15], &k[..8], &v[..8]).is_err(),
            "bad shape"
        );
    }
}
