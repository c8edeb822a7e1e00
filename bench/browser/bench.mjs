#!/usr/bin/env node
// Browser benchmark: Marquee's page (Rust → wasm engine in a module worker) against wllama
// (llama.cpp in wasm) on the same GGUF, and its query embedding against onnxruntime-web
// (int8 MiniLM from the same weights), all single-threaded, in headless Chromium.
//
//   node bench/browser/bench.mjs [--dist DIR] [--runs N] [--tokens N] [--skip-ours]
//                                [--skip-wllama] [--skip-ort] [--ort-rounds N]
//                                [--compare-adapter] [--json FILE] [--quiet]
//   node bench/browser/bench.mjs --render FILE   (re-print the tables of a --json file)
//
// --compare-adapter runs our page a second time on the same site without its LoRA adapter
// part (the manifest edited in a copy), as the page was before it had one, side by side.
// Each query also runs once as Best (beam search), timed to its first text.
// The onnxruntime-web section (ort-peer.mjs; needs scripts/bench-setup, --skip-ort skips it)
// runs after the page's: the ideas and questions the page embedded, from the same token ids,
// by ORT-web and by our page's own worker side by side (--ort-rounds rounds, in turn), and
// prints a second table: both per sentence, their ratio, and the page's own embed_ms.
// Prints a markdown table; --json writes every raw number. Files are served by a small
// HTTP server in this process (127.0.0.1, random port), which also counts the bytes each
// page load transfers. Memory is the Chromium process tree's RSS/PSS read from /proc.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';
import { startMemorySampler } from './procmem.mjs';
import { benchEmbedders, checkOrtSetup, oursPerSentence, renderOrtTable, tokenizeSentences } from './ort-peer.mjs';
import { TAGLINE_DEFAULTS, TAGLINE_LIMITS } from '../../www/protocol.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const WLLAMA_PKG = path.join(REPO, 'node_modules/@wllama/wllama');
const CACHE = process.env.MARQUEE_CACHE ?? path.join(os.homedir(), '.cache/marquee');
const Q4_1_GGUF = path.join(CACHE, 'assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf');
const GENERATOR_PART = 'bundle/generator-q4_0.gguf';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--enable-precise-memory-info',
];

const LOAD_TIMEOUT_MS = 10 * 60_000; // a 2-core machine under load can take minutes
const QUERY_TIMEOUT_MS = 5 * 60_000;

// Fixed movie ideas for our page (cycled if --runs is larger).
const IDEAS = [
  'A heist crew hides inside a dream to steal a secret from a billionaire\'s mind.',
  'Two rival magicians in Victorian London sabotage each other\'s greatest trick.',
  'A small-town sheriff discovers that the new neighbours are aliens hiding from their own government.',
  'A lonely lighthouse keeper befriends a sea creature during the worst storm in a century.',
  'A washed-up boxer trains a teenage girl for one last championship fight.',
];

// Questions for the Ask tab (timed after the taglines, on the warm page): a movie's facts,
// so each gets an answer (not "I don't know.").
const QUESTIONS = [
  'Who directed Jurassic Park?',
  'Who composed the music for Jaws?',
  'Which 2010 film did Christopher Nolan direct?',
  'Who played Ripley in Alien?',
  'How long is The Matrix?',
];

// wllama runs on the prompt our page built for the first idea (the `retrieved` message
// carries it), so both prefill and decode the same text.

// ---------------------------------------------------------------- command line

function usage(message) {
  if (message) console.error(`bench: ${message}`);
  console.error('usage: node bench/browser/bench.mjs [--dist DIR] [--runs N] [--tokens N] ' +
    '[--skip-ours] [--skip-wllama] [--skip-ort] [--ort-rounds N] [--compare-adapter] [--json FILE] [--quiet] ' +
    '| --render FILE');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    dist: path.join(REPO, 'dist'), runs: null, tokens: 48, skipOurs: false, skipWllama: false,
    json: null, quiet: false, render: null, compareAdapter: false, skipOrt: false, ortRounds: 5,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => (i + 1 < argv.length ? argv[++i] : usage(`${arg} needs a value`));
    const count = () => {
      const n = Number.parseInt(value(), 10);
      return n >= 1 ? n : usage(`${arg} needs a positive integer`);
    };
    if (arg === '--dist') opts.dist = path.resolve(value());
    else if (arg === '--runs') opts.runs = count();
    else if (arg === '--tokens') opts.tokens = count();
    else if (arg === '--json') opts.json = path.resolve(value());
    else if (arg === '--skip-ours') opts.skipOurs = true;
    else if (arg === '--skip-wllama') opts.skipWllama = true;
    else if (arg === '--skip-ort') opts.skipOrt = true;
    else if (arg === '--ort-rounds') opts.ortRounds = count();
    else if (arg === '--quiet') opts.quiet = true;
    else if (arg === '--compare-adapter') opts.compareAdapter = true;
    else if (arg === '--render') opts.render = path.resolve(value());
    else if (arg === '--help' || arg === '-h') usage();
    else usage(`unknown argument ${arg}`);
  }
  // The engine's bound on a query's tokens (www/protocol.js).
  if (opts.tokens > TAGLINE_LIMITS.max_tokens) usage(`--tokens must be at most ${TAGLINE_LIMITS.max_tokens}`);
  if (opts.skipOurs && !opts.skipWllama) usage('wllama runs on the prompt our page builds: drop --skip-ours');
  return opts;
}

