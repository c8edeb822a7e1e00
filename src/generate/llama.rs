//! SmolLM2 (llama architecture, GGUF) on candle: RMSNorm, grouped-query attention with
//! interleaved rotary embeddings, SwiGLU, and the LM head tied to the token embeddings.
//!
//! The numerics follow candle-transformers' `quantized_llama` (llama path), which the parity
//! test holds to llama.cpp; this file exists so that every weight matrix goes through our
//! kernels (`crate::kernels::qmatmul`) and attention through our fixed-order one
//! (`attention.rs`): a position's numbers do not depend on how the prompt was split into
//! calls or on the CPU, and K and V grow in place, shared by the query heads of a group.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::QTensor;
use candle_core::{Device, Module, Tensor};
use candle_nn::ops::{rms_norm, silu};

use super::adapter::{Adapter, AdapterMode, LowRank};
use super::attention::{KvCache, SavedRows};
use crate::error::{Error, Result};
use crate::kernels::{qmatmul, Matmul};
use crate::weights::GgufTensors;

/// The longest context we run, whatever the file claims (as candle's `quantized_llama`):
/// the rotary tables and the KV cache are sized from it.
pub const MAX_SEQ_LEN: usize = 4096;

/// Hyper-parameters from the GGUF metadata (`llama.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub block_count: usize,
    pub embedding_length: usize,
    pub head_count: usize,
    pub head_count_kv: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f32,
    pub rope_freq_base: f32,
    /// The file's context length, clamped to [`MAX_SEQ_LEN`].
    pub context_length: usize,
}

impl LlamaConfig {
    pub fn from_metadata(md: &HashMap<String, Value>) -> Result<Self> {
        let bad = |key: &str, e: candle_core::Error| {
            Error::ModelFile(format!("GGUF metadata {key:?}: {e}"))
        };
        let get = |key: &str| {
            md.get(key)
                .ok_or_else(|| Error::ModelFile(format!("GGUF metadata has no {key:?}")))
        };
        let n = |key: &str| -> Result<usize> {
            Ok(get(key)?.to_u32().map_err(|e| bad(key, e))? as usize)
        };
        let rope_freq_base = match md.get("llama.rope.freq_base") {
            Some(v) => v.to_f32().map_err(|e| bad("llama.rope.freq_base", e))?,
            None => 10_000.0,
        };
        let eps_key = "llama.attention.layer_norm_rms_epsilon";
        let config = Self {
            block_count: n("llama.block_count")?,
            embedding_length: n("llama.embedding_length")?,
            head_count: n("llama.attention.head_count")?,
            head_count_kv: n("llama.attention.head_count_kv")?,
            head_dim: n("llama.rope.dimension_count")?,
            rms_norm_eps: get(eps_key)?.to_f32().map_err(|e| bad(eps_key, e))?,
            rope_freq_base,
            context_length: n("llama.context_length")?.min(MAX_SEQ_LEN),
        };
        // rope_i rotates whole heads, so the rotary dimension must be the head size.
        let (h, kv, d) = (config.head_count, config.head_count_kv, config.head_dim);
        if h == 0 || kv == 0 || h % kv != 0 || h * d != config.embedding_length || d % 2 != 0 {
            return Err(Error::ModelFile(format!(
                "unsupported llama shape: {h} heads, {kv} KV heads, rotary dimension {d}, \
                 embedding length {}",
                config.embedding_length
            )));
        }
        Ok(config)
    }
}

/// The rotary tables, cos and sin of (position, head_dim / 2) row-major, as
/// `quantized_llama` computes them (f32 angle = position × θᵢ); the trainable llama
/// (`crate::train`) uses the same ones.
pub(crate) fn rope_tables(config: &LlamaConfig) -> (Vec<f32>, Vec<f32>) {
    let d = config.head_dim;
    let theta: Vec<f32> = (0..d)
        .step_by(2)
        .map(|i| 1.0 / config.rope_freq_base.powf(i as f32 / d as f32))
        .collect();
    let angles: Vec<f32> = (0..config.context_length)
        .flat_map(|p| theta.iter().map(move |t| p as f32 * t))
        .collect();
    (
        angles.iter().map(|a| a.cos()).collect(),
        angles.iter().map(|a| a.sin()).collect(),
    )
}

/// Rotary embedding tables, computed once.
struct Rope {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
}

impl Rope {
    fn new(config: &LlamaConfig) -> Self {
        let (cos, sin) = rope_tables(config);
        Self {
            cos,
            sin,
            half: config.head_dim / 2,
        }
    }

    /// Rotates `x`, rows of heads × head_dim whose first row is at `position`, in place:
    /// each adjacent pair (GGUF's interleaved layout) by its position's angle, as candle's
    /// `rope_i` does.
    fn apply(&self, x: &mut [f32], heads: usize, position: usize) {
        let width = heads * 2 * self.half;
        for (i, row) in x.chunks_exact_mut(width).enumerate() {
            let at = (position + i) * self.half;
            let (cos, sin) = (&self.cos[at..at + self.half], &self.sin[at..at + self.half]);
            for head in row.chunks_exact_mut(2 * self.half) {
                for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                    let (a, b) = (pair[0], pair[1]);
                    pair[0] = a * c - b * s;
                    pair[1] = a * s + b * c;
                }
            }
        }
    }
}

