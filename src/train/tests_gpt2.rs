//! The trainable GPT-2: on a tiny random config every adapter tensor gets a gradient and the
//! gradients match finite differences in f64; on the tiny transformers-made fixture
//! (tests/fixtures/gpt2_tiny) it computes the inference GPT-2's logits, from safetensors or
//! GGUF; it refuses a llama's targets; the trainer runs on it, and its adapters go through a
//! file.

use std::collections::HashMap;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};

use super::lora::{Init, Rng};
use super::tests::{assert_every_adapter_has_a_gradient, check_finite_differences};
use super::*;
use crate::generate::{Gpt2, Gpt2Config};

const MODEL: &[u8] = include_bytes!("../../tests/fixtures/gpt2_tiny/model.safetensors");
const CONFIG: &[u8] = include_bytes!("../../tests/fixtures/gpt2_tiny/config.json");

fn config() -> Gpt2Config {
    Gpt2Config {
        vocab_size: 48,
        n_positions: 16,
        n_embd: 32,
        n_layer: 2,
        n_head: 4,
        layer_norm_epsilon: 1e-5,
    }
}

const FFN: usize = 40;

/// Random weights as `generate::gpt2` holds them (projections `[out, in]`).
fn weights(seed: u64) -> HashMap<String, Tensor> {
    let c = config();
    let e = c.n_embd;
    let mut rng = Rng::new(seed);
    let mut m = |shape: (usize, usize), bound: f64, offset: f64| {
        (rng.tensor(shape, bound, DType::F32).expect("t") + offset).expect("offset")
    };
    let mut t = HashMap::new();
    t.insert("wte.weight".into(), m((c.vocab_size, e), 1.0, 0.0));
    t.insert("wpe.weight".into(), m((c.n_positions, e), 0.3, 0.0));
    let mut norm = |t: &mut HashMap<String, Tensor>, prefix: String| {
        let w = m((1, e), 0.2, 1.0).flatten_all().expect("1d");
        let b = m((1, e), 0.2, 0.0).flatten_all().expect("1d");
        t.insert(format!("{prefix}.weight"), w);
        t.insert(format!("{prefix}.bias"), b);
    };
    for i in 0..c.n_layer {
        norm(&mut t, format!("h.{i}.ln_1"));
        norm(&mut t, format!("h.{i}.ln_2"));
    }
    norm(&mut t, "ln_f".into());
    for i in 0..c.n_layer {
        for (name, (out, inp)) in [
            ("attn.c_attn", (3 * e, e)),
            ("attn.c_proj", (e, e)),
            ("mlp.c_fc", (FFN, e)),
            ("mlp.c_proj", (e, FFN)),
        ] {
            t.insert(format!("h.{i}.{name}.weight"), m((out, inp), 0.3, 0.0));
            let bias = m((1, out), 0.1, 0.0).flatten_all().expect("1d");
            t.insert(format!("h.{i}.{name}.bias"), bias);
        }
    }
    t
}

fn all_targets(init: Init) -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        targets: gpt2::TARGETS.to_vec(),
        init,
        seed: 11,
    }
}

fn model(lora: &LoraConfig, dtype: DType) -> TrainableGpt2 {
    TrainableGpt2::from_tensors(config(), weights(5), lora, dtype).expect("builds")
}

const IDS: [u32; 10] = [1, 7, 3, 30, 12, 5, 44, 9, 2, 17];
const ANSWER: [bool; 10] = [
    false, false, false, false, false, false, true, true, true, true,
];

#[test]
fn every_gpt2_adapter_tensor_gets_a_gradient_at_the_first_step() {
    let m = model(&all_targets(Init::Random), DType::F32);
    let count = assert_every_adapter_has_a_gradient(&m, &IDS, &ANSWER);
    assert_eq!(count, 2 * 4 * config().n_layer);
}

/// Every adapter tensor of both blocks, three entries each.
#[test]
fn gpt2_gradients_match_finite_differences() {
    let m = model(&all_targets(Init::Random), DType::F64);
    let checked = check_finite_differences(&m, &IDS, &ANSWER, 1);
    assert_eq!(checked, 3 * 2 * 4 * config().n_layer);
}

