//! GPT-2 on candle: learned position embeddings, pre-LayerNorm blocks, tanh-GELU, and the
//! LM head tied to the token embeddings. One implementation over `kernels::Matmul` runs both Hugging
//! Face's f32 safetensors and the q8_0 / q4_0 GGUF that `to_gguf` writes.
//!
//! Hugging Face stores GPT-2's projections as `Conv1D`, i.e. `[in, out]`; they are transposed
//! to `[out, in]` on load from safetensors and stored that way in our GGUF, so that
//! quantization blocks run along the input dimension as the matmul kernels expect.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::LayerNorm;
use serde::Deserialize;

use super::attention::{KvCache, SavedRows};
use crate::error::{Error, Result};
use crate::kernels::Matmul;
use crate::weights::Weights;

const ARCH: &str = "gpt2";

/// GPT-2 hyper-parameters; field names follow Hugging Face's config.json.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
}

fn default_eps() -> f64 {
    1e-5
}

impl Gpt2Config {
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let config: Self = serde_json::from_slice(bytes)
            .map_err(|e| Error::ModelFile(format!("GPT-2 config.json: {e}")))?;
        if config.n_head == 0 || !config.n_embd.is_multiple_of(config.n_head) {
            return Err(Error::ModelFile(
                "n_embd is not a multiple of n_head".into(),
            ));
        }
        Ok(config)
    }

    fn to_metadata(&self) -> Vec<(String, Value)> {
        let u = |v: usize| Value::U32(v as u32);
        vec![
            ("general.architecture".into(), Value::String(ARCH.into())),
            ("gpt2.vocab_size".into(), u(self.vocab_size)),
            ("gpt2.context_length".into(), u(self.n_positions)),
            ("gpt2.embedding_length".into(), u(self.n_embd)),
            ("gpt2.block_count".into(), u(self.n_layer)),
            ("gpt2.attention.head_count".into(), u(self.n_head)),
            (
                "gpt2.attention.layer_norm_epsilon".into(),
                Value::F32(self.layer_norm_epsilon as f32),
            ),
        ]
    }

    pub(crate) fn from_metadata(md: &HashMap<String, Value>) -> Result<Self> {
        let get = |key: &str| {
            md.get(key)
                .ok_or_else(|| Error::ModelFile(format!("GGUF metadata has no {key:?}")))
        };
        let arch = get("general.architecture")?.to_string()?;
        if arch != ARCH {
            return Err(Error::ModelFile(format!(
                "GGUF architecture is {arch:?}, expected \"gpt2\""
            )));
        }
        let n = |key: &str| -> Result<usize> { Ok(get(key)?.to_u32()? as usize) };
        Ok(Self {
            vocab_size: n("gpt2.vocab_size")?,
            n_positions: n("gpt2.context_length")?,
            n_embd: n("gpt2.embedding_length")?,
            n_layer: n("gpt2.block_count")?,
            n_head: n("gpt2.attention.head_count")?,
            layer_norm_epsilon: get("gpt2.attention.layer_norm_epsilon")?.to_f32()? as f64,
        })
    }
}

/// The `Conv1D` projections of one block, by Hugging Face name.
const PROJECTIONS: [&str; 4] = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"];

/// Hugging Face GPT-2 safetensors → tensors named without the `transformer.` prefix, with
/// every projection transposed to `[out, in]`.
pub(crate) fn canonical_tensors(weights: &Weights) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for name in weights.names() {
        let short = name.strip_prefix("transformer.").unwrap_or(name);
        if short.starts_with("lm_head")
            || short.ends_with(".attn.bias")
            || short.ends_with(".attn.masked_bias")
        {
            continue; // tied to wte / causal-mask buffers of old checkpoints
        }
        let tensor = weights.f32(name)?;
        let is_projection = PROJECTIONS
            .iter()
            .any(|p| short.ends_with(&format!("{p}.weight")));
        let tensor = if is_projection {
            tensor.t()?.contiguous()?
        } else {
            tensor
        };
        out.insert(short.to_string(), tensor);
    }
    Ok(out)
}

