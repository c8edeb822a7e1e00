//! Sentence embeddings with all-MiniLM-L6-v2: tokenize, run BERT, mean-pool over the
//! attention mask, L2-normalize. Matches sentence-transformers (see tests/embedding_parity.rs).

mod attention;
mod bert;
mod gelu;
mod norm;
mod quantize;
mod weights;

pub use quantize::{parse_gguf_dtype, quantize_bert};
pub use weights::{read_gguf, BertConfig};

use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{Error, Result};
use crate::weights::Weights;
use bert::Bert;
use norm::mean_pool_normalized;

/// sentence-transformers' max_seq_length for all-MiniLM-L6-v2: longer inputs are truncated.
pub const MAX_TOKENS: usize = 256;
/// Queries longer than this many bytes are refused rather than silently cut.
pub const MAX_QUERY_BYTES: usize = 4096;

/// How a loaded embedder keeps its matrices in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// As the file stores them (q8_0 for the shipped model): int8 matmuls.
    AsStored,
    /// Dequantized to f32 at load (embedding tables excepted): f32 matmuls.
    F32,
}

impl Precision {
    /// The one the retriever runs: int8 everywhere. It is faster than f32 natively and in
    /// the browser (the README's benchmarks), takes 40 MB less memory than the dequantized
    /// f32 copy, and gives the same bits on both (see `bert.rs`).
    pub fn fastest() -> Self {
        Self::AsStored
    }
}

pub struct Embedder {
    bert: Bert,
    tokenizer: Tokenizer,
}

impl Embedder {
    /// The f32 reference model from Hugging Face files (model.safetensors, config.json,
    /// tokenizer.json).
    pub fn from_safetensors(
        weights: &[u8],
        config_json: &[u8],
        tokenizer_json: &[u8],
    ) -> Result<Self> {
        let config = BertConfig::from_json(config_json)?;
        let weights = Weights::from_safetensors(weights)?;
        Self::new(&weights, &config, tokenizer_json)
    }

    /// The (quantized) GGUF model written by [`quantize_bert`], plus its tokenizer.json,
    /// its matrices kept as stored.
    pub fn from_gguf(gguf: &[u8], tokenizer_json: &[u8]) -> Result<Self> {
        Self::from_gguf_with(gguf, tokenizer_json, Precision::AsStored)
    }

    pub fn from_gguf_with(
        gguf: &[u8],
        tokenizer_json: &[u8],
        precision: Precision,
    ) -> Result<Self> {
        let (weights, config) = read_gguf(gguf)?;
        match precision {
            Precision::AsStored => Self::new(&weights, &config, tokenizer_json),
            Precision::F32 => Self::new(&weights.dequantized()?, &config, tokenizer_json),
        }
    }

