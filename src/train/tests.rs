//! The trainer on a tiny random llama (2 blocks, 4 query heads sharing 2 KV heads): every
//! adapter tensor gets a gradient, the gradients match finite differences in f64, the loss
//! counts only answer tokens, and a seeded run learns and repeats itself exactly.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::lora::{Init, Rng};
use super::*;
use crate::generate::LlamaConfig;

fn config() -> LlamaConfig {
    LlamaConfig {
        block_count: 2,
        embedding_length: 32,
        head_count: 4,
        head_count_kv: 2,
        head_dim: 8,
        rms_norm_eps: 1e-5,
        rope_freq_base: 10_000.0,
        context_length: 16,
    }
}

const VOCAB: usize = 48;
const FFN: usize = 40;
const ALL: [Target; 7] = [
    Target::Q,
    Target::K,
    Target::V,
    Target::O,
    Target::Gate,
    Target::Up,
    Target::Down,
];

fn weights(seed: u64) -> HashMap<String, Tensor> {
    let c = config();
    let (e, kv) = (c.embedding_length, c.head_count_kv * c.head_dim);
    let mut rng = Rng::new(seed);
    let mut m =
        |shape: (usize, usize), bound: f64| rng.tensor(shape, bound, DType::F32).expect("t");
    let mut t = HashMap::new();
    t.insert("token_embd.weight".into(), m((VOCAB, e), 1.0));
    t.insert(
        "output_norm.weight".into(),
        (m((1, e), 0.2) + 1.0)
            .expect("norm")
            .flatten_all()
            .expect("1d"),
    );
    for i in 0..c.block_count {
        for (name, shape) in [
            ("attn_q", (e, e)),
            ("attn_k", (kv, e)),
            ("attn_v", (kv, e)),
            ("attn_output", (e, e)),
            ("ffn_gate", (FFN, e)),
            ("ffn_up", (FFN, e)),
            ("ffn_down", (e, FFN)),
        ] {
            t.insert(format!("blk.{i}.{name}.weight"), m(shape, 0.3));
        }
        for name in ["attn_norm", "ffn_norm"] {
            let w = (m((1, e), 0.2) + 1.0)
                .expect("norm")
                .flatten_all()
                .expect("1d");
            t.insert(format!("blk.{i}.{name}.weight"), w);
        }
    }
    t
}

fn model(lora: &LoraConfig, dtype: DType) -> TrainableLlama {
    TrainableLlama::from_tensors(config(), weights(3), lora, dtype).expect("builds")
}

fn all_targets(init: Init) -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        targets: ALL.to_vec(),
        init,
        seed: 11,
    }
}

const IDS: [u32; 10] = [1, 7, 3, 30, 12, 5, 44, 9, 2, 17];
/// The last four tokens are the answer.
const ANSWER: [bool; 10] = [
    false, false, false, false, false, false, true, true, true, true,
];

fn abs_sum(t: &Tensor) -> f64 {
    t.abs()
        .and_then(|t| t.sum_all())
        .and_then(|t| t.to_dtype(DType::F64))
        .and_then(|t| t.to_scalar::<f64>())
        .expect("sum")
}

/// Asserts that the loss gives every adapter tensor of `m` a non-zero gradient; returns how
/// many there are.
pub(super) fn assert_every_adapter_has_a_gradient(
    m: &dyn Trainable,
    ids: &[u32],
    answer: &[bool],
) -> usize {
    let grads = m
        .loss(ids, answer)
        .expect("loss")
        .backward()
        .expect("backward");
    let named = m.named_adapters();
    for (name, var) in &named {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name} has no gradient"));
        assert!(abs_sum(g) > 0.0, "{name}'s gradient is zero");
    }
    named.len()
}

#[test]
fn every_adapter_tensor_gets_a_gradient_at_the_first_step() {
    let m = model(&all_targets(Init::Random), DType::F32);
    let count = assert_every_adapter_has_a_gradient(&m, &IDS, &ANSWER);
    assert_eq!(count, 2 * 7 * config().block_count);
}

