// The sync engine: the I/O half of syncing (the rules are in sync_rules.js).
//
// One run: push the outbox (batches of at most 200, in the order things were made) → upload the
// photos the server lacks, resumably → pull every page (records, forms, tasks and the reviews
// of our submissions). Nothing leaves the outbox before the server has answered for it; a
// failed run leaves every entry as it was, and the next run sends the same bytes again (the
// server answers `duplicate` for what it already took).
//
// Runs are single-flight. Triggers (app open, back to the foreground, `online`, the 同步
// button; Background Sync where a worker has it, never relied on) live in app.js; this module owns the replay policy: stop at the first network failure,
// retry later with backoff and jitter, and stop for good (until the user logs in) on a 401.

import * as api from './api.js';
import { receive, tick } from './clock.js';
import * as rules from './sync_rules.js';
import * as store from './store.js';

export const PUSH_BATCH_MAX = rules.PUSH_BATCH_MAX;
export const SYNC_TAG = 'villagecheck-sync';

/** Events: 'progress' (detail = progress snapshot), 'done', 'error' (detail = ApiError), 'auth'. */
export const events = new EventTarget();

let running = null;
let retryTimer = null;
let failures = 0;
let snapshot = idle();
const started = []; // the last runs' reasons and start times, newest last (settings, tests)

/** The reasons and start times of the last runs started (at most 20). */
export function history() {
  return started.slice();
}

function idle() {
  return { running: false, phase: 'idle', records: { done: 0, total: 0 }, photos: { done: 0, total: 0 }, bytes: { done: 0, total: 0 } };
}

function emit(type, detail) {
  events.dispatchEvent(new CustomEvent(type, { detail }));
}

function report(patch) {
  snapshot = { ...snapshot, ...patch };
  emit('progress', snapshot);
}

/** The latest progress snapshot (for screens drawn in the middle of a run). */
export function progress() {
  return snapshot;
}

/** Run a sync now, or join the run in progress. Resolves {ok, error?}; never rejects. */
export function syncNow(reason = 'manual') {
  if (!running) {
    clearTimeout(retryTimer);
    retryTimer = null;
    started.push({ reason, at: new Date().toISOString() });
    if (started.length > 20) started.shift();
    running = runOnce(reason).finally(() => {
      running = null;
    });
  }
  return running;
}

/** Ask the browser for a Background Sync when there is a connection (Chrome); no-op elsewhere. */
export async function requestBackgroundSync() {
  try {
    const reg = await navigator.serviceWorker?.ready;
    if (reg && 'sync' in reg) await reg.sync.register(SYNC_TAG);
  } catch {
    // Not available (or refused): the app syncs on open and when it comes back online.
  }
}

async function runOnce(reason) {
  const session = await store.getMeta('session');
  if (!session || !session.token || session.expired) return { ok: false, error: 'no_session' };
  snapshot = { ...idle(), running: true, phase: 'push', reason };
  emit('progress', snapshot);
  try {
    await pushOutbox(session);
    await uploadPhotos(session);
    run = rules.nextStep(run, []);
    await pullAll();
    failures = 0;
    const at = new Date().toISOString();
    await store.setMeta('last_sync', { at, ok: true });
    snapshot = { ...snapshot, running: false, phase: 'done' };
    emit('progress', snapshot);
    emit('done', { at });
    await store.collectPhotos();
    return { ok: true };
  } catch (error) {
    snapshot = { ...snapshot, running: false, phase: 'failed' };
    emit('progress', snapshot);
    await store.setMeta('last_sync', { ...(await store.getMeta('last_sync', {})), failedAt: new Date().toISOString(), ok: false, message: error.message, code: error.code });
    if (error instanceof api.ApiError && error.auth) {
      // Keep the outbox; the user logs in again and the next run sends it.
      await store.setMeta('session', { ...session, expired: true });
      emit('auth', error);
    } else {
      emit('error', error);
      if (!(error instanceof api.ApiError) || rules.shouldRetry(error.status) === 'retry') scheduleRetry();
    }
    return { ok: false, error };
  }
}

function scheduleRetry() {
  failures += 1;
  const delay = Math.max(1000, rules.backoff(failures));
  clearTimeout(retryTimer);
  retryTimer = setTimeout(() => syncNow('retry'), delay);
}

// ---- clock -----------------------------------------------------------------------------------