/// Writes a GPT-2 GGUF: projections and the token embedding in `dtype`, the rest f32.
pub fn to_gguf(safetensors: &[u8], config_json: &[u8], dtype: GgmlDType) -> Result<Vec<u8>> {
    let config = Gpt2Config::from_json(config_json)?;
    let tensors = canonical_tensors(&Weights::from_safetensors(safetensors)?)?;
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut stored = Vec::with_capacity(names.len());
    for name in names {
        let t = &tensors[name];
        let quantize = t.rank() == 2 && name != "wpe.weight";
        stored.push((
            name.as_str(),
            QTensor::quantize(t, if quantize { dtype } else { GgmlDType::F32 })?,
        ));
    }
    let metadata = config.to_metadata();
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let refs: Vec<(&str, &QTensor)> = stored.iter().map(|(n, t)| (*n, t)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &md, &refs)?;
    Ok(out.into_inner())
}

struct Linear {
    weight: Matmul,
    bias: Tensor,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, k) = x.dims3()?;
        let y = self
            .weight
            .forward(&x.reshape((b * n, k))?)?
            .broadcast_add(&self.bias)?;
        Ok(y.reshape((b, n, ()))?)
    }
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    attn_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
    cache: KvCache,
}

/// GPT-2 with a KV cache: call `forward` with the prompt, then one token at a time.
pub struct Gpt2 {
    wte: Matmul,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    config: Gpt2Config,
}

