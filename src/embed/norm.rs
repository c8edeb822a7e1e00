//! Layer normalization and the sentence pooling, with sums in one fixed order (see
//! `attention.rs` for why the int8 path needs every float step to be reproducible).

use crate::kernels::attention::sum;

/// `(x - mean) / sqrt(var + eps) · weight + bias`, per row of `weight.len()` values.
pub struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    pub fn new(weight: Vec<f32>, bias: Vec<f32>, eps: f64) -> Self {
        Self {
            weight,
            bias,
            eps: eps as f32,
        }
    }

    pub fn width(&self) -> usize {
        self.weight.len()
    }

    /// Normalizes every row of `x` in place.
    pub fn apply(&self, x: &mut [f32]) {
        let width = self.width() as f32;
        let mut centred = vec![0f32; self.width()];
        let mut squares = vec![0f32; self.width()];
        for row in x.chunks_exact_mut(self.width()) {
            let mean = sum(row) / width;
            for ((c, s), &v) in centred.iter_mut().zip(&mut squares).zip(row.iter()) {
                *c = v - mean;
                *s = *c * *c;
            }
            let inverse_std = 1.0 / (sum(&squares) / width + self.eps).sqrt();
            for (((out, &c), &w), &b) in row
                .iter_mut()
                .zip(&centred)
                .zip(&self.weight)
                .zip(&self.bias)
            {
                *out = c * inverse_std * w + b;
            }
        }
    }
}

/// Mean of each sequence's token vectors over its mask, then L2 normalization (the
/// sentence-transformers pooling of all-MiniLM-L6-v2). `hidden` is (batch, tokens, width).
pub fn mean_pool_normalized(
    hidden: &[f32],
    mask: &[u32],
    tokens: usize,
    width: usize,
) -> Vec<Vec<f32>> {
    hidden
        .chunks_exact(tokens * width)
        .zip(mask.chunks_exact(tokens))
        .map(|(sequence, mask)| {
            let mut mean = vec![0f32; width];
            let mut count = 0usize;
            for (token, _) in sequence
                .chunks_exact(width)
                .zip(mask)
                .filter(|(_, &m)| m != 0)
            {
                for (m, &v) in mean.iter_mut().zip(token) {
                    *m += v;
                }
                count += 1;
            }
            let count = count.max(1) as f32;
            for m in &mut mean {
                *m /= count;
            }
            let squares: Vec<f32> = mean.iter().map(|m| m * m).collect();
            let norm = sum(&squares).sqrt().max(1e-12);
            mean.iter().map(|m| m / norm).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_matches_the_definition() {
        let norm = LayerNorm::new(
            vec![1.0, 2.0, 0.5, 1.0, 1.0],
            vec![0.0, 0.1, 0.0, -1.0, 0.0],
            1e-12,
        );
        let mut x = vec![1.0, 2.0, 3.0, 4.0, 5.0, -1.0, -1.0, -1.0, -1.0, 3.0];
        let expected = x.clone();
        norm.apply(&mut x);
        for (row, input) in x.chunks(5).zip(expected.chunks(5)) {
            let mean = input.iter().sum::<f32>() / 5.0;
            let var = input.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 5.0;
            for (i, (&got, &v)) in row.iter().zip(input).enumerate() {
                let want = (v - mean) / var.sqrt() * norm.weight[i] + norm.bias[i];
                assert!((got - want).abs() < 1e-5, "{got} vs {want}");
            }
        }
    }

    #[test]
    fn pooling_skips_padding_and_normalizes() {
        // Two sequences of two tokens, width 2; the second token of the second is padding.
        let hidden = [3.0, 0.0, 0.0, 4.0, 1.0, 1.0, 100.0, -100.0];
        let pooled = mean_pool_normalized(&hidden, &[1, 1, 1, 0], 2, 2);
        assert!((pooled[0][0] - 0.6).abs() < 1e-6 && (pooled[0][1] - 0.8).abs() < 1e-6);
        let half = std::f32::consts::FRAC_1_SQRT_2;
        assert!((pooled[1][0] - half).abs() < 1e-6 && (pooled[1][1] - half).abs() < 1e-6);
    }
}
