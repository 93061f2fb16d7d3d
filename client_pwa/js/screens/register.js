// Register a facility missing from the records: kind, its type, a name and where it is (the
// phone's position). It joins the local records at once and goes to the outbox; then the first
// inspection of it opens.
//
// Issue 11: the position is watched live with its accuracy shown; saving with a poor or rough
// (cell/network) fix asks first, and so does a facility of the same kind already registered
// within NEARBY_METRES (among the facilities this phone has). The item says the position is
// the browser's, in WGS-84 (`datum`, `source`, `accuracy` next to lat/lon).

import * as geo from '../geo.js';
import { pick, t } from '../i18n.js';
import * as store from '../store.js';
import * as sync from '../sync.js';
import { distanceM, h, icon, toast } from './ui.js';

export const NEARBY_METRES = 30;

/** The nearest facility of `kind` within NEARBY_METRES of `position`: {facility, metres} or null. */
export function nearbySameKind(facilities, kind, position) {
  let best = null;
  for (const f of facilities) {
    if (f.kind !== kind || typeof f.lat !== 'number' || typeof f.lon !== 'number') continue;
    if (f.fields && f.fields.status === 'retired') continue;
    const metres = distanceM(position, { lat: f.lat, lon: f.lon });
    if (metres <= NEARBY_METRES && (!best || metres < best.metres)) best = { facility: f, metres };
  }
  return best;
}

const KINDS = ['toilet', 'rubbish', 'fire', 'zone'];
const TYPE_FIELD = { toilet: 'toilet_type', rubbish: 'rubbish_type', fire: 'fire_type', zone: 'zone_type' };

export async function show(app, seq, villageCode) {
  const v = await store.village(villageCode);
  const forms = Object.values(await store.latestForms());
  const state = { kind: '', type: '', position: null };

  const kindBox = h('div.choices.grid');
  const typeField = h('div.field', h('div.label', t('facility_type')));
  const typeBox = h('div.choices.grid');
  typeField.append(typeBox);
  typeField.hidden = true;
  const name = h('input', { type: 'text', id: 'facility-name', maxLength: 100, placeholder: t('facility_name_hint') });
  const where = h('div.muted', { id: 'facility-where' }, t('position_wait'));
  const gps = h('div.gps', { id: 'gps', role: 'status' });
  const locate = h('button.btn.block', { type: 'button', onclick: () => locateNow() }, icon('pin'), t('relocate'));
  // Issue 12: each problem shows under its own field and goes away as soon as it is fixed.
  const fieldError = (key) => {
    const el = h('div.errors.inline-error', { role: 'alert', dataset: { error: key } });
    el.hidden = true;
    return el;
  };
  const errors = { kind: fieldError('kind'), name: fieldError('name'), position: fieldError('position') };
  const problems = () => ({
    kind: state.kind ? null : t('kind_required'),
    name: name.value.trim() ? null : t('name_required'),
    position: state.position ? null : t('position_required'),
  });
  let checked = false; // errors show after the first 保存 only, then follow every change
  function paintErrors() {
    if (!checked) return 0;
    let n = 0;
    for (const [key, message] of Object.entries(problems())) {
      errors[key].textContent = message || '';
      errors[key].hidden = !message;
      errors[key].closest('.field')?.classList.toggle('has-error', Boolean(message));
      if (message) n += 1;
    }
    return n;
  }
  name.addEventListener('input', paintErrors);

  function typeChoices() {
    const form = forms.find((f) => f.target === state.kind);
    const field = form && form.fields.find((f) => f.name === TYPE_FIELD[state.kind]);
    return field ? field.choices : [];
  }

  function paint() {
    kindBox.replaceChildren(...KINDS.map((k) =>
      h(`button.choice${state.kind === k ? '.on' : ''}`, { type: 'button', dataset: { kind: k }, onclick: () => { state.kind = k; state.type = ''; paint(); paintErrors(); } }, t(`kind_${k}`))));
    const choices = typeChoices();
    typeField.hidden = !choices.length;
    typeBox.replaceChildren(...choices.map((c) =>
      h(`button.choice${state.type === c.value ? '.on' : ''}`, { type: 'button', dataset: { value: c.value }, onclick: () => { state.type = c.value; paint(); } }, pick(c.label))));
  }

  let stopWatch = null;
  function locateNow() {
    if (stopWatch) stopWatch();
    state.position = null;
    where.textContent = t('position_wait');
    geo.paintStatus(gps, { fix: null, error: null });
    stopWatch = geo.watch(({ fix, error }) => {
      if (fix) state.position = fix;
      else if (error === 'denied' || error === 'unavailable') state.position = null;
      const p = state.position;
      where.textContent = p ? t('position_value', { lat: p.lat.toFixed(6), lon: p.lon.toFixed(6), acc: Math.round(p.accuracy ?? 0) }) : t('position_failed');
      geo.paintStatus(gps, { fix: p, error });
      paintErrors();
    });
  }
  const stop = () => {
    if (stopWatch) stopWatch();
    stopWatch = null;
  };

  /** Ask before saving a poor or rough fix, or next to a facility of the same kind. */
  async function confirmed(position) {
    const q = geo.quality(position);
    const acc = Math.round(position.accuracy ?? 0);
    if (q === 'coarse' && !confirm(t('register_coarse_fix', { acc }))) return false;
    if (q === 'wait' && !confirm(t('register_poor_fix', { acc }))) return false;
    const near = nearbySameKind(await store.facilitiesOf(villageCode), state.kind, position);
    if (near && !confirm(t('register_nearby', { name: near.facility.name, m: Math.round(near.metres), limit: NEARBY_METRES }))) return false;
    return true;
  }

  async function save() {
    checked = true;
    if (paintErrors()) {
      el.querySelector('.field.has-error')?.scrollIntoView({ block: 'center' });
      return;
    }
    const position = { ...state.position };
    if (!(await confirmed(position))) return;
    const fields = {};
    if (state.type) fields[TYPE_FIELD[state.kind]] = state.type;
    const item = {
      type: 'facility',
      id: store.uuid(),
      village: villageCode,
      kind: state.kind,
      name: name.value.trim(),
      lat: position.lat,
      lon: position.lon,
      accuracy: position.accuracy,
      datum: 'wgs84',
      source: 'browser',
      clock: await sync.nextClock(),
      fields,
    };
    stop();
    await store.registerFacility(item, { owner: app.session.user.id, state: 'queued' });
    toast(t(navigator.onLine ? 'submitted_online' : 'submitted'));
    sync.requestBackgroundSync();
    if (navigator.onLine) sync.syncNow('register');
    app.go(`/new/facility/${encodeURIComponent(item.id)}`, { replace: true });
  }

  paint();
  const el = h('div',
    h('div.field', h('div.label', t('facility_kind')), kindBox, errors.kind),
    typeField,
    h('div.field', h('label.label', { htmlFor: 'facility-name' }, t('facility_name')), name, errors.name),
    h('div.field', h('div.label', t('facility_position')), where, gps, h('div', { style: 'margin-top:8px' }, locate), errors.position),
  );
  const mounted = app.mount(seq, el, {
    title: `${t('register_title')}${v ? ` · ${v.name}` : ''}`,
    back: `/village/${villageCode}`,
    actions: [h('button.btn.primary', { type: 'button', id: 'save-facility', onclick: save }, t('save_and_inspect'))],
  });
  if (mounted) {
    app.onLeave((stay) => {
      if (!stay) stop(); // stay: only hidden for a while, keep watching
    });
    locateNow();
  } else {
    stop();
  }
}
