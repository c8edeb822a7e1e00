// End-to-end, the Ask tab: the real page (dist/) in Debian's headless Chromium. The two
// passage parts are fetched on the tab's first opening, not before; a question about a
// movie of the catalogue gets passages holding the answer and a streamed, non-empty answer;
// an off-topic question gets "I don't know." (the cosines are printed: the threshold is
// provisional); an empty and an over-long question get clear errors; Stop ends an answer
// being written as cancelled; markup in a question stays text; offline, a reload opens the
// tab from the cache; a bundle without passages has no Ask tab. The
// assertions are on retrieval and on the answer being text, never on the exact words
// generated. Run: `node --test tests/e2e/` (scripts/test does).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { launchProfile, waitForPageState } from './browser.mjs';
import { StaticServer } from './static-server.mjs';

const DIST = resolve(process.env.MARQUEE_DIST ?? 'dist');
const SHOTS = process.env.MARQUEE_SCREENSHOTS ?? join(tmpdir(), 'marquee-e2e');
const LOAD_TIMEOUT = 180_000;
const ANSWER_TIMEOUT = 120_000;

const manifest = JSON.parse(readFileSync(join(DIST, 'bundle/manifest.json'), 'utf8'));
const fileOf = (name) => manifest.parts.find((p) => p.name === name)?.file;
// The Ask tab's on-demand parts (the reader adapter when the bundle ships one).
const ASK_PARTS = ['passages', 'passage-index', 'ask-adapter'];
const askFiles = ASK_PARTS.map((name) => fileOf(name)).filter(Boolean);

let server;
let context;
let page;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  server = new StaticServer(DIST);
  await server.start();
  [context, page] = await launchProfile({ viewport: { width: 390, height: 844 } });
});

after(async () => {
  await context?.close();
  await server?.stop();
});

const waitForState = (state, timeout) => waitForPageState(page, state, timeout);

const requestsOf = (file) => server.requests.get(`/bundle/${file}`) ?? 0;

// Asks `question` and waits until the answer is over (written, unknown or stopped).
async function ask(question) {
  await page.fill('#question', question);
  await page.click('#ask-submit');
  await page.waitForSelector('#answer[data-stop]', { timeout: ANSWER_TIMEOUT });
  await waitForState('ready', 10_000);
  return {
    answer: (await page.textContent('#answer')).trim(),
    stop: await page.getAttribute('#answer', 'data-stop'),
    stats: await page.textContent('#answer-stats'),
    passages: await page.$$eval('#passages li', (lis) => lis.map((li) => ({
      title: li.querySelector('.movie-title').textContent,
      text: li.querySelector('.passage-text').textContent,
      cosine: Number(/similarity (-?[\d.]+)/.exec(li.querySelector('.score').textContent)?.[1]),
      inPrompt: li.dataset.inPrompt === 'true',
    }))),
  };
}

const cosines = (passages) => passages.map((p) => p.cosine.toFixed(2)).join(', ');

test('the passages are fetched when the Ask tab first opens, not before', async () => {
  assert.ok(fileOf('passages') && fileOf('passage-index'), 'the bundle has both passage parts');
  assert.ok(fileOf('ask-adapter'), 'the bundle ships the reader adapter');
  await page.goto(server.url);
  await waitForState('ready', LOAD_TIMEOUT);
  assert.equal(await page.isHidden('#tab-ask'), false, 'the Ask tab is shown');
  for (const file of askFiles) assert.equal(requestsOf(file), 0, `the first load does not fetch ${file}`);
  await page.click('#tab-ask');
  await page.waitForSelector('#ask-section[data-ask="ready"], #ask-section[data-ask="error"]',
    { timeout: LOAD_TIMEOUT });
  assert.equal(await page.getAttribute('#ask-section', 'data-ask'), 'ready', await page.textContent('#ask-error'));
  for (const file of askFiles) assert.equal(requestsOf(file), 1, file);
  assert.match(await page.textContent('#ask-status'), /[\d,]+ passages about [\d,]+ movies/);
  assert.equal(await page.$$eval('#ask-examples button', (b) => b.length) > 0, true);
});

