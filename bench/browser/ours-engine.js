// Our engine's side of the query-embedding comparison (embedders.html): the page's own
// worker (dist/worker.js, served under ./ours/) driven through the page's protocol, with no
// page around it. onnxruntime-web runs the same way beside it (ort-bench.js): a module
// worker, messages in, times out, and no DOM changing while either embeds.
//
// Why not the page itself: on a 2-core machine without a GPU, the frame a query's click
// starts (style, layout, software raster and compositing: about 40 ms of CPU on other
// threads) runs while the worker embeds, and ORT's harness draws nothing. The page's own
// figures are still reported beside these (bench.mjs, "in the page").

import * as protocol from './ours/protocol.js';

let worker = null;
let nextId = 0;
// The one request in flight: its message handler, and how it fails if the worker dies.
let listener = null;
let fail = null;

function start() {
  return new Promise((resolve, reject) => {
    worker = new Worker('./ours/worker.js', { type: 'module' });
    worker.onerror = (e) => fail?.(new Error(`our worker failed: ${e.message || 'script error'}`));
    worker.onmessage = (e) => listener?.(e.data ?? {});
    fail = reject;
    listener = (m) => {
      if (m.type === 'ready') resolve({ load_ms: m.load_ms, movies: m.movies, generator: m.generator });
      else if (m.type === 'error' && m.fatal) reject(new Error(`our worker did not load: ${m.message}`));
    };
    worker.postMessage(protocol.load());
  });
}

// One search-only query, as the page's Generate then Stop sends it: the worker embeds and
// searches (reporting embed_ms), then reads the cancel before the prompt's prefill.
function embedOnce(idea) {
  return new Promise((resolve, reject) => {
    const id = ++nextId;
    let embedMs = null;
    fail = reject;
    listener = (m) => {
      if (m.id !== id) return;
      if (m.type === 'retrieved') embedMs = m.embed_ms;
      else if (m.type === 'error') reject(new Error(`our query failed: ${m.message}`));
      else if (m.type === 'done') {
        if (embedMs == null) reject(new Error('our query ended without a retrieved message'));
        else resolve(embedMs);
      }
    };
    worker.postMessage(protocol.query({ id, task: protocol.TASKS.tagline, idea, mode: 'exact', max_tokens: 8 }));
    worker.postMessage(protocol.cancel({ id }));
  });
}

window.oursOpen = start;
window.oursOne = embedOnce;
window.oursClose = () => {
  worker?.terminate();
  worker = null;
};
