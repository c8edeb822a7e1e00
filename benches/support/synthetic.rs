//! The synthetic large catalogue of the benchmarks: real vectors repeated, each copy moved
//! by Gaussian noise of norm ≈ 0.2 and renormalized. Shared by benches/engine.rs and
//! examples/hnsw_sweep.rs so both measure the same data.

/// Deterministic Gaussian noise (xorshift + Box-Muller); no need for a rand dependency.
pub struct Noise(u64);

impl Noise {
    pub fn new() -> Self {
        Self(0x9e37_79b9_7f4a_7c15)
    }

    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    fn gaussian(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

/// `v` moved by Gaussian noise of norm ≈ `norm`, renormalized.
fn perturbed(v: &[f32], norm: f32, noise: &mut Noise) -> Vec<f32> {
    let sigma = norm / (v.len() as f32).sqrt();
    let moved: Vec<f32> = v.iter().map(|x| x + sigma * noise.gaussian()).collect();
    let length = moved.iter().map(|x| x * x).sum::<f32>().sqrt();
    moved.into_iter().map(|x| x / length).collect()
}

/// `n` vectors tiled from `real`, each copy moved by noise of norm ≈ 0.2.
pub fn tiled(real: &[Vec<f32>], n: usize) -> Vec<Vec<f32>> {
    let mut noise = Noise::new();
    (0..n)
        .map(|i| perturbed(&real[i % real.len()], 0.2, &mut noise))
        .collect()
}

/// Queries near the data: `count` catalogue vectors (spread over it), each moved by noise
/// of norm ≈ 0.6, like a paraphrase of a catalogue entry (cosine ≈ 0.85 to its source).
/// The other query set, taglines, is far from everything.
pub fn near_queries(real: &[Vec<f32>], count: usize) -> Vec<Vec<f32>> {
    let mut noise = Noise(0x2545_f491_4f6c_dd1d);
    (0..count)
        .map(|i| perturbed(&real[(i * 23) % real.len()], 0.6, &mut noise))
        .collect()
}
