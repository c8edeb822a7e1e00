//! GPT-2 as a differentiable function of its adapters: the same computation as
//! `generate::gpt2` (learned positions, pre-LayerNorm blocks, tanh-GELU, the LM head tied to
//! the token embeddings) on frozen f32 weights, with every op one that candle can
//! differentiate. Whole sequences at once, no KV cache.
//!
//! The weights are named and laid out as `generate::gpt2` holds them: Hugging Face's names
//! without `transformer.` (`h.{i}.attn.c_attn.weight`), projections `[out, in]` (Hugging Face
//! stores them `[in, out]`, as `Conv1D`). The adapters are named in llama.cpp's GGUF naming
//! like the llama's: `blk.{i}.attn_qkv.lora_a`, `attn_output`, `ffn_up`, `ffn_down`.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::ops::softmax;

use super::frozen::FrozenLinear;
use super::lora::{LoraConfig, Rng, Target};
use super::trainable::{answer_loss, causal_mask, AdaptedMatrices, Trainable};
use crate::error::{Error, Result};
use crate::generate::{gpt2_canonical_tensors, Gpt2Config};
use crate::weights::Weights;

/// A GPT-2 block's matrices with their Hugging Face names, in the order adapters are created
/// and named in.
const MATRICES: [(Target, &str); 4] = [
    (Target::Qkv, "attn.c_attn"),
    (Target::O, "attn.c_proj"),
    (Target::Up, "mlp.c_fc"),
    (Target::Down, "mlp.c_proj"),
];

/// The matrices of a GPT-2 block that adapters can target.
pub const TARGETS: [Target; 4] = [MATRICES[0].0, MATRICES[1].0, MATRICES[2].0, MATRICES[3].0];

/// A LayerNorm's weight and bias.
struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    /// LayerNorm over the last dimension, as candle's `layer_norm_slow` (whose fused twin
    /// records no gradient) but with `eps` in f64: that one takes an f32, and 1e-5 as an f32
    /// is off by 2.5e-13, which on GPT-2's small early activations moved f64 gradients by
    /// 1e-9 relative to torch's.
    fn forward(&self, x: &Tensor, eps: f64) -> Result<Tensor> {
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
        Ok(centred
            .broadcast_div(&(variance + eps)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)?)
    }

    fn take(take: &mut impl FnMut(&str) -> Result<Tensor>, prefix: &str) -> Result<Self> {
        Ok(Self {
            weight: take(&format!("{prefix}.weight"))?,
            bias: take(&format!("{prefix}.bias"))?,
        })
    }
}

/// One block's frozen weights and its adapters.
struct Block {
    ln_1: Norm,
    ln_2: Norm,
    matrices: AdaptedMatrices,
    /// Each matrix's bias, in `MATRICES` order.
    biases: Vec<Tensor>,
}

impl Block {
    fn linear(&self, x: &Tensor, target: Target) -> Result<Tensor> {
        let index = TARGETS
            .iter()
            .position(|t| *t == target)
            .ok_or_else(|| Error::InvalidArgument(format!("GPT-2 has no {target} matrix")))?;
        Ok(self
            .matrices
            .linear(x, target)?
            .broadcast_add(&self.biases[index])?)
    }
}

/// GPT-2 with LoRA adapters on the matrices its [`LoraConfig`] targets.
pub struct TrainableGpt2 {
    config: Gpt2Config,
    lora: LoraConfig,
    wte: Tensor,
    wpe: Tensor,
    /// The LM head: the tied token embeddings as a frozen linear.
    head: FrozenLinear,
    blocks: Vec<Block>,
    ln_f: Norm,
    dtype: DType,
}

impl TrainableGpt2 {
    /// From Hugging Face files (model.safetensors, config.json).
    pub fn from_safetensors(
        safetensors: &[u8],
        config_json: &[u8],
        lora: &LoraConfig,
    ) -> Result<Self> {
        let config = Gpt2Config::from_json(config_json)?;
        let tensors = gpt2_canonical_tensors(&Weights::from_safetensors(safetensors)?)?;
        Self::from_tensors(config, tensors, lora, DType::F32)
    }

