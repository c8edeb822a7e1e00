//! BERT's hyper-parameters, from Hugging Face's config.json or the metadata of the GGUF file
//! that `quantize` writes; the weights themselves are read by `crate::weights`, into one map
//! of `QTensor`s so that a single model implementation (`bert.rs`) serves the f32 reference
//! and the quantized browser model.

use std::collections::HashMap;

use candle_core::quantized::gguf_file;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::weights::Weights;

/// GGUF metadata keys under which the BERT hyper-parameters travel with the weights.
pub(crate) const GGUF_ARCH: &str = "bert";
const KEY_ARCH: &str = "general.architecture";

/// The BERT hyper-parameters the encoder needs. Field names follow Hugging Face's config.json.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

impl BertConfig {
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let config: Self = serde_json::from_slice(bytes)
            .map_err(|e| Error::ModelFile(format!("BERT config.json: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.hidden_act != "gelu" {
            return Err(Error::ModelFile(format!(
                "BERT activation {:?} is not supported (only \"gelu\")",
                self.hidden_act
            )));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(Error::ModelFile(format!(
                "hidden size {} is not a multiple of {} heads",
                self.hidden_size, self.num_attention_heads
            )));
        }
        Ok(())
    }

    /// The config as GGUF metadata, so a quantized file is self-describing.
    pub(crate) fn to_gguf_metadata(&self) -> Vec<(String, gguf_file::Value)> {
        use gguf_file::Value;
        let u = |v: usize| Value::U32(v as u32);
        vec![
            (KEY_ARCH.into(), Value::String(GGUF_ARCH.into())),
            ("bert.vocab_size".into(), u(self.vocab_size)),
            ("bert.embedding_length".into(), u(self.hidden_size)),
            ("bert.block_count".into(), u(self.num_hidden_layers)),
            (
                "bert.attention.head_count".into(),
                u(self.num_attention_heads),
            ),
            ("bert.feed_forward_length".into(), u(self.intermediate_size)),
            (
                "bert.context_length".into(),
                u(self.max_position_embeddings),
            ),
            ("bert.token_type_count".into(), u(self.type_vocab_size)),
            (
                "bert.attention.layer_norm_epsilon".into(),
                Value::F32(self.layer_norm_eps as f32),
            ),
        ]
    }

    fn from_gguf_metadata(md: &HashMap<String, gguf_file::Value>) -> Result<Self> {
        let get = |key: &str| -> Result<&gguf_file::Value> {
            md.get(key)
                .ok_or_else(|| Error::ModelFile(format!("GGUF metadata has no {key:?}")))
        };
        let arch = get(KEY_ARCH)?.to_string()?;
        if arch != GGUF_ARCH {
            return Err(Error::ModelFile(format!(
                "GGUF architecture is {arch:?}, expected {GGUF_ARCH:?} (is this the embedder file?)"
            )));
        }
        let usize_of = |key: &str| -> Result<usize> { Ok(get(key)?.to_u32()? as usize) };
        let config = Self {
            vocab_size: usize_of("bert.vocab_size")?,
            hidden_size: usize_of("bert.embedding_length")?,
            num_hidden_layers: usize_of("bert.block_count")?,
            num_attention_heads: usize_of("bert.attention.head_count")?,
            intermediate_size: usize_of("bert.feed_forward_length")?,
            max_position_embeddings: usize_of("bert.context_length")?,
            type_vocab_size: usize_of("bert.token_type_count")?,
            layer_norm_eps: get("bert.attention.layer_norm_epsilon")?.to_f32()? as f64,
            hidden_act: default_act(),
        };
        config.validate()?;
        Ok(config)
    }
}

/// A GGUF file written by `quantize`: its weights, as stored, and the BERT config in its
/// metadata.
pub fn read_gguf(bytes: &[u8]) -> Result<(Weights, BertConfig)> {
    let (weights, metadata) = Weights::from_gguf_with_metadata(bytes)?;
    Ok((weights, BertConfig::from_gguf_metadata(&metadata)?))
}
