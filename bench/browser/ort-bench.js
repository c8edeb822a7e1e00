// onnxruntime-web side of bench.mjs: MiniLM (int8 ONNX, made by
// scripts/reference/minilm_onnx.py from the weights our engine uses) embedding the same
// sentences as our page, from the same token ids, on ONE thread with the wasm execution
// provider. bench.mjs calls window.runOrtBench(options) through playwright.
//
// This one file plays both parts: on the page it only starts itself again as a module
// worker and relays; in the worker it runs ORT. Our page embeds in a worker too, so both
// run off the main thread, and proxy mode (ORT's own worker) stays off.

const ORT_DIR = './ort/'; // node_modules/onnxruntime-web/dist, served by bench.mjs

if (typeof window !== 'undefined') {
  window.runOrtBench = (options) => new Promise((resolve, reject) => {
    const worker = new Worker(import.meta.url, { type: 'module' });
    const finish = (settle, value) => { worker.terminate(); settle(value); };
    worker.onmessage = (e) => (e.data.error ? finish(reject, new Error(e.data.error)) : finish(resolve, e.data.result));
    worker.onerror = (e) => finish(reject, new Error(`ORT worker failed to start: ${e.message || 'script error'}`));
    worker.postMessage(options);
  });
} else {
  self.onmessage = async (e) => {
    try {
      self.postMessage({ result: await runInWorker(e.data) });
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

async function runInWorker({ modelUrl, sentences, rounds }) {
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

  try {
    // One pass over every sentence first: V8's tiers and ORT's first-run allocations for
    // each sequence length are not what a query costs on a warm page.
    for (const s of sentences) await embedOnce(ort, session, s);
    const times = sentences.map(() => []);
    let vectors = [];
    for (let r = 0; r < rounds; r++) {
      vectors = [];
      for (const [i, s] of sentences.entries()) {
        const { ms, vector } = await embedOnce(ort, session, s);
        times[i].push(ms);
        vectors.push(Array.from(vector));
      }
    }
    const perSentence = sentences.map((s, i) => ({
      text: s.text, tokens: s.input_ids.length, median_ms: median(times[i]), runs_ms: times[i],
    }));
    return {
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
      rounds,
      sentences: perSentence,
      median_ms: median(perSentence.map((s) => s.median_ms)),
      vectors, // the last round's, for bench.mjs to check against sentence-transformers
      wasm_resources: performance.getEntriesByType('resource')
        .map((r) => r.name).filter((n) => /\.wasm(\?|$)/.test(n)),
    };
  } finally {
    await session.release().catch(() => {});
  }
}
