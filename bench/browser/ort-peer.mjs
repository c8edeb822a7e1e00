// onnxruntime-web as a peer for query embedding (bench.mjs's "query embedding beside
// onnxruntime-web" section): the same sentences our page embeds, tokenized once here by the
// same tokenizer (scripts/reference/minilm_onnx.py tokenize), embedded by ORT-web's wasm
// build on one thread in the same Chromium, beside our page's own worker (embedders.html,
// ort-bench.js, ours-engine.js), and a table of both times per sentence. Kept apart from
// bench.mjs to keep that file readable; bench.mjs passes in what it shares (browser
// settings, error class, logging).

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

// Both engines in one fresh browser (embedders.html), each in its own module worker and
// neither with a page that draws: ours is the page's own worker (dist/worker.js, sent
// search-only queries by ours-engine.js), ORT's is ort-bench.js. After a warm-up pass of
// each, `rounds` rounds go sentence by sentence, one engine's query then the other's (who
// goes first alternates by round), so both are timed in the same seconds and each right
// after a query of the other. Without `dist`, ORT runs alone the same way (--skip-ours).
// Returns ORT's figures (with its vectors checked against sentence-transformers') and our
// times per sentence.
export async function benchEmbedders({ tokenized, dist, rounds, chromiumPath, chromiumArgs, watchPage, say, BenchError }) {
  const server = await startServer([
    ['/embedders.html', path.join(HERE, 'embedders.html')],
    ['/ort-bench.js', path.join(HERE, 'ort-bench.js')],
    ['/ours-engine.js', path.join(HERE, 'ours-engine.js')],
    ['/ort/', path.join(ORT_PKG, 'dist')],
    ['/models/minilm-int8.onnx', ORT_MODEL],
    ...(dist ? [['/ours/', dist]] : []),
  ]);
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs });
  try {
    const page = await browser.newPage();
    const pageProblems = watchPage(page, 'query-embedding');
    page.setDefaultTimeout(RUN_TIMEOUT_MS);
    const failed = (who) => (e) => { throw new BenchError(`${who} failed: ${e.message}${pageProblems()}`); };
    await page.goto(`${server.origin}/embedders.html`);
    // ours-engine.js only when our page is served (it imports ./ours/protocol.js).
    if (dist) await page.addScriptTag({ type: 'module', url: './ours-engine.js' });
    await page.waitForFunction((withOurs) => typeof window.ortOpen === 'function'
      && (!withOurs || typeof window.oursOpen === 'function'), Boolean(dist), { timeout: 60_000 })
      .catch(() => { throw new BenchError(`the embedding page did not start${pageProblems()}`); });

    const sentences = tokenized.map(({ text, input_ids, attention_mask, token_type_ids }) =>
      ({ text, input_ids, attention_mask, token_type_ids }));
    say(`onnxruntime-web: load + warm-up over ${sentences.length} sentences…`);
    await page.evaluate((args) => window.ortOpen(args), { modelUrl: './models/minilm-int8.onnx', sentences })
      .catch(failed('onnxruntime-web'));
    const ort = (i) => page.evaluate((i) => window.ortOne(i), i).catch(failed('onnxruntime-web'));
    let ours = null;
    let oursLoad = null;
    const oursTimes = Object.fromEntries(sentences.map((s) => [s.text, []]));
    if (dist) {
      say('ours: the page\'s worker, load + warm-up…');
      oursLoad = await page.evaluate(() => window.oursOpen()).catch(failed('our engine'));
      ours = (i) => page.evaluate((idea) => window.oursOne(idea), sentences[i].text).catch(failed('our engine'));
      for (let i = 0; i < sentences.length; i++) await ours(i);
    }
    say(`query embedding: ${rounds} rounds × ${sentences.length} sentences${ours ? ', ours and ORT\'s in turn' : ''}…`);
    for (let round = 0; round < rounds; round++) {
      const oursFirst = round % 2 === 0;
      for (let i = 0; i < sentences.length; i++) {
        if (ours && oursFirst) oursTimes[sentences[i].text].push(await ours(i));
        await ort(i);
        if (ours && !oursFirst) oursTimes[sentences[i].text].push(await ours(i));
      }
    }
    if (ours) await page.evaluate(() => window.oursClose());
    const result = await page.evaluate(() => window.ortClose()).catch(failed('onnxruntime-web'));
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
    const wasmFiles = Object.keys(traffic.paths)
      .filter((p) => p.startsWith('/ort/') && p.endsWith('.wasm')).map((p) => path.basename(p));
    return {
      ort: {
        ...rest,
        chromium: browser.version(),
        wasm_files: wasmFiles,
        wasm_bytes: wasmFiles.map((f) => fs.statSync(path.join(ORT_PKG, 'dist', f)).size),
        cosines,
        min_cosine: worst,
      },
      ours: dist ? oursTimes : null,
      ours_load: oursLoad,
    };
  } finally {
    await browser.close().catch(() => {});
    await server.close();
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

// The per-sentence rows and two overall ones, over the sentences both sides embedded (so a
// shorter --runs compares like with like): the time to embed them all (the sum of each
// side's per-sentence medians), which the target is judged on, and the ratio of the two
// sides' medians. The second depends on four sentences only: the set is five questions of
// 7-10 tokens and five ideas of 17-21, so each side's median is the mean of its longest
// question and its shortest idea. `ort_ours` holds our times taken beside ORT's;
// `ort_ours_in_page` (older files: `ort_ours_during_run`) the page's own, from the run above.
export function ortComparison(results) {
  const ort = results.ort;
  const ours = results.ort_ours ?? {};
  const inPage = results.ort_ours_in_page ?? results.ort_ours_during_run ?? null;
  const rows = ort.sentences.map((s) => {
    const oursMs = median(ours[s.text] ?? []);
    return { text: s.text, tokens: s.tokens, ours_ms: oursMs, ours_runs: (ours[s.text] ?? []).length,
      in_page_ms: inPage ? median(inPage[s.text] ?? []) : null, ort_ms: s.median_ms,
      ratio: oursMs != null ? oursMs / s.median_ms : null };
  });
  const both = rows.filter((r) => r.ours_ms != null);
  const sum = (values) => values.reduce((total, v) => total + v, 0);
  const oursTotal = both.length ? sum(both.map((r) => r.ours_ms)) : null;
  const ortTotal = sum(both.map((r) => r.ort_ms));
  const totalRatio = oursTotal != null ? oursTotal / ortTotal : null;
  const oursMedian = median(both.map((r) => r.ours_ms));
  const ortMedian = median((both.length ? both : rows).map((r) => r.ort_ms));
  const ratio = oursMedian != null ? oursMedian / ortMedian : null;
  return { rows, in_page: inPage != null, both: both.length, ours_median_ms: oursMedian, ort_median_ms: ortMedian,
    ratio, ours_total_ms: oursTotal, ort_total_ms: ortTotal, total_ratio: totalRatio,
    in_page_median_ms: median(both.map((r) => r.in_page_ms)),
    in_page_total_ms: both.every((r) => r.in_page_ms != null) ? sum(both.map((r) => r.in_page_ms)) : null,
    tokens_median: median((both.length ? both : rows).map((r) => r.tokens)),
    tokens_total: sum(both.map((r) => r.tokens)),
    target: TARGET_RATIO, met: totalRatio != null ? totalRatio <= TARGET_RATIO : null };
}

// How our side was measured, by the harness that wrote the file.
function oursMethod(results, runs) {
  const n = Math.min(...runs) === Math.max(...runs) ? runs[0] : `${Math.min(...runs)}–${Math.max(...runs)}`;
  if (results.ort_harness === 'workers') {
    return 'Ours: the page\'s own worker (dist/worker.js and its wasm), with no page drawing around it, as ' +
      'ORT runs: embed_ms of a search-only query (tokenization + int8 embedding), a warm-up pass, then the ' +
      `median of ${n} rounds, sentence by sentence, ours and ORT's in turn (who goes first alternates). ` +
      'Beside it, "in the page": the page\'s own embed_ms during the run above (each after a generation, ' +
      'and while the page draws the frame the click started).';
  }
  if (results.ort_ours_during_run !== undefined) {
    return 'Ours: the page\'s own embed_ms (tokenization + int8 embedding in its worker), each a search-only ' +
      `query in the page: a warm-up pass, then the median of ${n} rounds ` +
      `(${results.ort_alternating ? 'alternating with ORT\'s: a pass of ours over the sentences, then one of ' +
        'ORT\'s' : 'all of ours, then all of ORT\'s'}). Beside it, the embeddings the run above did between ` +
      'generations.';
  }
  return 'Ours: the page\'s own embed_ms (tokenization + int8 embedding in its worker), median of its ' +
    `${n} embeddings of each sentence during the run above (between generations).`;
}

export function renderOrtTable(results) {
  const ort = results.ort;
  const c = ortComparison(results);
  const line = (cells) => `| ${cells.join(' | ')} |`;
  const runs = c.rows.map((r) => r.ours_runs).filter((n) => n > 0);
  const verdict = c.met == null ? 'no figures of ours' : `target ≤ ${c.target}×: ${c.met ? 'met' : 'missed'}`;
  const extra = c.in_page && runs.length;
  const extraLabel = results.ort_harness === 'workers' ? 'Ours in the page' : 'Ours during the run';
  return [
    `Query embedding beside onnxruntime-web ${ort.ort_version ?? results.env.ort ?? ''}: same Chromium, same ` +
      `sentences and token ids. ORT: int8 ONNX MiniLM (${fmt(ort.model_bytes / 1e6, 1, ' MB')}, QInt8 dynamic), ` +
      `wasm EP, ${ort.num_threads} thread, ${ort.wasm_files.join(' + ') || '(no .wasm seen)'}` +
      `${ort.wasm_bytes?.length ? ` (${fmt(ort.wasm_bytes[0] / 1e6, 1, ' MB')})` : ''}, in a module worker; ` +
      `loaded in ${fmt(ort.load_ms, 0, ' ms')} (fetch + runtime + session); ids → normalized vector ` +
      `(session.run, mean pooling, L2 in JS), median of ${ort.rounds} runs after a warm-up pass; cosine to ` +
      `sentence-transformers ≥ ${fmt(ort.min_cosine, 4)}. ` +
      (runs.length ? oursMethod(results, runs) : 'Ours: not run (--skip-ours).'),
    '',
    line(['Sentence', 'Tokens', 'Ours', 'onnxruntime-web', 'Ours / ORT', ...(extra ? [extraLabel] : [])]),
    line(['---', '---', '---', '---', '---', ...(extra ? ['---'] : [])]),
    ...c.rows.map((r) => line([shorten(r.text), String(r.tokens), fmt(r.ours_ms, 1, ' ms'), fmt(r.ort_ms, 1, ' ms'),
      r.ratio != null ? `${fmt(r.ratio, 2)}×` : '–', ...(extra ? [fmt(r.in_page_ms, 1, ' ms')] : [])])),
    line([`**All ${c.both || c.rows.length} sentences** (total time)`, String(c.tokens_total),
      fmt(c.ours_total_ms, 1, ' ms'), fmt(c.ort_total_ms, 1, ' ms'),
      `${c.total_ratio != null ? `${fmt(c.total_ratio, 2)}×` : '–'} (${verdict})`,
      ...(extra ? [fmt(c.in_page_total_ms, 1, ' ms')] : [])]),
    line([`Median sentence (ratio of medians; of ${c.both || c.rows.length})`, fmt(c.tokens_median, 0),
      fmt(c.ours_median_ms, 1, ' ms'), fmt(c.ort_median_ms, 1, ' ms'),
      c.ratio != null ? `${fmt(c.ratio, 2)}×` : '–',
      ...(extra ? [fmt(c.in_page_median_ms, 1, ' ms')] : [])]),
  ].join('\n');
}
