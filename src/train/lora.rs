//! Low-rank adapters: `A` (rank × in) and `B` (out × rank) for one frozen matrix.

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::frozen::FrozenLinear;
use crate::error::{Error, Result};

/// The matrices an adapter can target. A llama has `Q`, `K`, `V`, `O`, `Gate`, `Up` and
/// `Down`; GPT-2 has `Qkv` (its fused query-key-value projection), `O`, `Up` and `Down`. A
/// model refuses a target it does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
    Qkv,
}

impl Target {
    /// The matrix's name in llama.cpp's GGUF naming (`attn_q`, `ffn_down`, ...), which the
    /// adapter tensors' names carry (`blk.{i}.{matrix}.lora_a`).
    pub fn matrix(self) -> &'static str {
        match self {
            Target::Q => "attn_q",
            Target::K => "attn_k",
            Target::V => "attn_v",
            Target::O => "attn_output",
            Target::Gate => "ffn_gate",
            Target::Up => "ffn_up",
            Target::Down => "ffn_down",
            Target::Qkv => "attn_qkv",
        }
    }
}

impl std::fmt::Display for Target {
    /// The serialized name (`q`, `qkv`, `gate`, ...), as a configuration spells it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Target::Q => "q",
            Target::K => "k",
            Target::V => "v",
            Target::O => "o",
            Target::Gate => "gate",
            Target::Up => "up",
            Target::Down => "down",
            Target::Qkv => "qkv",
        };
        f.write_str(name)
    }
}

/// How `B` starts. peft starts it at zero, so the adapted model is the base model until the
/// first step (and `A` gets no gradient at that step); `Random` gives both a value, as
/// peft's `init_lora_weights=False`, so that every adapter tensor has a gradient at once
/// (the tests, and checks against peft).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    #[default]
    ZeroB,
    Random,
}

/// Rank, scaling and targets of the adapters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    /// The update is scaled by `alpha / rank`.
    pub alpha: f64,
    pub targets: Vec<Target>,
    pub init: Init,
    /// Seeds the initial values: the same seed, the same adapters.
    pub seed: u64,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            targets: vec![Target::Q, Target::V],
            init: Init::ZeroB,
            seed: 42,
        }
    }
}

impl LoraConfig {
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 || !self.alpha.is_finite() || self.alpha <= 0.0 || self.targets.is_empty()
        {
            return Err(Error::InvalidArgument(format!(
                "LoRA needs rank ≥ 1, alpha > 0 and at least one target (rank {}, alpha {}, {} targets)",
                self.rank,
                self.alpha,
                self.targets.len()
            )));
        }
        Ok(())
    }

    /// An error naming the first target that `model` (whose matrices are `available`) does
    /// not have: a GPT-2 has no `q`, a llama no `qkv`.
    pub fn check_targets(&self, model: &str, available: &[Target]) -> Result<()> {
        match self.targets.iter().find(|t| !available.contains(t)) {
            None => Ok(()),
            Some(missing) => {
                let names: Vec<String> = available.iter().map(Target::to_string).collect();
                Err(Error::InvalidArgument(format!(
                    "{model} has no {missing} matrix ({}) to adapt; its targets are {}",
                    missing.matrix(),
                    names.join(", ")
                )))
            }
        }
    }

    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// The trained part of one adapted matrix.
pub struct Adapter {
    pub a: Var,
    pub b: Var,
    scale: f64,
}

/// A small seeded generator (xorshift64*) for reproducible initial values.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        bits as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.uniform() + 1.0) / 2.0 * n as f64) as usize).min(n - 1)
    }

    pub fn tensor(&mut self, shape: (usize, usize), bound: f64, dtype: DType) -> Result<Tensor> {
        let values: Vec<f64> = (0..shape.0 * shape.1)
            .map(|_| self.uniform() * bound)
            .collect();
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(dtype)?)
    }
}

impl Adapter {
    /// An adapter for a matrix of `out` × `inp`: `A` uniform in ±1/√inp (peft's Kaiming
    /// uniform with a = √5), `B` as `config.init` says.
    pub(crate) fn new(
        out: usize,
        inp: usize,
        config: &LoraConfig,
        rng: &mut Rng,
        dtype: DType,
    ) -> Result<Self> {
        let a = rng.tensor((config.rank, inp), 1.0 / (inp as f64).sqrt(), dtype)?;
        let b = match config.init {
            Init::ZeroB => Tensor::zeros((out, config.rank), dtype, &Device::Cpu)?,
            Init::Random => {
                rng.tensor((out, config.rank), 1.0 / (config.rank as f64).sqrt(), dtype)?
            }
        };
        Ok(Self {
            a: Var::from_tensor(&a)?,
            b: Var::from_tensor(&b)?,
            scale: config.scale(),
        })
    }

    /// `x Wᵀ + scale · (x Aᵀ) Bᵀ` for `x` of shape (n, in) and the frozen `w` (out, in).
    pub(crate) fn forward(&self, x: &Tensor, w: &FrozenLinear) -> Result<Tensor> {
        let base = w.forward(x)?;
        let update = x
            .matmul(&self.a.as_tensor().t()?)?
            .matmul(&self.b.as_tensor().t()?)?;
        Ok((base + (update * self.scale)?)?)
    }
}
