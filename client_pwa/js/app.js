// The app: boot, the hash router, the top bar and tabs, service-worker registration with the
// "new version ready" prompt, and the sync triggers (open, back to the foreground, online, the
// 同步 button; Background Sync messages from the worker where there is one, never relied on).
// Screens live in screens/*.js and export show(app, ...params).
//
// Real phones (issue 11): the server's switches come from /app/config.json on every online
// load (caps.js); with the service worker switched off the page unregisters it and deletes its
// caches instead of registering it. The app works fully online without any worker.

import * as api from './api.js';
import * as caps from './caps.js';
import './install.js';
import { formatTime, getLang, setLang, t } from './i18n.js';
import * as store from './store.js';
import * as sync from './sync.js';
import { applyFontSize, h, icon, toast } from './screens/ui.js';
import * as drafts from './screens/drafts.js';
import * as facility from './screens/facility.js';
import * as inspect from './screens/inspect.js';
import * as login from './screens/login.js';
import * as outbox from './screens/outbox.js';
import * as outboxItem from './screens/outbox_item.js';
import * as register from './screens/register.js';
import * as settings from './screens/settings.js';
import * as tasks from './screens/tasks.js';
import * as village from './screens/village.js';
import * as villages from './screens/villages.js';

const ROUTES = [
  [/^\/login$/, login.show, { public: true }],
  [/^\/villages$/, villages.show],
  [/^\/village\/([^/]+)$/, village.show],
  [/^\/map\/([^/]+)$/, (...a) => import('./screens/map.js').then((m) => m.show(...a))], // Leaflet loads only here
  [/^\/facility\/([^/]+)$/, facility.show],
  [/^\/inspect\/([^/]+)$/, inspect.show],
  [/^\/new\/(facility|task)\/([^/]+)$/, inspect.start],
  [/^\/register\/([^/]+)$/, register.show],
  [/^\/drafts$/, drafts.show],
  [/^\/outbox$/, outbox.show],
  [/^\/outbox\/item\/([^/]+)$/, outboxItem.show],
  [/^\/tasks$/, tasks.show],
  [/^\/settings$/, settings.show],
];

const TABS = [
  ['villages', '/villages', 'home', 'tab_villages'],
  ['drafts', '/drafts', 'draft', 'tab_drafts'],
  ['outbox', '/outbox', 'sync', 'tab_outbox'],
  ['tasks', '/tasks', 'tasks', 'tab_tasks', (s) => s.user.role === 'secretary'],
  ['settings', '/settings', 'settings', 'tab_settings'],
];

const $ = (id) => document.getElementById(id);

/** What screens get: the session, navigation, and a way to put their content on screen. */
export const app = {
  session: null,
  seq: 0,
  leave: null,
  lastRoute: null,

  go(path, { replace = false } = {}) {
    if (replace) location.replace(`#${path}`);
    else location.hash = `#${path}`;
  },

  /** Show a screen's content, unless the user has already moved on to another screen. */
  mount(seq, el, { title, back = null, tab = null, actions = null } = {}) {
    if (seq !== app.seq) return false;
    $('title').textContent = title || t('app_name');
    document.title = title ? `${title} · ${t('app_name')}` : t('app_name');
    const backButton = $('back');
    backButton.hidden = !back;
    backButton.onclick = back ? () => (typeof back === 'function' ? back() : app.go(back)) : null;
    $('main').replaceChildren(...[inAppNotice(), el].filter(Boolean));
    document.querySelector('.actions')?.remove();
    const tabs = $('tabs');
    if (actions) {
      document.body.append(h('div.actions', actions));
      document.body.classList.add('with-actions');
      tabs.hidden = true;
    } else {
      document.body.classList.remove('with-actions');
      tabs.hidden = !app.session || app.session.expired;
      paintTabs(tab);
    }
    window.scrollTo(0, 0);
    return true;
  },

  /** Register what to do when leaving the current screen (e.g. flush a draft). */
  onLeave(fn) {
    app.leave = fn;
  },

  async refreshSession() {
    app.session = await store.getMeta('session');
    return app.session;
  },

  rerender() {
    route();
  },

  async updateCounts() {
    const session = app.session;
    if (!session) return;
    const entries = await store.outbox();
    const n = entries.filter((e) => e.owner === session.user.id && sync.isUnsynced(e)).length;
    const count = document.querySelector('.tabs a[data-tab=outbox] .count');
    if (count) {
      count.textContent = String(n);
      count.hidden = n === 0;
    }
    // Issue 12: the 被退回 items waiting for a fix, as a badge of their own.
    const fix = document.querySelector('.tabs a[data-tab=outbox] .fix-count');
    if (fix) {
      const k = await outbox.fixCount(entries.filter((e) => e.owner === session.user.id));
      fix.textContent = String(k);
      fix.hidden = k === 0;
      fix.setAttribute('aria-label', t('loop_fix_badge', { n: k }));
    }
  },
};

