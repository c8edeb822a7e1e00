//! The tagline job: a movie idea in; the most similar movies that have a tagline, and a new
//! tagline written with theirs as examples, out.

mod examples;
mod prompt;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

pub use examples::{retrieved_examples, select_examples, Example, ExampleSource, Examples};
pub use prompt::{build_prompt, prompt_prefix, PromptStyle, BUDGET, SYSTEM_PROMPT};

use super::{Phase, Run, StopRule, Task};
use crate::error::{Error, Result};
use crate::generate::{BeamParams, Decoder, Generator, SamplingParams};
use crate::index::SearchMode;
use crate::retriever::Retriever;

/// The tagline job.
pub struct Tagline;

impl Task for Tagline {
    const NAME: &'static str = "tagline";

    fn prompt_prefix() -> Option<String> {
        Some(prompt_prefix())
    }

    fn stop_rule() -> StopRule {
        StopRule::FirstLine
    }
}

/// One request, as the page, the CLI and the evaluation make it. Every field has a default
/// (`TaglineRequest::default()`), the one source of the job's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaglineRequest {
    /// The movie idea (a sentence or a whole overview).
    pub idea: String,
    /// How many example movies go into the prompt.
    pub k: usize,
    pub mode: SearchMode,
    pub examples: ExampleSource,
    /// Seed of the random examples (when `examples` is `random`).
    pub examples_seed: u64,
    pub style: PromptStyle,
    /// 0 picks the likeliest token every time.
    pub temperature: f64,
    /// 0 turns top-k off.
    pub top_k: usize,
    /// 1 turns top-p off.
    pub top_p: f64,
    pub repeat_penalty: f32,
    /// Same seed, same settings, same tagline.
    pub seed: u64,
    pub max_tokens: usize,
    /// Sampled (the settings above; "surprise me") or beam search (the likeliest tagline
    /// the beam finds; "best": the sampling settings and seed play no part).
    pub decoding: Strategy,
    /// Hypotheses the beam keeps (1 = greedy).
    pub beam_width: usize,
    /// Beam scores are sum log p / length^this: 1 is the mean per token, 0 a plain sum.
    pub length_penalty: f64,
    /// A beam hypothesis never repeats an n-gram of its own tokens of this size (0 = no
    /// rule). Scores per token reward loops ("No, no, no, …" scores better per token than
    /// any tagline once it starts), so by default the beam may not repeat three tokens in a
    /// row; README's "Beam search" shows taglines with and without it.
    pub no_repeat_ngram: usize,
}

/// How a tagline's tokens are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    Sampled,
    Beam,
}

impl Default for TaglineRequest {
    fn default() -> Self {
        let sampling = SamplingParams::default();
        let beam = BeamParams::default();
        Self {
            idea: String::new(),
            k: 4,
            mode: SearchMode::default(),
            examples: ExampleSource::Retrieved,
            examples_seed: 7,
            style: PromptStyle::default(),
            temperature: sampling.temperature,
            top_k: sampling.top_k.unwrap_or(0),
            top_p: sampling.top_p.unwrap_or(1.0),
            repeat_penalty: sampling.repeat_penalty,
            seed: sampling.seed,
            max_tokens: sampling.max_tokens,
            decoding: Strategy::default(),
            beam_width: beam.width,
            length_penalty: beam.length_penalty,
            no_repeat_ngram: 3,
        }
    }
}

/// The bounds of a request's numbers, checked by [`TaglineRequest::validate`] and shown by
/// the page's controls.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TaglineLimits {
    pub max_k: usize,
    pub max_temperature: f64,
    pub max_top_k: usize,
    pub max_repeat_penalty: f32,
    pub max_tokens: usize,
    /// Each hypothesis costs a model pass per token, so the width is the beam's slowdown.
    pub max_beam_width: usize,
    pub max_length_penalty: f64,
    pub max_no_repeat_ngram: usize,
}

pub const LIMITS: TaglineLimits = TaglineLimits {
    max_k: 20,
    max_temperature: 2.0,
    max_top_k: 200,
    max_repeat_penalty: 2.0,
    max_tokens: 128,
    max_beam_width: 8,
    max_length_penalty: 2.0,
    max_no_repeat_ngram: 8,
};

impl TaglineRequest {
    /// A request with `idea` and every other field at its default.
    pub fn new(idea: impl Into<String>) -> Self {
        Self {
            idea: idea.into(),
            ..Self::default()
        }
    }

