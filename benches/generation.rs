//! Native generation speed and memory, printed as a markdown table:
//!
//!     cargo bench --bench generation                       # all models, candle's threads
//!     RAYON_NUM_THREADS=1 cargo bench --bench generation   # single-threaded
//!
//! Each model runs in its own process (this binary re-runs itself), so the memory reported
//! is that model's alone: resident memory after generating, and the peak, which includes
//! preparing the file (re-storing SmolLM2, creating GPT-2's random checkpoint). The llama.cpp anchor on the same GGUF and prompt:
//! scripts/reference/bench_llama_cpp.py.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Instant;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use marquee::generate::{gpt2_to_gguf, requantize_gguf, Generator, Gpt2, SamplingParams};

// index-builder's allocator and its settings, so that the figures are the CLI's.
#[path = "../index-builder/src/allocator.rs"]
mod allocator;

/// ~300 tokens, the size of a RAG prompt with four examples.
const PROMPT: &str = "You write movie taglines. Given a movie's overview, reply with one short, \
catchy tagline. Overview: In the 22nd century, a paraplegic Marine is dispatched to the moon \
Pandora on a unique mission, but becomes torn between following orders and protecting an alien \
civilization. Tagline: Enter the World of Pandora. Overview: Led by Woody, Andy's toys live \
happily in his room until Andy's birthday brings Buzz Lightyear onto the scene. Afraid of losing \
his place in Andy's heart, Woody plots against Buzz. But when circumstances separate Buzz and \
Woody from their owner, the duo eventually learns to put aside their differences. Tagline: The \
adventure takes off! Overview: When an unexpected enemy emerges and threatens global safety and \
security, Nick Fury, director of the international peacekeeping agency known as S.H.I.E.L.D., \
finds himself in need of a team to pull the world back from the brink of disaster. Tagline: \
Some assembly required. Overview: A thief who steals corporate secrets through the use of \
dream-sharing technology is given the inverse task of planting an idea into the mind of a C.E.O. \
Tagline: Your mind is the scene of the crime. Overview: A heist crew hides inside a dream while \
a storm of memories closes in on the last safe room of the city. Tagline:";
const DECODE_TOKENS: usize = 64;

const CONFIGS: [&str; 5] = [
    "smollm2-q4_1",
    "smollm2-q8_0",
    "smollm2-q4_0",
    "gpt2-124m-q8_0",
    "gpt2-124m-q4_0",
];

