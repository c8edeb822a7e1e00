//! A language model with its tokenizer and its KV cache: what a task hands a prompt to.
//! It keeps primed prefixes (one per task's fixed opening), so a prompt that starts with
//! one prefills only the rest.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{Device, Tensor};
use tokenizers::Tokenizer;

use super::adapter::{Adapter, AdapterMode};
use super::attention::{KvCache, SavedRows};
use super::decoding::{Decoding, Generation, Owner, Step};
use super::gpt2::Gpt2;
use super::llama::Llama;
use super::sampling::SamplingParams;
use super::tokenizer::tokenizer_from_gguf;
use crate::error::{Error, Result};
use crate::weights::GgufTensors;

/// What the generation loop needs of a model: next-token logits with a KV cache.
pub(crate) trait CausalLm {
    /// Logits, shape (vocab,), for the token after `ids` (shape (1, n)), with `position`
    /// tokens already in the cache.
    fn next_logits(&mut self, ids: &Tensor, position: usize) -> Result<Tensor>;
    fn clear_cache(&mut self);
    /// Keeps only the first `len` cached positions (0 clears the cache).
    fn truncate_cache(&mut self, len: usize) -> Result<()>;
    /// Whether a position's logits are the same bits however the prompt is split into
    /// calls: only then may a cached prefix stand in for running it again.
    fn is_split_invariant(&self) -> bool;
    /// A copy of the first `len` cached positions.
    fn save_cache(&self, len: usize) -> Vec<SavedRows>;
    /// Holds exactly the positions of `saved`.
    fn restore_cache(&mut self, saved: &[SavedRows]);
    /// Applies a LoRA adapter (or takes it off with `None`).
    fn set_adapter(&mut self, adapter: Option<&Adapter>, mode: AdapterMode) -> Result<()>;
    /// Every layer's cache, in order (beam search moves single positions in and out).
    fn kv_caches(&mut self) -> Vec<&mut KvCache>;
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

    fn is_split_invariant(&self) -> bool {
        true // every matrix is quantized (our kernels), attention is ours
    }

    fn save_cache(&self, len: usize) -> Vec<SavedRows> {
        self.save_kv_cache(len)
    }

    fn restore_cache(&mut self, saved: &[SavedRows]) {
        self.restore_kv_cache(saved);
    }

    fn set_adapter(&mut self, adapter: Option<&Adapter>, mode: AdapterMode) -> Result<()> {
        Llama::set_adapter(self, adapter, mode)
    }

    fn kv_caches(&mut self) -> Vec<&mut KvCache> {
        Llama::kv_caches(self)
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

    fn is_split_invariant(&self) -> bool {
        Gpt2::is_split_invariant(self)
    }

    fn save_cache(&self, len: usize) -> Vec<SavedRows> {
        self.save_kv_cache(len)
    }

    fn restore_cache(&mut self, saved: &[SavedRows]) {
        self.restore_kv_cache(saved);
    }

    fn set_adapter(&mut self, adapter: Option<&Adapter>, _mode: AdapterMode) -> Result<()> {
        match adapter {
            None => Ok(()),
            Some(_) => Err(Error::ModelFile(
                "adapter file: adapters apply to llama generators (SmolLM2) at inference; \
                 GPT-2 adapters are for training and its reference checks"
                    .into(),
            )),
        }
    }

    fn kv_caches(&mut self) -> Vec<&mut KvCache> {
        Gpt2::kv_caches(self)
    }
}

/// A prefix run ahead of time, and its keys and values.
struct Primed {
    tokens: Vec<u32>,
    saved: Vec<SavedRows>,
}

/// Distinguishes generators, so that a [`Decoding`] can tell it is stepped by its own.
static GENERATORS: AtomicU64 = AtomicU64::new(0);

/// A language model with its tokenizer: SmolLM2 (llama GGUF) or GPT-2.
pub struct Generator {
    model: Box<dyn CausalLm>,
    /// The tokens whose keys and values are in the model's cache, in order.
    cached: Vec<u32>,
    /// Prefixes set by [`Generator::prime`], keyed by their tokens.
    primed: Vec<Primed>,
    tokenizer: Tokenizer,
    end_tokens: Vec<u32>,
    context_length: usize,
    id: u64,
    /// Counts started generations; the last one owns the cache.
    runs: u64,
}

impl Generator {
    fn new(
        model: Box<dyn CausalLm>,
        tokenizer: Tokenizer,
        end_tokens: Vec<u32>,
        context_length: usize,
    ) -> Self {
        Self {
            model,
            cached: Vec::new(),
            primed: Vec::new(),
            tokenizer,
            end_tokens,
            context_length,
            id: GENERATORS.fetch_add(1, Ordering::Relaxed),
            runs: 0,
        }
    }

