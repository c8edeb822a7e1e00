//! Text generation with a quantized small language model (SmolLM2-135M-Instruct, GGUF, or
//! GPT-2), token by token: the caller gets each piece of text as it is decoded and may stop the
//! generation at any point (the browser's Stop button, a CLI's Ctrl-C).
//!
//! The engine keeps no clocks (`std::time::Instant` does not exist on wasm32); callers
//! time prefill and decoding themselves.

mod gpt2;
mod requantize;
mod tokenizer;

use std::io::Cursor;
use std::ops::ControlFlow;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::{self, ModelWeights};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::error::{Error, Result};
pub use gpt2::{to_gguf as gpt2_to_gguf, Gpt2, Gpt2Config};
pub use requantize::requantize_gguf;
pub use tokenizer::{gpt2_tokenizer, tokenizer_from_gguf};

/// How to pick each next token. `temperature` 0 means greedy (always the likeliest token).
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
    /// Stop at the first newline (a tagline is one line).
    pub stop_at_newline: bool,
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
            stop_at_newline: true,
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
            stop_at_newline: false,
            ..Self::default()
        }
    }

    fn logits_processor(&self) -> LogitsProcessor {
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
        LogitsProcessor::from_sampling(self.seed, sampling)
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndOfText,
    EndOfLine,
    MaxTokens,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub text: String,
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    pub stop: StopReason,
}

/// What the generation loop needs of a model: next-token logits with a KV cache.
pub trait CausalLm {
    /// Logits, shape (vocab,), for the token after `ids` (shape (1, n)), with `position`
    /// tokens already in the cache.
    fn next_logits(&mut self, ids: &Tensor, position: usize) -> Result<Tensor>;
    fn clear_cache(&mut self);
}

impl CausalLm for ModelWeights {
    fn next_logits(&mut self, ids: &Tensor, position: usize) -> Result<Tensor> {
        Ok(self.forward(ids, position)?.squeeze(0)?)
    }

    fn clear_cache(&mut self) {
        self.clear_kv_cache();
    }
}

impl CausalLm for Gpt2 {
    fn next_logits(&mut self, ids: &Tensor, position: usize) -> Result<Tensor> {
        self.next_token_logits(ids, position)
    }

    fn clear_cache(&mut self) {
        self.clear_kv_cache();
    }
}

/// A language model with its tokenizer: SmolLM2 (llama GGUF) or GPT-2.
pub struct Generator {
    model: Box<dyn CausalLm>,
    tokenizer: Tokenizer,
    end_tokens: Vec<u32>,
    context_length: usize,
}

impl Generator {
    /// GPT-2 with its tokenizer; generation ends at `<|endoftext|>`.
    pub fn gpt2(model: Gpt2, tokenizer: Tokenizer) -> Self {
        let context_length = model.config().n_positions;
        let end_tokens = tokenizer.token_to_id("<|endoftext|>").into_iter().collect();
        Self {
            model: Box::new(model),
            tokenizer,
            end_tokens,
            context_length,
        }
    }

