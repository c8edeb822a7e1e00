//! LoRA fine-tuning of the generator, natively (the wasm build carries no training code).
//!
//! The base model's weights stay frozen, as f32 tensors dequantized from the shipped GGUF;
//! each targeted matrix `W` gets an adapter, `y = x Wᵀ + (alpha / rank) · (x Aᵀ) Bᵀ`, with
//! `A` (rank × in) and `B` (out × rank) the only trained values, as peft does. The training
//! forward pass is a separate, differentiable implementation of the same architecture (llama
//! or GPT-2) on candle ops that all have backward rules (`rms_norm_slow`, `softmax`,
//! `rope_i_slow`, a LayerNorm of plain ops: the fused kernels the inference path uses record
//! no gradient); the optimizer is AdamW (torch's formula, as candle's, with state a
//! checkpoint can keep) with warm-up and linear decay and global-norm gradient clipping, and
//! the loss counts only the answer's tokens. tests/lora_reference.rs checks all of it
//! against peft and torch.
//!
//! - [`lora`]: adapters, their configuration and seeded initialization;
//! - [`trainable`]: what the trainer needs of a model, and what the models share;
//! - [`llama`]: the trainable llama;
//! - [`gpt2`]: the trainable GPT-2;
//! - [`optim`]: the learning-rate schedule, clipping, AdamW and one training step;
//! - [`file`]: adapter files and checkpoints (safetensors with metadata);
//! - [`data`]: retrieval-augmented training examples from the tagline task's prompts;
//! - [`ask_data`]: the Ask reader's examples from the Ask task's prompts.

pub mod ask_data;
pub mod data;
pub mod file;
mod frozen;
pub mod gpt2;
pub mod llama;
pub mod lora;
pub mod optim;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_gpt2;
pub mod trainable;

pub use gpt2::TrainableGpt2;
pub use llama::TrainableLlama;
pub use lora::{Adapter, LoraConfig, Target};
pub use optim::{clip_grad_norm, AdamW, Schedule, StepReport, Trainer};
pub use trainable::Trainable;