function paintTabs(active) {
  const tabs = $('tabs');
  const session = app.session;
  if (!session) return;
  tabs.replaceChildren(
    ...TABS.filter(([, , , , when]) => !when || when(session)).map(([key, path, ico, label]) =>
      h(`a${key === active ? '.active' : ''}`, { href: `#${path}`, dataset: { tab: key } },
        icon(ico), h('span', t(label)), key === 'outbox' ? h('span.count', { hidden: true }) : null,
        key === 'outbox' ? h('span.fix-count', { hidden: true }) : null),
    ),
  );
  app.updateCounts();
}

async function route() {
  const path = location.hash.replace(/^#/, '') || '/villages';
  app.seq += 1;
  const seq = app.seq;
  if (app.leave) {
    const leave = app.leave;
    app.leave = null;
    try {
      await leave();
    } catch (err) {
      console.error(err);
    }
  }
  await app.refreshSession();
  for (const [pattern, show, opts = {}] of ROUTES) {
    const m = pattern.exec(path);
    if (!m) continue;
    if (!opts.public && (!app.session || app.session.expired)) {
      app.go('/login', { replace: true });
      return;
    }
    app.lastRoute = path;
    try {
      await show(app, seq, ...m.slice(1).map(decodeURIComponent));
    } catch (err) {
      console.error(err);
      app.mount(seq, h('p.empty', t('error_generic', { msg: err.message })), { title: t('app_name'), back: '/villages' });
    }
    return;
  }
  app.go('/villages', { replace: true });
}

// ---- network indicator, sync triggers ---------------------------------------------------------

function paintNet() {
  const el = $('net');
  el.textContent = navigator.onLine ? '' : t('offline');
  el.hidden = navigator.onLine;
  el.classList.toggle('off', !navigator.onLine);
}

function startSyncTriggers() {
  window.addEventListener('online', () => {
    paintNet();
    sync.syncNow('online');
  });
  window.addEventListener('offline', paintNet);
  sync.events.addEventListener('auth', () => {
    toast(t('login_again'), { error: true, ms: 5000 });
    app.refreshSession().then(() => app.go('/login'));
  });
  sync.events.addEventListener('done', () => {
    app.updateCounts();
    // Redraw list screens so new states and reviews show; never redraw a form being filled in.
    if (!/^\/(inspect|register|new|login)\b/.test(app.lastRoute || '')) route();
  });
  sync.events.addEventListener('error', () => app.updateCounts());
  // Reviews and new tasks arrive by pull: look again now and then while the app is in use.
  const stale = async () => {
    const last = await store.getMeta('last_sync');
    return !last || !last.at || Date.now() - Date.parse(last.at) > RESYNC_MS;
  };
  // Back in the foreground: send what waits at once, else look for news when it is stale.
  const waiting = async () => (await store.outbox()).some((e) => app.session && e.owner === app.session.user.id && sync.isUnsynced(e));
  document.addEventListener('visibilitychange', async () => {
    if (document.visibilityState !== 'visible' || !navigator.onLine || !app.session || app.session.expired) return;
    if ((await waiting()) || (await stale())) sync.syncNow('visible');
  });
  setInterval(async () => {
    if (document.visibilityState === 'visible' && navigator.onLine && app.session && (await stale())) sync.syncNow('interval');
  }, 60000);
}

const RESYNC_MS = 10 * 60 * 1000;

// ---- service worker and the "new version ready" prompt -----------------------------------------

let updateRequested = false;

function showUpdatePrompt(worker) {
  const banner = $('banner');
  banner.replaceChildren(
    h('span', t('update_ready')),
    h('button.btn', {
      type: 'button',
      onclick: () => {
        updateRequested = true;
        worker.postMessage({ type: 'skipWaiting' });
      },
    }, t('update_now')),
  );
  banner.hidden = false;
}

async function registerServiceWorker() {
  if (!('serviceWorker' in navigator) || typeof navigator.serviceWorker.register !== 'function') {
    caps.setServiceWorkerState('unsupported');
    return;
  }
  if (!caps.serverConfig().service_worker) {
    // Switched off by the server: remove it (and its caches) rather than register it.
    await caps.removeServiceWorker();
    return;
  }
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    // Reload only when the user asked for the new version (not on the very first install).
    if (updateRequested) location.reload();
  });
  navigator.serviceWorker.addEventListener('message', async (event) => {
    if (event.data && event.data.type === 'sync') {
      const result = await sync.syncNow('background');
      event.ports[0]?.postMessage({ ok: !!result.ok });
    }
  });
  try {
    const reg = await navigator.serviceWorker.register('/app/sw.js', { scope: '/' });
    if (!reg) {
      // Some browsers (and web views) answer without registering anything.
      caps.setServiceWorkerState('failed');
      return;
    }
    caps.setServiceWorkerState(reg.active ? 'active' : 'installing');
    if (!reg.active) navigator.serviceWorker.ready.then(() => caps.setServiceWorkerState('active'));
    if (reg.waiting && navigator.serviceWorker.controller) showUpdatePrompt(reg.waiting);
    reg.addEventListener('updatefound', () => {
      const worker = reg.installing;
      worker?.addEventListener('statechange', () => {
        if (worker.state === 'installed' && navigator.serviceWorker.controller) showUpdatePrompt(worker);
      });
    });
  } catch (err) {
    caps.setServiceWorkerState('failed');
    console.warn('service worker registration failed', err);
  }
}

