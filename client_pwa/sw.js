// The service worker: keeps the app shell so the app opens with no network.
//
// Shape after jakearchibald/wittr: cache names are a prefix plus a version, `activate` drops
// every cache of ours that is not current, `fetch` routes to named functions, and a new
// version waits until the page (which owns the "new version ready" prompt) sends skipWaiting.
//
// API responses are never cached: /api/ goes to the network only. The app keeps its data in
// IndexedDB, and a cached pull or push answer would be wrong the moment it was stored.

// Replaced by server/pwa.py with a digest of the shell files, so any change ships a new cache.
const VERSION = '__SHELL_VERSION__';
const PREFIX = 'villagecheck-shell-';
const SHELL_CACHE = `${PREFIX}${VERSION}`;
const SYNC_TAG = 'villagecheck-sync';

// Every file of the shell (tests/test_pwa_e2e.py checks this list against client_pwa/).
const SHELL = [
  '/',
  '/app/manifest.webmanifest',
  '/app/css/app.css',
  '/app/css/map.css',
  '/app/icons/icon-192.png',
  '/app/icons/icon-512.png',
  '/app/vendor/idb/idb.js',
  '/app/vendor/leaflet/leaflet-src.esm.js',
  '/app/vendor/leaflet/leaflet.css',
  '/app/vendor/leaflet/images/layers.png',
  '/app/vendor/leaflet/images/layers-2x.png',
  '/app/vendor/leaflet/images/marker-icon.png',
  '/app/vendor/leaflet/images/marker-icon-2x.png',
  '/app/vendor/leaflet/images/marker-shadow.png',
  '/app/js/api.js',
  '/app/js/app.js',
  '/app/js/caps.js',
  '/app/js/clock.js',
  '/app/js/db.js',
  '/app/js/expr.js',
  '/app/js/form_logic.js',
  '/app/js/gcj02.js',
  '/app/js/geo.js',
  '/app/js/i18n.js',
  '/app/js/install.js',
  '/app/js/map_core.js',
  '/app/js/photo_resize.js',
  '/app/js/render_form.js',
  '/app/js/store.js',
  '/app/js/sync.js',
  '/app/js/sync_rules.js',
  '/app/js/screens/drafts.js',
  '/app/js/screens/facility.js',
  '/app/js/screens/inspect.js',
  '/app/js/screens/login.js',
  '/app/js/screens/map.js',
  '/app/js/screens/outbox.js',
  '/app/js/screens/outbox_item.js',
  '/app/js/screens/register.js',
  '/app/js/screens/settings.js',
  '/app/js/screens/tasks.js',
  '/app/js/screens/ui.js',
  '/app/js/screens/village.js',
  '/app/js/screens/villages.js',
];

self.addEventListener('install', (event) => {
  event.waitUntil(precacheShell());
});

self.addEventListener('activate', (event) => {
  event.waitUntil(dropOldCaches().then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const handler = routeFor(event.request);
  if (handler) event.respondWith(handler(event.request));
  // No handler: the browser fetches from the network as if there were no worker.
});

self.addEventListener('message', (event) => {
  if (event.data && event.data.type === 'skipWaiting') self.skipWaiting();
  if (event.data && event.data.type === 'version' && event.ports[0]) event.ports[0].postMessage(VERSION);
});

self.addEventListener('sync', (event) => {
  if (event.tag === SYNC_TAG) event.waitUntil(askPageToSync());
});

/** Fetch every shell file afresh (not from the HTTP cache) into this version's cache. */
async function precacheShell() {
  const cache = await caches.open(SHELL_CACHE);
  await cache.addAll(SHELL.map((url) => new Request(url, { cache: 'reload' })));
}

/** Delete the caches of older versions. */
async function dropOldCaches() {
  const names = await caches.keys();
  await Promise.all(names.filter((n) => n.startsWith(PREFIX) && n !== SHELL_CACHE).map((n) => caches.delete(n)));
}

/** Which function answers a request; null leaves it to the network. */
function routeFor(request) {
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return null;
  if (url.pathname.startsWith('/api/')) return null; // network only, never cached
  if (url.pathname === '/app/config.json') return null; // the server's switches: network only
  if (request.method !== 'GET') return null;
  if (request.mode === 'navigate') return url.pathname === '/' || url.pathname === '/index.html' ? serveShellPage : null;
  if (url.pathname.startsWith('/app/')) return serveShellFile;
  return null;
}

/** The start page from the cache (it is the same for every route: routing is in the page). */
async function serveShellPage(request) {
  const cached = await caches.match('/', { cacheName: SHELL_CACHE });
  return cached || fetch(request);
}

/** A script, style or icon of the shell: the cached copy of this version, else the network. */
async function serveShellFile(request) {
  const cached = await caches.match(request, { cacheName: SHELL_CACHE, ignoreSearch: true });
  return cached || fetch(request);
}

/**
 * Background Sync: the sync engine lives in the page, so ask an open page to run it and wait
 * for its answer; a failure rejects, and the browser tries the sync event again later. With no
 * page open, the app syncs when it is next opened.
 */
async function askPageToSync() {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  if (!windows.length) return;
  const answer = await new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => resolve({ ok: false }), 120000);
    channel.port1.onmessage = (event) => {
      clearTimeout(timer);
      resolve(event.data || { ok: false });
    };
    windows[0].postMessage({ type: 'sync' }, [channel.port2]);
  });
  if (!answer.ok) throw new Error('sync did not complete');
}
