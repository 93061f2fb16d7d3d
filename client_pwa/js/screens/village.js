// A village's facilities: search, filter by kind, nearest first when the phone knows where it
// is, each with its last inspection, its recorded state and whether this phone holds a draft
// or an unsynced report about it.

import { t } from '../i18n.js';
import * as store from '../store.js';
import * as sync from '../sync.js';
import { badge, currentPosition, distanceM, h, icon } from './ui.js';

const KINDS = ['toilet', 'rubbish', 'fire', 'zone'];
let lastPosition = null;
const filters = { village: null, kind: '', query: '' }; // kept while moving within a village

/** Badges for what the record says (good, bad or neutral). */
export function recordBadges(f) {
  const v = f.fields || {};
  const out = [];
  if (v.status === 'retired') out.push(badge(t('st_retired'), 'bad'));
  if (f.kind === 'toilet') {
    if (v.sanitary === true) out.push(badge(t('st_sanitary'), 'good'));
    if (v.sanitary === false) out.push(badge(t('st_not_sanitary'), 'bad'));
    if (v.harmless === true) out.push(badge(t('st_harmless'), 'good'));
    if (Array.isArray(v.hazards) && v.hazards.length) out.push(badge(t('st_hazards', { n: v.hazards.length }), 'bad'));
    if (v.in_use === false) out.push(badge(t('st_not_in_use'), 'bad'));
  } else if (f.kind === 'rubbish') {
    if (v.running === true) out.push(badge(t('st_running'), 'good'));
    if (v.running === false) out.push(badge(t('st_not_running'), 'bad'));
    if (v.overflow === true) out.push(badge(t('st_overflow'), 'bad'));
  } else if (f.kind === 'fire') {
    if (v.equipment_ok === true) out.push(badge(t('st_equipment_ok'), 'good'));
    if (v.equipment_ok === false) out.push(badge(t('st_equipment_bad'), 'bad'));
  } else if (f.kind === 'zone' && v.score != null) {
    out.push(badge(t('st_score', { score: v.score, grade: v.grade || '' }), v.score >= 75 ? 'good' : 'bad'));
  }
  return out;
}

function distanceText(m) {
  return m < 1000 ? t('distance_m', { n: Math.round(m) }) : t('distance_km', { n: (m / 1000).toFixed(1) });
}

export async function show(app, seq, code) {
  if (filters.village !== code) Object.assign(filters, { village: code, kind: '', query: '' });
  const v = await store.village(code);
  const all = await store.facilitiesOf(code);
  const localDrafts = new Set((await store.drafts()).map((d) => d.record));
  const unsynced = new Map();
  for (const e of await store.outbox()) if (e.type === 'submission' && sync.isUnsynced(e)) unsynced.set(e.record, e);

  const search = h('input.search', { type: 'search', placeholder: t('search_facilities'), value: filters.query, 'aria-label': t('search_facilities') });
  const chips = h('div.chips');
  const note = h('p.muted.small');
  const list = h('ul.list');

  function paintChips() {
    chips.replaceChildren(...['', ...KINDS].map((k) =>
      h(`button.chip${filters.kind === k ? '.on' : ''}`, { type: 'button', onclick: () => { filters.kind = k; paintChips(); paint(); } },
        k ? t(`kind_${k}`) : t('all_kinds'))));
  }

  function paint() {
    const q = filters.query.trim().toLowerCase();
    let rows = all.filter((f) => (!filters.kind || f.kind === filters.kind) && (!q || f.name.toLowerCase().includes(q)));
    if (lastPosition) {
      rows = rows.map((f) => ({ f, d: f.lat != null ? distanceM(lastPosition, f) : Infinity }));
      rows.sort((a, b) => a.d - b.d);
      note.textContent = t('nearest_first');
    } else {
      rows = rows.map((f) => ({ f, d: null }));
      rows.sort((a, b) => a.f.name.localeCompare(b.f.name, 'zh-CN'));
      note.textContent = t('no_position');
    }
    if (!rows.length) {
      list.replaceChildren(h('li', h('p.empty', t('no_facilities'))));
      return;
    }
    list.replaceChildren(...rows.slice(0, 300).map(({ f, d }) => {
      const last = f.fields && f.fields.last_inspected;
      const badges = recordBadges(f);
      if (f.pending) badges.unshift(badge(t('pending_registration'), 'pending'));
      if (unsynced.has(f.id)) badges.unshift(badge(t('state_pending'), 'pending'));
      if (localDrafts.has(f.id)) badges.unshift(badge(t('st_has_draft'), 'draft'));
      return h('li', h('a.row', { href: `#/facility/${encodeURIComponent(f.id)}`, dataset: { id: f.id } },
        h('div.main',
          h('div.name', f.name),
          h('div.sub', `${t(`kind_${f.kind}`)} · ${last ? t('last_inspected', { d: last }) : t('never_inspected')}`),
          badges.length ? h('div.badges', badges) : null),
        h('div.side', d != null && Number.isFinite(d) ? distanceText(d) : ''),
        h('span.chev', '›')));
    }));
  }

  search.addEventListener('input', () => {
    filters.query = search.value;
    paint();
  });
  paintChips();
  paint();
  const el = h('div', search, chips, note, list);
  const mounted = app.mount(seq, el, {
    title: v ? v.name : code,
    back: '/villages',
    actions: [
      h('a.btn.secondary.map-link', { href: `#/map/${encodeURIComponent(code)}` }, icon('pin'), t('map_open')), // issue 12
      h('a.btn.primary', { href: `#/register/${code}` }, icon('plus'), t('register_facility')),
    ],
  });
  if (!mounted) return;
  const position = await currentPosition({ timeout: 6000, maximumAge: 60000 });
  if (position && seq === app.seq) {
    lastPosition = position;
    paint();
  }
}