class BenchError extends Error {}

let quiet = false;
const say = (...args) => { if (!quiet) console.error('bench:', ...args); };

// ---------------------------------------------------------------- browser helpers

async function browserVersion(page) {
  const cdp = await page.context().newCDPSession(page);
  try {
    return (await cdp.send('Browser.getVersion')).product.replace(/^[^/]*\//, ''); // "Chrome/156…" → "156…"
  } finally {
    await cdp.detach().catch(() => {});
  }
}

async function jsHeapUsed(page) {
  const cdp = await page.context().newCDPSession(page);
  try {
    await cdp.send('Performance.enable');
    const { metrics } = await cdp.send('Performance.getMetrics');
    return metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? null;
  } finally {
    await cdp.detach().catch(() => {});
  }
}

// Page errors, console errors and crashes, kept to explain a failure.
function watchPage(page, label) {
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('crash', () => problems.push('the page crashed (renderer process died)'));
  return () => (problems.length ? `\n${label} page reported:\n  ${problems.slice(-10).join('\n  ')}` : '');
}

// ---------------------------------------------------------------- our page

// Runs in the page before its scripts: wraps window.Worker so every message from the
// model worker is recorded with the page's clock (ms since navigation start). The page's
// own listener is unaffected. Data is copied as JSON so playwright can read it back.
function recordWorkerMessages() {
  const Native = window.Worker;
  window.__marqueeEvents = [];
  const record = (data) => window.__marqueeEvents.push({ t: performance.now(), data });
  window.Worker = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => {
        let data;
        try { data = JSON.parse(JSON.stringify(e.data ?? null)); } catch { data = { type: 'unserializable' }; }
        record(data);
      });
      this.addEventListener('error', (e) => record({ type: 'error', id: null, fatal: true,
        message: `worker script error: ${e.message || 'could not start'}` }));
    }
  };
}

// Waits for the first recorded worker message at index >= from whose type is in `types`;
// an error message also ends the wait (the caller turns it into a failure).
async function waitForMessage(page, pageProblems, from, types, timeout) {
  try {
    const handle = await page.waitForFunction(({ from, types }) => {
      const events = window.__marqueeEvents ?? [];
      for (let i = from; i < events.length; i++) {
        const type = events[i].data?.type;
        if (types.includes(type) || type === 'error') return { index: i, ...events[i] };
      }
      return null;
    }, { from, types }, { timeout, polling: 100 });
    return await handle.jsonValue();
  } catch (error) { // a timeout or a crashed page
    throw new BenchError(`waiting for the worker's ${types.join('/')} message: ${error.message.split('\n')[0]}${pageProblems()}`);
  }
}

async function messagesSince(page, from) {
  return page.evaluate((from) => window.__marqueeEvents.slice(from), from);
}

async function waitForReady(page, pageProblems) {
  const event = await waitForMessage(page, pageProblems, 0, ['ready'], LOAD_TIMEOUT_MS);
  if (event.data.type === 'error') {
    throw new BenchError(`our page failed to load: ${event.data.message}${pageProblems()}`);
  }
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 30_000 });
  return event;
}

// Fills in the form (fixed seed so runs repeat) and clicks Generate (then at once Stop, if
// `stop`); returns where in the message log this query's messages start and the click time.
async function submitIdea(page, { idea, mode, maxTokens, stop, button = 'generate' }) {
  const temperature = TAGLINE_DEFAULTS.temperature;
  return page.evaluate(({ idea, mode, maxTokens, stop, temperature, button }) => {
    const set = (id, value) => {
      const el = document.getElementById(id);
      el.value = String(value);
      el.dispatchEvent(new Event('input', { bubbles: true }));
      el.dispatchEvent(new Event('change', { bubbles: true }));
    };
    set('idea', idea);
    set('mode', mode);
    set('max-tokens', maxTokens);
    set('temperature', temperature);
    set('seed', 42);
    document.getElementById('random-seed').checked = false;
    if (document.body.dataset.state !== 'ready') throw new Error(`page is ${document.body.dataset.state}, not ready`);
    const from = window.__marqueeEvents.length;
    const clicked = performance.now();
    document.getElementById(button).click();
    if (stop) document.getElementById('stop').click();
    return { from, clicked };
  }, { idea, mode, maxTokens, stop, temperature, button });
}

