//! One generation in progress, advanced a token at a time: the browser worker returns to its
//! event loop between tokens so that a Stop message can arrive. Decoding knows nothing of any
//! task: it emits whole characters until the end of text, the token limit or a cancel; a
//! task's own stop rule (a tagline's one line) is applied by `crate::task`.

use serde::{Deserialize, Serialize};

use super::generator::Generator;
use super::sampling::Sampler;
use crate::error::{Error, Result};

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndOfText,
    /// The task's stop rule ended it (a tagline's end of line).
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

/// What one [`Decoding::step`] produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// New text (whole characters; never empty).
    Text(String),
    /// A token was decoded but its text is not complete yet (inside a multi-byte character).
    Pending,
    /// The generation has ended; [`Decoding::stop`] says why.
    Finished,
}

/// Which generator run a [`Decoding`] belongs to: the model's KV cache lives in the
/// [`Generator`], so stepping it with another generator, or after another generation
/// started, would continue from the wrong cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Owner {
    pub generator: u64,
    pub run: u64,
}

/// One generation in progress: its sampler, the tokens so far and the text shown so far.
pub struct Decoding {
    pub(super) owner: Owner,
    pub(super) max_tokens: usize,
    pub(super) sampler: Sampler,
    pub(super) history: Vec<u32>,
    pub(super) prompt_tokens: usize,
    pub(super) cached_prompt_tokens: usize,
    pub(super) generated: Vec<u32>,
    pub(super) text: String,
    /// Tokens to feed next: the uncached prompt first (prefill), then each sampled token.
    pub(super) next_input: Vec<u32>,
    pub(super) position: usize,
    pub(super) stop: Option<StopReason>,
}

impl Decoding {
    /// Runs the model once (the first call is the prompt's prefill) and samples one token.
    /// An error if `generator` is not the one that started this decoding, or if it has
    /// started another since.
    pub fn step(&mut self, generator: &mut Generator) -> Result<Step> {
        if self.stop.is_some() {
            return Ok(Step::Finished);
        }
        if generator.owner_of_current_run() != Some(self.owner) {
            return Err(Error::InvalidArgument(
                "this generation was started by another generator, or another generation has \
                 started since"
                    .into(),
            ));
        }
        if self.generated.len() >= self.max_tokens {
            self.stop = Some(StopReason::MaxTokens);
            return Ok(Step::Finished);
        }
        let logits = generator.run(&self.next_input, self.position)?;
        self.position += self.next_input.len();
        let next = self.sampler.next(&logits, &self.history)?;
        if generator.is_end_token(next) {
            self.stop = Some(StopReason::EndOfText);
            return Ok(Step::Finished);
        }
        self.history.push(next);
        self.generated.push(next);
        self.next_input = vec![next];
        let decoded = generator.decode(&self.generated)?;
        // Emit only whole characters: a token may end inside a multi-byte character.
        if decoded.len() <= self.text.len() || decoded.ends_with('\u{fffd}') {
            return Ok(Step::Pending);
        }
        let piece = decoded[self.text.len()..].to_string();
        self.text.push_str(&piece);
        Ok(Step::Text(piece))
    }

    /// Ends the generation; the next step reports [`Step::Finished`].
    pub fn cancel(&mut self) {
        self.end(StopReason::Cancelled);
    }

    /// Ends the generation for `reason` (a task's stop rule); the first reason given stays.
    pub fn end(&mut self, reason: StopReason) {
        self.stop.get_or_insert(reason);
    }

    /// Why it ended, once it has.
    pub fn stop(&self) -> Option<StopReason> {
        self.stop
    }

    /// All text decoded so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Tokens sampled so far (the end-of-text token excluded).
    pub fn generated_tokens(&self) -> usize {
        self.generated.len()
    }

    /// The tokens sampled so far.
    pub fn tokens(&self) -> &[u32] {
        &self.generated
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
