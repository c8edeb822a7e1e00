//! The jobs, each from text in to events out: the CLI, the evaluation, the benchmarks and the
//! browser worker call these and nothing below them, so a job is assembled in one place.
//!
//! A job runs in phases. The phases before generation (the query embedded, the context
//! searched, the prompt built) are reported through a callback as they end, so callers keep
//! their own clocks; the generation is then a [`Run`] the caller steps a token at a time (the
//! worker returns to its event loop between steps) or drives to the end. A task declares
//! what is its own: its request and defaults, its prompt's fixed opening (primed into the
//! KV cache), how it picks its context, how it assembles the prompt within a token budget,
//! and its [`StopRule`]. A job without a generator stops after its context.
//!
//! - [`tagline`]: a movie idea in, similar movies and a tagline out.
//! - [`ask`]: a question in, passages and a short answer out.

//! - [`recommend`]: a visitor's ratings in, recommended movies (each with the rated movies
//!   it came from) and a paragraph on why, out.

pub mod ask;
mod prompt;
pub mod recommend;
pub mod tagline;

pub use prompt::Budget;

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::generate::{Decoder, Generation, Generator, Step, StopReason};

/// A job as the rest of the engine sees it.
pub trait Task {
    /// The name its messages carry (the worker protocol's `task` field).
    const NAME: &'static str;
    /// The opening every one of its prompts starts with, which a generator primes ahead of
    /// time; `None` for a job that does not generate.
    fn prompt_prefix() -> Option<String>;
    /// When its generated text ends.
    fn stop_rule() -> StopRule;
}

/// Primes `generator` with the fixed opening of `T`'s prompts.
pub fn prime<T: Task>(generator: &mut Generator) -> Result<()> {
    if let Some(prefix) = T::prompt_prefix() {
        let ids = generator.encode(&prefix)?;
        generator.prime(&ids)?;
    }
    Ok(())
}

/// A phase of a job before its generation, reported as it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The query is a vector.
    Embedded,
    /// The context is chosen.
    Searched,
    /// The prompt is assembled: its size in tokens, and how many context items fit.
    PromptBuilt {
        prompt_tokens: usize,
        context_in_prompt: usize,
    },
}

/// When a task's generated text ends, besides the model's end of text and the token limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopRule {
    /// Only at the end of text or the token limit (multi-line answers).
    EndOfText,
    /// At the first line break after some text; line breaks before any text are skipped.
    FirstLine,
    /// At the first blank line after some text (a paragraph's end); line breaks before any
    /// text are skipped.
    FirstParagraph,
}

impl StopRule {
    /// Whether the rule ends `text` (beam search asks it of every hypothesis).
    pub fn ends(self, text: &str) -> bool {
        self.apply("", text).1
    }

    /// What of `piece` to show after `shown`, and whether the text ends there.
    fn apply(self, shown: &str, piece: &str) -> (String, bool) {
        match self {
            StopRule::EndOfText => (piece.to_string(), false),
            StopRule::FirstLine => {
                let mut out = String::new();
                for ch in piece.chars() {
                    if ch == '\n' {
                        if shown.trim().is_empty() && out.trim().is_empty() {
                            continue;
                        }
                        return (out, true);
                    }
                    out.push(ch);
                }
                (out, false)
            }
            StopRule::FirstParagraph => {
                let mut out = String::new();
                let mut previous = shown.chars().last();
                for ch in piece.chars() {
                    if ch == '\n' {
                        if shown.trim().is_empty() && out.trim().is_empty() {
                            continue;
                        }
                        if previous == Some('\n') {
                            return (out, true);
                        }
                    }
                    out.push(ch);
                    previous = Some(ch);
                }
                (out, false)
            }
        }
    }
}

/// What a [`Run`] step produced.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The prompt is in the KV cache and the first token is chosen.
    Prefilled {
        prompt_tokens: usize,
        cached_prompt_tokens: usize,
    },
    /// New text to show (never empty).
    Text(String),
    /// A model pass ran and no new text is certain yet (a beam search between the points
    /// where its hypotheses agree, a character split across tokens); step again. Each step
    /// runs the model at most once, so a caller can stop between any two passes.
    Pending,
    /// The generation has ended; `text` is what was shown, trimmed.
    Done(Generation),
}

/// A task's generation in progress: the decoding (sampled or beam) and the task's stop rule.
pub struct Run {
    decoding: Decoder,
    rule: StopRule,
    shown: String,
    /// The first step's outcome, held back while `Prefilled` is reported.
    first: Option<Step>,
    prefilled: bool,
    done: bool,
}