// One query through the page. With searchOnly (used to time exact search cheaply) Stop is
// pressed right after Generate: the worker retrieves (and reports embed/search times) before
// it reads the cancel message, which then usually arrives before the prompt's prefill.
async function runQuery(page, pageProblems, { idea, mode, maxTokens, searchOnly = false, button }) {
  const { from, clicked } = await submitIdea(page, { idea, mode, maxTokens, stop: searchOnly, button });
  const fail = (event) => new BenchError(`query "${idea}" (${mode}) failed: ${event.data.message}${pageProblems()}`);
  const done = await waitForMessage(page, pageProblems, from, ['done'], QUERY_TIMEOUT_MS);
  if (done.data.type === 'error') throw fail(done);
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 30_000 });
  return summarizeQuery(await messagesSince(page, from), clicked, mode);
}

// Numbers for one query from its worker messages: the engine's own figures plus times
// seen on the page (click → retrieval, click → first token, token rate between events).
function summarizeQuery(events, clicked, mode) {
  const byType = (type) => events.filter((e) => e.data?.type === type);
  const retrieved = byType('retrieved')[0];
  const tokens = byType('token');
  const done = byType('done')[0];
  const first = tokens[0];
  const last = tokens[tokens.length - 1];
  const wallDecode = tokens.length >= 2 && last.t > first.t
    ? (last.data.tokens - first.data.tokens) / ((last.t - first.t) / 1000) : null;
  return {
    mode,
    prompt: retrieved?.data.prompt ?? null,
    embed_ms: retrieved?.data.embed_ms ?? null,
    search_ms: retrieved?.data.search_ms ?? null,
    examples_in_prompt: retrieved?.data.examples_in_prompt ?? null,
    prompt_tokens: done?.data.prompt_tokens ?? retrieved?.data.prompt_tokens ?? null,
    tokens: done?.data.tokens ?? null,
    stop: done?.data.stop ?? null,
    text: done?.data.text ?? null,
    ttft_ms: done?.data.ttft_ms ?? null, // from the query's start: embedding + search + prefill
    // Only the tokens after the primed system turn are prefilled (the rest is in the KV cache).
    cached_prompt_tokens: done?.data.cached_prompt_tokens ?? 0,
    prefill_ms: done?.data.prefill_tokens_per_s
      ? ((done.data.prompt_tokens - (done.data.cached_prompt_tokens ?? 0)) / done.data.prefill_tokens_per_s) * 1000
      : null,
    prefill_tok_s: done?.data.prefill_tokens_per_s ?? null,
    decode_tok_s: done?.data.decode_tokens_per_s ?? null,
    wall_click_to_retrieved_ms: retrieved ? retrieved.t - clicked : null,
    wall_click_to_first_token_ms: first ? first.t - clicked : null,
    wall_click_to_done_ms: done ? done.t - clicked : null,
    wall_decode_tok_s: wallDecode,
  };
}

// Opens the Ask tab (its parts download then) and asks each question: the engine's and the
// page's timings per question. Returns null when the bundle has no Ask tab.
async function benchAsk(page, pageProblems, count) {
  if (await page.isHidden('#tab-ask')) return null;
  const from = await page.evaluate(() => window.__marqueeEvents.length);
  await page.click('#tab-ask');
  const ready = await waitForMessage(page, pageProblems, from, ['ask_ready'], LOAD_TIMEOUT_MS);
  if (ready.data.type === 'error') throw new BenchError(`the Ask tab failed to open: ${ready.data.message}`);
  await page.waitForSelector('#ask-form:not([hidden])', { timeout: 30_000 });
  const questions = [];
  for (let i = 0; i < count; i++) {
    const question = QUESTIONS[i % QUESTIONS.length];
    say(`ours: question ${i + 1}/${count}: ${question}`);
    await page.fill('#question', question);
    const { start, clicked } = await page.evaluate(() => {
      const start = window.__marqueeEvents.length;
      const clicked = performance.now();
      document.getElementById('ask-submit').click();
      return { start, clicked };
    });
    const answered = await waitForMessage(page, pageProblems, start, ['answered'], QUERY_TIMEOUT_MS);
    if (answered.data.type === 'error') throw new BenchError(`"${question}" failed: ${answered.data.message}`);
    let done = null;
    if (answered.data.answering) {
      done = await waitForMessage(page, pageProblems, start, ['done'], QUERY_TIMEOUT_MS);
      if (done.data.type === 'error') throw new BenchError(`"${question}" failed: ${done.data.message}`);
    }
    await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 30_000 });
    const events = await messagesSince(page, start);
    const first = events.find((e) => e.data?.type === 'token');
    questions.push({
      question,
      unknown: answered.data.unknown,
      embed_ms: answered.data.embed_ms,
      search_ms: answered.data.search_ms,
      prompt_tokens: done?.data.prompt_tokens ?? answered.data.prompt_tokens ?? null,
      cached_prompt_tokens: done?.data.cached_prompt_tokens ?? null,
      ttft_ms: done?.data.ttft_ms ?? null,
      wall_click_to_first_token_ms: first ? first.t - clicked : null,
      decode_tok_s: done?.data.decode_tokens_per_s ?? null,
      text: done?.data.text ?? null,
    });
  }
  return {
    load_ms: ready.data.load_ms,
    downloaded_bytes: ready.data.downloaded_bytes,
    questions,
  };
}

