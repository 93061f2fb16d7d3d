// Records and photos ↔ the objects kept in IndexedDB (schema in db.js).
//
// Photos are kept as Blobs. Chromium stores Blobs in IndexedDB (tests/test_pwa_e2e.py checks
// it); Safari failed to in some cases, which is why workbox's StorableRequest stores
// ArrayBuffers (https://github.com/dfahlander/Dexie.js/issues/618#issuecomment-398348457).
// We probe once and fall back to an ArrayBuffer when a stored Blob does not come back whole,
// so the rest of the app only ever sees Blobs.

import { db } from './db.js';
import { initialAnswers } from './form_logic.js';
import { DEFAULT_MAX_EDGE, shrinkPhoto } from './photo_resize.js';

// ---- meta ----------------------------------------------------------------------------------

export async function getMeta(key, fallback = null) {
  const v = await (await db()).get('meta', key);
  return v === undefined ? fallback : v;
}

export async function setMeta(key, value) {
  await (await db()).put('meta', value, key);
}

export async function delMeta(key) {
  await (await db()).delete('meta', key);
}

/** A random id (UUID v4): submission and facility ids are made on the phone. */
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** This phone's device id, made once and kept (the third part of its clocks). */
export async function deviceId() {
  let id = await getMeta('device_id');
  if (!id) {
    id = `phone-${uuid().replace(/-/g, '').slice(0, 12)}`;
    await setMeta('device_id', id);
  }
  return id;
}

// ---- time ----------------------------------------------------------------------------------

/** Local ISO 8601 time with the phone's UTC offset, e.g. 2026-11-20T10:31:05+08:00. */
export function isoWithOffset(date = new Date()) {
  const pad = (x) => String(Math.floor(Math.abs(x))).padStart(2, '0');
  const off = -date.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `${sign}${pad(off / 60)}:${pad(off % 60)}`
  );
}

/** Today's local date, YYYY-MM-DD. */
export function localDate(date = new Date()) {
  return isoWithOffset(date).slice(0, 10);
}

// ---- photos --------------------------------------------------------------------------------

let blobProbe = null;

/** Whether this browser gives back a Blob put into IndexedDB intact (probed once). */
export function blobsStore() {
  if (!blobProbe) {
    blobProbe = (async () => {
      try {
        const d = await db();
        const probe = new Blob([new Uint8Array([1, 2, 3, 4])], { type: 'application/octet-stream' });
        await d.put('meta', probe, '_blob_probe');
        const back = await d.get('meta', '_blob_probe');
        await d.delete('meta', '_blob_probe');
        return back instanceof Blob && (await back.arrayBuffer()).byteLength === 4;
      } catch {
        return false;
      }
    })();
  }
  return blobProbe;
}

export async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

const THUMB_PX = 256;

/** A small JPEG of the photo for the UI (orientation applied); null if it cannot be decoded. */
export async function makeThumbnail(blob) {
  try {
    const full = await createImageBitmap(blob, { imageOrientation: 'from-image' });
    const scale = Math.min(1, THUMB_PX / Math.max(full.width, full.height));
    const w = Math.max(1, Math.round(full.width * scale));
    const h = Math.max(1, Math.round(full.height * scale));
    let out;
    if (typeof OffscreenCanvas !== 'undefined') {
      const canvas = new OffscreenCanvas(w, h);
      canvas.getContext('2d').drawImage(full, 0, 0, w, h);
      out = await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.7 });
    } else {
      const canvas = document.createElement('canvas');
      canvas.width = w;
      canvas.height = h;
      canvas.getContext('2d').drawImage(full, 0, 0, w, h);
      out = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.7));
    }
    full.close?.();
    return out;
  } catch {
    return null;
  }
}

/**
 * Keep a photo just taken: the bytes to upload (the original, or a smaller JPEG with its EXIF
 * when its long edge is over the server's max_photo_edge; photo_resize.js), a thumbnail, and the
 * answer for the form ({sha256, captured_at, position}). The kept bytes are what the server hashes.
 */
export async function addPhoto(file, { position = null, capturedAt = isoWithOffset() } = {}) {
  const config = (await getMeta('pwa_config')) || {}; // the server's /app/config.json, kept by caps.js
  const edge = Number.isInteger(config.max_photo_edge) ? config.max_photo_edge : DEFAULT_MAX_EDGE;
  const kept = (await shrinkPhoto(file, edge)).blob;
  const bytes = await kept.arrayBuffer();
  const sha256 = await sha256Hex(bytes);
  const type = kept.type || file.type || 'image/jpeg';
  const thumb = await makeThumbnail(kept);
  const asBlob = await blobsStore();
  const d = await db();
  const existing = await d.get('photos', sha256);
  if (!existing) {
    await d.put('photos', {
      sha256,
      data: asBlob ? new Blob([bytes], { type }) : bytes,
      type,
      size: bytes.byteLength,
      original_size: file.size,
      captured_at: capturedAt,
      position,
      uploaded: false,
      addedAt: new Date().toISOString(),
    });
  }
  if (thumb) await d.put('thumbs', { sha256, data: asBlob ? thumb : await thumb.arrayBuffer(), type: 'image/jpeg' });
  return { sha256, captured_at: capturedAt, position };
}

