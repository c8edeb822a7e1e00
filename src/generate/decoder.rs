//! A generation in progress by either strategy, so that a task's run (`crate::task::Run`)
//! steps, stops and reads both the same way.

use super::beam::BeamSearch;
use super::decoding::{Decoding, Step, StopReason};
use super::generator::Generator;
use crate::error::Result;

/// A sampled decoding or a beam search, each boxed: a decoding (its sampler's generator)
/// is about twice a beam search's size, and the enum would always take the larger.
pub enum Decoder {
    Sampled(Box<Decoding>),
    Beam(Box<BeamSearch>),
}

impl From<Decoding> for Decoder {
    fn from(decoding: Decoding) -> Self {
        Decoder::Sampled(Box::new(decoding))
    }
}

impl From<BeamSearch> for Decoder {
    fn from(search: BeamSearch) -> Self {
        Decoder::Beam(Box::new(search))
    }
}

impl Decoder {
    /// One model pass: see [`Decoding::step`] and [`BeamSearch::step`].
    pub fn step(&mut self, generator: &mut Generator) -> Result<Step> {
        match self {
            Decoder::Sampled(d) => d.step(generator),
            Decoder::Beam(b) => b.step(generator),
        }
    }

    pub fn cancel(&mut self) {
        match self {
            Decoder::Sampled(d) => d.cancel(),
            Decoder::Beam(b) => b.cancel(),
        }
    }

    /// Ends it for `reason`; the first reason given stays.
    pub fn end(&mut self, reason: StopReason) {
        match self {
            Decoder::Sampled(d) => d.end(reason),
            Decoder::Beam(b) => b.end(reason),
        }
    }

    pub fn stop(&self) -> Option<StopReason> {
        match self {
            Decoder::Sampled(d) => d.stop(),
            Decoder::Beam(b) => b.stop(),
        }
    }

    /// Tokens generated so far (a beam's: per hypothesis, then the result's).
    pub fn generated_tokens(&self) -> usize {
        match self {
            Decoder::Sampled(d) => d.generated_tokens(),
            Decoder::Beam(b) => b.generated_tokens(),
        }
    }

    /// The tokens of the text so far (a beam's, once ended: the result's).
    pub fn tokens(&self) -> &[u32] {
        match self {
            Decoder::Sampled(d) => d.tokens(),
            Decoder::Beam(b) => b.tokens(),
        }
    }

    pub fn prompt_tokens(&self) -> usize {
        match self {
            Decoder::Sampled(d) => d.prompt_tokens(),
            Decoder::Beam(b) => b.prompt_tokens(),
        }
    }

    pub fn cached_prompt_tokens(&self) -> usize {
        match self {
            Decoder::Sampled(d) => d.cached_prompt_tokens(),
            Decoder::Beam(b) => b.cached_prompt_tokens(),
        }
    }
}
