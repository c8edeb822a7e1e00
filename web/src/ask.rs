//! The Ask tab's side of the [`Session`]: `openAsk` builds the passage search from the two
//! on-demand parts the worker fetched when the tab first opened, `ask` retrieves passages
//! for a question and, when the best is relevant enough, starts writing the answer (stepped
//! by `step` as any generation).

use std::collections::HashSet;

use marquee::task::ask::Ask;

use super::*;
use crate::protocol::PassageShown;
use wasm_bindgen::prelude::*;

/// Whether the bundle carries both passage parts (a bundle built with `--no-passages` has
/// neither).
pub(crate) fn in_manifest(manifest: &Manifest) -> bool {
    [part::PASSAGES, part::PASSAGE_INDEX]
        .iter()
        .all(|name| manifest.optional_part(name).is_some())
}

/// What `openAsk` learned, for the worker's `ask_ready` message.
#[derive(Serialize)]
struct AskOpened {
    documents: usize,
    passages: usize,
}

#[wasm_bindgen]
impl Session {
    /// Builds the passage search (MiniLM vectors and a BM25 index over the chunks) from the
    /// `passages` and `passage-index` parts added with `addPart`, and reads the reader
    /// adapter (`ask-adapter`) when the bundle ships one; returns the passages' counts.
    #[wasm_bindgen(js_name = openAsk)]
    pub fn open_ask(&mut self) -> Result<JsValue, JsError> {
        if !in_manifest(&self.manifest) {
            return Err(js_error(
                "this bundle has no passages (it was built with --no-passages)",
            ));
        }
        let movies = self
            .retriever
            .as_ref()
            .ok_or_else(|| js_error("the models are not loaded yet"))?
            .movies()
            .len();
        let (Some(passages), Some(index)) = (
            self.parts.remove(part::PASSAGES),
            self.parts.remove(part::PASSAGE_INDEX),
        ) else {
            return Err(js_error("the passage parts have not been added"));
        };
        let search = PassageIndex::from_parts(&passages, &index, movies).map_err(js_error)?;
        if let Some(bytes) = self.parts.remove(part::ASK_ADAPTER) {
            self.adapters.ask = Some(Adapter::read(&bytes).map_err(js_error)?);
        }
        // Priming runs the model, which would pull the KV cache from under a tagline or a
        // note being written; then the first question primes instead.
        if self.running.is_none() {
            self.prepare_reader()?;
        }
        let opened = AskOpened {
            documents: search.passages.documents.len(),
            passages: search.len(),
        };
        self.passages = Some(search);
        to_js(&opened)
    }

    /// Runs an `ask` message: returns the `answered` event and, unless the answer is "I
    /// don't know.", keeps its generation for `step`. Any generation still running is
    /// dropped (the worker has stopped it). Bad input (empty, too long, numbers out of
    /// bounds) is an error saying so.
    pub fn ask(&mut self, request: JsValue) -> Result<JsValue, JsError> {
        let started_ms = now_ms();
        let request: Request = serde_wasm_bindgen::from_value(request).map_err(js_error)?;
        let Request::Ask { id, ask } = request else {
            return Err(js_error("not an ask message"));
        };
        ask.validate().map_err(js_error)?;
        if self.passages.is_none() {
            return Err(js_error("the passages are not loaded yet"));
        }
        self.running = None;
        self.prepare_reader()?;
        let (Some(passages), Some(retriever)) = (self.passages.as_ref(), self.retriever.as_ref())
        else {
            return Err(js_error("the models are not loaded yet"));
        };
        let (mut embedded_ms, mut searched_ms) = (started_ms, started_ms);
        // No movie is left out: that is the evaluation's way of asking about one the
        // catalogue lacks.
        let job = marquee::task::ask::start(
            passages,
            retriever.embedder(),
            self.generator.as_mut(),
            &ask,
            &HashSet::new(),
            |phase| match phase {
                Phase::Embedded => embedded_ms = now_ms(),
                Phase::Searched => searched_ms = now_ms(),
                Phase::PromptBuilt { .. } => {}
            },
        )
        .map_err(js_error)?;
        let shown: Vec<PassageShown> = job
            .hits
            .iter()
            .map(|hit| {
                let chunk = passages.passages.chunks[hit.chunk];
                let doc = &passages.passages.documents[chunk.doc as usize];
                PassageShown {
                    movie: hit.movie,
                    title: doc.title.clone(),
                    year: doc.year,
                    text: doc
                        .text
                        .get(chunk.start as usize..chunk.end as usize)
                        .unwrap_or_default()
                        .to_string(),
                    cosine: hit.cosine,
                    score: hit.score,
                }
            })
            .collect();
        let (passages_in_prompt, prompt_tokens) = job
            .prompt
            .as_ref()
            .map_or((0, 0), |p| (p.passages_in_prompt, p.tokens.len()));
        let answering = job.run.is_some();
        if let Some(run) = job.run {
            self.running = Some(Running {
                id,
                task: TaskName::Ask,
                run,
                started_ms,
                prefill_started_ms: now_ms(),
                first_token_ms: None,
            });
        }
        to_js(&Event::Answered {
            id,
            task: TaskName::Ask,
            passages: shown,
            unknown: job.unknown,
            answering,
            embed_ms: embedded_ms - started_ms,
            search_ms: searched_ms - embedded_ms,
            passages_in_prompt,
            prompt_tokens,
        })
    }
}

impl Session {
    /// The reader is the generator with the reader adapter (the base model when the bundle
    /// ships none). Its system turn goes into the KV cache (once per adapter switch; a
    /// no-op after that) so a question prefills only its passages and itself.
    fn prepare_reader(&mut self) -> Result<(), JsError> {
        self.use_adapter(AdapterUse::Ask)?;
        if let Some(generator) = self.generator.as_mut() {
            marquee::task::prime::<Ask>(generator).map_err(js_error)?;
        }
        Ok(())
    }
}
