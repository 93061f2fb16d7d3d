// client_pwa/js/sync_rules.js: outbox states, push results, reviews, photo uploads, retries
// and the progress of a sync run.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  BACKOFF_BASE_MS, BACKOFF_CAP_MS, MAX_CHUNK_BYTES, PROCESSING_POLLS_MS, STATE_LABELS, STEPS, applyOutcome, applyPushResult, applyReview,
  applyUploadResponse, backoff, chunkPlan, markQueued, nextStep, nextUpload, photoStored, progress,
  pushBatches, shouldRetry, startRun,
} from '../../client_pwa/js/sync_rules.js';

const SHA = (c) => c.repeat(64);
const item = (id, extra = {}) => ({ id, type: 'submission', state: 'queued', missing: [], errors: null, ...extra });

test('every state has a Chinese and an English label', () => {
  assert.deepEqual(Object.keys(STATE_LABELS).sort(), ['approved', 'draft', 'invalid', 'queued', 'refused',
    'reinspection_requested', 'rejected', 'synced', 'waiting_for_photos']);
  assert.equal(STATE_LABELS.queued.zh, '待同步');
  assert.equal(STATE_LABELS.rejected.zh, '被退回');
  for (const label of Object.values(STATE_LABELS)) assert.ok(label.zh && label.en);
});

test('drafts and fixed invalid items are queued; others cannot be', () => {
  assert.equal(markQueued(item('a', { state: 'draft' })).state, 'queued');
  assert.deepEqual(markQueued(item('a', { state: 'invalid', errors: { x: [] } })), item('a'));
  assert.throws(() => markQueued(item('a', { state: 'synced' })));
});

test('push batches: queued only, facilities first, at most 200 each', () => {
  const items = [item('s1'), item('f1', { type: 'facility' }), item('d', { state: 'draft' }), item('s2', { state: 'synced' })];
  assert.deepEqual(pushBatches(items).map((b) => b.map((i) => i.id)), [['f1', 's1']]);
  const many = Array.from({ length: 401 }, (_, n) => item(`i${n}`));
  assert.deepEqual(pushBatches(many).map((b) => b.length), [200, 200, 1]);
  assert.deepEqual(pushBatches([]), []);
});

test('push results move the item by protocol status', () => {
  const it = item('a');
  assert.equal(applyPushResult(it, { id: 'a', status: 'accepted' }).state, 'synced');
  const waiting = applyPushResult(it, { id: 'a', status: 'waiting_for_photos', missing: [SHA('1')], dropped: ['harmless'] });
  assert.deepEqual([waiting.state, waiting.missing, waiting.dropped], ['waiting_for_photos', [SHA('1')], ['harmless']]);
  assert.equal(applyPushResult(it, { id: 'a', status: 'duplicate' }).state, 'synced');
  assert.equal(applyPushResult(it, { id: 'a', status: 'duplicate', missing: [SHA('1')] }).state, 'waiting_for_photos');
  const errors = { sanitary: [{ code: 'required', message: { zh: '必须选择', en: 'Please choose' } }] };
  assert.deepEqual(applyPushResult(it, { id: 'a', status: 'invalid', errors }), { ...it, state: 'invalid', errors, dropped: [] });
  assert.equal(applyPushResult(it, { id: 'a', status: 'refused', errors: { id: [] } }).state, 'refused');
});

test('an item is never released without an answer about it', () => {
  const it = item('a', { extra: 1 });
  for (const result of [undefined, null, {}, { id: 'b', status: 'accepted' }, { id: 'a', status: 'mystery' }, { id: 'a' }]) {
    assert.equal(applyPushResult(it, result), it);
  }
  assert.equal(applyPushResult(it, { id: 'a', status: 'accepted' }).extra, 1);
});

test('stored photos leave the missing list; the last one makes the item synced', () => {
  let it = item('a', { state: 'waiting_for_photos', missing: [SHA('1'), SHA('2')] });
  it = photoStored(it, SHA('1'));
  assert.deepEqual([it.state, it.missing], ['waiting_for_photos', [SHA('2')]]);
  assert.equal(photoStored(it, SHA('9')), it);
  assert.deepEqual([photoStored(it, SHA('2')).state, photoStored(it, SHA('2')).missing], ['synced', []]);
  const reviewed = item('b', { state: 'rejected', missing: [SHA('1')] });
  assert.equal(photoStored(reviewed, SHA('1')).state, 'rejected');
});