function asBlob(row) {
  if (!row) return null;
  return row.data instanceof Blob ? row.data : new Blob([row.data], { type: row.type });
}

/** The original bytes of a photo as a Blob, or null when this phone no longer holds them. */
export async function photoBlob(sha256) {
  return asBlob(await (await db()).get('photos', sha256));
}

export async function photoInfo(sha256) {
  const row = await (await db()).get('photos', sha256);
  if (!row) return null;
  const { data, ...info } = row;
  return info;
}

/** The thumbnail as a Blob (null when it could not be made). */
export async function thumbBlob(sha256) {
  return asBlob(await (await db()).get('thumbs', sha256));
}

/**
 * The thumbnail of a photo, fetched from the server's display version when this phone no
 * longer has one (kept for next time); null offline or when the server does not have it.
 */
export async function thumbOrFetch(sha256, fetchDisplay) {
  const kept = await thumbBlob(sha256);
  if (kept || !navigator.onLine || !fetchDisplay) return kept;
  const blob = await fetchDisplay(sha256);
  if (!blob) return null;
  const d = await db();
  await d.put('thumbs', { sha256, data: (await blobsStore()) ? blob : await blob.arrayBuffer(), type: blob.type || 'image/jpeg', uploaded: true });
  return blob;
}

/** The server holds the photo: drop the original (keep the thumbnail) to free the phone. */
export async function markPhotoUploaded(sha256) {
  const d = await db();
  const row = await d.get('photos', sha256);
  if (row) await d.delete('photos', sha256);
  const thumbs = await d.get('thumbs', sha256);
  if (thumbs) await d.put('thumbs', { ...thumbs, uploaded: true });
}

/**
 * Photo answers of a set of answers (every photo field's list, flattened), those of the photo
 * fields inside every instance of a repeat group included (issue 15).
 */
export function photoHashes(definition, answers) {
  const out = [];
  const take = (fields, values) => {
    for (const f of fields) {
      const value = values && values[f.name];
      if (f.type === 'photo' && Array.isArray(value)) {
        for (const p of value) if (p && p.sha256) out.push(p.sha256);
      } else if (f.type === 'repeat' && Array.isArray(value)) {
        for (const instance of value) if (instance && typeof instance === 'object') take(f.fields || [], instance);
      }
    }
  };
  take(definition.fields, answers || {});
  return [...new Set(out)];
}

/**
 * Forget photos taken away from a draft (the photos of a removed repeat instance): their bytes
 * and thumbnails go, unless a draft or an outbox entry still lists them.
 */
export async function forgetPhotos(shas) {
  const d = await db();
  const used = new Set();
  for (const row of await d.getAll('drafts')) for (const h of row.photos || []) used.add(h);
  for (const entry of await d.getAll('outbox')) for (const h of entry.photos || []) used.add(h);
  for (const sha of shas) {
    if (used.has(sha)) continue;
    await d.delete('photos', sha);
    await d.delete('thumbs', sha);
  }
}

/** Delete photos no draft or unsynced outbox entry still refers to. */
export async function collectPhotos() {
  const d = await db();
  const keep = new Set();
  for (const draft of await d.getAll('drafts')) for (const h of draft.photos || []) keep.add(h);
  for (const entry of await d.getAll('outbox')) {
    // Until the server has answered for an item it may ask for any of its photos; after, only `missing`.
    const unanswered = entry.state === 'queued' || entry.state === 'invalid';
    for (const h of (unanswered ? entry.photos : entry.missing) || []) keep.add(h);
  }
  for (const key of await d.getAllKeys('photos')) if (!keep.has(key)) await d.delete('photos', key);
}

// ---- forms, villages, facilities, tasks ---------------------------------------------------

// Every published version of a form the server sends is kept (forms are stored by [id, version]
// and nothing deletes one but logging out): a draft or an outbox entry of an older version opens,
// is finished and is sent with that version's definition, while new inspections take the newest
// (latestForms). The pull sends each published version once, and a reset pull keeps them.

/** The newest version of every form, by id. */
export async function latestForms() {
  const all = await (await db()).getAll('forms');
  const out = {};
  for (const f of all) if (!out[f.id] || out[f.id].version < f.version) out[f.id] = f;
  return out;
}

