// onnxruntime-web side of bench.mjs: MiniLM (int8 ONNX, made by
// scripts/reference/minilm_onnx.py from the weights our engine uses) embedding the same
// sentences as our page, from the same token ids, on ONE thread with the wasm execution
// provider. bench.mjs drives it through playwright (embedders.html): window.ortOpen(options)
// loads and warms up, window.ortOne(i) embeds sentence i once (called in turn with our
// engine's ours-engine.js, so both are timed in the same minutes, each after the other's
// query), window.ortClose() returns the figures.
//
// This one file plays both parts: on the page it only starts itself again as a module
// worker and relays; in the worker it runs ORT. Our page embeds in a worker too, so both
// run off the main thread, and proxy mode (ORT's own worker) stays off.

const ORT_DIR = './ort/'; // node_modules/onnxruntime-web/dist, served by bench.mjs

if (typeof window !== 'undefined') {
  // One worker for the page's life, driven by messages `{ op, ... }` and answered in order:
  // `open` (load the model, warm up), `one` (embed one sentence), `close`.
  let worker = null;
  const pending = [];
  const call = (message) => new Promise((resolve, reject) => {
    if (!worker) {
      worker = new Worker(import.meta.url, { type: 'module' });
      worker.onmessage = (e) => {
        const { resolve, reject } = pending.shift();
        if (e.data.error) reject(new Error(e.data.error));
        else resolve(e.data.result);
      };
      worker.onerror = (e) => {
        for (const p of pending.splice(0)) p.reject(new Error(`ORT worker failed: ${e.message || 'script error'}`));
      };
    }
    pending.push({ resolve, reject });
    worker.postMessage(message);
  });
  window.ortOpen = (options) => call({ op: 'open', ...options });
  window.ortOne = (index) => call({ op: 'one', index });
  window.ortClose = async () => {
    const result = await call({ op: 'close' });
    worker.terminate();
    worker = null;
    return result;
  };
} else {
  self.onmessage = async (e) => {
    try {
      self.postMessage({ result: await OPS[e.data.op](e.data) });
    } catch (error) {
      self.postMessage({ error: String(error?.stack ?? error?.message ?? error) });
    }
  };
}

// Mean of the token vectors where the mask is 1, then L2-normalized: sentence-transformers'
// pooling for this model, done in JS as transformers.js does it.
function meanPoolNormalize(hidden, mask, width) {
  const out = new Float32Array(width);
  let count = 0;
  for (let t = 0; t < mask.length; t++) {
    if (!mask[t]) continue;
    count += 1;
    const row = t * width;
    for (let i = 0; i < width; i++) out[i] += hidden[row + i];
  }
  let norm = 0;
  for (let i = 0; i < width; i++) { out[i] /= Math.max(count, 1); norm += out[i] * out[i]; }
  norm = Math.max(Math.sqrt(norm), 1e-12);
  for (let i = 0; i < width; i++) out[i] /= norm;
  return out;
}

// One sentence, timed from its token ids (plain JS arrays) to the normalized vector: the
// int64 tensors, session.run and the pooling all count, tokenization does not (the ids come
// from the same tokenizer as our engine's; ours includes its tokenization).
async function embedOnce(ort, session, s) {
  const started = performance.now();
  const dims = [1, s.input_ids.length];
  const tensor = (values) => new ort.Tensor('int64', BigInt64Array.from(values, BigInt), dims);
  const feeds = {
    input_ids: tensor(s.input_ids),
    attention_mask: tensor(s.attention_mask),
    token_type_ids: tensor(s.token_type_ids),
  };
  const { last_hidden_state: hidden } = await session.run(feeds);
  const vector = meanPoolNormalize(hidden.data, s.attention_mask, hidden.dims[2]);
  const ms = performance.now() - started;
  hidden.dispose();
  return { ms, vector };
}

function median(values) {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

// The worker's state between messages.
const state = { ort: null, session: null, sentences: [], times: [], vectors: [], info: null };

const OPS = {
  async open({ modelUrl, sentences }) {
    const ort = await import(`${ORT_DIR}ort.wasm.min.mjs`); // the wasm EP only
    ort.env.wasm.numThreads = 1; // our wasm has no threads; no pthread pool is created at 1
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmPaths = new URL(ORT_DIR, import.meta.url).href;

    const t0 = performance.now();
    const response = await fetch(modelUrl);
    if (!response.ok) throw new Error(`cannot fetch ${modelUrl}: HTTP ${response.status}`);
    const model = new Uint8Array(await response.arrayBuffer());
    const fetchedMs = performance.now() - t0;
    // The first session also starts the wasm runtime (ORT picks its build here).
    const session = await ort.InferenceSession.create(model, {
      executionProviders: ['wasm'],
      graphOptimizationLevel: 'all',
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
    });
    const loadMs = performance.now() - t0;
    Object.assign(state, { ort, session, sentences, times: sentences.map(() => []), vectors: [] });
    // One pass over every sentence first: V8's tiers and ORT's first-run allocations for
    // each sequence length are not what a query costs on a warm page.
    for (const s of sentences) state.vectors.push(Array.from((await embedOnce(ort, session, s)).vector));
    state.info = {
      ort_version: ort.env.versions?.web ?? null,
      num_threads: ort.env.wasm.numThreads,
      // Without cross-origin isolation there is no SharedArrayBuffer: ORT cannot start
      // threads even if asked (a second witness that it ran on one).
      cross_origin_isolated: self.crossOriginIsolated,
      input_names: session.inputNames,
      output_names: session.outputNames,
      model_bytes: model.byteLength,
      fetch_ms: fetchedMs,
      load_ms: loadMs, // fetch + wasm start + session creation (graph optimization)
    };
    return state.info;
  },

  // Sentence `index` once, as a query arrives: alone, after whatever the caller did before.
  async one({ index }) {
    const s = state.sentences[index];
    if (!s) throw new Error(`no sentence ${index}`);
    const { ms, vector } = await embedOnce(state.ort, state.session, s);
    state.times[index].push(ms);
    state.vectors[index] = Array.from(vector); // the latest, for bench.mjs to check
    return ms;
  },

  async close() {
    const perSentence = state.sentences.map((s, i) => ({
      text: s.text, tokens: s.input_ids.length, median_ms: median(state.times[i]), runs_ms: state.times[i],
    }));
    await state.session?.release().catch(() => {});
    return {
      ...state.info,
      rounds: state.times[0]?.length ?? 0,
      sentences: perSentence,
      median_ms: median(perSentence.map((s) => s.median_ms)),
      vectors: state.vectors, // each sentence's latest, for bench.mjs to check against sentence-transformers
      wasm_resources: performance.getEntriesByType('resource')
        .map((r) => r.name).filter((n) => /\.wasm(\?|$)/.test(n)),
    };
  },
};
