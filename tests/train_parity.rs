//! The trainable llama (frozen f32 weights dequantized from the GGUF, differentiable ops,
//! adapters starting at B = 0) computes what the inference llama computes on SmolLM2: its
//! logits at every position of a chat prompt point the same way (cosine) and pick the same
//! token wherever the inference path is not at a near-tie. The two differ by the inference
//! path's 8-bit activations, so they are compared within that, not bit for bit.

mod common;

use candle_core::{Device, Tensor};
use marquee::generate::Llama;
use marquee::train::{LoraConfig, TrainableLlama};
use marquee::weights::GgufTensors;

#[test]
fn the_trainable_llama_computes_what_the_inference_llama_computes() {
    let bytes = common::asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let trainable = TrainableLlama::from_gguf(&bytes, &LoraConfig::default()).expect("loads");
    let mut gguf = GgufTensors::read(&bytes).expect("reads");
    let tokenizer = marquee::generate::tokenizer_from_gguf(gguf.metadata()).expect("tokenizer");
    let mut inference = Llama::new(&mut gguf).expect("loads");
    let prompt = "<|im_start|>user\nWrite a tagline for a film about a lighthouse keeper.<|im_end|>\n<|im_start|>assistant\n";
    let ids = tokenizer
        .encode(prompt, false)
        .expect("encodes")
        .get_ids()
        .to_vec();
    let all = trainable.forward(&ids).expect("forward");
    let (mut compared, mut worst) = (0, 1.0f64);
    for end in [ids.len() / 2, ids.len() * 3 / 4, ids.len()] {
        let input = Tensor::new(&ids[..end], &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .expect("ids");
        let want: Vec<f32> = inference
            .forward(&input, 0)
            .and_then(|l| Ok(l.flatten_all()?.to_vec1()?))
            .expect("inference");
        let got: Vec<f32> = all.get(end - 1).and_then(|r| r.to_vec1()).expect("row");
        let dot: f64 = got
            .iter()
            .zip(&want)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum();
        let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let cosine = dot / (norm(&got) * norm(&want));
        worst = worst.min(cosine);
        let mut order: Vec<usize> = (0..want.len()).collect();
        order.sort_by(|&a, &b| want[b].total_cmp(&want[a]));
        let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]));
        if want[order[0]] - want[order[1]] > 1.0 {
            assert_eq!(argmax(&got), Some(order[0]), "position {end}");
            compared += 1;
        }
    }
    println!("worst cosine {worst:.5}; {compared} confident choices compared");
    assert!(worst > 0.99, "cosine {worst}");
}

fn last_logits(model: &mut Llama, ids: &[u32]) -> Vec<f32> {
    let input = Tensor::new(ids, &Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .expect("ids");
    model
        .forward(&input, 0)
        .and_then(|l| Ok(l.flatten_all()?.to_vec1()?))
        .expect("inference")
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(a, b)| *a as f64 * *b as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// An adapter file written by the trainer and read by the inference side (natively here,
/// the same code in wasm) changes the inference llama as it changes the trainable one: the
/// adapted models agree far more closely than either agrees with the base model, kept apart
/// and merged into the weights alike. Measured (2-core EPYC, AVX2): 1 − cosine to the
/// trainable adapted llama's logits is 0.0119 for the base model, 0.00003 with the adapter
/// kept apart and 0.0015 merged (requantizing to Q4_1 rounds part of the update away).
#[test]
fn an_adapter_file_adapts_the_inference_llama_as_it_adapts_the_trainable_one() {
    use marquee::generate::{Adapter, AdapterMode};
    use marquee::train::{file, lora::Init, Target};
    let bytes = common::asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let lora = LoraConfig {
        rank: 4,
        alpha: 8.0,
        targets: vec![Target::Q, Target::V, Target::Up, Target::Down],
        init: Init::Random,
        seed: 3,
    };
    let trainable = TrainableLlama::from_gguf(&bytes, &lora).expect("loads");
    let adapter_bytes = file::save(&trainable, "test", None).expect("saves");
    let adapter = Adapter::read(&adapter_bytes).expect("reads");
    let load = || {
        let mut gguf = GgufTensors::read(&bytes).expect("reads");
        Llama::new(&mut gguf).expect("loads")
    };
    let tokenizer = {
        let gguf = GgufTensors::read(&bytes).expect("reads");
        marquee::generate::tokenizer_from_gguf(gguf.metadata()).expect("tokenizer")
    };
    let prompt = "<|im_start|>user\nWrite a tagline for a film about a lighthouse keeper.<|im_end|>\n<|im_start|>assistant\n";
    let ids = tokenizer
        .encode(prompt, false)
        .expect("encodes")
        .get_ids()
        .to_vec();
    let trained: Vec<f32> = trainable
        .forward(&ids)
        .and_then(|all| Ok(all.get(ids.len() - 1)?.to_vec1()?))
        .expect("forward");
    let mut model = load();
    let base = last_logits(&mut model, &ids);
    model
        .set_adapter(Some(&adapter), AdapterMode::Apart)
        .expect("applies");
    let apart = last_logits(&mut model, &ids);
    model
        .set_adapter(None, AdapterMode::Apart)
        .expect("takes off");
    let off = last_logits(&mut model, &ids);
    let mut merged_model = load();
    merged_model
        .set_adapter(Some(&adapter), AdapterMode::Merged)
        .expect("merges");
    let merged = last_logits(&mut merged_model, &ids);
    let (moved, apart_gap, merged_gap) = (
        1.0 - cosine(&base, &trained),
        1.0 - cosine(&apart, &trained),
        1.0 - cosine(&merged, &trained),
    );
    println!("1 - cosine to the trainable adapted llama: base {moved:.5}, apart {apart_gap:.5}, merged {merged_gap:.5}");
    assert_eq!(
        off, base,
        "taking the adapter off restores the base model exactly"
    );
    assert!(
        moved > 0.005,
        "the adapter hardly changes the model ({moved})"
    );
    assert!(apart_gap < moved / 20.0, "apart: {apart_gap} vs {moved}");
    assert!(merged_gap < moved / 4.0, "merged: {merged_gap} vs {moved}");
}
