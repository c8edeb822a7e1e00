//! The recommend job: a visitor's ratings in; the top movies from the bundle's recs part
//! (item-KNN over shipped neighbour lists, each movie with the rated movies it came from)
//! and, with a generator, a streamed paragraph on why they might like them, out.
//!
//! Ranking takes well under a millisecond, so the page re-ranks on every rating change
//! with `note: false` and asks for the note on demand: the paragraph is seconds of model
//! time that a visitor still choosing movies should not wait behind.

mod profiles;
mod prompt;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use profiles::{example_profiles, ExampleProfile, ResolvedProfile, EXAMPLE_PROFILES};
pub use prompt::{build_prompt, prompt_prefix, NoteMovie, BUDGET, SYSTEM_PROMPT};

use super::{Phase, Run, StopRule, Task};
use crate::catalogue::Movie;
use crate::error::{Error, Result};
use crate::generate::{Generator, SamplingParams};
use crate::recommend::part::RecsPart;
use crate::recommend::rank::Recommendation;
use crate::recommend::{check_rating, RecommendError};

/// The recommend job.
pub struct Recommend;

impl Task for Recommend {
    const NAME: &'static str = "recommend";

    fn prompt_prefix() -> Option<String> {
        Some(prompt_prefix())
    }

    fn stop_rule() -> StopRule {
        StopRule::FirstParagraph
    }
}

/// One rating: a movie of the recs part (its number) and 1–5 stars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rated {
    pub movie: u32,
    pub stars: f32,
}

/// One request, as the page and the CLI make it. Every field has a default
/// (`RecommendRequest::default()`), the one source of the job's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecommendRequest {
    /// The visitor's ratings; a movie rated twice keeps its last rating.
    pub ratings: Vec<Rated>,
    /// How many movies to list.
    pub n: usize,
    /// Whether to write the note (when there is a generator).
    pub note: bool,
    /// How many of the list's first movies the note is written about.
    pub note_movies: usize,
    /// 0 picks the likeliest token every time.
    pub temperature: f64,
    /// 0 turns top-k off.
    pub top_k: usize,
    /// 1 turns top-p off.
    pub top_p: f64,
    pub repeat_penalty: f32,
    /// Same seed, same ratings, same note.
    pub seed: u64,
    pub max_tokens: usize,
}

impl Default for RecommendRequest {
    fn default() -> Self {
        let sampling = SamplingParams::default();
        Self {
            ratings: Vec::new(),
            n: 10,
            note: true,
            note_movies: 4,
            temperature: sampling.temperature,
            top_k: sampling.top_k.unwrap_or(0),
            top_p: sampling.top_p.unwrap_or(1.0),
            // A paragraph is long enough for a 135M model to start repeating itself.
            repeat_penalty: 1.2,
            seed: sampling.seed,
            max_tokens: 96,
        }
    }
}

/// The bounds of a request's numbers, checked by [`RecommendRequest::validate`] and used by
/// the page.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RecommendLimits {
    pub max_ratings: usize,
    pub max_n: usize,
    pub max_note_movies: usize,
    pub max_temperature: f64,
    pub max_top_k: usize,
    pub max_repeat_penalty: f32,
    pub max_tokens: usize,
    pub min_stars: f32,
    pub max_stars: f32,
}

pub const LIMITS: RecommendLimits = RecommendLimits {
    max_ratings: 1000,
    max_n: 50,
    max_note_movies: 8,
    max_temperature: 2.0,
    max_top_k: 200,
    max_repeat_penalty: 2.0,
    max_tokens: 256,
    min_stars: crate::recommend::RATING_MIN,
    max_stars: crate::recommend::RATING_MAX,
};

impl RecommendRequest {
    /// A request for `ratings` with every other field at its default.
    pub fn new(ratings: Vec<Rated>) -> Self {
        Self {
            ratings,
            ..Self::default()
        }
    }

