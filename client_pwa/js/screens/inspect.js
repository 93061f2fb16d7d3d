// Filling in an inspection (or a monthly task): the form rendered from its definition, saved as
// a draft on every change, checked with form_logic.validate before it may go to the outbox.

import * as api from '../api.js';
import { validate } from '../form_logic.js';
import * as geo from '../geo.js';
import { pick, t } from '../i18n.js';
import { allFields, renderForm } from '../render_form.js';
import * as store from '../store.js';
import * as sync from '../sync.js';
import * as rules from '../sync_rules.js';
import { currentPosition, h, icon, toast } from './ui.js';

const TYPE_FIELDS = ['toilet_type', 'rubbish_type', 'fire_type', 'zone_type'];
const POSITION_FRESH_MS = 20000;

/** Start (or continue) an inspection of a facility or a monthly task: make the draft, open it. */
export async function start(app, seq, recordType, recordId) {
  const existing = await store.draftsOfRecord(recordId);
  if (existing.length) return app.go(`/inspect/${existing[0].id}`, { replace: true });
  let draft;
  if (recordType === 'task') {
    const task = await store.task(recordId);
    const form = await store.formForTarget('task');
    if (!task || !form) throw new Error(t('no_tasks'));
    draft = await store.newDraft(form, {
      record: task.id,
      recordType: 'task',
      village: task.village,
      name: pick(task.title),
      presets: { task_kind: task.template },
    });
  } else {
    const f = await store.facility(recordId);
    const form = f && (await store.formForTarget(f.kind));
    if (!f || !form) throw new Error(t('facility_not_found'));
    // The record's kind of toilet (station, fire point, zone) is a sensible first answer.
    const names = new Set(form.fields.map((x) => x.name));
    const presets = {};
    for (const k of TYPE_FIELDS) if (names.has(k) && f.fields && f.fields[k] != null) presets[k] = f.fields[k];
    draft = await store.newDraft(form, { record: f.id, recordType: 'facility', village: f.village, name: f.name, presets });
  }
  if (seq === app.seq) app.go(`/inspect/${draft.id}`, { replace: true });
}