    /// GPT-2 with its tokenizer; generation ends at `<|endoftext|>`.
    pub fn gpt2(model: Gpt2, tokenizer: Tokenizer) -> Self {
        let context_length = model.config().n_positions;
        let end_tokens = tokenizer.token_to_id("<|endoftext|>").into_iter().collect();
        Self::new(Box::new(model), tokenizer, end_tokens, context_length)
    }

    /// A llama-architecture GGUF (SmolLM2), with the tokenizer from its own metadata.
    pub fn from_llama_gguf(bytes: &[u8]) -> Result<Self> {
        Self::from_llama_tensors(GgufTensors::read(bytes)?)
    }

    /// [`Generator::from_llama_gguf`] from a GGUF file read piece by piece (the page keeps
    /// the file's bytes outside the wasm heap, see `web/src/js_bytes.rs`).
    pub fn from_llama_reader(reader: impl crate::weights::TensorSource) -> Result<Self> {
        Self::from_llama_tensors(GgufTensors::from_reader(reader)?)
    }

    fn from_llama_tensors(mut tensors: GgufTensors) -> Result<Self> {
        let metadata = tensors.metadata();
        let arch = match metadata.get("general.architecture") {
            Some(v) => v.to_string()?.clone(),
            None => String::new(),
        };
        if arch != "llama" {
            return Err(Error::ModelFile(format!(
                "GGUF architecture is {arch:?}; this generator runs \"llama\" models (SmolLM2)"
            )));
        }
        let tokenizer = tokenizer_from_gguf(metadata)?;
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
        let model = Llama::new(&mut tensors)?;
        let context_length = model.config().context_length;
        Ok(Self::new(
            Box::new(model),
            tokenizer,
            end_tokens,
            context_length,
        ))
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

    /// How many tokens `text` is (for prompt budgets).
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.encode(text)?.len())
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true).map_err(Error::tokenizer)
    }

    pub(super) fn is_end_token(&self, id: u32) -> bool {
        self.end_tokens.contains(&id)
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
        self.forget_cache();
        self.runs += 1;
        let mut choices = Vec::with_capacity(forced.len());
        let mut input = prompt.to_vec();
        let mut position = 0;
        for &token in forced {
            let logits = self.run(&input, position)?;
            position += input.len();
            choices.push(logits.argmax(0)?.to_scalar::<u32>()?);
            input = vec![token];
        }
        Ok(choices)
    }

    /// Teacher forcing for scoring: the natural-log probability of each token of `answer`
    /// following `prompt` (and the answer's earlier tokens). Reuses cached and primed
    /// prefixes as [`Generator::start`] does, which gives the bits a whole prefill would.
    pub fn answer_log_probs(&mut self, prompt: &[u32], answer: &[u32]) -> Result<Vec<f32>> {
        let (_, reuse) = self.begin(prompt, answer.len())?;
        let mut log_probs = Vec::with_capacity(answer.len());
        let (mut input, mut position) = (prompt[reuse..].to_vec(), reuse);
        for &token in answer {
            let logits = self.run(&input, position)?;
            position += input.len();
            log_probs.push(log_softmax_at(&logits.to_vec1::<f32>()?, token as usize)?);
            input = vec![token];
        }
        Ok(log_probs)
    }

    /// Generates from `prompt` (token ids) to the end of text or `max_tokens`, calling
    /// `on_text` with each newly decoded piece of text; returning `ControlFlow::Break` from
    /// it cancels the generation.
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
    /// [`Decoding::step`]. Any generation started before can no longer be stepped.
    pub fn start(&mut self, prompt: &[u32], params: &SamplingParams) -> Result<Decoding> {
        let (owner, reuse) = self.begin(prompt, params.max_tokens)?;
        Ok(Decoding {
            owner,
            max_tokens: params.max_tokens,
            sampler: params.sampler(),
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

    /// Checks that `prompt` and `max_tokens` more fit the context, readies the cache for the
    /// prompt (see [`Generator::reuse_cache`]) and starts a new run, which from now on is the
    /// only one that may step the cache. Returns it and how many prompt tokens are cached.
    pub(super) fn begin(&mut self, prompt: &[u32], max_tokens: usize) -> Result<(Owner, usize)> {
        if prompt.is_empty() {
            return Err(Error::InvalidArgument("the prompt is empty".into()));
        }
        if prompt.len() + max_tokens > self.context_length {
            return Err(Error::InvalidArgument(format!(
                "the prompt has {} tokens; with {} to generate that exceeds the model's context of {}",
                prompt.len(),
                max_tokens,
                self.context_length
            )));
        }
        let reuse = self.reuse_cache(prompt)?;
        self.runs += 1;
        Ok((
            Owner {
                generator: self.id,
                run: self.runs,
            },
            reuse,
        ))
    }

    /// Who may step the cache now: the last generation started.
    pub(super) fn owner_of_current_run(&self) -> Option<Owner> {
        (self.runs > 0).then_some(Owner {
            generator: self.id,
            run: self.runs,
        })
    }

    /// Readies the cache for `prompt` and returns how many of its tokens it already holds
    /// (those need no prefill): what it shares with the tokens now cached, or the longest
    /// primed prefix it starts with, whichever is longer, always leaving one token to run.
    /// Only on a split-invariant model (quantized weights: `attention.rs`; the tests check
    /// every split), where reusing gives the bits a whole prefill would, so the same prompt
    /// and seed give the same text whatever ran before.
    fn reuse_cache(&mut self, prompt: &[u32]) -> Result<usize> {
        if !self.model.is_split_invariant() {
            self.forget_cache();
            return Ok(0);
        }
        let limit = prompt.len() - 1;
        let shared = self
            .cached
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(limit);
        let primed = self
            .primed
            .iter()
            .filter(|p| p.tokens.len() <= limit && prompt.starts_with(&p.tokens))
            .max_by_key(|p| p.tokens.len());
        match primed {
            Some(p) if p.tokens.len() > shared => {
                self.model.restore_cache(&p.saved);
                self.cached = p.tokens.clone();
            }
            _ => {
                if let Err(e) = self.model.truncate_cache(shared) {
                    self.forget_cache();
                    return Err(e);
                }
                self.cached.truncate(shared);
            }
        }
        Ok(self.cached.len())
    }

    /// Empties the KV cache (primed prefixes are kept): the next prompt is prefilled from
    /// its first token or from a primed prefix (benchmarks time a cold prefill this way).
    pub fn forget_cache(&mut self) {
        self.model.clear_cache();
        self.cached.clear();
    }

    /// Applies a LoRA adapter (`None` takes it off); primed prefixes are run again under
    /// the new weights.
    pub fn set_adapter(&mut self, adapter: Option<&Adapter>, mode: AdapterMode) -> Result<()> {
        self.model.set_adapter(adapter, mode)?;
        self.forget_cache();
        let prefixes: Vec<Vec<u32>> = self.primed.drain(..).map(|p| p.tokens).collect();
        for prefix in prefixes {
            self.prime(&prefix)?;
        }
        Ok(())
    }

    /// Runs `prefix` (token ids) ahead of time and keeps its keys and values; from then on
    /// prompts that start with it prefill only the rest. Each task primes its fixed opening
    /// (the page while it loads); several prefixes are kept, one per distinct token list.
    pub fn prime(&mut self, prefix: &[u32]) -> Result<()> {
        if prefix.is_empty()
            || prefix.len() >= self.context_length
            || self.primed.iter().any(|p| p.tokens == prefix)
            || !self.model.is_split_invariant()
        {
            return Ok(());
        }
        self.forget_cache();
        self.run(prefix, 0)?;
        self.primed.push(Primed {
            tokens: prefix.to_vec(),
            saved: self.model.save_cache(prefix.len()),
        });
        Ok(())
    }

    /// How many prefixes are primed.
    pub fn primed_prefixes(&self) -> usize {
        self.primed.len()
    }

    /// The model on `ids` at `position`, keeping `cached` in step with its cache (and both
    /// empty if the model fails part-way).
    pub(super) fn run(&mut self, ids: &[u32], position: usize) -> Result<Tensor> {
        let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
        match self.model.next_logits(&input, position) {
            Ok(logits) => {
                self.cached.truncate(position);
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

/// `log softmax(logits)[at]`, summed in f64 in index order (the same on every CPU).
fn log_softmax_at(logits: &[f32], at: usize) -> Result<f32> {
    let chosen = *logits
        .get(at)
        .ok_or_else(|| Error::InvalidArgument(format!("token {at} is outside the vocabulary")))?;
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let sum: f64 = logits.iter().map(|&v| (v as f64 - max).exp()).sum();
    Ok((chosen as f64 - max - sum.ln()) as f32)
}

/// Beam search's view of the cache (`beam/kv.rs`): each hypothesis keeps its own positions
/// past the prompt and puts them back before its next token runs.
impl Generator {
    /// Copies of position `at` in every layer's cache.
    pub(super) fn save_position(&mut self, at: usize) -> Vec<SavedRows> {
        let caches = self.model.kv_caches();
        caches.iter().map(|c| c.save_range(at, at + 1)).collect()
    }

    /// Keeps the first `keep` cached positions, then appends `tokens` with their saved
    /// positions (one [`Generator::save_position`] each). On failure the cache is emptied,
    /// as [`Generator::run`] does, so it never holds positions it does not know.
    pub(super) fn rewind_and_append(
        &mut self,
        keep: usize,
        tokens: &[u32],
        positions: &[&[SavedRows]],
    ) -> Result<()> {
        let appended = self.model.truncate_cache(keep).and_then(|()| {
            for saved in positions {
                for (cache, rows) in self.model.kv_caches().into_iter().zip(saved.iter()) {
                    cache.append(rows)?;
                }
            }
            Ok(())
        });
        if let Err(e) = appended {
            self.forget_cache();
            return Err(e);
        }
        self.cached.truncate(keep);
        self.cached.extend_from_slice(tokens);
        Ok(())
    }
}
