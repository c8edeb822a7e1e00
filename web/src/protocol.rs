//! The messages between the page and its worker. The worker script passes `query` requests
//! through unchanged and posts the events these functions return; `progress`, `ready` and
//! `error` are made by the worker's loader (worker.js), which mirrors the shapes below.
//!
//! Page → worker: `load`, `query`, `cancel`.
//! Worker → page: `progress`, `ready`, `retrieved`, `token`, `done`, `error`.

use marquee::generate::StopReason;
use marquee::index::SearchMode;
use serde::{Deserialize, Serialize};

/// `{type: "query", ...}`: embed the idea, retrieve `k` movies, then generate.
#[derive(Debug, Clone, Deserialize)]
pub struct QueryRequest {
    pub id: u32,
    pub idea: String,
    #[serde(default = "default_k")]
    pub k: usize,
    /// "hnsw" or "exact".
    #[serde(default)]
    pub mode: SearchMode,
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    #[serde(default)]
    pub seed: u64,
}

fn default_k() -> usize {
    4
}

fn default_temperature() -> f64 {
    0.7
}

fn default_max_tokens() -> usize {
    32
}

/// Limits the page enforces too; checked here because a message can come from anywhere.
pub const MAX_K: usize = 20;
pub const MAX_NEW_TOKENS: usize = 128;

/// One retrieved movie as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MovieHit {
    pub index: usize,
    pub title: String,
    pub year: Option<i32>,
    pub score: f32,
    pub tagline: Option<String>,
    pub overview: String,
    pub genres: Vec<String>,
}

/// Worker → page events produced by the engine side.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Retrieved {
        id: u32,
        movies: Vec<MovieHit>,
        embed_ms: f64,
        search_ms: f64,
        mode: SearchMode,
        /// Examples that fit the prompt's token budget.
        examples_in_prompt: usize,
        prompt_tokens: usize,
    },
    Token {
        id: u32,
        text: String,
        tokens: usize,
        tokens_per_s: f64,
    },
    Done {
        id: u32,
        stop: StopReason,
        text: String,
        tokens: usize,
        prompt_tokens: usize,
        /// Prompt tokens already in the KV cache (no prefill needed).
        cached_prompt_tokens: usize,
        ttft_ms: f64,
        prefill_tokens_per_s: f64,
        decode_tokens_per_s: f64,
    },
}