export async function show(app, seq, draftId) {
  const draft = await store.draft(draftId);
  if (!draft) {
    app.mount(seq, h('p.empty', t('no_drafts')), { title: t('drafts'), back: '/drafts' });
    return;
  }
  // The draft's own form version, even when a newer one has been published since (issue 15):
  // it is finished and sent as that version.
  const definition = await store.formDefinition(draft.form, draft.version);
  if (!definition) {
    app.mount(seq, h('p.empty', { id: 'version-missing' }, t('form_version_missing')), { title: pick(draft.title) || t('drafts'), back: '/drafts' });
    return;
  }
  const newest = (await store.latestForms())[draft.form];
  const older = newest && newest.version > draft.version;
  const today = store.localDate();
  const urls = [];
  const saved = h('p.muted.small', { id: 'saved' });

  // Saves run one after another, so the last change is the one stored.
  let saving = Promise.resolve();
  const save = () => {
    saving = saving.then(() => store.saveDraft(draft, definition)).then(
      () => { saved.textContent = `✓ ${t('autosaved')}`; },
      (err) => { saved.textContent = t('error_generic', { msg: err.message }); },
    );
    return saving;
  };

  // Keep a recent fix while the form is open, so a photo gets the position of its moment, and
  // show its accuracy live (等待定位 / 粗略位置 / how to turn location on). A poor fix never
  // stops a photo: the photo keeps the accuracy it was taken with.
  let fix = null;
  let watch = null;
  const gps = h('div.gps', { id: 'gps', role: 'status' });
  gps.hidden = true;
  const located = allFields(definition).some((f) => f.type === 'photo' || f.type === 'geopoint');
  if (located) {
    gps.hidden = false;
    geo.paintStatus(gps, { fix: null, error: null });
    watch = geo.watch((state) => {
      if (state.fix) fix = state.fix;
      else if (state.error === 'denied' || state.error === 'unavailable') fix = null;
      geo.paintStatus(gps, { fix, error: state.error });
    });
  }
  async function positionNow() {
    if (fix && Date.now() - fix.at < POSITION_FRESH_MS) return { lat: fix.lat, lon: fix.lon, accuracy: fix.accuracy };
    const p = await currentPosition({ timeout: 10000, maximumAge: POSITION_FRESH_MS });
    return p ? { lat: p.lat, lon: p.lon, accuracy: p.accuracy } : null;
  }

  const photos = {
    async add(file) {
      const capturedAt = store.isoWithOffset();
      const position = await positionNow();
      return store.addPhoto(file, { position, capturedAt });
    },
    // The photos of a removed repeat instance: gone once the draft without them is saved.
    async forget(shas) {
      await saving;
      await store.forgetPhotos(shas);
    },
    async thumb(sha) {
      const blob = await store.thumbOrFetch(sha, api.displayBlob);
      if (!blob) return null;
      const url = URL.createObjectURL(blob);
      urls.push(url);
      return url;
    },
  };

  const form = renderForm(definition, draft.answers, { today, now: store.isoWithOffset, onChange: save, photos });
  const head = h('div.form-head',
    h('div.muted', draft.name || ''),
    draft.serverErrors ? h('div.card.warn', t('state_invalid')) : null,
    draft.replaces ? h('div.card.info.replacing', { id: 'replacing' }, t('loop_replacing')) : null,
    older ? h('div.card.info.version-note', { id: 'old-version', dataset: { version: String(draft.version) } }, t('form_version_old', { v: draft.version })) : null,
    gps,
    saved);

  async function submit() {
    await saving;
    const day = store.localDate();
    const observedAt = store.isoWithOffset(); // what now() gives, here and on the server
    const checked = validate(definition, draft.answers, { today: day, now: observedAt });
    const count = Object.keys(checked.errors).length;
    if (count) {
      const first = form.showErrors(checked.errors);
      toast(t('fix_errors', { n: count }), { error: true, ms: 4000 });
      if (first) first.scrollIntoView({ behavior: 'smooth', block: 'center' });
      return;
    }
    const record = draft.recordType === 'task' ? await store.task(draft.record) : await store.facility(draft.record);
    const item = {
      type: 'submission',
      id: draft.id,
      form: definition.id,
      version: definition.version,
      record: draft.record,
      clock: await sync.nextClock(),
      observed_at: observedAt,
      answers: checked.answers,
      base: baseClocks(definition, record),
    };
    // Fix and resend: the rejected submission this one replaces (issue 12).
    if (draft.replaces) item.replaces = draft.replaces;
    await store.draftToOutbox(draft, item, {
      owner: app.session.user.id,
      photos: store.photoHashes(definition, checked.answers),
      state: rules.markQueued({ state: 'draft' }).state,
    });
    app.leave = null;
    cleanup();
    toast(t(navigator.onLine ? 'submitted_online' : 'submitted'));
    sync.requestBackgroundSync();
    if (navigator.onLine) sync.syncNow('submit');
    app.go('/outbox', { replace: true });
  }

  async function remove() {
    if (!confirm(t('delete_draft_confirm'))) return;
    app.leave = null;
    cleanup();
    await store.deleteDraft(draft.id);
    history.back();
  }

  function cleanup() {
    if (watch) watch();
    watch = null;
    for (const u of urls.splice(0)) URL.revokeObjectURL(u);
  }

  const el = h('div', head, form.el);
  const back = draft.recordType === 'task' ? '/tasks' : `/facility/${encodeURIComponent(draft.record)}`;
  const mounted = app.mount(seq, el, {
    title: pick(definition.title),
    back,
    actions: [
      h('button.btn.danger.secondary', { type: 'button', onclick: remove, 'aria-label': t('delete_draft'), title: t('delete_draft') }, icon('trash')),
      h('button.btn.primary', { type: 'button', id: 'submit', onclick: submit }, t('submit_to_outbox')),
    ],
  });
  if (!mounted) return cleanup();
  if (draft.serverErrors) form.showErrors(draft.serverErrors);
  app.onLeave(async (stay) => {
    await save();
    if (!stay) cleanup();
  });
}

/** The clocks of the record's values this phone knew, for the fields this form updates. */
function baseClocks(definition, record) {
  const clocks = (record && record.clocks) || {};
  const base = {};
  for (const field of Object.keys(definition.updates || {})) if (clocks[field]) base[field] = clocks[field];
  return base;
}
