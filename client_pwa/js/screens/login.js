// Login: exchanges a username and password for a device token (needs a connection once).

import * as api from '../api.js';
import { t } from '../i18n.js';
import * as store from '../store.js';
import * as sync from '../sync.js';
import { h } from './ui.js';

export async function show(app, seq) {
  const session = app.session;
  const expired = session && session.expired;
  const username = h('input.input', { id: 'username', name: 'username', autocomplete: 'username', autocapitalize: 'none', value: expired ? session.user.username : '' });
  const password = h('input.input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password' });
  const err = h('p.err', { role: 'alert' });
  err.hidden = true;
  const button = h('button.btn.primary.block', { type: 'submit' }, t('login_button'));
  const form = h('form.login',
    h('img.logo', { src: '/app/icons/icon-192.png', alt: '' }),
    h('h2', t('login_title')),
    expired ? h('div.card.warn', t('login_again')) : null,
    h('label', { htmlFor: 'username' }, t('username')), username,
    h('label', { htmlFor: 'password' }, t('password')), password,
    button, err,
    h('p.muted', t('login_hint')),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    err.hidden = true;
    button.disabled = true;
    try {
      await logIn(app, username.value.trim(), password.value);
      app.go('/villages', { replace: true });
    } catch (e) {
      err.textContent = e instanceof api.ApiError
        ? e.network ? t('login_offline') : e.status === 401 ? t('login_failed') : e.message
        : e.message;
      err.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  app.mount(seq, form, { title: t('app_name') });
}

/**
 * Log in and keep the session. Logging in again as the same user keeps everything (the outbox
 * above all); a different user on this phone starts from empty, unless the previous user has
 * records not yet synced, which are never thrown away.
 */
async function logIn(app, username, password) {
  const previous = await store.getMeta('session');
  const data = await api.login(username, password, await store.deviceId());
  if (previous && previous.user.id !== data.user.id) {
    const unsynced = (await store.outbox()).filter((e) => sync.isUnsynced(e));
    if (unsynced.length) throw new Error(t('logout_blocked', { n: unsynced.length }));
    await store.clearUserData();
  }
  if (data.device_id) await store.setMeta('device_id', data.device_id);
  await store.setMeta('session', {
    token: data.token,
    token_id: data.token_id,
    user: data.user,
    villages: data.villages,
    at: new Date().toISOString(),
  });
  await app.refreshSession();
  navigator.storage?.persist?.().catch(() => {});
  await sync.syncNow('login');
}
