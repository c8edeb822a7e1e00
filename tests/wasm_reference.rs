//! The native numbers the wasm build is held to (web/tests/engine_in_browser.rs): embeddings
//! of the fixture sentences by the shipped MiniLM, computed two ways:
//! - `q8_0`: as shipped, int8 matmuls, as the page runs it. Every float step of this path
//!   has one order (src/kernels/dot_scalar.rs, src/embed/attention.rs), so the wasm build
//!   must give the same bits; the test allows 1e-6.
//! - `f32`: its q8_0 weights dequantized, every matmul in candle's f32 gemm, whose kernels
//!   differ per instruction set (FMA natively, none in wasm): held to 1e-4.
//!
//! `MARQUEE_WRITE_FIXTURES=1` rewrites the file (after a deliberate change to the embedder).

mod common;

use marquee::bundle::{self, part};
use marquee::embed::{cosine, Embedder, Precision};

const FIXTURE: &str = "tests/fixtures/minilm_q8_0_native.json";

#[test]
fn native_numbers_for_the_wasm_build_are_current() {
    // The int8 path runs our kernels (src/kernels): activations quantized per block of 32
    // on every machine. (candle's own q8_0 matmul quantizes per 256 on AVX-512 VNNI CPUs,
    // which made these numbers depend on the CPU before.)
    let dir = common::bundle_dir();
    let manifest = bundle::read_manifest(&dir).expect("manifest");
    let read = |name: &str| bundle::read_part(&dir, &manifest, name).expect(name);
    let (gguf, tokenizer) = (read(part::EMBEDDER), read(part::TOKENIZER));
    let shipped = Embedder::from_gguf(&gguf, &tokenizer).expect("loads");
    let f32 = Embedder::from_gguf_with(&gguf, &tokenizer, Precision::F32).expect("loads");

    let ours: Vec<serde_json::Value> = common::fixture()
        .sentences
        .iter()
        .map(|s| {
            serde_json::json!({
                "text": s.text,
                "f32": f32.embed_query(&s.text).expect("embeds"),
                "q8_0": shipped.embed_query(&s.text).expect("embeds"),
            })
        })
        .collect();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    if std::env::var_os("MARQUEE_WRITE_FIXTURES").is_some() {
        let text = serde_json::to_string(&serde_json::json!({
            "made_by": "tests/wasm_reference.rs, MARQUEE_WRITE_FIXTURES=1 (native, the bundle's MiniLM)",
            "sentences": ours,
        }))
        .expect("encodes");
        std::fs::write(&path, text).expect("writes the fixture");
    }
    let committed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("fixture exists")).expect("parses");
    let committed = committed["sentences"].as_array().expect("sentences");
    assert_eq!(committed.len(), ours.len());
    let vector = |v: &serde_json::Value| -> Vec<f32> {
        serde_json::from_value(v.clone()).expect("a vector")
    };
    for (a, b) in ours.iter().zip(committed) {
        assert_eq!(a["text"], b["text"]);
        for key in ["f32", "q8_0"] {
            let (a, b) = (vector(&a[key]), vector(&b[key]));
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-5, "{key} differs by {worst}");
        }
        // Dequantized weights in f32 and the shipped int8 path compute nearly the same thing.
        assert!(cosine(&vector(&a["f32"]), &vector(&a["q8_0"])) > 0.995);
    }
}
