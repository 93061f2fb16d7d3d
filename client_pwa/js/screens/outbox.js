// The outbox: everything submitted on this phone with its state (待同步 / 已同步 / 被退回 with
// the supervisor's comment …), the 同步 button, the progress of a run and the storage used.

import { formatBytes, formatTime, pick, t } from '../i18n.js';
import * as store from '../store.js';
import * as sync from '../sync.js';
import { h, icon, stateBadge } from './ui.js';

function bar(label, part) {
  const pct = part.total ? Math.round((100 * part.done) / part.total) : 0;
  return h('div.small', label, h('div.progress', h('div', { style: `width:${pct}%` })));
}

/** "已用 3.2 MB / 可用 1.2 GB" from navigator.storage.estimate(). */
export async function storageLine() {
  if (!navigator.storage || !navigator.storage.estimate) return '';
  const { usage, quota } = await navigator.storage.estimate();
  return t('storage_value', { used: formatBytes(usage), quota: formatBytes(quota) });
}

function errorLines(errors) {
  const out = [];
  for (const [field, list] of Object.entries(errors || {})) {
    for (const e of list) out.push(`${field}: ${pick(e.message)}`);
  }
  return out;
}

export async function show(app, seq) {
  const session = app.session;
  const entries = (await store.outbox()).filter((e) => e.owner === session.user.id).reverse();
  const status = h('div.muted.small', { id: 'sync-status' });
  const progressBox = h('div', { id: 'sync-progress' });
  const storage = h('div.muted.small', { id: 'storage' });

  async function paintStatus() {
    const p = sync.progress();
    const last = await store.getMeta('last_sync');
    if (p.running) {
      status.textContent = t('syncing');
      progressBox.replaceChildren(
        bar(t('progress_records', p.records), p.records),
        p.photos.total ? bar(`${t('progress_photos', p.photos)} · ${t('progress_bytes', { done: formatBytes(p.bytes.done), total: formatBytes(p.bytes.total) })}`, p.bytes) : '',
      );
    } else {
      progressBox.replaceChildren();
      if (!navigator.onLine) status.textContent = t('sync_offline');
      else if (last && last.ok === false && last.message) status.textContent = t('sync_failed', { msg: last.message });
      else status.textContent = last && last.at ? t('last_sync', { t: formatTime(last.at) }) : t('never_synced');
    }
    storage.textContent = t('storage_line', { v: await storageLine() });
  }

  const syncButton = h('button.btn.primary', { type: 'button', id: 'sync-now', onclick: () => sync.syncNow('manual') }, icon('sync'), t('sync_now'));
  const list = entries.length
    ? h('ul.list', { id: 'outbox' }, entries.map((e) => entryRow(app, e)))
    : h('p.empty', t('outbox_empty'));

  const el = h('div',
    h('div.card', h('div', { style: 'display:flex;gap:10px;align-items:center' }, h('div', { style: 'flex:1' }, status, progressBox), syncButton), storage),
    list,
  );
  if (!app.mount(seq, el, { title: t('outbox'), tab: 'outbox' })) return;

  // Entries change state during a run (待同步 → 等待照片 → 已同步): redraw them as it goes.
  let lastPhase = null;
  async function paintEntries() {
    const fresh = (await store.outbox()).filter((e) => e.owner === session.user.id).reverse();
    for (const e of fresh) {
      const row = list.querySelector(`li[data-id="${CSS.escape(e.id)}"]`);
      if (row && row.dataset.state !== e.state) row.replaceWith(entryRow(app, e));
    }
  }
  const onProgress = (event) => {
    paintStatus();
    if (event.detail.phase !== lastPhase || !event.detail.running) paintEntries();
    lastPhase = event.detail.phase;
  };
  sync.events.addEventListener('progress', onProgress);
  app.onLeave(() => sync.events.removeEventListener('progress', onProgress));
  paintStatus();
}

function entryRow(app, e) {
  const title = e.type === 'facility' ? t('facility_item', { name: e.name }) : `${pick(e.title)} · ${e.name || ''}`;
  const when = e.type === 'facility' ? e.createdAt : e.item.observed_at;
  const details = [];
  if (e.review && e.review.reason) {
    details.push(h('div.review', t('review_reason', { r: e.review.reason }),
      e.review.reviewer ? h('div.small', t('reviewer', { who: e.review.reviewer, t: formatTime(e.review.at) })) : null));
  }
  if (e.state === 'invalid') {
    details.push(h('div.review', errorLines(e.errors).map((line) => h('div', line))));
    if (e.type === 'submission') {
      details.push(h('button.btn.block', {
        type: 'button',
        style: 'margin-top:8px',
        onclick: async () => {
          await store.outboxToDraft(e);
          app.go(`/inspect/${e.id}`);
        },
      }, t('edit_and_resend')));
    }
  }
  if ((e.state === 'rejected' || e.state === 'reinspection_requested') && e.type === 'submission') {
    details.push(h('a.btn.block', { href: `#/new/${e.recordType}/${encodeURIComponent(e.record)}`, style: 'margin-top:8px' }, t('inspect_again')));
  }
  if (e.state === 'refused') details.push(h('div.review', t('refused_explain')));
  for (const err of Object.values(e.photoErrors || {})) details.push(h('div.review', icon('camera'), ` ${err.message}`));
  if (e.missing && e.missing.length && e.state !== 'queued') details.push(h('div.small.muted', icon('camera'), ` ${t('state_photos')} ${e.missing.length}`));
  return h('li', { dataset: { id: e.id, state: e.state } }, h('div.row',
    h('div.main', h('div.name', title), h('div.sub', formatTime(when)), details),
    h('div.side', stateBadge(e))));
}
