// Debian's headless Chromium with a fresh profile for the end-to-end tests: the flags this
// closed network needs (no background connections, no component updates, no QUIC).

import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

// A persistent context on a new profile directory (its Cache API and service worker survive
// reloads), and its first page, which logs page errors. The directory goes when the context
// closes: with the models cached in it, each is about 270 MB, 3 GB a run of the suite.
export async function launchProfile(options = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'marquee-profile-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    ...options,
  });
  // Removed once closing is over (the tests await it), retried in case Chromium is still
  // writing to it.
  const close = browser.close.bind(browser);
  browser.close = async (...args) => {
    await close(...args);
    await rm(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 })
      .catch((error) => console.error(`could not remove the profile ${profile}: ${error.message}`));
  };
  const first = browser.pages()[0] ?? await browser.newPage();
  first.on('pageerror', (error) => console.error('page error:', error.message));
  return [browser, first];
}

// Waits until the page's body[data-state] is `state` (the page's own signal that a load or a
// job is over); a page that reports an error instead fails the test with its message.
export async function waitForPageState(page, state, timeout) {
  await page.waitForFunction(
    (wanted) => document.body.dataset.state === wanted || document.body.dataset.state === 'error',
    state, { timeout },
  );
  const actual = await page.evaluate(() => document.body.dataset.state);
  if (actual === 'error') assert.fail(`the page reports an error: ${await page.textContent('#error')}`);
}