/// A quantized matrix and, with an adapter applied, its low-rank update.
struct Linear {
    /// Its GGUF name without `.weight` (`blk.3.attn_q`): what adapter files call it.
    name: String,
    w: Matmul,
    update: Option<LowRank>,
}

impl Linear {
    fn new(weights: &mut GgufTensors, name: String) -> Result<Self> {
        let w = weights.matmul(&format!("{name}.weight"))?;
        Ok(Self {
            name,
            w,
            update: None,
        })
    }

    /// `x Wᵀ (+ the update)` for rows of `columns` values.
    fn forward_rows(&self, x: &[f32], columns: usize) -> Result<Vec<f32>> {
        let mut y = self.w.forward_rows(x, columns)?;
        if let Some(update) = &self.update {
            update.add_to(x, &mut y);
        }
        Ok(y)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let Some(update) = &self.update else {
            return Ok(self.w.forward(x)?);
        };
        let mut shape = x.dims().to_vec();
        let columns = shape.pop().unwrap_or(0);
        let rows = x.flatten_all()?.to_vec1::<f32>()?;
        let mut y = self.w.forward_rows(&rows, columns)?;
        update.add_to(&rows, &mut y);
        shape.push(update.dims().0);
        Ok(Tensor::from_vec(y, shape, &Device::Cpu)?)
    }

    /// Takes `adapter`'s update for this matrix (none if it has none, or if `adapter` is
    /// `None`), or merges it into the weights, stored again in their format.
    fn adapt(&mut self, adapter: Option<&Adapter>, mode: AdapterMode) -> Result<()> {
        let dims = self.w.dims()?;
        let update = match adapter {
            Some(adapter) => adapter.get(&self.name, dims)?.cloned(),
            None => None,
        };
        match (mode, update) {
            (AdapterMode::Merged, Some(update)) => {
                let (w, dtype) = self.w.dequantize()?;
                let delta = Tensor::from_vec(update.delta(), dims, &Device::Cpu)?;
                let merged = QTensor::quantize(&(w + delta)?, dtype)?;
                self.w = qmatmul(Arc::new(merged))?;
                self.update = None;
            }
            (_, update) => self.update = update,
        }
        Ok(())
    }
}

struct Layer {
    attn_norm: Tensor,
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
    cache: KvCache,
}

impl Layer {
    fn linears(&mut self) -> [&mut Linear; 7] {
        [
            &mut self.wq,
            &mut self.wk,
            &mut self.wv,
            &mut self.wo,
            &mut self.gate,
            &mut self.up,
            &mut self.down,
        ]
    }
}

impl Layer {
    fn attention(&mut self, x: &Tensor, rope: &Rope, c: &LlamaConfig) -> Result<Tensor> {
        let (b, n, width) = x.dims3()?;
        let position = self.cache.len();
        let rows = x.flatten_all()?.to_vec1::<f32>()?;
        let mut q = self.wq.forward_rows(&rows, width)?;
        let mut k = self.wk.forward_rows(&rows, width)?;
        let v = self.wv.forward_rows(&rows, width)?;
        rope.apply(&mut q, c.head_count, position);
        rope.apply(&mut k, c.head_count_kv, position);
        let context = self.cache.attend(&q, &k, &v)?;
        let y = Tensor::from_vec(context, (b, n, c.head_count * c.head_dim), &Device::Cpu)?;
        self.wo.forward(&y)
    }

    fn forward(&mut self, x: &Tensor, rope: &Rope, c: &LlamaConfig) -> Result<Tensor> {
        let h = rms_norm(x, &self.attn_norm, c.rms_norm_eps)?;
        let x = (self.attention(&h, rope, c)? + x)?;
        let h = rms_norm(&x, &self.ffn_norm, c.rms_norm_eps)?;
        let h = (silu(&self.gate.forward(&h)?)? * self.up.forward(&h)?)?;
        Ok((self.down.forward(&h)? + x)?)
    }
}

/// A llama-architecture model with its KV cache: call [`Llama::forward`] with the prompt at
/// position 0, then one token at a time.
pub struct Llama {
    /// The token embeddings, rows dequantized as they are looked up (an f32 table would be
    /// 49152 × 576 × 4 bytes = 113 MB for SmolLM2), and, in our kernels' layout, the LM head.
    embedding: Matmul,
    /// The LM head when it is not tied to the embeddings (SmolLM2's is).
    output: Option<Matmul>,
    layers: Vec<Layer>,
    norm: Tensor,
    rope: Rope,
    config: LlamaConfig,
}

