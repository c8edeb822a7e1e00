//! Marquee in the browser: a thin layer that exposes the engine to the page's Web Worker
//! (`www/worker.js`). The worker fetches and caches the bundle's parts, hands each to a
//! [`Session`] (which verifies it against the manifest), then drives queries: `query`
//! retrieves and starts a generation, `step` decodes one piece of the tagline, `cancel`
//! stops it. Decoding one step per call lets the worker return to its event loop between
//! tokens, so a Stop message is handled within one token.
//!
//! Everything model-related lives in the `marquee` engine crate; this crate only converts
//! between JS values and engine types and keeps the clock (the engine has none).

pub mod protocol;

use std::collections::HashMap;

use marquee::bundle::{part, Manifest};
use marquee::generate::{Decoding, Generator, SamplingParams, Step};
use marquee::retriever::Retriever;
use marquee::tagline::{build_prompt, prompt_prefix, retrieved_examples, Budget, PromptStyle};
use marquee::Error;
use protocol::{Event, MovieHit, QueryRequest, MAX_K, MAX_NEW_TOKENS};
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// A loaded bundle: the retriever, the generator and the generation in progress, if any.
#[wasm_bindgen]
pub struct Session {
    manifest: Manifest,
    parts: HashMap<String, Vec<u8>>,
    retriever: Option<Retriever>,
    generator: Option<Generator>,
    running: Option<Running>,
}

/// The generation under way and its clock readings (ms, `performance.now()`).
struct Running {
    id: u32,
    decoding: Decoding,
    started_ms: f64,
    prefill_started_ms: f64,
    first_token_ms: Option<f64>,
}

/// What the worker needs to know about one part to fetch and cache it.
#[derive(Serialize)]
struct PartToFetch {
    name: String,
    file: String,
    bytes: u64,
    sha256: String,
}

/// Facts for the `ready` message.
#[derive(Serialize)]
struct Loaded {
    movies: usize,
    generator: Option<String>,
    attribution: String,
}

fn js_error(error: impl std::fmt::Display) -> JsError {
    JsError::new(&error.to_string())
}

fn to_js(value: &impl Serialize) -> Result<JsValue, JsError> {
    // Plain objects rather than Maps, so the page can read fields directly.
    let serializer = serde_wasm_bindgen::Serializer::json_compatible();
    value.serialize(&serializer).map_err(js_error)
}

/// Milliseconds from `performance.now()`, in a window or a worker alike.
fn now_ms() -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("performance"))
        .ok()
        .and_then(|p| p.dyn_into::<web_sys::Performance>().ok())
        .map_or_else(js_sys::Date::now, |p| p.now())
}

fn per_second(count: usize, ms: f64) -> f64 {
    if count == 0 || ms <= 0.0 {
        0.0
    } else {
        count as f64 * 1000.0 / ms
    }
}

#[wasm_bindgen]
impl Session {
    /// Starts from the bundle's `manifest.json` bytes; rejects another format version.
    #[wasm_bindgen(constructor)]
    pub fn new(manifest_json: &[u8]) -> Result<Session, JsError> {
        Ok(Self {
            manifest: Manifest::from_json(manifest_json).map_err(js_error)?,
            parts: HashMap::new(),
            retriever: None,
            generator: None,
            running: None,
        })
    }

    /// The parts to fetch: `[{name, file, bytes, sha256}]`.
    pub fn parts(&self) -> Result<JsValue, JsError> {
        let parts: Vec<PartToFetch> = self
            .manifest
            .parts
            .iter()
            .map(|p| PartToFetch {
                name: p.name.clone(),
                file: p.file.clone(),
                bytes: p.bytes,
                sha256: p.sha256.clone(),
            })
            .collect();
        to_js(&parts)
    }

    /// Keeps one part after checking its size and sha256; the error says which check
    /// failed, and the worker then drops its cached copy and fetches it again.
    #[wasm_bindgen(js_name = addPart)]
    pub fn add_part(&mut self, name: &str, bytes: Vec<u8>) -> Result<(), JsError> {
        self.manifest.verify_part(name, &bytes).map_err(js_error)?;
        self.parts.insert(name.to_string(), bytes);
        Ok(())
    }

    /// Builds the retriever and the generator from the parts added so far.
    pub fn finish(&mut self) -> Result<JsValue, JsError> {
        let mut parts = std::mem::take(&mut self.parts);
        let generator = parts.remove(part::GENERATOR);
        let retriever = Retriever::from_parts(self.manifest.clone(), |info| {
            parts.remove(&info.name).ok_or_else(|| Error::MissingPart {
                part: info.name.clone(),
            })
        })
        .map_err(js_error)?;
        // One embedding while the page still shows "loading": the engine compiles wasm with
        // a quick baseline compiler first and optimizes a function once it has run hot, so
        // the visitor's first idea would otherwise run on the slow code (26 ms against 16 for
        // later ones in bench/browser).
        retriever
            .embedder()
            .embed_query("A movie about a movie.")
            .map_err(js_error)?;
        self.generator = match generator {
            Some(bytes) => {
                let mut generator = Generator::from_llama_gguf(&bytes).map_err(js_error)?;
                // The system turn every prompt starts with goes into the KV cache now, while
                // the page still shows "loading", instead of into the first tagline's wait.
                let prefix = generator.encode(&prompt_prefix()).map_err(js_error)?;
                generator.prime(&prefix).map_err(js_error)?;
                Some(generator)
            }
            None => None,
        };
        let loaded = Loaded {
            movies: retriever.movies().len(),
            generator: self.manifest.generator.as_ref().map(|g| g.model.clone()),
            attribution: self.manifest.catalogue.attribution.clone(),
        };
        self.retriever = Some(retriever);
        to_js(&loaded)
    }

