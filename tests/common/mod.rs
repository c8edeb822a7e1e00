//! Where the integration tests find the real models, data and bundle. They are fetched by
//! scripts/fetch_assets.py and built by `index-builder build` (scripts/test does both);
//! a missing file fails the test with a message saying how to make it, never a silent skip.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;

use std::ops::ControlFlow;

use marquee::embed::Embedder;
use marquee::generate::{Generation, Generator};
use marquee::task::{Run, RunEvent};

pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MARQUEE_CACHE") {
        return PathBuf::from(dir);
    }
    PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/marquee")
}

pub fn asset(relative: &str) -> Vec<u8> {
    let path = cache_dir().join("assets").join(relative);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. Run `python3 scripts/fetch_assets.py` first.",
            path.display()
        )
    })
}

/// The bundle the real-data tests query: $MARQUEE_BUNDLE, else $MARQUEE_CACHE/bundle.
pub fn bundle_dir() -> PathBuf {
    let dir = std::env::var_os("MARQUEE_BUNDLE")
        .map_or_else(|| cache_dir().join("bundle"), PathBuf::from);
    assert!(
        dir.join("manifest.json").is_file(),
        "no bundle in {}: build one with `index-builder build` (scripts/test does)",
        dir.display()
    );
    dir
}

pub fn reference_embedder() -> Embedder {
    Embedder::from_safetensors(
        &asset("minilm/model.safetensors"),
        &asset("minilm/config.json"),
        &asset("minilm/tokenizer.json"),
    )
    .expect("the f32 MiniLM loads")
}

#[derive(serde::Deserialize)]
pub struct Fixture {
    pub generated_by: String,
    pub sentences: Vec<FixtureSentence>,
}

#[derive(serde::Deserialize)]
pub struct FixtureSentence {
    pub text: String,
    pub input_ids: Vec<u32>,
    pub embedding: Vec<f32>,
}

/// sentence-transformers' embeddings, made by scripts/reference/make_minilm_fixture.py.
pub fn fixture() -> Fixture {
    let text = include_str!("../fixtures/minilm_reference.json");
    serde_json::from_str(text).expect("fixture parses")
}

/// Runs a task's generation to its end: every event it reported, and the finished generation.
pub fn run_to_end(run: Run, generator: &mut Generator) -> (Vec<RunEvent>, Generation) {
    let mut seen = Vec::new();
    let done = run
        .to_end(generator, |event| {
            seen.push(event.clone());
            ControlFlow::Continue(())
        })
        .expect("runs");
    (seen, done)
}

/// The text pieces of a run's events, joined: what a viewer was shown.
pub fn shown_text(events: &[RunEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}
