//! The llama architecture (SmolLM2) as a differentiable function of its adapters: the same
//! computation as `generate::llama`, on frozen dequantized weights, with every op one that
//! candle can differentiate. Whole sequences at once, no KV cache: training sees each
//! example in one pass.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::ops::{rms_norm_slow, silu, softmax};
use candle_nn::rotary_emb::rope_i_slow;

use super::frozen::FrozenLinear;
use super::lora::{Adapter, LoraConfig, Rng, Target};
use crate::error::{Error, Result};
use crate::generate::LlamaConfig;
use crate::weights::GgufTensors;

/// One block's frozen weights ([out, in] matrices, GGUF names) and its adapters.
struct Block {
    attn_norm: Tensor,
    ffn_norm: Tensor,
    matrices: HashMap<Target, FrozenLinear>,
    adapters: HashMap<Target, Adapter>,
}

impl Block {
    fn linear(&self, x: &Tensor, target: Target) -> Result<Tensor> {
        let w = &self.matrices[&target];
        match self.adapters.get(&target) {
            Some(adapter) => adapter.forward(x, w),
            None => w.forward(x),
        }
    }
}

/// A llama with LoRA adapters on the matrices its [`LoraConfig`] targets.
pub struct TrainableLlama {
    config: LlamaConfig,
    lora: LoraConfig,
    embedding: Tensor,
    /// The LM head: the tied embeddings as a frozen linear.
    head: FrozenLinear,
    blocks: Vec<Block>,
    norm: Tensor,
    cos: Tensor,
    sin: Tensor,
    dtype: DType,
}

const NAMES: [(Target, &str); 7] = [
    (Target::Q, "attn_q"),
    (Target::K, "attn_k"),
    (Target::V, "attn_v"),
    (Target::O, "attn_output"),
    (Target::Gate, "ffn_gate"),
    (Target::Up, "ffn_up"),
    (Target::Down, "ffn_down"),
];

impl TrainableLlama {
    /// From a llama GGUF (SmolLM2), its matrices dequantized to f32.
    pub fn from_gguf(bytes: &[u8], lora: &LoraConfig) -> Result<Self> {
        let mut gguf = GgufTensors::read(bytes)?;
        let config = LlamaConfig::from_metadata(gguf.metadata())?;
        let mut tensors = HashMap::new();
        let mut names = vec![
            "token_embd.weight".to_string(),
            "output_norm.weight".to_string(),
        ];
        for i in 0..config.block_count {
            names.push(format!("blk.{i}.attn_norm.weight"));
            names.push(format!("blk.{i}.ffn_norm.weight"));
            names.extend(NAMES.iter().map(|(_, n)| format!("blk.{i}.{n}.weight")));
        }
        for name in names {
            let tensor = gguf.take(&name)?.dequantize(&Device::Cpu)?;
            tensors.insert(name, tensor);
        }
        Self::from_tensors(config, tensors, lora, DType::F32)
    }