/// With B = 0 the trainable GPT-2 is the base model: its logits on the fixture's inputs are
/// the inference GPT-2's (same f32 weights) within 2e-6, where the logits lie in ±0.55
/// (measured: 1.2e-7; the two round differently: the inference path prescales queries,
/// attends through its KV cache and runs candle's fused LayerNorm and GELU).
#[test]
fn gpt2_logits_match_the_inference_model() {
    let trainable =
        TrainableGpt2::from_safetensors(MODEL, CONFIG, &all_targets(Init::ZeroB)).expect("loads");
    let mut inference = Gpt2::from_safetensors(MODEL, CONFIG).expect("loads");
    for ids in [
        &[0u32, 1, 2, 3, 4, 5, 6, 7][..],
        &[500, 17, 42, 42, 42, 300, 9, 1, 250, 399, 400, 7],
        &[5],
    ] {
        let ours: Vec<f32> = trainable
            .forward(ids)
            .and_then(|l| Ok(l.flatten_all()?.to_vec1()?))
            .expect("trainable");
        let input = Tensor::new(ids, &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .expect("ids");
        let want: Vec<f32> = inference
            .forward(&input, 0)
            .and_then(|l| Ok(l.flatten_all()?.to_vec1()?))
            .expect("inference");
        let diff = ours
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        println!("{} tokens: max |Δlogit| {diff:.2e}", ids.len());
        assert_eq!(ours.len(), want.len());
        assert!(diff <= 2e-6, "{diff}");
    }
}

/// The GGUF that `gpt2_to_gguf` writes (f32, so lossless) loads to the same model.
#[test]
fn gpt2_from_gguf_is_gpt2_from_safetensors() {
    let lora = all_targets(Init::Random);
    let gguf = crate::generate::gpt2_to_gguf(MODEL, CONFIG, GgmlDType::F32).expect("writes");
    let logits = |m: TrainableGpt2| -> Vec<f32> {
        m.forward(&IDS)
            .and_then(|l| Ok(l.flatten_all()?.to_vec1()?))
            .expect("logits")
    };
    assert_eq!(
        logits(TrainableGpt2::from_gguf(&gguf, &lora).expect("gguf")),
        logits(TrainableGpt2::from_safetensors(MODEL, CONFIG, &lora).expect("safetensors"))
    );
}

#[test]
fn gpt2_refuses_targets_it_does_not_have() {
    let lora = LoraConfig {
        targets: vec![Target::Qkv, Target::Q],
        ..all_targets(Init::ZeroB)
    };
    let err = TrainableGpt2::from_tensors(config(), weights(5), &lora, DType::F32)
        .err()
        .expect("GPT-2 has no q");
    assert!(err.to_string().contains("no q matrix (attn_q)"), "{err}");
}

#[test]
fn the_trainer_learns_on_gpt2_and_its_adapters_round_trip_through_a_file() {
    let m = model(&all_targets(Init::ZeroB), DType::F32);
    let schedule = Schedule {
        peak: 1e-2,
        warmup: 2,
        total: 10,
    };
    let mut trainer = Trainer::new(&m, schedule, 0.01, 1.0).expect("trainer");
    let losses: Vec<f64> = (0..10)
        .map(|_| trainer.step(&m, &IDS, &ANSWER).expect("step").loss)
        .collect();
    assert!(losses[9] < losses[0] * 0.7, "{losses:?}");

    let read = file::read(&file::save(&m, "tiny-gpt2", None).expect("saves")).expect("reads");
    let fresh = model(&all_targets(Init::ZeroB), DType::F32);
    fresh.set_adapters(&read.tensors).expect("sets");
    let logits = |m: &TrainableGpt2| -> Vec<f32> {
        m.forward(&IDS)
            .and_then(|l| Ok(l.flatten_all()?.to_vec1()?))
            .expect("logits")
    };
    assert_eq!(logits(&fresh), logits(&m));
}