/// Resident memory of this process from /proc (Linux), in MB: `VmRSS` (now) or `VmHWM` (peak).
fn rss_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A GPT-2-124M-shaped checkpoint with random weights (real GPT-2 weights cannot be
/// fetched here; speed does not depend on the values).
fn random_gpt2(dtype: GgmlDType) -> Vec<u8> {
    let (vocab, positions, width, layers) = (50257, 1024, 768, 12);
    let device = Device::Cpu;
    let randn = |shape: &[usize]| {
        Tensor::randn(0f32, 0.02, shape, &device)
            .and_then(|t| t.to_dtype(DType::F32))
            .expect("randn")
    };
    let mut t: HashMap<String, Tensor> = HashMap::new();
    t.insert("wte.weight".into(), randn(&[vocab, width]));
    t.insert("wpe.weight".into(), randn(&[positions, width]));
    t.insert("ln_f.weight".into(), randn(&[width]));
    t.insert("ln_f.bias".into(), randn(&[width]));
    for i in 0..layers {
        let p = format!("h.{i}");
        for (name, shape) in [
            ("ln_1.weight", vec![width]),
            ("ln_1.bias", vec![width]),
            ("ln_2.weight", vec![width]),
            ("ln_2.bias", vec![width]),
            ("attn.c_attn.weight", vec![width, 3 * width]),
            ("attn.c_attn.bias", vec![3 * width]),
            ("attn.c_proj.weight", vec![width, width]),
            ("attn.c_proj.bias", vec![width]),
            ("mlp.c_fc.weight", vec![width, 4 * width]),
            ("mlp.c_fc.bias", vec![4 * width]),
            ("mlp.c_proj.weight", vec![4 * width, width]),
            ("mlp.c_proj.bias", vec![width]),
        ] {
            t.insert(format!("{p}.{name}"), randn(&shape));
        }
    }
    let path = std::env::temp_dir().join(format!(
        "marquee-gpt2-124m-{}.safetensors",
        std::process::id()
    ));
    candle_core::safetensors::save(&t, &path).expect("save");
    let bytes = std::fs::read(&path).expect("read");
    std::fs::remove_file(&path).ok();
    let config = format!(
        r#"{{"vocab_size":{vocab},"n_positions":{positions},"n_embd":{width},"n_layer":{layers},"n_head":12}}"#
    );
    gpt2_to_gguf(&bytes, config.as_bytes(), dtype).expect("gguf")
}

fn generator(config: &str) -> (Generator, usize) {
    let smollm2 = || common::asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let restored = |dtype| requantize_gguf(&smollm2(), GgmlDType::Q4_1, dtype).expect("re-store");
    let gpt2 = |dtype| {
        let gguf = random_gpt2(dtype);
        let tokenizer = marquee::generate::gpt2_tokenizer(
            &common::asset("gpt2/encoder.json"),
            &common::asset("gpt2/vocab.bpe"),
        )
        .expect("tokenizer");
        (
            Generator::gpt2(Gpt2::from_gguf(&gguf).expect("gpt2"), tokenizer),
            gguf.len(),
        )
    };
    let llama = |bytes: Vec<u8>| {
        (
            Generator::from_llama_gguf(&bytes).expect("loads"),
            bytes.len(),
        )
    };
    match config {
        "smollm2-q4_1" => llama(smollm2()),
        "smollm2-q8_0" => llama(restored(GgmlDType::Q8_0)),
        "smollm2-q4_0" => llama(restored(GgmlDType::Q4_0)),
        "gpt2-124m-q8_0" => gpt2(GgmlDType::Q8_0),
        "gpt2-124m-q4_0" => gpt2(GgmlDType::Q4_0),
        other => panic!("unknown model {other}"),
    }
}

/// Measures one model (in this process) and prints its table row.
fn measure(config: &str) {
    let (mut g, file_bytes) = generator(config);
    let prompt = g.encode(PROMPT).expect("encodes");
    let params = SamplingParams {
        max_tokens: DECODE_TOKENS,
        ..SamplingParams::greedy(DECODE_TOKENS)
    };
    let mut best = (0.0f64, 0.0f64);
    for _ in 0..3 {
        // Each run prefills the whole prompt: the generator would otherwise reuse the last
        // run's cached tokens.
        g.forget_cache();
        let started = Instant::now();
        let mut first: Option<Instant> = None;
        let mut steps = 0usize;
        // Every token is decoded and streamed; counting callbacks would miss tokens that end
        // mid-character, so the rate uses the returned token count.
        let out = g
            .generate(&prompt, &params, |_| {
                first.get_or_insert_with(Instant::now);
                steps += 1;
                ControlFlow::Continue(())
            })
            .expect("generates");
        let total = started.elapsed().as_secs_f64();
        let prefill = first.map_or(total, |t| (t - started).as_secs_f64());
        let prefill_rate = (prompt.len() - out.cached_prompt_tokens) as f64 / prefill;
        let decode_rate = out.tokens.len().saturating_sub(1) as f64 / (total - prefill).max(1e-9);
        best = (best.0.max(prefill_rate), best.1.max(decode_rate));
    }
    println!(
        "| {config} | {:.0} MB | {} | {:.0} | {:.1} | {:.0} MB | {:.0} MB |",
        file_bytes as f64 / 1e6,
        prompt.len(),
        best.0,
        best.1,
        rss_mb("VmRSS:").unwrap_or(f64::NAN),
        rss_mb("VmHWM:").unwrap_or(f64::NAN)
    );
}

fn main() {
    allocator::keep_freed_memory();
    if let Ok(config) = std::env::var("MARQUEE_BENCH_MODEL") {
        measure(&config);
        return;
    }
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    println!("threads: {threads}; best of 3 runs; greedy, {DECODE_TOKENS} tokens decoded\n");
    println!("| model | file | prompt tokens | prefill tok/s | decode tok/s | RSS after generating | peak RSS, incl. preparing the file |");
    println!("|---|---|---|---|---|---|---|");
    let exe = std::env::current_exe().expect("own path");
    for config in CONFIGS {
        let status = std::process::Command::new(&exe)
            .env("MARQUEE_BENCH_MODEL", config)
            .status()
            .expect("runs itself");
        assert!(status.success(), "{config} failed");
    }
}
