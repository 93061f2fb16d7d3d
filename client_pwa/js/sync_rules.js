// The sync engine's rules as pure functions: plain data in, plain data out (no fetch, no
// IndexedDB), so every rule of docs/PROTOCOL.md the phone follows is testable on its own.
//
// An outbox item is the app's record of one pushed thing:
//   {id, type: 'facility' | 'submission', state, missing: [sha256], errors, dropped, review, ...}
// Functions return a new item and keep every other key. Nothing here ever removes an item:
// an item leaves 待同步 only through an answer from the server about that very id.
//
// An upload record is what the phone knows about one photo's bytes on the server:
//   uploads = {sha256: {size, offset, complete, failed}}  (size: the Blob's size in bytes)

export const STATE_LABELS = Object.freeze({
  draft: { zh: '草稿', en: 'Draft' },
  queued: { zh: '待同步', en: 'Waiting to sync' },
  waiting_for_photos: { zh: '等待照片', en: 'Waiting for photos' },
  synced: { zh: '已同步', en: 'Synced' },
  rejected: { zh: '被退回', en: 'Sent back' },
  reinspection_requested: { zh: '要求复查', en: 'Re-inspection requested' },
  approved: { zh: '已通过', en: 'Approved' },
  invalid: { zh: '有误', en: 'Has errors' },
  refused: { zh: '被拒绝', en: 'Refused: id already used' },
});

export const PUSH_BATCH_MAX = 200; // the server's PUSH_BATCH_MAX
export const MAX_CHUNK_BYTES = 4 * 1024 * 1024; // the server's MAX_CHUNK_BYTES
export const BACKOFF_BASE_MS = 2000;
export const BACKOFF_CAP_MS = 5 * 60 * 1000;
export const STEPS = Object.freeze(['push', 'upload', 'pull']);

// ---------------------------------------------------------------- records

/** A draft (or an item the server found invalid, now fixed) goes to the outbox. */
export function markQueued(item) {
  if (item.state !== 'draft' && item.state !== 'invalid') {
    throw new Error(`cannot queue an item in state ${item.state}`);
  }
  return { ...item, state: 'queued', errors: null };
}

/**
 * What to push next: queued items, facilities before submissions (a submission may inspect a
 * facility registered in the same run), outbox order otherwise, in batches the server takes.
 */
export function pushBatches(items, max = PUSH_BATCH_MAX) {
  const queued = items.filter((item) => item.state === 'queued');
  const ordered = [...queued.filter((i) => i.type === 'facility'), ...queued.filter((i) => i.type !== 'facility')];
  const batches = [];
  for (let i = 0; i < ordered.length; i += max) batches.push(ordered.slice(i, i + max));
  return batches;
}

/** The item after the server's result for it (one entry of the push answer's `results`). */
export function applyPushResult(item, result) {
  if (!result || result.id !== item.id) return item; // not an answer about this item: keep it
  if (typeof result.conflict === 'boolean') item = { ...item, conflict: result.conflict }; // issue 12
  const dropped = result.dropped || [];
  const missing = result.missing || [];
  switch (result.status) {
    case 'accepted':
    case 'duplicate': // the same content was stored before; photos may still be missing
    case 'waiting_for_photos':
      return { ...item, state: missing.length ? 'waiting_for_photos' : 'synced', missing, errors: null, dropped };
    case 'invalid': // not stored: show the errors, fix, resend under the same id
      return { ...item, state: 'invalid', errors: result.errors || {}, dropped };
    case 'refused': // the id holds different content on the server, which never overwrites
      return { ...item, state: 'refused', errors: result.errors || {} };
    default:
      return item; // an answer this version does not know: stay queued and ask again
  }
}

/** The server now holds a photo: drop it from the item's missing list. */
export function photoStored(item, sha256) {
  if (!(item.missing || []).includes(sha256)) return item;
  const missing = item.missing.filter((sha) => sha !== sha256);
  const state = item.state === 'waiting_for_photos' && !missing.length ? 'synced' : item.state;
  return { ...item, missing, state };
}

const REVIEW_STATES = new Set(['approved', 'rejected', 'reinspection_requested']);

/** The item after a supervisor's review from the pull's `reviews` (the newest one wins). */
export function applyReview(item, review) {
  if (!review || review.submission_id !== item.id) return item;
  if (!REVIEW_STATES.has(review.state)) return item;
  if (item.review && Date.parse(item.review.at) > Date.parse(review.at)) return item; // a replayed page
  const { decision, reason = null, at, reviewer = null } = review;
  return { ...item, state: review.state, review: { decision, reason, at, reviewer } };
}

/**
 * The item after the pull's `outcomes` entry for it: whether its values are in conflict with
 * another report (`conflict`, with the fields), kept on the item for the notice
 * 与他人报告不一致，待督查确定. Older servers send no outcomes; the item is then unchanged.
 */
export function applyOutcome(item, outcome) {
  if (!outcome || outcome.submission_id !== item.id || typeof outcome.conflict !== 'boolean') return item;
  const fields = outcome.conflict ? outcome.conflict_fields || [] : [];
  if (outcome.conflict === Boolean(item.conflict) && String(fields) === String(item.conflict_fields || [])) return item;
  return { ...item, conflict: outcome.conflict, conflict_fields: fields };
}

// ---------------------------------------------------------------- photos

