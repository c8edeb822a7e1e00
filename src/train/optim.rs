//! One training step: loss, gradients, global-norm clipping, the scheduled learning rate and
//! AdamW (torch's formula, decoupled weight decay) with state that a checkpoint keeps.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::trainable::Trainable;
use crate::error::{Error, Result};

/// AdamW as torch (and candle) define it, with decoupled weight decay, whose moments and step
/// count can be saved and restored, so a resumed run continues exactly where it stopped
/// (candle's keeps them private).
pub struct AdamW {
    vars: Vec<Var>,
    /// First and second moments, one pair per var.
    moments: Vec<(Tensor, Tensor)>,
    steps: u64,
    pub learning_rate: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamW {
    pub fn new(vars: Vec<Var>, learning_rate: f64, weight_decay: f64) -> Result<Self> {
        let moments = vars
            .iter()
            .map(|v| Ok((v.as_tensor().zeros_like()?, v.as_tensor().zeros_like()?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            vars,
            moments,
            steps: 0,
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        })
    }

    /// One update from `grads`; a var without a gradient keeps its value and moments.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        let (lr, b1, b2) = (self.learning_rate, self.beta1, self.beta2);
        let scale_m = 1.0 / (1.0 - b1.powi(self.steps as i32));
        let scale_v = 1.0 / (1.0 - b2.powi(self.steps as i32));
        for (var, (m, v)) in self.vars.iter().zip(&mut self.moments) {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let next_m = ((&*m * b1)? + (g * (1.0 - b1))?)?;
            let next_v = ((&*v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let m_hat = (&next_m * scale_m)?;
            let v_hat = (&next_v * scale_v)?;
            let decayed = (var.as_tensor() * (1.0 - lr * self.weight_decay))?;
            let update = (m_hat / (v_hat.sqrt()? + self.eps)?)?;
            var.set(&(decayed - (update * lr)?)?)?;
            (*m, *v) = (next_m, next_v);
        }
        Ok(())
    }

    /// Updates taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The moments, in the order of the vars.
    pub fn moments(&self) -> &[(Tensor, Tensor)] {
        &self.moments
    }

    /// Puts saved moments and step count back (from [`AdamW::moments`] and [`AdamW::steps`]).
    pub fn restore(&mut self, moments: Vec<(Tensor, Tensor)>, steps: u64) -> Result<()> {
        if moments.len() != self.vars.len()
            || moments
                .iter()
                .zip(&self.vars)
                .any(|((m, v), var)| m.shape() != var.shape() || v.shape() != var.shape())
        {
            return Err(Error::InvalidArgument(
                "the saved optimizer state is for other adapters".into(),
            ));
        }
        self.moments = moments;
        self.steps = steps;
        Ok(())
    }
}

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
        model: &dyn Trainable,
        schedule: Schedule,
        weight_decay: f64,
        max_grad_norm: f64,
    ) -> Result<Self> {
        let vars = model.adapter_vars();
        let optimizer = AdamW::new(vars.clone(), schedule.rate(0), weight_decay)?;
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
        model: &dyn Trainable,
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
        self.optimizer.learning_rate = learning_rate;
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

    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }

    /// Continues from a checkpoint: the optimizer's moments and the step count (the
    /// schedule goes on from there).
    pub fn restore(&mut self, moments: Vec<(Tensor, Tensor)>, steps: usize) -> Result<()> {
        self.optimizer.restore(moments, steps as u64)?;
        self.step = steps;
        Ok(())
    }
}
