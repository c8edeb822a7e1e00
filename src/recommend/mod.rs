//! Recommendations from MovieLens 100K ratings: collaborative filtering in the engine, so
//! the CLI, the evaluation and the page share one implementation.
//!
//! - [`data`]: RecBole's atomic files (`.inter`, `.item`) read into ratings, and the sparse
//!   rating matrix (by user and by item, each in the file's order).
//! - [`split`]: the seeded 80/20 split of the evaluation.
//! - [`knn`]: rating prediction, user- or item-based KNN with scikit-surprise's
//!   `KNNBasic` definition (cosine or msd over common ratings, k, min_k, the global mean
//!   when it cannot predict).
//! - [`rank`]: top-N lists over all unseen movies: most popular, item-KNN over shipped
//!   neighbour lists (what the page runs, with the rated movies each came from) and
//!   user-KNN (the CLI's, which needs every user's ratings).
//! - [`metrics`]: RMSE / MAE, HR@N / NDCG@N / P@N.
//! - [`part`]: what the page ships (neighbour lists and counts, never ratings).
//! - [`join`]: MovieLens titles matched to the TMDB catalogue, and title look-up for
//!   a visitor's ratings.
//!
//! Nothing here reads files or knows about a browser: it works on text and numbers.

pub mod data;
pub mod join;
pub mod knn;
pub mod metrics;
pub mod part;
pub mod rank;
pub mod split;

use thiserror::Error;

pub use data::{Dataset, MlMovie, Rating, Ratings};

pub type Result<T, E = RecommendError> = std::result::Result<T, E>;

/// What can go wrong with recommendation input; each message names the input.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RecommendError {
    #[error("{file}: line {line}: {message}")]
    Parse {
        file: String,
        line: usize,
        message: String,
    },

    #[error("{file}: the header has no column {column:?} (columns: {available})")]
    MissingColumn {
        file: String,
        column: String,
        available: String,
    },

    #[error("unknown user {user:?}: the ratings have users {first} to {last}")]
    UnknownUser {
        user: String,
        first: String,
        last: String,
    },

    #[error("no movie title matches {0:?}")]
    NoMatch(String),

    #[error("{query:?} matches {count} movies ({candidates}); say which one with its year, e.g. \"{example}\"")]
    Ambiguous {
        query: String,
        count: usize,
        candidates: String,
        example: String,
    },

    #[error("rating {value} for {title:?} is outside 1–5")]
    RatingOutOfRange { title: String, value: String },

    #[error("{0:?} is not TITLE=RATING (for example \"Toy Story=5\")")]
    BadRatingArgument(String),

    #[error("no ratings: rate at least one movie")]
    NoRatings,

    #[error("movie number {index} does not exist (there are {count})")]
    UnknownMovie { index: usize, count: usize },

    #[error("recommendation data: {0}")]
    Data(String),
}

/// The rating scale of MovieLens (and of the page's stars).
pub const RATING_MIN: f32 = 1.0;
pub const RATING_MAX: f32 = 5.0;

/// Checks that `value` is a rating on the 1–5 scale (`title` names it in the error).
pub fn check_rating(title: &str, value: f32) -> Result<f32> {
    if value.is_finite() && (RATING_MIN..=RATING_MAX).contains(&value) {
        Ok(value)
    } else {
        Err(RecommendError::RatingOutOfRange {
            title: title.to_string(),
            value: value.to_string(),
        })
    }
}