test('reviews: the newest one wins, with the reason and reviewer', () => {
  const synced = item('a', { state: 'synced' });
  const reject = { submission_id: 'a', state: 'rejected', decision: 'reject', reason: '照片不是该户厕所，请重新拍摄',
    at: '2026-11-20T02:00:00.000+00:00', reviewer: '覃志强（桐浦乡督查）' };
  const rejected = applyReview(synced, reject);
  assert.equal(rejected.state, 'rejected');
  assert.deepEqual(rejected.review, { decision: 'reject', reason: reject.reason, at: reject.at, reviewer: reject.reviewer });
  const approve = { submission_id: 'a', state: 'approved', decision: 'approve', reason: null, at: '2026-11-21T02:00:00.000+00:00' };
  const approved = applyReview(rejected, approve);
  assert.equal(approved.state, 'approved');
  assert.equal(applyReview(approved, reject), approved); // an older review replayed
  assert.equal(applyReview(synced, { ...reject, submission_id: 'other' }), synced);
  assert.equal(applyReview(synced, { ...reject, state: 'complete' }), synced);
  assert.equal(applyReview(synced, { ...reject, state: 'reinspection_requested' }).state, 'reinspection_requested');
});

test('outcomes: the conflict notice follows the server, other fields untouched', () => {
  const synced = item('a', { state: 'synced' });
  const conflicted = applyOutcome(synced, { submission_id: 'a', state: 'complete', conflict: true, conflict_fields: ['sanitary'], lost_fields: ['sanitary'] });
  assert.deepEqual([conflicted.state, conflicted.conflict, conflicted.conflict_fields], ['synced', true, ['sanitary']]);
  const settled = applyOutcome(conflicted, { submission_id: 'a', state: 'complete', conflict: false, conflict_fields: [] });
  assert.deepEqual([settled.conflict, settled.conflict_fields], [false, []]);
  assert.equal(applyOutcome(settled, { submission_id: 'a', conflict: false, conflict_fields: [] }), settled);
  assert.equal(applyOutcome(synced, { submission_id: 'other', conflict: true }), synced);
  assert.equal(applyOutcome(synced, { submission_id: 'a' }), synced); // an older server's entry
});

test('next upload: oldest item first, resuming at the known offset', () => {
  const items = [item('a', { missing: [SHA('1'), SHA('2')] }), item('b', { missing: [SHA('2'), SHA('3')] })];
  const uploads = {
    [SHA('1')]: { size: 10, offset: 10, complete: true },
    [SHA('2')]: { size: 5_000_000, offset: 4_194_304, complete: false },
    [SHA('3')]: { size: 7, offset: 0 },
  };
  assert.deepEqual(nextUpload(items, uploads), { sha256: SHA('2'), offset: 4_194_304, size: 5_000_000 });
  uploads[SHA('2')] = { ...uploads[SHA('2')], failed: 'too_large' };
  assert.deepEqual(nextUpload(items, uploads), { sha256: SHA('3'), offset: 0, size: 7 });
  delete uploads[SHA('3')]; // its Blob is gone: nothing to send
  assert.equal(nextUpload(items, uploads), null);
  assert.equal(nextUpload([], {}), null);
});

test('chunk plan: from the offset, at most one chunk size each', () => {
  assert.deepEqual(chunkPlan(10, 0, 4), [{ start: 0, end: 4 }, { start: 4, end: 8 }, { start: 8, end: 10 }]);
  assert.deepEqual(chunkPlan(10, 6, 4), [{ start: 6, end: 10 }]);
  assert.deepEqual(chunkPlan(10, 10, 4), []);
  assert.deepEqual(chunkPlan(MAX_CHUNK_BYTES + 1), [{ start: 0, end: MAX_CHUNK_BYTES }, { start: MAX_CHUNK_BYTES, end: MAX_CHUNK_BYTES + 1 }]);
  assert.throws(() => chunkPlan(10, -1, 4), RangeError);
  assert.throws(() => chunkPlan(10, 0, 0), RangeError);
});

test('upload answers: resume, restart once after a hash mismatch, or give up', () => {
  const up = { size: 100, offset: 40 };
  assert.deepEqual(applyUploadResponse(up, 200, { offset: 100, complete: true, length: 100 }), { size: 100, offset: 100, complete: true });
  assert.deepEqual(applyUploadResponse(up, 204, { offset: 60, complete: false }), { size: 100, offset: 60, complete: false });
  assert.deepEqual(applyUploadResponse(up, 409, { error: { code: 'offset_mismatch', offset: 20 } }), { size: 100, offset: 20 });
  const restarted = applyUploadResponse(up, 422, { error: { code: 'hash_mismatch' } });
  assert.deepEqual(restarted, { size: 100, offset: 0, restarted: true });
  assert.equal(applyUploadResponse(restarted, 422, { error: { code: 'hash_mismatch' } }).failed, 'hash_mismatch');
  assert.equal(applyUploadResponse(up, 415, { error: { code: 'unsupported_type' } }).failed, 'unsupported_type');
  assert.equal(applyUploadResponse(up, 413, null).failed, '413');
  assert.equal(applyUploadResponse(up, 503, null), up);
  assert.equal(applyUploadResponse(up, 0, null), up);
});

