// The outbox: everything submitted on this phone with its state (待同步 / 已同步 / 被退回 with
// the supervisor's comment …), the 同步 button, the progress of a run and the storage used.
// Real phones (issue 11): how many records wait and since when, the photos still to upload
// with an estimate of the time they take at village speeds, and warnings when the browser may
// clear the phone's data (little space left, storage not persistent).

import * as caps from '../caps.js';
import { formatBytes, formatTime, pick, t } from '../i18n.js';
import * as store from '../store.js';
import * as sync from '../sync.js';
import { STATE_LABELS } from '../sync_rules.js';
import { h, icon, stateBadge, toast } from './ui.js';

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

/** Assumed upload speed in a village (2.6 MB took 44 s at 60 KB/s in our own test). */
export const VILLAGE_KBPS = 60;

/** "刚刚" / "5 分钟前" / "3 小时前" / "2 天前" for an ISO time. */
export function ageText(iso, now = Date.now()) {
  const ms = now - Date.parse(iso);
  if (!Number.isFinite(ms) || ms < 60000) return t('age_now');
  const minutes = Math.floor(ms / 60000);
  if (minutes < 60) return t('age_minutes', { n: minutes });
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return t('age_hours', { n: hours });
  return t('age_days', { n: Math.floor(hours / 24) });
}

function durationText(seconds) {
  if (seconds < 90) return t('dur_seconds', { n: Math.max(1, Math.ceil(seconds)) });
  return t('dur_minutes', { n: Math.ceil(seconds / 60) });
}

/**
 * The photos unsynced entries still need to send, from the bytes kept on the phone:
 * {count, bytes, seconds} (seconds at VILLAGE_KBPS).
 */
export async function pendingPhotos(entries) {
  const shas = new Set();
  for (const e of entries) {
    if (!sync.isUnsynced(e)) continue;
    const unanswered = e.state === 'queued' || e.state === 'invalid';
    for (const sha of (unanswered ? e.photos : e.missing) || []) shas.add(sha);
  }
  let count = 0;
  let bytes = 0;
  for (const sha of shas) {
    const info = await store.photoInfo(sha);
    if (!info || info.uploaded) continue;
    count += 1;
    bytes += info.size || 0;
  }
  return { count, bytes, seconds: bytes / (VILLAGE_KBPS * 1024) };
}

/** The summary on top of the outbox: waiting records and their age, photos, storage warnings. */
async function paintSummary(box, entries) {
  const unsynced = entries.filter((e) => sync.isUnsynced(e));
  const lines = [];
  if (unsynced.length) {
    const oldest = unsynced.map((e) => e.createdAt).filter(Boolean).sort()[0];
    lines.push(h('div', { id: 'outbox-summary' }, t('outbox_unsynced', { n: unsynced.length, age: ageText(oldest) })));
  } else {
    lines.push(h('div.muted', { id: 'outbox-summary' }, t('outbox_all_synced')));
  }
  const photos = await pendingPhotos(entries);
  if (photos.count) {
    lines.push(h('div.small', { id: 'outbox-photos', dataset: { bytes: photos.bytes, seconds: Math.ceil(photos.seconds) } },
      t('outbox_photos', { n: photos.count, size: formatBytes(photos.bytes), speed: VILLAGE_KBPS, time: durationText(photos.seconds) })));
  }
  const estimate = await caps.storageEstimate();
  if (estimate && estimate.quota && estimate.free < caps.LOW_STORAGE_BYTES) {
    lines.push(h('div.review.storage-warn', { id: 'storage-low' }, t('storage_low', { free: formatBytes(estimate.free) })));
  }
  let persisted = null;
  try {
    if (navigator.storage && navigator.storage.persisted) persisted = await navigator.storage.persisted();
  } catch {
    persisted = null;
  }
  if (persisted !== true) {
    lines.push(h('div.review.storage-warn', { id: 'storage-not-persistent' }, t('storage_not_persistent_warn')));
  }
  box.replaceChildren(...lines);
}

/** The server's errors as lines: the question's label before each (never the field's key). */
function errorLines(errors, definition) {
  const out = [];
  const labels = new Map(((definition && definition.fields) || []).map((f) => [f.name, pick(f.label)]));
  for (const [field, list] of Object.entries(errors || {})) {
    for (const e of list) out.push(labels.has(field) ? `${labels.get(field)}：${pick(e.message)}` : pick(e.message));
  }
  return out;
}

