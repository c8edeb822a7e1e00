//! Adapter files: safetensors with each adapter tensor under its name
//! (`blk.{i}.attn_q.lora_a` style, see `Trainable::named_adapters`) and metadata
//! saying what they are: the format and its version, the LoRA configuration, and the base
//! model they were trained on. A checkpoint is the same file with the optimizer's moments
//! (`{name}.adam_m`, `{name}.adam_v`) and its step count, so a run resumes exactly.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use super::lora::LoraConfig;
use super::optim::Trainer;
use super::trainable::Trainable;
use crate::error::{Error, Result};

pub use crate::generate::adapter::{FORMAT, VERSION};

/// A checkpoint's optimizer state: each adapter tensor's AdamW moments, and the step count.
pub struct OptimizerState {
    pub moments: HashMap<String, (Tensor, Tensor)>,
    pub step: usize,
}

/// An adapter (or checkpoint) as read from its bytes.
pub struct AdapterFile {
    pub lora: LoraConfig,
    /// What the adapters were trained on (the base model's name and file hash).
    pub base_model: String,
    /// The adapter tensors, by name.
    pub tensors: HashMap<String, Tensor>,
    /// A checkpoint's optimizer state.
    pub optimizer: Option<OptimizerState>,
}

fn bad(message: impl std::fmt::Display) -> Error {
    Error::ModelFile(format!("adapter file: {message}"))
}

/// The model's adapters as a file; with `trainer`, a checkpoint that can resume it.
pub fn save(model: &dyn Trainable, base_model: &str, trainer: Option<&Trainer>) -> Result<Vec<u8>> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let named = model.named_adapters();
    for (name, var) in &named {
        tensors.push((name.clone(), var.as_tensor().clone()));
    }
    let mut metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("version".to_string(), VERSION.to_string()),
        (
            "lora".to_string(),
            serde_json::to_string(model.lora()).map_err(bad)?,
        ),
        ("base_model".to_string(), base_model.to_string()),
    ]);
    if let Some(trainer) = trainer {
        for ((name, _), (m, v)) in named.iter().zip(trainer.optimizer().moments()) {
            tensors.push((format!("{name}.adam_m"), m.clone()));
            tensors.push((format!("{name}.adam_v"), v.clone()));
        }
        metadata.insert("step".to_string(), trainer.steps().to_string());
    }
    safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
        .map_err(bad)
}

/// Reads an adapter file, checking what it says it is.
pub fn read(bytes: &[u8]) -> Result<AdapterFile> {
    let header = crate::generate::adapter::read_header(bytes)?;
    let metadata = header.metadata;
    let field = |key: &str| {
        metadata
            .get(key)
            .ok_or_else(|| bad(format!("no {key:?} in its metadata")))
    };
    let lora: LoraConfig = serde_json::from_str(field("lora")?).map_err(bad)?;
    let mut all = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
        .map_err(|e| bad(format!("its tensors cannot be read ({e})")))?;
    let optimizer = match metadata.get("step") {
        None => None,
        Some(step) => {
            let step: usize = step.parse().map_err(bad)?;
            let names: Vec<String> = all
                .keys()
                .filter_map(|k| k.strip_suffix(".adam_m").map(str::to_string))
                .collect();
            let mut moments = HashMap::new();
            for name in names {
                let m = all.remove(&format!("{name}.adam_m"));
                let v = all.remove(&format!("{name}.adam_v"));
                let (Some(m), Some(v)) = (m, v) else {
                    return Err(bad(format!("the checkpoint lacks a moment of {name:?}")));
                };
                moments.insert(name, (m, v));
            }
            Some(OptimizerState { moments, step })
        }
    };
    Ok(AdapterFile {
        lora,
        base_model: header.base_model,
        tensors: all,
        optimizer,
    })
}

impl AdapterFile {
    /// Puts a checkpoint's adapters into `model` and its optimizer state into `trainer`.
    pub fn resume(&self, model: &dyn Trainable, trainer: &mut Trainer) -> Result<()> {
        let Some(OptimizerState { moments, step }) = &self.optimizer else {
            return Err(bad(
                "it is an adapter, not a checkpoint (no optimizer state)",
            ));
        };
        model.set_adapters(&self.tensors)?;
        let ordered = model
            .named_adapters()
            .iter()
            .map(|(name, _)| {
                moments
                    .get(name)
                    .cloned()
                    .ok_or_else(|| bad(format!("the checkpoint has no moments for {name:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        trainer.restore(ordered, *step)
    }
}