test('a photo the server is processing is not complete: skipped, asked about again', () => {
  const up = { size: 100, offset: 40 };
  const processing = applyUploadResponse(up, 503, { error: { code: 'processing', retry_after: 2 } });
  assert.deepEqual(processing, { size: 100, offset: 100, processing: true });
  assert.equal(processing.complete, undefined);
  const items = [{ state: 'waiting_for_photos', missing: [SHA('1'), SHA('2')] }];
  const uploads = { [SHA('1')]: processing, [SHA('2')]: { size: 7, offset: 0 } };
  assert.deepEqual(nextUpload(items, uploads), { sha256: SHA('2'), offset: 0, size: 7 });
  assert.equal(nextUpload(items, { [SHA('1')]: processing }), null);
  assert.deepEqual(applyUploadResponse(processing, 200, { offset: 100, complete: true }), { size: 100, offset: 100, complete: true });
  assert.equal(applyUploadResponse(processing, 422, { error: { code: 'processing_failed' } }).failed, 'processing_failed');
  const discarded = applyUploadResponse(processing, 422, { error: { code: 'corrupt' } });
  assert.deepEqual(discarded, { size: 100, offset: 0, restarted: true });
  assert.ok(PROCESSING_POLLS_MS.length > 0 && PROCESSING_POLLS_MS.every((ms) => ms > 0));
});

test('backoff: full jitter under a growing ceiling, capped at 5 minutes', () => {
  assert.equal(backoff(0, () => 0), 0);
  assert.equal(backoff(0, () => 0.999999), BACKOFF_BASE_MS - 1);
  assert.equal(backoff(3, () => 0.5), BACKOFF_BASE_MS * 4);
  assert.equal(backoff(50, () => 0.999999), BACKOFF_CAP_MS - 1);
  assert.equal(backoff(1e9, () => 0.5), BACKOFF_CAP_MS / 2);
  for (let attempt = 0; attempt < 12; attempt++) {
    const delay = backoff(attempt);
    assert.ok(Number.isInteger(delay) && delay >= 0 && delay < BACKOFF_CAP_MS);
  }
});

test('retry on network trouble, 5xx and 429; log in again on 401; otherwise stop', () => {
  for (const status of [0, null, undefined, 408, 429, 500, 502, 503]) assert.equal(shouldRetry(status), 'retry', String(status));
  assert.equal(shouldRetry(401), 'login');
  for (const status of [400, 403, 404, 409, 413, 415, 422]) assert.equal(shouldRetry(status), 'stop', String(status));
});

test('a run: push, upload, pull, with counters from the data', () => {
  assert.deepEqual(STEPS, ['push', 'upload', 'pull']);
  let items = [item('a'), item('b'), item('old', { state: 'waiting_for_photos', missing: [SHA('0')] }), item('d', { state: 'draft' })];
  const uploads = { [SHA('0')]: { size: 300, offset: 100 } };
  let run = startRun(items);
  assert.deepEqual(run, { step: 'push', records: ['a', 'b'], photos: [] });
  assert.deepEqual(progress({ run, items, uploads }).records, { done: 0, total: 2 });

  items = [applyPushResult(items[0], { id: 'a', status: 'waiting_for_photos', missing: [SHA('1'), SHA('0')] }),
    applyPushResult(items[1], { id: 'b', status: 'accepted' }), items[2], items[3]];
  run = nextStep(run, items);
  assert.deepEqual(run.photos, [SHA('1'), SHA('0')]);
  uploads[SHA('1')] = { size: 1000, offset: 0 };
  assert.deepEqual(progress({ run, items, uploads }), {
    step: 'upload', records: { done: 2, total: 2 }, photos: { done: 0, total: 2 }, bytes: { done: 100, total: 1300 },
  });

  uploads[SHA('0')] = { size: 300, offset: 300, complete: true };
  items = items.map((it) => photoStored(it, SHA('0')));
  uploads[SHA('1')] = { size: 1000, offset: 400 };
  assert.deepEqual(progress({ run, items, uploads }).bytes, { done: 700, total: 1300 });
  assert.deepEqual(progress({ run, items, uploads }).photos, { done: 1, total: 2 });
  assert.equal(items[2].state, 'synced');

  run = nextStep(run, items);
  assert.equal(progress({ run, items, uploads }).step, 'pull');
  assert.equal(nextStep(run, items).step, 'done');
});
