//! The engine's one error type. Every variant says what went wrong with which input, so the
//! CLI and the page can show it to a person as is.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    #[error("model error: {0}")]
    Model(#[from] candle_core::Error),

    #[error("tokenizer error: {0}")]
    Tokenizer(String),

    #[error("model file: {0}")]
    ModelFile(String),

    #[error("the query is empty: type a few words about a movie")]
    EmptyQuery,

    #[error("the query is too long: {bytes} bytes (the limit is {limit}); shorten it")]
    QueryTooLong { bytes: usize, limit: usize },

    #[error("the prompt would be {tokens} tokens (the limit is {limit}); shorten the text")]
    PromptTooLong { tokens: usize, limit: usize },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("generation: {0}")]
    Generation(String),

    #[error("catalogue: column {column:?} is not in the header (columns: {available})")]
    MissingColumn { column: String, available: String },

    #[error("catalogue: {0}")]
    Catalogue(String),

    #[error("bundle manifest: {0}")]
    Manifest(String),

    #[error("bundle format version {found} is not supported (this build reads version {expected}); rebuild the bundle with a matching index-builder")]
    BundleVersion { found: u64, expected: u32 },

    #[error("bundle part {part:?} is missing")]
    MissingPart { part: String },

    #[error("bundle part {part:?} is corrupted: sha256 {actual} does not match the manifest's {expected}")]
    PartHash {
        part: String,
        expected: String,
        actual: String,
    },

    #[error("bundle part {part:?} has {actual} bytes, the manifest says {expected} (truncated download?)")]
    PartSize {
        part: String,
        expected: u64,
        actual: u64,
    },

    #[error("bundle part {part:?} cannot be decoded: {message}")]
    PartDecode { part: String, message: String },

    /// Recommendation input (ratings, titles, the recs part), worded by `recommend`.
    #[error("{0}")]
    Recommend(#[from] crate::recommend::RecommendError),

    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    pub(crate) fn tokenizer(e: impl std::fmt::Display) -> Self {
        Error::Tokenizer(e.to_string())
    }
}
