// onnxruntime-web as a peer for query embedding (bench.mjs's "query embedding beside
// onnxruntime-web" section): the same sentences our page embeds, tokenized once here by the
// same tokenizer (scripts/reference/minilm_onnx.py tokenize), embedded by ORT-web's wasm
// build on one thread in the same Chromium (ort.html / ort-bench.js), and a table of our
// page's embed_ms beside ORT's time per sentence. Kept apart from bench.mjs to keep that
// file readable; bench.mjs passes in what it shares (browser settings, error class, logging).

import { chromium } from 'playwright-core';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const CACHE = process.env.MARQUEE_CACHE ?? path.join(os.homedir(), '.cache/marquee');
const ORT_PKG = path.join(HERE, 'node_modules/onnxruntime-web');
export const ORT_MODEL = path.join(CACHE, 'peers/minilm-int8.onnx');
const PEERS_PYTHON = path.join(CACHE, 'peers/venv/bin/python');
const TOKENIZE = path.join(REPO, 'scripts/reference/minilm_onnx.py');

const TARGET_RATIO = 0.8; // the issue's target: ours ≤ 0.8 × ORT-web's time
// ORT-web's vectors against sentence-transformers': the int8 model measured 0.989-0.993
// with onnxruntime on the CPU (minilm_onnx.py export); far below means the page computes
// something else, and its times would mean nothing.
const MIN_COSINE = 0.98;
const RUN_TIMEOUT_MS = 10 * 60_000;

// What `scripts/bench-setup` installs; checked before our page runs (minutes) rather than after.
export function checkOrtSetup(BenchError) {
  const missing = [
    [ORT_MODEL, 'the int8 ONNX MiniLM'],
    [path.join(ORT_PKG, 'dist/ort.wasm.min.mjs'), 'onnxruntime-web (npm, bench/browser/node_modules)'],
    [PEERS_PYTHON, 'the peers venv (its python tokenizes the sentences)'],
  ].filter(([file]) => !fs.existsSync(file)).map(([file, what]) => `${what}: no ${file}`);
  if (missing.length) {
    throw new BenchError(`onnxruntime-web peer not set up (run scripts/bench-setup, or pass --skip-ort):\n  ${missing.join('\n  ')}`);
  }
  return JSON.parse(fs.readFileSync(path.join(ORT_PKG, 'package.json'), 'utf8')).version;
}

// Token ids (and sentence-transformers' vectors, to check ORT's output) from the same
// tokenizer.json the engine loads, set up the way the engine sets it up.
export function tokenizeSentences(sentences, BenchError) {
  const run = spawnSync(PEERS_PYTHON, [TOKENIZE, 'tokenize', '--reference'], {
    input: JSON.stringify(sentences), encoding: 'utf8', maxBuffer: 64 << 20,
    env: { ...process.env, HF_HUB_OFFLINE: '1' },
  });
  if (run.status !== 0) {
    throw new BenchError(`${TOKENIZE} tokenize failed (${run.error?.message ?? `exit ${run.status}`}):\n${(run.stderr ?? '').trim().split('\n').slice(-10).join('\n')}`);
  }
  return JSON.parse(run.stdout);
}

const cosine = (a, b) => a.reduce((sum, x, i) => sum + x * b[i], 0);

