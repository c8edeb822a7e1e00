//! SmolLM2 (llama architecture, GGUF) on candle: RMSNorm, grouped-query attention with
//! interleaved rotary embeddings, SwiGLU, and the LM head tied to the token embeddings.
//!
//! The numerics follow candle-transformers' `quantized_llama` (llama path), which the parity
//! test holds to llama.cpp; this file exists so that every weight matrix goes through
//! our kernels (`crate::kernels::qmatmul`), and to make batch-1 decoding cheaper: K and V grow in place
//! instead of being copied at every token, and the query heads that share a key/value head
//! are batched together instead of copying K and V once per query head.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use candle_core::{Device, Module, Tensor};
use candle_nn::ops::{rms_norm, silu, softmax_last_dim};
use candle_nn::rotary_emb::rope_i;

use crate::embed::GgufTensors;
use crate::error::{Error, Result};
use crate::kernels::{qmatmul, Matmul};

/// The longest context we run, whatever the file claims (as candle's `quantized_llama`):
/// the rotary tables and the KV cache are sized from it.
pub const MAX_SEQ_LEN: usize = 4096;

/// The smallest KV cache allocation, in positions: a short prompt and its first tokens fit
/// without growing.
const MIN_CACHE: usize = 64;

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

/// Rotary embedding tables, (position, head_dim / 2), computed once as `quantized_llama`
/// does (f32 angle = position × θᵢ).
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(config: &LlamaConfig) -> Result<Self> {
        let d = config.head_dim;
        let theta: Vec<f32> = (0..d)
            .step_by(2)
            .map(|i| 1.0 / config.rope_freq_base.powf(i as f32 / d as f32))
            .collect();
        let angles: Vec<f32> = (0..config.context_length)
            .flat_map(|p| theta.iter().map(move |t| p as f32 * t))
            .collect();
        let shape = (config.context_length, d / 2);
        let cos = angles.iter().map(|a| a.cos()).collect();
        let sin = angles.iter().map(|a| a.sin()).collect();
        Ok(Self {
            cos: Tensor::from_vec(cos, shape, &Device::Cpu)?,
            sin: Tensor::from_vec(sin, shape, &Device::Cpu)?,
        })
    }

    /// Rotates `x`, (batch, heads, n, head_dim) contiguous, whose first row is at `position`.
    fn apply(&self, x: &Tensor, position: usize) -> Result<Tensor> {
        let n = x.dim(2)?;
        let cos = self.cos.narrow(0, position, n)?;
        let sin = self.sin.narrow(0, position, n)?;
        Ok(rope_i(x, &cos, &sin)?)
    }
}

/// Keys or values of the positions so far: a (batch, kv heads, capacity, head_dim) buffer
/// that doubles when full, so a token costs one row write instead of a copy of the cache.
#[derive(Default)]
struct Cache {
    buffer: Option<Tensor>,
    len: usize,
}

impl Cache {
    /// Appends `x` (batch, kv heads, n, head_dim; contiguous) and returns a view of all
    /// positions so far.
    fn append(&mut self, x: &Tensor, max_len: usize) -> Result<Tensor> {
        let (b, heads, n, d) = x.dims4()?;
        let len = self.len + n;
        let buffer = match self.buffer.take() {
            Some(buffer) if buffer.dim(2)? >= len => buffer,
            old => {
                let capacity = old.as_ref().map_or(Ok(0), |t| t.dim(2))?;
                let grown = len.next_power_of_two().max(MIN_CACHE).min(max_len).max(len);
                let extra = Tensor::zeros((b, heads, grown - capacity, d), x.dtype(), x.device())?;
                match old {
                    Some(old) => Tensor::cat(&[&old, &extra], 2)?,
                    None => extra,
                }
            }
        };
        buffer.slice_set(x, 2, self.len)?;
        let all = buffer.narrow(2, 0, len)?;
        self.buffer = Some(buffer);
        self.len = len;
        Ok(all)
    }
}

struct Layer {
    attn_norm: Tensor,
    wq: Matmul,
    wk: Matmul,
    wv: Matmul,
    wo: Matmul,
    ffn_norm: Tensor,
    gate: Matmul,
    up: Matmul,
    down: Matmul,
    keys: Cache,
    values: Cache,
}