/**
 * The photo to upload next, oldest item first: {sha256, offset, size}, or null when none is
 * left. Photos already complete, or failed (needing the user), are skipped; a photo with no
 * size known yet (its Blob was not found) cannot be sent and is skipped too.
 */
export function nextUpload(items, uploads) {
  for (const item of items) {
    for (const sha256 of item.missing || []) {
      const upload = uploads[sha256];
      if (!upload || upload.complete || upload.failed || upload.processing || !Number.isInteger(upload.size)) continue;
      return { sha256, offset: upload.offset || 0, size: upload.size };
    }
  }
  return null;
}

/** The byte ranges [start, end) to PATCH, from offset to size, each at most chunkSize. */
export function chunkPlan(size, offset = 0, chunkSize = MAX_CHUNK_BYTES) {
  if (![size, offset, chunkSize].every(Number.isSafeInteger) || offset < 0 || chunkSize < 1) {
    throw new RangeError('chunkPlan needs whole numbers, offset >= 0 and chunkSize >= 1');
  }
  const chunks = [];
  for (let start = offset; start < size; start += chunkSize) {
    chunks.push({ start, end: Math.min(size, start + chunkSize) });
  }
  return chunks;
}

/** Milliseconds to wait before each new question about photos the server is still processing. */
export const PROCESSING_POLLS_MS = [1000, 2000, 4000, 8000];

/**
 * The upload record after an answer to GET or PATCH /api/v1/media/<sha256> (status, JSON body).
 * 409 resumes from the server's offset; 422 (hash mismatch: the server discarded the bytes)
 * starts again from 0 once, then marks the photo failed; 413/415/400 mark it failed, and so
 * does 422 `processing_failed` (the server holds it but cannot process it). 503 `processing`:
 * the server holds every byte and is processing them: `processing`, not complete (ask again).
 */
export function applyUploadResponse(upload, status, body) {
  const error = (body && body.error) || {};
  if (status === 503 && error.code === 'processing') {
    return { ...upload, offset: Number.isInteger(upload.size) ? upload.size : upload.offset, processing: true };
  }
  const { processing, ...rest } = upload;
  if (status >= 200 && status < 300) {
    return { ...rest, offset: body.offset, complete: Boolean(body.complete) };
  }
  if (status === 409 && Number.isSafeInteger(error.offset)) return { ...rest, offset: error.offset };
  if (status === 422 && error.code === 'processing_failed') return { ...rest, failed: error.code };
  if (status === 422) {
    return upload.restarted ? { ...rest, offset: 0, failed: error.code || 'hash_mismatch' } : { ...rest, offset: 0, restarted: true };
  }
  if ([400, 413, 415].includes(status)) return { ...rest, failed: error.code || String(status) };
  return upload; // network trouble, 5xx, 401, 403: retry or log in again per shouldRetry
}

// ---------------------------------------------------------------- retries

/** Delay before retry number `attempt` (0, 1, 2 …): "full jitter", random in [0, min(cap, base·2^attempt)). */
export function backoff(attempt, rand = Math.random) {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(Math.max(attempt, 0), 20));
  return Math.floor(rand() * ceiling);
}

/**
 * What to do after a failed request, by HTTP status (0 or null: no answer at all):
 * 'retry' (network, 408, 429, 5xx: back off and try again), 'login' (401: stop the run, ask the
 * user to log in again, keep the outbox), 'stop' (other 4xx: record it on the item, don't loop).
 */
export function shouldRetry(status) {
  if (!status || status === 408 || status === 429 || status >= 500) return 'retry';
  if (status === 401) return 'login';
  return 'stop';
}

// ---------------------------------------------------------------- a sync run

/** A run starts with the push of what is queued now. */
export function startRun(items) {
  return { step: 'push', records: pushBatches(items).flat().map((item) => item.id), photos: [] };
}

const missingShas = (items) => [...new Set(items.flatMap((item) => item.missing || []))];

/** The next step: push → upload (the photos the server lacks now) → pull → done. */
export function nextStep(run, items) {
  if (run.step === 'push') return { ...run, step: 'upload', photos: missingShas(items) };
  if (run.step === 'upload') return { ...run, step: 'pull' };
  return { ...run, step: 'done' };
}

/**
 * Counters for the progress bar of a run, from the data alone:
 * {step, records: {done, total}, photos: {done, total}, bytes: {done, total}}.
 * A record is done once the server answered for it; a photo once the server holds it.
 */
export function progress({ run, items, uploads }) {
  const byId = new Map(items.map((item) => [item.id, item]));
  const stillMissing = new Set(missingShas(items));
  const recordsDone = run.records.filter((id) => byId.has(id) && byId.get(id).state !== 'queued').length;
  let photosDone = 0;
  let bytesDone = 0;
  let bytesTotal = 0;
  for (const sha of run.photos) {
    const upload = uploads[sha] || {};
    const complete = upload.complete || !stillMissing.has(sha);
    const size = upload.size || 0;
    photosDone += complete ? 1 : 0;
    bytesTotal += size;
    bytesDone += complete ? size : Math.min(upload.offset || 0, size);
  }
  return {
    step: run.step,
    records: { done: recordsDone, total: run.records.length },
    photos: { done: photosDone, total: run.photos.length },
    bytes: { done: bytesDone, total: bytesTotal },
  };
}
