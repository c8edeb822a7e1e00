//! One training step: loss, gradients, global-norm clipping, the scheduled learning rate and
//! candle's AdamW (torch's formula, decoupled weight decay).

use candle_core::backprop::GradStore;
use candle_core::Var;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use super::llama::TrainableLlama;
use crate::error::{Error, Result};

/// Linear warm-up from 0 to `peak` over `warmup` steps, then linear decay to 0 at `total`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub peak: f64,
    pub warmup: usize,
    pub total: usize,
}

impl Schedule {
    /// The learning rate of step `step` (0-based).
    pub fn rate(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let left = self.total.saturating_sub(step) as f64;
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        self.peak * (left / span).clamp(0.0, 1.0)
    }
}

/// Scales the gradients of `vars` so that their global L2 norm is at most `max_norm` (as
/// torch's `clip_grad_norm_`); returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let mut total = 0f64;
    for var in vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            total += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
    }
    let norm = total.sqrt();
    if norm.is_finite() && norm > max_norm && max_norm > 0.0 {
        let factor = max_norm / (norm + 1e-6);
        for var in vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (g * factor)?);
            }
        }
    }
    Ok(norm)
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    pub loss: f64,
    /// The gradients' global norm before clipping.
    pub grad_norm: f64,
    pub learning_rate: f64,
}

/// AdamW over a model's adapters with a schedule and clipping.
pub struct Trainer {
    vars: Vec<Var>,
    optimizer: AdamW,
    schedule: Schedule,
    max_grad_norm: f64,
    step: usize,
}

impl Trainer {
    pub fn new(
        model: &TrainableLlama,
        schedule: Schedule,
        weight_decay: f64,
        max_grad_norm: f64,
    ) -> Result<Self> {
        let vars = model.adapter_vars();
        let optimizer = AdamW::new(
            vars.clone(),
            ParamsAdamW {
                lr: schedule.rate(0),
                weight_decay,
                ..ParamsAdamW::default()
            },
        )?;
        Ok(Self {
            vars,
            optimizer,
            schedule,
            max_grad_norm,
            step: 0,
        })
    }

    /// One step on one example (`answer` marks the tokens the loss counts).
    pub fn step(
        &mut self,
        model: &TrainableLlama,
        ids: &[u32],
        answer: &[bool],
    ) -> Result<StepReport> {
        let loss = model.loss(ids, answer)?;
        let value = loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        if !value.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "the loss is {value} at step {}: lower the learning rate",
                self.step
            )));
        }
        let mut grads = loss.backward()?;
        let grad_norm = clip_grad_norm(&mut grads, &self.vars, self.max_grad_norm)?;
        let learning_rate = self.schedule.rate(self.step);
        self.optimizer.set_learning_rate(learning_rate);
        self.optimizer.step(&grads)?;
        self.step += 1;
        Ok(StepReport {
            loss: value,
            grad_norm,
            learning_rate,
        })
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.step
    }
}
