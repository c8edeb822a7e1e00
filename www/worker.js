// Marquee's module Web Worker: all model work happens here, the page only draws.
//
// Loading: read the bundle's manifest, then get every part from the Cache API (keyed by
// its sha256) or the network (with progress), hand it to the wasm Session, which checks
// size and sha256 before use. A cached part that fails the check is dropped and fetched
// again; a fresh download that fails it is an error naming the part, and nothing unverified
// is ever cached. A dropped connection or a server error is retried with backoff, resuming
// where it stopped (HTTP Range); a 404 or an HTML page instead of a part is not. Tabs
// loading at once take turns per part (Web Locks), so the second finds the first's copy in
// the cache. Once loaded, parts of earlier deploys are removed from the cache. If the
// browser will not store a part (quota), the page still works and says that the next visit
// downloads again.
//
// Queries: `session.query` runs the job up to its generation, then `session.step` until it
// is done (each call one piece of text, or one beam-search pass that made no text certain),
// yielding to the event loop in between so a `cancel` message gets through.
//
// Recommendations: the recs part is on demand (the manifest says which parts are), fetched
// and cached like the others on the first `load_recs`, when the page's Recommend tab first
// opens, so the first load does not grow. `recommend` ranks between any two model passes
// (a tagline streaming does not hold it up); with `note` it stops any generation under way
// and streams the note as a query streams its tagline.
//
// Ask: the passages, their vectors and the reader adapter are on demand too, fetched
// together on the first `load_ask` (the Ask tab's first opening), with per-part progress. `ask` stops any
// generation under way, then retrieves and, unless the answer is "I don't know.", streams it.
// Every message is built by protocol.js, generated from web/src/protocol.rs.

import init, { Session } from './marquee-web.js';
import * as protocol from './protocol.js';

const BUNDLE = new URL('./bundle/', import.meta.url);
const CACHE_NAME = 'marquee-parts-v1';
const PROGRESS_INTERVAL_MS = 100;
// Waits before each retry of a failed download; one more failure is an error.
const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000];

let session = null;
let loading = null;
let activeId = null;
// The cache, and the parts fetched on demand (not at load), kept from the last load.
let partsCache = null;
let onDemand = [];
let recsLoading = null;
let askLoading = null;
// The on-demand parts a view needs (each part says its view: `part::view_of`).
const partsFor = (view) => onDemand.filter((p) => p.view === view);

const post = (message) => self.postMessage(message);

self.onmessage = (event) => {
  const message = event.data ?? {};
  switch (message.type) {
    case 'load':
      loading ??= load().finally(() => { loading = null; });
      break;
    case 'query':
      runQuery(message);
      break;
    case 'load_recs':
      recsLoading ??= loadRecs(message.id).finally(() => { recsLoading = null; });
      break;
    case 'recommend':
      runRecommend(message);
      break;
    case 'load_ask':
      askLoading ??= loadAsk(message.id).finally(() => { askLoading = null; });
      break;
    case 'ask':
      runAsk(message);
      break;
    case 'cancel':
      cancel(message.id);
      break;
    default:
      console.warn('worker: unknown message', message);
  }
};

async function load() {
  const started = performance.now();
  try {
    session?.free();
    session = null;
    post(protocol.progress({ stage: 'init', asset: null, view: null, file: null,
      loaded: 0, total: null, cached: false, overall_loaded: 0, overall_total: 0, retry: null }));
    await init({ module_or_path: new URL('./marquee-web_bg.wasm', import.meta.url) });
    const manifestResponse = await fetch(new URL('manifest.json', BUNDLE), { cache: 'no-cache' });
    if (!manifestResponse.ok) {
      throw new Error(`cannot load the bundle manifest (HTTP ${manifestResponse.status})`);
    }
    const next = new Session(new Uint8Array(await manifestResponse.arrayBuffer()));
    const all = next.parts();
    const parts = all.filter((part) => !part.on_demand);
    const stats = newStats();
    const progress = new Progress(parts);
    const cache = await openCache(stats.warnings);
    partsCache = cache;
    onDemand = all.filter((part) => part.on_demand);
    await loadParts(next, parts, cache, progress, stats);
    if (stats.uncached.length > 0) {
      stats.warnings.push(`Browser storage is full or unavailable, so ${stats.uncached.join(', ')} ` +
        `${stats.uncached.length === 1 ? 'was' : 'were'} not cached: the page works, ` +
        'but the next visit downloads them again. Freeing space for this site fixes it.');
    }
    progress.stage('init');
    const loaded = next.finish();
    session = next;
    // On-demand parts count as current: a cached recs or passages part survives the next load.
    if (cache) await forgetOtherParts(cache, all);
    post(protocol.ready({
      movies: loaded.movies,
      generator: loaded.generator,
      attribution: loaded.attribution,
      recommend: loaded.recommend,
      ask: loaded.ask,
      load_ms: performance.now() - started,
      downloaded_bytes: stats.downloaded,
      cached_bytes: stats.cached,
      warnings: stats.warnings,
    }));
  } catch (error) {
    post(protocol.error({ id: null, message: describe(error), fatal: true }));
  }
}