async function launchFreshProfile() {
  const profile = await fsp.mkdtemp(path.join(os.tmpdir(), 'marquee-bench-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
  });
  const close = async () => {
    await context.close().catch(() => {});
    await fsp.rm(profile, { recursive: true, force: true });
  };
  return { context, close };
}

// First load in a fresh profile (a new user-data-dir: real on-disk Cache API, like a first
// visit), the queries, then a reload of the same profile (models come from the Cache API).
async function benchOurs(opts, dist = opts.dist) {
  if (!fs.existsSync(path.join(dist, 'index.html'))) {
    throw new BenchError(`no built page at ${dist}/index.html (build it with trunk, or pass --dist)`);
  }
  const server = await startServer([['/', dist]]);
  const { context, close } = await launchFreshProfile();
  const memory = startMemorySampler();
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const pageProblems = watchPage(page, 'our');
    await page.addInitScript(recordWorkerMessages);
    const chromiumVersion = await browserVersion(page);

    memory.phase('first load');
    say('ours: first load (fresh profile)…');
    server.traffic.reset();
    await page.goto(`${server.origin}/index.html`);
    const firstReady = await waitForReady(page, pageProblems);
    const firstTraffic = server.traffic.snapshot();

    memory.phase('taglines');
    const runs = opts.runs ?? IDEAS.length;
    const queries = [];
    for (let i = 0; i < runs; i++) {
      const idea = IDEAS[i % IDEAS.length];
      say(`ours: query ${i + 1}/${runs} (hnsw): ${idea}`);
      queries.push({ idea, ...await runQuery(page, pageProblems, { idea, mode: 'hnsw', maxTokens: opts.tokens }) });
      // Exact search on the same idea: stopped right after retrieval, so it costs little.
      const exact = await runQuery(page, pageProblems, { idea, mode: 'exact', maxTokens: 8, searchOnly: true });
      queries[queries.length - 1].exact_search_ms = exact.search_ms;
      queries[queries.length - 1].exact_embed_ms = exact.embed_ms; // more samples for the ORT table
      // Best: the beam search the page offers beside sampling (#best), to its first text.
      const best = await runQuery(page, pageProblems, { idea, mode: 'hnsw', maxTokens: opts.tokens, button: 'best' });
      queries[queries.length - 1].best_first_text_ms = best.wall_click_to_first_token_ms;
      queries[queries.length - 1].best_done_ms = best.wall_click_to_done_ms;
      queries[queries.length - 1].best_text = best.text;
      queries[queries.length - 1].best_embed_ms = best.embed_ms;
    }
    memory.phase('ask');
    const ask = await benchAsk(page, pageProblems, opts.runs ?? QUESTIONS.length);
    const heapAfterQueries = await jsHeapUsed(page);

    memory.phase('reload');
    say('ours: warm load (reload, same profile)…');
    server.traffic.reset();
    await page.reload();
    const warmReady = await waitForReady(page, pageProblems);
    const warmTraffic = server.traffic.snapshot();

    return {
      chromium: chromiumVersion,
      first_load: { ready_s: firstReady.t / 1000, worker_load_ms: firstReady.data.load_ms,
        downloaded_bytes: firstReady.data.downloaded_bytes, cached_bytes: firstReady.data.cached_bytes,
        warnings: firstReady.data.warnings, traffic: firstTraffic },
      warm_load: { ready_s: warmReady.t / 1000, worker_load_ms: warmReady.data.load_ms,
        downloaded_bytes: warmReady.data.downloaded_bytes, cached_bytes: warmReady.data.cached_bytes,
        warnings: warmReady.data.warnings, traffic: warmTraffic },
      queries,
      ask,
      page_js_heap_bytes: heapAfterQueries,
      generator_bytes: fileSize(path.join(dist, GENERATOR_PART)),
      adapter: firstReady.data.generator ?? null,
      memory: memory.stop(),
    };
  } finally {
    memory.stop();
    await close();
    await server.close();
  }
}

// ---------------------------------------------------------------- wllama

