//! Every message between the page and its worker, declared once. The worker and the page
//! build and read them through `www/protocol.js`, which [`javascript`] generates from these
//! types (their field names come from serializing them, so the two cannot drift) together
//! with each task's defaults and limits from the engine; a test fails when the committed
//! file differs, and `MARQUEE_WRITE_FIXTURES=1 cargo test -p marquee-web` rewrites it.
//!
//! Page → worker: [`Request`] (`load`, `query`, `load_recs`, `recommend`, `load_ask`, `ask`,
//! `cancel`).
//! Worker → page: [`Event`] (`progress`, `ready`, `retrieved`, `recs_ready`, `recommended`,
//! `ask_ready`, `answered`, `token`, `done`, `error`). Messages about a job carry its `id`, and those from the worker
//! its `task`, so the page hands each to its view.

use marquee::generate::StopReason;
use marquee::index::SearchMode;
use marquee::task::ask::{Ask, AskRequest, LIMITS as ASK_LIMITS};
use marquee::task::recommend::{
    Recommend, RecommendRequest, ResolvedProfile, LIMITS as RECOMMEND_LIMITS,
};
use marquee::task::tagline::{Tagline, TaglineRequest, LIMITS};
use marquee::task::Task;
use serde::{Deserialize, Serialize};

/// The jobs a query can ask for (the engine's `Task::NAME`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskName {
    Tagline,
    Recommend,
    Ask,
}

/// Page → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Fetch (or take from the cache) and load the bundle.
    Load,
    /// Run a job. The request's own fields sit beside `id` and `task`.
    Query {
        id: u32,
        task: TaskName,
        #[serde(flatten)]
        tagline: TaglineRequest,
    },
    /// Fetch (or take from the cache) the recommender's part, on the Recommend tab's first
    /// opening: the first load does not carry it. A failure is an `error` with this `id`.
    LoadRecs { id: u32 },
    /// Rank movies for the ratings; with `note`, also write the note on why (streamed as
    /// `token` events of task `recommend`, then `done`).
    Recommend {
        id: u32,
        #[serde(flatten)]
        recommend: RecommendRequest,
    },
    /// Fetch (or take from the cache) the Ask tab's two parts (the passages and their
    /// vectors), on the tab's first opening: the first load does not carry them. A failure
    /// is an `error` with this `id`.
    LoadAsk { id: u32 },
    /// Answer a question: the passages found (`answered`), then, unless nothing relevant was
    /// found, the answer streamed as `token` events of task `ask`, then `done`.
    Ask {
        id: u32,
        #[serde(flatten)]
        ask: AskRequest,
    },
    /// Stop the query `id` (its generation ends with `cancelled`).
    Cancel { id: u32 },
}

/// One retrieved movie as the page shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MovieHit {
    pub index: usize,
    pub title: String,
    pub year: Option<i32>,
    pub score: f32,
    pub tagline: Option<String>,
    pub overview: String,
    pub genres: Vec<String>,
}

/// A movie of the recs part as the page lists it for search (its number is its place).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecsTitle {
    pub title: String,
    pub year: Option<i32>,
}

/// A rated movie behind a recommendation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Because {
    pub movie: u32,
    pub title: String,
    pub year: Option<i32>,
    pub stars: f32,
}

/// One recommendation as the page shows it; tagline and overview when its title joined
/// the catalogue.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecommendedMovie {
    pub movie: u32,
    pub title: String,
    pub year: Option<i32>,
    pub score: f64,
    pub tagline: Option<String>,
    pub overview: String,
    pub because: Vec<Because>,
}

/// One retrieved passage as the page shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassageShown {
    /// The movie's position in the catalogue.
    pub movie: usize,
    pub title: String,
    pub year: Option<i32>,
    /// The chunk's words (the prompt puts "Title (year): " before them).
    pub text: String,
    /// The question's cosine with the chunk: what "I don't know" is decided on.
    pub cosine: f32,
    /// What ranked it (the fused reciprocal-rank sum by default).
    pub score: f32,
}