// ORT-web in a fresh browser of its own: the model fetched from our server and a warm-up
// pass, then `round()` embeds every sentence once (bench.mjs calls it between our page's
// rounds) and `finish()` returns ort-bench.js's numbers plus what the server saw, checks
// the vectors against sentence-transformers', and closes the browser.
export async function openOrt({ tokenized, chromiumPath, chromiumArgs, watchPage, say, BenchError }) {
  const server = await startServer([
    ['/ort.html', path.join(HERE, 'ort.html')],
    ['/ort-bench.js', path.join(HERE, 'ort-bench.js')],
    ['/ort/', path.join(ORT_PKG, 'dist')],
    ['/models/minilm-int8.onnx', ORT_MODEL],
  ]);
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs });
  // Once, whichever of finish() and the caller's clean-up gets there first.
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await browser.close().catch(() => {});
    await server.close();
  };
  try {
    const page = await browser.newPage();
    const pageProblems = watchPage(page, 'onnxruntime-web');
    await page.goto(`${server.origin}/ort.html`);
    await page.waitForFunction(() => typeof window.ortOpen === 'function', null, { timeout: 60_000 })
      .catch(() => { throw new BenchError(`onnxruntime-web page did not start${pageProblems()}`); });
    say(`onnxruntime-web: load + warm-up over ${tokenized.length} sentences…`);
    const sentences = tokenized.map(({ text, input_ids, attention_mask, token_type_ids }) =>
      ({ text, input_ids, attention_mask, token_type_ids }));
    page.setDefaultTimeout(RUN_TIMEOUT_MS);
    const failed = (e) => new BenchError(`onnxruntime-web failed: ${e.message}${pageProblems()}`);
    await page.evaluate((args) => window.ortOpen(args), { modelUrl: './models/minilm-int8.onnx', sentences })
      .catch((e) => { throw failed(e); });
    const round = () => page.evaluate(() => window.ortRound()).catch((e) => { throw failed(e); });
    const finish = async () => {
      try {
        const result = await page.evaluate(() => window.ortClose()).catch((e) => { throw failed(e); });
        if (result.num_threads !== 1) throw new BenchError(`onnxruntime-web ran on ${result.num_threads} threads, not 1`);
        const { vectors, ...rest } = result;
        const cosines = vectors.map((v, i) => cosine(v, tokenized[i].reference));
        const worst = Math.min(...cosines);
        if (!(worst >= MIN_COSINE)) {
          throw new BenchError(`onnxruntime-web's vectors are off: cosine ${worst.toFixed(4)} to sentence-transformers' (< ${MIN_COSINE})`);
        }
        // Which runtime build ORT picked, from what our server sent (the worker's resource
        // timing says the same; both are kept).
        const traffic = server.traffic.snapshot();
        const wasmFiles = Object.keys(traffic.paths).filter((p) => p.endsWith('.wasm')).map((p) => path.basename(p));
        return {
          ...rest,
          chromium: browser.version(),
          wasm_files: wasmFiles,
          wasm_bytes: wasmFiles.map((f) => fs.statSync(path.join(ORT_PKG, 'dist', f)).size),
          cosines,
          min_cosine: worst,
          traffic,
        };
      } finally {
        await close();
      }
    };
    return { round, finish, close };
  } catch (error) {
    await close();
    throw error;
  }
}

// ORT-web alone (bench.mjs --skip-ours): `rounds` rounds back to back.
export async function benchOrt({ rounds, ...options }) {
  const ort = await openOrt(options);
  try {
    options.say(`onnxruntime-web: ${rounds} rounds…`);
    for (let r = 0; r < rounds; r++) await ort.round();
    return await ort.finish();
  } finally {
    await ort.close();
  }
}

// Our page's embed_ms per sentence, from bench.mjs's results: every embedding the page did
// of an idea (the sampled run, the exact-search run and the beam-search run each embed it)
// and of a question (one per ask).
export function oursPerSentence(ours) {
  const byText = new Map();
  const add = (text, ms) => {
    if (typeof ms !== 'number' || !Number.isFinite(ms)) return;
    if (!byText.has(text)) byText.set(text, []);
    byText.get(text).push(ms);
  };
  for (const q of ours?.queries ?? []) {
    for (const ms of [q.embed_ms, q.exact_embed_ms, q.best_embed_ms]) add(q.idea, ms);
  }
  for (const a of ours?.ask?.questions ?? []) add(a.question, a.embed_ms);
  return Object.fromEntries(byText);
}

// Same as bench.mjs's (kept here so this module does not import the script).
function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function fmt(value, digits = 1, unit = '') {
  return typeof value === 'number' && Number.isFinite(value) ? `${value.toFixed(digits)}${unit}` : '–';
}

const shorten = (text, n = 48) => (text.length <= n ? text : `${text.slice(0, n - 1).trimEnd()}…`);

