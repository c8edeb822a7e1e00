// Generated from web/src/protocol.rs: do not edit. `cargo test -p marquee-web` checks
// this file; MARQUEE_WRITE_FIXTURES=1 rewrites it.

/** The jobs, by the name their messages carry. */
export const TASKS = { tagline: "tagline", recommend: "recommend", ask: "ask" };

/** A tagline query's fields left out take these values (the engine's defaults). */
export const TAGLINE_DEFAULTS = Object.freeze({
  "idea": "",
  "k": 4,
  "mode": "hnsw",
  "examples": "retrieved",
  "examples_seed": 7,
  "style": "list",
  "temperature": 0.7,
  "top_k": 40,
  "top_p": 0.9,
  "repeat_penalty": 1.1,
  "seed": 299792458,
  "max_tokens": 32,
  "decoding": "sampled",
  "beam_width": 4,
  "length_penalty": 1.0,
  "no_repeat_ngram": 3
});

/** The bounds the engine checks a tagline query against. */
export const TAGLINE_LIMITS = Object.freeze({
  "max_k": 20,
  "max_temperature": 2.0,
  "max_top_k": 200,
  "max_repeat_penalty": 2.0,
  "max_tokens": 128,
  "max_beam_width": 8,
  "max_length_penalty": 2.0,
  "max_no_repeat_ngram": 8
});

/** A recommend request's fields left out take these values (the engine's defaults). */
export const RECOMMEND_DEFAULTS = Object.freeze({
  "ratings": [],
  "n": 10,
  "note": true,
  "note_movies": 4,
  "temperature": 0.7,
  "top_k": 40,
  "top_p": 0.9,
  "repeat_penalty": 1.2,
  "seed": 299792458,
  "max_tokens": 96
});

/** The bounds the engine checks a recommend request against. */
export const RECOMMEND_LIMITS = Object.freeze({
  "max_ratings": 1000,
  "max_n": 50,
  "max_note_movies": 8,
  "max_temperature": 2.0,
  "max_top_k": 200,
  "max_repeat_penalty": 2.0,
  "max_tokens": 256,
  "min_stars": 1.0,
  "max_stars": 5.0
});

/** An ask request's fields left out take these values (the engine's defaults). */
export const ASK_DEFAULTS = Object.freeze({
  "question": "",
  "k": 3,
  "signal": "fused",
  "context": "retrieved",
  "max_context_tokens": 96,
  "min_relevance": 0.35,
  "max_tokens": 24
});

/** The bounds the engine checks an ask request against. */
export const ASK_LIMITS = Object.freeze({
  "max_k": 10,
  "max_question_bytes": 300,
  "max_context_tokens": 512,
  "max_tokens": 64
});

function complete(type, fields, names) {
  const message = { type };
  for (const name of names) {
    if (!(name in fields)) throw new Error(`${type} message without ${name}`);
    message[name] = fields[name];
  }
  return message;
}

/** Page → worker: `load`. */
export const load = (fields = {}) => complete('load', fields, []);

/** Page → worker: `query`. */
export const query = (fields = {}) => complete('query', { ...TAGLINE_DEFAULTS, ...fields }, ['beam_width', 'decoding', 'examples', 'examples_seed', 'id', 'idea', 'k', 'length_penalty', 'max_tokens', 'mode', 'no_repeat_ngram', 'repeat_penalty', 'seed', 'style', 'task', 'temperature', 'top_k', 'top_p']);

/** Page → worker: `load_recs`. */
export const load_recs = (fields = {}) => complete('load_recs', fields, ['id']);

/** Page → worker: `recommend`. */
export const recommend = (fields = {}) => complete('recommend', { ...RECOMMEND_DEFAULTS, ...fields }, ['id', 'max_tokens', 'n', 'note', 'note_movies', 'ratings', 'repeat_penalty', 'seed', 'temperature', 'top_k', 'top_p']);

/** Page → worker: `load_ask`. */
export const load_ask = (fields = {}) => complete('load_ask', fields, ['id']);

/** Page → worker: `ask`. */
export const ask = (fields = {}) => complete('ask', { ...ASK_DEFAULTS, ...fields }, ['context', 'id', 'k', 'max_context_tokens', 'max_tokens', 'min_relevance', 'question', 'signal']);

/** Page → worker: `cancel`. */
export const cancel = (fields = {}) => complete('cancel', fields, ['id']);

/** Worker → page: `progress`. */
export const progress = (fields = {}) => complete('progress', fields, ['asset', 'cached', 'file', 'loaded', 'overall_loaded', 'overall_total', 'retry', 'stage', 'total', 'view']);

/** Worker → page: `ready`. */
export const ready = (fields = {}) => complete('ready', fields, ['ask', 'attribution', 'cached_bytes', 'downloaded_bytes', 'generator', 'load_ms', 'movies', 'recommend', 'warnings']);

/** Worker → page: `retrieved`. */
export const retrieved = (fields = {}) => complete('retrieved', fields, ['embed_ms', 'examples_in_prompt', 'id', 'mode', 'movies', 'prompt', 'prompt_tokens', 'search_ms', 'task']);

/** Worker → page: `recs_ready`. */
export const recs_ready = (fields = {}) => complete('recs_ready', fields, ['cached_bytes', 'downloaded_bytes', 'load_ms', 'movies', 'profiles', 'source']);

/** Worker → page: `recommended`. */
export const recommended = (fields = {}) => complete('recommended', fields, ['id', 'movies', 'movies_in_prompt', 'note', 'prompt_tokens', 'rank_ms', 'task']);

/** Worker → page: `ask_ready`. */
export const ask_ready = (fields = {}) => complete('ask_ready', fields, ['cached_bytes', 'documents', 'downloaded_bytes', 'load_ms', 'passages']);

/** Worker → page: `answered`. */
export const answered = (fields = {}) => complete('answered', fields, ['answering', 'embed_ms', 'id', 'passages', 'passages_in_prompt', 'prompt_tokens', 'search_ms', 'task', 'unknown']);

/** Worker → page: `token`. */
export const token = (fields = {}) => complete('token', fields, ['id', 'task', 'text', 'tokens', 'tokens_per_s']);

/** Worker → page: `done`. */
export const done = (fields = {}) => complete('done', fields, ['cached_prompt_tokens', 'decode_tokens_per_s', 'id', 'prefill_tokens_per_s', 'prompt_tokens', 'stop', 'task', 'text', 'tokens', 'ttft_ms', 'wasm_memory_bytes']);

/** Worker → page: `error`. */
export const error = (fields = {}) => complete('error', fields, ['fatal', 'id', 'message']);
