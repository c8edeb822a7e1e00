// End-to-end, real life: what visitors of a static site live through. A download cut in
// the middle resumes; a 404 or an HTML page instead of a part is an error naming it, stops
// the other downloads and caches nothing; two tabs loading at once share one verified copy
// of each part; a new deploy replaces the old one without a hard reload and without leaving
// its parts behind; fifty ideas in a row, some stopped, are all answered while the worker's
// memory levels off.
// Real page (dist/), real models, Debian's headless Chromium. Run: `node --test tests/e2e/`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { launchProfile } from './browser.mjs';
import { StaticServer } from './static-server.mjs';

const DIST = resolve(process.env.MARQUEE_DIST ?? 'dist');
const SHOTS = process.env.MARQUEE_SCREENSHOTS ?? join(tmpdir(), 'marquee-e2e');
const LOAD_TIMEOUT = 240_000;
const GENERATE_TIMEOUT = 180_000;
const manifestOf = (root) => JSON.parse(readFileSync(join(root, 'bundle/manifest.json'), 'utf8'));
const partPath = (manifest, name) => `/bundle/${manifest.parts.find((p) => p.name === name).file}`;

let server;
const browsers = [];

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  server = new StaticServer(DIST);
  await server.start();
});

after(async () => {
  for (const browser of browsers) await browser.close().catch(() => {});
  await server?.stop();
});

// Records every worker → page message in window.__messages.
function recordWorkerMessages() {
  const Native = window.Worker;
  window.__messages = [];
  window.Worker = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => window.__messages.push(e.data));
    }
  };
}

// A fresh browser profile, its pages recording worker messages.
async function launch() {
  const [browser, page] = await launchProfile();
  browsers.push(browser);
  await browser.addInitScript(recordWorkerMessages);
  return [browser, page];
}

async function waitForState(page, states, timeout = LOAD_TIMEOUT) {
  await page.waitForFunction((wanted) => wanted.includes(document.body.dataset.state),
    states, { timeout });
  return page.evaluate(() => document.body.dataset.state);
}

async function ready(page) {
  const state = await waitForState(page, ['ready', 'error']);
  if (state === 'error') assert.fail(`the page reports an error: ${await page.textContent('#error')}`);
}

async function tagline(page, idea, { stop = false, maxTokens = 16 } = {}) {
  await page.$eval('#max-tokens', (input) => { input.closest('details').open = true; });
  await page.fill('#idea', idea);
  await page.fill('#max-tokens', String(maxTokens));
  await page.evaluate(() => document.querySelector('#tagline').removeAttribute('data-stop'));
  await page.click('#generate');
  if (stop) {
    await page.waitForFunction(() => document.querySelector('#tagline').textContent.trim() !== ''
      || document.querySelector('#tagline').dataset.stop, null, { timeout: GENERATE_TIMEOUT, polling: 10 });
    await page.click('#stop').catch(() => {}); // it may have finished already
  }
  await page.waitForSelector('#tagline[data-stop]', { timeout: GENERATE_TIMEOUT });
  await waitForState(page, ['ready'], 30_000);
  return page.getAttribute('#tagline', 'data-stop');
}

// The parts cache's keys, as file names with their hashes.
const cachedParts = (page) => page.evaluate(async () => {
  const cache = await caches.open('marquee-parts-v1');
  return (await cache.keys()).map((r) => new URL(r.url).pathname.split('/').pop() + new URL(r.url).search);
});
// The parts a first load fetches: the on-demand ones (the recs part, the Ask tab's passages)
// wait for their feature (the bundle's `part::ON_DEMAND`).
const ON_DEMAND = ['recs', 'passages', 'passage-index', 'ask-adapter'];
const loadedAtStart = (manifest) => manifest.parts.filter((p) => !ON_DEMAND.includes(p.name));
const expectedParts = (manifest) => loadedAtStart(manifest).map((p) => `${p.file}?sha256=${p.sha256}`).sort();

