//! How each next token is picked from the model's logits: greedy, or sampled with a
//! temperature, top-k and top-p from a seeded generator, after a repetition penalty.

use candle_core::Tensor;
use candle_transformers::generation::{LogitsProcessor, Sampling};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// How to pick each next token. `temperature` 0 means greedy (always the likeliest token).
/// The defaults are the engine's; each task declares its own (`crate::task`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    /// > 1 discourages repeating any of the last `repeat_last_n` tokens.
    pub repeat_penalty: f32,
    pub repeat_last_n: usize,
    pub seed: u64,
    pub max_tokens: usize,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_k: Some(40),
            top_p: Some(0.9),
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            seed: 299_792_458,
            max_tokens: 32,
        }
    }
}

impl SamplingParams {
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            repeat_penalty: 1.0,
            max_tokens,
            ..Self::default()
        }
    }

    pub(super) fn sampler(&self) -> Sampler {
        let sampling = if self.temperature <= 0.0 {
            Sampling::ArgMax
        } else {
            let temperature = self.temperature;
            match (self.top_k, self.top_p) {
                (None, None) => Sampling::All { temperature },
                (Some(k), None) => Sampling::TopK { k, temperature },
                (None, Some(p)) => Sampling::TopP { p, temperature },
                (Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature },
            }
        };
        Sampler {
            processor: LogitsProcessor::from_sampling(self.seed, sampling),
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
        }
    }
}

/// The state of one generation's sampling: its seeded generator and penalty settings.
pub(super) struct Sampler {
    processor: LogitsProcessor,
    repeat_penalty: f32,
    repeat_last_n: usize,
}

impl Sampler {
    /// The next token after `history` (prompt and generated tokens so far).
    pub fn next(&mut self, logits: &Tensor, history: &[u32]) -> Result<u32> {
        let logits = if self.repeat_penalty != 1.0 {
            let start = history.len().saturating_sub(self.repeat_last_n);
            candle_transformers::utils::apply_repeat_penalty(
                logits,
                self.repeat_penalty,
                &history[start..],
            )?
        } else {
            logits.clone()
        };
        Ok(self.processor.sample(&logits)?)
    }
}
