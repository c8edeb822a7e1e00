//! Query-embedding latency in a Chromium worker, as the page runs it, int8 beside the
//! dequantized f32 model, by query length, and the share of it spent in MiniLM's matmuls.
//! A benchmark, not a test (scripts/test does not run it); it prints a table:
//!
//!     CHROMEDRIVER=$(command -v chromedriver) cargo test --release \
//!         --target wasm32-unknown-unknown -p marquee-web --features real-data --test embed_bench \
//!         -- --nocapture
#![cfg(all(target_arch = "wasm32", feature = "real-data"))]

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Module, Tensor};
use marquee::embed::{Embedder, Precision};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

const EMBEDDER: &[u8] = include_bytes!(concat!(
    env!("MARQUEE_CACHE"),
    "/bundle/minilm-l6-q8_0.gguf"
));
const TOKENIZER: &[u8] = include_bytes!(concat!(env!("MARQUEE_CACHE"), "/bundle/tokenizer.json"));

const QUERIES: [&str; 4] = [
    "heist",
    "A heist crew hides inside a dream to steal a secret from a billionaire's mind.",
    "A small-town sheriff discovers that the new neighbours are aliens hiding from their own government.",
    "A small-town sheriff discovers that the new neighbours are aliens hiding from their own \
     government, and must decide whether to protect them when soldiers arrive.",
];

fn now_ms() -> f64 {
    js_sys::global()
        .unchecked_into::<web_sys::WorkerGlobalScope>()
        .performance()
        .expect("workers have performance")
        .now()
}

/// Median of `runs` timings of `f`, after one warm-up call.
fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = now_ms();
            f();
            now_ms() - start
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

#[wasm_bindgen_test]
fn query_embedding_latency() {
    let int8 = Embedder::from_gguf(EMBEDDER, TOKENIZER).expect("loads");
    let f32 = Embedder::from_gguf_with(EMBEDDER, TOKENIZER, Precision::F32).expect("loads");
    console_log!("| query tokens | int8 (the page) | f32 (dequantized) |\n|---|---|---|");
    for query in QUERIES {
        let tokens = int8.token_ids(query).expect("tokenizes").len();
        let ms = |model: &Embedder| {
            median_ms(15, || {
                model.embed_query(query).expect("embeds");
            })
        };
        console_log!("| {tokens} | {:.1} ms | {:.1} ms |", ms(&int8), ms(&f32));
    }
}

/// MiniLM's four matrix shapes at 20 activation rows (a typical idea), six layers' worth.
#[wasm_bindgen_test]
fn matmul_latency_at_20_tokens() {
    console_log!("| matmul (rows × out × in) | int8 | f32 |\n|---|---|---|");
    let (mut int8_total, mut f32_total) = (0.0, 0.0);
    for (n, k) in [(1152, 384), (384, 384), (1536, 384), (384, 1536)] {
        let w = Tensor::randn(0f32, 0.05, (n, k), &Device::Cpu).expect("weights");
        let x = Tensor::randn(0f32, 1.0, (20, k), &Device::Cpu).expect("activations");
        let q8 = QTensor::quantize(&w, GgmlDType::Q8_0).expect("quantizes");
        let int8 = marquee::kernels::qmatmul(Arc::new(q8)).expect("our kernel");
        let wt = w.t().expect("transposes");
        let a = median_ms(21, || {
            int8.forward(&x).expect("int8");
        });
        let b = median_ms(21, || {
            x.matmul(&wt).expect("f32");
        });
        (int8_total, f32_total) = (int8_total + 6.0 * a, f32_total + 6.0 * b);
        console_log!("| 20 × {n} × {k} | {a:.3} ms | {b:.3} ms |");
    }
    console_log!("| all of MiniLM's (× 6 layers) | {int8_total:.1} ms | {f32_total:.1} ms |");
}
