// Marquee's module Web Worker: all model work happens here, the page only draws.
//
// Loading: read the bundle's manifest, then get every part from the Cache API (keyed by
// its sha256) or the network (with progress), hand it to the wasm Session, which checks
// size and sha256 before use. A cached part that fails the check is dropped and fetched
// again; a fresh download that fails it is an error. If the browser will not store a part
// (quota), the page still works and says that the next visit downloads again.
//
// Queries: `session.query` runs the job up to its generation, then one `session.step` per
// piece of text, yielding to the event loop in between so a `cancel` message gets through.
// Every message is built by protocol.js, generated from web/src/protocol.rs.

import init, { Session } from './marquee-web.js';
import * as protocol from './protocol.js';

const BUNDLE = new URL('./bundle/', import.meta.url);
const CACHE_NAME = 'marquee-parts-v1';
const PROGRESS_INTERVAL_MS = 100;

let session = null;
let loading = null;
let activeId = null;

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
    post(protocol.progress({ stage: 'init', asset: null, file: null,
      loaded: 0, total: null, cached: false, overall_loaded: 0, overall_total: 0 }));
    await init({ module_or_path: new URL('./marquee-web_bg.wasm', import.meta.url) });
    const manifestResponse = await fetch(new URL('manifest.json', BUNDLE), { cache: 'no-cache' });
    if (!manifestResponse.ok) {
      throw new Error(`cannot load the bundle manifest (HTTP ${manifestResponse.status})`);
    }
    const next = new Session(new Uint8Array(await manifestResponse.arrayBuffer()));
    const parts = next.parts();
    const stats = { downloaded: 0, cached: 0, warnings: [], uncached: [] };
    const progress = new Progress(parts);
    const cache = await openCache(stats.warnings);
    // Download in parallel; each part is verified as it arrives.
    await Promise.all(parts.map((part) => loadPart(next, part, cache, progress, stats)));
    if (stats.uncached.length > 0) {
      stats.warnings.push(`Browser storage is full or unavailable, so ${stats.uncached.join(', ')} ` +
        `${stats.uncached.length === 1 ? 'was' : 'were'} not cached: the page works, ` +
        'but the next visit downloads them again. Freeing space for this site fixes it.');
    }
    progress.stage('init');
    const loaded = next.finish();
    session = next;
    post(protocol.ready({
      movies: loaded.movies,
      generator: loaded.generator,
      attribution: loaded.attribution,
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

// Adds one part to the session, from the cache when a good copy is there, else from the
// network. The session verifies size and sha256; only verified bytes are cached.
async function loadPart(target, part, cache, progress, stats) {
  const key = new URL(`${part.file}?sha256=${part.sha256}`, BUNDLE).href;
  const hit = cache ? await cache.match(key) : undefined;
  if (hit) {
    const bytes = new Uint8Array(await hit.arrayBuffer());
    try {
      target.addPart(part.name, bytes);
      stats.cached += bytes.length;
      progress.update(part, bytes.length, bytes.length, true);
      return;
    } catch (error) {
      // Truncated or corrupted in storage: drop it and fetch a fresh copy.
      console.warn(`worker: cached ${part.file} is damaged (${describe(error)}); fetching it again`);
      await cache.delete(key);
    }
  }
  const bytes = await download(part, progress);
  target.addPart(part.name, bytes);
  stats.downloaded += bytes.length;
  if (cache) {
    try {
      await cache.put(key, new Response(bytes, {
        headers: { 'content-type': 'application/octet-stream' },
      }));
    } catch (error) {
      stats.uncached.push(part.file);
      if (error?.name !== 'QuotaExceededError') {
        console.warn(`worker: could not cache ${part.file}:`, error);
      }
    }
  }
}

// Streams a part, reporting progress; works without a content-length (the manifest
// knows every part's size). The URL carries the hash so no HTTP cache serves a stale copy.
async function download(part, progress) {
  const url = new URL(`${part.file}?sha256=${part.sha256}`, BUNDLE);
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(`cannot download ${part.file}: HTTP ${response.status}`);
  }
  const length = Number(response.headers.get('content-length')) || null;
  const total = length ?? part.bytes;
  const bytes = new Uint8Array(Math.max(total, part.bytes));
  let received = 0;
  let chunks = null; // used only if the server sends more than announced
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (chunks === null && received + value.length <= bytes.length) {
      bytes.set(value, received);
    } else {
      chunks ??= [bytes.subarray(0, received)];
      chunks.push(value);
    }
    received += value.length;
    progress.update(part, received, length, false);
  }
  progress.update(part, received, length, false, true);
  if (chunks === null) return bytes.subarray(0, received);
  const joined = new Uint8Array(received);
  let offset = 0;
  for (const chunk of chunks) { joined.set(chunk, offset); offset += chunk.length; }
  return joined;
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
    let overall = 0;
    for (const value of this.loaded.values()) overall += value;
    post(protocol.progress({
      stage: 'download', asset: part.name, file: part.file,
      loaded, total, cached, overall_loaded: overall, overall_total: this.total,
    }));
  }

  stage(stage) {
    post(protocol.progress({
      stage, asset: null, file: null, loaded: 0, total: null,
      cached: false, overall_loaded: this.total, overall_total: this.total,
    }));
  }
}

async function runQuery(request) {
  if (!session) {
    post(protocol.error({ id: request.id, message: 'The models are still loading.', fatal: false }));
    return;
  }
  activeId = request.id;
  try {
    post(session.query(request));
    await tick(); // let a Stop that came in during retrieval through
    while (activeId === request.id) {
      const event = session.step();
      if (event === null) break;
      post(event);
      if (event.type === 'done') break;
      await tick();
    }
  } catch (error) {
    post(protocol.error({ id: request.id, message: describe(error), fatal: false }));
  } finally {
    if (activeId === request.id) activeId = null;
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
