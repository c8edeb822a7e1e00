//! Text generation with a quantized small language model (SmolLM2-135M-Instruct, GGUF, or
//! GPT-2), token by token: the caller gets each piece of text as it is decoded and may stop the
//! generation at any point (the browser's Stop button, a CLI's Ctrl-C).
//!
//! The engine keeps no clocks (`std::time::Instant` does not exist on wasm32); callers
//! time prefill and decoding themselves.

mod attention;
mod gpt2;
mod llama;
mod requantize;
mod tokenizer;

use std::ops::ControlFlow;

use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::embed::GgufTensors;
use crate::error::{Error, Result};
pub use gpt2::{to_gguf as gpt2_to_gguf, Gpt2, Gpt2Config};
pub use llama::{Llama, LlamaConfig};
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
    /// Prompt tokens found in the KV cache, which needed no prefill.
    pub cached_prompt_tokens: usize,
    pub stop: StopReason,
}

/// What the generation loop needs of a model: next-token logits with a KV cache.
pub trait CausalLm {
    /// Logits, shape (vocab,), for the token after `ids` (shape (1, n)), with `position`
    /// tokens already in the cache.
    fn next_logits(&mut self, ids: &Tensor, position: usize) -> Result<Tensor>;
    fn clear_cache(&mut self);
    /// Keeps only the first `len` cached positions (0 clears the cache).
    fn truncate_cache(&mut self, len: usize) -> Result<()>;
}

/// Runs one forward pass on candle's own thread pool natively. A pass is hundreds of small
/// operations, many of them parallel (candle's and our kernels); started from a thread
/// outside the pool, each one hands its work to a pool thread and sleeps until it is done,
/// a futex round trip per operation that cost ~10% of decode time (perf). wasm has one thread.
fn on_compute_threads<R: Send>(pass: impl FnOnce() -> R + Send) -> R {
    #[cfg(not(target_arch = "wasm32"))]
    return Device::Cpu.with_context(pass);
    #[cfg(target_arch = "wasm32")]
    pass()
}

impl CausalLm for Llama {
    fn next_logits(&mut self, ids: &Tensor, position: usize) -> Result<Tensor> {
        Ok(on_compute_threads(|| self.forward(ids, position))?.squeeze(0)?)
    }

    fn clear_cache(&mut self) {
        self.clear_kv_cache();
    }

    fn truncate_cache(&mut self, len: usize) -> Result<()> {
        self.truncate_kv_cache(len);
        Ok(())
    }
}

impl CausalLm for Gpt2 {
    fn next_logits(&mut self, ids: &Tensor, position: usize) -> Result<Tensor> {
        on_compute_threads(|| self.next_token_logits(ids, position))
    }

    fn clear_cache(&mut self) {
        self.clear_kv_cache();
    }

    fn truncate_cache(&mut self, len: usize) -> Result<()> {
        self.truncate_kv_cache(len)
    }
}