test('a question about a movie gets passages holding the answer, and an answer', async () => {
  const result = await ask('Who directed Jurassic Park?');
  console.log(`# "Who directed Jurassic Park?": ${JSON.stringify(result.answer)}; cosines ${cosines(result.passages)}; ${result.stats}`);
  assert.notEqual(result.stop, 'unknown', 'a catalogue movie is not "I don\'t know"');
  assert.notEqual(result.stop, 'cancelled');
  const found = result.passages.find((p) => p.title.startsWith('Jurassic Park (') && p.text.includes('Steven Spielberg'));
  assert.ok(found, `a passage about Jurassic Park names its director: ${JSON.stringify(result.passages)}`);
  assert.ok(result.passages[0].inPrompt, 'the best passage is in the prompt');
  assert.ok(result.answer.length > 0, 'the answer is text');
  assert.match(result.stats, /first token \d+ ms/);
  // What is marked in the passages is words of the answer (whichever words the model chose).
  const marked = await page.$$eval('#passages mark', (marks) => marks.map((m) => m.textContent));
  console.log(`# marked in the passages: ${JSON.stringify(marked)}`);
  for (const text of marked) assert.ok(result.answer.toLowerCase().includes(text.toLowerCase()), text);
  await page.screenshot({ path: join(SHOTS, '8-ask.png'), fullPage: true });
  // Data and model text went in as text (a <mark> around the answer is the only element).
  const injected = await page.evaluate(() => document.querySelectorAll(
    '#answer *, #passages script, #passages img, #passages .passage-text :not(mark)').length);
  assert.equal(injected, 0);
});

test('markup in a question stays text, in the answer and the passages', async () => {
  const result = await ask('Who directed Avatar? <img src=x onerror="window.__pwned = 1"><script>window.__pwned = 2</script>');
  assert.ok(result.passages.length > 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  const elements = await page.evaluate(() => document.querySelectorAll(
    '#answer *, #passages img, #passages script, #ask-section img, #ask-section script').length);
  assert.equal(elements, 0);
});

test('an example question is answered from its passages too', async () => {
  await page.click('#ask-examples button >> nth=1');
  assert.match(await page.inputValue('#question'), /\?$/);
  const result = await ask(await page.inputValue('#question'));
  console.log(`# "${await page.inputValue('#question')}": ${JSON.stringify(result.answer)}; cosines ${cosines(result.passages)}; ${result.stats}`);
  assert.notEqual(result.stop, 'unknown');
  assert.ok(result.answer.length > 0);
});

test('an off-topic question gets "I don\'t know." and the nearest passages', async () => {
  const result = await ask('How long should I boil spaghetti for a carbonara?');
  console.log(`# off-topic: ${JSON.stringify(result.answer)}; cosines ${cosines(result.passages)}`);
  assert.equal(result.stop, 'unknown', `best cosine ${result.passages[0]?.cosine}`);
  assert.equal(result.answer, "I don't know.");
  assert.match(await page.textContent('#answer-note'), /close enough/);
  assert.ok(result.passages.length > 0, 'the passages found are still shown');
  await page.screenshot({ path: join(SHOTS, '9-ask-unknown.png'), fullPage: true });
});

test('an empty and an over-long question get clear errors', async () => {
  await page.fill('#question', '   ');
  await page.click('#ask-submit');
  assert.match(await page.textContent('#question-error'), /type a question/);
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'ready');
  // 400 bytes: the engine refuses it and says why (the page does not pre-check the length).
  await page.fill('#question', `${'Who directed this movie? '.repeat(16).trim()}!`);
  await page.click('#ask-submit');
  await page.waitForFunction(() => document.querySelector('#question-error').textContent.length > 0);
  assert.match(await page.textContent('#question-error'), /too long: 400 bytes \(the limit is 300\)/);
  await waitForState('ready', 10_000);
  assert.equal(await page.getAttribute('#question', 'aria-invalid'), 'true');
});

