//! What the trainable models (llama, GPT-2) share: the [`Trainable`] interface the trainer and
//! adapter files use, a block's frozen matrices with their adapters, the causal mask, and
//! the answer-only loss.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};

use super::frozen::FrozenLinear;
use super::lora::{Adapter, LoraConfig, Rng, Target};
use crate::error::{Error, Result};

/// A model with LoRA adapters, as the trainer ([`super::Trainer`]) and adapter files
/// ([`super::file`]) see it.
pub trait Trainable {
    /// The adapters' configuration.
    fn lora(&self) -> &LoraConfig;

    /// The trained tensors with their names (`blk.{i}.{matrix}.lora_a` / `lora_b`), block
    /// by block, in the model's matrix order, `A` before `B`.
    fn named_adapters(&self) -> Vec<(String, Var)>;

    /// Mean cross-entropy of predicting each next token of `ids` at the positions where
    /// `answer[i]` is true (`ids[i]` is an answer token): the prompt is read, not learned.
    fn loss(&self, ids: &[u32], answer: &[bool]) -> Result<Tensor>;

    /// Every trained tensor, in the order of [`Trainable::named_adapters`].
    fn adapter_vars(&self) -> Vec<Var> {
        self.named_adapters().into_iter().map(|(_, v)| v).collect()
    }

    /// Sets every adapter from `tensors` (names as [`Trainable::named_adapters`]); a
    /// missing tensor or another shape is an error naming it, and then nothing is changed.
    fn set_adapters(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
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
            values.push(t.to_dtype(var.dtype())?);
        }
        for ((_, var), value) in named.iter().zip(values) {
            var.set(&value)?;
        }
        Ok(())
    }
}

/// One block's frozen matrices, and adapters on those the configuration targets.
pub(super) struct AdaptedMatrices {
    /// In the model's order, which is also the order adapters are created and named in.
    frozen: Vec<(Target, FrozenLinear)>,
    adapters: HashMap<Target, Adapter>,
}

impl AdaptedMatrices {
    /// Creates the targeted adapters in the order of `frozen`, drawing from `rng`.
    pub(super) fn new(
        frozen: Vec<(Target, FrozenLinear)>,
        lora: &LoraConfig,
        rng: &mut Rng,
        dtype: DType,
    ) -> Result<Self> {
        let mut adapters = HashMap::new();
        for (target, w) in &frozen {
            if lora.targets.contains(target) {
                let (out, inp) = w.dims();
                adapters.insert(*target, Adapter::new(out, inp, lora, rng, dtype)?);
            }
        }
        Ok(Self { frozen, adapters })
    }

    /// `x Wᵀ`, plus the adapter's update where `target` has one.
    pub(super) fn linear(&self, x: &Tensor, target: Target) -> Result<Tensor> {
        let w = self
            .frozen
            .iter()
            .find_map(|(t, w)| (*t == target).then_some(w))
            .ok_or_else(|| Error::InvalidArgument(format!("the model has no {target} matrix")))?;
        match self.adapters.get(&target) {
            Some(adapter) => adapter.forward(x, w),
            None => w.forward(x),
        }
    }

    /// Appends block `block`'s adapter tensors, named as [`Trainable::named_adapters`] says.
    pub(super) fn push_named(&self, block: usize, out: &mut Vec<(String, Var)>) {
        for (target, _) in &self.frozen {
            if let Some(adapter) = self.adapters.get(target) {
                let matrix = target.matrix();
                out.push((format!("blk.{block}.{matrix}.lora_a"), adapter.a.clone()));
                out.push((format!("blk.{block}.{matrix}.lora_b"), adapter.b.clone()));
            }
        }
    }
}

/// 0 where a position may attend, −∞ after it: (n, n).
pub(super) fn causal_mask(n: usize, dtype: DType) -> Result<Tensor> {
    let values: Vec<f32> = (0..n)
        .flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(values, (n, n), &Device::Cpu)?.to_dtype(dtype)?)
}

/// [`Trainable::loss`] for a model whose final hidden states of `ids` are `hidden` and whose
/// LM head is `head`.
pub(super) fn answer_loss(
    ids: &[u32],
    answer: &[bool],
    hidden: impl FnOnce(&[u32]) -> Result<Tensor>,
    head: &FrozenLinear,
) -> Result<Tensor> {
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
    // Only the answer's rows go through the LM head (49,152 × 576 for SmolLM2): most of a
    // prompt is read, not predicted.
    let rows = Tensor::new(rows.as_slice(), &Device::Cpu)?;
    let targets = Tensor::new(targets.as_slice(), &Device::Cpu)?;
    let picked = head.forward(&hidden(ids)?.index_select(&rows, 0)?)?;
    Ok(candle_nn::loss::cross_entropy(&picked, &targets)?)
}
