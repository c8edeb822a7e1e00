//! A BERT encoder (the architecture of all-MiniLM-L6-v2) on candle.
//!
//! candle-transformers has an f32 BERT but no quantized one, so this is written once against
//! `kernels::Matmul`: the same code runs the f32 reference weights and the q8_0 browser weights.
//! Query, key and value projections are fused into one matmul (fewer passes over the input).

use candle_core::{DType, Module, Tensor, D};
use candle_nn::LayerNorm;

use super::weights::{BertConfig, Weights};
use crate::error::Result;
use crate::kernels::Matmul;

/// `x @ W^T + b` with a possibly quantized `W`.
struct Linear {
    weight: Matmul,
    bias: Tensor,
}

impl Linear {
    fn load(w: &Weights, prefix: &str) -> Result<Self> {
        Ok(Self {
            weight: w.matmul(&format!("{prefix}.weight"))?,
            bias: w.f32(&format!("{prefix}.bias"))?,
        })
    }

    /// Leading dimensions are flattened first, so a batch is one large matmul rather than
    /// one small matmul per sequence.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let (rows, width) = (x.elem_count() / dims[dims.len() - 1], dims[dims.len() - 1]);
        let y = self
            .weight
            .forward(&x.reshape((rows, width))?)?
            .broadcast_add(&self.bias)?;
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = y.dim(1)?;
        }
        Ok(y.reshape(out_dims)?)
    }
}

fn layer_norm(w: &Weights, prefix: &str, eps: f64) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        w.f32(&format!("{prefix}.weight"))?,
        w.f32(&format!("{prefix}.bias"))?,
        eps,
    ))
}

struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// The q, k and v projections stacked into one `[3h, h]` matrix. Stacking happens on the
/// stored representation (rows of f32 or of q8_0 blocks), so nothing is re-quantized.
fn fused_qkv(w: &Weights, prefix: &str) -> Result<Linear> {
    let names = ["query", "key", "value"].map(|p| format!("{prefix}.attention.self.{p}"));
    let weights = names
        .iter()
        .map(|n| w.get(&format!("{n}.weight")))
        .collect::<Result<Vec<_>>>()?;
    let biases = names
        .iter()
        .map(|n| w.f32(&format!("{n}.bias")))
        .collect::<Result<Vec<_>>>()?;
    let weight = super::quantize::stack_rows(&weights)?;
    Ok(Linear {
        weight: crate::kernels::qmatmul(std::sync::Arc::new(weight))?,
        bias: Tensor::cat(&biases, 0)?,
    })
}

impl Layer {
    fn load(w: &Weights, i: usize, eps: f64) -> Result<Self> {
        let p = format!("encoder.layer.{i}");
        Ok(Self {
            qkv: fused_qkv(w, &p)?,
            attention_out: Linear::load(w, &format!("{p}.attention.output.dense"))?,
            attention_norm: layer_norm(w, &format!("{p}.attention.output.LayerNorm"), eps)?,
            intermediate: Linear::load(w, &format!("{p}.intermediate.dense"))?,
            output: Linear::load(w, &format!("{p}.output.dense"))?,
            output_norm: layer_norm(w, &format!("{p}.output.LayerNorm"), eps)?,
        })
    }

    /// `x`: (batch, tokens, hidden); `bias`: (batch, 1, 1, tokens), 0 for real tokens and a
    /// large negative number for padding.
    fn forward(&self, x: &Tensor, bias: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, n, h) = x.dims3()?;
        let head_dim = h / heads;
        let qkv = self.qkv.forward(x)?.reshape((b, n, 3, heads, head_dim))?;
        let qkv = qkv.permute((2, 0, 3, 1, 4))?; // (3, b, heads, n, head_dim)
        let q = (qkv.get(0)?.contiguous()? * (1.0 / (head_dim as f64).sqrt()))?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, n, h))?;
        let attended = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context)? + x)?)?;
        let inner = super::gelu::gelu_erf(&self.intermediate.forward(&attended)?)?;
        Ok(self
            .output_norm
            .forward(&(self.output.forward(&inner)? + attended)?)?)
    }
}

pub struct Bert {
    word_embeddings: Matmul,
    position_embeddings: Tensor,
    token_type_zero: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    config: BertConfig,
}

impl Bert {
    pub fn load(w: &Weights, config: &BertConfig) -> Result<Self> {
        let eps = config.layer_norm_eps;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(w, i, eps))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            // Quantized tables stay quantized: `embedding` dequantizes only the rows it needs.
            word_embeddings: w.matmul("embeddings.word_embeddings.weight")?,
            position_embeddings: w.f32("embeddings.position_embeddings.weight")?,
            token_type_zero: w.f32("embeddings.token_type_embeddings.weight")?.get(0)?,
            embedding_norm: layer_norm(w, "embeddings.LayerNorm", eps)?,
            layers,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// `ids` and `mask` are (batch, tokens) u32 tensors; returns (batch, tokens, hidden).
    /// Every input uses token type 0, as sentence-transformers does for single sentences.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, n) = ids.dims2()?;
        let positions = self.position_embeddings.narrow(0, 0, n)?;
        let x = self
            .word_embeddings
            .embedding(ids)?
            .broadcast_add(&positions)?
            .broadcast_add(&self.token_type_zero)?;
        let mut x = self.embedding_norm.forward(&x)?;
        // (1 - mask) * -1e4 keeps padded keys out of every softmax without producing NaNs.
        let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e4)?
            .unsqueeze(1)?
            .unsqueeze(1)?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, self.config.num_attention_heads)?;
        }
        Ok(x)
    }
}

/// Mean of the token vectors over the attention mask, then L2 normalization: the
/// sentence-transformers pooling of all-MiniLM-L6-v2. Returns (batch, hidden).
pub fn mean_pool_normalized(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    Ok(mean.broadcast_div(&norm)?)
}
