// Marquee main thread: draws the page and talks to worker.js via postMessage.
// All model work lives in the worker; worker-supplied text is only ever inserted
// with textContent/append (never innerHTML) so catalogue data cannot inject markup.

const $ = (id) => document.getElementById(id);
const els = {
  form: $('query-form'), idea: $('idea'), ideaError: $('idea-error'),
  generate: $('generate'), stop: $('stop'),
  k: $('k'), temperature: $('temperature'), temperatureValue: $('temperature-value'),
  maxTokens: $('max-tokens'), mode: $('mode'), seed: $('seed'), randomSeed: $('random-seed'),
  loading: $('loading'), overallProgress: $('overall-progress'), overallText: $('overall-text'),
  assets: $('assets'), readyLine: $('ready-line'), error: $('error'), notices: $('notices'),
  tagline: $('tagline'), genStats: $('gen-stats'), movies: $('movies'), retrievalStats: $('retrieval-stats'),
};

let worker = null;
let workerBroken = false; // the script itself failed: a plain {type:'load'} can't help, so recreate it
let currentId = 0;        // id of the query in flight (or last finished); older ids are stale
let ready = false;
let generating = false;
const assetRows = new Map(); // asset name -> row elements, so progress updates in place

// ---------- formatting ----------
const mb = (bytes) => (bytes / 1e6).toFixed(1);
const pct = (part, whole) => Math.min(100, Math.floor((part / whole) * 100));
const num = (v, digits) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : null);
const STOP_LABELS = { end_of_text: 'end of text', end_of_line: 'end of line', max_tokens: 'max tokens' };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = String(text);
  return node;
}

// ---------- state ----------
// body[data-state] is what tests and CSS wait on; buttons follow from it.
function setState(state) {
  document.body.dataset.state = state;
  generating = state === 'generating';
  els.generate.disabled = !ready || generating;
  els.stop.disabled = !generating;
}

function clearError() {
  els.error.replaceChildren();
}

function showError(message, fatal) {
  const p = el('p', null, message || 'Something went wrong.');
  els.error.replaceChildren(p);
  if (fatal) {
    const retry = el('button', null, 'Retry');
    retry.type = 'button';
    retry.addEventListener('click', retryLoad);
    els.error.append(retry);
  }
}

// ---------- worker ----------
function createWorker() {
  const w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  w.addEventListener('message', (e) => handleMessage(e.data || {}));
  // A script/module error means the worker never started (or crashed): treat as fatal load error.
  w.addEventListener('error', (e) => {
    console.error('worker error', e);
    workerBroken = true;
    ready = false;
    setState('error');
    showError(`The model worker failed: ${e.message || 'could not start'}`, true);
  });
  return w;
}

function startLoad() {
  ready = false;
  resetProgress();
  setState('loading');
  worker.postMessage({ type: 'load' });
}

function retryLoad() {
  clearError();
  els.notices.replaceChildren();
  if (workerBroken) {
    worker.terminate();
    worker = createWorker();
    workerBroken = false;
  }
  startLoad();
}

const handlers = {
  progress: onProgress, ready: onReady, retrieved: onRetrieved,
  token: onToken, done: onDone, error: onError,
};

function handleMessage(msg) {
  // Query-scoped messages for an older query (e.g. after cancel + new Generate) are stale.
  if (msg.id != null && msg.id !== currentId) return;
  const handler = handlers[msg.type];
  if (handler) handler(msg);
  else console.warn('unknown worker message', msg.type);
}

// ---------- loading progress ----------
function resetProgress() {
  assetRows.clear();
  els.assets.replaceChildren();
  els.overallProgress.removeAttribute('value'); // indeterminate until the first report
  els.overallText.textContent = 'Starting…';
  els.loading.hidden = false;
  els.readyLine.hidden = true;
}

function assetRow(asset) {
  let row = assetRows.get(asset);
  if (!row) {
    row = {
      li: el('li', 'asset'), name: el('span', 'asset-name', asset), bytes: el('span', 'asset-bytes'),
      pct: el('span', 'asset-pct'), badge: el('span', 'badge'), bar: el('progress'),
    };
    row.li.dataset.asset = asset;
    row.bar.setAttribute('aria-label', `${asset} download`);
    row.li.append(row.name, row.bytes, row.pct, row.badge, row.bar);
    els.assets.append(row.li);
    assetRows.set(asset, row);
  }
  return row;
}