    /// Checks every number against [`LIMITS`]: a request can come from anywhere.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(what));
        let l = LIMITS;
        if !(1..=l.max_k).contains(&self.k) {
            return bad(format!("k must be between 1 and {}", l.max_k));
        }
        if !(1..=l.max_tokens).contains(&self.max_tokens) {
            return bad(format!("max tokens must be between 1 and {}", l.max_tokens));
        }
        if !self.temperature.is_finite() || !(0.0..=l.max_temperature).contains(&self.temperature) {
            return bad(format!(
                "temperature must be between 0 and {}",
                l.max_temperature
            ));
        }
        if self.top_k > l.max_top_k {
            return bad(format!("top-k must be between 0 and {}", l.max_top_k));
        }
        if !self.top_p.is_finite() || !(0.0..=1.0).contains(&self.top_p) || self.top_p == 0.0 {
            return bad("top-p must be above 0 and at most 1".into());
        }
        if !self.repeat_penalty.is_finite()
            || !(1.0..=l.max_repeat_penalty).contains(&self.repeat_penalty)
        {
            return bad(format!(
                "the repetition penalty must be between 1 and {}",
                l.max_repeat_penalty
            ));
        }
        if !(1..=l.max_beam_width).contains(&self.beam_width) {
            return bad(format!(
                "the beam width must be between 1 and {}",
                l.max_beam_width
            ));
        }
        if !self.length_penalty.is_finite()
            || !(0.0..=l.max_length_penalty).contains(&self.length_penalty)
        {
            return bad(format!(
                "the length penalty must be between 0 and {}",
                l.max_length_penalty
            ));
        }
        if self.no_repeat_ngram > l.max_no_repeat_ngram {
            return bad(format!(
                "the n-gram size that may not repeat must be between 0 (off) and {}",
                l.max_no_repeat_ngram
            ));
        }
        Ok(())
    }

    /// The beam search these settings ask for (when `decoding` is `beam`).
    pub fn beam(&self) -> BeamParams {
        BeamParams {
            width: self.beam_width,
            length_penalty: self.length_penalty,
            no_repeat_ngram: self.no_repeat_ngram,
            max_tokens: self.max_tokens,
        }
    }

    /// Starts generating `prompt` the way these settings ask, under the tagline's stop rule.
    fn start_decoding(&self, generator: &mut Generator, prompt: &[u32]) -> Result<Decoder> {
        Ok(match self.decoding {
            Strategy::Sampled => generator.start(prompt, &self.sampling())?.into(),
            Strategy::Beam => {
                let rule = Tagline::stop_rule();
                let ends = Box::new(move |text: &str| rule.ends(text));
                generator.start_beam(prompt, &self.beam(), ends)?.into()
            }
        })
    }

    /// The sampling these settings ask for.
    pub fn sampling(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_k: (self.top_k > 0).then_some(self.top_k),
            top_p: (self.top_p < 1.0).then_some(self.top_p),
            repeat_penalty: self.repeat_penalty,
            seed: self.seed,
            max_tokens: self.max_tokens,
            ..SamplingParams::default()
        }
    }

    fn examples(&self) -> Examples {
        match self.examples {
            ExampleSource::Retrieved => Examples::Retrieved {
                k: self.k,
                mode: self.mode,
            },
            ExampleSource::Random => Examples::Random {
                k: self.k,
                seed: self.examples_seed,
            },
            ExampleSource::None => Examples::None,
        }
    }
}

/// The prompt a request became.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub text: String,
    pub tokens: Vec<u32>,
    /// How many of the examples fit the token budget (the first ones).
    pub examples_in_prompt: usize,
}

/// A started tagline job: its examples, and with a generator its prompt and generation.
pub struct Started<'r> {
    pub examples: Vec<Example<'r>>,
    pub prompt: Option<Prompt>,
    pub run: Option<Run>,
}

/// Runs a request up to its generation: embeds the idea and picks the examples (never one
/// in `exclude`), then, given a generator, builds the prompt within the budget and starts
/// generating. `on_phase` hears of each phase as it ends.
pub fn start<'r>(
    retriever: &'r Retriever,
    generator: Option<&mut Generator>,
    request: &TaglineRequest,
    exclude: &HashSet<usize>,
    mut on_phase: impl FnMut(Phase),
) -> Result<Started<'r>> {
    request.validate()?;
    let examples = match request.examples() {
        Examples::Retrieved { k, mode } => {
            let embedding = retriever.embedder().embed_query(&request.idea)?;
            on_phase(Phase::Embedded);
            retrieved_examples(retriever, &embedding, k, mode, exclude)?
        }
        how => select_examples(retriever, &request.idea, how, exclude)?,
    };
    on_phase(Phase::Searched);
    let Some(generator) = generator else {
        return Ok(Started {
            examples,
            prompt: None,
            run: None,
        });
    };
    let count = |text: &str| generator.count_tokens(text).unwrap_or(usize::MAX);
    let (text, kept) = build_prompt(&request.idea, &examples, request.style, BUDGET, &count)?;
    let tokens = generator.encode(&text)?;
    on_phase(Phase::PromptBuilt {
        prompt_tokens: tokens.len(),
        context_in_prompt: kept,
    });
    let decoding = request.start_decoding(generator, &tokens)?;
    Ok(Started {
        examples,
        prompt: Some(Prompt {
            text,
            tokens,
            examples_in_prompt: kept,
        }),
        run: Some(Run::new(decoding, Tagline::stop_rule())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decoding_choice_is_checked_against_its_limits() {
        let request = TaglineRequest::new("a shark");
        assert_eq!(request.decoding, Strategy::Sampled);
        assert!(request.validate().is_ok());
        let beam = |beam_width, length_penalty| TaglineRequest {
            decoding: Strategy::Beam,
            beam_width,
            length_penalty,
            ..request.clone()
        };
        assert!(beam(1, 0.0).validate().is_ok());
        assert!(beam(LIMITS.max_beam_width, LIMITS.max_length_penalty)
            .validate()
            .is_ok());
        for (width, penalty) in [
            (0, 1.0),
            (LIMITS.max_beam_width + 1, 1.0),
            (4, -0.1),
            (4, f64::NAN),
        ] {
            let error = beam(width, penalty).validate().expect_err("out of bounds");
            let message = error.to_string();
            assert!(
                message.contains("beam width") || message.contains("length penalty"),
                "{message}"
            );
        }
        let long = TaglineRequest {
            no_repeat_ngram: LIMITS.max_no_repeat_ngram + 1,
            ..request.clone()
        };
        assert!(long.validate().is_err());
        let params = beam(3, 0.5).beam();
        assert_eq!(
            (params.width, params.length_penalty, params.max_tokens),
            (3, 0.5, request.max_tokens)
        );
    }
}
