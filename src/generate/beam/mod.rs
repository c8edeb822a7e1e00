//! Beam search: the likeliest text the beam finds, instead of a sampled one.
//!
//! - `search.rs`: the search over hypotheses, independent of any model (tested on a fake);
//! - `kv.rs`: each hypothesis's keys and values on the generator's one cache;
//! - `logprob.rs`: log-probabilities and length normalisation, the same bits on any CPU.
//!
//! Hypotheses are compared by `sum of log-probabilities / length^length_penalty`. The default
//! penalty 1 makes that the mean log-probability per token, Hugging Face's default: with a
//! plain sum (0) every extra token costs, so the beam favours stopping early, and a
//! tagline would shrink to a few words; above 1 it favours length.
//!
//! Streaming: text is shown only once it is certain, that is once every hypothesis that can
//! still win starts with it (the tokens they share, as the beam narrows), and the rest of
//! the winner at the end; so the page never takes text back. Each [`BeamSearch::step`] runs
//! the model once, as a sampled [`crate::generate::Decoding`] does, so a Stop arrives
//! within one pass.

mod kv;
mod logprob;
mod search;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use self::kv::{ModelScorer, NodeCache};
use self::search::{Beams, Progress};
use super::decoding::{Owner, Step, StopReason};
use super::generator::Generator;
use crate::error::{Error, Result};

/// Whether a text has ended by a task's stop rule (a tagline's first line break after some
/// text): beam search must know it of every hypothesis, not only of the text shown.
pub type TextEnds = Box<dyn Fn(&str) -> bool + Send>;

/// How wide and how far to search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BeamParams {
    /// Hypotheses kept after each token (1 = greedy decoding).
    pub width: usize,
    /// Scores are `sum log p / length^length_penalty` (≥ 0; see the module's doc).
    pub length_penalty: f64,
    /// A hypothesis never repeats an n-gram of its own tokens of this size (0 = no rule).
    pub no_repeat_ngram: usize,
    pub max_tokens: usize,
}

impl Default for BeamParams {
    fn default() -> Self {
        Self {
            width: 4,
            length_penalty: 1.0,
            no_repeat_ngram: 0,
            max_tokens: 32,
        }
    }
}

impl BeamParams {
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 {
            return Err(Error::InvalidArgument(
                "the beam width must be at least 1".into(),
            ));
        }
        if !self.length_penalty.is_finite() || self.length_penalty < 0.0 {
            return Err(Error::InvalidArgument(
                "the length penalty must be a number of at least 0".into(),
            ));
        }
        Ok(())
    }
}

/// A beam search in progress, advanced one model pass at a time.
pub struct BeamSearch {
    owner: Owner,
    beams: Beams,
    cache: NodeCache,
    ends: TextEnds,
    prompt_tokens: usize,
    cached_prompt_tokens: usize,
    /// The certain tokens so far, and the text shown for them.
    shown: Vec<u32>,
    text: String,
    /// Once ended: the winner's tokens (or, stopped early, those shown).
    tokens: Vec<u32>,
    score: Option<f64>,
    stop: Option<StopReason>,
}

impl Generator {
    /// Begins a beam search from `prompt` (token ids) that the caller advances with
    /// [`BeamSearch::step`]; `ends` is the task's stop rule. Any generation started before
    /// can no longer be stepped.
    pub fn start_beam(
        &mut self,
        prompt: &[u32],
        params: &BeamParams,
        ends: TextEnds,
    ) -> Result<BeamSearch> {
        params.validate()?;
        let (owner, reuse) = self.begin(prompt, params.max_tokens)?;
        Ok(BeamSearch {
            owner,
            beams: Beams::new(*params),
            cache: NodeCache::new(prompt, reuse),
            ends,
            prompt_tokens: prompt.len(),
            cached_prompt_tokens: reuse,
            shown: Vec::new(),
            text: String::new(),
            tokens: Vec::new(),
            score: None,
            stop: None,
        })
    }
}

impl BeamSearch {
    /// Runs the model once (the first call is the prompt's prefill) for one hypothesis.
    /// [`Step::Text`] when more text became certain, [`Step::Pending`] when none did.
    /// An error if `generator` is not the one that started this search, or if it has
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
        let mut scorer = ModelScorer {
            generator,
            cache: &mut self.cache,
            ends: &*self.ends,
        };
        match self.beams.advance(&mut scorer)? {
            Progress::Expanded => Ok(Step::Pending),
            Progress::Round => {
                let certain = self.beams.certain();
                self.show(generator, certain)
            }
            Progress::Done => {
                let best = self.beams.best().cloned().ok_or_else(|| {
                    Error::Generation("beam search ended without a hypothesis".into())
                })?;
                let step = self.show(generator, best.tokens.clone())?;
                self.stop = Some(best.stop);
                self.score = Some(best.score);
                self.tokens = best.tokens;
                Ok(match step {
                    Step::Text(piece) => Step::Text(piece),
                    _ => Step::Finished,
                })
            }
        }
    }

    /// The text of `tokens` past what is shown (whole characters only, as a sampled
    /// decoding shows them).
    fn show(&mut self, generator: &Generator, tokens: Vec<u32>) -> Result<Step> {
        if tokens.len() <= self.shown.len() {
            return Ok(Step::Pending);
        }
        let decoded = generator.decode(&tokens)?;
        if !decoded.starts_with(&self.text) {
            return Err(Error::Generation(format!(
                "the tokenizer decoded a longer text that does not start with the text shown \
                 ({:?} then {decoded:?})",
                self.text
            )));
        }
        self.shown = tokens;
        if decoded.len() <= self.text.len() || decoded.ends_with('\u{fffd}') {
            return Ok(Step::Pending);
        }
        let piece = decoded[self.text.len()..].to_string();
        self.text.push_str(&piece);
        Ok(Step::Text(piece))
    }

    /// Ends the search; the next step reports [`Step::Finished`], and the result is the
    /// text shown so far (what was certain).
    pub fn cancel(&mut self) {
        self.end(StopReason::Cancelled);
    }

    /// Ends the search for `reason` with the text shown so far; the first reason stays.
    pub fn end(&mut self, reason: StopReason) {
        if self.stop.is_none() {
            self.stop = Some(reason);
            self.tokens = self.shown.clone();
        }
    }

    /// Why it ended, once it has.
    pub fn stop(&self) -> Option<StopReason> {
        self.stop
    }

    /// All text shown so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The winner's normalised score, once the search has ended by itself.
    pub fn score(&self) -> Option<f64> {
        self.score
    }

    /// Tokens per hypothesis so far; once ended, the result's.
    pub fn generated_tokens(&self) -> usize {
        if self.stop.is_some() {
            self.tokens.len()
        } else {
            self.beams.depth()
        }
    }

    /// Once ended, the result's tokens (an end token left out); before, the certain ones.
    pub fn tokens(&self) -> &[u32] {
        if self.stop.is_some() {
            &self.tokens
        } else {
            &self.shown
        }
    }

    pub fn prompt_tokens(&self) -> usize {
        self.prompt_tokens
    }

    /// Prompt tokens found in the KV cache, which needed no prefill.
    pub fn cached_prompt_tokens(&self) -> usize {
        self.cached_prompt_tokens
    }
}
