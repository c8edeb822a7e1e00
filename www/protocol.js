// Generated from web/src/protocol.rs: do not edit. `cargo test -p marquee-web` checks
// this file; MARQUEE_WRITE_FIXTURES=1 rewrites it.

/** The jobs, by the name their messages carry. */
export const TASKS = { tagline: "tagline" };

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
  "length_penalty": 1.0
});

/** The bounds the engine checks a tagline query against. */
export const TAGLINE_LIMITS = Object.freeze({
  "max_k": 20,
  "max_temperature": 2.0,
  "max_top_k": 200,
  "max_repeat_penalty": 2.0,
  "max_tokens": 128,
  "max_beam_width": 8,
  "max_length_penalty": 2.0
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
export const query = (fields = {}) => complete('query', { ...TAGLINE_DEFAULTS, ...fields }, ['beam_width', 'decoding', 'examples', 'examples_seed', 'id', 'idea', 'k', 'length_penalty', 'max_tokens', 'mode', 'repeat_penalty', 'seed', 'style', 'task', 'temperature', 'top_k', 'top_p']);

/** Page → worker: `cancel`. */
export const cancel = (fields = {}) => complete('cancel', fields, ['id']);

/** Worker → page: `progress`. */
export const progress = (fields = {}) => complete('progress', fields, ['asset', 'cached', 'file', 'loaded', 'overall_loaded', 'overall_total', 'retry', 'stage', 'total']);

/** Worker → page: `ready`. */
export const ready = (fields = {}) => complete('ready', fields, ['attribution', 'cached_bytes', 'downloaded_bytes', 'generator', 'load_ms', 'movies', 'warnings']);

/** Worker → page: `retrieved`. */
export const retrieved = (fields = {}) => complete('retrieved', fields, ['embed_ms', 'examples_in_prompt', 'id', 'mode', 'movies', 'prompt', 'prompt_tokens', 'search_ms', 'task']);

/** Worker → page: `token`. */
export const token = (fields = {}) => complete('token', fields, ['id', 'task', 'text', 'tokens', 'tokens_per_s']);

/** Worker → page: `done`. */
export const done = (fields = {}) => complete('done', fields, ['cached_prompt_tokens', 'decode_tokens_per_s', 'id', 'prefill_tokens_per_s', 'prompt_tokens', 'stop', 'task', 'text', 'tokens', 'ttft_ms', 'wasm_memory_bytes']);

/** Worker → page: `error`. */
export const error = (fields = {}) => complete('error', fields, ['fatal', 'id', 'message']);
