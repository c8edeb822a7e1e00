//! Model weights as read from their files, for every model here (the BERT embedder, both
//! generators): Hugging Face safetensors or GGUF, as one map of `QTensor`s kept in their
//! stored dtype ([`Weights`]), or read one tensor at a time so a large GGUF is never held
//! twice ([`GgufTensors`]).

use std::collections::HashMap;
use std::io::{Cursor, Read, Seek};
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::kernels::Matmul;

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

/// A GGUF file's tensors, each read from the file only when taken: a model that converts
/// every matrix as it goes (the llama loader) then holds the file and its own layout, never
/// a third copy of all the weights in candle's. The file is any `Read + Seek`: bytes in
/// memory, or (the page) bytes that stay in JavaScript's memory, so the wasm heap never
/// holds the whole file.
pub struct GgufTensors<'a> {
    content: gguf_file::Content,
    reader: Box<dyn ReadSeek + 'a>,
}

/// What [`GgufTensors`] reads from.
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

impl<'a> GgufTensors<'a> {
    pub fn read(bytes: &'a [u8]) -> Result<Self> {
        Self::from_reader(Cursor::new(bytes))
    }

    pub fn from_reader(mut reader: impl Read + Seek + 'a) -> Result<Self> {
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|e| Error::ModelFile(format!("not a readable GGUF file: {e}")))?;
        Ok(Self {
            content,
            reader: Box::new(reader),
        })
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