export async function show(app, seq) {
  const session = app.session;
  const all = (await store.outbox()).filter((e) => e.owner === session.user.id).reverse();
  const loop = await loopState(all);
  const { main: entries, archived } = arrange(all, loop);
  const status = h('div.muted.small', { id: 'sync-status' });
  const progressBox = h('div', { id: 'sync-progress' });
  const storage = h('div.muted.small', { id: 'storage' });
  const summary = h('div.card.outbox-summary', { id: 'outbox-head' });

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
      else if (last && last.ok === false && last.code === 'processing') status.textContent = t('sync_processing');
      else if (last && last.ok === false && last.message) status.textContent = t('sync_failed', { msg: last.message });
      else status.textContent = last && last.at ? t('last_sync', { t: formatTime(last.at) }) : t('never_synced');
    }
    storage.textContent = t('storage_line', { v: await storageLine() });
  }

  const syncButton = h('button.btn.primary', { type: 'button', id: 'sync-now', onclick: () => sync.syncNow('manual') }, icon('sync'), t('sync_now'));
  const list = entries.length
    ? h('ul.list', { id: 'outbox' }, entries.map((e) => entryRow(app, e, loop)))
    : h('p.empty', t('outbox_empty'));
  // Synced items older than the archive age leave the main list (issue 12).
  const archive = archived.length
    ? h('details.archive', { id: 'outbox-archive' },
      h('summary', t('loop_archived', { n: archived.length, d: archiveDays() })),
      h('ul.list', archived.map((e) => entryRow(app, e, loop))))
    : null;

  const el = h('div',
    h('div.card', h('div', { style: 'display:flex;gap:10px;align-items:center' }, h('div', { style: 'flex:1' }, status, progressBox), syncButton), storage),
    summary,
    list,
    archive,
  );
  await paintSummary(summary, entries);
  if (!app.mount(seq, el, { title: t('outbox'), tab: 'outbox' })) return;

  // Entries change state during a run (待同步 → 等待照片 → 已同步): redraw them as it goes.
  let lastPhase = null;
  async function paintEntries() {
    const fresh = (await store.outbox()).filter((e) => e.owner === session.user.id).reverse();
    for (const e of fresh) {
      const row = list.querySelector(`li[data-id="${CSS.escape(e.id)}"]`);
      const processing = String((e.processing || []).length);
      if (row && (row.dataset.state !== e.state || row.dataset.processing !== processing)) row.replaceWith(entryRow(app, e, loop));
    }
    await paintSummary(summary, fresh);
  }
  const onProgress = (event) => {
    paintStatus();
    // Also on every upload step: a photo the server is processing shows 处理中 at once.
    if (event.detail.phase !== lastPhase || !event.detail.running || event.detail.phase === 'upload') paintEntries();
    lastPhase = event.detail.phase;
  };
  sync.events.addEventListener('progress', onProgress);
  app.onLeave(() => sync.events.removeEventListener('progress', onProgress));
  paintStatus();
}