export async function formDefinition(id, version) {
  return (await db()).get('forms', [id, version]);
}

/** The newest form that inspects a record kind ('toilet', 'zone', 'task' …). */
export async function formForTarget(target) {
  const forms = Object.values(await latestForms());
  return forms.find((f) => f.target === target) || null;
}

export async function villages() {
  const rows = await (await db()).getAll('villages');
  return rows.sort((a, b) => a.code.localeCompare(b.code));
}

export async function village(code) {
  return (await db()).get('villages', code);
}

export async function facilitiesOf(villageCode) {
  return (await db()).getAllFromIndex('facilities', 'village', villageCode);
}

export async function facility(id) {
  return (await db()).get('facilities', id);
}

export async function tasksOf(villageCode) {
  return (await db()).getAllFromIndex('tasks', 'village', villageCode);
}

export async function task(id) {
  return (await db()).get('tasks', id);
}

/** One pull page into the local copy; replaces the records first when the server says reset. */
export async function applyPullPage(page, { applyReview, applyOutcome }) {
  const d = await db();
  const tx = d.transaction(['forms', 'villages', 'facilities', 'tasks', 'outbox', 'meta'], 'readwrite');
  if (page.reset) {
    await Promise.all([tx.objectStore('villages').clear(), tx.objectStore('tasks').clear()]);
    // Keep facilities registered on this phone that the server has not taken yet.
    const facilities = tx.objectStore('facilities');
    for (const f of await facilities.getAll()) if (!f.pending) await facilities.delete(f.id);
  }
  for (const form of page.forms || []) await tx.objectStore('forms').put(form);
  for (const v of page.villages || []) await tx.objectStore('villages').put(v);
  for (const f of page.facilities || []) await tx.objectStore('facilities').put({ ...f, pending: false });
  for (const t of page.tasks || []) await tx.objectStore('tasks').put(t);
  const outbox = tx.objectStore('outbox');
  for (const review of page.reviews || []) {
    const entry = await outbox.get(review.submission_id);
    if (entry) await outbox.put(applyReview(entry, review));
  }
  for (const outcome of page.outcomes || []) {
    const entry = await outbox.get(outcome.submission_id);
    if (entry) await outbox.put(applyOutcome(entry, outcome));
  }
  await tx.objectStore('meta').put(page.cursor, 'cursor');
  await tx.done;
}

// ---- drafts --------------------------------------------------------------------------------

export async function drafts() {
  const rows = await (await db()).getAll('drafts');
  return rows.sort((a, b) => (b.updatedAt || '').localeCompare(a.updatedAt || ''));
}

export async function draft(id) {
  return (await db()).get('drafts', id);
}

export async function draftsOfRecord(recordId) {
  return (await db()).getAllFromIndex('drafts', 'record', recordId);
}

/** A new draft of `definition` about a record, with the form's defaults and presets filled in. */
export async function newDraft(definition, { record, recordType, village, name, presets = {} }) {
  const answers = initialAnswers(definition);
  Object.assign(answers, presets);
  return putDraft(definition, { record, recordType, village, name, presets, answers, photos: [] });
}

/** Store a new draft of `definition` with `fields` (record, answers, photos …). */
async function putDraft(definition, fields) {
  const now = new Date().toISOString();
  const row = {
    id: uuid(),
    form: definition.id,
    version: definition.version,
    title: definition.title,
    ...fields,
    createdAt: now,
    updatedAt: now,
  };
  await (await db()).put('drafts', row);
  return row;
}

/**
 * Fix and resend (issue 12): a new draft pre-filled with a rejected outbox entry's answers and
 * photos, which names the entry it replaces (`replaces` on the pushed item). Photos the phone
 * no longer holds (the server has them) keep their sha256 reference: the server already holds
 * the bytes, and the thumbnail kept on the phone still shows them.
 */
export async function draftReplacing(entry, definition) {
  const answers = fillable(definition.fields, entry.item.answers || {});
  return putDraft(definition, {
    record: entry.record,
    recordType: entry.recordType,
    village: entry.village,
    name: entry.name,
    presets: {},
    answers,
    photos: photoHashes(definition, answers),
    replaces: entry.id,
  });
}

/**
 * The answers a person fills in, of `fields`: calculated values (recomputed) and unknown keys
 * left out; a repeat keeps its instances, each with its own fillable answers.
 */
function fillable(fields, values) {
  const out = {};
  for (const f of fields) {
    if (f.type === 'calculate' || f.type === 'note' || !Object.prototype.hasOwnProperty.call(values, f.name)) continue;
    const v = values[f.name];
    if (f.type === 'repeat') {
      if (Array.isArray(v)) out[f.name] = v.filter((x) => x && typeof x === 'object').map((x) => fillable(f.fields || [], x));
    } else out[f.name] = v;
  }
  return out;
}