// One model in wllama: a new browser, the model fetched from our server, `runs`
// completions of our page's prompt. Returns wllama-bench.js's numbers plus our own.
async function benchWllama(opts, model, prompt) {
  const server = await startServer([
    ['/wllama.html', path.join(HERE, 'wllama.html')],
    ['/wllama-bench.js', path.join(HERE, 'wllama-bench.js')],
    ['/wllama/', WLLAMA_PKG],
    ['/models/model.gguf', model.file],
  ]);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const memory = startMemorySampler();
  try {
    const page = await browser.newPage();
    const pageProblems = watchPage(page, 'wllama');
    server.traffic.reset();
    await page.goto(`${server.origin}/wllama.html`);
    await page.waitForFunction(() => typeof window.runWllamaBench === 'function', null, { timeout: 60_000 })
      .catch(() => { throw new BenchError(`wllama page did not start${pageProblems()}`); });
    const runs = opts.runs ?? 3;
    say(`wllama ${model.label}: load + ${runs} × ${opts.tokens}-token completions…`);
    const result = await page.evaluate((args) => window.runWllamaBench(args), {
      modelUrl: './models/model.gguf', prompt, nPredict: opts.tokens, runs,
    }).catch((e) => { throw new BenchError(`wllama (${model.label}) failed: ${e.message}${pageProblems()}`); });
    return {
      label: model.label, file: model.file, chromium: browser.version(), ...result,
      traffic: server.traffic.snapshot(),
      page_js_heap_bytes: await jsHeapUsed(page),
      memory: memory.stop(),
      runs: result.completions.map(summarizeCompletion),
    };
  } finally {
    memory.stop();
    await browser.close().catch(() => {});
    await server.close();
  }
}

// Per completion: llama.cpp's own timings (measured inside the wasm: prefill = prompt
// evaluation up to the first sampled token, decode = the tokens after it) and rates
// from the page's clock (call → first streamed chunk, then chunk to chunk).
function summarizeCompletion(c) {
  const t = c.timings ?? {};
  const generated = t.predicted_n ?? c.usage?.completion_tokens ?? null;
  const streamSpan = c.last_chunk_ms - c.first_chunk_ms;
  return {
    prompt_tokens: t.prompt_n ?? c.usage?.prompt_tokens ?? null,
    cached_prompt_tokens: t.cache_n ?? null,
    tokens: generated,
    finish_reason: c.finish_reason,
    prompt_ms: t.prompt_ms ?? null,
    prefill_tok_s: t.prompt_per_second ?? null,
    decode_tok_s: t.predicted_per_second ?? null,
    wall_first_chunk_ms: c.first_chunk_ms,
    wall_prefill_tok_s: t.prompt_n && c.first_chunk_ms ? t.prompt_n / (c.first_chunk_ms / 1000) : null,
    wall_decode_tok_s: generated > 1 && streamSpan > 0 ? (generated - 1) / (streamSpan / 1000) : null,
    wall_ms: c.wall_ms,
    chunks: c.chunks,
    text: c.text,
  };
}

// ---------------------------------------------------------------- sizes, stats, table

function fileSize(file) {
  try { return fs.statSync(file).size; } catch { return null; }
}

function wasmSize(file) {
  if (!file || !fs.existsSync(file)) return null;
  const bytes = fs.readFileSync(file);
  return { file, raw: bytes.length, gzip9: zlib.gzipSync(bytes, { level: 9 }).length };
}

// The page's wasm: trunk names it after the crate (marquee-web_bg.wasm or marquee_web_bg.wasm).
function ourWasm(dist) {
  let names = [];
  try { names = fs.readdirSync(dist).filter((n) => n.endsWith('_bg.wasm')).sort(); } catch { /* no dist */ }
  const name = names.find((n) => /^marquee[-_]web_bg\.wasm$/.test(n)) ?? names[0];
  return name ? path.join(dist, name) : null;
}

function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

const medianOf = (rows, key) => median((rows ?? []).map((r) => r[key]));

function fmt(value, digits = 1, unit = '') {
  return typeof value === 'number' && Number.isFinite(value) ? `${value.toFixed(digits)}${unit}` : '–';
}
const mb = (bytes) => fmt(bytes == null ? null : bytes / 1e6, 1, ' MB');
const mib = (bytes) => fmt(bytes == null ? null : bytes / 2 ** 20, 0, ' MiB');
const mibOrDash = (bytes) => (bytes == null ? '–' : mib(bytes));

const sizes = (w) => (w ? `${mb(w.raw)} / ${mb(w.gzip9)}` : '–');
const traffic = (t, extra = '') => `${mb(t.bytes)} (${t.requests} req${extra})`;