/// A download that failed and will be tried again.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Retry {
    /// The attempt about to be made (2 for the first retry).
    pub attempt: u32,
    pub attempts: u32,
    pub delay_ms: u64,
    pub reason: String,
}

/// Worker → page.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Loading: `stage` is `init` (starting the engine), `download` (one part's bytes;
    /// `cached` when they came from the Cache API) or `retry` (a part's download failed and
    /// is tried again after `retry.delay_ms`, resuming where it stopped).
    Progress {
        stage: String,
        asset: Option<String>,
        /// The view an on-demand part is fetched for ("ask", "recommend"; null at load),
        /// whose tab shows the progress.
        view: Option<String>,
        file: Option<String>,
        loaded: u64,
        total: Option<u64>,
        cached: bool,
        overall_loaded: u64,
        overall_total: u64,
        retry: Option<Retry>,
    },
    /// The bundle is loaded.
    Ready {
        movies: usize,
        generator: Option<String>,
        /// The catalogue's attribution, from the bundle (a custom catalogue shows its own).
        attribution: String,
        /// Whether the bundle has the recommender's part (the Recommend tab).
        recommend: bool,
        /// Whether the bundle has the passages and their vectors (the Ask tab).
        ask: bool,
        load_ms: f64,
        downloaded_bytes: u64,
        cached_bytes: u64,
        warnings: Vec<String>,
    },
    /// The context of query `id` is chosen; its generation has started (if any).
    Retrieved {
        id: u32,
        task: TaskName,
        movies: Vec<MovieHit>,
        embed_ms: f64,
        search_ms: f64,
        mode: SearchMode,
        /// Context items that fit the prompt's token budget.
        examples_in_prompt: usize,
        prompt_tokens: usize,
        /// The prompt itself (the benchmark runs its peer on the same text).
        prompt: String,
    },
    /// The recommender's part is loaded: its titles (for search) and the example profiles.
    RecsReady {
        movies: Vec<RecsTitle>,
        profiles: Vec<ResolvedProfile>,
        /// Where the numbers come from (the GroupLens citation).
        source: String,
        load_ms: f64,
        downloaded_bytes: u64,
        cached_bytes: u64,
    },
    /// The list for recommend query `id`; with `note`, its note is being written.
    Recommended {
        id: u32,
        task: TaskName,
        movies: Vec<RecommendedMovie>,
        /// The ranking's time in the engine (the page times the round trip itself).
        rank_ms: f64,
        note: bool,
        /// Recommendations the note's prompt holds, and its size.
        movies_in_prompt: usize,
        prompt_tokens: usize,
    },
    /// The Ask tab's parts are loaded.
    AskReady {
        /// Movies with a document.
        documents: usize,
        /// Chunks searched.
        passages: usize,
        load_ms: f64,
        downloaded_bytes: u64,
        cached_bytes: u64,
    },
    /// The passages found for ask query `id`, best first. `unknown`: the best one is below
    /// the relevance threshold, the answer is "I don't know." and nothing is generated;
    /// `answering`: the answer is being written (`token` events, then `done`).
    Answered {
        id: u32,
        task: TaskName,
        passages: Vec<PassageShown>,
        unknown: bool,
        answering: bool,
        embed_ms: f64,
        search_ms: f64,
        /// The first passages that fit the prompt's token budget, and its size.
        passages_in_prompt: usize,
        prompt_tokens: usize,
    },
    Token {
        id: u32,
        task: TaskName,
        text: String,
        tokens: usize,
        tokens_per_s: f64,
    },
    Done {
        id: u32,
        task: TaskName,
        stop: StopReason,
        text: String,
        tokens: usize,
        prompt_tokens: usize,
        /// Prompt tokens already in the KV cache (no prefill needed).
        cached_prompt_tokens: usize,
        ttft_ms: f64,
        prefill_tokens_per_s: f64,
        decode_tokens_per_s: f64,
        /// The worker's wasm memory after the query (it grows, never shrinks: a long session
        /// should see it level off).
        wasm_memory_bytes: u64,
    },
    /// Something failed; `fatal` when the page cannot go on without loading again. `id` is
    /// the query's, or null for loading.
    Error {
        id: Option<u32>,
        message: String,
        fatal: bool,
    },
}

