// Marquee main thread: loading progress, errors and page state, and the views; all model
// work lives in the worker (worker.js), reached through client.js. A new job is a new view
// here and a new task in the engine.

import { WorkerClient } from './client.js';
import { TaglineView } from './tagline-view.js';
import { RecsView } from './recs-view.js';
import { AskView } from './ask-view.js';
import { $, el, mb, pct, num } from './dom.js';

const els = {
  loading: $('loading'), overallProgress: $('overall-progress'), overallText: $('overall-text'),
  assets: $('assets'), readyLine: $('ready-line'), error: $('error'), notices: $('notices'),
  attribution: $('catalogue-attribution'),
  tabs: [...document.querySelectorAll('[role="tab"]')],
};

let ready = false;
let generating = false;
const assetRows = new Map(); // asset name -> row elements, so progress updates in place

const page = {
  ready: () => ready,
  generating: () => generating,
  setState,
  clearError,
};

// body[data-state] is what tests and CSS wait on; the views' buttons follow from it.
function setState(state) {
  document.body.dataset.state = state;
  generating = state === 'generating';
  tagline.update(ready, generating);
  recs.update(ready, generating);
  ask.update(ready, generating);
}

function clearError() {
  els.error.replaceChildren();
}

function showError(message, fatal) {
  els.error.replaceChildren(el('p', null, message || 'Something went wrong.'));
  if (fatal) {
    const retry = el('button', null, 'Retry');
    retry.type = 'button';
    retry.addEventListener('click', retryLoad);
    els.error.append(retry);
  }
}

// ---------- loading ----------
function startLoad() {
  ready = false;
  resetProgress();
  setState('loading');
  client.load();
}

function retryLoad() {
  clearError();
  els.notices.replaceChildren();
  startLoad();
}

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
    row.badge.textContent = m.cached ? 'cached'
      : m.retry ? `retry ${m.retry.attempt - 1} of ${m.retry.attempts - 1}` : '';
    row.li.dataset.stage = m.stage;
  }
  if (m.stage === 'retry') {
    // The worker resumes the part after a pause; say so instead of looking stuck.
    const secs = num(m.retry.delay_ms / 1000, 1);
    els.overallText.textContent =
      `The download of ${m.file} was interrupted (${m.retry.reason}); resuming in ${secs} s…`;
  } else if (m.stage === 'init') {
    els.overallProgress.removeAttribute('value');
    els.overallText.textContent = 'Preparing models…';
  } else if (m.overall_total > 0) {
    const p = pct(m.overall_loaded, m.overall_total);
    els.overallProgress.max = 100;
    els.overallProgress.value = p;
    els.overallText.textContent =
      `Downloading… ${mb(m.overall_loaded)} / ${mb(m.overall_total)} MB (${p}%)`;
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
  // The catalogue's own attribution travels in its bundle.
  els.attribution.textContent = m.attribution || '';
  els.attribution.hidden = !m.attribution;
  recs.onBundleReady(m.recommend);
  tabFor('recommend').hidden = !m.recommend;
  if (!m.recommend && selectedTab() === 'recommend') selectTab('tagline');
  ask.onBundleReady(m.ask);
  tabFor('ask').hidden = !m.ask;
  if (!m.ask && selectedTab() === 'ask') selectTab('tagline');
  // Warnings (quota, caching disabled…) are non-fatal: the app works, just less well.
  els.notices.replaceChildren(...(m.warnings || []).map((w) => {
    const p = el('p', 'notice', w);
    p.setAttribute('role', 'status');
    return p;
  }));
  setState('ready');
  if (selectedTab() === 'recommend') recs.open();
  if (selectedTab() === 'ask') ask.open();
}

function onError(m) {
  // The Recommend tab's own requests: its load (with a retry there) and its rankings.
  if (m.id != null && m.id === client.current.load_recs) {
    recs.onError(m, true);
    return;
  }
  if (m.id != null && m.id === client.current.recommend) {
    recs.onError(m, false);
    setState(ready ? 'ready' : 'loading');
    return;
  }
  // The Ask tab's: its load (with a retry there) and its questions.
  if (m.id != null && m.id === client.current.load_ask) {
    ask.onError(m, true);
    return;
  }
  if (m.id != null && m.id === client.current.ask) {
    ask.onError(m, false);
    setState(ready ? 'ready' : 'loading');
    return;
  }
  showError(m.message, m.fatal);
  tagline.onError(generating);
  if (m.fatal) {
    ready = false;
    setState('error');
  } else {
    setState(ready ? 'ready' : 'loading');
  }
}

function onCrash(message) {
  ready = false;
  setState('error');
  showError(`The model worker failed: ${message}`, true);
}

// ---------- tabs ----------
// Three tabs, one per job; the URL's hash keeps the one open across reloads.
const tabFor = (name) => els.tabs.find((t) => t.dataset.tab === name);
const selectedTab = () => els.tabs.find((t) => t.getAttribute('aria-selected') === 'true')?.dataset.tab;

function selectTab(name) {
  for (const tab of els.tabs) {
    const on = tab.dataset.tab === name;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    $(tab.getAttribute('aria-controls')).hidden = !on;
  }
  history.replaceState(null, '', name === 'tagline' ? location.pathname + location.search : `#${name}`);
  if (name === 'recommend') recs.open();
  if (name === 'ask') ask.open();
}

for (const tab of els.tabs) {
  tab.addEventListener('click', () => selectTab(tab.dataset.tab));
  tab.addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
    const visible = els.tabs.filter((t) => !t.hidden);
    const next = visible[(visible.indexOf(tab) + (e.key === 'ArrowRight' ? 1 : visible.length - 1)) % visible.length];
    next.focus();
    selectTab(next.dataset.tab);
  });
}

// ---------- wiring ----------
// Generation events carry their task: each goes to its view.
const viewOf = (m) => ({ recommend: recs, ask })[m.task] ?? tagline;
// The on-demand parts' progress goes to the tab that asked for them.
function routeProgress(m) {
  if (m.view === 'recommend') recs.onProgress(m);
  else if (m.view === 'ask') ask.onProgress(m);
  else onProgress(m);
}
const client = new WorkerClient({
  progress: routeProgress,
  ready: onReady,
  error: onError,
  retrieved: (m) => tagline.onRetrieved(m),
  recs_ready: (m) => recs.onReady(m),
  recommended: (m) => recs.onRecommended(m),
  ask_ready: (m) => ask.onReady(m),
  answered: (m) => { ask.onAnswered(m); if (!m.answering) setState('ready'); },
  token: (m) => viewOf(m).onToken(m),
  done: (m) => { viewOf(m).onDone(m); setState('ready'); },
}, onCrash);
const tagline = new TaglineView(client, page);
const recs = new RecsView(client, page);
const ask = new AskView(client, page);
const TAB_HASHES = { '#recommend': 'recommend', '#ask': 'ask' };
selectTab(TAB_HASHES[location.hash] ?? 'tagline');

navigator.serviceWorker?.register('./sw.js').catch((err) => console.warn('service worker registration failed', err));
startLoad();