// The table's rows: a label, what to show for our page (o) and for one wllama run (x);
// null where a metric does not apply to that side.
const q = (o) => o.queries;
const ROWS = [
  ['GGUF file', (o) => mb(o.generator_bytes), (x) => mb(x.model_bytes)],
  ['First load: bytes transferred', (o) => traffic(o.first_load.traffic), (x) => traffic(x.traffic)],
  ['First load: time to ready', (o) => fmt(o.first_load.ready_s, 2, ' s'), (x) => fmt(x.ready_at_ms / 1000, 2, ' s')],
  ['Warm load (reload): time to ready', (o) => fmt(o.warm_load.ready_s, 2, ' s'), null],
  ['Warm load: bytes transferred', (o) => traffic(o.warm_load.traffic, `, ${o.warm_load.traffic.not_modified} × 304`), null],
  ['Query embedding (median)', (o) => fmt(medianOf(q(o), 'embed_ms'), 1, ' ms'), null],
  ['Search, HNSW / exact (median)',
    (o) => `${fmt(medianOf(q(o), 'search_ms'), 2, ' ms')} / ${fmt(medianOf(q(o), 'exact_search_ms'), 2, ' ms')}`, null],
  ['Prompt tokens (median)', (o) => fmt(medianOf(q(o), 'prompt_tokens'), 0), (x) => fmt(medianOf(x.runs, 'prompt_tokens'), 0)],
  ['of them already in the KV cache (median)', (o) => fmt(medianOf(q(o), 'cached_prompt_tokens'), 0), (x) => fmt(medianOf(x.runs, 'cached_prompt_tokens'), 0)],
  ['Tokens generated (median; each run)',
    (o) => `${fmt(medianOf(q(o), 'tokens'), 0)} (${q(o).map((r) => r.tokens).join(', ')})`,
    (x) => `${fmt(medianOf(x.runs, 'tokens'), 0)} (${x.runs.map((r) => r.tokens).join(', ')})`],
  ['Prefill time, prompt → first token (median)',
    (o) => fmt(medianOf(q(o), 'prefill_ms'), 0, ' ms'), (x) => fmt(medianOf(x.runs, 'prompt_ms'), 0, ' ms')],
  ['Time to first token incl. embed + search, engine (median)', (o) => fmt(medianOf(q(o), 'ttft_ms'), 0, ' ms'), null],
  ['Time to first token, page wall clock (median)',
    (o) => fmt(medianOf(q(o), 'wall_click_to_first_token_ms'), 0, ' ms'), (x) => fmt(medianOf(x.runs, 'wall_first_chunk_ms'), 0, ' ms')],
  ['Prefill tok/s, engine (median)', (o) => fmt(medianOf(q(o), 'prefill_tok_s'), 0), (x) => fmt(medianOf(x.runs, 'prefill_tok_s'), 0)],
  ['Best (beam): page wall clock to first text / to done (median)',
    (o) => `${fmt(medianOf(q(o), 'best_first_text_ms'), 0, ' ms')} / ${fmt(medianOf(q(o), 'best_done_ms'), 0, ' ms')}`, null],
  ['Decode tok/s, engine (median)', (o) => fmt(medianOf(q(o), 'decode_tok_s'), 1), (x) => fmt(medianOf(x.runs, 'decode_tok_s'), 1)],
  ['Decode tok/s, page wall clock (median)',
    (o) => fmt(medianOf(q(o), 'wall_decode_tok_s'), 1), (x) => fmt(medianOf(x.runs, 'wall_decode_tok_s'), 1)],
  ['Ask tab: parts load (download + open)', (o) => (o.ask ? `${fmt(o.ask.load_ms, 0, ' ms')} (${mb(o.ask.downloaded_bytes)})` : '–'), null],
  ['Ask: prompt tokens / already cached (median)',
    (o) => `${fmt(medianOf(o.ask?.questions, 'prompt_tokens'), 0)} / ${fmt(medianOf(o.ask?.questions, 'cached_prompt_tokens'), 0)}`, null],
  ['Ask: time to first answer token, engine / page wall clock (median)',
    (o) => `${fmt(medianOf(o.ask?.questions, 'ttft_ms'), 0, ' ms')} / ${fmt(medianOf(o.ask?.questions, 'wall_click_to_first_token_ms'), 0, ' ms')}`, null],
  ['Peak RSS, renderer processes (page + worker)', (o) => mib(o.memory.renderer_rss), (x) => mib(x.memory.renderer_rss)],
  // wllama loads and generates, nothing else: our peak over the same work, before the Ask tab.
  ['of it: first load + taglines / Ask tab / reload', (o) => {
    const by = o.memory.renderer_rss_by_phase ?? {};
    if (!by.taglines) return '';
    const load = Math.max(by['first load'] ?? 0, by.taglines);
    return `${mib(load)} / ${mib(by.ask ?? 0)} / ${mib(by.reload ?? 0)}`;
  }, null],
  // Not the page's: Chromium's omnibox-popup WebUI, preloaded in some runs (older files: –).
  ['Peak RSS, browser UI renderer (not counted above)', (o) => mibOrDash(o.memory.browser_ui_rss),
    (x) => mibOrDash(x.memory.browser_ui_rss)],
  ['Peak PSS, all Chromium processes', (o) => mib(o.memory.all_pss), (x) => mib(x.memory.all_pss)],
  ['Page JS heap used, main thread (CDP)', (o) => mib(o.page_js_heap_bytes), (x) => mib(x.page_js_heap_bytes)],
  ['.wasm raw / gzip -9', (o, r) => sizes(r.wasm.ours), (x, r) => sizes(r.wasm.wllama)],
];