    pub fn new(weights: &Weights, config: &BertConfig, tokenizer_json: &[u8]) -> Result<Self> {
        let mut tokenizer = Tokenizer::from_bytes(tokenizer_json).map_err(Error::tokenizer)?;
        // The shipped tokenizer.json pads everything to 128 and truncates at 128; we pad
        // nothing (each batch is padded to its own longest input) and truncate where
        // sentence-transformers does.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(config.max_position_embeddings),
                ..Default::default()
            }))
            .map_err(Error::tokenizer)?;
        if tokenizer.get_vocab_size(true) > config.vocab_size {
            return Err(Error::ModelFile(format!(
                "tokenizer has {} tokens but the model only {}",
                tokenizer.get_vocab_size(true),
                config.vocab_size
            )));
        }
        Ok(Self {
            bert: Bert::load(weights, config)?,
            tokenizer,
        })
    }

    /// Width of the embeddings (384 for MiniLM-L6).
    pub fn dim(&self) -> usize {
        self.bert.config().hidden_size
    }

    /// Token ids as the model sees them ([CLS] ... [SEP], truncated, unpadded).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(Error::tokenizer)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The byte spans of each text's tokens, without [CLS]/[SEP] and without truncation:
    /// what cutting a long document into windows of tokens needs (`qa::chunk`).
    pub fn token_spans(&self, texts: &[&str]) -> Result<Vec<Vec<(usize, usize)>>> {
        let mut whole = self.tokenizer.clone();
        whole.with_truncation(None).map_err(Error::tokenizer)?;
        texts
            .iter()
            .map(|text| {
                let encoding = whole.encode(*text, false).map_err(Error::tokenizer)?;
                Ok(encoding.get_offsets().to_vec())
            })
            .collect()
    }

    /// Embeds a visitor's query: refuses empty and oversized input, never pads.
    pub fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::EmptyQuery);
        }
        if text.len() > MAX_QUERY_BYTES {
            return Err(Error::QueryTooLong {
                bytes: text.len(),
                limit: MAX_QUERY_BYTES,
            });
        }
        let mut out = self.embed_batch(&[text])?;
        out.pop()
            .ok_or_else(|| Error::InvalidArgument("no embedding returned".into()))
    }

    /// Embeds texts in one forward pass, padded to the longest of them. For many texts use
    /// [`Embedder::embed_all`], which sorts by length first so that little is padding.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(Error::tokenizer)?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        self.embed_token_ids(&ids)
    }

    /// Embeds already-tokenized inputs (each with [CLS]/[SEP]) padded to the longest one.
    pub fn embed_token_ids(&self, inputs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let width = inputs.iter().map(|ids| ids.len()).max().unwrap_or(0);
        if width == 0 {
            return Ok(vec![Vec::new(); inputs.len()]);
        }
        let mut ids = Vec::with_capacity(inputs.len() * width);
        let mut mask = Vec::with_capacity(inputs.len() * width);
        for input in inputs {
            ids.extend_from_slice(input);
            ids.extend(std::iter::repeat_n(0, width - input.len()));
            mask.extend(std::iter::repeat_n(1u32, input.len()));
            mask.extend(std::iter::repeat_n(0u32, width - input.len()));
        }
        let hidden = self.bert.forward(&ids, &mask, width)?;
        Ok(mean_pool_normalized(&hidden, &mask, width, self.dim()))
    }

    /// Embeds many texts in batches of `batch_size`, shortest first (so batches pad little),
    /// returning them in input order. `progress` is called with the count done so far.
    ///
    /// Natively the batches run side by side, one per thread, each on its own thread from
    /// embedding to pooling (the kernels see they are on a worker and stay there): inside one
    /// batch only the matmuls and attention split across threads, and the rest of a layer
    /// (norms, GELU, residuals), a third of the time, ran on one. Each batch is computed
    /// exactly as on its own, so the vectors are the same bits either way.
    pub fn embed_all(
        &self,
        texts: &[String],
        batch_size: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        if batch_size == 0 {
            return Err(Error::InvalidArgument(
                "batch size must be at least 1".into(),
            ));
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(Error::tokenizer)?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let batches: Vec<&[usize]> = order.chunks(batch_size).collect();
        let embed = |batch: &&[usize]| {
            let ids: Vec<&[u32]> = batch.iter().map(|&i| encodings[i].get_ids()).collect();
            self.embed_token_ids(&ids)
        };
        let mut out = vec![Vec::new(); texts.len()];
        let mut done = 0;
        // A wave of batches of about the same length at a time, so progress keeps coming.
        for wave in batches.chunks(batches_at_once()) {
            #[cfg(not(target_arch = "wasm32"))]
            let embedded: Vec<Result<Vec<Vec<f32>>>> = {
                use rayon::prelude::*;
                wave.par_iter().map(embed).collect()
            };
            #[cfg(target_arch = "wasm32")]
            let embedded: Vec<Result<Vec<Vec<f32>>>> = wave.iter().map(embed).collect();
            for (batch, embeddings) in wave.iter().zip(embedded) {
                for (&i, embedding) in batch.iter().zip(embeddings?) {
                    out[i] = embedding;
                }
                done += batch.len();
            }
            progress(done);
        }
        Ok(out)
    }
}

/// How many batches [`Embedder::embed_all`] runs at once: one per thread of rayon's pool.
fn batches_at_once() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    return rayon::current_num_threads().max(1);
    #[cfg(target_arch = "wasm32")]
    1
}

/// Cosine similarity of two vectors (1.0 for identical directions).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(f32::MIN_POSITIVE)
}