impl Gpt2 {
    /// From Hugging Face files (model.safetensors, config.json), in f32.
    pub fn from_safetensors(safetensors: &[u8], config_json: &[u8]) -> Result<Self> {
        let config = Gpt2Config::from_json(config_json)?;
        let tensors = canonical_tensors(&Weights::from_safetensors(safetensors)?)?;
        let q = |t: &Tensor| -> Result<Arc<QTensor>> {
            Ok(Arc::new(QTensor::quantize(t, GgmlDType::F32)?))
        };
        let map = tensors
            .iter()
            .map(|(k, t)| Ok((k.clone(), q(t)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        Self::new(&map, config)
    }

    /// From a GGUF written by [`to_gguf`].
    pub fn from_gguf(bytes: &[u8]) -> Result<Self> {
        let (weights, metadata) = Weights::from_gguf_with_metadata(bytes)?;
        let config = Gpt2Config::from_metadata(&metadata)?;
        let map = weights
            .names()
            .map(|n| Ok((n.to_string(), weights.get(n)?.clone())))
            .collect::<Result<HashMap<_, _>>>()?;
        Self::new(&map, config)
    }

    fn new(t: &HashMap<String, Arc<QTensor>>, config: Gpt2Config) -> Result<Self> {
        let get = |name: &str| {
            t.get(name)
                .ok_or_else(|| Error::ModelFile(format!("GPT-2 weights have no {name:?}")))
        };
        let f32 = |name: &str| -> Result<Tensor> { Ok(get(name)?.dequantize(&Device::Cpu)?) };
        let norm = |p: &str| -> Result<LayerNorm> {
            Ok(LayerNorm::new(
                f32(&format!("{p}.weight"))?,
                f32(&format!("{p}.bias"))?,
                config.layer_norm_epsilon,
            ))
        };
        let linear = |p: &str| -> Result<Linear> {
            Ok(Linear {
                weight: crate::kernels::qmatmul(get(&format!("{p}.weight"))?.clone())?,
                bias: f32(&format!("{p}.bias"))?,
            })
        };
        let blocks = (0..config.n_layer)
            .map(|i| {
                let p = format!("h.{i}");
                Ok(Block {
                    ln_1: norm(&format!("{p}.ln_1"))?,
                    c_attn: linear(&format!("{p}.attn.c_attn"))?,
                    attn_proj: linear(&format!("{p}.attn.c_proj"))?,
                    ln_2: norm(&format!("{p}.ln_2"))?,
                    c_fc: linear(&format!("{p}.mlp.c_fc"))?,
                    mlp_proj: linear(&format!("{p}.mlp.c_proj"))?,
                    cache: KvCache::new(
                        config.n_head,
                        config.n_head,
                        config.n_embd / config.n_head,
                        config.n_positions,
                    ),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            wte: crate::kernels::qmatmul(get("wte.weight")?.clone())?,
            wpe: f32("wpe.weight")?,
            blocks,
            ln_f: norm("ln_f")?,
            config,
        })
    }

    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// Keeps the first `len` cached positions.
    pub fn truncate_kv_cache(&mut self, len: usize) -> Result<()> {
        for block in &mut self.blocks {
            block.cache.truncate(len);
        }
        Ok(())
    }

    /// A copy of the first `len` cached positions of every block.
    pub(super) fn save_kv_cache(&self, len: usize) -> Vec<SavedRows> {
        self.blocks.iter().map(|b| b.cache.save(len)).collect()
    }

    /// Holds exactly the positions of `saved` (from [`Gpt2::save_kv_cache`]).
    pub(super) fn restore_kv_cache(&mut self, saved: &[SavedRows]) {
        for (block, saved) in self.blocks.iter_mut().zip(saved) {
            block.cache.restore(saved);
        }
    }

    /// Whether every matrix runs on our kernels (quantized weights), so that a position's
    /// logits do not depend on how the prompt was split; with f32 weights candle's gemm
    /// blocks by row count.
    pub(super) fn is_split_invariant(&self) -> bool {
        self.wte.is_ours()
            && self.blocks.iter().all(|b| {
                [&b.c_attn, &b.attn_proj, &b.c_fc, &b.mlp_proj]
                    .iter()
                    .all(|l| l.weight.is_ours())
            })
    }

    pub fn clear_kv_cache(&mut self) {
        for block in &mut self.blocks {
            block.cache.clear();
        }
    }

    /// Logits for every position of `ids` (a (1, n) u32 tensor) following `position` tokens
    /// already in the cache: (1, n, vocab).
    pub fn forward(&mut self, ids: &Tensor, position: usize) -> Result<Tensor> {
        let (b, n) = ids.dims2()?;
        if position + n > self.config.n_positions {
            return Err(Error::InvalidArgument(format!(
                "{} tokens exceed GPT-2's context of {}",
                position + n,
                self.config.n_positions
            )));
        }
        let cached = self.blocks.first().map_or(0, |block| block.cache.len());
        if b != 1 || n == 0 || (position != 0 && position != cached) {
            return Err(Error::InvalidArgument(format!(
                "{b} × {n} tokens at position {position}, but the cache holds one sequence of \
                 {cached}"
            )));
        }
        if position == 0 {
            self.clear_kv_cache();
        }
        let hidden = self.config.n_embd;
        let mut x = self
            .wte
            .embedding(ids)?
            .broadcast_add(&self.wpe.narrow(0, position, n)?)?;
        for block in &mut self.blocks {
            let h = block.ln_1.forward(&x)?;
            // Rows of [q | k | v], each `hidden` wide.
            let qkv = block.c_attn.forward(&h)?.flatten_all()?.to_vec1::<f32>()?;
            let part = |p: usize| -> Vec<f32> {
                qkv.chunks_exact(3 * hidden)
                    .flat_map(|row| &row[p * hidden..(p + 1) * hidden])
                    .copied()
                    .collect()
            };
            let context = block.cache.attend(&part(0), &part(1), &part(2))?;
            let context = Tensor::from_vec(context, (b, n, hidden), &Device::Cpu)?;
            x = (x + block.attn_proj.forward(&context)?)?;
            let h = block.ln_2.forward(&x)?;
            x = (&x + block.mlp_proj.forward(&block.c_fc.forward(&h)?.gelu()?)?)?;
        }
        let x = self.ln_f.forward(&x)?;
        let (b, n, k) = x.dims3()?;
        let logits = self.wte.forward(&x.reshape((b * n, k))?)?;
        Ok(logits
            .reshape((b, n, self.config.vocab_size))?
            .to_dtype(DType::F32)?)
    }

    /// Logits of the last position only: (vocab,).
    pub fn next_token_logits(&mut self, ids: &Tensor, position: usize) -> Result<Tensor> {
        let logits = self.forward(ids, position)?;
        let n = logits.dim(1)?;
        Ok(logits.get(0)?.get(n - 1)?)
    }
}

/// Beam search swaps each hypothesis's positions in and out of these (`beam/kv.rs`).
impl Gpt2 {
    pub(super) fn kv_caches(&mut self) -> Vec<&mut KvCache> {
        self.blocks.iter_mut().map(|b| &mut b.cache).collect()
    }
}
