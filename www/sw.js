// Marquee's service worker: makes a reload work with no network after the first visit.
//
// The app shell (page, scripts, wasm, the bundle manifest) is precached on install and
// served network-first, so an online visit always gets the current build and an offline
// one gets the last copy. The bundle's large parts are not handled here: the page's worker
// keeps them in the Cache API under their sha256 and verifies them before use.

// Replaced at build time (scripts/stamp-build) by a hash of every file the site serves, so
// each deploy's service worker differs from the last: the browser installs it on the next
// visit, it precaches its own shell, takes over at once and deletes the older shells.
const BUILD = 'development';
const SHELL_CACHE = `marquee-shell-${BUILD}`;
const SHELL = [
  './',
  './index.html',
  './app.js',
  './ask-view.js',
  './client.js',
  './dom.js',
  './protocol.js',
  './recs-store.js',
  './recs-view.js',
  './tagline-view.js',
  './worker.js',
  './style.css',
  './marquee-web.js',
  './marquee-web_bg.wasm',
  './manifest.webmanifest',
  './icon.svg',
  './bundle/manifest.json',
];

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL_CACHE);
    // 'no-cache' revalidates with the server: the page has just downloaded these files, so
    // the answers are 304s, not a second copy of the wasm ('reload' would refetch it all).
    await cache.addAll(SHELL.map((path) => new Request(path, { cache: 'no-cache' })));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('marquee-shell-') && name !== SHELL_CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

// Bundle parts other than the manifest go straight to the network (the worker caches them).
function isBundlePart(url) {
  return url.pathname.includes('/bundle/') && !url.pathname.endsWith('/manifest.json');
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin || isBundlePart(url)) {
    return;
  }
  event.respondWith(networkFirst(request));
});

// The network's answer when there is one; offline, this build's precached copy. Answers
// are not written into the precache: it stays one build's complete, consistent shell, and
// the next build's service worker precaches its own.
async function networkFirst(request) {
  try {
    // Revalidated every time (a 304 when unchanged), so an HTTP cache's older copy of one
    // file (GitHub Pages allows ten minutes) never mixes with another build's files.
    return await fetch(request.url, { cache: 'no-cache', credentials: 'same-origin' });
  } catch (error) {
    const cache = await caches.open(SHELL_CACHE);
    const cached = await cache.match(request, { ignoreSearch: true });
    if (cached) return cached;
    throw error;
  }
}