function onProgress(m) {
  if (m.asset) {
    const row = assetRow(m.asset);
    const known = typeof m.total === 'number' && m.total > 0;
    row.bytes.textContent = known ? `${mb(m.loaded)} / ${mb(m.total)} MB` : `${mb(m.loaded || 0)} MB`;
    row.pct.textContent = known ? `${pct(m.loaded, m.total)}%` : '';
    if (known) { row.bar.max = m.total; row.bar.value = m.loaded; }
    else row.bar.removeAttribute('value'); // no content-length: indeterminate bar
    row.badge.textContent = m.cached ? 'cached' : m.stage === 'verify' ? 'verifying' : '';
    row.li.dataset.stage = m.stage;
  }
  if (m.stage === 'init') {
    els.overallProgress.removeAttribute('value');
    els.overallText.textContent = 'Preparing models…';
  } else if (m.overall_total > 0) {
    const p = pct(m.overall_loaded, m.overall_total);
    els.overallProgress.max = 100;
    els.overallProgress.value = p;
    const verb = m.stage === 'verify' ? 'Verifying' : 'Downloading';
    els.overallText.textContent = `${verb}… ${mb(m.overall_loaded)} / ${mb(m.overall_total)} MB (${p}%)`;
  }
}

function onReady(m) {
  ready = true;
  els.loading.hidden = true;
  const movies = Number(m.movies || 0).toLocaleString('en-US');
  const secs = num((m.load_ms || 0) / 1000, 1);
  const sources = [];
  if (m.cached_bytes > 0) sources.push(`${mb(m.cached_bytes)} MB from cache`);
  if (m.downloaded_bytes > 0) sources.push(`${mb(m.downloaded_bytes)} MB downloaded`);
  const extra = sources.length ? ` (${sources.join(', ')})` : '';
  els.readyLine.textContent = `Ready: ${movies} movies · loaded in ${secs} s${extra}`;
  els.readyLine.hidden = false;
  // Warnings (quota, caching disabled…) are non-fatal: the app works, just less well.
  els.notices.replaceChildren(...(m.warnings || []).map((w) => {
    const p = el('p', 'notice', w);
    p.setAttribute('role', 'status');
    return p;
  }));
  setState('ready');
}

// ---------- query ----------
function readSettings() {
  const int = (input, lo, hi, dflt) => {
    const v = Number.parseInt(input.value, 10);
    return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : dflt;
  };
  const temperature = Math.min(1.5, Math.max(0, Number.parseFloat(els.temperature.value) || 0));
  let seed = int(els.seed, 0, 0xffffffff, 42);
  if (els.randomSeed.checked) {
    seed = crypto.getRandomValues(new Uint32Array(1))[0];
    els.seed.value = String(seed); // show it, so a good result can be reproduced
  }
  return {
    k: int(els.k, 1, 10, 4), mode: els.mode.value === 'exact' ? 'exact' : 'hnsw',
    temperature, max_tokens: int(els.maxTokens, 8, 64, 32), seed,
  };
}

function setIdeaError(message) {
  els.ideaError.textContent = message;
  if (message) els.idea.setAttribute('aria-invalid', 'true');
  else els.idea.removeAttribute('aria-invalid');
}

function submitQuery(event) {
  event.preventDefault();
  if (!ready || generating) return;
  const idea = els.idea.value.trim();
  if (!idea) {
    setIdeaError('Please describe a movie idea first.');
    els.idea.focus();
    return;
  }
  setIdeaError('');
  clearError();
  currentId += 1;
  els.tagline.textContent = '';
  els.tagline.removeAttribute('data-stop');
  els.tagline.setAttribute('aria-busy', 'true'); // announce the finished line, not every token
  els.genStats.textContent = 'Searching similar movies…';
  els.movies.replaceChildren();
  els.retrievalStats.textContent = '';
  setState('generating');
  worker.postMessage({ type: 'query', id: currentId, idea, ...readSettings() });
}