    /// Embeds the idea, retrieves movies and starts the tagline; returns the `retrieved`
    /// event. Any generation still running is dropped.
    pub fn query(&mut self, request: JsValue) -> Result<JsValue, JsError> {
        let started_ms = now_ms();
        let request: QueryRequest = serde_wasm_bindgen::from_value(request).map_err(js_error)?;
        self.running = None;
        let retriever = self
            .retriever
            .as_ref()
            .ok_or_else(|| js_error("the models are not loaded yet"))?;
        validate(&request)?;

        let embedding = retriever
            .embedder()
            .embed_query(&request.idea)
            .map_err(js_error)?;
        let embedded_ms = now_ms();
        let examples = retrieved_examples(
            retriever,
            &embedding,
            request.k,
            request.mode,
            &Default::default(),
        )
        .map_err(js_error)?;
        let searched_ms = now_ms();

        let movies: Vec<MovieHit> = examples
            .iter()
            .map(|e| MovieHit {
                index: e.index.unwrap_or_default(),
                title: e.movie.title.clone(),
                year: e.movie.year,
                score: e.similarity.unwrap_or_default(),
                tagline: e.movie.tagline.clone(),
                overview: e.movie.overview.clone(),
                genres: e.movie.genres.clone(),
            })
            .collect();

        let (mut examples_in_prompt, mut prompt_tokens) = (0, 0);
        if let Some(generator) = self.generator.as_mut() {
            let count = |text: &str| generator.encode(text).map_or(usize::MAX, |ids| ids.len());
            let (prompt, kept) = build_prompt(
                &request.idea,
                &examples,
                PromptStyle::default(),
                Budget::default(),
                &count,
            )
            .map_err(js_error)?;
            let ids = generator.encode(&prompt).map_err(js_error)?;
            let params = SamplingParams {
                temperature: request.temperature,
                seed: request.seed,
                max_tokens: request.max_tokens,
                ..SamplingParams::default()
            };
            let decoding = generator.start(&ids, &params).map_err(js_error)?;
            (examples_in_prompt, prompt_tokens) = (kept, ids.len());
            self.running = Some(Running {
                id: request.id,
                decoding,
                started_ms,
                prefill_started_ms: now_ms(),
                first_token_ms: None,
            });
        }
        to_js(&Event::Retrieved {
            id: request.id,
            movies,
            embed_ms: embedded_ms - started_ms,
            search_ms: searched_ms - embedded_ms,
            mode: request.mode,
            examples_in_prompt,
            prompt_tokens,
        })
    }

    /// Decodes until there is new text (a `token` event) or the tagline ends (a `done`
    /// event); `null` when nothing is being generated.
    pub fn step(&mut self) -> Result<JsValue, JsError> {
        let (Some(generator), Some(running)) = (self.generator.as_mut(), self.running.as_mut())
        else {
            return Ok(JsValue::NULL);
        };
        loop {
            let step = running.decoding.step(generator);
            let step = match step {
                Ok(step) => step,
                Err(error) => {
                    self.running = None;
                    return Err(js_error(error));
                }
            };
            let now = now_ms();
            let first = *running.first_token_ms.get_or_insert(now);
            match step {
                Step::Pending => continue,
                Step::Text(text) => {
                    let tokens = running.decoding.generated_tokens();
                    return to_js(&Event::Token {
                        id: running.id,
                        text,
                        tokens,
                        tokens_per_s: per_second(tokens.saturating_sub(1), now - first),
                    });
                }
                Step::Finished => return self.finish_running(),
            }
        }
    }

    /// Stops the generation under way; returns its `done` event (`null` if none).
    pub fn cancel(&mut self) -> Result<JsValue, JsError> {
        match self.running.as_mut() {
            Some(running) => {
                running.decoding.cancel();
                self.finish_running()
            }
            None => Ok(JsValue::NULL),
        }
    }

    fn finish_running(&mut self) -> Result<JsValue, JsError> {
        let Some(running) = self.running.take() else {
            return Ok(JsValue::NULL);
        };
        let now = now_ms();
        let first = running.first_token_ms.unwrap_or(now);
        let generation = running.decoding.into_generation();
        let tokens = generation.tokens.len();
        to_js(&Event::Done {
            id: running.id,
            stop: generation.stop,
            text: generation.text.trim().to_string(),
            tokens,
            prompt_tokens: generation.prompt_tokens,
            cached_prompt_tokens: generation.cached_prompt_tokens,
            ttft_ms: first - running.started_ms,
            prefill_tokens_per_s: per_second(
                generation.prompt_tokens - generation.cached_prompt_tokens,
                first - running.prefill_started_ms,
            ),
            decode_tokens_per_s: per_second(tokens.saturating_sub(1), now - first),
        })
    }

    /// Whether a generation is under way.
    #[wasm_bindgen(getter)]
    pub fn generating(&self) -> bool {
        self.running.is_some()
    }
}

fn validate(request: &QueryRequest) -> Result<(), JsError> {
    if !(1..=MAX_K).contains(&request.k) {
        return Err(js_error(format!("k must be between 1 and {MAX_K}")));
    }
    if !(1..=MAX_NEW_TOKENS).contains(&request.max_tokens) {
        return Err(js_error(format!(
            "max tokens must be between 1 and {MAX_NEW_TOKENS}"
        )));
    }
    if !request.temperature.is_finite() || !(0.0..=2.0).contains(&request.temperature) {
        return Err(js_error("temperature must be between 0 and 2"));
    }
    Ok(())
}