function renderTable(results) {
  const columns = [];
  if (results.ours) columns.push({ title: `Marquee (ours, q4_0${results.ours_base ? ', with its adapter' : ''})`, data: results.ours, side: 1 });
  if (results.ours_base) columns.push({ title: 'Marquee without the adapter (as before)', data: results.ours_base, side: 1 });
  for (const x of results.wllama ?? []) columns.push({ title: `wllama, ${x.label}`, data: x, side: 2 });
  const line = (cells) => `| ${cells.join(' | ')} |`;
  const body = ROWS
    .filter((row) => columns.some((c) => row[c.side]))
    .map((row) => line([row[0], ...columns.map((c) => (row[c.side] ? row[c.side](c.data, results) : ''))]));
  const env = results.env;
  return [
    `Chromium ${env.chromium} · ${env.cpu} × ${env.cores} cores · ${env.platform} · node ${env.node}` +
      (env.libllama ? ` · wllama ${env.wllama} (llama.cpp ${env.libllama})` : ''),
    `Load average (1 min) at start / end: ${env.loadavg_start[0].toFixed(2)} / ${env.loadavg_end[0].toFixed(2)}. ` +
      `Single-threaded; at most ${env.tokens} new tokens. ` +
      (results.ours ? `Ours: median over ${env.ours_runs} ideas (temperature ${TAGLINE_DEFAULTS.temperature}, seed 42, stops at end of line). ` : '') +
      (results.wllama ? `wllama: median of ${env.wllama_runs} runs (greedy, EOS ignored, the prompt our page built for the first idea).` : ''),
    '',
    line(['Metric', ...columns.map((c) => c.title)]),
    line(['---', ...columns.map(() => '---')]),
    ...body,
    ...renderWllamaRatios(results),
  ].join('\n');
}

// Issue 15's two targets against wllama, as ratios from this run: ours against each
// wllama column (the same q4_0 file is the fair one; the original Q4_1 is shown too).
const WLLAMA_TARGETS = [
  { what: 'decode tok/s, engine', target: '≥ 4×', atLeast: 4,
    ours: (o) => medianOf(q(o), 'decode_tok_s'), peer: (x) => medianOf(x.runs, 'decode_tok_s') },
  { what: 'peak renderer RSS (ours: first load + taglines, the same work as wllama\'s)', target: '≤ 1×', atMost: 1,
    ours: (o) => {
      const by = o.memory.renderer_rss_by_phase ?? {};
      return by.taglines ? Math.max(by['first load'] ?? 0, by.taglines) : o.memory.renderer_rss;
    },
    peer: (x) => x.memory.renderer_rss },
];

function renderWllamaRatios(results) {
  if (!results.ours || !results.wllama?.length) return [];
  const rows = WLLAMA_TARGETS.map((t) => {
    const cells = results.wllama.map((x) => {
      const ratio = t.ours(results.ours) / t.peer(x);
      const met = t.atLeast ? ratio >= t.atLeast : ratio <= t.atMost;
      return `${fmt(ratio, 2, '×')} (${met ? 'met' : '**missed**'})`;
    });
    return `| ${t.what} | ${cells.join(' | ')} | ${t.target} |`;
  });
  return [
    '',
    `| Ours ÷ wllama, this run | ${results.wllama.map((x) => x.label).join(' | ')} | target |`,
    `| --- | ${results.wllama.map(() => '---').join(' | ')} | --- |`,
    ...rows,
  ];
}

// A copy of the site whose manifest no longer lists the adapter part: the page as it was
// before the bundle had one (the worker fetches only the parts the manifest names).
async function withoutAdapter(dist) {
  const copy = await fsp.mkdtemp(path.join(os.tmpdir(), 'marquee-bench-bare-'));
  await fsp.cp(dist, copy, { recursive: true });
  const file = path.join(copy, 'bundle/manifest.json');
  const manifest = JSON.parse(await fsp.readFile(file, 'utf8'));
  if (!manifest.parts.some((p) => p.name === 'adapter')) {
    throw new BenchError(`--compare-adapter: ${dist}'s bundle has no adapter part`);
  }
  manifest.parts = manifest.parts.filter((p) => p.name !== 'adapter');
  if (manifest.generator) delete manifest.generator.adapter;
  await fsp.writeFile(file, JSON.stringify(manifest));
  return copy;
}