/** The draft or outbox entry that replaces an outbox entry (fix and resend), or null. */
export async function replacementOf(entryId) {
  const d = await db();
  for (const e of await d.getAll('outbox')) if (e.item && e.item.replaces === entryId) return { kind: 'outbox', row: e };
  for (const r of await d.getAll('drafts')) if (r.replaces === entryId) return { kind: 'draft', row: r };
  return null;
}

/** Save a draft's answers (called on every change). */
export async function saveDraft(row, definition) {
  row.updatedAt = new Date().toISOString();
  row.photos = photoHashes(definition, row.answers);
  await (await db()).put('drafts', row);
}

export async function deleteDraft(id) {
  await (await db()).delete('drafts', id);
  await collectPhotos();
}

// ---- outbox --------------------------------------------------------------------------------

async function nextSeq(d) {
  const cursor = await d.transaction('outbox').store.index('seq').openCursor(null, 'prev');
  return cursor ? cursor.value.seq + 1 : 1;
}

/** An outbox row as first queued: the server has asked for no photos, no errors, no review. */
function queued(entry, state) {
  return {
    ...entry,
    missing: [],
    state,
    errors: null,
    review: null,
    createdAt: new Date().toISOString(),
    syncedAt: null,
  };
}

/**
 * Move a finished draft to the outbox: `item` is the exact push item (never changed again, so
 * a resend is byte-for-byte the same); the draft is removed in the same transaction.
 */
export async function draftToOutbox(row, item, { owner, photos, state }) {
  const d = await db();
  const seq = await nextSeq(d);
  const tx = d.transaction(['drafts', 'outbox'], 'readwrite');
  const previous = await tx.objectStore('outbox').get(row.id);
  await tx.objectStore('outbox').put(
    queued(
      {
        id: row.id,
        seq: previous ? previous.seq : seq,
        type: 'submission',
        owner,
        record: row.record,
        recordType: row.recordType,
        village: row.village,
        name: row.name,
        title: row.title,
        item,
        photos,
        replaces: row.replaces || null,
      },
      state,
    ),
  );
  await tx.objectStore('drafts').delete(row.id);
  await tx.done;
}

/** A facility registered on this phone: in the local records at once, and in the outbox. */
export async function registerFacility(item, { owner, state }) {
  const d = await db();
  const seq = await nextSeq(d);
  const tx = d.transaction(['facilities', 'outbox'], 'readwrite');
  await tx.objectStore('facilities').put({
    id: item.id,
    village: item.village,
    kind: item.kind,
    name: item.name,
    lat: item.lat,
    lon: item.lon,
    fields: { ...item.fields },
    clocks: {},
    pending: true,
  });
  await tx.objectStore('outbox').put(
    queued(
      {
        id: item.id,
        seq,
        type: 'facility',
        owner,
        record: item.id,
        recordType: 'facility',
        village: item.village,
        name: item.name,
        title: null,
        item,
        photos: [],
      },
      state,
    ),
  );
  await tx.done;
}

export async function outbox() {
  return (await db()).getAllFromIndex('outbox', 'seq');
}

export async function outboxEntry(id) {
  return (await db()).get('outbox', id);
}

export async function outboxOfRecord(recordId) {
  return (await db()).getAllFromIndex('outbox', 'record', recordId);
}

export async function putOutbox(entry) {
  await (await db()).put('outbox', entry);
}

/** An outbox entry the server refused as invalid goes back to the drafts, same id, to be fixed. */
export async function outboxToDraft(entry) {
  const d = await db();
  const tx = d.transaction(['drafts', 'outbox'], 'readwrite');
  await tx.objectStore('drafts').put({
    id: entry.id,
    form: entry.item.form,
    version: entry.item.version,
    title: entry.title,
    record: entry.record,
    recordType: entry.recordType,
    village: entry.village,
    name: entry.name,
    presets: {},
    answers: { ...entry.item.answers },
    photos: entry.photos,
    serverErrors: entry.errors,
    createdAt: entry.createdAt,
    updatedAt: new Date().toISOString(),
  });
  await tx.objectStore('outbox').delete(entry.id);
  await tx.done;
}

/** Forget the user's data (logout or another user logging in); the device id stays. */
export async function clearUserData() {
  const d = await db();
  const stores = ['forms', 'villages', 'facilities', 'tasks', 'drafts', 'outbox', 'photos', 'thumbs'];
  const tx = d.transaction([...stores, 'meta'], 'readwrite');
  for (const s of stores) await tx.objectStore(s).clear();
  for (const k of ['session', 'cursor', 'last_sync']) await tx.objectStore('meta').delete(k);
  await tx.done;
}