    /// From named tensors in GGUF layout (`token_embd.weight`, `blk.{i}.attn_q.weight`, ...),
    /// converted to `dtype` (f64 for gradient checks).
    pub fn from_tensors(
        config: LlamaConfig,
        mut tensors: HashMap<String, Tensor>,
        lora: &LoraConfig,
        dtype: DType,
    ) -> Result<Self> {
        lora.validate()?;
        if config.rope_freq_base <= 0.0 {
            return Err(Error::ModelFile(
                "rope frequency base must be positive".into(),
            ));
        }
        let mut take = |name: &str| -> Result<Tensor> {
            let t = tensors
                .remove(name)
                .ok_or_else(|| Error::ModelFile(format!("llama weights have no {name:?}")))?;
            Ok(t.to_dtype(dtype)?)
        };
        let mut rng = Rng::new(lora.seed);
        let mut blocks = Vec::with_capacity(config.block_count);
        for i in 0..config.block_count {
            let mut matrices = HashMap::new();
            for (target, name) in NAMES {
                matrices.insert(
                    target,
                    FrozenLinear::new(take(&format!("blk.{i}.{name}.weight"))?)?,
                );
            }
            let mut adapters = HashMap::new();
            for (target, _) in NAMES {
                if lora.targets.contains(&target) {
                    let (out, inp) = matrices[&target].dims();
                    adapters.insert(target, Adapter::new(out, inp, lora, &mut rng, dtype)?);
                }
            }
            blocks.push(Block {
                attn_norm: take(&format!("blk.{i}.attn_norm.weight"))?,
                ffn_norm: take(&format!("blk.{i}.ffn_norm.weight"))?,
                matrices,
                adapters,
            });
        }
        let (cos, sin) = rope_tables(&config, dtype)?;
        let embedding = take("token_embd.weight")?;
        Ok(Self {
            head: FrozenLinear::new(embedding.clone())?,
            embedding,
            norm: take("output_norm.weight")?,
            blocks,
            cos,
            sin,
            config,
            lora: lora.clone(),
            dtype,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    pub fn lora(&self) -> &LoraConfig {
        &self.lora
    }

    /// Sets every adapter from `tensors` (names as [`TrainableLlama::named_adapters`]); a
    /// missing tensor or another shape is an error naming it, and then nothing is changed.
    pub fn set_adapters(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let named = self.named_adapters();
        let mut values = Vec::with_capacity(named.len());
        for (name, var) in &named {
            let t = tensors
                .get(name)
                .ok_or_else(|| Error::ModelFile(format!("the adapter has no tensor {name:?}")))?;
            if t.shape() != var.shape() {
                return Err(Error::ModelFile(format!(
                    "adapter tensor {name:?} is {:?}; this model needs {:?} (another model or rank?)",
                    t.dims(),
                    var.dims()
                )));
            }
            values.push(t.to_dtype(self.dtype)?);
        }
        for ((_, var), value) in named.iter().zip(values) {
            var.set(&value)?;
        }
        Ok(())
    }

    /// Every trained tensor, block by block, in target order (`A` then `B`).
    pub fn adapter_vars(&self) -> Vec<Var> {
        self.named_adapters().into_iter().map(|(_, v)| v).collect()
    }

    /// The trained tensors with their names (`blk.{i}.{matrix}.lora_a` / `lora_b`).
    pub fn named_adapters(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            for (target, name) in NAMES {
                if let Some(adapter) = block.adapters.get(&target) {
                    out.push((format!("blk.{i}.{name}.lora_a"), adapter.a.clone()));
                    out.push((format!("blk.{i}.{name}.lora_b"), adapter.b.clone()));
                }
            }
        }
        out
    }

    /// Logits for every position of `ids`: (n, vocab).
    pub fn forward(&self, ids: &[u32]) -> Result<Tensor> {
        self.head.forward(&self.hidden(ids)?)
    }

    /// The final normalized hidden states of every position of `ids`: (n, width). The LM
    /// head (tied to the embeddings) applies to the rows that are needed only.
    fn hidden(&self, ids: &[u32]) -> Result<Tensor> {
        let c = &self.config;
        let n = ids.len();
        if n == 0 || n > c.context_length {
            return Err(Error::InvalidArgument(format!(
                "{n} tokens; the model takes 1 to {}",
                c.context_length
            )));
        }
        let (heads, kv, d) = (c.head_count, c.head_count_kv, c.head_dim);
        let ids = Tensor::new(ids, &Device::Cpu)?;
        let mut x = self.embedding.index_select(&ids, 0)?;
        let mask = causal_mask(n, self.dtype)?;
        let (cos, sin) = (self.cos.narrow(0, 0, n)?, self.sin.narrow(0, 0, n)?);
        let split = |y: Tensor, h: usize| -> Result<Tensor> {
            Ok(y.reshape((1, n, h, d))?.transpose(1, 2)?.contiguous()?)
        };
        for block in &self.blocks {
            let h = rms_norm_slow(&x, &block.attn_norm, c.rms_norm_eps)?;
            let q = rope_i_slow(&split(block.linear(&h, Target::Q)?, heads)?, &cos, &sin)?;
            let k = rope_i_slow(&split(block.linear(&h, Target::K)?, kv)?, &cos, &sin)?;
            let v = split(block.linear(&h, Target::V)?, kv)?;
            // Each KV head serves `heads / kv` adjacent query heads.
            let repeat = |t: Tensor| -> Result<Tensor> {
                Ok(t.unsqueeze(2)?
                    .broadcast_as((1, kv, heads / kv, n, d))?
                    .reshape((1, heads, n, d))?)
            };
            let (k, v) = (repeat(k)?, repeat(v)?);
            let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?.broadcast_add(&mask)?;
            let y = softmax(&scores, D::Minus1)?
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((n, heads * d))?;
            x = (x + block.linear(&y, Target::O)?)?;
            let h = rms_norm_slow(&x, &block.ffn_norm, c.rms_norm_eps)?;
            let gated =
                (silu(&block.linear(&h, Target::Gate)?)? * block.linear(&h, Target::Up)?)?;
            x = (x + block.linear(&gated, Target::Down)?)?;
        }
        Ok(rms_norm_slow(&x, &self.norm, c.rms_norm_eps)?)
    }

    /// Mean cross-entropy of predicting each next token of `ids` at the positions where
    /// `answer[i]` is true (`ids[i]` is an answer token): the prompt is read, not learned.
    pub fn loss(&self, ids: &[u32], answer: &[bool]) -> Result<Tensor> {
        if answer.len() != ids.len() {
            return Err(Error::InvalidArgument(format!(
                "{} answer flags for {} tokens",
                answer.len(),
                ids.len()
            )));
        }
        // The logits at position i predict token i + 1.
        let (rows, targets): (Vec<u32>, Vec<u32>) = (1..ids.len())
            .filter(|&i| answer[i])
            .map(|i| ((i - 1) as u32, ids[i]))
            .unzip();
        if rows.is_empty() {
            return Err(Error::InvalidArgument(
                "the example has no answer tokens after the first".into(),
            ));
        }
        // Only the answer's rows go through the LM head (49,152 × 576 for SmolLM2): most
        // of a prompt is read, not predicted.
        let rows = Tensor::new(rows.as_slice(), &Device::Cpu)?;
        let targets = Tensor::new(targets.as_slice(), &Device::Cpu)?;
        let picked = self
            .head
            .forward(&self.hidden(ids)?.index_select(&rows, 0)?)?;
        Ok(candle_nn::loss::cross_entropy(&picked, &targets)?)
    }
}

/// The inference path's rotary tables (`generate::rope_tables`) as tensors of `dtype`.
fn rope_tables(c: &LlamaConfig, dtype: DType) -> Result<(Tensor, Tensor)> {
    let (cos, sin) = crate::generate::rope_tables(c);
    let shape = (c.context_length, c.head_dim / 2);
    Ok((
        Tensor::from_vec(cos, shape, &Device::Cpu)?.to_dtype(dtype)?,
        Tensor::from_vec(sin, shape, &Device::Cpu)?.to_dtype(dtype)?,
    ))
}

/// 0 where a position may attend, −∞ after it: (n, n).
fn causal_mask(n: usize, dtype: DType) -> Result<Tensor> {
    let values: Vec<f32> = (0..n)
        .flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(values, (n, n), &Device::Cpu)?.to_dtype(dtype)?)
}
