//! Where the BERT weights come from: the original f32 safetensors, or the GGUF file that
//! `quantize` writes. Both end up as one map of `QTensor`s so that a single model
//! implementation (`bert.rs`) serves the f32 reference and the quantized browser model.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::kernels::Matmul;

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
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
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

/// Named tensors, each kept in the dtype it was stored in (f32, or q8_0 and friends).
pub struct Weights {
    tensors: HashMap<String, Arc<QTensor>>,
    device: Device,
}

impl Weights {
    /// Loads Hugging Face safetensors (f32). Non-float tensors (`position_ids`) are skipped.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let device = Device::Cpu;
        let loaded = candle_core::safetensors::load_buffer(bytes, &device)?;
        let mut tensors = HashMap::with_capacity(loaded.len());
        for (name, tensor) in loaded {
            if tensor.dtype() != DType::F32 {
                continue;
            }
            tensors.insert(name, Arc::new(QTensor::quantize(&tensor, GgmlDType::F32)?));
        }
        Ok(Self { tensors, device })
    }

    /// Loads a GGUF file from memory, returning the weights and the BERT config in its metadata.
    pub fn from_gguf(bytes: &[u8]) -> Result<(Self, BertConfig)> {
        let (weights, metadata) = Self::from_gguf_with_metadata(bytes)?;
        Ok((weights, BertConfig::from_gguf_metadata(&metadata)?))
    }

    /// Loads any GGUF file from memory: its tensors, as stored, and its metadata.
    pub fn from_gguf_with_metadata(
        bytes: &[u8],
    ) -> Result<(Self, HashMap<String, gguf_file::Value>)> {
        let device = Device::Cpu;
        let mut reader = Cursor::new(bytes);
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|e| Error::ModelFile(format!("not a readable GGUF file: {e}")))?;
        let mut tensors = HashMap::with_capacity(content.tensor_infos.len());
        for name in content.tensor_infos.keys() {
            let tensor = content.tensor(&mut reader, name, &device)?;
            tensors.insert(name.clone(), Arc::new(tensor));
        }
        Ok((Self { tensors, device }, content.metadata))
    }

    /// The same weights with every matrix that is multiplied stored as f32 (embedding
    /// tables, whose rows are only looked up, stay as stored). Matmuls then run in f32 with
    /// no quantization of activations: in wasm that is about twice as fast as candle's int8
    /// kernels, and the results depend only on the weights' values, so the wasm build can
    /// be held to native numbers (see web/tests).
    pub fn dequantized(&self) -> Result<Self> {
        let mut tensors = HashMap::with_capacity(self.tensors.len());
        for (name, tensor) in &self.tensors {
            let tensor = if name.contains("embeddings") {
                tensor.clone()
            } else {
                let f32 = tensor.dequantize(&self.device)?;
                Arc::new(QTensor::quantize(&f32, GgmlDType::F32)?)
            };
            tensors.insert(name.clone(), tensor);
        }
        Ok(Self {
            tensors,
            device: self.device.clone(),
        })
    }

    /// Whether a tensor of that name is present.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn get(&self, name: &str) -> Result<&Arc<QTensor>> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::ModelFile(format!("weights have no tensor {name:?}")))
    }

    /// A weight matrix for `x @ W^T`, on our kernels when stored in a format we have them
    /// for (converted; the weights keep their copy); stays quantized when stored quantized.
    pub fn matmul(&self, name: &str) -> Result<Matmul> {
        crate::kernels::qmatmul(self.get(name)?.clone())
    }

    /// A small tensor (bias, LayerNorm) as f32.
    pub fn f32(&self, name: &str) -> Result<Tensor> {
        Ok(self.get(name)?.dequantize(&self.device)?)
    }
}

/// A GGUF file's tensors, each read from the file's bytes only when taken: a model that
/// converts every matrix as it goes (the llama loader) then holds the file and its own
/// layout, never a third copy of all the weights in candle's.
pub struct GgufTensors<'a> {
    content: gguf_file::Content,
    reader: Cursor<&'a [u8]>,
}

impl<'a> GgufTensors<'a> {
    pub fn read(bytes: &'a [u8]) -> Result<Self> {
        let mut reader = Cursor::new(bytes);
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|e| Error::ModelFile(format!("not a readable GGUF file: {e}")))?;
        Ok(Self { content, reader })
    }

    pub fn metadata(&self) -> &HashMap<String, gguf_file::Value> {
        &self.content.metadata
    }

    pub fn contains(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// The tensor, as stored, read now.
    pub fn take(&mut self, name: &str) -> Result<Arc<QTensor>> {
        if !self.contains(name) {
            return Err(Error::ModelFile(format!("weights have no tensor {name:?}")));
        }
        Ok(Arc::new(self.content.tensor(
            &mut self.reader,
            name,
            &Device::Cpu,
        )?))
    }

    /// A small tensor (a norm's weights) as f32.
    pub fn f32(&mut self, name: &str) -> Result<Tensor> {
        Ok(self.take(name)?.dequantize(&Device::Cpu)?)
    }
}
