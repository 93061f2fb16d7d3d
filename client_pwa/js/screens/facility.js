// A facility: its current record and its history (from the server when online, else what this
// phone holds), with the action to inspect it.

import * as api from '../api.js';
import { formatTime, pick, t } from '../i18n.js';
import * as store from '../store.js';
import { badge, h, icon, stateBadge } from './ui.js';
import { loopState, needsFix, resend } from './outbox.js';
import { recordBadges } from './village.js';

/** A record or answer value as people read it, using the form's labels where it has them. */
export function formatValue(field, value) {
  if (value === null || value === undefined || value === '') return t('no_value');
  if (value === true) return t('yes');
  if (value === false) return t('no');
  const label = (v) => {
    const c = field && field.choices && field.choices.find((x) => x.value === v);
    return c ? pick(c.label) : String(v);
  };
  if (Array.isArray(value)) return value.length ? value.map(label).join('、') : t('no_value');
  if (typeof value === 'object') return JSON.stringify(value);
  return label(value);
}

const RECORD_LABELS = {
  last_inspected: 'rec_last_inspected',
  status: 'rec_status',
  score: 'rec_score',
  grade: 'rec_grade',
  failed_items: 'rec_failed_items',
  equipment_ok: 'st_equipment_ok',
  next_expiry: 'rec_next_expiry',
};

export async function show(app, seq, id) {
  const f = await store.facility(id);
  if (!f) {
    app.mount(seq, h('p.empty', t('facility_not_found')), { title: t('app_name'), back: '/villages' });
    return;
  }
  const form = await store.formForTarget(f.kind);
  const fieldsByName = new Map((form ? form.fields : []).map((x) => [x.name, x]));
  const drafts = await store.draftsOfRecord(id);
  const local = await store.outboxOfRecord(id);

  const kv = h('dl.kv');
  // In the form's order (as the inspector knows the questions), then the record's own fields.
  const order = (name) => (fieldsByName.has(name) ? [...fieldsByName.keys()].indexOf(name) : 1000);
  const names = Object.keys(f.fields || {}).sort((a, b) => order(a) - order(b) || a.localeCompare(b));
  for (const name of names) {
    const field = fieldsByName.get(name);
    const value = f.fields[name];
    const label = field ? pick(field.label) : RECORD_LABELS[name] ? t(RECORD_LABELS[name]) : name;
    let text = formatValue(field, value);
    if (name === 'status') text = t(value === 'retired' ? 'st_retired' : 'st_active');
    if (name === 'failed_items' && Array.isArray(value)) {
      // The names of the failed checklist items: show their questions.
      text = value.length ? value.map((v) => (fieldsByName.has(v) ? pick(fieldsByName.get(v).label) : v)).join('、') : t('no_value');
    }
    kv.append(h('dt', label), h('dd', text));
  }
  const badges = recordBadges(f);
  if (f.pending) badges.unshift(badge(t('pending_registration'), 'pending'));
  const history = h('div', h('p.muted', navigator.onLine ? t('history_loading') : t('history_offline')));
  // Issue 12: the record's values differ between reports and wait for a supervisor (the
  // server's `conflicts` on the facility, or the flag on one of this phone's reports; both
  // absent on older servers).
  const conflicted = (Array.isArray(f.conflicts) && f.conflicts.length > 0) || local.some((e) => e.conflict === true);

  const el = h('div',
    h('div.card',
      h('div.name', h('strong', f.name)),
      h('div.muted', `${t(`kind_${f.kind}`)}${f.lat != null ? ` · ${f.lat.toFixed(5)}, ${f.lon.toFixed(5)}` : ''}`),
      badges.length ? h('div.badges', badges) : null,
      conflicted ? h('div.conflict-note', { id: 'facility-conflict' }, t('loop_conflict')) : null),
    h('h2', t('record_fields')),
    h('div.card', kv),
    h('h2', t('history')),
    history,
  );

  // A report of this phone sent back and not fixed yet: the main action re-inspects it, with
  // its answers and photos filled in (issue 12).
  const mine = local.filter((e) => e.owner === app.session.user.id);
  const loop = await loopState(mine);
  const sentBack = mine.find((e) => needsFix(e, loop) && !loop.replacement.has(e.id));
  let action;
  if (drafts.length) action = h('a.btn.primary', { href: `#/inspect/${drafts[0].id}` }, icon('draft'), t('continue_draft'));
  else if (sentBack) action = h('button.btn.primary.resend', { type: 'button', onclick: () => resend(app, sentBack) }, icon('draft'), t(sentBack.state === 'rejected' ? 'edit_and_resend' : 'inspect_again'));
  else action = h('a.btn.primary', { href: `#/new/facility/${encodeURIComponent(id)}`, hidden: !form }, icon('plus'), t('new_inspection'));
  if (!app.mount(seq, el, { title: f.name, back: `/village/${f.village}`, actions: [action] })) return;

  // Local entries first (they may not be on the server yet), then the server's when reachable.
  const localRows = local.filter((e) => e.type === 'submission').map((e) => localRow(e));
  let serverRows = [];
  let note = null;
  if (navigator.onLine && !f.pending) {
    try {
      const data = await api.facilityHistory(id);
      const mine = new Set(local.map((e) => e.id));
      const forms = await store.latestForms();
      serverRows = data.submissions.filter((s) => !mine.has(s.id)).map((s) => serverRow(s, forms));
    } catch (err) {
      note = err.network ? t('history_offline') : t('error_generic', { msg: err.message });
    }
  } else if (!navigator.onLine) {
    note = t('history_offline');
  }
  if (seq !== app.seq) return;
  const rows = [...localRows, ...serverRows];
  history.replaceChildren(
    note ? h('p.muted', note) : '',
    rows.length ? h('ul.list', rows) : h('p.empty', t('history_empty')),
  );
}

function localRow(entry) {
  const state = entry.state;
  return h('li', h('a.row', { href: `#/outbox/item/${encodeURIComponent(entry.id)}` },
    h('div.main',
      h('div.name', pick(entry.title)),
      h('div.sub', formatTime(entry.item.observed_at)),
      entry.review && entry.review.reason ? h('div.review', t('review_reason', { r: entry.review.reason })) : null,
      entry.conflict === true ? h('div.conflict-note', t('loop_conflict')) : null),
    h('div.side', stateBadge(entry))));
}

const SERVER_STATES = {
  received: 'state_photos',
  complete: 'state_synced',
  approved: 'state_approved',
  rejected: 'state_rejected',
  reinspection_requested: 'state_reinspect',
};

function serverRow(s, forms) {
  const key = SERVER_STATES[s.state] || 'state_synced';
  const kind = s.state === 'rejected' || s.state === 'reinspection_requested' ? 'rejected' : 'synced';
  return h('li', h('div.row',
    h('div.main', h('div.name', forms[s.form_id] ? pick(forms[s.form_id].title) : s.form_id), h('div.sub', formatTime(s.observed_at))),
    h('div.side', badge(t(key), kind))));
}