async function openCache(warnings) {
  try {
    return await caches.open(CACHE_NAME);
  } catch (error) {
    warnings.push(`This browser will not cache the models (${describe(error)}); ` +
      'the page works, but each visit downloads them again.');
    return null;
  }
}

// The Cache API key of a part: its file and hash, so each deploy's parts have their own.
const partKey = (part) => new URL(`${part.file}?sha256=${part.sha256}`, BUNDLE).href;

// Removes cached parts that this bundle does not use (an earlier deploy's), so storage does
// not grow with every deploy.
async function forgetOtherParts(cache, parts) {
  try {
    const current = new Set(parts.map(partKey));
    for (const request of await cache.keys()) {
      if (!current.has(request.url)) await cache.delete(request);
    }
  } catch (error) {
    console.warn('worker: could not clean the parts cache:', error);
  }
}

// What a load counts: bytes downloaded and taken from the cache, warnings for the page, and
// the parts the browser would not store.
const newStats = () => ({ downloaded: 0, cached: 0, warnings: [], uncached: [] });

// Adds `parts` to `target`, downloading in parallel; each part is verified as it arrives.
// The first part that fails stops the others' downloads (and their progress).
function loadParts(target, parts, cache, progress, stats) {
  const abort = new AbortController();
  return Promise.all(parts.map((part) => loadPart(target, part, cache, progress, stats, abort.signal)
    .catch((error) => { abort.abort(); throw error; })));
}

// One part at a time per hash across this site's tabs and workers: a tab that loads while
// another downloads the same part waits, then reads the other's verified copy.
function oneAtATime(part, signal, work) {
  const locks = self.navigator?.locks;
  return locks ? locks.request(`marquee-part-${part.sha256}`, { signal }, work) : work();
}

// Adds one part to the session, from the cache when a good copy is there, else from the
// network. The session verifies size and sha256; only verified bytes are cached.
function loadPart(target, part, cache, progress, stats, signal) {
  return oneAtATime(part, signal, () => loadPartNow(target, part, cache, progress, stats, signal));
}

async function loadPartNow(target, part, cache, progress, stats, signal) {
  const key = partKey(part);
  const hit = cache ? await cache.match(key) : undefined;
  if (hit) {
    try {
      const pieces = await readCached(hit, part);
      if (!target.addPart(part.name, pieces)) free(pieces);
      stats.cached += part.bytes;
      progress.update(part, part.bytes, part.bytes, true);
      return;
    } catch (error) {
      // Truncated or corrupted in storage: drop it and fetch a fresh copy.
      console.warn(`worker: cached ${part.file} is damaged (${describe(error)}); fetching it again`);
      await cache.delete(key);
    }
  }
  const pieces = await download(part, progress, signal);
  const kept = target.addPart(part.name, pieces);
  stats.downloaded += part.bytes;
  if (cache) await putInCache(cache, key, part, pieces, stats);
  if (!kept) free(pieces);
}

// Stores a verified part; a browser that will not store it (quota) is noted, not an error.
async function putInCache(cache, key, part, pieces, stats) {
  try {
    await cache.put(key, new Response(streamOf(pieces), {
      headers: { 'content-type': 'application/octet-stream' },
    }));
  } catch (error) {
    stats.uncached.push(part.file);
    if (error?.name !== 'QuotaExceededError') {
      console.warn(`worker: could not cache ${part.file}:`, error);
    }
  }
}

// Frees the pieces of a part the session copied (`addPart` said it does not keep them) now,
// rather than at the next garbage collection (`ArrayBuffer.prototype.transfer`, where the
// browser has it).
function free(pieces) {
  for (const piece of pieces) piece.buffer.transfer?.(0);
}

// A part's bytes are kept in pieces of at most this size, each with its own buffer: the
// session lets each go as soon as what it holds has been read (web/src/js_bytes.rs), so the
// generator's file is never whole in memory beside the whole model.
const PIECE_BYTES = 4 << 20;

