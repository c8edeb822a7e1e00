//! Marquee's engine: everything the index builder and the browser share, and nothing that
//! knows about either. It compiles natively and to `wasm32-unknown-unknown`.
//!
//! - [`embed`]: all-MiniLM-L6-v2 sentence embeddings (f32 reference and quantized GGUF).
//! - [`generate`]: streaming text generation with a quantized llama-family GGUF (SmolLM2).
//! - [`eval`]: tagline metrics (ROUGE-L, sacrebleu-compatible BLEU, distinct-2).
//! - [`catalogue`]: reading a movie CSV with a column mapping, skipping malformed rows.
//! - [`index`]: int8 vectors with exact and HNSW (+ exact re-rank) search.
//! - [`bundle`]: the versioned, hash-checked files the builder writes and the page loads.
//! - [`builder`]: catalogue + model files in, bundle out (what `index-builder build` runs).
//! - [`retriever`]: the pieces put together: query text in, movies out.
//! - [`tagline`]: the RAG prompt: an idea and example movies in, a chat prompt out.

pub mod builder;
pub mod bundle;
pub mod catalogue;
pub mod embed;
mod error;
pub mod eval;
pub mod generate;
pub mod index;
pub mod kernels;
pub mod retriever;
pub mod tagline;

pub use error::{Error, Result};