    /// A llama-architecture GGUF (SmolLM2), with the tokenizer from its own metadata.
    pub fn from_llama_gguf(bytes: &[u8]) -> Result<Self> {
        let mut reader = Cursor::new(bytes);
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|e| Error::ModelFile(format!("not a readable GGUF file: {e}")))?;
        let arch = match content.metadata.get("general.architecture") {
            Some(v) => v.to_string()?.clone(),
            None => String::new(),
        };
        if arch != "llama" {
            return Err(Error::ModelFile(format!(
                "GGUF architecture is {arch:?}; this generator runs \"llama\" models (SmolLM2)"
            )));
        }
        let tokenizer = tokenizer_from_gguf(&content.metadata)?;
        let context_length = match content.metadata.get("llama.context_length") {
            Some(v) => v.to_u32()? as usize,
            None => 2048,
        }
        .min(quantized_llama::MAX_SEQ_LEN);
        let mut end_tokens = Vec::new();
        if let Some(v) = content.metadata.get("tokenizer.ggml.eos_token_id") {
            end_tokens.push(v.to_u32()?);
        }
        // Chat models end a turn with <|im_end|>; plain text ends with <|endoftext|>.
        for name in ["<|im_end|>", "<|endoftext|>"] {
            if let Some(id) = tokenizer.token_to_id(name) {
                if !end_tokens.contains(&id) {
                    end_tokens.push(id);
                }
            }
        }
        let model = ModelWeights::from_gguf(content, &mut reader, &Device::Cpu)?;
        Ok(Self {
            model: Box::new(model),
            tokenizer,
            end_tokens,
            context_length,
        })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Token ids of `text`, special tokens (`<|im_start|>`...) recognized, no BOS added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(Error::tokenizer)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Teacher forcing: runs `prompt`, then feeds `forced` one token at a time, returning
    /// the model's greedy choice before each forced token. Comparing these with a reference
    /// implementation's choices checks every step, even after the two would have diverged.
    pub fn greedy_choices(&mut self, prompt: &[u32], forced: &[u32]) -> Result<Vec<u32>> {
        if prompt.is_empty() || prompt.len() + forced.len() > self.context_length {
            return Err(Error::InvalidArgument(
                "prompt empty or longer than the context".into(),
            ));
        }
        self.model.clear_cache();
        let mut choices = Vec::with_capacity(forced.len());
        let mut input = Tensor::new(prompt, &Device::Cpu)?.unsqueeze(0)?;
        let mut position = 0;
        for &token in forced {
            let logits = self.model.next_logits(&input, position)?;
            position += input.dim(1)?;
            choices.push(logits.argmax(0)?.to_scalar::<u32>()?);
            input = Tensor::new(&[token], &Device::Cpu)?.unsqueeze(0)?;
        }
        Ok(choices)
    }

    /// Generates from `prompt` (token ids), calling `on_text` with each newly decoded piece
    /// of text; returning `ControlFlow::Break` from it cancels the generation.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        params: &SamplingParams,
        mut on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(Error::InvalidArgument("the prompt is empty".into()));
        }
        if prompt.len() + params.max_tokens > self.context_length {
            return Err(Error::InvalidArgument(format!(
                "the prompt has {} tokens; with {} to generate that exceeds the model's context of {}",
                prompt.len(),
                params.max_tokens,
                self.context_length
            )));
        }
        self.model.clear_cache();
        let mut sampler = params.logits_processor();
        let mut history: Vec<u32> = prompt.to_vec();
        let mut generated: Vec<u32> = Vec::new();
        let mut text = String::new();
        let mut input = Tensor::new(prompt, &Device::Cpu)?.unsqueeze(0)?;
        let mut position = 0;
        let mut stop = StopReason::MaxTokens;
        while generated.len() < params.max_tokens {
            let logits = self.model.next_logits(&input, position)?;
            position += input.dim(1)?;
            let logits = if params.repeat_penalty != 1.0 {
                let start = history.len().saturating_sub(params.repeat_last_n);
                candle_transformers::utils::apply_repeat_penalty(
                    &logits,
                    params.repeat_penalty,
                    &history[start..],
                )?
            } else {
                logits
            };
            let next = sampler.sample(&logits)?;
            if self.end_tokens.contains(&next) {
                stop = StopReason::EndOfText;
                break;
            }
            history.push(next);
            generated.push(next);
            let decoded = self
                .tokenizer
                .decode(&generated, true)
                .map_err(Error::tokenizer)?;
            // Emit only whole characters: a token may end inside a multi-byte character.
            if decoded.len() > text.len() && !decoded.ends_with('\u{fffd}') {
                let piece = &decoded[text.len()..];
                let line_end = params.stop_at_newline.then(|| piece.find('\n')).flatten();
                let piece = line_end.map_or(piece, |i| &piece[..i]);
                let flow = if piece.is_empty() {
                    ControlFlow::Continue(())
                } else {
                    on_text(piece)
                };
                text.push_str(piece);
                if line_end.is_some() && !text.trim().is_empty() {
                    stop = StopReason::EndOfLine;
                    break;
                }
                if flow.is_break() {
                    stop = StopReason::Cancelled;
                    break;
                }
            }
            input = Tensor::new(&[next], &Device::Cpu)?.unsqueeze(0)?;
        }
        Ok(Generation {
            text,
            tokens: generated,
            prompt_tokens: prompt.len(),
            stop,
        })
    }
}
