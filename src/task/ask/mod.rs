//! The Ask job: a question in; the passages that answer it and a short answer written from
//! them out, or "I don't know" when nothing retrieved is relevant enough.

mod prompt;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

pub use prompt::{build_prompt, prompt_prefix, SYSTEM_PROMPT};

use super::{Phase, Run, StopRule, Task};
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::generate::{Generator, SamplingParams};
use crate::qa::{PassageHit, PassageIndex, Signal};

/// What the job answers when retrieval finds nothing relevant, instead of a made-up answer.
pub const UNKNOWN: &str = "I don't know.";

/// The Ask job.
pub struct Ask;

impl Task for Ask {
    const NAME: &'static str = "ask";

    fn prompt_prefix() -> Option<String> {
        Some(prompt_prefix())
    }

    fn stop_rule() -> StopRule {
        StopRule::FirstLine
    }
}

/// Where the prompt's context comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Context {
    /// The best passages.
    #[default]
    Retrieved,
    /// None: the model answers from what it knows (the evaluation's baseline).
    None,
}

/// One request. Every field has a default (`AskRequest::default()`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AskRequest {
    pub question: String,
    /// Passages retrieved and shown (the best ones go into the prompt as the budget allows).
    pub k: usize,
    pub signal: Signal,
    pub context: Context,
    /// Tokens the passages may take in the prompt: prefill is most of the time to the
    /// first token (≈ 90 tokens/s in the page), and the best passage alone holds the answer
    /// to most questions.
    pub max_context_tokens: usize,
    /// Below this [`relevance`] the answer is [`UNKNOWN`] and nothing is generated: the
    /// guard against off-topic questions (cooking, capitals: 0.03–0.29), while the reader
    /// adapter says "I don't know." itself when the passages are about another movie.
    /// `index-builder ask-eval`'s threshold table (docs/evaluation.md) gives its precision
    /// and recall on questions about missing movies and how many answerable ones it refuses.
    pub min_relevance: f32,
    pub max_tokens: usize,
}

impl Default for AskRequest {
    fn default() -> Self {
        Self {
            question: String::new(),
            k: 3,
            signal: Signal::default(),
            context: Context::default(),
            max_context_tokens: 96,
            min_relevance: 0.35,
            max_tokens: 24,
        }
    }
}

/// The bounds of a request, checked by [`AskRequest::validate`] and shown by the page.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AskLimits {
    pub max_k: usize,
    pub max_question_bytes: usize,
    pub max_context_tokens: usize,
    pub max_tokens: usize,
}

pub const LIMITS: AskLimits = AskLimits {
    max_k: 10,
    // A question, not an overview: longer text is more likely pasted than asked.
    max_question_bytes: 300,
    max_context_tokens: 512,
    max_tokens: 64,
};

impl AskRequest {
    pub fn new(question: impl Into<String>) -> Self {
        Self {
            question: question.into(),
            ..Self::default()
        }
    }

    /// Checks the question and every number: a request can come from anywhere.
    pub fn validate(&self) -> Result<()> {
        let question = self.question.trim();
        if question.is_empty() {
            return Err(Error::EmptyQuery);
        }
        if question.len() > LIMITS.max_question_bytes {
            return Err(Error::QueryTooLong {
                bytes: question.len(),
                limit: LIMITS.max_question_bytes,
            });
        }
        let bad = |what: String| Err(Error::InvalidArgument(what));
        if !(1..=LIMITS.max_k).contains(&self.k) {
            return bad(format!("k must be between 1 and {}", LIMITS.max_k));
        }
        if !(1..=LIMITS.max_tokens).contains(&self.max_tokens) {
            return bad(format!(
                "max tokens must be between 1 and {}",
                LIMITS.max_tokens
            ));
        }
        if !(16..=LIMITS.max_context_tokens).contains(&self.max_context_tokens) {
            return bad(format!(
                "the passages' token budget must be between 16 and {}",
                LIMITS.max_context_tokens
            ));
        }
        if !self.min_relevance.is_finite() || !(-1.0..=1.0).contains(&self.min_relevance) {
            return bad("the relevance threshold must be between -1 and 1".into());
        }
        Ok(())
    }

    /// Greedy: an answer is a fact, and the same question should get the same one.
    pub fn sampling(&self) -> SamplingParams {
        SamplingParams::greedy(self.max_tokens)
    }
}