#[test]
fn zero_b_starts_as_the_base_model_and_trains_b_first() {
    let lora = LoraConfig {
        targets: vec![Target::Q, Target::V],
        ..all_targets(Init::ZeroB)
    };
    let adapted = model(&lora, DType::F32);
    let base = model(
        &LoraConfig {
            targets: vec![Target::Gate],
            init: Init::ZeroB,
            ..lora.clone()
        },
        DType::F32,
    );
    let bits = |t: Tensor| -> Vec<u32> {
        let v = t
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .expect("values");
        v.iter().map(|x| x.to_bits()).collect()
    };
    assert_eq!(
        bits(adapted.forward(&IDS).expect("f")),
        bits(base.forward(&IDS).expect("f"))
    );
    let grads = adapted
        .loss(&IDS, &ANSWER)
        .expect("loss")
        .backward()
        .expect("backward");
    for (name, var) in adapted.named_adapters() {
        let g = abs_sum(grads.get(var.as_tensor()).expect("gradient"));
        if name.ends_with("lora_b") {
            assert!(g > 0.0, "{name}");
        } else {
            assert_eq!(g, 0.0, "{name}: B = 0 gives A no gradient yet");
        }
    }
}

#[test]
fn a_llama_refuses_targets_it_does_not_have() {
    let lora = LoraConfig {
        targets: vec![Target::Q, Target::Qkv],
        ..all_targets(Init::ZeroB)
    };
    let err = TrainableLlama::from_tensors(config(), weights(3), &lora, DType::F32)
        .err()
        .expect("a llama has no qkv");
    assert!(
        err.to_string().contains("no qkv matrix (attn_qkv)"),
        "{err}"
    );
}

/// Central differences in f64 against the analytic gradient, on entries of every kind of
/// adapter tensor.
#[test]
fn gradients_match_finite_differences() {
    let m = model(&all_targets(Init::Random), DType::F64);
    // Every third of the 28 tensors: each matrix kind, A or B.
    let checked = check_finite_differences(&m, &IDS, &ANSWER, 3);
    assert!(checked >= 12, "{checked}");
}