/// A language model with its tokenizer: SmolLM2 (llama GGUF) or GPT-2.
pub struct Generator {
    model: Box<dyn CausalLm>,
    /// The tokens whose keys and values are in the model's cache, in order.
    cached: Vec<u32>,
    /// The prefix set by [`Generator::prime`]: prompts that start with it prefill only the
    /// rest.
    primed: Vec<u32>,
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
            cached: Vec::new(),
            primed: Vec::new(),
            tokenizer,
            end_tokens,
            context_length,
        }
    }

    /// A llama-architecture GGUF (SmolLM2), with the tokenizer from its own metadata.
    pub fn from_llama_gguf(bytes: &[u8]) -> Result<Self> {
        let mut tensors = GgufTensors::read(bytes)?;
        let metadata = tensors.metadata().clone();
        let arch = match metadata.get("general.architecture") {
            Some(v) => v.to_string()?.clone(),
            None => String::new(),
        };
        if arch != "llama" {
            return Err(Error::ModelFile(format!(
                "GGUF architecture is {arch:?}; this generator runs \"llama\" models (SmolLM2)"
            )));
        }
        let tokenizer = tokenizer_from_gguf(&metadata)?;
        let mut end_tokens = Vec::new();
        if let Some(v) = metadata.get("tokenizer.ggml.eos_token_id") {
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
        let model = Llama::new(&mut tensors, &metadata)?;
        Ok(Self {
            context_length: model.config().context_length,
            model: Box::new(model),
            cached: Vec::new(),
            primed: Vec::new(),
            tokenizer,
            end_tokens,
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
        self.cached.clear();
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
        let mut decoding = self.start(prompt, params)?;
        loop {
            match decoding.step(self)? {
                Step::Text(piece) => {
                    if on_text(&piece).is_break() {
                        decoding.cancel();
                    }
                }
                Step::Pending => {}
                Step::Finished => return Ok(decoding.into_generation()),
            }
        }
    }

    /// Begins a generation that the caller advances one token at a time with
    /// [`Decoding::step`]: the browser worker returns to its event loop between tokens so a
    /// Stop message can arrive.
    pub fn start(&mut self, prompt: &[u32], params: &SamplingParams) -> Result<Decoding> {
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
        let reuse = self.reuse_cache(prompt)?;
        Ok(Decoding {
            params: params.clone(),
            sampler: params.logits_processor(),
            history: prompt.to_vec(),
            prompt_tokens: prompt.len(),
            cached_prompt_tokens: reuse,
            generated: Vec::new(),
            text: String::new(),
            next_input: prompt[reuse..].to_vec(),
            position: reuse,
            stop: None,
        })
    }

    /// Readies the cache for `tokens` and returns how many of them it already holds (those
    /// need no prefill): the primed prefix when `tokens` starts with it, else none. On
    /// quantized weights a position's numbers do not depend on how the prompt was split
    /// (`attention.rs`; `tests/generation_parity.rs` checks every split), so the primed run
    /// gives the bits a whole prefill would.
    fn reuse_cache(&mut self, tokens: &[u32]) -> Result<usize> {
        let primed = self.primed.len();
        if primed == 0 || tokens.len() <= primed || !tokens.starts_with(&self.primed) {
            self.forget_cache();
            return Ok(0);
        }
        if self.cached.starts_with(&self.primed) {
            if let Err(e) = self.model.truncate_cache(primed) {
                self.forget_cache();
                return Err(e);
            }
            self.cached.truncate(primed);
        } else {
            self.forget_cache();
            let prefix = self.primed.clone();
            self.run(&prefix, 0)?;
        }
        Ok(primed)
    }

    fn forget_cache(&mut self) {
        self.model.clear_cache();
        self.cached.clear();
    }

    /// Runs `prefix` (token ids) into the cache ahead of time; from then on prompts that
    /// start with it prefill only the rest. The page primes the system turn while it loads.
    pub fn prime(&mut self, prefix: &[u32]) -> Result<()> {
        self.forget_cache();
        self.primed.clear();
        if prefix.is_empty() || prefix.len() >= self.context_length {
            return Ok(());
        }
        self.run(prefix, 0)?;
        self.primed = prefix.to_vec();
        Ok(())
    }

    /// The model on `ids` at `position`, keeping `cached` in step with its cache (and both
    /// empty if the model fails part-way).
    fn run(&mut self, ids: &[u32], position: usize) -> Result<Tensor> {
        let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
        match self.model.next_logits(&input, position) {
            Ok(logits) => {
                self.cached.extend_from_slice(ids);
                Ok(logits)
            }
            Err(e) => {
                self.forget_cache();
                Err(e)
            }
        }
    }
}

/// What one [`Decoding::step`] produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// New text (whole characters; never empty).
    Text(String),
    /// A token was decoded but its text is not complete yet (inside a multi-byte
    /// character) or is a newline that does not end the tagline.
    Pending,
    /// The generation has ended; [`Decoding::stop`] says why.
    Finished,
}

/// One generation in progress: its sampler, the tokens so far and the text shown so far.
/// The model's KV cache lives in the [`Generator`], so a `Decoding` must be stepped with the
/// generator that started it and no other generation in between.
pub struct Decoding {
    params: SamplingParams,
    sampler: LogitsProcessor,
    history: Vec<u32>,
    prompt_tokens: usize,
    cached_prompt_tokens: usize,
    generated: Vec<u32>,
    text: String,
    /// Tokens to feed next: the whole prompt first (prefill), then each sampled token.
    next_input: Vec<u32>,
    position: usize,
    stop: Option<StopReason>,
}

impl Decoding {
    /// Runs the model once (the first call is the prompt's prefill) and samples one token.
    pub fn step(&mut self, generator: &mut Generator) -> Result<Step> {
        if self.stop.is_some() {
            return Ok(Step::Finished);
        }
        if self.generated.len() >= self.params.max_tokens {
            self.stop = Some(StopReason::MaxTokens);
            return Ok(Step::Finished);
        }
        let logits = generator.run(&self.next_input, self.position)?;
        self.position += self.next_input.len();
        let logits = if self.params.repeat_penalty != 1.0 {
            let start = self.history.len().saturating_sub(self.params.repeat_last_n);
            candle_transformers::utils::apply_repeat_penalty(
                &logits,
                self.params.repeat_penalty,
                &self.history[start..],
            )?
        } else {
            logits
        };
        let next = self.sampler.sample(&logits)?;
        if generator.end_tokens.contains(&next) {
            self.stop = Some(StopReason::EndOfText);
            return Ok(Step::Finished);
        }
        self.history.push(next);
        self.generated.push(next);
        self.next_input = vec![next];
        let decoded = generator
            .tokenizer
            .decode(&self.generated, true)
            .map_err(Error::tokenizer)?;
        // Emit only whole characters: a token may end inside a multi-byte character.
        if decoded.len() <= self.text.len() || decoded.ends_with('\u{fffd}') {
            return Ok(Step::Pending);
        }
        let piece = &decoded[self.text.len()..];
        let line_end = self
            .params
            .stop_at_newline
            .then(|| piece.find('\n'))
            .flatten();
        let piece = line_end.map_or(piece, |i| &piece[..i]).to_string();
        self.text.push_str(&piece);
        // A newline before any text is skipped; one after the tagline ends it.
        if line_end.is_some() && !self.text.trim().is_empty() {
            self.stop = Some(StopReason::EndOfLine);
        }
        if piece.is_empty() {
            return Ok(if self.stop.is_some() {
                Step::Finished
            } else {
                Step::Pending
            });
        }
        Ok(Step::Text(piece))
    }

    /// Ends the generation; the next step reports [`Step::Finished`].
    pub fn cancel(&mut self) {
        self.stop.get_or_insert(StopReason::Cancelled);
    }

    /// Why it ended, once it has.
    pub fn stop(&self) -> Option<StopReason> {
        self.stop
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Tokens sampled so far (the end-of-text token excluded).
    pub fn generated_tokens(&self) -> usize {
        self.generated.len()
    }

    pub fn prompt_tokens(&self) -> usize {
        self.prompt_tokens
    }

    /// Prompt tokens found in the KV cache, which needed no prefill.
    pub fn cached_prompt_tokens(&self) -> usize {
        self.cached_prompt_tokens
    }

    pub fn into_generation(self) -> Generation {
        Generation {
            text: self.text,
            tokens: self.generated,
            prompt_tokens: self.prompt_tokens,
            cached_prompt_tokens: self.cached_prompt_tokens,
            stop: self.stop.unwrap_or(StopReason::MaxTokens),
        }
    }
}
