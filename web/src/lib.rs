//! Marquee in the browser: a thin layer that exposes the engine to the page's Web Worker
//! (`www/worker.js`). The worker fetches and caches the bundle's parts, hands each to a
//! [`Session`] (which verifies it against the manifest), then drives queries: `query`
//! retrieves and starts a generation (sampled or beam search), `recommend` ranks movies for
//! ratings (once `openRecs` has the on-demand recs part) and may start the note on why,
//! `ask` answers a question from passages (once `openAsk` has the on-demand passage parts),
//! `step` decodes one piece of any of them, `cancel` stops it. One model pass per call lets the
//! worker return to its event loop between tokens (and between a beam search's passes), so
//! a Stop message, or a re-ranking as the visitor rates, is handled within one pass.
//!
//! Everything model-related lives in the `marquee` engine crate; this crate only converts
//! between JS values and engine types and keeps the clock (the engine has none).

mod adapters;
mod ask;
pub mod js_bytes;
pub mod protocol;
mod recs;

use std::collections::HashMap;

use adapters::{AdapterUse, Adapters};
use js_bytes::JsBytes;

use marquee::bundle::{part, Manifest, PartDigest};
use marquee::generate::{Adapter, Generator};
use marquee::qa::PassageIndex;
use marquee::retriever::Retriever;
use marquee::task::recommend::{Recommender, ResolvedProfile};
use marquee::task::tagline::Tagline;
use marquee::task::{Phase, Run, RunEvent};
use marquee::Error;
use protocol::{Event, MovieHit, RecsTitle, Request, TaskName};
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// A loaded bundle: the retriever, the generator and the generation in progress, if any.
#[wasm_bindgen]
pub struct Session {
    manifest: Manifest,
    parts: HashMap<String, Vec<u8>>,
    /// The generator's GGUF, left in JavaScript's memory until `finish` converts it.
    generator_file: Option<JsBytes>,
    retriever: Option<Retriever>,
    generator: Option<Generator>,
    adapters: Adapters,
    /// From the recs part, once the Recommend tab has asked for it.
    recommender: Option<Recommender>,
    /// From the passage parts, once the Ask tab has asked for them.
    passages: Option<PassageIndex>,
    running: Option<Running>,
}

/// The generation under way and its clock readings (ms, `performance.now()`).
struct Running {
    id: u32,
    task: TaskName,
    run: Run,
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
    /// Fetched when a feature first needs it, not at load (see `bundle::part::ON_DEMAND`).
    on_demand: bool,
    /// The view it is fetched for ("ask", "recommend"; `part::view_of`).
    view: Option<&'static str>,
}

/// What `finish` learned, for the worker's `ready` message.
#[derive(Serialize)]
struct Loaded {
    movies: usize,
    generator: Option<String>,
    attribution: String,
    /// Whether the bundle has the recs part (the Recommend tab).
    recommend: bool,
    /// Whether the bundle has both passage parts (the Ask tab).
    ask: bool,
}

