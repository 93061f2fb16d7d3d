// Settings: language, storage (used, persistent or not), this device, the version, logout.

import * as api from '../api.js';
import { getLang, setLang, t } from '../i18n.js';
import * as store from '../store.js';
import * as sync from '../sync.js';
import { storageLine } from './outbox.js';
import { h, toast } from './ui.js';

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
    h('h2', t('storage_used')),
    h('div.card', h('div', await storageLine()), h('div.muted.small', persisted ? t('storage_persisted') : t('storage_not_persisted'))),
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
