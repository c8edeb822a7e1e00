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
//! - [`qa`]: passages, their lexical + dense search, questions and answer metrics (Ask).
//! - [`recommend`]: collaborative filtering over MovieLens ratings (KNN, most popular, metrics).
//! - [`retriever`]: the pieces put together: query text in, movies out.
//! - [`task`]: the jobs (taglines first), each from text in to events out.
//! - `train`: LoRA fine-tuning of the generator (native builds only).
//! - [`weights`]: model files (safetensors, GGUF) read into tensors, for every model.

pub mod builder;
pub mod bundle;
pub mod catalogue;
pub mod embed;
mod error;
pub mod eval;
pub mod generate;
pub mod index;
pub mod kernels;
pub mod qa;
pub mod recommend;
pub mod retriever;
pub mod task;
#[cfg(not(target_arch = "wasm32"))]
pub mod train;
pub mod weights;

pub use error::{Error, Result};