/** Fold the server's clock into ours, so our next reports order after what we have seen. */
async function receiveClock(remote) {
  if (!remote) return;
  const device = await store.deviceId();
  const last = await store.getMeta('hlc');
  try {
    await store.setMeta('hlc', receive(last, remote, Date.now(), device));
  } catch (err) {
    console.warn('bad clock from server', remote, err);
  }
}

/** A new clock reading for a local event (a submission, a registration). */
export async function nextClock() {
  const device = await store.deviceId();
  const value = tick(await store.getMeta('hlc'), Date.now(), device);
  await store.setMeta('hlc', value);
  return value;
}

// ---- push ------------------------------------------------------------------------------------

/** Outbox states that still need the server (or the user) before they count as synced. */
export const UNSYNCED = new Set(['queued', 'waiting_for_photos', 'invalid', 'refused']);

export function isUnsynced(entry) {
  return UNSYNCED.has(entry.state);
}

async function myEntries(session) {
  return (await store.outbox()).filter((e) => e.owner === session.user.id);
}

async function pushOutbox(session) {
  const batches = rules.pushBatches(await myEntries(session), PUSH_BATCH_MAX);
  run = rules.startRun(await myEntries(session));
  await reportRun();
  for (const batch of batches) {
    const answer = await api.push({
      device_id: await store.deviceId(),
      device_time_ms: Date.now(),
      clock: await store.getMeta('hlc'),
      items: batch.map((e) => e.item),
    });
    await receiveClock(answer.clock);
    for (const result of answer.results) {
      const entry = batch[result.index];
      if (entry) await store.putOutbox({ ...rules.applyPushResult(entry, result), answeredAt: new Date().toISOString() });
    }
    await reportRun();
  }
}

// ---- photos ----------------------------------------------------------------------------------

const CHUNK_BYTES = 512 * 1024; // small chunks: a dropped connection on a slow line loses little
const RECONNECT_TRIES = 3;

let run = null;
let uploads = {};

async function reportRun() {
  if (!run) return;
  const session = await store.getMeta('session');
  const items = session ? await myEntries(session) : [];
  report({ phase: run.step, ...rules.progress({ run, items, uploads }) });
}

async function uploadPhotos(session) {
  run = rules.nextStep(run, await myEntries(session));
  uploads = {};
  for (const sha of run.photos) {
    const info = await store.photoInfo(sha);
    uploads[sha] = { size: info ? info.size : undefined, offset: 0, complete: false, asked: false };
  }
  await reportRun();
  const chunkSize = (await store.getMeta('chunk_bytes')) || CHUNK_BYTES;
  // A photo leaves the phone only once the server confirms it holds it, complete and checked
  // against its hash. One the server no longer holds when asked for that confirmation (lost,
  // discarded) is still here and is sent again, in this run (a few passes at most).
  for (let pass = 0; pass < LOST_PHOTO_PASSES; pass += 1) {
    await sendPhotos(session, chunkSize);
    await awaitProcessing(session);
    const items = (await myEntries(session)).filter((e) => e.state !== 'queued');
    if (!rules.nextUpload(items, uploads)) return;
  }
}

const LOST_PHOTO_PASSES = 3;

async function sendPhotos(session, chunkSize) {
  let reconnects = 0;
  for (;;) {
    const items = (await myEntries(session)).filter((e) => e.state !== 'queued');
    const next = rules.nextUpload(items, uploads);
    if (!next) break;
    const { sha256 } = next;
    try {
      if (!uploads[sha256].asked) {
        // Ask first: the server may hold the photo (free) or part of it (resume from there).
        const status = await api.mediaStatus(sha256);
        uploads[sha256] = { ...rules.applyUploadResponse(uploads[sha256], 200, status), asked: true };
      } else {
        const upload = uploads[sha256];
        // Every byte sent but not yet complete (a server killed before its check): an empty
        // last chunk asks the server to finish the photo.
        const [chunk = { start: upload.offset, end: upload.offset }] = rules.chunkPlan(
          upload.size,
          upload.offset,
          chunkSize,
        );
        const blob = await store.photoBlob(sha256);
        const body = await api.mediaPatch(sha256, chunk.start, upload.size, blob.slice(chunk.start, chunk.end));
        uploads[sha256] = rules.applyUploadResponse(upload, 200, body);
        reconnects = 0;
      }
    } catch (error) {
      if (!(error instanceof api.ApiError)) throw error;
      const decision = rules.shouldRetry(error.status);
      if (error.status === 503 && error.code === 'processing') {
        // Every byte is on the server, which is processing them: go on with the other photos
        // and ask about this one again below (it is not complete yet).
        uploads[sha256] = rules.applyUploadResponse(uploads[sha256], error.status, error.body);
        await markProcessing(session, sha256, true);
      } else if (error.network) {
        // The connection dropped mid-chunk: wait a little, ask where the server is, resume.
        if (++reconnects > RECONNECT_TRIES) throw error;
        await new Promise((resolve) => setTimeout(resolve, rules.backoff(reconnects - 1)));
        uploads[sha256] = { ...uploads[sha256], asked: false };
      } else if (decision === 'login' || decision === 'retry') {
        throw error;
      } else {
        const before = uploads[sha256];
        const after = rules.applyUploadResponse(before, error.status, error.body);
        // An answer the rules leave unchanged (403 …) must not loop: give up on this photo.
        uploads[sha256] = after === before ? { ...before, failed: error.code } : after;
        if (uploads[sha256].failed) await notePhotoFailure(session, sha256, error);
      }
    }
    if (uploads[sha256].complete) await photoDone(session, sha256);
    await reportRun();
  }
}

