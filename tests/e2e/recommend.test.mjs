// End-to-end, the Recommend tab: the real page (dist/) in Debian's headless Chromium. The
// recs part is fetched on the tab's first opening, not before; three movies rated through
// search give ten recommendations, each naming the rated movies behind it, re-ranked in
// the page (the median re-ranking time is printed beside the 50 ms target); the ratings survive a reload
// and Clear removes them; an example profile starts a list; the note streams and Stop
// ends it. Run: `node --test tests/e2e/` (scripts/test does, after building dist/).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { launchProfile, waitForPageState } from './browser.mjs';
import { StaticServer } from './static-server.mjs';

const DIST = resolve(process.env.MARQUEE_DIST ?? 'dist');
const SHOTS = process.env.MARQUEE_SCREENSHOTS ?? join(tmpdir(), 'marquee-e2e');
const LOAD_TIMEOUT = 180_000;
const GENERATE_TIMEOUT = 180_000;
// The page's target for a re-ranking, from a click to the new list's numbers (printed beside
// the median; a test does not fail on speed, which varies by machine and load).
const TARGET_MS = 50;

const manifest = JSON.parse(readFileSync(join(DIST, 'bundle/manifest.json'), 'utf8'));
const recsFile = `/bundle/${manifest.parts.find((p) => p.name === 'recs')?.file}`;

let server;
let context;
let page;
const latencies = [];

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  server = new StaticServer(DIST);
  await server.start();
  [context, page] = await launchProfile({ viewport: { width: 390, height: 844 } });
});

after(async () => {
  if (latencies.length) {
    const sorted = [...latencies].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    console.log(`# recommendations in the page: median ${median.toFixed(1)} ms (target ${TARGET_MS}), ` +
      `max ${sorted.at(-1).toFixed(1)} ms over ${sorted.length} re-rankings`);
  }
  await context?.close();
  await server?.stop();
});

const waitForState = (state, timeout) => waitForPageState(page, state, timeout);

async function recsReady() {
  await page.waitForSelector('#recs-panel[data-recs="ready"], #recs-panel[data-recs="error"]',
    { timeout: LOAD_TIMEOUT });
  const status = await page.getAttribute('#recs-panel', 'data-recs');
  if (status !== 'ready') assert.fail(`the Recommend tab failed: ${await page.textContent('#recs-error')}`);
}

// Runs `action` and waits for the list it causes, returning the round trip the page measured.
async function reranked(action) {
  await page.$eval('#recs-stats', (stats) => { delete stats.dataset.ms; });
  await action();
  await page.waitForSelector('#recs-stats[data-ms]', { timeout: 10_000 });
  const ms = Number(await page.getAttribute('#recs-stats', 'data-ms'));
  latencies.push(ms);
  return ms;
}

// Types `query`, then gives the result titled `title` `stars` stars.
async function rateBySearch(query, title, stars) {
  await page.fill('#recs-search', query);
  const result = page.locator('#recs-results li', { hasText: title }).first();
  await result.waitFor({ timeout: 5_000 });
  await reranked(() => result.locator(`button[data-stars="${stars}"]`).click());
}

const ratedTitles = () => page.$$eval('#rated .movie-title', (nodes) => nodes.map((n) => n.textContent));

test('the recs part is fetched when the Recommend tab first opens, not before', async () => {
  assert.ok(!recsFile.endsWith('undefined'), 'the bundle has a recs part');
  await page.goto(server.url);
  await waitForState('ready', LOAD_TIMEOUT);
  assert.equal(server.requests.get(recsFile) ?? 0, 0, 'the first load does not fetch it');
  await page.click('#tab-recommend');
  await recsReady();
  assert.equal(server.requests.get(recsFile), 1);
  assert.match(await page.textContent('#recs-status'), /1,682 MovieLens movies/);
  assert.match(await page.textContent('#recs-source'), /GroupLens/);
});