/// How relevant the passages found are to the question: the best cosine among them. Not
/// the first passage's alone: the fusion may put first a chunk that states the fact asked
/// for ("Written by …") though another chunk of the same movie is closer in meaning.
pub fn relevance(hits: &[PassageHit]) -> f32 {
    hits.iter().map(|h| h.cosine).fold(-1.0, f32::max)
}

/// The prompt a request became.
#[derive(Debug, Clone, PartialEq)]
pub struct AskPrompt {
    pub text: String,
    pub tokens: Vec<u32>,
    /// How many of the retrieved passages it holds (the first ones).
    pub passages_in_prompt: usize,
}

/// A started Ask job.
pub struct Started {
    /// The retrieved chunks, best first (empty without retrieval).
    pub hits: Vec<PassageHit>,
    /// Whether the best passage fell below the relevance threshold: the answer is
    /// [`UNKNOWN`] and nothing is generated.
    pub unknown: bool,
    pub prompt: Option<AskPrompt>,
    pub run: Option<Run>,
}

/// Runs a request up to its generation: embeds the question, retrieves passages (none
/// about a movie in `exclude`), then, unless nothing relevant was found, builds the prompt
/// and starts generating with `generator`. `on_phase` hears of each phase as it ends.
pub fn start(
    passages: &PassageIndex,
    embedder: &Embedder,
    generator: Option<&mut Generator>,
    request: &AskRequest,
    exclude: &HashSet<usize>,
    mut on_phase: impl FnMut(Phase),
) -> Result<Started> {
    request.validate()?;
    let question = request.question.trim();
    let hits = match request.context {
        Context::Retrieved => {
            let embedding = embedder.embed_query(question)?;
            on_phase(Phase::Embedded);
            passages.search(question, &embedding, request.k, request.signal, exclude)?
        }
        Context::None => Vec::new(),
    };
    on_phase(Phase::Searched);
    let unknown = request.context == Context::Retrieved && relevance(&hits) < request.min_relevance;
    let Some(generator) = generator.filter(|_| !unknown) else {
        return Ok(Started {
            hits,
            unknown,
            prompt: None,
            run: None,
        });
    };
    let texts: Vec<String> = hits
        .iter()
        .map(|h| passages.passages.chunk_text(h.chunk))
        .collect();
    let count = |text: &str| generator.count_tokens(text).unwrap_or(usize::MAX);
    let (text, kept) = build_prompt(question, &texts, request.max_context_tokens, &count)?;
    let tokens = generator.encode(&text)?;
    on_phase(Phase::PromptBuilt {
        prompt_tokens: tokens.len(),
        context_in_prompt: kept,
    });
    let decoding = generator.start(&tokens, &request.sampling())?;
    Ok(Started {
        hits,
        unknown,
        prompt: Some(AskPrompt {
            text,
            tokens,
            passages_in_prompt: kept,
        }),
        run: Some(Run::new(decoding, Ask::stop_rule())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_and_numbers_are_checked() {
        assert!(AskRequest::new("Who directed Alien?").validate().is_ok());
        assert!(matches!(
            AskRequest::new("  \n").validate(),
            Err(Error::EmptyQuery)
        ));
        let long = AskRequest::new("why ".repeat(100));
        assert!(matches!(
            long.validate(),
            Err(Error::QueryTooLong { limit: 300, .. })
        ));
        for bad in [
            AskRequest {
                k: 0,
                ..AskRequest::new("q")
            },
            AskRequest {
                k: LIMITS.max_k + 1,
                ..AskRequest::new("q")
            },
            AskRequest {
                max_tokens: 0,
                ..AskRequest::new("q")
            },
            AskRequest {
                max_context_tokens: 4,
                ..AskRequest::new("q")
            },
            AskRequest {
                min_relevance: f32::NAN,
                ..AskRequest::new("q")
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(Error::InvalidArgument(_))),
                "{bad:?}"
            );
        }
        assert_eq!(AskRequest::new("q").sampling().temperature, 0.0);
    }

    #[test]
    fn relevance_is_the_closest_passage_not_the_first() {
        let hit = |cosine| PassageHit {
            chunk: 0,
            movie: 0,
            score: 1.0,
            cosine,
        };
        assert_eq!(relevance(&[hit(0.2), hit(0.6), hit(0.4)]), 0.6);
        assert_eq!(relevance(&[]), -1.0, "nothing found is never relevant");
    }
}
