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
    let metadata = gguf.metadata().clone();
    let tokenizer = marquee::generate::tokenizer_from_gguf(&metadata).expect("tokenizer");
    let mut inference = Llama::new(&mut gguf, &metadata).expect("loads");
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
