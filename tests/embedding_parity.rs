//! MiniLM against sentence-transformers' own numbers (tests/fixtures/minilm_reference.json):
//! the f32 model must agree to cosine ≥ 0.999 per sentence, the shipped q8_0 one to ≥ 0.995.

mod common;

use candle_core::quantized::GgmlDType;
use marquee::embed::{cosine, quantize_bert, BertConfig, Embedder, MAX_QUERY_BYTES};
use marquee::weights::Weights;
use marquee::Error;

fn quantized_embedder(dtype: GgmlDType) -> (Embedder, usize) {
    let config = BertConfig::from_json(&common::asset("minilm/config.json")).expect("config");
    let weights =
        Weights::from_safetensors(&common::asset("minilm/model.safetensors")).expect("weights");
    let gguf = quantize_bert(&weights, &config, dtype).expect("quantizes");
    let embedder =
        Embedder::from_gguf(&gguf, &common::asset("minilm/tokenizer.json")).expect("loads");
    (embedder, gguf.len())
}

/// Every fixture sentence embedded one at a time; returns the worst cosine.
fn worst_cosine(embedder: &Embedder) -> f32 {
    let fixture = common::fixture();
    assert!(fixture.sentences.len() >= 20);
    let mut worst = f32::MAX;
    for s in &fixture.sentences {
        let ours = embedder.embed_query(&s.text).expect("embeds");
        let cos = cosine(&ours, &s.embedding);
        worst = worst.min(cos);
        println!("{cos:.6}  {}", s.text.chars().take(60).collect::<String>());
    }
    worst
}

#[test]
fn tokenizer_matches_sentence_transformers_ids() {
    let embedder = common::reference_embedder();
    for s in common::fixture().sentences {
        assert_eq!(
            embedder.token_ids(&s.text).expect("tokenizes"),
            s.input_ids,
            "{}",
            s.text
        );
    }
}

#[test]
fn f32_model_matches_sentence_transformers() {
    let worst = worst_cosine(&common::reference_embedder());
    println!("worst cosine f32 vs sentence-transformers: {worst:.6}");
    assert!(worst >= 0.999, "worst cosine {worst}");
}

#[test]
fn q8_0_model_is_close_and_small() {
    let (embedder, bytes) = quantized_embedder(GgmlDType::Q8_0);
    let worst = worst_cosine(&embedder);
    println!("worst cosine q8_0 vs sentence-transformers: {worst:.6}; file {bytes} bytes");
    assert!(worst >= 0.995, "worst cosine {worst}");
    assert!(bytes <= 25_000_000, "q8_0 embedder is {bytes} bytes");
}

#[test]
fn known_pair_similarity() {
    let e = common::reference_embedder();
    let a = e.embed_query("A man is eating food.").expect("a");
    let b = e
        .embed_query("A man is eating a piece of bread.")
        .expect("b");
    let cos = cosine(&a, &b);
    assert!((cos - 0.7553).abs() < 5e-4, "cos = {cos}");
    let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
}

/// The fixture's sentences, as `embed_all` takes texts.
fn fixture_texts() -> Vec<String> {
    common::fixture()
        .sentences
        .into_iter()
        .map(|s| s.text)
        .collect()
}

#[test]
fn batching_and_padding_do_not_change_embeddings() {
    let e = common::reference_embedder();
    let texts = fixture_texts();
    let batched = e.embed_all(&texts, 7, |_| {}).expect("batches");
    for (text, got) in texts.iter().zip(&batched) {
        let alone = e.embed_query(text).expect("alone");
        assert!(cosine(got, &alone) > 0.99999, "{text}");
    }
}

/// `embed_all` runs its batches side by side, each on one of rayon's threads (whose matmuls
/// then stay on it); a text embedded there has the same bits as embedded alone from outside
/// the pool, where the matmuls split across threads. Long texts, so that they do split.
#[test]
fn batches_run_side_by_side_give_the_same_bits_as_alone() {
    let e = common::reference_embedder();
    let texts: Vec<String> = fixture_texts()
        .into_iter()
        .enumerate()
        .map(|(i, text)| format!("{text} {}", "and then more happens. ".repeat(8 + i % 5)))
        .collect();
    let mut reported = Vec::new();
    let side_by_side = e
        .embed_all(&texts, 1, |done| reported.push(done))
        .expect("batches");
    for (text, got) in texts.iter().zip(&side_by_side) {
        assert_eq!(got, &e.embed_query(text).expect("alone"), "{text}");
    }
    assert_eq!(reported.last(), Some(&texts.len()));
    assert!(reported.windows(2).all(|w| w[0] < w[1]), "{reported:?}");
}

#[test]
fn empty_and_oversized_queries_are_refused() {
    let e = common::reference_embedder();
    assert!(matches!(e.embed_query("   \n"), Err(Error::EmptyQuery)));
    let long = "word ".repeat(MAX_QUERY_BYTES);
    assert!(matches!(
        e.embed_query(&long),
        Err(Error::QueryTooLong { .. })
    ));
    // Long but allowed input is truncated to 256 tokens, like sentence-transformers.
    let ids = e.token_ids(&"word ".repeat(600)).expect("tokenizes");
    assert_eq!(ids.len(), 256);
}

#[test]
fn a_gguf_of_another_architecture_is_refused() {
    let config = BertConfig::from_json(&common::asset("minilm/config.json")).expect("config");
    assert!(Embedder::from_gguf(b"not a gguf at all", b"{}").is_err());
    let json = format!(
        r#"{{"vocab_size":{},"hidden_size":384,"num_hidden_layers":6,"num_attention_heads":12,"intermediate_size":1536,"max_position_embeddings":512,"hidden_act":"relu"}}"#,
        config.vocab_size
    );
    let err = BertConfig::from_json(json.as_bytes()).expect_err("relu refused");
    assert!(err.to_string().contains("relu"));
}