// Empty pieces for a part of `bytes` bytes.
function newPieces(bytes) {
  const pieces = [];
  for (let at = 0; at < bytes || pieces.length === 0; at += PIECE_BYTES) {
    pieces.push(new Uint8Array(Math.min(PIECE_BYTES, bytes - at)));
  }
  return pieces;
}

// Copies `chunk` into `pieces` from byte `at` of the part on.
function writeAt(pieces, at, chunk) {
  let done = 0;
  while (done < chunk.length) {
    const piece = pieces[Math.floor((at + done) / PIECE_BYTES)];
    const offset = (at + done) % PIECE_BYTES;
    const n = Math.min(piece.length - offset, chunk.length - done);
    piece.set(chunk.subarray(done, done + n), offset);
    done += n;
  }
}

// Bytes pass between the browser's streams and the pieces through small buffers of this
// size, never the pieces themselves: a buffer a stream has held (read into, or enqueued) is
// also referenced by the browser's own objects for it, until the worker's next garbage
// collection, so detaching it (`free`, and the session's `transfer(0)`) no longer frees it.
// Handed to the streams, the generator's pieces were all still in memory after the load
// (87.6 MiB of the renderer, Chromium's memory-infra dump).
const BOUNCE_BYTES = 256 << 10;

// The pieces as a stream, for the Cache API, copied through two buffers in turn. A Blob or
// one buffer would first copy the whole part (92 MB for the generator) in this process. With
// no queue (high-water mark 0) the cache asks for a chunk only once it has taken the one
// before, so the buffer refilled is never one it is still reading.
function streamOf(pieces) {
  const bounce = [new Uint8Array(BOUNCE_BYTES), new Uint8Array(BOUNCE_BYTES)];
  let next = 0;
  let at = 0; // within pieces[next]
  return new ReadableStream({
    pull(controller) {
      if (next >= pieces.length) {
        controller.close();
        return;
      }
      const piece = pieces[next];
      const n = Math.min(BOUNCE_BYTES, piece.length - at);
      const chunk = bounce[0].subarray(0, n);
      chunk.set(piece.subarray(at, at + n));
      bounce.reverse();
      at += n;
      if (at >= piece.length) {
        next += 1;
        at = 0;
      }
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
}

// Adds `chunk` after the `state.received` bytes in `state.pieces`; an error if the part
// would outgrow the manifest's size.
function append(state, part, chunk) {
  if (state.received + chunk.length > part.bytes) {
    throw new Error(`the file is larger than the manifest's ${part.bytes} bytes`);
  }
  writeAt(state.pieces, state.received, chunk);
  state.received += chunk.length;
}

// Reads `body` into `state.pieces` after the `state.received` bytes, calling `onRead` after
// each read. With `byob`, where the body is a byte stream (Chromium, Firefox), a "bring your
// own buffer" reader reads into one small buffer (`BOUNCE_BYTES`), copied into the pieces
// after each read: a plain reader hands over a new chunk per read, and a first visit's 120 MB
// of chunks were garbage still uncollected at the load's peak (25-70 MiB of renderer memory,
// bench/browser). A read that fails is `Retryable` (the connection dropped mid-file; the
// bytes copied so far are kept, and a retry resumes after them); a body longer than the
// manifest says is not.
async function readInto(body, state, part, onRead, byob = true) {
  let reader = null;
  try {
    reader = byob ? body.getReader({ mode: 'byob' }) : null;
  } catch {
    // Not a byte stream: chunk by chunk.
  }
  const plain = reader ? null : body.getReader();
  let bounce = plain ? null : new Uint8Array(BOUNCE_BYTES);
  for (;;) {
    const { done, value } = await (plain ? plain.read() : reader.read(bounce))
      .catch((error) => { throw new Retryable(describe(error)); });
    if (done) return;
    append(state, part, value);
    onRead();
    // The read took the buffer and gives it back (moved) under `value`.
    if (!plain) bounce = new Uint8Array(value.buffer);
  }
}

// A cached copy of `part`, in pieces; an error if it is not the manifest's size. Chunk by
// chunk: Chromium 156 stalls reading Cache API bodies with a "bring your own buffer" reader
// (the load never ends), and a load from the cache never peaked above the loaded page anyway.
async function readCached(hit, part) {
  const state = { pieces: newPieces(part.bytes), received: 0 };
  await readInto(hit.body, state, part, () => {}, false);
  if (state.received !== part.bytes) throw new Error(`it has ${state.received} of ${part.bytes} bytes`);
  return state.pieces;
}

// A failure worth another try: the connection dropped, the server was busy or failed.
class Retryable extends Error {}

// Downloads a part into a buffer of the manifest's size, with progress; a failed attempt is
// retried after a growing delay, asking only for the bytes still missing. The URL carries the
// hash so no HTTP cache serves a stale copy. Errors name the part.
async function download(part, progress, signal) {
  const url = new URL(`${part.file}?sha256=${part.sha256}`, BUNDLE);
  // `received` counts the bytes in hand across attempts, so a retry resumes after them.
  const state = { pieces: newPieces(part.bytes), received: 0 };
  for (let attempt = 1; ; attempt++) {
    try {
      await fetchInto(url, part, state, progress, signal);
      if (state.received === part.bytes) return state.pieces;
      throw new Retryable(`the download ended after ${state.received} of ${part.bytes} bytes`);
    } catch (error) {
      if (signal.aborted) throw error; // another part failed: the load is over
      const attempts = RETRY_DELAYS_MS.length + 1;
      if (!(error instanceof Retryable) || attempt >= attempts) {
        const tries = attempt > 1 ? ` (after ${attempt} attempts)` : '';
        throw new Error(`cannot download ${part.name} (${part.file}): ${describe(error)}${tries}`);
      }
      const delay = RETRY_DELAYS_MS[attempt - 1];
      progress.retry(part, state.received, {
        attempt: attempt + 1, attempts, delay_ms: delay, reason: describe(error),
      });
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

// One attempt: fetches the bytes after `state.received` into `state.pieces`, counting them in
// `state.received` as they arrive.
async function fetchInto(url, part, state, progress, signal) {
  const from = state.received;
  let response;
  try {
    response = await fetch(url, from > 0 ? { headers: { Range: `bytes=${from}-` }, signal } : { signal });
  } catch (error) {
    throw new Retryable(describe(error)); // offline, connection refused or reset
  }
  if (response.status === 206) {
    const start = Number(/bytes (\d+)-/.exec(response.headers.get('content-range') ?? '')?.[1]);
    if (start !== from) throw new Retryable(`the server resumed at byte ${start}, not ${from}`);
  } else if (response.ok) {
    state.received = 0; // the server sent the whole file again
  } else if (response.status >= 500 || response.status === 408 || response.status === 429) {
    throw new Retryable(`HTTP ${response.status}`);
  } else {
    throw new Error(`the server answered HTTP ${response.status}`);
  }
  if ((response.headers.get('content-type') ?? '').includes('text/html')) {
    throw new Error('the server answered with an HTML page instead of the file');
  }
  try {
    await readInto(response.body, state, part, () => progress.update(part, state.received, part.bytes, false));
  } finally {
    progress.update(part, state.received, part.bytes, false, true);
  }
}

// Per-part and overall byte counts, posted at most every PROGRESS_INTERVAL_MS per part.
class Progress {
  constructor(parts) {
    this.loaded = new Map(parts.map((p) => [p.name, 0]));
    this.total = parts.reduce((sum, p) => sum + p.bytes, 0);
    this.lastPost = new Map();
  }

  update(part, loaded, total, cached, force = false) {
    this.loaded.set(part.name, loaded);
    const now = performance.now();
    if (!force && !cached && now - (this.lastPost.get(part.name) ?? 0) < PROGRESS_INTERVAL_MS) {
      return;
    }
    this.lastPost.set(part.name, now);
    post(protocol.progress({
      stage: 'download', asset: part.name, view: part.view ?? null, file: part.file, loaded, total, cached,
      overall_loaded: this.overall(), overall_total: this.total, retry: null,
    }));
  }

  // Bytes in hand over all parts.
  overall() {
    let sum = 0;
    for (const value of this.loaded.values()) sum += value;
    return sum;
  }

  retry(part, loaded, retry) {
    this.loaded.set(part.name, loaded);
    post(protocol.progress({
      stage: 'retry', asset: part.name, view: part.view ?? null, file: part.file, loaded, total: part.bytes,
      cached: false, overall_loaded: this.overall(), overall_total: this.total, retry,
    }));
  }

  stage(stage) {
    post(protocol.progress({
      stage, asset: null, view: null, file: null, loaded: 0, total: null,
      cached: false, overall_loaded: this.total, overall_total: this.total, retry: null,
    }));
  }
}

async function runQuery(request) {
  if (!session) {
    post(protocol.error({ id: request.id, message: 'The models are still loading.', fatal: false }));
    return;
  }
  if (activeId !== null) cancel(activeId); // a note being written ends as `cancelled`
  activeId = request.id;
  try {
    post(session.query(request));
    await stream(request.id);
  } catch (error) {
    post(protocol.error({ id: request.id, message: describe(error), fatal: false }));
  } finally {
    if (activeId === request.id) activeId = null;
  }
}

// Fetches (or takes from the cache) the recs part and opens it: `recs_ready`, or an error
// with the request's id, which the Recommend tab shows with a retry.
function loadRecs(id) {
  return loadView(id, 'recommend', 'Recommendations', 'this bundle has none (it was built with --no-recs)',
    (loaded) => {
      const opened = session.openRecs();
      return protocol.recs_ready({
        movies: opened.movies, profiles: opened.profiles, source: opened.source, ...loaded,
      });
    });
}

async function runRecommend(request) {
  if (!session) {
    post(protocol.error({ id: request.id, message: 'The models are still loading.', fatal: false }));
    return;
  }
  let streaming = false;
  try {
    // One generation at a time: a note stops whatever is being written (its view hears
    // `done` with `cancelled`); a ranking alone leaves it running.
    if (request.note && activeId !== null) cancel(activeId);
    const event = session.recommend(request);
    post(event);
    if (!event.note) return;
    streaming = true;
    activeId = request.id;
    await stream(request.id);
  } catch (error) {
    post(protocol.error({ id: request.id, message: describe(error), fatal: false }));
  } finally {
    if (streaming && activeId === request.id) activeId = null;
  }
}

function loadAsk(id) {
  return loadView(id, 'ask', 'Ask', 'this bundle has no passages (it was built with --no-passages)',
    (loaded) => {
      const opened = session.openAsk();
      return protocol.ask_ready({ documents: opened.documents, passages: opened.passages, ...loaded });
    });
}

// Fetches (or takes from the cache) a view's on-demand parts, in parallel with progress,
// and opens them: `open(loaded)` returns the view's ready message, given the load's time and
// bytes. An error carries the request's id, which the view shows with a retry.
async function loadView(id, view, label, missing, open) {
  const started = performance.now();
  try {
    if (!session) throw new Error('the models are still loading');
    const parts = partsFor(view);
    if (parts.length === 0) throw new Error(missing);
    const stats = newStats();
    await loadParts(session, parts, partsCache, new Progress(parts), stats);
    post(open({
      load_ms: performance.now() - started,
      downloaded_bytes: stats.downloaded,
      cached_bytes: stats.cached,
    }));
  } catch (error) {
    post(protocol.error({ id, message: `${label}: ${describe(error)}`, fatal: false }));
  }
}

async function runAsk(request) {
  if (!session) {
    post(protocol.error({ id: request.id, message: 'The models are still loading.', fatal: false }));
    return;
  }
  try {
    // One generation at a time: a question stops whatever is being written (its view hears
    // `done` with `cancelled`).
    if (activeId !== null) cancel(activeId);
    const event = session.ask(request);
    post(event);
    if (!event.answering) return;
    activeId = request.id;
    await stream(request.id);
  } catch (error) {
    post(protocol.error({ id: request.id, message: describe(error), fatal: false }));
  } finally {
    if (activeId === request.id) activeId = null;
  }
}

// Steps the generation of job `id` until it is done or another job takes over.
async function stream(id) {
  await tick(); // let a Stop that came in during retrieval or ranking through
  while (activeId === id) {
    const event = session.step();
    if (event === null) break;
    // undefined: a model pass made no text certain yet (beam search); step again.
    if (event !== undefined) {
      post(event);
      if (event.type === 'done') break;
    }
    await tick();
  }
}

function cancel(id) {
  if (session && activeId !== null && (id === undefined || id === activeId)) {
    activeId = null;
    const done = session.cancel();
    if (done !== null) post(done);
  }
}

// Yields to the event loop. A MessageChannel message is not clamped the way nested
// setTimeout calls are (4 ms each), which would cost a noticeable share of decode time.
const channel = new MessageChannel();
const waiting = [];
channel.port1.onmessage = () => waiting.shift()?.();
function tick() {
  return new Promise((resolve) => {
    waiting.push(resolve);
    channel.port2.postMessage(null);
  });
}

function describe(error) {
  return error instanceof Error ? error.message : String(error);
}
