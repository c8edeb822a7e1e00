//! The tagline job: a movie idea in; the most similar movies that have a tagline, and a new
//! tagline written with theirs as examples, out.

mod examples;
mod prompt;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

pub use examples::{retrieved_examples, select_examples, Example, ExampleSource, Examples};
pub use prompt::{build_prompt, prompt_prefix, Budget, PromptStyle, SYSTEM_PROMPT};

use super::{Phase, Run, StopRule, Task};
use crate::error::{Error, Result};
use crate::generate::{Generator, SamplingParams};
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
}

impl Default for TaglineRequest {
    fn default() -> Self {
        let sampling = SamplingParams::default();
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
}

pub const LIMITS: TaglineLimits = TaglineLimits {
    max_k: 20,
    max_temperature: 2.0,
    max_top_k: 200,
    max_repeat_penalty: 2.0,
    max_tokens: 128,
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
        Ok(())
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
    let (text, kept) = build_prompt(
        &request.idea,
        &examples,
        request.style,
        Budget::default(),
        &count,
    )?;
    let tokens = generator.encode(&text)?;
    on_phase(Phase::PromptBuilt {
        prompt_tokens: tokens.len(),
        context_in_prompt: kept,
    });
    let decoding = generator.start(&tokens, &request.sampling())?;
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