impl Run {
    /// Applies `rule` to a started generation.
    pub fn new(decoding: impl Into<Decoder>, rule: StopRule) -> Self {
        Self {
            decoding: decoding.into(),
            rule,
            shown: String::new(),
            first: None,
            prefilled: false,
            done: false,
        }
    }

    /// Advances to the next event: `Prefilled` once, then `Text` pieces (and `Pending`
    /// between them), then `Done` (after which every call returns `Done` again with an
    /// empty text).
    pub fn step(&mut self, generator: &mut Generator) -> Result<RunEvent> {
        if !self.prefilled {
            self.prefilled = true;
            self.first = Some(self.decoding.step(generator)?);
            return Ok(RunEvent::Prefilled {
                prompt_tokens: self.decoding.prompt_tokens(),
                cached_prompt_tokens: self.decoding.cached_prompt_tokens(),
            });
        }
        let step = match self.first.take() {
            Some(step) => step,
            None if self.done || self.decoding.stop().is_some() => Step::Finished,
            None => self.decoding.step(generator)?,
        };
        match step {
            Step::Pending => Ok(RunEvent::Pending),
            Step::Text(piece) => {
                let (show, ends) = self.rule.apply(&self.shown, &piece);
                self.shown.push_str(&show);
                if ends {
                    self.decoding.end(StopReason::EndOfLine);
                }
                Ok(if show.is_empty() {
                    RunEvent::Pending
                } else {
                    RunEvent::Text(show)
                })
            }
            Step::Finished => Ok(RunEvent::Done(self.finish())),
        }
    }

    /// Ends the generation; the next step reports `Done` with `cancelled`.
    pub fn cancel(&mut self) {
        self.decoding.cancel();
    }

    /// Tokens generated so far.
    pub fn generated_tokens(&self) -> usize {
        self.decoding.generated_tokens()
    }

    fn finish(&mut self) -> Generation {
        self.done = true;
        self.decoding.end(StopReason::MaxTokens);
        Generation {
            text: std::mem::take(&mut self.shown).trim().to_string(),
            tokens: self.decoding_tokens(),
            prompt_tokens: self.decoding.prompt_tokens(),
            cached_prompt_tokens: self.decoding.cached_prompt_tokens(),
            stop: self.decoding.stop().unwrap_or(StopReason::MaxTokens),
        }
    }

    fn decoding_tokens(&self) -> Vec<u32> {
        self.decoding.tokens().to_vec()
    }

    /// Steps to the end, handing each event to `on_event`; `Break` cancels.
    pub fn to_end(
        mut self,
        generator: &mut Generator,
        mut on_event: impl FnMut(&RunEvent) -> ControlFlow<()>,
    ) -> Result<Generation> {
        loop {
            let event = self.step(generator)?;
            let flow = on_event(&event);
            if let RunEvent::Done(generation) = event {
                return Ok(generation);
            }
            if flow.is_break() {
                self.cancel();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_skips_leading_breaks_and_ends_at_the_next() {
        let rule = StopRule::FirstLine;
        assert_eq!(rule.apply("", "\n\n"), (String::new(), false));
        assert_eq!(rule.apply("", "\nNever"), ("Never".into(), false));
        assert_eq!(rule.apply("Never", " again\nmore"), (" again".into(), true));
        assert_eq!(rule.apply("Never", "\n"), (String::new(), true));
        assert!(!rule.ends("\n\nNever again"));
        assert!(rule.ends("\nNever.\nAgain"));
        assert!(!StopRule::EndOfText.ends("a\nb"));
        assert_eq!(
            StopRule::EndOfText.apply("a", "b\nc"),
            ("b\nc".into(), false)
        );
    }

    #[test]
    fn first_paragraph_ends_at_a_blank_line_across_pieces() {
        let rule = StopRule::FirstParagraph;
        assert_eq!(rule.apply("", "\n\nWarm"), ("Warm".into(), false));
        assert_eq!(
            rule.apply("Warm", " and\nwitty"),
            (" and\nwitty".into(), false)
        );
        assert_eq!(rule.apply("Warm and\n", "\nMore"), (String::new(), true));
        assert_eq!(rule.apply("Warm", ".\n\nMore"), (".\n".into(), true));
        assert!(rule.ends("Warm.\n\nMore"));
        assert!(!rule.ends("\n\nWarm.\nMore"));
    }
}
