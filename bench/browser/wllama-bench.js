// wllama side of bench.mjs: loads one GGUF into wllama (llama.cpp in wasm) on ONE thread
// with no WebGPU, then times a few raw completions of a fixed prompt. bench.mjs calls
// window.runWllamaBench(options) through playwright and reads back the returned object.
//
// wllama 3.x ships a single wasm build; "single-threaded" means pthreads are off
// (n_threads: 1, so no pthread pool is created) and n_gpu_layers: 0 (no WebGPU).

import { Wllama } from './wllama/esm/index.js';

const WASM_PATH = './wllama/esm/wasm/wllama.wasm';
const MAX_LOG_LINES = 400;

// Keeps wllama's (and llama.cpp's) log lines so bench.mjs can show them on failure and
// pick out llama.cpp's system_info line (it says which CPU features the build uses).
function recordingLogger(lines) {
  const keep = (level) => (...args) => {
    if (lines.length < MAX_LOG_LINES) lines.push(`${level}: ${args.map(String).join(' ')}`);
    if (level === 'error') console.error(...args);
  };
  return { debug: keep('debug'), log: keep('log'), warn: keep('warn'), error: keep('error') };
}

// Downloads the model ourselves (instead of loadModelFromUrl) so nothing goes through
// wllama's OPFS cache: every run starts from the network, like a first visit.
async function fetchModel(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot fetch ${url}: HTTP ${response.status}`);
  return response.blob();
}

// One streamed completion. Times are taken here, on the page, as each chunk arrives;
// llama.cpp's own timings (measured inside the wasm) come with the last chunk.
async function completeOnce(wllama, { prompt, nPredict }) {
  const chunkTimes = [];
  let text = '';
  let last = null;
  const started = performance.now();
  await wllama.createCompletion({
    prompt,
    max_tokens: nPredict,
    temperature: 0, // greedy: the same text every run, and no sampler cost to speak of
    ignore_eos: true, // always generate nPredict tokens, so runs are comparable
    cache_prompt: false, // llama-server would otherwise reuse the KV cache of the last run
    seed: 42,
    stream: true,
    onData: (chunk) => {
      chunkTimes.push(performance.now());
      text += chunk.choices?.[0]?.text ?? '';
      last = chunk;
    },
  });
  const finished = performance.now();
  return {
    wall_ms: finished - started,
    first_chunk_ms: chunkTimes.length ? chunkTimes[0] - started : null,
    last_chunk_ms: chunkTimes.length ? chunkTimes[chunkTimes.length - 1] - started : null,
    chunks: chunkTimes.length,
    text,
    finish_reason: last?.choices?.[0]?.finish_reason ?? null,
    usage: last?.usage ?? null,
    timings: last?.timings ?? null,
  };
}

// Entry point for bench.mjs. Returns plain JSON (playwright copies it back to node).
window.runWllamaBench = async ({ modelUrl, prompt, nPredict, runs, loadParams = {} }) => {
  const log = [];
  const t0 = performance.now();
  const blob = await fetchModel(modelUrl);
  const fetchedMs = performance.now() - t0;
  const wllama = new Wllama({ default: WASM_PATH }, { logger: recordingLogger(log) });
  try {
    await wllama.loadModel([blob], {
      n_threads: 1,
      n_gpu_layers: 0, // CPU only: also makes wllama hide navigator.gpu from its worker
      n_ctx: 1024,
      n_parallel: 1, // one request at a time; no slots to share the context between
      ...loadParams, // experiments only (bench.mjs passes none)
    });
    const loadedMs = performance.now() - t0;
    const readyAtMs = performance.now(); // since navigation start, like our page's ready time
    const completions = [];
    for (let i = 0; i < runs; i++) completions.push(await completeOnce(wllama, { prompt, nPredict }));
    return {
      libllama: Wllama.getLibllamaVersion(),
      multithread: wllama.isMultithread(),
      threads: wllama.getNumThreads(),
      model_bytes: blob.size,
      fetch_ms: fetchedMs,
      load_ms: loadedMs, // fetch + wasm start + model load (includes llama.cpp's warmup)
      ready_at_ms: readyAtMs,
      completions,
      log,
    };
  } catch (error) {
    throw new Error(`${error?.message ?? error}\n--- wllama log (last lines) ---\n${log.slice(-30).join('\n')}`);
  } finally {
    await wllama.exit().catch(() => {});
  }
};
