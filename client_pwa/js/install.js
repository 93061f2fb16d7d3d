// 添加到主屏幕 (issue 12): the browser's install prompt where it offers one (beforeinstallprompt,
// Chrome and most Android browsers), otherwise a line on how to do it from the browser's menu.
// Not shown when the app already runs from the home screen, and never again once dismissed.
// The event is caught as soon as this module loads (app.js imports it first thing).

import { t } from './i18n.js';
import { h } from './screens/ui.js';

const DISMISSED = 'install_dismissed';
let deferred = null;
const listeners = new Set();

window.addEventListener('beforeinstallprompt', (event) => {
  event.preventDefault(); // ours to show, at a calm moment (the villages screen)
  deferred = event;
  for (const fn of listeners) fn();
});
window.addEventListener('appinstalled', () => {
  deferred = null;
  remember();
  for (const fn of listeners) fn();
});

function standalone() {
  return (window.matchMedia && window.matchMedia('(display-mode: standalone)').matches) || navigator.standalone === true;
}

function dismissed() {
  try {
    return localStorage.getItem(DISMISSED) === '1';
  } catch {
    return false;
  }
}

function remember() {
  try {
    localStorage.setItem(DISMISSED, '1');
  } catch {
    // No storage (some web views): the card comes back next time.
  }
}

/** The install card, or null (installed, running from the home screen, or dismissed). */
export function installCard() {
  if (standalone() || dismissed()) return null;
  const box = h('div.card.install', { id: 'install' });
  const paint = () => {
    if (dismissed() || standalone()) {
      box.remove();
      listeners.delete(paint);
      return;
    }
    const close = h('button.btn.install-dismiss', {
      type: 'button',
      onclick: () => {
        remember();
        box.remove();
        listeners.delete(paint);
      },
    }, t('install_dismiss'));
    const add = deferred
      ? h('button.btn.primary.install-add', {
        type: 'button',
        onclick: async () => {
          const event = deferred;
          deferred = null;
          event.prompt();
          const choice = await event.userChoice.catch(() => null);
          if (choice && choice.outcome === 'accepted') remember();
          paint();
        },
      }, t('install_button'))
      : null;
    box.replaceChildren(
      h('strong', t('install_title')),
      h('p.small', t('install_body')),
      deferred ? null : h('p.small.howto', { id: 'install-howto' }, t('install_howto')),
      h('div.install-actions', add, close),
    );
  };
  listeners.add(paint);
  paint();
  return box;
}
