// End-to-end: the real page (dist/, built by `trunk build --release`) with the real models,
// in Debian's headless Chromium, driven by playwright-core. One browser profile goes
// through a visitor's life: first visit (progress, retrieval, a tagline), Stop, the "Best"
// (beam search) tagline streaming without taking text back and its Stop, a reload
// with the server gone (service worker + Cache API), a damaged cache entry that must be
// fetched again. Run: `node --test tests/e2e/` (scripts/test does, after building dist/).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { launchProfile, waitForPageState } from './browser.mjs';
import { StaticServer } from './static-server.mjs';

const DIST = resolve(process.env.MARQUEE_DIST ?? 'dist');
const SHOTS = process.env.MARQUEE_SCREENSHOTS ?? join(tmpdir(), 'marquee-e2e');
const LOAD_TIMEOUT = 180_000;
const GENERATE_TIMEOUT = 180_000;

let server;
let context;
let page;

// A fresh browser profile at phone size.
const launch = () => launchProfile({ viewport: { width: 390, height: 844 } });

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  server = new StaticServer(DIST);
  await server.start();
  [context, page] = await launch();
});

after(async () => {
  await context?.close();
  await server?.stop();
});

const waitForState = (state, timeout) => waitForPageState(page, state, timeout);

// `button`: '#generate' ("Surprise me", sampled) or '#best' (beam search).
async function generate(idea, { maxTokens = 24, temperature = 0.7, beamWidth = 4, button = '#generate' } = {}) {
  // The settings live in a collapsed <details>, as a visitor finds them.
  await page.$eval('#max-tokens', (input) => { input.closest('details').open = true; });
  await page.fill('#idea', idea);
  await page.fill('#max-tokens', String(maxTokens));
  await page.fill('#temperature', String(temperature));
  await page.fill('#beam-width', String(beamWidth));
  await page.click(button);
}

// Records every text the tagline shows from now on (window.taglineTexts).
async function watchTagline() {
  await page.evaluate(() => {
    const tagline = document.querySelector('#tagline');
    window.taglineTexts = [];
    window.taglineWatch?.disconnect();
    window.taglineWatch = new MutationObserver(() => window.taglineTexts.push(tagline.textContent));
    window.taglineWatch.observe(tagline, { childList: true, characterData: true, subtree: true });
  });
}

// While streaming, each text shown extends the one before (nothing is taken back), and the
// finished tagline is what was streamed.
async function assertStreamedOnly() {
  const texts = await page.evaluate(() => window.taglineTexts);
  const streamed = texts.slice(0, -1);
  streamed.forEach((text, i) => {
    if (i > 0) assert.ok(text.startsWith(streamed[i - 1]), `${JSON.stringify(streamed[i - 1])} then ${JSON.stringify(text)}`);
  });
  assert.equal(texts.at(-1), (streamed.at(-1) ?? '').trim(), JSON.stringify(texts));
}

async function finishedTagline() {
  await page.waitForSelector('#tagline[data-stop]', { timeout: GENERATE_TIMEOUT });
  return {
    text: (await page.textContent('#tagline')).trim(),
    stop: await page.getAttribute('#tagline', 'data-stop'),
  };
}

test('first visit: progress, retrieved movies, a streamed tagline', async () => {
  await page.goto(server.url);
  // The overall bar must move while the bundle downloads, not jump from 0 to done.
  const seen = await page.waitForFunction(() => {
    const bar = document.querySelector('#overall-progress');
    const value = Number(bar?.value ?? 0);
    return value > 0 && value < 100 && document.querySelector('#assets li') ? value : null;
  }, null, { timeout: LOAD_TIMEOUT, polling: 20 });
  assert.ok(await seen.jsonValue() > 0);
  await page.screenshot({ path: join(SHOTS, '1-loading.png'), fullPage: true });
  await waitForState('ready', LOAD_TIMEOUT);
  assert.match(await page.textContent('#ready-line'), /4,799 movies/);
  // The catalogue's attribution comes from its bundle; the settings' bounds from the engine.
  assert.match(await page.textContent('#catalogue-attribution'), /Movie data from TMDB/);
  assert.equal(await page.getAttribute('#k', 'max'), '20');
  assert.equal(await page.inputValue('#max-tokens'), '32');

  await watchTagline();
  await generate('Toys that come to life when nobody is watching go on an adventure.');
  await page.waitForSelector('#movies li.movie', { timeout: GENERATE_TIMEOUT });
  const titles = await page.$$eval('#movies li.movie', (items) => items.map((li) => li.textContent));
  assert.ok(titles.some((t) => t.includes('Toy Story')), titles.join(' | '));
  const { text, stop } = await finishedTagline();
  assert.ok(text.length > 0, 'a non-empty tagline');
  assert.notEqual(stop, 'cancelled');
  assert.equal(await page.getAttribute('#tagline', 'data-decoding'), 'sampled');
  await assertStreamedOnly();
  assert.match(await page.textContent('#gen-stats'), /tok\/s/);
  await page.screenshot({ path: join(SHOTS, '2-generated.png'), fullPage: true });
});

