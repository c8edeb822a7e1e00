//! Text generation with a quantized small language model (SmolLM2-135M-Instruct, GGUF, or
//! GPT-2), token by token: the caller gets each piece of text as it is decoded and may stop the
//! generation at any point (the browser's Stop button, a CLI's Ctrl-C).
//!
//! - `generator.rs`: the model, its tokenizer and KV cache, primed prefixes;
//! - `decoding.rs`: one sampled generation advanced a token at a time;
//! - `sampling.rs`: how the next token is picked;
//! - `beam/`: beam search, the likeliest text the beam finds, one model pass at a time;
//! - `decoder.rs`: either of the two, as a task's run steps them;
//! - `chat.rs`: the chat template the instruct model was trained on;
//! - `adapter.rs`: LoRA adapters (from `index-builder finetune`) applied at inference;
//! - `llama.rs`, `gpt2.rs`: the two architectures; `attention.rs`: their shared attention.
//!
//! The engine keeps no clocks (`std::time::Instant` does not exist on wasm32); callers
//! time prefill and decoding themselves (`crate::task` reports each phase as it happens).

pub mod adapter;
mod attention;
mod beam;
pub mod chat;
mod decoder;
mod decoding;
mod generator;
mod gpt2;
mod llama;
mod requantize;
mod sampling;
mod tokenizer;

pub use adapter::{Adapter, AdapterMode};
pub use beam::{BeamParams, BeamSearch, TextEnds};
pub use decoder::Decoder;
pub use decoding::{Decoding, Generation, Step, StopReason};
pub use generator::Generator;
pub use gpt2::{to_gguf as gpt2_to_gguf, Gpt2, Gpt2Config};
// For the trainable GPT-2 and llama (native builds only).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use gpt2::canonical_tensors as gpt2_canonical_tensors;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use llama::rope_tables;
pub use llama::{Llama, LlamaConfig};
pub use requantize::requantize_gguf;
pub use sampling::SamplingParams;
pub use tokenizer::{gpt2_tokenizer, tokenizer_from_gguf};