    /// From a GGUF written by `generate::gpt2_to_gguf`, its matrices dequantized to f32.
    pub fn from_gguf(bytes: &[u8], lora: &LoraConfig) -> Result<Self> {
        let (weights, metadata) = Weights::from_gguf_with_metadata(bytes)?;
        let config = Gpt2Config::from_metadata(&metadata)?;
        let tensors = weights
            .names()
            .map(|n| Ok((n.to_string(), weights.f32(n)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        Self::from_tensors(config, tensors, lora, DType::F32)
    }

    /// From named tensors as `generate::gpt2` holds them (`wte.weight`,
    /// `h.{i}.attn.c_attn.weight` as `[out, in]`, ...), converted to `dtype` (f64 for
    /// gradient checks).
    pub fn from_tensors(
        config: Gpt2Config,
        mut tensors: HashMap<String, Tensor>,
        lora: &LoraConfig,
        dtype: DType,
    ) -> Result<Self> {
        lora.validate()?;
        lora.check_targets("GPT-2", &TARGETS)?;
        if config.n_head == 0 || !config.n_embd.is_multiple_of(config.n_head) {
            return Err(Error::ModelFile(
                "n_embd is not a multiple of n_head".into(),
            ));
        }
        let mut take = |name: &str| -> Result<Tensor> {
            let t = tensors
                .remove(name)
                .ok_or_else(|| Error::ModelFile(format!("GPT-2 weights have no {name:?}")))?;
            Ok(t.to_dtype(dtype)?)
        };
        let mut rng = Rng::new(lora.seed);
        let mut blocks = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let ln_1 = Norm::take(&mut take, &format!("h.{i}.ln_1"))?;
            let ln_2 = Norm::take(&mut take, &format!("h.{i}.ln_2"))?;
            let mut frozen = Vec::with_capacity(TARGETS.len());
            let mut biases = Vec::with_capacity(TARGETS.len());
            for (target, name) in MATRICES {
                let w = take(&format!("h.{i}.{name}.weight"))?;
                frozen.push((target, FrozenLinear::new(w)?));
                biases.push(take(&format!("h.{i}.{name}.bias"))?);
            }
            blocks.push(Block {
                ln_1,
                ln_2,
                matrices: AdaptedMatrices::new(frozen, lora, &mut rng, dtype)?,
                biases,
            });
        }
        let wte = take("wte.weight")?;
        Ok(Self {
            head: FrozenLinear::new(wte.clone())?,
            wte,
            wpe: take("wpe.weight")?,
            ln_f: Norm::take(&mut take, "ln_f")?,
            blocks,
            config,
            lora: lora.clone(),
            dtype,
        })
    }

    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// Logits for every position of `ids`: (n, vocab).
    pub fn forward(&self, ids: &[u32]) -> Result<Tensor> {
        self.head.forward(&self.hidden(ids)?)
    }

    /// The final normalized hidden states of every position of `ids`: (n, n_embd).
    fn hidden(&self, ids: &[u32]) -> Result<Tensor> {
        let c = &self.config;
        let n = ids.len();
        if n == 0 || n > c.n_positions {
            return Err(Error::InvalidArgument(format!(
                "{n} tokens; GPT-2's context takes 1 to {}",
                c.n_positions
            )));
        }
        let (width, heads) = (c.n_embd, c.n_head);
        let d = width / heads;
        let ln = |x: &Tensor, norm: &Norm| norm.forward(x, c.layer_norm_epsilon);
        let ids = Tensor::new(ids, &Device::Cpu)?;
        let mut x = (self.wte.index_select(&ids, 0)? + self.wpe.narrow(0, 0, n)?)?;
        let mask = causal_mask(n, self.dtype)?;
        // (n, width) → (1, heads, n, d).
        let split = |y: Tensor| -> Result<Tensor> {
            Ok(y.reshape((1, n, heads, d))?.transpose(1, 2)?.contiguous()?)
        };
        for block in &self.blocks {
            // Rows of [q | k | v], each `width` wide.
            let qkv = block.linear(&ln(&x, &block.ln_1)?, Target::Qkv)?;
            let q = split(qkv.narrow(1, 0, width)?)?;
            let k = split(qkv.narrow(1, width, width)?)?;
            let v = split(qkv.narrow(1, 2 * width, width)?)?;
            let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?.broadcast_add(&mask)?;
            let y = softmax(&scores, D::Minus1)?
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((n, width))?;
            x = (x + block.linear(&y, Target::O)?)?;
            let up = block.linear(&ln(&x, &block.ln_2)?, Target::Up)?;
            x = (x + block.linear(&gelu(&up)?, Target::Down)?)?;
        }
        ln(&x, &self.ln_f)
    }
}

impl Trainable for TrainableGpt2 {
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

/// GPT-2's tanh approximation of GELU, `0.5 x (1 + tanh(√(2/π) x (1 + 0.044715 x²)))`, the
/// formula of candle's `gelu` (which the inference path uses), from ops with exact backward
/// rules: candle's fused op has one, but with six-digit constants (0.797885 for √(2/π)),
/// which moved f64 gradients by 3e-7 relative to torch's (tests/lora_reference.rs; 3e-15
/// with this).
fn gelu(x: &Tensor) -> Result<Tensor> {
    let cubic = (x * x.sqr()?.affine(0.044715, 1.0)?)?;
    let inner = (cubic * (2.0 / std::f64::consts::PI).sqrt())?;
    Ok(((x * 0.5)? * (inner.tanh()? + 1.0)?)?)
}