// ---- boot ---------------------------------------------------------------------------------------

export async function requestPersistence() {
  try {
    if (navigator.storage && navigator.storage.persist && !(await navigator.storage.persisted())) {
      await navigator.storage.persist();
    }
  } catch {
    // Not supported: the settings screen says so.
  }
}

async function boot() {
  setLang(await store.getMeta('lang', 'zh'));
  applyFontSize(await store.getMeta('font_size', 'normal'));
  $('lang').textContent = getLang() === 'zh' ? 'EN' : '中文';
  $('lang').addEventListener('click', async () => {
    setLang(getLang() === 'zh' ? 'en' : 'zh');
    await store.setMeta('lang', getLang());
    $('lang').textContent = getLang() === 'zh' ? 'EN' : '中文';
    $('back').setAttribute('aria-label', t('back'));
    paintNet();
    if (app.leave) {
      // Keep a form's answers: flush, then redraw in the new language.
      const leave = app.leave;
      app.leave = null;
      await leave();
    }
    route();
  });
  api.setTokenSource(() => (app.session && !app.session.expired ? app.session.token : null));
  paintNet();
  startSyncTriggers();
  window.addEventListener('hashchange', route);
  window.addEventListener('pagehide', () => app.leave && app.leave());
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden' && app.leave) app.leave(true);
  });
  await app.refreshSession();
  const configured = caps.loadConfig();
  await route();
  await configured;
  registerServiceWorker();
  if (app.session && !app.session.expired) {
    requestPersistence();
    sync.syncNow('open');
  }
  window.villagecheck = { app, sync, store, caps, ready: true, lastSyncText };
  document.documentElement.dataset.ready = '1';
}

// ---- in-app web views ---------------------------------------------------------------------------

/**
 * Inside WeChat, QQ and other apps' web views: say, on top of every screen until dismissed for
 * this visit, to open the app in a real browser before working offline, and how.
 */
function inAppNotice() {
  const view = caps.inAppView();
  if (!view || dismissed()) return null;
  const name = getLang() === 'zh' ? view.zh : view.en;
  const box = h('div.card.warn.inapp', { id: 'inapp', role: 'alert' },
    h('strong', t('inapp_title')),
    h('p', t('inapp_body', { app: name })),
    h('p.howto', t('inapp_howto')),
    h('button.btn', {
      type: 'button',
      onclick: () => {
        try {
          sessionStorage.setItem('inapp_dismissed', '1');
        } catch {
          // No session storage (some web views): the notice just comes back on the next screen.
        }
        box.remove();
      },
    }, t('inapp_dismiss')));
  return box;
}

function dismissed() {
  try {
    return Boolean(sessionStorage.getItem('inapp_dismissed'));
  } catch {
    return false;
  }
}

/** "上次同步 11-20 10:35" for the screens. */
export async function lastSyncText() {
  const last = await store.getMeta('last_sync');
  return last && last.at ? t('last_sync', { t: formatTime(last.at) }) : t('never_synced');
}

boot();
