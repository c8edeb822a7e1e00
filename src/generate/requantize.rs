//! Re-storing a GGUF's weights in another quantization. SmolLM2 ships as Q4_1; the bundle
//! carries q4_0, which drops Q4_1's per-block minimum (18 bytes a block instead of 20) and is
//! what llama.cpp-based peers run fastest; our kernels run both. Metadata is copied
//! unchanged, and so is every tensor that is not Q4_1 (f32 norms, the q8_0 embedding table).

use std::io::Cursor;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;

use crate::error::{Error, Result};

/// The GGUF in `bytes` with its `from` tensors converted to `to`.
pub fn requantize_gguf(bytes: &[u8], from: GgmlDType, to: GgmlDType) -> Result<Vec<u8>> {
    let mut reader = Cursor::new(bytes);
    let content = gguf_file::Content::read(&mut reader)
        .map_err(|e| Error::ModelFile(format!("not a readable GGUF file: {e}")))?;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort_by_key(|n| content.tensor_infos[*n].offset);
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    for name in names {
        let tensor = content.tensor(&mut reader, name, &Device::Cpu)?;
        let tensor = if tensor.dtype() == from {
            QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, to)?
        } else {
            tensor
        };
        tensors.push((name.clone(), tensor));
    }
    let mut metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    metadata.sort_by_key(|(k, _)| *k);
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &refs)?;
    Ok(out.into_inner())
}