/**
 * Ask again about photos the server holds but is still processing, after growing pauses. Any
 * still processing at the end fail the run with the server's `processing` answer, so the next
 * run (after the usual backoff) asks again; they are never taken for complete.
 */
async function awaitProcessing(session) {
  let pending = null;
  for (const wait of rules.PROCESSING_POLLS_MS) {
    const waiting = Object.keys(uploads).filter((sha) => uploads[sha].processing);
    if (!waiting.length) return;
    await new Promise((resolve) => setTimeout(resolve, wait));
    for (const sha256 of waiting) {
      try {
        const status = await api.mediaStatus(sha256);
        uploads[sha256] = rules.applyUploadResponse(uploads[sha256], 200, status);
        if (!uploads[sha256].complete) await markProcessing(session, sha256, false); // lost: send again
      } catch (error) {
        if (!(error instanceof api.ApiError)) throw error;
        if (error.status === 503 && error.code === 'processing') {
          pending = error;
          continue;
        }
        if (rules.shouldRetry(error.status) !== 'stop') throw error;
        const { processing, ...before } = uploads[sha256];
        uploads[sha256] = rules.applyUploadResponse(before, error.status, error.body);
        if (uploads[sha256].failed) await notePhotoFailure(session, sha256, error);
      }
      if (uploads[sha256].complete) await photoDone(session, sha256);
    }
    await reportRun();
  }
  if (pending && Object.values(uploads).some((upload) => upload.processing)) throw pending;
}

async function photoDone(session, sha256) {
  await store.markPhotoUploaded(sha256);
  for (const entry of await myEntries(session)) {
    if ((entry.missing || []).includes(sha256)) {
      const { processing = [], ...rest } = rules.photoStored(entry, sha256);
      const left = processing.filter((sha) => sha !== sha256);
      await store.putOutbox(left.length ? { ...rest, processing: left } : rest);
    }
  }
}

/** Note on the entries that wait for a photo whether the server is processing it (处理中). */
async function markProcessing(session, sha256, on) {
  for (const entry of await myEntries(session)) {
    if (!(entry.missing || []).includes(sha256)) continue;
    const now = (entry.processing || []).filter((sha) => sha !== sha256);
    if (on) now.push(sha256);
    if (now.length !== (entry.processing || []).length) await store.putOutbox({ ...entry, processing: now });
  }
}

async function notePhotoFailure(session, sha256, error) {
  for (const entry of await myEntries(session)) {
    if ((entry.missing || []).includes(sha256)) {
      await store.putOutbox({ ...entry, photoErrors: { ...(entry.photoErrors || {}), [sha256]: { code: error.code, message: error.message } } });
    }
  }
}

// ---- pull ------------------------------------------------------------------------------------

async function pullAll() {
  report({ phase: 'pull' });
  let cursor = await store.getMeta('cursor');
  for (let pages = 0; pages < 1000; pages += 1) {
    let page;
    try {
      page = await api.pull(cursor);
    } catch (error) {
      if (error instanceof api.ApiError && error.code === 'bad_cursor') {
        cursor = null; // the server does not know our cursor: start again from the beginning
        await store.setMeta('cursor', null);
        continue;
      }
      throw error;
    }
    await receiveClock(page.clock);
    await store.applyPullPage(page, { applyReview: rules.applyReview, applyOutcome: rules.applyOutcome });
    cursor = page.cursor;
    if (!page.more) return;
  }
}