impl Layer {
    fn attention(
        &mut self,
        x: &Tensor,
        position: usize,
        mask: Option<&Tensor>,
        rope: &Rope,
        c: &LlamaConfig,
    ) -> Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        let (heads, kv_heads, d) = (c.head_count, c.head_count_kv, c.head_dim);
        // (b, n, heads·d) → (b, heads, n, d); `contiguous` copies only when n > 1.
        let split = |y: Tensor, h: usize| -> Result<Tensor> {
            Ok(y.reshape((b, n, h, d))?.transpose(1, 2)?.contiguous()?)
        };
        let q = rope.apply(&split(self.wq.forward(x)?, heads)?, position)?;
        let k = rope.apply(&split(self.wk.forward(x)?, kv_heads)?, position)?;
        let v = split(self.wv.forward(x)?, kv_heads)?;
        let k = self.keys.append(&k, c.context_length)?;
        let v = self.values.append(&v, c.context_length)?;
        let t = k.dim(2)?;
        // Query heads sharing a KV head are adjacent: as the rows of one matrix per KV head
        // (row = group member × n + query) they attend without repeating K and V.
        let group = heads / kv_heads;
        let q = q.reshape((b, kv_heads, group * n, d))?;
        let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?;
        let scores = match mask {
            Some(mask) => scores
                .reshape((b, kv_heads, group, n, t))?
                .broadcast_add(mask)?,
            None => scores,
        };
        let probs = softmax_last_dim(&scores)?.reshape((b, kv_heads, group * n, t))?;
        let y = probs
            .matmul(&v)?
            .reshape((b, heads, n, d))?
            .transpose(1, 2)?
            .reshape((b, n, heads * d))?;
        Ok(self.wo.forward(&y)?)
    }

    fn forward(
        &mut self,
        x: &Tensor,
        position: usize,
        mask: Option<&Tensor>,
        rope: &Rope,
        c: &LlamaConfig,
    ) -> Result<Tensor> {
        let h = rms_norm(x, &self.attn_norm, c.rms_norm_eps)?;
        let x = (self.attention(&h, position, mask, rope, c)? + x)?;
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
    pub fn new(weights: &mut GgufTensors, metadata: &HashMap<String, Value>) -> Result<Self> {
        let config = LlamaConfig::from_metadata(metadata)?;
        // Each matrix is read and converted on its own, so candle's copy of the blocks lives
        // only until converted: the peak is the file plus our layout, not all weights twice.
        let matrix = |w: &mut GgufTensors, name: &str| qmatmul(w.take(name)?);
        let layers = (0..config.block_count)
            .map(|i| {
                let p = |name: &str| format!("blk.{i}.{name}.weight");
                Ok(Layer {
                    attn_norm: weights.f32(&p("attn_norm"))?,
                    wq: matrix(weights, &p("attn_q"))?,
                    wk: matrix(weights, &p("attn_k"))?,
                    wv: matrix(weights, &p("attn_v"))?,
                    wo: matrix(weights, &p("attn_output"))?,
                    ffn_norm: weights.f32(&p("ffn_norm"))?,
                    gate: matrix(weights, &p("ffn_gate"))?,
                    up: matrix(weights, &p("ffn_up"))?,
                    down: matrix(weights, &p("ffn_down"))?,
                    keys: Cache::default(),
                    values: Cache::default(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let output = weights
            .contains("output.weight")
            .then(|| matrix(weights, "output.weight"))
            .transpose()?;
        Ok(Self {
            embedding: matrix(weights, "token_embd.weight")?,
            output,
            layers,
            norm: weights.f32("output_norm.weight")?,
            rope: Rope::new(&config)?,
            config,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Keeps the first `len` cached positions; later appends overwrite the rest in place.
    pub fn truncate_kv_cache(&mut self, len: usize) {
        for layer in &mut self.layers {
            layer.keys.len = layer.keys.len.min(len);
            layer.values.len = layer.values.len.min(len);
        }
    }

    pub fn clear_kv_cache(&mut self) {
        for layer in &mut self.layers {
            layer.keys = Cache::default();
            layer.values = Cache::default();
        }
    }

    /// Logits of the token after `ids` (batch, n; u32), with `position` tokens already in
    /// the cache (0 starts over): (batch, vocab).
    pub fn forward(&mut self, ids: &Tensor, position: usize) -> Result<Tensor> {
        let (b, n) = ids.dims2()?;
        let cached = self.layers.first().map_or(0, |l| l.keys.len);
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
        let mask = (n > 1).then(|| causal_mask(n, position)).transpose()?;
        let mut x = self.embedding.embedding(ids)?;
        for layer in &mut self.layers {
            x = layer.forward(&x, position, mask.as_ref(), &self.rope, &self.config)?;
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

/// The prefill mask, added to the attention scores: each of the `n` new positions sees the
/// `position` cached ones and the new ones up to itself.
pub(super) fn causal_mask(n: usize, position: usize) -> Result<Tensor> {
    let mask: Vec<f32> = (0..n)
        .flat_map(|i| {
            (0..position + n).map(move |j| {
                if j > position + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Ok(Tensor::from_vec(mask, (n, position + n), &Device::Cpu)?)
}
