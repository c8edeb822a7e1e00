//! The engine compiled to wasm32, run in headless Chromium inside a dedicated worker (as on
//! the page): embeddings equal the native build's, search and bundle reading behave the
//! same, and seeded sampling reproduces the native tokens.
//!
//! Run by scripts/test: `cargo test --target wasm32-unknown-unknown -p marquee-web --release
//! --features real-data --test engine_in_browser` with CHROMEDRIVER set. The real bundle is compiled into the
//! test (it cannot read files), from $MARQUEE_CACHE/bundle as scripts/setup builds it.
#![cfg(all(target_arch = "wasm32", feature = "real-data"))]

use std::collections::HashSet;
use std::ops::ControlFlow;

use marquee::bundle::{part, Manifest};
use marquee::embed::{Embedder, Precision};
use marquee::generate::{gpt2_tokenizer, Generator, Gpt2, SamplingParams};
use marquee::index::SearchMode;
use marquee::retriever::Retriever;
use marquee::Error;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

const MANIFEST: &[u8] = include_bytes!(concat!(env!("MARQUEE_CACHE"), "/bundle/manifest.json"));
const MOVIES: &[u8] = include_bytes!(concat!(env!("MARQUEE_CACHE"), "/bundle/movies.json"));
const INDEX: &[u8] = include_bytes!(concat!(env!("MARQUEE_CACHE"), "/bundle/index.bin"));
const EMBEDDER: &[u8] = include_bytes!(concat!(
    env!("MARQUEE_CACHE"),
    "/bundle/minilm-l6-q8_0.gguf"
));
const TOKENIZER: &[u8] = include_bytes!(concat!(env!("MARQUEE_CACHE"), "/bundle/tokenizer.json"));
const NATIVE_EMBEDDINGS: &str = include_str!("../../tests/fixtures/minilm_q8_0_native.json");

const GPT2_MODEL: &[u8] = include_bytes!("../../tests/fixtures/gpt2_tiny/model.safetensors");
const GPT2_CONFIG: &[u8] = include_bytes!("../../tests/fixtures/gpt2_tiny/config.json");
const GPT2_SAMPLED: &str = include_str!("../../tests/fixtures/gpt2_tiny/sampled.json");
const GPT2_ENCODER: &[u8] =
    include_bytes!(concat!(env!("MARQUEE_CACHE"), "/assets/gpt2/encoder.json"));
const GPT2_MERGES: &[u8] = include_bytes!(concat!(env!("MARQUEE_CACHE"), "/assets/gpt2/vocab.bpe"));

fn retriever() -> Retriever {
    let manifest = Manifest::from_json(MANIFEST).expect("manifest");
    Retriever::from_parts(manifest, |info| {
        Ok(match info.name.as_str() {
            part::MOVIES => MOVIES,
            part::INDEX => INDEX,
            part::EMBEDDER => EMBEDDER,
            part::TOKENIZER => TOKENIZER,
            other => panic!("unexpected part {other}"),
        }
        .to_vec())
    })
    .expect("the bundle loads in wasm")
}

