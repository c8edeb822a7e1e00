//! The llama architecture (SmolLM2) as a differentiable function of its adapters: the same
//! computation as `generate::llama`, on frozen dequantized weights, with every op one that
//! candle can differentiate. Whole sequences at once, no KV cache: training sees each
//! example in one pass.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::ops::{rms_norm_slow, silu, softmax};
use candle_nn::rotary_emb::rope_i_slow;

use super::frozen::FrozenLinear;
use super::lora::{LoraConfig, Rng, Target};
use super::trainable::{answer_loss, causal_mask, AdaptedMatrices, Trainable};
use crate::error::{Error, Result};
use crate::generate::LlamaConfig;
use crate::weights::GgufTensors;

/// One block's frozen weights ([out, in] matrices, GGUF names) and its adapters.
struct Block {
    attn_norm: Tensor,
    ffn_norm: Tensor,
    matrices: AdaptedMatrices,
}

impl Block {
    fn linear(&self, x: &Tensor, target: Target) -> Result<Tensor> {
        self.matrices.linear(x, target)
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

/// A llama block's matrices, in the order adapters are created and named in.
pub const TARGETS: [Target; 7] = [
    Target::Q,
    Target::K,
    Target::V,
    Target::O,
    Target::Gate,
    Target::Up,
    Target::Down,
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
            names.extend(
                TARGETS
                    .iter()
                    .map(|t| format!("blk.{i}.{}.weight", t.matrix())),
            );
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
        lora.check_targets("a llama", &TARGETS)?;
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
            let frozen = TARGETS
                .iter()
                .map(|&t| {
                    let w = take(&format!("blk.{i}.{}.weight", t.matrix()))?;
                    Ok((t, FrozenLinear::new(w)?))
                })
                .collect::<Result<Vec<_>>>()?;
            blocks.push(Block {
                attn_norm: take(&format!("blk.{i}.attn_norm.weight"))?,
                ffn_norm: take(&format!("blk.{i}.ffn_norm.weight"))?,
                matrices: AdaptedMatrices::new(frozen, lora, &mut rng, dtype)?,
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
}

impl Trainable for TrainableLlama {
    fn lora(&self) -> &LoraConfig {
        &self.lora
    }

    fn named_adapters(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            block.matrices.push_named(i, &mut out);
        }
        out
    }

    fn loss(&self, ids: &[u32], answer: &[bool]) -> Result<Tensor> {
        answer_loss(ids, answer, |ids| self.hidden(ids), &self.head)
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