impl Llama {
    /// From a GGUF's tensors, read and converted one at a time, and its metadata.
    pub fn new(weights: &mut GgufTensors) -> Result<Self> {
        let config = LlamaConfig::from_metadata(weights.metadata())?;
        // Each matrix goes from the file straight into our layout (`GgufTensors::matmul`):
        // loading holds the file and the model, never a third copy of a tensor. The token
        // embedding comes first, as in llama.cpp's files, so a source that lets go of what
        // was read (the page's) frees its 30 MB before the layers are built.
        let embedding = weights.matmul("token_embd.weight")?;
        let layers = (0..config.block_count)
            .map(|i| {
                let p = |name: &str| format!("blk.{i}.{name}.weight");
                let mut linear = |name: &str| Linear::new(weights, format!("blk.{i}.{name}"));
                Ok(Layer {
                    wq: linear("attn_q")?,
                    wk: linear("attn_k")?,
                    wv: linear("attn_v")?,
                    wo: linear("attn_output")?,
                    gate: linear("ffn_gate")?,
                    up: linear("ffn_up")?,
                    down: linear("ffn_down")?,
                    attn_norm: weights.f32(&p("attn_norm"))?,
                    ffn_norm: weights.f32(&p("ffn_norm"))?,
                    cache: KvCache::new(
                        config.head_count,
                        config.head_count_kv,
                        config.head_dim,
                        config.context_length,
                    ),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let output = weights
            .contains("output.weight")
            .then(|| weights.matmul("output.weight"))
            .transpose()?;
        Ok(Self {
            embedding,
            output,
            layers,
            norm: weights.f32("output_norm.weight")?,
            rope: Rope::new(&config),
            config,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Applies `adapter` (replacing any applied before; `None` takes it off) kept apart from
    /// the weights, or merged into them for good. Every matrix the adapter names must be
    /// one of this model's, of the same shape; otherwise nothing changes.
    pub fn set_adapter(&mut self, adapter: Option<&Adapter>, mode: AdapterMode) -> Result<()> {
        if let Some(adapter) = adapter {
            for name in adapter.matrices() {
                let found = self
                    .layers
                    .iter_mut()
                    .flat_map(|l| l.linears())
                    .find(|l| l.name == name);
                match found {
                    Some(linear) => {
                        adapter.get(name, linear.w.dims()?)?;
                    }
                    None => {
                        return Err(Error::ModelFile(format!(
                            "adapter file: this model has no matrix {name:?} (an adapter for another model?)"
                        )))
                    }
                }
            }
        }
        for layer in &mut self.layers {
            for linear in layer.linears() {
                linear.adapt(adapter, mode)?;
            }
        }
        Ok(())
    }

    /// Keeps the first `len` cached positions; later appends overwrite the rest in place.
    pub fn truncate_kv_cache(&mut self, len: usize) {
        for layer in &mut self.layers {
            layer.cache.truncate(len);
        }
    }

    /// A copy of the first `len` cached positions of every layer.
    pub(super) fn save_kv_cache(&self, len: usize) -> Vec<SavedRows> {
        self.layers.iter().map(|l| l.cache.save(len)).collect()
    }

    /// Holds exactly the positions of `saved` (from [`Llama::save_kv_cache`]).
    pub(super) fn restore_kv_cache(&mut self, saved: &[SavedRows]) {
        for (layer, saved) in self.layers.iter_mut().zip(saved) {
            layer.cache.restore(saved);
        }
    }

    pub fn clear_kv_cache(&mut self) {
        for layer in &mut self.layers {
            layer.cache.clear();
        }
    }

    /// Logits of the token after `ids` (1, n; u32), with `position` tokens already in the
    /// cache (0 starts over): (1, vocab).
    pub fn forward(&mut self, ids: &Tensor, position: usize) -> Result<Tensor> {
        let (b, n) = ids.dims2()?;
        let cached = self.layers.first().map_or(0, |l| l.cache.len());
        if b != 1 {
            return Err(Error::InvalidArgument(format!(
                "a batch of {b} sequences; the KV cache holds one"
            )));
        }
        if n == 0 || (position != 0 && position != cached) {
            return Err(Error::InvalidArgument(format!(
                "{n} tokens at position {position}, but the cache holds {cached}"
            )));
        }
        if position + n > self.config.context_length {
            return Err(Error::InvalidArgument(format!(
                "{} tokens exceed the model's context of {}",
                position + n,
                self.config.context_length
            )));
        }
        if position == 0 {
            self.clear_kv_cache();
        }
        let mut x = self.embedding.embedding(ids)?;
        for layer in &mut self.layers {
            x = layer.forward(&x, &self.rope, &self.config)?;
        }
        let last = rms_norm(
            &x.narrow(1, n - 1, 1)?,
            &self.norm,
            self.config.rms_norm_eps,
        )?;
        let head = self.output.as_ref().unwrap_or(&self.embedding);
        Ok(head.forward(&last)?.reshape((b, ()))?)
    }
}

/// Beam search swaps each hypothesis's positions in and out of these (`beam/kv.rs`).
impl Llama {
    pub(super) fn kv_caches(&mut self) -> Vec<&mut KvCache> {
        self.layers.iter_mut().map(|l| &mut l.cache).collect()
    }
}
