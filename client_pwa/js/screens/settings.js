// Settings: language, storage (used, persistent or not), what this browser can do (probed,
// issue 11), this device, the version, logout.

import * as api from '../api.js';
import * as caps from '../caps.js';
import { getLang, pick, setLang, t } from '../i18n.js';
import * as store from '../store.js';
import * as sync from '../sync.js';
import { storageLine } from './outbox.js';
import { FONT_SIZES, applyFontSize, h, toast } from './ui.js';

async function swVersion() {
  const reg = await navigator.serviceWorker?.getRegistration('/');
  const worker = reg && reg.active;
  if (!worker) return '—';
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => resolve('—'), 1000);
    channel.port1.onmessage = (event) => {
      clearTimeout(timer);
      resolve(event.data);
    };
    worker.postMessage({ type: 'version' }, [channel.port2]);
  });
}

/** The capability summary: each probed feature and what it means for working offline. */
export async function capabilityList() {
  const c = await caps.capabilities();
  const yes = (v) => t(v ? 'cap_yes' : 'cap_no');
  const sw = caps.serviceWorkerState();
  const swText = { active: 'cap_sw_active', installing: 'cap_sw_installing', off: 'cap_sw_off', failed: 'cap_sw_failed' }[sw] || 'cap_sw_unsupported';
  let persist = t('cap_no');
  if (c.persisted) persist = t('cap_persisted_yes');
  else if (c.persist) persist = t('cap_persisted_no');
  const rows = [
    ['service_worker', 'cap_service_worker', t(swText), sw === 'active' || sw === 'installing'],
    ['cache_storage', 'cap_cache_storage', yes(c.cacheStorage), c.cacheStorage],
    ['indexeddb', 'cap_indexeddb', yes(c.indexedDB), c.indexedDB],
    ['blob', 'cap_blob', t(c.blobInIndexedDB ? 'cap_blob_yes' : 'cap_blob_no'), true],
    ['persist', 'cap_persist', persist, Boolean(c.persisted)],
    ['estimate', 'cap_estimate', yes(c.estimate), c.estimate],
    ['background_sync', 'cap_background_sync', c.backgroundSync ? t('cap_yes') : t('cap_background_sync_no'), true],
    ['geolocation', 'cap_geolocation', yes(c.geolocation), c.geolocation],
    ['secure', 'cap_secure', yes(c.secure), c.secure],
  ];
  const view = caps.inAppView();
  return h('div.card.caps', { id: 'caps' },
    view ? h('div.review', { id: 'caps-inapp' }, t('cap_inapp', { app: pick(view) })) : null,
    h('dl.kv', rows.flatMap(([key, label, value, ok]) => [
      h('dt', t(label)),
      h(`dd${ok ? '' : '.cap-missing'}`, { dataset: { cap: key } }, value),
    ])));
}

export async function show(app, seq) {
  const session = app.session;
  const persisted = navigator.storage && navigator.storage.persisted ? await navigator.storage.persisted() : false;
  const langButtons = h('div.choices.horizontal', ['zh', 'en'].map((code) =>
    h(`button.choice${getLang() === code ? '.on' : ''}`, {
      type: 'button',
      onclick: async () => {
        setLang(code);
        await store.setMeta('lang', code);
        document.getElementById('lang').textContent = code === 'zh' ? 'EN' : '中文';
        app.rerender();
      },
    }, code === 'zh' ? '中文' : 'English')));
  const fontNow = await store.getMeta('font_size', 'normal');
  const fontButtons = h('div.choices.horizontal', { id: 'font-size' }, FONT_SIZES.map((size) =>
    h(`button.choice${fontNow === size ? '.on' : ''}`, {
      type: 'button',
      dataset: { size },
      'aria-pressed': String(fontNow === size),
      onclick: async () => {
        await store.setMeta('font_size', size);
        applyFontSize(size);
        app.rerender();
      },
    }, t(`font_${size === 'xlarge' ? 'xlarge' : size}`))));
  const version = h('dd', '…');
  const logout = h('button.btn.danger.block', {
    type: 'button',
    onclick: async () => {
      const unsynced = (await store.outbox()).filter((e) => sync.isUnsynced(e));
      if (unsynced.length) {
        toast(t('logout_blocked', { n: unsynced.length }), { error: true });
        return;
      }
      if (!confirm(t('logout_confirm'))) return;
      try {
        await api.logout();
      } catch {
        // Offline or already revoked: forget the token here anyway.
      }
      await store.clearUserData();
      await app.refreshSession();
      app.go('/login', { replace: true });
    },
  }, t('logout'));
  const el = h('div',
    h('h2', t('language')), langButtons,
    h('h2', t('font_size')), fontButtons,
    h('h2', t('storage_used')),
    h('div.card', h('div', await storageLine()), h('div.muted.small', persisted ? t('storage_persisted') : t('storage_not_persisted'))),
    h('h2', t('caps_title')),
    await capabilityList(),
    h('div.card', h('dl.kv',
      h('dt', t('user')), h('dd', `${session.user.display_name || session.user.username} (${session.user.role_name || session.user.role})`),
      h('dt', t('device')), h('dd', await store.deviceId()),
      h('dt', t('version')), version)),
    logout,
  );
  if (app.mount(seq, el, { title: t('settings'), tab: 'settings' })) {
    version.textContent = await swVersion();
  }
}