/// The fixture's vectors under `key` ("f32" or "q8_0"), with their sentences.
fn native(key: &str) -> Vec<(String, Vec<f32>)> {
    let fixture: serde_json::Value = serde_json::from_str(NATIVE_EMBEDDINGS).expect("parses");
    let sentences = fixture["sentences"].as_array().expect("sentences");
    assert!(sentences.len() >= 20);
    sentences
        .iter()
        .map(|s| {
            let text = s["text"].as_str().expect("text").to_string();
            (
                text,
                serde_json::from_value(s[key].clone()).expect("vector"),
            )
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The embedder as the page runs it (int8 matmuls on the shipped q8_0 weights, see
/// `Precision::fastest`): every float step has one defined order, so wasm gives the native
/// build's bits exactly (the fixture's JSON numbers round-trip f32 exactly).
#[wasm_bindgen_test]
fn embeddings_equal_the_native_build_bit_for_bit() {
    assert_eq!(Precision::fastest(), Precision::AsStored);
    let embedder = Embedder::from_gguf(EMBEDDER, TOKENIZER).expect("loads");
    for (text, native) in native("q8_0") {
        let ours = embedder.embed_query(&text).expect("embeds");
        assert_eq!(
            ours,
            native,
            "{text}: differs by {}",
            max_abs_diff(&ours, &native)
        );
    }
}

/// The f32 path (weights dequantized, candle's gemm, whose kernels differ per instruction
/// set): the same function within 1e-4, and close to the int8 one.
#[wasm_bindgen_test]
fn f32_embeddings_match_native_ones_within_1e_4() {
    let embedder = Embedder::from_gguf_with(EMBEDDER, TOKENIZER, Precision::F32).expect("loads");
    for (text, native) in native("f32") {
        let ours = embedder.embed_query(&text).expect("embeds");
        let worst = max_abs_diff(&ours, &native);
        assert!(worst <= 1e-4, "{text}: differs by {worst}");
    }
}

#[wasm_bindgen_test]
fn search_finds_toy_story_and_hnsw_agrees_with_exact() {
    let retriever = retriever();
    let hits = retriever
        .query(
            "toys that come to life when nobody is watching",
            10,
            SearchMode::Hnsw,
        )
        .expect("searches");
    assert!(
        hits.iter().any(|h| h.movie.title.starts_with("Toy Story")),
        "{:?}",
        hits.iter().map(|h| &h.movie.title).collect::<Vec<_>>()
    );
    let mut agree = 0;
    let probes = 50;
    for i in (0..retriever.movies().len())
        .step_by(retriever.movies().len() / probes)
        .take(probes)
    {
        let query = retriever.index().vector(i).expect("in range");
        let exact: HashSet<usize> = retriever
            .search_embedding(&query, 10, SearchMode::Exact)
            .expect("exact")
            .iter()
            .map(|h| h.index)
            .collect();
        agree += retriever
            .search_embedding(&query, 10, SearchMode::Hnsw)
            .expect("hnsw")
            .iter()
            .filter(|h| exact.contains(&h.index))
            .count();
    }
    let recall = agree as f64 / (probes * 10) as f64;
    assert!(recall >= 0.99, "recall@10 {recall}");
}

#[wasm_bindgen_test]
fn bundle_reader_rejects_a_corrupted_part() {
    let manifest = Manifest::from_json(MANIFEST).expect("manifest");
    manifest.verify_part(part::INDEX, INDEX).expect("intact");
    let mut flipped = INDEX.to_vec();
    flipped[INDEX.len() / 2] ^= 1;
    assert!(matches!(
        manifest.verify_part(part::INDEX, &flipped),
        Err(Error::PartHash { .. })
    ));
    assert!(matches!(
        manifest.verify_part(part::INDEX, &INDEX[..INDEX.len() - 1]),
        Err(Error::PartSize { .. })
    ));
    let newer = String::from_utf8_lossy(MANIFEST).replacen("\"version\": 3", "\"version\": 4", 1);
    assert!(matches!(
        Manifest::from_json(newer.as_bytes()),
        Err(Error::BundleVersion { found: 4, .. })
    ));
}

#[wasm_bindgen_test]
fn seeded_sampling_reproduces_the_native_tokens() {
    let tokenizer = gpt2_tokenizer(GPT2_ENCODER, GPT2_MERGES).expect("tokenizer");
    let model = Gpt2::from_safetensors(GPT2_MODEL, GPT2_CONFIG).expect("loads");
    let mut generator = Generator::gpt2(model, tokenizer);
    let fixture: serde_json::Value = serde_json::from_str(GPT2_SAMPLED).expect("parses");
    let prompt: Vec<u32> = serde_json::from_value(fixture["prompt"].clone()).expect("prompt");
    let expected: Vec<u32> = serde_json::from_value(fixture["tokens"].clone()).expect("tokens");
    let params = SamplingParams {
        temperature: 1.0,
        seed: fixture["seed"].as_u64().expect("seed"),
        max_tokens: 16,
        ..SamplingParams::default()
    };
    for _ in 0..2 {
        let out = generator
            .generate(&prompt, &params, |_| ControlFlow::Continue(()))
            .expect("generates");
        assert_eq!(out.tokens, expected);
    }
}

/// A fixed pseudo-random matrix with values in [-1, 1).
fn pseudo_random(rows: usize, cols: usize, seed: u64) -> candle_core::Tensor {
    let mut state = seed.wrapping_add(1442695040888963407);
    let values: Vec<f32> = (0..rows * cols)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    candle_core::Tensor::from_vec(values, (rows, cols), &candle_core::Device::Cpu)
        .expect("shape matches")
}

/// Our simd128 kernels (`marquee::kernels`) against candle's on the same weights: the
/// same products up to how the two round the activations' block scales.
#[wasm_bindgen_test]
fn quantized_kernels_agree_with_candles() {
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::Module;
    for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q8_0] {
        let weights = std::sync::Arc::new(
            QTensor::quantize(&pseudo_random(67, 96, 1), dtype).expect("quantizes"),
        );
        let ours = marquee::kernels::qmatmul(weights.clone()).expect("our layout");
        let theirs = QMatMul::from_arc(weights).expect("candle's");
        for m in [1, 5] {
            let x = pseudo_random(m, 96, 2 + m as u64);
            let a = ours.forward(&x).expect("ours").flatten_all().expect("flat");
            let b = theirs
                .forward(&x)
                .expect("candle's")
                .flatten_all()
                .expect("flat");
            let diff = max_abs_diff(
                &a.to_vec1::<f32>().expect("values"),
                &b.to_vec1::<f32>().expect("values"),
            );
            assert!(diff < 5e-3, "{dtype:?}, {m} rows: {diff}");
        }
    }
}

/// The page's part pieces (`Uint8Array`s in JS memory) read as one file across piece
/// boundaries, and a piece that holds no needed byte is let go: its buffer detached (freed
/// at once), reading it an error. A piece that shares its buffer is dropped, not detached.
#[wasm_bindgen_test]
fn part_pieces_read_as_one_file_and_are_let_go_once_read() {
    use std::io::{Read, Seek, SeekFrom};

    use marquee::weights::TensorSource;
    use marquee_web::js_bytes::JsBytes;

    let bytes: Vec<u8> = (0..100u8).collect();
    // The last piece is a view of part of a larger buffer.
    let shared = js_sys::Uint8Array::new_with_length(50);
    shared.subarray(0, 40).copy_from(&bytes[60..100]);
    let pieces = [
        js_sys::Uint8Array::from(&bytes[0..30]),
        js_sys::Uint8Array::from(&bytes[30..60]),
        shared.subarray(0, 40),
    ];
    let array: js_sys::Array = pieces.iter().collect();
    let mut file = JsBytes::new(&array).expect("pieces");
    assert_eq!(file.to_vec().expect("whole"), bytes);
    let mut middle = [0u8; 50];
    file.seek(SeekFrom::Start(20)).expect("seeks");
    file.read_exact(&mut middle).expect("reads across pieces");
    assert_eq!(middle[..], bytes[20..70]);

    file.retain(std::slice::from_ref(&(35..40)));
    assert_eq!(
        pieces[0].buffer().byte_length(),
        0,
        "the first piece is freed"
    );
    assert_eq!(pieces[1].length(), 30, "the needed piece is kept");
    assert_eq!(shared.length(), 50, "a shared buffer is not detached");
    let mut five = [0u8; 5];
    file.seek(SeekFrom::Start(35)).expect("seeks");
    file.read_exact(&mut five)
        .expect("the needed bytes are still there");
    assert_eq!(five[..], bytes[35..40]);
    for at in [10, 70] {
        file.seek(SeekFrom::Start(at)).expect("seeks");
        assert!(file.read_exact(&mut five).is_err(), "byte {at} was let go");
    }
}