    /// Checks every number against [`LIMITS`] (a request can come from anywhere); the
    /// ratings themselves are checked against the part by [`RecommendRequest::profile`].
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(what));
        let l = LIMITS;
        if self.ratings.len() > l.max_ratings {
            return bad(format!("at most {} ratings", l.max_ratings));
        }
        if !(1..=l.max_n).contains(&self.n) {
            return bad(format!("n must be between 1 and {}", l.max_n));
        }
        if !(1..=l.max_note_movies).contains(&self.note_movies) {
            return bad(format!(
                "the note covers between 1 and {} movies",
                l.max_note_movies
            ));
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

    /// The ratings as (movie, stars) pairs for the part's `movies`: each movie must exist
    /// and each rating be on the 1–5 scale; a movie rated twice keeps the last rating.
    pub fn profile(&self, movies: &[crate::recommend::part::PartMovie]) -> Result<Vec<(u32, f32)>> {
        if self.ratings.is_empty() {
            return Err(RecommendError::NoRatings.into());
        }
        let mut profile: Vec<(u32, f32)> = Vec::with_capacity(self.ratings.len());
        for rated in &self.ratings {
            let movie = movies
                .get(rated.movie as usize)
                .ok_or(RecommendError::UnknownMovie {
                    index: rated.movie as usize,
                    count: movies.len(),
                })?;
            check_rating(&movie.title, rated.stars)?;
            profile.retain(|p| p.0 != rated.movie);
            profile.push((rated.movie, rated.stars));
        }
        Ok(profile)
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
}

/// The recs part with each of its movies' place in the bundle's catalogue (by TMDB id),
/// for the overviews and taglines the note is written from.
pub struct Recommender {
    part: RecsPart,
    in_catalogue: Vec<Option<usize>>,
}

impl Recommender {
    pub fn new(part: RecsPart, catalogue: &[Movie]) -> Self {
        let by_id: HashMap<&str, usize> = catalogue
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.as_str(), i))
            .collect();
        let in_catalogue = part
            .movies
            .iter()
            .map(|m| m.tmdb.as_deref().and_then(|id| by_id.get(id).copied()))
            .collect();
        Self { part, in_catalogue }
    }

    pub fn part(&self) -> &RecsPart {
        &self.part
    }

    /// "The Lion King (1994)"; "movie N" for a number past the part.
    pub fn label(&self, movie: u32) -> String {
        match self.part.movies.get(movie as usize) {
            Some(m) => match m.year {
                Some(year) => format!("{} ({year})", m.title),
                None => m.title.clone(),
            },
            None => format!("movie {movie}"),
        }
    }

    /// The catalogue's entry for `movie`, when its title joined.
    pub fn details<'c>(&self, movie: u32, catalogue: &'c [Movie]) -> Option<&'c Movie> {
        let index = self.in_catalogue.get(movie as usize).copied().flatten()?;
        catalogue.get(index)
    }
}

/// The note's prompt, as a request became it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub text: String,
    pub tokens: Vec<u32>,
    /// How many recommendations fit the token budget (the first ones).
    pub movies_in_prompt: usize,
}

/// A started recommend job: the list, and with a generator and `note` the note's prompt
/// and generation.
pub struct Started {
    pub recommendations: Vec<Recommendation>,
    pub prompt: Option<Prompt>,
    pub run: Option<Run>,
}

/// Ranks `request.ratings` with the part; then, given a generator and `request.note`,
/// builds the note's prompt from the first recommendations (details from `catalogue`, the
/// bundle's movies) and starts generating. `on_phase` hears `Searched` when the list is
/// ranked and `PromptBuilt` when the prompt is.
pub fn start(
    recommender: &Recommender,
    catalogue: &[Movie],
    generator: Option<&mut Generator>,
    request: &RecommendRequest,
    mut on_phase: impl FnMut(Phase),
) -> Result<Started> {
    request.validate()?;
    let part = recommender.part();
    let profile = request.profile(&part.movies)?;
    let recommendations = part.recommend(&profile, request.n)?;
    on_phase(Phase::Searched);
    let generator = match generator {
        Some(generator) if request.note => generator,
        _ => {
            return Ok(Started {
                recommendations,
                prompt: None,
                run: None,
            })
        }
    };
    let liked = liked_titles(recommender, &profile);
    let movies: Vec<NoteMovie> = recommendations
        .iter()
        .take(request.note_movies)
        .map(|r| {
            let details = recommender.details(r.item, catalogue);
            NoteMovie {
                title: recommender.label(r.item),
                tagline: details.and_then(|m| m.tagline.clone()),
                overview: details.map(|m| m.overview.clone()).unwrap_or_default(),
                because: r.because.iter().map(|b| recommender.label(b.0)).collect(),
            }
        })
        .collect();
    let count = |text: &str| generator.count_tokens(text).unwrap_or(usize::MAX);
    let (text, kept) = build_prompt(&liked, &movies, BUDGET, &count)?;
    let tokens = generator.encode(&text)?;
    on_phase(Phase::PromptBuilt {
        prompt_tokens: tokens.len(),
        context_in_prompt: kept,
    });
    let decoding = generator.start(&tokens, &request.sampling())?;
    Ok(Started {
        recommendations,
        prompt: Some(Prompt {
            text,
            tokens,
            movies_in_prompt: kept,
        }),
        run: Some(Run::new(decoding, Recommend::stop_rule())),
    })
}

/// The movies the note says were liked: rated 4★ or more, best first (all of them, best
/// first, when none is), at most six.
fn liked_titles(recommender: &Recommender, profile: &[(u32, f32)]) -> Vec<String> {
    let mut rated = profile.to_vec();
    rated.sort_by(|a, b| b.1.total_cmp(&a.1));
    let liked: Vec<(u32, f32)> = rated.iter().copied().filter(|r| r.1 >= 4.0).collect();
    let chosen = if liked.is_empty() { rated } else { liked };
    chosen
        .iter()
        .take(6)
        .map(|r| recommender.label(r.0))
        .collect()
}

#[cfg(test)]
mod tests;