test('Stop ends an answer being written as cancelled', async () => {
  await page.fill('#question', 'Who composed the music for Titanic?');
  await page.click('#ask-submit');
  // The passages are in and the model is reading them: stop it.
  await page.waitForFunction(() => /reading|tokens/.test(document.querySelector('#answer-stats').textContent)
    || document.querySelector('#answer').dataset.stop !== undefined, null, { timeout: ANSWER_TIMEOUT, polling: 10 });
  assert.equal(await page.getAttribute('#answer', 'data-stop'), null, 'the answer was still being written');
  await page.click('#ask-stop');
  await page.waitForSelector('#answer[data-stop]', { timeout: 10_000 });
  assert.equal(await page.getAttribute('#answer', 'data-stop'), 'cancelled');
  assert.match(await page.textContent('#answer-stats'), /stopped by you/);
  await waitForState('ready', 10_000);
  // And the next question is answered as usual.
  const result = await ask('Who directed Avatar?');
  assert.notEqual(result.stop, 'cancelled');
  assert.ok(result.answer.length > 0);
});

test('offline, a reload opens the Ask tab from the cache and answers', async () => {
  // The service worker must control the page before the network goes away.
  await page.waitForFunction(() => navigator.serviceWorker?.controller !== null, null,
    { timeout: 30_000 });
  await server.stop();
  try {
    await page.reload();
    await waitForState('ready', LOAD_TIMEOUT);
    // The tab stays open across the reload (#ask); its parts come from the Cache API.
    await page.waitForSelector('#ask-section[data-ask="ready"], #ask-section[data-ask="error"]',
      { timeout: LOAD_TIMEOUT });
    assert.equal(await page.getAttribute('#ask-section', 'data-ask'), 'ready', await page.textContent('#ask-error'));
    assert.match(await page.textContent('#ask-status'), /from cache/);
    const result = await ask('Which 2010 film did Christopher Nolan direct?');
    console.log(`# offline, "Which 2010 film did Christopher Nolan direct?": ${JSON.stringify(result.answer)}; ` +
      `cosines ${cosines(result.passages)}; ${result.stats}`);
    assert.ok(result.passages.some((p) => p.title.startsWith('Inception (')), JSON.stringify(result.passages));
    assert.notEqual(result.stop, 'unknown');
    assert.ok(result.answer.length > 0);
  } finally {
    await server.start();
  }
});

test('a bundle without passages has no Ask tab, even asked for by #ask', async () => {
  // The same site, its manifest without the Ask parts (as `build --no-passages` writes it).
  const root = mkdtempSync(join(tmpdir(), 'marquee-no-passages-'));
  cpSync(DIST, root, { recursive: true });
  const file = join(root, 'bundle/manifest.json');
  const edited = JSON.parse(readFileSync(file, 'utf8'));
  edited.parts = edited.parts.filter((p) => !ASK_PARTS.includes(p.name));
  writeFileSync(file, JSON.stringify(edited));
  const other = new StaticServer(root);
  await other.start();
  const [browser, tab] = await launchProfile({ viewport: { width: 390, height: 844 } });
  try {
    await tab.goto(`${other.url}#ask`);
    await tab.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null,
      { timeout: LOAD_TIMEOUT });
    assert.equal(await tab.evaluate(() => document.body.dataset.state), 'ready', await tab.textContent('#error'));
    assert.equal(await tab.isHidden('#tab-ask'), true);
    assert.equal(await tab.getAttribute('#tab-tagline', 'aria-selected'), 'true', 'back on the tagline tab');
    assert.equal(await tab.isHidden('#ask-panel'), true);
  } finally {
    await browser.close();
    await other.stop();
    rmSync(root, { recursive: true, force: true });
  }
});