/// What `openRecs` learned, for the worker's `recs_ready` message.
#[derive(Serialize)]
struct RecsOpened {
    movies: Vec<RecsTitle>,
    profiles: Vec<ResolvedProfile>,
    source: String,
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
            generator_file: None,
            retriever: None,
            generator: None,
            adapters: Adapters::new(),
            recommender: None,
            passages: None,
            running: None,
        })
    }

    /// The parts this build reads: `[{name, file, bytes, sha256, on_demand, view}]`; the worker
    /// fetches the on-demand ones (`part::ON_DEMAND`) when a view first needs them.
    pub fn parts(&self) -> Result<JsValue, JsError> {
        let parts: Vec<PartToFetch> = self
            .manifest
            .known_parts()
            .map(|p| PartToFetch {
                name: p.name.clone(),
                file: p.file.clone(),
                bytes: p.bytes,
                sha256: p.sha256.clone(),
                on_demand: part::is_on_demand(&p.name),
                view: part::view_of(&p.name),
            })
            .collect();
        to_js(&parts)
    }

    /// Keeps one part, given as the pieces the worker downloaded it in (`Uint8Array`s, each
    /// with its own buffer), after checking its size and sha256; the error says which check
    /// failed, and the worker then drops its cached copy and fetches it again.
    /// The generator's bytes are not copied: they stay in JavaScript's memory, hashed and
    /// later read a piece at a time (`js_bytes`), so the wasm heap never holds the file.
    /// Returns whether the session keeps reading `pieces` (the generator's): any other
    /// part's are copied, and the worker may free them once it has cached them.
    #[wasm_bindgen(js_name = addPart)]
    pub fn add_part(&mut self, name: &str, pieces: js_sys::Array) -> Result<bool, JsError> {
        let file = JsBytes::new(&pieces)?;
        if name == part::GENERATOR {
            let mut digest = PartDigest::default();
            file.for_each_step(|step| digest.update(step))
                .map_err(js_error)?;
            self.manifest
                .verify_digest(name, digest)
                .map_err(js_error)?;
            self.generator_file = Some(file);
            return Ok(true);
        }
        let bytes = file.to_vec().map_err(js_error)?;
        self.manifest.verify_part(name, &bytes).map_err(js_error)?;
        self.parts.insert(name.to_string(), bytes);
        Ok(false)
    }

    /// Builds the retriever and the generator from the parts added so far.
    pub fn finish(&mut self) -> Result<JsValue, JsError> {
        let mut parts = std::mem::take(&mut self.parts);
        let generator = self.generator_file.take();
        let adapter = parts.remove(part::ADAPTER);
        let retriever = Retriever::from_parts(self.manifest.clone(), |info| {
            parts.remove(&info.name).ok_or_else(|| Error::MissingPart {
                part: info.name.clone(),
            })
        })
        .map_err(js_error)?;
        // One embedding while the page still shows "loading": the engine compiles wasm with
        // a quick baseline compiler first and optimizes a function once it has run hot, so
        // the visitor's first idea would otherwise run on the slow code (measured by
        // bench/browser).
        retriever
            .embedder()
            .embed_query("A movie about a movie.")
            .map_err(js_error)?;
        // Buffered: reading the header is many small reads, each a call into JS.
        self.generator = generator
            .map(|file| {
                Generator::from_llama_reader(std::io::BufReader::with_capacity(1 << 16, file))
            })
            .transpose()
            .map_err(js_error)?;
        self.adapters.tagline = adapter
            .map(|bytes| Adapter::read(&bytes))
            .transpose()
            .map_err(js_error)?;
        self.use_adapter(AdapterUse::Tagline)?;
        if let Some(generator) = self.generator.as_mut() {
            // The system turn every prompt starts with goes into the KV cache now, while
            // the page still shows "loading", instead of into the first tagline's wait.
            marquee::task::prime::<Tagline>(generator).map_err(js_error)?;
        }
        let loaded = Loaded {
            movies: retriever.movies().len(),
            generator: self.manifest.generator.as_ref().map(|g| match &g.adapter {
                Some(adapter) => format!("{} + {adapter}", g.model),
                None => g.model.clone(),
            }),
            attribution: self.manifest.catalogue.attribution.clone(),
            recommend: self.manifest.optional_part(part::RECS).is_some(),
            ask: ask::in_manifest(&self.manifest),
        };
        self.retriever = Some(retriever);
        to_js(&loaded)
    }

    /// Runs a `query` message's job up to its generation: returns the `retrieved` event
    /// and keeps the generation for `step`. Any generation still running is dropped.
    pub fn query(&mut self, request: JsValue) -> Result<JsValue, JsError> {
        let started_ms = now_ms();
        let request: Request = serde_wasm_bindgen::from_value(request).map_err(js_error)?;
        let Request::Query { id, task, tagline } = request else {
            return Err(js_error("not a query message"));
        };
        if task != TaskName::Tagline {
            return Err(js_error(
                "a query writes a tagline; other jobs have their own messages",
            ));
        }
        self.running = None;
        self.use_adapter(AdapterUse::Tagline)?;
        let retriever = self
            .retriever
            .as_ref()
            .ok_or_else(|| js_error("the models are not loaded yet"))?;
        let (mut embedded_ms, mut searched_ms) = (started_ms, started_ms);
        let job = marquee::task::tagline::start(
            retriever,
            self.generator.as_mut(),
            &tagline,
            &Default::default(),
            |phase| match phase {
                Phase::Embedded => embedded_ms = now_ms(),
                Phase::Searched => searched_ms = now_ms(),
                Phase::PromptBuilt { .. } => {}
            },
        )
        .map_err(js_error)?;
        let movies: Vec<MovieHit> = job
            .examples
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
        let prompt = job
            .prompt
            .unwrap_or_else(|| marquee::task::tagline::Prompt {
                text: String::new(),
                tokens: Vec::new(),
                examples_in_prompt: 0,
            });
        if let Some(run) = job.run {
            self.running = Some(Running {
                id,
                task,
                run,
                started_ms,
                prefill_started_ms: now_ms(),
                first_token_ms: None,
            });
        }
        to_js(&Event::Retrieved {
            id,
            task,
            movies,
            embed_ms: embedded_ms - started_ms,
            search_ms: searched_ms - embedded_ms,
            mode: tagline.mode,
            examples_in_prompt: prompt.examples_in_prompt,
            prompt_tokens: prompt.tokens.len(),
            prompt: prompt.text,
        })
    }

    /// Decodes until there is new text (a `token` event) or the generation ends (a `done`
    /// event), or returns `undefined` after a model pass that made no text certain (beam
    /// search: the worker yields to its event loop, so a Stop gets through, and steps
    /// again); `null` when nothing is being generated.
    pub fn step(&mut self) -> Result<JsValue, JsError> {
        let (Some(generator), Some(running)) = (self.generator.as_mut(), self.running.as_mut())
        else {
            return Ok(JsValue::NULL);
        };
        loop {
            let event = match running.run.step(generator) {
                Ok(event) => event,
                Err(error) => {
                    self.running = None;
                    return Err(js_error(error));
                }
            };
            let now = now_ms();
            match event {
                RunEvent::Prefilled { .. } => {
                    running.first_token_ms = Some(now);
                }
                RunEvent::Pending => return Ok(JsValue::UNDEFINED),
                RunEvent::Text(text) => {
                    let first = *running.first_token_ms.get_or_insert(now);
                    let tokens = running.run.generated_tokens();
                    return to_js(&Event::Token {
                        id: running.id,
                        task: running.task,
                        text,
                        tokens,
                        tokens_per_s: per_second(tokens.saturating_sub(1), now - first),
                    });
                }
                RunEvent::Done(generation) => {
                    let Some(running) = self.running.take() else {
                        return Ok(JsValue::NULL);
                    };
                    return done_event(running, generation, now);
                }
            }
        }
    }

    /// Stops the generation under way; returns its `done` event (`null` if none).
    pub fn cancel(&mut self) -> Result<JsValue, JsError> {
        let (Some(generator), Some(running)) = (self.generator.as_mut(), self.running.as_mut())
        else {
            return Ok(JsValue::NULL);
        };
        running.run.cancel();
        loop {
            match running.run.step(generator).map_err(js_error)? {
                RunEvent::Done(generation) => {
                    let Some(running) = self.running.take() else {
                        return Ok(JsValue::NULL);
                    };
                    return done_event(running, generation, now_ms());
                }
                _ => continue,
            }
        }
    }
}

fn done_event(
    running: Running,
    generation: marquee::generate::Generation,
    now: f64,
) -> Result<JsValue, JsError> {
    let first = running.first_token_ms.unwrap_or(now);
    let tokens = generation.tokens.len();
    to_js(&Event::Done {
        id: running.id,
        task: running.task,
        stop: generation.stop,
        text: generation.text,
        tokens,
        prompt_tokens: generation.prompt_tokens,
        cached_prompt_tokens: generation.cached_prompt_tokens,
        ttft_ms: first - running.started_ms,
        prefill_tokens_per_s: per_second(
            generation.prompt_tokens - generation.cached_prompt_tokens,
            first - running.prefill_started_ms,
        ),
        decode_tokens_per_s: per_second(tokens.saturating_sub(1), now - first),
        wasm_memory_bytes: wasm_memory_bytes(),
    })
}

/// The size of this module's linear memory.
fn wasm_memory_bytes() -> u64 {
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .map(|m| {
            m.buffer()
                .dyn_into::<js_sys::ArrayBuffer>()
                .map_or(0, |b| b.byte_length() as u64)
        })
        .unwrap_or(0)
}
