// Real phones (issue 11): what this browser can do, probed in code and never guessed from its
// name; the in-app web views (WeChat, QQ, …) whose users should open the app in a real browser
// first; and the server's switches for the app (/app/config.json, server/pwa.py).
//
// The one place a user agent is read is inAppView(): an in-app web view announces itself only
// there, and what it lacks (a reliable service worker, persistent storage; "清理缓存" wipes web
// data) cannot be probed before it bites.

import { DEFAULT_MAX_EDGE } from './photo_resize.js';
import * as store from './store.js';

const SHELL_PREFIX = 'villagecheck-shell-';
const CONFIG_TIMEOUT_MS = 5000;
export const DEFAULT_CONFIG = Object.freeze({ service_worker: true, gps_good_metres: 50, max_photo_edge: DEFAULT_MAX_EDGE });

// ---- in-app web views --------------------------------------------------------------------------

// Order matters: WeCom's UA also says MicroMessenger. "QQ/" is the QQ app's web view; the QQ
// browser (MQQBrowser/, QQBrowser/) is a real browser and says no "QQ/" of its own.
const IN_APP = [
  [/\bwxwork\//i, { zh: '企业微信', en: 'WeCom' }],
  [/MicroMessenger\//i, { zh: '微信', en: 'WeChat' }],
  [/(^|[^A-Za-z])QQ\/\d/, { zh: 'QQ', en: 'QQ' }],
  [/Weibo|__weibo__/i, { zh: '微博', en: 'Weibo' }],
  [/DingTalk/i, { zh: '钉钉', en: 'DingTalk' }],
  [/AlipayClient/i, { zh: '支付宝', en: 'Alipay' }],
  [/NewsArticle\/|Toutiao/i, { zh: '今日头条', en: 'Toutiao' }],
  [/\baweme|BytedanceWebview/i, { zh: '抖音', en: 'Douyin' }],
  [/baiduboxapp/i, { zh: '百度', en: 'Baidu app' }],
  [/\bLark\/|Feishu/i, { zh: '飞书', en: 'Feishu' }],
  [/\bKwai|ksNebula/i, { zh: '快手', en: 'Kuaishou' }],
  [/XiaoHongShu/i, { zh: '小红书', en: 'Xiaohongshu' }],
];
const GENERIC_WEBVIEW = /; wv\)/; // Android System WebView inside some other app

/** The in-app web view this user agent belongs to ({zh, en} name), or null for a browser. */
export function inAppView(ua = navigator.userAgent) {
  for (const [pattern, name] of IN_APP) if (pattern.test(ua)) return name;
  if (GENERIC_WEBVIEW.test(ua)) return { zh: '应用内浏览器', en: 'an in-app browser' };
  return null;
}

// ---- the server's switches ---------------------------------------------------------------------

let config = null;

/**
 * The server's settings for the app: fetched afresh when online (never from any cache), kept in
 * IndexedDB for offline loads; {…, fresh: true} when this load got them from the server.
 */
export async function loadConfig() {
  const kept = (await store.getMeta('pwa_config')) || {};
  config = { ...DEFAULT_CONFIG, ...kept, fresh: false };
  if (!navigator.onLine) return config;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), CONFIG_TIMEOUT_MS);
  try {
    const response = await fetch('/app/config.json', { cache: 'no-store', signal: controller.signal });
    if (response.ok) {
      const body = await response.json();
      const fresh = {
        service_worker: body.service_worker !== false,
        gps_good_metres: Number(body.gps_good_metres) > 0 ? Number(body.gps_good_metres) : DEFAULT_CONFIG.gps_good_metres,
        max_photo_edge: Number.isInteger(body.max_photo_edge) && body.max_photo_edge >= 0 ? body.max_photo_edge : DEFAULT_CONFIG.max_photo_edge,
      };
      await store.setMeta('pwa_config', fresh);
      config = { ...fresh, fresh: true };
    }
  } catch {
    // Offline or the server is away: the settings kept from the last online load hold.
  } finally {
    clearTimeout(timer);
  }
  return config;
}

/** The settings as last loaded (defaults before loadConfig has answered). */
export function serverConfig() {
  return config || { ...DEFAULT_CONFIG, fresh: false };
}

// ---- the service worker ------------------------------------------------------------------------

/** 'unsupported' | 'off' (the server switched it off) | 'failed' | 'active' | 'installing'. */
let workerState = 'unsupported';

export function serviceWorkerState() {
  return workerState;
}

export function setServiceWorkerState(state) {
  workerState = state;
}

/** The server switched the worker off: unregister every registration and delete its caches. */
export async function removeServiceWorker() {
  workerState = 'off';
  try {
    if ('serviceWorker' in navigator && navigator.serviceWorker.getRegistrations) {
      const regs = await navigator.serviceWorker.getRegistrations();
      await Promise.all(regs.map((reg) => reg.unregister()));
    }
  } catch (err) {
    console.warn('could not unregister the service worker', err);
  }
  try {
    if ('caches' in self) {
      const names = await caches.keys();
      await Promise.all(names.filter((n) => n.startsWith(SHELL_PREFIX)).map((n) => caches.delete(n)));
    }
  } catch (err) {
    console.warn('could not clear the caches', err);
  }
}

// ---- capabilities ------------------------------------------------------------------------------

async function probeCaches() {
  try {
    if (!('caches' in self)) return false;
    const name = 'villagecheck-probe';
    await caches.open(name);
    await caches.delete(name);
    return true;
  } catch {
    return false;
  }
}

async function probeIndexedDB() {
  try {
    if (!self.indexedDB) return false;
    await store.getMeta('device_id');
    return true;
  } catch {
    return false;
  }
}

/**
 * What this browser can do, each probed: {serviceWorker, cacheStorage, indexedDB, blobInIndexedDB,
 * persist, persisted, estimate, backgroundSync, geolocation, secure}. Values are true / false;
 * `persisted` is null when it cannot be asked.
 */
export async function capabilities() {
  const storage = navigator.storage || {};
  const idb = await probeIndexedDB();
  let persisted = null;
  try {
    if (storage.persisted) persisted = await storage.persisted();
  } catch {
    persisted = null;
  }
  return {
    secure: Boolean(self.isSecureContext),
    serviceWorker: 'serviceWorker' in navigator && typeof navigator.serviceWorker.register === 'function',
    cacheStorage: await probeCaches(),
    indexedDB: idb,
    blobInIndexedDB: idb ? await store.blobsStore() : false,
    persist: typeof storage.persist === 'function',
    persisted,
    estimate: typeof storage.estimate === 'function',
    backgroundSync: 'SyncManager' in self,
    geolocation: 'geolocation' in navigator,
  };
}

/** navigator.storage.estimate(), or null where it is missing or fails. */
export async function storageEstimate() {
  try {
    if (!navigator.storage || !navigator.storage.estimate) return null;
    const { usage = 0, quota = 0 } = await navigator.storage.estimate();
    return { usage, quota, free: Math.max(0, quota - usage) };
  } catch {
    return null;
  }
}

/** Below this much free space (quota − usage) the outbox warns. */
export const LOW_STORAGE_BYTES = 200 * 1024 * 1024;