test('a download cut in the middle resumes where it stopped, and says so', async () => {
  const manifest = manifestOf(DIST);
  const generator = partPath(manifest, 'generator');
  server.requests.clear();
  server.ranges.length = 0;
  // The 92 MB generator: the connection drops after 20 MB, twice.
  server.fault(generator, 'cut', { afterBytes: 20_000_000, times: 2 });
  const [, page] = await launch();
  await page.goto(server.url);
  const notice = await page.waitForFunction(() => {
    const text = document.querySelector('#overall-text')?.textContent ?? '';
    return /interrupted/.test(text) ? text : null;
  }, null, { timeout: LOAD_TIMEOUT, polling: 20 });
  console.log(`# the page said: ${await notice.jsonValue()}`);
  await page.screenshot({ path: join(SHOTS, '5-resuming.png'), fullPage: true });
  await ready(page);
  const retries = await page.evaluate(() => window.__messages.filter((m) => m.stage === 'retry'));
  assert.equal(retries.length, 2, JSON.stringify(retries));
  assert.ok(retries.every((m) => m.asset === 'generator' && m.retry.delay_ms > 0));
  const resumed = server.ranges.filter(([path]) => path === generator).map(([, from]) => from);
  // Each retry asks only for the bytes still missing: from where the last attempt stopped.
  assert.equal(resumed.length, 2, JSON.stringify(resumed));
  assert.ok(resumed[0] > 0 && resumed[1] > resumed[0], JSON.stringify(resumed));
  assert.deepEqual(retries.map((m) => m.loaded), resumed);
  assert.deepEqual((await cachedParts(page)).sort(), expectedParts(manifest));
  assert.notEqual(await tagline(page, 'A lighthouse keeper befriends a sea creature.'), null);
  server.faults.clear();
});

test('a 404 or an HTML page instead of a part is an error naming it, stops the rest, caches nothing', async () => {
  const manifest = manifestOf(DIST);
  for (const kind of ['404', 'html']) {
    server.fault(partPath(manifest, 'index'), kind);
    const [, page] = await launch();
    await page.goto(server.url);
    assert.equal(await waitForState(page, ['error', 'ready']), 'error');
    const message = await page.textContent('#error');
    assert.match(message, /index \(index\.bin\)/, message);
    assert.match(message, kind === 'html' ? /HTML page/ : /HTTP 404/, message);
    await page.screenshot({ path: join(SHOTS, `6-part-${kind}.png`), fullPage: true });
    assert.ok(!(await cachedParts(page)).some((key) => key.startsWith('index.bin')), 'nothing cached for it');
    // The failure stopped the other downloads: no progress arrives once it has settled.
    await page.waitForTimeout(300);
    const settled = await page.evaluate(() => window.__messages.length);
    await page.waitForTimeout(1500);
    assert.equal(await page.evaluate(() => window.__messages.length), settled, 'downloads went on');
    // The server is fixed: Retry loads without reloading the page.
    server.faults.clear();
    await page.click('#error button');
    await ready(page);
  }
});

test('two tabs loading at once share one verified copy of each part', async () => {
  const manifest = manifestOf(DIST);
  const [browser, first] = await launch();
  const second = await browser.newPage();
  server.requests.clear();
  await Promise.all([first.goto(server.url), second.goto(server.url)]);
  await Promise.all([ready(first), ready(second)]);
  assert.deepEqual((await cachedParts(first)).sort(), expectedParts(manifest));
  for (const part of loadedAtStart(manifest)) {
    // Each part crosses the network once; the other tab read it from the cache.
    assert.equal(server.requests.get(`/bundle/${part.file}`), 1, part.file);
  }
  const [a, b] = await Promise.all([
    tagline(first, 'Two rival chefs are snowed in at a mountain lodge.'),
    tagline(second, 'A robot butler plans the perfect birthday.'),
  ]);
  assert.ok(a && b);
});

