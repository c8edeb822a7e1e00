//! Writing the browser's embedder: the f32 BERT re-stored as a GGUF file whose matrices are
//! quantized (q8_0 by default), with the config in the metadata so the file describes itself.

use std::borrow::Cow;
use std::io::Cursor;
use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QStorage, QTensor};
use candle_core::Device;

use super::weights::BertConfig;
use crate::error::{Error, Result};
use crate::weights::Weights;

/// The dtypes the embedder can be stored in. K-quants need rows that are multiples of 256
/// values and MiniLM's are 384 wide, so only the 32-value block formats apply.
pub fn parse_gguf_dtype(name: &str) -> Result<GgmlDType> {
    match name {
        "f32" => Ok(GgmlDType::F32),
        "f16" => Ok(GgmlDType::F16),
        "q8_0" => Ok(GgmlDType::Q8_0),
        "q5_0" => Ok(GgmlDType::Q5_0),
        "q4_0" => Ok(GgmlDType::Q4_0),
        other => Err(Error::InvalidArgument(format!(
            "embedder dtype {other:?} is not one of f32, f16, q8_0, q5_0, q4_0"
        ))),
    }
}

/// Quantizes every matrix (weights and embedding tables) to `dtype`; biases, LayerNorms
/// and the 2-row token-type table stay f32. Tensors the encoder does not use (the pooler)
/// are left out. Returns the GGUF file's bytes.
pub fn quantize_bert(weights: &Weights, config: &BertConfig, dtype: GgmlDType) -> Result<Vec<u8>> {
    let mut names: Vec<&str> = weights
        .names()
        .filter(|n| n.starts_with("embeddings.") || n.starts_with("encoder."))
        .collect();
    names.sort_unstable();
    let mut tensors = Vec::with_capacity(names.len());
    for name in &names {
        let stored = weights.get(name)?;
        let is_matrix = stored.shape().rank() == 2 && !name.contains("token_type");
        let tensor = if is_matrix && dtype != GgmlDType::F32 {
            QTensor::quantize(&stored.dequantize(&Device::Cpu)?, dtype)?
        } else {
            QTensor::quantize(&stored.dequantize(&Device::Cpu)?, GgmlDType::F32)?
        };
        tensors.push((*name, tensor));
    }
    let metadata = config.to_gguf_metadata();
    let metadata: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensor_refs)?;
    Ok(out.into_inner())
}

/// Stacks matrices with equal width and dtype on top of each other, without converting them:
/// each row is a whole number of blocks, so the stored bytes simply concatenate.
pub(crate) fn stack_rows(parts: &[&Arc<QTensor>]) -> Result<QTensor> {
    let first = parts
        .first()
        .ok_or_else(|| Error::InvalidArgument("stack_rows of nothing".into()))?;
    let (dtype, (_, cols)) = (first.dtype(), first.shape().dims2()?);
    let mut rows = 0;
    let mut bytes = Vec::new();
    for part in parts {
        let (r, c) = part.shape().dims2()?;
        if c != cols || part.dtype() != dtype {
            return Err(Error::ModelFile(format!(
                "cannot stack a {r}x{c} {:?} matrix under {cols}-wide {dtype:?} ones",
                part.dtype()
            )));
        }
        rows += r;
        bytes.extend_from_slice(&part.data()?);
    }
    let storage = QStorage::from_data(Cow::Owned(bytes), &Device::Cpu, dtype)?;
    Ok(QTensor::new(storage, (rows, cols))?)
}