test('Stop ends a generation early', async () => {
  await generate('A detective in a rain-soaked city hunts a killer who leaves riddles.', {
    maxTokens: 64, temperature: 1.2,
  });
  // Stop as soon as the first piece of text arrives.
  await page.waitForFunction(() => document.querySelector('#tagline')?.textContent.trim().length > 0,
    null, { timeout: GENERATE_TIMEOUT, polling: 10 });
  await page.click('#stop');
  const { stop } = await finishedTagline();
  assert.equal(stop, 'cancelled');
  await waitForState('ready', 10_000);
  assert.equal(await page.isDisabled('#generate'), false);
});

test('Best streams the beam search\'s tagline without taking text back, and Stop ends it', async () => {
  assert.equal((await page.textContent('#best')).trim(), 'Best');
  assert.equal((await page.textContent('#generate')).trim(), 'Surprise me');
  await watchTagline();
  await generate('A small-town librarian discovers that the books are quietly rewriting her life.', {
    button: '#best',
  });
  const { text, stop } = await finishedTagline();
  assert.ok(text.length > 0, 'a non-empty tagline');
  assert.notEqual(stop, 'cancelled');
  assert.equal(await page.getAttribute('#tagline', 'data-decoding'), 'beam');
  assert.match(await page.textContent('#gen-stats'), /beam of 4/);
  await assertStreamedOnly();
  await page.screenshot({ path: join(SHOTS, '2b-best.png'), fullPage: true });

  // The widest, longest search, stopped as soon as the similar movies are in.
  await watchTagline();
  await generate('A detective in a rain-soaked city hunts a killer who leaves riddles.', {
    button: '#best', maxTokens: 64, beamWidth: 8,
  });
  // The last idea's movies stay (dimmed, aria-busy) until this one's arrive.
  await page.waitForSelector('#movies[aria-busy="false"] li.movie', { timeout: GENERATE_TIMEOUT });
  await page.click('#stop');
  assert.equal((await finishedTagline()).stop, 'cancelled');
  await assertStreamedOnly();
  await waitForState('ready', 10_000);
  assert.equal(await page.isDisabled('#best'), false);
});

test('a reload with the server gone still loads and generates', async () => {
  // The service worker must control the page before the network goes away.
  await page.waitForFunction(() => navigator.serviceWorker?.controller !== null, null,
    { timeout: 30_000 });
  await server.stop();
  await page.reload();
  await waitForState('ready', LOAD_TIMEOUT);
  await generate('An astronaut stranded on Mars grows potatoes to survive.');
  const { text } = await finishedTagline();
  assert.ok(text.length > 0);
  await page.screenshot({ path: join(SHOTS, '3-offline.png'), fullPage: true });
  await server.start();
});

test('damaged cache entries are dropped and fetched again', async () => {
  // movies.json cut in half (a size error); one bit of the generator flipped (a sha256
  // error: the generator's bytes are hashed piece by piece, never copied whole into wasm).
  const damaged = await page.evaluate(async () => {
    const cache = await caches.open('marquee-parts-v1');
    const keys = (await cache.keys()).map((r) => r.url);
    const out = {};
    for (const [name, damage] of [
      ['movies.json', (b) => b.slice(0, b.length >> 1)],
      ['generator-q4_0.gguf', (b) => { const c = b.slice(); c[c.length >> 1] ^= 0x10; return c; }],
    ]) {
      const key = keys.find((u) => u.includes(name));
      const bytes = new Uint8Array(await (await cache.match(key)).arrayBuffer());
      await cache.put(key, new Response(damage(bytes)));
      out[name] = { key, full: bytes.length };
    }
    return out;
  });
  server.requests.clear();
  await page.reload();
  await waitForState('ready', LOAD_TIMEOUT);
  assert.ok(server.requests.get('/bundle/movies.json') >= 1, 'movies.json fetched again');
  assert.ok(server.requests.get('/bundle/generator-q4_0.gguf') >= 1, 'the generator fetched again');
  assert.equal(server.requests.get('/bundle/index.bin') ?? 0, 0, 'intact parts come from the cache');
  for (const { key, full } of Object.values(damaged)) {
    const repaired = await page.evaluate(async (key) => {
      const cache = await caches.open('marquee-parts-v1');
      return (await (await cache.match(key)).arrayBuffer()).byteLength;
    }, key);
    assert.equal(repaired, full);
  }
});

test('text from the data and the model is shown as text, not HTML', async () => {
  const injected = await page.evaluate(() => document.querySelectorAll(
    '#movies script, #movies img, #tagline *, #movies iframe').length);
  assert.equal(injected, 0);
  await generate('<img src=x onerror="document.body.dataset.pwned=1"> a haunted house');
  await finishedTagline();
  assert.equal(await page.evaluate(() => document.body.dataset.pwned), undefined);
});

test('with storage too small to cache the models, the page says so and still works', async () => {
  const [browser, small] = await launch();
  try {
    // Chromium's own quota, shrunk for this origin: the worker's cache.put fails.
    const cdp = await browser.newCDPSession(small);
    await cdp.send('Storage.overrideQuotaForOrigin', {
      origin: server.url.replace(/\/$/, ''), quotaSize: 5_000_000,
    });
    page = small;
    await page.goto(server.url);
    await waitForState('ready', LOAD_TIMEOUT);
    assert.match(await page.textContent('#notices'), /storage is full|not cached|Could not cache/i);
    await generate('Two rival magicians in Victorian London.');
    const { text } = await finishedTagline();
    assert.ok(text.length > 0);
    await page.screenshot({ path: join(SHOTS, '4-no-storage.png'), fullPage: true });
  } finally {
    await browser.close();
  }
});
