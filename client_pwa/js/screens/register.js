// Register a facility missing from the records: kind, its type, a name and where it is (the
// phone's position). It joins the local records at once and goes to the outbox; then the first
// inspection of it opens.

import { pick, t } from '../i18n.js';
import * as store from '../store.js';
import * as sync from '../sync.js';
import { currentPosition, h, icon, toast } from './ui.js';

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
  const where = h('div.muted', t('position_wait'));
  const locate = h('button.btn.block', { type: 'button', onclick: () => locateNow() }, icon('pin'), t('get_position'));
  const errors = h('div.errors', { role: 'alert' });
  errors.hidden = true;

  function typeChoices() {
    const form = forms.find((f) => f.target === state.kind);
    const field = form && form.fields.find((f) => f.name === TYPE_FIELD[state.kind]);
    return field ? field.choices : [];
  }

  function paint() {
    kindBox.replaceChildren(...KINDS.map((k) =>
      h(`button.choice${state.kind === k ? '.on' : ''}`, { type: 'button', dataset: { kind: k }, onclick: () => { state.kind = k; state.type = ''; paint(); } }, t(`kind_${k}`))));
    const choices = typeChoices();
    typeField.hidden = !choices.length;
    typeBox.replaceChildren(...choices.map((c) =>
      h(`button.choice${state.type === c.value ? '.on' : ''}`, { type: 'button', dataset: { value: c.value }, onclick: () => { state.type = c.value; paint(); } }, pick(c.label))));
  }

  async function locateNow() {
    where.textContent = t('position_wait');
    locate.disabled = true;
    const p = await currentPosition({ timeout: 10000, maximumAge: 0 });
    locate.disabled = false;
    state.position = p;
    where.textContent = p ? t('position_value', { lat: p.lat.toFixed(6), lon: p.lon.toFixed(6), acc: Math.round(p.accuracy ?? 0) }) : t('position_failed');
  }

  async function save() {
    const problems = [];
    if (!state.kind) problems.push(t('kind_required'));
    if (!name.value.trim()) problems.push(t('name_required'));
    if (!state.position) problems.push(t('position_required'));
    errors.textContent = problems.join('；');
    errors.hidden = !problems.length;
    if (problems.length) return;
    const fields = {};
    if (state.type) fields[TYPE_FIELD[state.kind]] = state.type;
    const item = {
      type: 'facility',
      id: store.uuid(),
      village: villageCode,
      kind: state.kind,
      name: name.value.trim(),
      lat: state.position.lat,
      lon: state.position.lon,
      clock: await sync.nextClock(),
      fields,
    };
    await store.registerFacility(item, { owner: app.session.user.id, state: 'queued' });
    toast(t(navigator.onLine ? 'submitted_online' : 'submitted'));
    sync.requestBackgroundSync();
    if (navigator.onLine) sync.syncNow('register');
    app.go(`/new/facility/${encodeURIComponent(item.id)}`, { replace: true });
  }

  paint();
  const el = h('div',
    h('div.field', h('div.label', t('facility_kind')), kindBox),
    typeField,
    h('div.field', h('label.label', { htmlFor: 'facility-name' }, t('facility_name')), name),
    h('div.field', h('div.label', t('facility_position')), where, h('div', { style: 'margin-top:8px' }, locate)),
    errors,
  );
  const mounted = app.mount(seq, el, {
    title: `${t('register_title')}${v ? ` · ${v.name}` : ''}`,
    back: `/village/${villageCode}`,
    actions: [h('button.btn.primary', { type: 'button', id: 'save-facility', onclick: save }, t('save_and_inspect'))],
  });
  if (mounted) locateNow();
}