/// Compares the analytic gradient of `m`'s f64 loss with central differences on three
/// entries of every `stride`-th adapter tensor; returns how many entries it checked.
pub(super) fn check_finite_differences(
    m: &dyn Trainable,
    ids: &[u32],
    answer: &[bool],
    stride: usize,
) -> usize {
    let loss = |m: &dyn Trainable| -> f64 {
        m.loss(ids, answer)
            .and_then(|l| Ok(l.to_scalar::<f64>()?))
            .expect("loss")
    };
    let grads = m
        .loss(ids, answer)
        .expect("loss")
        .backward()
        .expect("backward");
    let h = 1e-6;
    let mut checked = 0;
    for (name, var) in m.named_adapters().into_iter().step_by(stride) {
        let original = var
            .as_tensor()
            .flatten_all()
            .and_then(|t| t.to_vec1::<f64>())
            .expect("v");
        let analytic = grads
            .get(var.as_tensor())
            .and_then(|g| g.flatten_all().ok())
            .and_then(|g| g.to_vec1::<f64>().ok())
            .expect("gradient");
        let shape = var.as_tensor().shape().clone();
        for index in [0, original.len() / 2, original.len() - 1] {
            let nudge = |delta: f64| {
                let mut values = original.clone();
                values[index] += delta;
                let t = Tensor::from_vec(values, shape.clone(), &Device::Cpu).expect("t");
                var.set(&t).expect("set");
                loss(m)
            };
            let numeric = (nudge(h) - nudge(-h)) / (2.0 * h);
            nudge(0.0);
            let (a, b) = (analytic[index], numeric);
            assert!(
                (a - b).abs() <= 1e-6 + 1e-5 * b.abs().max(a.abs()),
                "{name}[{index}]: analytic {a}, numeric {b}"
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn the_loss_counts_only_answer_tokens() {
    let m = model(&all_targets(Init::Random), DType::F64);
    let logits = m.forward(&IDS).expect("forward");
    let rows: Vec<Vec<f64>> = logits.to_vec2().expect("rows");
    let mut manual = 0.0;
    let mut count = 0.0;
    for i in 1..IDS.len() {
        if ANSWER[i] {
            let row = &rows[i - 1];
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = row.iter().map(|x| (x - max).exp()).sum::<f64>().ln() + max;
            manual += log_sum - row[IDS[i] as usize];
            count += 1.0;
        }
    }
    let loss: f64 = m
        .loss(&IDS, &ANSWER)
        .and_then(|l| Ok(l.to_scalar::<f64>()?))
        .expect("loss");
    assert!(
        (loss - manual / count).abs() < 1e-12,
        "{loss} vs {}",
        manual / count
    );
    assert!(m.loss(&IDS, &[false; 10]).is_err(), "no answer tokens");
    assert!(m.loss(&IDS, &[true; 3]).is_err(), "flags for other tokens");
}

#[test]
fn a_seeded_run_learns_and_repeats_itself() {
    let run = || {
        let m = model(&all_targets(Init::ZeroB), DType::F32);
        let schedule = Schedule {
            peak: 1e-2,
            warmup: 2,
            total: 12,
        };
        let mut trainer = Trainer::new(&m, schedule, 0.01, 1.0).expect("trainer");
        let reports: Vec<StepReport> = (0..12)
            .map(|_| trainer.step(&m, &IDS, &ANSWER).expect("step"))
            .collect();
        let adapters: Vec<Vec<f32>> = m
            .adapter_vars()
            .iter()
            .map(|v| {
                v.as_tensor()
                    .flatten_all()
                    .and_then(|t| t.to_vec1())
                    .expect("v")
            })
            .collect();
        (reports, adapters)
    };
    let (reports, adapters) = run();
    let (first, last) = (reports[0].loss, reports[11].loss);
    assert!(last < first * 0.7, "loss {first} → {last}");
    assert_eq!(reports[0].learning_rate, 5e-3, "warm-up");
    assert_eq!(reports[11].learning_rate, 1e-2 * 1.0 / 10.0, "linear decay");
    assert!(reports.iter().all(|r| r.grad_norm.is_finite()));
    let (again, same) = run();
    assert_eq!(adapters, same, "same seed, same adapters");
    assert_eq!(
        reports.iter().map(|r| r.loss).collect::<Vec<_>>(),
        again.iter().map(|r| r.loss).collect::<Vec<_>>()
    );
}

#[test]
fn clipping_scales_the_global_norm() {
    let m = model(&all_targets(Init::Random), DType::F32);
    let vars = m.adapter_vars();
    let mut grads = m
        .loss(&IDS, &ANSWER)
        .expect("loss")
        .backward()
        .expect("backward");
    let before = clip_grad_norm(&mut grads, &vars, f64::INFINITY).expect("norm");
    assert!(before > 0.0);
    let limit = before / 4.0;
    assert_eq!(
        clip_grad_norm(&mut grads, &vars, limit).expect("clip"),
        before
    );
    let after = clip_grad_norm(&mut grads, &vars, f64::INFINITY).expect("norm");
    assert!((after - limit).abs() < 1e-3 * limit, "{after} vs {limit}");
}

fn adapter_bits(m: &TrainableLlama) -> Vec<Vec<u32>> {
    m.adapter_vars()
        .iter()
        .map(|v| {
            let values: Vec<f32> = v
                .as_tensor()
                .flatten_all()
                .and_then(|t| t.to_vec1())
                .expect("v");
            values.iter().map(|x| x.to_bits()).collect()
        })
        .collect()
}

fn schedule() -> Schedule {
    Schedule {
        peak: 1e-2,
        warmup: 2,
        total: 6,
    }
}

#[test]
fn adapters_round_trip_through_a_file() {
    let m = model(&all_targets(Init::Random), DType::F32);
    let bytes = file::save(&m, "tiny-llama", None).expect("saves");
    let read = file::read(&bytes).expect("reads");
    assert_eq!(read.lora, *m.lora());
    assert_eq!(read.base_model, "tiny-llama");
    assert!(read.optimizer.is_none());
    let other = model(
        &LoraConfig {
            seed: 99,
            ..all_targets(Init::Random)
        },
        DType::F32,
    );
    assert_ne!(adapter_bits(&other), adapter_bits(&m));
    other.set_adapters(&read.tensors).expect("sets");
    assert_eq!(adapter_bits(&other), adapter_bits(&m));
}

/// Six steps in one go, or three, a checkpoint, a new process's model and trainer, and
/// three more: the same adapters, bit for bit.
#[test]
fn a_checkpoint_resumes_exactly() {
    let lora = all_targets(Init::ZeroB);
    let straight = model(&lora, DType::F32);
    let mut trainer = Trainer::new(&straight, schedule(), 0.01, 1.0).expect("trainer");
    let losses: Vec<f64> = (0..6)
        .map(|_| trainer.step(&straight, &IDS, &ANSWER).expect("step").loss)
        .collect();

    let first = model(&lora, DType::F32);
    let mut trainer = Trainer::new(&first, schedule(), 0.01, 1.0).expect("trainer");
    for _ in 0..3 {
        trainer.step(&first, &IDS, &ANSWER).expect("step");
    }
    let checkpoint = file::read(&file::save(&first, "tiny-llama", Some(&trainer)).expect("saves"))
        .expect("reads");
    let resumed = model(&checkpoint.lora, DType::F32);
    let mut trainer = Trainer::new(&resumed, schedule(), 0.01, 1.0).expect("trainer");
    checkpoint.resume(&resumed, &mut trainer).expect("resumes");
    assert_eq!(trainer.steps(), 3);
    let later: Vec<f64> = (0..3)
        .map(|_| trainer.step(&resumed, &IDS, &ANSWER).expect("step").loss)
        .collect();
    assert_eq!(later, losses[3..]);
    assert_eq!(adapter_bits(&resumed), adapter_bits(&straight));
}

#[test]
fn bad_adapter_files_are_refused_with_a_reason() {
    let m = model(&all_targets(Init::Random), DType::F32);
    let bytes = file::save(&m, "tiny-llama", None).expect("saves");
    let err = |bytes: &[u8]| {
        file::read(bytes)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(err(b"not an adapter").contains("not a safetensors file"));
    assert!(err(&bytes[..bytes.len() / 2]).contains("adapter file"));
    // Another rank: the shapes do not fit, and the error names the tensor.
    let small = model(
        &LoraConfig {
            rank: 2,
            ..all_targets(Init::Random)
        },
        DType::F32,
    );
    let read = file::read(&file::save(&small, "tiny-llama", None).expect("saves")).expect("reads");
    let message = m
        .set_adapters(&read.tensors)
        .expect_err("refused")
        .to_string();
    assert!(
        message.contains("lora_a") && message.contains("rank"),
        "{message}"
    );
    // Fewer targets: the missing tensor is named.
    let fewer = model(
        &LoraConfig {
            targets: vec![Target::Q],
            ..all_targets(Init::Random)
        },
        DType::F32,
    );
    let read = file::read(&file::save(&fewer, "tiny-llama", None).expect("saves")).expect("reads");
    let message = m
        .set_adapters(&read.tensors)
        .expect_err("refused")
        .to_string();
    assert!(message.contains("attn_k"), "{message}");
    // An adapter is not a checkpoint.
    let read = file::read(&bytes).expect("reads");
    let mut trainer = Trainer::new(&m, schedule(), 0.0, 1.0).expect("trainer");
    assert!(read.resume(&m, &mut trainer).is_err());
}