// A second deploy of the site: another bundle (every title changed, so the movies part has
// another hash) and another wasm (a custom section appended: valid, different bytes),
// stamped with its own build id.
function secondDeploy() {
  const root = mkdtempSync(join(tmpdir(), 'marquee-deploy-2-'));
  cpSync(DIST, root, { recursive: true });
  const manifest = manifestOf(root);
  const movies = manifest.parts.find((p) => p.name === 'movies');
  const moviesPath = join(root, 'bundle', movies.file);
  const list = JSON.parse(readFileSync(moviesPath, 'utf8'));
  for (const movie of list) movie.title += ' (deploy 2)';
  const bytes = Buffer.from(JSON.stringify(list));
  writeFileSync(moviesPath, bytes);
  movies.bytes = bytes.length;
  movies.sha256 = createHash('sha256').update(bytes).digest('hex');
  writeFileSync(join(root, 'bundle/manifest.json'), JSON.stringify(manifest, null, 2));
  const wasm = join(root, 'marquee-web_bg.wasm');
  const name = Buffer.from('marquee-deploy');
  const section = Buffer.concat([Buffer.from([0, name.length + 2, name.length]), name, Buffer.from([2])]);
  writeFileSync(wasm, Buffer.concat([readFileSync(wasm), section]));
  execFileSync(resolve('scripts/stamp-build'), [root]);
  return { root, manifest };
}

const shellCaches = (page) => page.evaluate(async () =>
  (await caches.keys()).filter((name) => name.startsWith('marquee-shell-')));

test('a new deploy replaces the old one on a plain reload, and its old parts leave the cache', async () => {
  const [, page] = await launch();
  await page.goto(server.url);
  await ready(page);
  await page.waitForFunction(() => navigator.serviceWorker?.controller !== null, null, { timeout: 30_000 });
  const firstShell = await shellCaches(page);
  assert.equal(firstShell.length, 1, firstShell.join(', '));

  const deploy = secondDeploy();
  try {
    server.root = deploy.root;
    server.requests.clear();
    await page.reload();
    await ready(page);
    // The new service worker installs by itself, takes over and drops the old shell.
    await page.waitForFunction(async (old) => {
      const names = (await caches.keys()).filter((n) => n.startsWith('marquee-shell-'));
      return names.length === 1 && names[0] !== old;
    }, firstShell[0], { timeout: 60_000 });
    assert.ok(server.requests.get('/marquee-web_bg.wasm') >= 1, 'the new wasm came from the network');
    // The new bundle runs: its changed titles show...
    await tagline(page, 'Toys that come to life when nobody is watching go on an adventure.');
    const titles = await page.$$eval('#movies .movie-title', (nodes) => nodes.map((n) => n.textContent));
    assert.ok(titles.length > 0 && titles.every((t) => t.includes('(deploy 2)')), titles.join(' | '));
    // ...and the cache holds exactly its parts: the first deploy's movies part is gone.
    await page.waitForFunction(async (count) => {
      const cache = await caches.open('marquee-parts-v1');
      return (await cache.keys()).length === count;
    }, loadedAtStart(deploy.manifest).length, { timeout: 30_000 });
    assert.deepEqual((await cachedParts(page)).sort(), expectedParts(deploy.manifest));
  } finally {
    server.root = DIST;
    rmSync(deploy.root, { recursive: true, force: true });
  }
});

test('fifty ideas in a row, some stopped, are all answered and memory levels off', async () => {
  const [, page] = await launch();
  await page.goto(server.url);
  await ready(page);
  const ideas = [
    'A heist crew hides inside a dream.', 'Two rival magicians in Victorian London.',
    'A sheriff finds that the new neighbours are aliens.', 'A washed-up boxer trains a girl.',
    'A lonely robot falls in love with a lighthouse.',
  ];
  const memory = [];
  let stopped = 0;
  for (let i = 0; i < 50; i++) {
    const stop = i % 5 === 4;
    const outcome = await tagline(page, `${ideas[i % ideas.length]} (take ${i + 1})`, { stop });
    assert.ok(outcome, `idea ${i + 1} got no answer`);
    if (outcome === 'cancelled') stopped += 1;
    const done = await page.evaluate(() => window.__messages.filter((m) => m.type === 'done').at(-1));
    memory.push(done.wasm_memory_bytes);
  }
  const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
  console.log(`# worker wasm memory after ideas 1, 10, 25, 50: ${[0, 9, 24, 49].map((i) => mib(memory[i])).join(', ')} MiB; ${stopped} stopped`);
  assert.ok(stopped >= 5, `${stopped} ideas were stopped`);
  // Wasm memory never shrinks; after the first ideas it must stop growing.
  assert.ok(memory[49] <= memory[9] * 1.02, `grew from ${mib(memory[9])} to ${mib(memory[49])} MiB`);
});