// ---------------------------------------------------------------- main

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  quiet = opts.quiet;
  if (opts.render) { // re-print the tables of an earlier --json file, running nothing
    console.log(renderAll(JSON.parse(await fsp.readFile(opts.render, 'utf8'))));
    return;
  }
  // The peer's files and token ids first: a missing setup should not cost our page's minutes.
  let ortVersion = null;
  let tokenized = null;
  if (!opts.skipOrt) {
    ortVersion = checkOrtSetup(BenchError);
    say('onnxruntime-web: tokenizing the ideas and questions (minilm_onnx.py tokenize)…');
    tokenized = tokenizeSentences([...new Set([...IDEAS, ...QUESTIONS])], BenchError);
  }
  const wllamaVersion = JSON.parse(fs.readFileSync(path.join(WLLAMA_PKG, 'package.json'), 'utf8')).version;
  const results = {
    env: {
      cpu: os.cpus()[0]?.model ?? 'unknown CPU', cores: os.cpus().length, platform: `${os.platform()} ${os.release()}`,
      node: process.version, wllama: wllamaVersion, tokens: opts.tokens, chromium: null, libllama: null,
      ort: ortVersion,
      ours_runs: opts.skipOurs ? 0 : opts.runs ?? IDEAS.length, wllama_runs: opts.skipWllama ? 0 : opts.runs ?? 3,
      // Other work on the machine slows both engines alike; the load average says how much.
      loadavg_start: os.loadavg(), loadavg_end: null,
    },
    ours: null,
    wllama: null,
    // ORT-web's figures (ort-peer.mjs); ort_ours: our page's worker's embed_ms per sentence,
    // timed beside ORT's in turn; ort_ours_in_page: the page's own, from the run above.
    ort: null,
    ort_harness: null,
    ort_ours: null,
    ort_ours_load: null,
    ort_ours_in_page: null,
    wasm: {
      ours: wasmSize(ourWasm(opts.dist)),
      wllama: wasmSize(path.join(WLLAMA_PKG, 'esm/wasm/wllama.wasm')),
    },
  };

  if (!opts.skipOurs) {
    results.ours = await benchOurs(opts);
    results.env.chromium = results.ours.chromium;
    if (opts.compareAdapter) {
      const bare = await withoutAdapter(opts.dist);
      try {
        say('ours without the adapter…');
        results.ours_base = await benchOurs(opts, bare);
      } finally {
        await fsp.rm(bare, { recursive: true, force: true });
      }
    }
  }
  if (!opts.skipOrt) {
    // After our page's run (its browser closed, its memory figures taken): our engine and
    // ORT's side by side in one browser of their own (ort-peer.mjs).
    const embedders = await benchEmbedders({
      tokenized, dist: opts.skipOurs ? null : opts.dist, rounds: opts.ortRounds,
      chromiumPath: CHROMIUM, chromiumArgs: CHROMIUM_ARGS, watchPage, say, BenchError,
    });
    results.ort = embedders.ort;
    results.ort.token_ids = tokenized.map(({ text, input_ids }) => ({ text, input_ids }));
    results.ort_harness = 'workers';
    results.ort_ours = embedders.ours;
    results.ort_ours_load = embedders.ours_load;
    results.ort_ours_in_page = results.ours ? oursPerSentence(results.ours) : null;
    results.env.chromium ??= results.ort.chromium;
  }
  if (!opts.skipWllama) {
    const models = [{ label: 'Q4_1 (original)', file: Q4_1_GGUF }];
    const ourGguf = path.join(opts.dist, GENERATOR_PART);
    if (fs.existsSync(ourGguf)) models.push({ label: 'q4_0 (our GGUF)', file: ourGguf });
    else say(`no ${ourGguf}: wllama runs on the Q4_1 file only`);
    for (const m of models) {
      if (!fs.existsSync(m.file)) throw new BenchError(`missing model file ${m.file}`);
    }
    results.wllama = [];
    const prompt = results.ours?.queries[0]?.prompt;
    if (!prompt) throw new BenchError('our page reported no prompt for wllama to run');
    for (const model of models) results.wllama.push(await benchWllama(opts, model, prompt));
    results.env.chromium ??= results.wllama[0]?.chromium;
    results.env.libllama = results.wllama[0]?.libllama;
    for (const x of results.wllama) {
      if (x.multithread || x.threads !== 1) throw new BenchError(`wllama ${x.label} ran on ${x.threads} threads, not 1`);
    }
  }

  results.env.loadavg_end = os.loadavg();
  if (opts.json) {
    await fsp.writeFile(opts.json, JSON.stringify(results, null, 2) + '\n');
    say(`raw numbers written to ${opts.json}`);
  }
  console.log(renderAll(results));
}

// The main table, then (when it ran) the onnxruntime-web one; an ORT-only run (--skip-ours
// --skip-wllama) has no main table to print.
function renderAll(results) {
  const tables = results.ours || results.wllama ? [renderTable(results)] : [];
  if (results.ort) tables.push(renderOrtTable(results));
  return tables.join('\n\n');
}

main().catch((error) => {
  console.error(`bench: FAILED: ${error instanceof BenchError ? error.message : error?.stack ?? error}`);
  process.exit(1);
});