/// One value of every message, to read field names from.
fn samples() -> (Vec<Request>, Vec<Event>) {
    let requests = vec![
        Request::Load,
        Request::Query {
            id: 0,
            task: TaskName::Tagline,
            tagline: TaglineRequest::default(),
        },
        Request::LoadRecs { id: 0 },
        Request::Recommend {
            id: 0,
            recommend: RecommendRequest::default(),
        },
        Request::LoadAsk { id: 0 },
        Request::Ask {
            id: 0,
            ask: AskRequest::default(),
        },
        Request::Cancel { id: 0 },
    ];
    let events = vec![
        Event::Progress {
            stage: String::new(),
            asset: None,
            view: None,
            file: None,
            loaded: 0,
            total: None,
            cached: false,
            overall_loaded: 0,
            overall_total: 0,
            retry: None,
        },
        Event::Ready {
            movies: 0,
            generator: None,
            attribution: String::new(),
            recommend: false,
            ask: false,
            load_ms: 0.0,
            downloaded_bytes: 0,
            cached_bytes: 0,
            warnings: Vec::new(),
        },
        Event::Retrieved {
            id: 0,
            task: TaskName::Tagline,
            movies: Vec::new(),
            embed_ms: 0.0,
            search_ms: 0.0,
            mode: SearchMode::default(),
            examples_in_prompt: 0,
            prompt_tokens: 0,
            prompt: String::new(),
        },
        Event::RecsReady {
            movies: Vec::new(),
            profiles: Vec::new(),
            source: String::new(),
            load_ms: 0.0,
            downloaded_bytes: 0,
            cached_bytes: 0,
        },
        Event::Recommended {
            id: 0,
            task: TaskName::Recommend,
            movies: Vec::new(),
            rank_ms: 0.0,
            note: false,
            movies_in_prompt: 0,
            prompt_tokens: 0,
        },
        Event::AskReady {
            documents: 0,
            passages: 0,
            load_ms: 0.0,
            downloaded_bytes: 0,
            cached_bytes: 0,
        },
        Event::Answered {
            id: 0,
            task: TaskName::Ask,
            passages: Vec::new(),
            unknown: false,
            answering: false,
            embed_ms: 0.0,
            search_ms: 0.0,
            passages_in_prompt: 0,
            prompt_tokens: 0,
        },
        Event::Token {
            id: 0,
            task: TaskName::Tagline,
            text: String::new(),
            tokens: 0,
            tokens_per_s: 0.0,
        },
        Event::Done {
            id: 0,
            task: TaskName::Tagline,
            stop: StopReason::EndOfText,
            text: String::new(),
            tokens: 0,
            prompt_tokens: 0,
            cached_prompt_tokens: 0,
            ttft_ms: 0.0,
            prefill_tokens_per_s: 0.0,
            decode_tokens_per_s: 0.0,
            wasm_memory_bytes: 0,
        },
        Event::Error {
            id: None,
            message: String::new(),
            fatal: false,
        },
    ];
    (requests, events)
}