test('three movies rated through search give ten recommendations with their sources', async () => {
  await rateBySearch('toy sto', 'Toy Story (1995)', 5);
  await rateBySearch('fargo', 'Fargo (1996)', 4);
  await rateBySearch('star wars', 'Star Wars (1977)', 5);
  assert.deepEqual(await ratedTitles(), ['Toy Story (1995)', 'Fargo (1996)', 'Star Wars (1977)']);
  const items = await page.$$eval('#recs-list li.movie', (lis) => lis.map((li) => ({
    title: li.querySelector('.movie-title').textContent,
    because: li.querySelector('.because').textContent,
  })));
  assert.equal(items.length, 10, JSON.stringify(items));
  const rated = ['Toy Story (1995)', 'Fargo (1996)', 'Star Wars (1977)'];
  assert.ok(items.every((i) => !rated.includes(i.title)), 'no rated movie is recommended');
  assert.ok(items.every((i) => rated.some((r) => i.because.includes(r))), JSON.stringify(items));
  // Changing a rating and removing one re-rank too: more timings for the figure.
  for (const stars of [3, 4, 2, 5]) {
    await reranked(() => page.locator('#rated li').nth(1).locator(`button[data-stars="${stars}"]`).click());
  }
  await rateBySearch('alien', 'Alien (1979)', 4);
  await reranked(() => page.locator('#rated li').nth(3).locator('button.remove').click());
  assert.equal((await ratedTitles()).length, 3);
  await page.screenshot({ path: join(SHOTS, '6-recommend.png'), fullPage: true });
  // Timed, not asserted: speed targets live in benchmarks (the figure is printed at the end).
  assert.ok(latencies.every((ms) => Number.isFinite(ms) && ms >= 0), `${latencies}`);
});

test('the ratings are still there after a reload, and Clear removes them', async () => {
  await page.reload();
  await waitForState('ready', LOAD_TIMEOUT);
  // The tab stays open across the reload (#recommend); the part now comes from the cache.
  await recsReady();
  assert.equal(server.requests.get(recsFile), 1, 'the cached part is reused');
  assert.deepEqual(await ratedTitles(), ['Toy Story (1995)', 'Fargo (1996)', 'Star Wars (1977)']);
  await page.waitForFunction(() => document.querySelectorAll('#recs-list li.movie').length === 10);
  await page.click('#recs-clear');
  assert.deepEqual(await ratedTitles(), []);
  assert.equal(await page.$$eval('#recs-list li', (lis) => lis.length), 0);
  await page.reload();
  await waitForState('ready', LOAD_TIMEOUT);
  await recsReady();
  assert.deepEqual(await ratedTitles(), []);
});

test('an example profile starts a list; the note streams, and Stop ends it', async () => {
  const profile = page.locator('#recs-profiles button').first();
  await reranked(() => profile.click());
  assert.ok((await ratedTitles()).length >= 4);
  await page.waitForFunction(() => document.querySelectorAll('#recs-list li.movie').length === 10);

  await page.click('#recs-why');
  await page.waitForFunction(() => document.querySelector('#recs-note')?.textContent.trim().length > 0,
    null, { timeout: GENERATE_TIMEOUT, polling: 10 });
  await page.click('#recs-stop');
  await page.waitForSelector('#recs-note[data-stop="cancelled"]', { timeout: 10_000 });
  await waitForState('ready', 10_000);

  await page.click('#recs-why');
  await page.waitForFunction(() => {
    const note = document.querySelector('#recs-note');
    return note?.dataset.stop && note.dataset.stop !== 'cancelled';
  }, null, { timeout: GENERATE_TIMEOUT });
  const note = (await page.textContent('#recs-note')).trim();
  assert.ok(note.length > 20, note);
  console.log(`# the note: ${note}`);
  assert.match(await page.textContent('#recs-note-stats'), /tokens/);
  await page.screenshot({ path: join(SHOTS, '7-note.png'), fullPage: true });
  // Data and model text went in as text.
  const injected = await page.evaluate(() => document.querySelectorAll(
    '#recs-note *, #recs-list script, #recs-list img, #rated script, #recs-results script').length);
  assert.equal(injected, 0);
});