function entryRow(app, e, loop) {
  const title = e.type === 'facility' ? t('facility_item', { name: e.name }) : `${pick(e.title)} · ${e.name || ''}`;
  const when = e.type === 'facility' ? e.createdAt : e.item.observed_at;
  const details = [];
  if (e.review && e.review.reason) {
    details.push(h('div.review', t('review_reason', { r: e.review.reason }),
      e.review.reviewer ? h('div.small', t('reviewer', { who: e.review.reviewer, t: formatTime(e.review.at) })) : null));
  }
  if (e.state === 'invalid') {
    const definition = e.item && loop.forms ? loop.forms[e.item.form] : null;
    details.push(h('div.review', errorLines(e.errors, definition).map((line) => h('div', line))));
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
  details.push(...loopDetails(app, e, loop));
  if (e.state === 'refused') details.push(h('div.review', t('refused_explain')));
  for (const err of Object.values(e.photoErrors || {})) details.push(h('div.review', icon('camera'), ` ${err.message}`));
  if (e.missing && e.missing.length && e.state !== 'queued') details.push(h('div.small.muted', icon('camera'), ` ${t('state_photos')} ${e.missing.length}`));
  // A photo the server holds and is still processing (503 `processing`): a label, not the
  // server's message, which is no error.
  const processing = e.state === 'waiting_for_photos' && (e.processing || []).length > 0;
  if (processing) details.push(h('div.small.muted', t('photo_processing_note')));
  return h('li', { dataset: { id: e.id, state: e.state, processing: String((e.processing || []).length) } }, h('div.row',
    h('div.main', h('a.open', { href: `#/outbox/item/${encodeURIComponent(e.id)}` }, h('div.name', title), h('div.sub', formatTime(when))), details),
    h('div.side', stateBadge(e), processing ? h('span.badge.info.processing', t('photo_processing')) : null)));
}

// ---- fix and resend, conflicts, archive (issue 12, h/loop) --------------------------------------

/** Synced items older than this many days leave the main list (config.json may say otherwise). */
export const ARCHIVE_DAYS = 7;

function archiveDays() {
  const days = caps.serverConfig().outbox_archive_days;
  return Number.isFinite(days) && days > 0 ? days : ARCHIVE_DAYS;
}

const SENT_BACK = new Set(['rejected', 'reinspection_requested']);
const ANSWERED = new Set(['waiting_for_photos', 'synced', 'approved']);

/** What fix and resend needs to know of every entry: its replacement, and conflicts on its record. */
export async function loopState(entries) {
  const replacement = new Map();
  for (const e of entries) if (e.item && e.item.replaces) replacement.set(e.item.replaces, { kind: 'outbox', row: e });
  for (const d of await store.drafts()) if (d.replaces && !replacement.has(d.replaces)) replacement.set(d.replaces, { kind: 'draft', row: d });
  // The server's word on each of this phone's submissions (the pull's `outcomes`, the push result).
  const conflicted = new Set(entries.filter((e) => e.type === 'submission' && e.conflict === true).map((e) => e.id));
  return { replacement, conflicted, forms: await store.latestForms() };
}

/** A 被退回 / 要求复查 submission still waiting for its fix (no replacement the server took). */
export function needsFix(e, loop) {
  if (e.type !== 'submission' || !SENT_BACK.has(e.state)) return false;
  const r = loop.replacement.get(e.id);
  return !r || r.kind === 'draft' || !ANSWERED.has(r.row.state);
}

/** Sent-back items pinned on top, then newest first; old synced ones apart (archived). */
export function arrange(entries, loop, now = Date.now()) {
  const limit = archiveDays() * 24 * 3600 * 1000;
  const pinned = [];
  const rest = [];
  const archived = [];
  for (const e of entries) {
    const at = Date.parse(e.answeredAt || e.syncedAt || e.createdAt || '');
    if (needsFix(e, loop)) pinned.push(e);
    else if ((e.state === 'synced' || e.state === 'approved') && Number.isFinite(at) && now - at > limit) archived.push(e);
    else rest.push(e);
  }
  return { main: [...pinned, ...rest], archived };
}

/** How many sent-back items wait for a fix (the badge on the 同步 tab). */
export async function fixCount(entries) {
  const loop = await loopState(entries);
  return entries.filter((e) => needsFix(e, loop)).length;
}

/** Open a new submission pre-filled from a sent-back one, linked to it (`replaces`). */
export async function resend(app, e) {
  const existing = await store.replacementOf(e.id);
  if (existing && existing.kind === 'draft') return app.go(`/inspect/${existing.row.id}`);
  const definition = (await store.formDefinition(e.item.form, e.item.version)) || (await store.formForTarget(e.recordType === 'task' ? 'task' : (await store.facility(e.record) || {}).kind));
  if (!definition) return toast(t('facility_not_found'), { error: true });
  const latest = (await store.latestForms())[definition.id] || definition;
  const draft = await store.draftReplacing(e, latest);
  app.go(`/inspect/${draft.id}`);
}

/** The notices and buttons of fix and resend and of conflicts, for a row and the item view. */
export function loopDetails(app, e, loop) {
  const out = [];
  if (loop.conflicted.has(e.id)) out.push(h('div.conflict-note', { dataset: { conflict: e.id } }, t('loop_conflict')));
  if (e.type !== 'submission' || !SENT_BACK.has(e.state)) return out;
  const r = loop.replacement.get(e.id);
  if (r && r.kind === 'outbox') {
    const key = ANSWERED.has(r.row.state) ? 'loop_resent' : 'loop_resent_waiting';
    out.push(h('div.small.muted.resent', { dataset: { replacement: r.row.id } }, t(key, { state: pick(STATE_LABELS[r.row.state] || { zh: r.row.state, en: r.row.state }) })));
    if (ANSWERED.has(r.row.state)) return out;
  }
  if (!r || r.kind === 'draft') {
    const label = r ? t('loop_continue_fix') : e.state === 'rejected' ? t('edit_and_resend') : t('inspect_again');
    out.push(h('button.btn.block.primary.resend', { type: 'button', style: 'margin-top:8px', onclick: () => resend(app, e) }, label));
  }
  return out;
}