// The per-sentence rows and the overall one: both sides' overall figure is the median of
// their per-sentence medians, over the sentences both sides embedded (so a shorter --runs
// compares like with like).
export function ortComparison(results) {
  const ort = results.ort;
  // Results written before the rounds existed hold only the samples taken during the run.
  const rounds = results.ort_ours_during_run !== undefined;
  const ours = results.ort_ours ?? {};
  const during = (rounds ? results.ort_ours_during_run : null) ?? {};
  const rows = ort.sentences.map((s) => {
    const oursMs = median(ours[s.text] ?? []);
    return { text: s.text, tokens: s.tokens, ours_ms: oursMs, ours_runs: (ours[s.text] ?? []).length,
      during_ms: median(during[s.text] ?? []), ort_ms: s.median_ms,
      ratio: oursMs != null ? oursMs / s.median_ms : null };
  });
  const both = rows.filter((r) => r.ours_ms != null);
  const oursMedian = median(both.map((r) => r.ours_ms));
  const ortMedian = median((both.length ? both : rows).map((r) => r.ort_ms));
  const ratio = oursMedian != null ? oursMedian / ortMedian : null;
  return { rows, rounds, both: both.length, ours_median_ms: oursMedian, ort_median_ms: ortMedian, ratio,
    during_median_ms: median(both.map((r) => r.during_ms)),
    tokens_median: median((both.length ? both : rows).map((r) => r.tokens)),
    target: TARGET_RATIO, met: ratio != null ? ratio <= TARGET_RATIO : null };
}

export function renderOrtTable(results) {
  const ort = results.ort;
  const c = ortComparison(results);
  const line = (cells) => `| ${cells.join(' | ')} |`;
  const runs = c.rows.map((r) => r.ours_runs).filter((n) => n > 0);
  const verdict = c.met == null ? 'no figures of ours' : `target ≤ ${c.target}×: ${c.met ? 'met' : 'missed'}`;
  return [
    `Query embedding beside onnxruntime-web ${ort.ort_version ?? results.env.ort ?? ''}: same Chromium, same ` +
      `sentences and token ids. ORT: int8 ONNX MiniLM (${fmt(ort.model_bytes / 1e6, 1, ' MB')}, QInt8 dynamic), ` +
      `wasm EP, ${ort.num_threads} thread, ${ort.wasm_files.join(' + ') || '(no .wasm seen)'}` +
      `${ort.wasm_bytes?.length ? ` (${fmt(ort.wasm_bytes[0] / 1e6, 1, ' MB')})` : ''}, in a module worker; ` +
      `loaded in ${fmt(ort.load_ms, 0, ' ms')} (fetch + runtime + session); ids → normalized vector ` +
      `(session.run, mean pooling, L2 in JS), median of ${ort.rounds} rounds after a warm-up pass; cosine to ` +
      `sentence-transformers ≥ ${fmt(ort.min_cosine, 4)}. ` +
      (!runs.length
        ? 'Ours: not run (--skip-ours).'
        : c.rounds
          ? 'Ours: the page\'s own embed_ms (tokenization + int8 embedding in its worker), timed the same ' +
            `way, each a search-only query in the page: a warm-up pass, then the median of ${runs[0]} rounds ` +
            `(${results.ort_alternating ? 'alternating with ORT\'s: a pass of ours over the sentences, then one of ' +
              'ORT\'s, in the same minutes' : 'all of ours, then all of ORT\'s'}). ` +
            'Beside it, the median of the embeddings the run above did between generations (each just after ' +
            'the generator\'s weights went through the caches).'
          : 'Ours: the page\'s own embed_ms (tokenization + int8 embedding in its worker), median of its ' +
            `${Math.min(...runs) === Math.max(...runs) ? runs[0] : `${Math.min(...runs)}–${Math.max(...runs)}`} ` +
            'embeddings of each sentence during the run above (between generations).'),
    '',
    line(['Sentence', 'Tokens', 'Ours', 'onnxruntime-web', 'Ours / ORT', ...(c.rounds ? ['Ours during the run'] : [])]),
    line(['---', '---', '---', '---', '---', ...(c.rounds ? ['---'] : [])]),
    ...c.rows.map((r) => line([shorten(r.text), String(r.tokens), fmt(r.ours_ms, 1, ' ms'), fmt(r.ort_ms, 1, ' ms'),
      r.ratio != null ? `${fmt(r.ratio, 2)}×` : '–', ...(c.rounds ? [fmt(r.during_ms, 1, ' ms')] : [])])),
    line([`**Overall** (median of ${c.both || c.rows.length} sentences)`, fmt(c.tokens_median, 0),
      fmt(c.ours_median_ms, 1, ' ms'), fmt(c.ort_median_ms, 1, ' ms'),
      `${c.ratio != null ? `${fmt(c.ratio, 2)}×` : '–'} (${verdict})`,
      ...(c.rounds ? [fmt(c.during_median_ms, 1, ' ms')] : [])]),
  ].join('\n');
}