/// `www/protocol.js`: one function per message that takes its fields by name and returns
/// the message (a field left out is an error, not a silent `undefined`), and each task's
/// defaults and limits.
pub fn javascript() -> String {
    let (requests, events) = samples();
    let mut out = String::from(
        "// Generated from web/src/protocol.rs: do not edit. `cargo test -p marquee-web` checks\n\
         // this file; MARQUEE_WRITE_FIXTURES=1 rewrites it.\n\n",
    );
    let defaults = serde_json::to_string_pretty(&TaglineRequest::default()).unwrap_or_default();
    let limits = serde_json::to_string_pretty(&LIMITS).unwrap_or_default();
    let recommend_defaults =
        serde_json::to_string_pretty(&RecommendRequest::default()).unwrap_or_default();
    let recommend_limits = serde_json::to_string_pretty(&RECOMMEND_LIMITS).unwrap_or_default();
    let ask_defaults = serde_json::to_string_pretty(&AskRequest::default()).unwrap_or_default();
    let ask_limits = serde_json::to_string_pretty(&ASK_LIMITS).unwrap_or_default();
    out.push_str(&format!(
        "/** The jobs, by the name their messages carry. */\n\
         export const TASKS = {{ tagline: {:?}, recommend: {:?}, ask: {:?} }};\n\n\
         /** A tagline query's fields left out take these values (the engine's defaults). */\n\
         export const TAGLINE_DEFAULTS = Object.freeze({defaults});\n\n\
         /** The bounds the engine checks a tagline query against. */\n\
         export const TAGLINE_LIMITS = Object.freeze({limits});\n\n\
         /** A recommend request's fields left out take these values (the engine's defaults). */\n\
         export const RECOMMEND_DEFAULTS = Object.freeze({recommend_defaults});\n\n\
         /** The bounds the engine checks a recommend request against. */\n\
         export const RECOMMEND_LIMITS = Object.freeze({recommend_limits});\n\n\
         /** An ask request's fields left out take these values (the engine's defaults). */\n\
         export const ASK_DEFAULTS = Object.freeze({ask_defaults});\n\n\
         /** The bounds the engine checks an ask request against. */\n\
         export const ASK_LIMITS = Object.freeze({ask_limits});\n\n",
        Tagline::NAME,
        Recommend::NAME,
        Ask::NAME
    ));
    out.push_str(
        "function complete(type, fields, names) {\n  \
         const message = { type };\n  \
         for (const name of names) {\n    \
         if (!(name in fields)) throw new Error(`${type} message without ${name}`);\n    \
         message[name] = fields[name];\n  }\n  \
         return message;\n}\n",
    );
    let mut emit = |value: serde_json::Value, what: &str| {
        let Some(object) = value.as_object() else {
            return;
        };
        let kind = object
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_string();
        let names: Vec<&String> = object.keys().filter(|k| *k != "type").collect();
        let list = names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ");
        // A job's fields left out take the task's defaults.
        let fields = match kind.as_str() {
            "query" => "{ ...TAGLINE_DEFAULTS, ...fields }",
            "recommend" => "{ ...RECOMMEND_DEFAULTS, ...fields }",
            "ask" => "{ ...ASK_DEFAULTS, ...fields }",
            _ => "fields",
        };
        out.push_str(&format!(
            "\n/** {what} `{kind}`. */\nexport const {kind} = (fields = {{}}) => complete('{kind}', {fields}, [{list}]);\n"
        ));
    };
    for request in requests {
        emit(
            serde_json::to_value(request).unwrap_or_default(),
            "Page → worker:",
        );
    }
    for event in events {
        emit(
            serde_json::to_value(event).unwrap_or_default(),
            "Worker → page:",
        );
    }
    out
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use marquee::task::tagline::Strategy;

    #[test]
    fn the_committed_javascript_is_generated_from_these_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../www/protocol.js");
        let generated = javascript();
        if std::env::var_os("MARQUEE_WRITE_FIXTURES").is_some() {
            std::fs::write(&path, &generated).expect("writes www/protocol.js");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "www/protocol.js is stale: run MARQUEE_WRITE_FIXTURES=1 cargo test -p marquee-web"
        );
    }

    #[test]
    fn a_query_reads_its_task_and_defaults() {
        let query: Request = serde_json::from_str(
            r#"{"type": "query", "id": 3, "task": "tagline", "idea": "a shark", "k": 2}"#,
        )
        .expect("parses");
        let Request::Query { id, task, tagline } = query else {
            panic!("not a query");
        };
        assert_eq!((id, task), (3, TaskName::Tagline));
        assert_eq!(tagline.k, 2);
        assert_eq!(tagline.seed, TaglineRequest::default().seed);
        assert_eq!(tagline.decoding, Strategy::Sampled, "sampled unless asked");
        let beam: Request = serde_json::from_str(
            r#"{"type": "query", "id": 4, "task": "tagline", "idea": "a shark",
                "decoding": "beam", "beam_width": 2}"#,
        )
        .expect("parses");
        let Request::Query { tagline, .. } = beam else {
            panic!("not a query");
        };
        assert_eq!((tagline.decoding, tagline.beam_width), (Strategy::Beam, 2));
        assert!(serde_json::from_str::<Request>(
            r#"{"type": "query", "id": 1, "task": "tagline", "decoding": "nucleus"}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Request>(r#"{"type": "query", "id": 1}"#).is_err());
        assert!(serde_json::from_str::<Request>(
            r#"{"type": "query", "id": 1, "task": "poetry", "idea": "x"}"#
        )
        .is_err());
    }

    #[test]
    fn a_recommend_request_reads_its_ratings_and_defaults() {
        let request: Request = serde_json::from_str(
            r#"{"type": "recommend", "id": 5, "ratings": [{"movie": 0, "stars": 5}], "note": false}"#,
        )
        .expect("parses");
        let Request::Recommend { id, recommend } = request else {
            panic!("not a recommend request");
        };
        assert_eq!((id, recommend.ratings.len(), recommend.note), (5, 1, false));
        assert_eq!(recommend.n, RecommendRequest::default().n);
        assert!(matches!(
            serde_json::from_str::<Request>(r#"{"type": "load_recs", "id": 2}"#),
            Ok(Request::LoadRecs { id: 2 })
        ));
        assert!(serde_json::from_str::<Request>(
            r#"{"type": "recommend", "id": 1, "ratings": [{"movie": "Heat"}]}"#
        )
        .is_err());
    }

    #[test]
    fn an_ask_request_reads_its_question_and_defaults() {
        let request: Request = serde_json::from_str(
            r#"{"type": "ask", "id": 7, "question": "Who directed Alien?", "k": 5}"#,
        )
        .expect("parses");
        let Request::Ask { id, ask } = request else {
            panic!("not an ask request");
        };
        assert_eq!(
            (id, ask.question.as_str(), ask.k),
            (7, "Who directed Alien?", 5)
        );
        let defaults = AskRequest::default();
        assert_eq!(ask.min_relevance, defaults.min_relevance);
        assert_eq!(ask.max_tokens, defaults.max_tokens);
        assert_eq!(ask.signal, defaults.signal);
        assert!(matches!(
            serde_json::from_str::<Request>(r#"{"type": "load_ask", "id": 2}"#),
            Ok(Request::LoadAsk { id: 2 })
        ));
        assert!(serde_json::from_str::<Request>(
            r#"{"type": "ask", "id": 1, "question": "q", "signal": "psychic"}"#
        )
        .is_err());
        let answered = serde_json::to_value(Event::Answered {
            id: 1,
            task: TaskName::Ask,
            passages: vec![PassageShown::default()],
            unknown: true,
            answering: false,
            embed_ms: 0.0,
            search_ms: 0.0,
            passages_in_prompt: 0,
            prompt_tokens: 0,
        })
        .expect("serializes");
        assert_eq!(answered["type"], "answered");
        assert_eq!(answered["task"], "ask");
        assert_eq!(answered["passages"][0]["cosine"], 0.0);
    }
}