function stopQuery() {
  if (!generating) return;
  els.stop.disabled = true; // the worker answers with done{stop:'cancelled'}
  worker.postMessage({ type: 'cancel', id: currentId });
}

function renderMovie(m) {
  const li = el('li', 'movie');
  li.dataset.index = String(m.index);
  const h3 = el('h3');
  h3.append(el('span', 'movie-title', m.year != null ? `${m.title} (${m.year})` : m.title));
  const score = el('span', 'score', `similarity ${num(m.score, 2) ?? '–'}`);
  h3.append(score);
  li.append(h3);
  li.append(m.tagline ? el('p', 'movie-tagline', m.tagline) : el('p', 'movie-tagline muted', 'no tagline'));
  if (m.genres?.length) {
    // Spans, not a nested <ul>, so `#movies li` only ever matches the movies themselves.
    const genres = el('p', 'genres');
    genres.append(el('span', 'visually-hidden', 'Genres: '), ...m.genres.map((g) => el('span', 'genre', g)));
    li.append(genres);
  }
  if (m.overview) {
    const details = el('details');
    details.append(el('summary', null, 'Overview'), el('p', null, m.overview));
    li.append(details);
  }
  return li;
}

function onRetrieved(m) {
  els.movies.replaceChildren(...(m.movies || []).map(renderMovie));
  const mode = m.mode === 'exact' ? 'exact' : 'HNSW';
  els.retrievalStats.textContent =
    `query embedded in ${num(m.embed_ms, 1)} ms · searched in ${num(m.search_ms, 1)} ms (${mode})`;
  els.genStats.textContent = 'Writing tagline…';
}

function onToken(m) {
  els.tagline.append(m.text || ''); // append() inserts a text node: streaming pieces stay plain text
  const rate = num(m.tokens_per_s, 1);
  els.genStats.textContent = `${m.tokens} tokens` + (rate ? ` · ${rate} tok/s` : '');
}

function onDone(m) {
  els.tagline.textContent = (m.text || '').trim();
  els.tagline.dataset.stop = m.stop || '';
  els.tagline.setAttribute('aria-busy', 'false');
  const parts = [];
  if (num(m.ttft_ms, 0)) parts.push(`first token ${num(m.ttft_ms, 0)} ms`);
  if (num(m.prefill_tokens_per_s, 0)) parts.push(`prefill ${num(m.prefill_tokens_per_s, 0)} tok/s`);
  if (num(m.decode_tokens_per_s, 1)) parts.push(`decode ${num(m.decode_tokens_per_s, 1)} tok/s`);
  parts.push(`${m.tokens ?? 0} tokens`);
  parts.push(m.stop === 'cancelled' ? 'stopped by you' : `stopped: ${STOP_LABELS[m.stop] || m.stop}`);
  els.genStats.textContent = parts.join(' · ');
  setState('ready');
}

function onError(m) {
  showError(m.message, m.fatal);
  els.tagline.setAttribute('aria-busy', 'false');
  if (m.fatal) {
    ready = false;
    setState('error');
  } else {
    if (generating) els.genStats.textContent = '';
    setState(ready ? 'ready' : 'loading');
  }
}

// ---------- wiring ----------
function wireUi() {
  els.form.addEventListener('submit', submitQuery);
  els.stop.addEventListener('click', stopQuery);
  els.idea.addEventListener('input', () => els.ideaError.textContent && setIdeaError(''));
  els.idea.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      els.form.requestSubmit();
    }
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && generating) { e.preventDefault(); stopQuery(); }
  });
  for (const chip of document.querySelectorAll('.chip[data-idea]')) {
    chip.addEventListener('click', () => {
      els.idea.value = chip.dataset.idea;
      setIdeaError('');
      els.idea.focus();
    });
  }
  const showTemp = () => { els.temperatureValue.textContent = Number(els.temperature.value).toFixed(2); };
  els.temperature.addEventListener('input', showTemp);
  showTemp();
}

wireUi();
navigator.serviceWorker?.register('./sw.js').catch((err) => console.warn('service worker registration failed', err));
worker = createWorker();
startLoad();
