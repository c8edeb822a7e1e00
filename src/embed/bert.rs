//! A BERT encoder (the architecture of all-MiniLM-L6-v2).
//!
//! candle-transformers has an f32 BERT but no quantized one, so this is written once against
//! `kernels::Matmul`: the same code runs the f32 reference weights (candle's gemm) and the
//! q8_0 browser weights (our int8 kernels). Everything between the matmuls is ours
//! (`attention.rs`, `norm.rs`, `gelu.rs`), with every sum in one fixed order, so that the
//! int8 path gives the same bits natively and in wasm. Query, key and value projections are
//! fused into one matmul (one pass over the input).

use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::attention::{attention, Shape};
use super::gelu::gelu_erf_in_place;
use super::norm::LayerNorm;
use super::weights::BertConfig;
use crate::error::Result;
use crate::kernels::Matmul;
use crate::weights::Weights;

/// `x @ W^T + b` with a possibly quantized `W`.
struct Linear {
    weight: Matmul,
    bias: Vec<f32>,
    /// Input width (the matrix's columns).
    columns: usize,
}

impl Linear {
    fn load(w: &Weights, prefix: &str) -> Result<Self> {
        let name = format!("{prefix}.weight");
        Ok(Self {
            weight: w.matmul(&name)?,
            bias: w.f32(&format!("{prefix}.bias"))?.to_vec1()?,
            columns: w.get(&name)?.shape().dims2()?.1,
        })
    }

    /// `x` holds rows of the matrix's input width; a whole batch is one matmul.
    fn forward(&self, x: &[f32]) -> Result<Vec<f32>> {
        self.weight.forward_rows_biased(x, self.columns, &self.bias)
    }
}

fn layer_norm(w: &Weights, prefix: &str, eps: f64) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        w.f32(&format!("{prefix}.weight"))?.to_vec1()?,
        w.f32(&format!("{prefix}.bias"))?.to_vec1()?,
        eps,
    ))
}

/// `x += residual`, element by element.
fn add_in_place(x: &mut [f32], residual: &[f32]) {
    for (v, &r) in x.iter_mut().zip(residual) {
        *v += r;
    }
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
    let mut bias = Vec::new();
    for n in &names {
        bias.extend(w.f32(&format!("{n}.bias"))?.to_vec1::<f32>()?);
    }
    let weight = super::quantize::stack_rows(&weights)?;
    let columns = weight.shape().dims2()?.1;
    Ok(Linear {
        weight: crate::kernels::qmatmul(Arc::new(weight))?,
        bias,
        columns,
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

    /// `x`: (batch, tokens, hidden) as `shape` says; `mask`: (batch, tokens), 1 for real tokens.
    fn forward(&self, x: &[f32], mask: &[u32], shape: Shape) -> Result<Vec<f32>> {
        let context = attention(&self.qkv.forward(x)?, mask, shape);
        let mut attended = self.attention_out.forward(&context)?;
        add_in_place(&mut attended, x);
        self.attention_norm.apply(&mut attended);
        let mut inner = self.intermediate.forward(&attended)?;
        gelu_erf_in_place(&mut inner);
        let mut out = self.output.forward(&inner)?;
        add_in_place(&mut out, &attended);
        self.output_norm.apply(&mut out);
        Ok(out)
    }
}

pub struct Bert {
    word_embeddings: Matmul,
    position_embeddings: Vec<f32>,
    token_type_zero: Vec<f32>,
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
            position_embeddings: w
                .f32("embeddings.position_embeddings.weight")?
                .flatten_all()?
                .to_vec1()?,
            token_type_zero: w
                .f32("embeddings.token_type_embeddings.weight")?
                .get(0)?
                .to_vec1()?,
            embedding_norm: layer_norm(w, "embeddings.LayerNorm", eps)?,
            layers,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// `ids` and `mask` are (batch, tokens) row-major, `tokens` at most the model's
    /// positions; returns the last hidden states, (batch, tokens, hidden) row-major.
    /// Every input uses token type 0, as sentence-transformers does for single sentences.
    pub fn forward(&self, ids: &[u32], mask: &[u32], tokens: usize) -> Result<Vec<f32>> {
        let hidden = self.config.hidden_size;
        let shape = Shape {
            batch: ids.len() / tokens.max(1),
            tokens,
            heads: self.config.num_attention_heads,
            head_dim: hidden / self.config.num_attention_heads,
        };
        let ids = Tensor::from_slice(ids, ids.len(), &Device::Cpu)?;
        let mut x = self
            .word_embeddings
            .embedding(&ids)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for token in x.chunks_exact_mut(tokens * hidden) {
            for (row, position) in token
                .chunks_exact_mut(hidden)
                .zip(self.position_embeddings.chunks_exact(hidden))
            {
                for ((v, &p), &t) in row.iter_mut().zip(position).zip(&self.token_type_zero) {
                    *v = (*v + p) + t;
                }
            }
        }
        self.embedding_norm.apply(&mut x);
        for layer in &self.layers {
            x = layer.forward(&x, mask, shape)?;
        }
        Ok(x)
    }
}
