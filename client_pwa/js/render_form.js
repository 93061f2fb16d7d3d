// Renders a form definition (docs/FORMS_FORMAT.md) as one column of big controls, and keeps
// what is shown in step with the answers: relevance, required marks, calculated values and the
// choices offered (choice_filter) come from form_logic.fieldStates on every change; errors from
// form_logic.validate on submit.
//
// A repeat group (issue 15) is a list of numbered instances (第 1 项, 第 2 项 …), each with its
// own inner fields, built by the same code as top-level fields on the instance's own answers
// object, so a photo field inside an instance captures, shows and deletes its photos exactly as
// a top-level one does. answers.rooms = [{...instance 1}, {...instance 2}] (the contract's shape).

import { MAX_REPEAT_INSTANCES, fieldStates, isTodayDefault, newInstance } from './form_logic.js';
import { t, pick } from './i18n.js';
import { currentPosition, h, icon, toast } from './screens/ui.js';

const isEmpty = (v) => v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0);

/** Every field of a definition, the inner fields of repeats included (after their repeat). */
export function allFields(definition) {
  const out = [];
  for (const f of definition.fields) {
    out.push(f);
    if (f.type === 'repeat') out.push(...(f.fields || []));
  }
  return out;
}

/** The sha256 of every photo answer inside a repeat instance (to forget them once removed). */
export function instancePhotos(repeat, instance) {
  const out = [];
  for (const f of repeat.fields || []) {
    if (f.type !== 'photo' || !Array.isArray(instance && instance[f.name])) continue;
    for (const p of instance[f.name]) if (p && p.sha256) out.push(p.sha256);
  }
  return out;
}

function setAnswer(target, name, value) {
  if (isEmpty(value) && !Array.isArray(value)) delete target[name];
  else target[name] = value;
}

/**
 * Build the form. `answers` is changed in place; `onChange(name)` runs after each change.
 * `photos.add(file) → Promise<answer>` keeps a photo just taken; `photos.thumb(sha) → Promise<url|null>`;
 * `photos.forget(shas)` (optional) drops the photos of a removed repeat instance.
 * `confirm(message) → boolean` asks before removing an instance with answers (window.confirm).
 * Returns {el, update(), showErrors(errors) → first element with an error}.
 */
export function renderForm(definition, answers, { today, now = () => null, onChange, photos, confirm = (m) => window.confirm(m) }) {
  const parts = new Map(); // name → part: {box, reqMark, errorsEl, apply(state), …}
  const el = h('div.form');
  const ctx = { definition, photos, today, confirm, update: () => update(), onChange: (name) => onChange(name) };

  function changed(name, value) {
    setAnswer(answers, name, value);
    const part = parts.get(name);
    if (part) setErrors(part, []);
    update();
    onChange(name);
  }

  for (const field of definition.fields) {
    const part = field.type === 'repeat'
      ? buildRepeat(field, answers, ctx)
      : buildField(field, answers, changed, photos, definition, `f-${field.name}`);
    parts.set(field.name, part);
    el.append(part.box);
  }

  // Repeat groups whose repeat_count shrank keep their last instances here, so that typing
  // "12" (which passes through "1") gives back instances 2 to 12 as they were.
  const stash = new Map();

  function update() {
    const states = settleAnswers(definition, answers, today, now, stash);
    const values = valuesOf(states);
    for (const [name, part] of parts) {
      applyState(part, states[name], answers, name, today, values);
    }
  }

  function showErrors(errors) {
    let first = null;
    for (const [name, part] of parts) {
      const found = part.showErrors ? part.showErrors(errors || {}) : showPartErrors(part, (errors && errors[name]) || []);
      if (found && !first) first = found;
    }
    return first;
  }

  update();
  return { el, update, showErrors };
}

const NO_STATE = { visible: true, required: false, value: null };

/** Show a field's state: relevance, required mark, calculated value, choices offered. */
function applyState(part, state = NO_STATE, target, name, today, values = {}) {
  part.box.hidden = !state.visible;
  if (part.relabel) part.relabel(values);
  if (part.reqMark) part.reqMark.hidden = !state.required;
  if (part.showValue) part.showValue(state.value);
  if (part.offer) part.offer(Array.isArray(state.choices) ? state.choices : null);
  if (part.paint) part.paint();
  if (part.apply) part.apply(state, values);
  if (part.defaultToday && state.visible && !part.defaulted && isEmpty(target[name])) {
    part.defaulted = true;
    part.defaultToday(today);
  }
}

function showPartErrors(part, list) {
  setErrors(part, list);
  return list.length && !part.box.hidden ? part.box : null;
}

/**
 * fieldStates, after making the answers agree with it: an answer no longer among the choices
 * offered (choice_filter) is cleared, and a repeat whose repeat_count gives n keeps exactly n
 * instances. Each change can change the states, so this runs until nothing changes.
 */
function settleAnswers(definition, answers, today, now, stash) {
  let states = fieldStates(definition, answers, { today, now: now() });
  for (let round = 0; round < 20; round += 1) {
    let moved = false;
    for (const field of definition.fields) {
      const state = states[field.name];
      if (!state) continue;
      if (field.type !== 'repeat') {
        moved = dropUnoffered(field, answers, state) || moved;
        continue;
      }
      if (state.visible && typeof state.count === 'number' && Number.isFinite(state.count)) {
        moved = fitCount(field, answers, state.count, stash) || moved;
      }
      const list = Array.isArray(answers[field.name]) ? answers[field.name] : [];
      (state.instances || []).forEach((inner, i) => {
        if (!list[i] || !inner) return;
        for (const f of field.fields || []) moved = dropUnoffered(f, list[i], inner[f.name]) || moved;
      });
    }
    if (!moved) break;
    states = fieldStates(definition, answers, { today, now: now() });
  }
  return states;
}

/** Clear a select answer (or the values of a select_many) the choice_filter no longer offers. */
function dropUnoffered(field, target, state) {
  if (!state || !Array.isArray(state.choices) || !(field.name in target)) return false;
  const offered = new Set(state.choices);
  const value = target[field.name];
  if (Array.isArray(value)) {
    const kept = value.filter((v) => offered.has(v));
    if (kept.length === value.length) return false;
    setAnswer(target, field.name, kept.length ? kept : null);
    return true;
  }
  if (isEmpty(value) || offered.has(value)) return false;
  delete target[field.name];
  return true;
}

/** Keep exactly n instances (repeat_count): add at the end, or set the last ones aside. */
function fitCount(repeat, answers, count, stash) {
  const n = Math.max(0, Math.min(MAX_REPEAT_INSTANCES, Math.trunc(count)));
  const list = Array.isArray(answers[repeat.name]) ? answers[repeat.name] : [];
  if (list.length === n) return false;
  const aside = stash.get(repeat.name) || [];
  stash.set(repeat.name, aside);
  const next = list.slice(0, n);
  if (list.length > n) aside.unshift(...list.slice(n));
  while (next.length < n) next.push(aside.length ? aside.shift() : newInstance(repeat));
  answers[repeat.name] = next;
  return true;
}

/** The error text of a field: its own required_message for a `required` error (issue 15). */
function errorText(spec, e) {
  if (e.code === 'required' && spec && spec.required_message) return pick(spec.required_message);
  return pick(e.message);
}

function setErrors(part, list) {
  part.errorsEl.textContent = list.map((e) => errorText(part.spec, e)).join('；');
  part.errorsEl.hidden = list.length === 0;
  part.box.classList.toggle('has-error', list.length > 0);
}

/**
 * A repeat group: its instances (第 n 项, each with its inner fields and 删除这一项), 添加一项,
 * and the errors of the group itself. Instances are rebuilt whenever the list of instance
 * objects changes (added, removed, or fitted to repeat_count); within an instance, the inner
 * fields are the ordinary ones, working on the instance's own answers object.
 */
function buildRepeat(repeat, answers, ctx) {
  const name = repeat.name;
  const reqMark = h('span.req', `*${t('required_mark')}`);
  reqMark.hidden = true;
  const errorsEl = h('div.errors', { role: 'alert' });
  errorsEl.hidden = true;
  const list = h('div.instances');
  const none = h('p.muted.small.repeat-none', t('repeat_none'));
  const most = Math.min(MAX_REPEAT_INSTANCES, Number.isInteger(repeat.max_count) ? repeat.max_count : MAX_REPEAT_INSTANCES);
  const maxNote = h('p.muted.small.repeat-max', t('repeat_max', { n: most }));
  maxNote.hidden = true;
  const add = h('button.btn.block.add-instance', { type: 'button', dataset: { repeat: name } }, `＋ ${t('repeat_add')}`);
  const box = h('div.field.t-repeat', { dataset: { field: name } },
    h('div.label', pick(repeat.label), reqMark),
    repeat.hint ? h('div.hint', pick(repeat.hint)) : null,
    list, none, add, maxNote, errorsEl);
  const part = { box, reqMark, errorsEl, spec: repeat };
  let instances = []; // {obj, el, parts: Map(inner name → part)}
  let fixedCount = false;

  const current = () => (Array.isArray(answers[name]) ? answers[name] : []);

  function buildInstance(obj, index) {
    const n = index + 1;
    const parts = new Map();
    const remove = h('button.btn.secondary.danger.remove-instance', { type: 'button' }, t('repeat_remove'));
    remove.addEventListener('click', () => removeInstance(obj));
    const el = h('div.instance', { dataset: { instance: String(n) } },
      h('div.instance-head', h('strong', t('repeat_instance', { n })), remove));
    const changed = (inner, value) => {
      setAnswer(obj, inner, value);
      const p = parts.get(inner);
      if (p) setErrors(p, []);
      ctx.update();
      ctx.onChange(name);
    };
    for (const field of repeat.fields || []) {
      const p = buildField(field, obj, changed, ctx.photos, ctx.definition, `f-${name}-${n}-${field.name}`);
      parts.set(field.name, p);
      el.append(p.box);
    }
    return { obj, el, parts, remove };
  }

  function rebuild() {
    const objs = current();
    instances = objs.map((obj, i) => buildInstance(obj, i));
    list.replaceChildren(...instances.map((x) => x.el));
  }

  function inStep() {
    const objs = current();
    return objs.length === instances.length && objs.every((obj, i) => instances[i].obj === obj);
  }

  function addInstance() {
    const objs = current();
    if (fixedCount || objs.length >= most) return;
    answers[name] = [...objs, newInstance(repeat)];
    setErrors(part, []);
    rebuild();
    ctx.update();
    ctx.onChange(name);
    const last = instances[instances.length - 1];
    if (last) last.el.scrollIntoView({ behavior: 'smooth', block: 'start' });
  }

  function removeInstance(obj) {
    const objs = current();
    const index = objs.indexOf(obj);
    if (index < 0 || fixedCount) return;
    // Values the form filled in itself (defaults, today's date) are not the inspector's work.
    const answered = (repeat.fields || []).some((f) => {
      const v = obj[f.name];
      if (isEmpty(v)) return false;
      if (isTodayDefault(f)) return v !== ctx.today;
      return f.default === undefined || JSON.stringify(v) !== JSON.stringify(f.default);
    });
    if (answered && !ctx.confirm(t('repeat_remove_confirm', { n: index + 1 }))) return;
    const shas = instancePhotos(repeat, obj);
    answers[name] = objs.filter((x) => x !== obj);
    setErrors(part, []);
    rebuild();
    ctx.update();
    ctx.onChange(name);
    // Only now, confirmed and saved: the removed instance's photos leave the draft for good.
    if (shas.length && ctx.photos && ctx.photos.forget) ctx.photos.forget(shas);
  }

  add.addEventListener('click', addInstance);

  part.apply = (state, values) => {
    if (!inStep()) rebuild();
    // repeat_count decides how many instances there are: no adding or removing by hand.
    fixedCount = typeof state.count === 'number' && Number.isFinite(state.count);
    const count = current().length;
    add.hidden = fixedCount;
    add.disabled = count >= most;
    maxNote.hidden = fixedCount || count < most;
    none.hidden = count > 0;
    instances.forEach((inst, i) => {
      inst.remove.hidden = fixedCount;
      const inner = (state.instances && state.instances[i]) || {};
      const seen = { ...values, ...valuesOf(inner) }; // an instance's own answers first
      for (const [innerName, p] of inst.parts) applyState(p, inner[innerName], inst.obj, innerName, ctx.today, seen);
    });
  };

  part.showErrors = (errors) => {
    let first = showPartErrors(part, errors[name] || []);
    instances.forEach((inst, i) => {
      for (const [innerName, p] of inst.parts) {
        const found = showPartErrors(p, errors[`${name}[${i + 1}].${innerName}`] || []);
        if (found && !first && !part.box.hidden) first = found;
      }
    });
    return first;
  };

  rebuild();
  return part;
}

/** A calculated value as people read it: names of items (names_where) become their questions. */
export function calcText(definition, field, v) {
  if (isEmpty(v)) return t('no_value');
  if (Array.isArray(v)) {
    const byName = new Map(allFields(definition).map((f) => [f.name, f]));
    return v.map((x) => (field.names_where && byName.has(x) ? pick(byName.get(x).label) : String(x))).join('、');
  }
  return String(v);
}

// A date the user almost always fills in with the day of the report (issue 12: the completion
// date of a monthly task defaults to today when it appears).
const TODAY_BY_DEFAULT = new Set(['completed_on']);

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

function valuesOf(states) {
  return Object.fromEntries(Object.entries(states || {}).map(([n, s]) => [n, s && s.value]));
}

/** A label's text with each ${name} replaced by that answer as shown (XLSForm's output). */
function spoken(definition, text, values) {
  if (!text.includes('${')) return text;
  const byName = new Map(allFields(definition).map((f) => [f.name, f]));
  return text.replace(REFERENCE, (whole, name) => {
    const field = byName.get(name);
    const v = values[name];
    if (!field || isEmpty(v)) return field ? '…' : whole;
    const one = (x) => {
      if (field.type === 'yes_no') return t(x ? 'yes' : 'no');
      const choice = (field.choices || []).find((c) => c.value === x);
      return choice ? pick(choice.label) : String(x);
    };
    return Array.isArray(v) ? v.map(one).join('、') : one(v);
  });
}

/** A text node for a label or hint that follows the answers it names. */
function liveText(definition, texts, part) {
  const node = document.createTextNode(pick(texts));
  if (pick(texts).includes('${')) {
    const previous = part.relabel;
    part.relabel = (values) => {
      if (previous) previous(values);
      node.data = spoken(definition, pick(texts), values);
    };
  }
  return node;
}

function buildField(field, answers, changed, photos, definition, id) {
  const reqMark = h('span.req', `*${t('required_mark')}`);
  reqMark.hidden = true;
  const part = { reqMark, spec: field };
  const label = h('label.label', { htmlFor: id }, liveText(definition, field.label, part), reqMark);
  const hint = field.hint ? h('div.hint', liveText(definition, field.hint, part)) : null;
  const errorsEl = h('div.errors', { role: 'alert' });
  errorsEl.hidden = true;
  const box = h(`div.field.t-${field.type}`, { dataset: { field: field.name } });
  Object.assign(part, { box, errorsEl });

  if (field.type === 'note') {
    box.classList.add('note');
    box.append(liveText(definition, field.label, part));
    return part;
  }
  if (field.type === 'calculate') {
    box.classList.add('calc');
    const value = h('div.value', t('no_value'));
    box.append(h('div.label', pick(field.label), h('span.muted', ` （${t('calculated')}）`)), value);
    part.showValue = (v) => {
      value.textContent = calcText(definition, field, v);
    };
    return part;
  }

  if (field.read_only && field.choices) {
    // Preset and not to be changed (task_kind, set from the task): show the value, not the list.
    const value = answers[field.name];
    const choiceLabel = (v) => pick((field.choices.find((c) => c.value === v) || { label: String(v ?? '') }).label);
    const text = Array.isArray(value) ? value.map(choiceLabel).join('、') : value == null ? t('no_value') : choiceLabel(value);
    box.append(label, h('div.readonly', { id, dataset: { value: Array.isArray(value) ? value.join(' ') : String(value ?? '') } }, text), errorsEl);
    return part;
  }
  const control = CONTROLS[field.type] || CONTROLS.text;
  box.append(label);
  if (hint) box.append(hint);
  const input = control(field, id, answers, (v) => changed(field.name, v), photos);
  box.append(input, errorsEl);
  if (input.paint) part.paint = input.paint;
  if (input.offer) part.offer = input.offer;
  if (field.type === 'date' && (TODAY_BY_DEFAULT.has(field.name) || isTodayDefault(field)) && !field.read_only) {
    part.defaultToday = (day) => {
      input.value = day;
      answers[field.name] = day;
      queueMicrotask(() => changed(field.name, day));
    };
  }
  return part;
}

function choiceList(field, id, name, { many, selected, onPick, disabled }) {
  const horizontal = field.appearance === 'horizontal' || field.type === 'yes_no';
  const list = h(`div.choices${horizontal ? '.horizontal' : ''}${field.type === 'yes_no' ? '.yesno' : ''}`, {
    role: many ? 'group' : 'radiogroup',
    id,
  });
  const options = field.type === 'yes_no'
    ? [{ value: true, label: t('yes') }, { value: false, label: t('no') }]
    : field.choices.map((c) => ({ value: c.value, label: pick(c.label) }));
  const rows = [];
  for (const option of options) {
    const input = h('input', { type: many ? 'checkbox' : 'radio', name, disabled });
    const row = h('label.choice', { 'aria-disabled': disabled ? 'true' : null, dataset: { value: String(option.value) } }, input, h('span', option.label));
    input.addEventListener('change', () => onPick(option.value, input.checked));
    rows.push({ row, input, option });
    list.append(row);
  }
  const paint = () => {
    const sel = selected();
    for (const { row, input, option } of rows) {
      const on = many ? (sel || []).includes(option.value) : sel === option.value;
      input.checked = on;
      row.classList.toggle('on', on);
      row.classList.toggle('fail', on && option.value === 'fail');
    }
  };
  paint();
  list.paint = paint;
  // choice_filter: only the choices offered are shown (null: all of them).
  list.offer = (values) => {
    const offered = values ? new Set(values) : null;
    for (const { row, option } of rows) row.hidden = offered !== null && field.type !== 'yes_no' && !offered.has(option.value);
  };
  return list;
}

const CONTROLS = {
  text(field, id, answers, set) {
    const attrs = { id, value: answers[field.name] ?? '', disabled: field.read_only, maxLength: 5000 };
    const input = field.appearance === 'multiline' ? h('textarea', attrs) : h('input', { type: 'text', ...attrs });
    input.addEventListener('input', () => set(input.value.trim() === '' ? null : input.value));
    return input;
  },

  integer(field, id, answers, set) {
    return numberInput(field, id, answers, set, 'numeric', '1');
  },

  decimal(field, id, answers, set) {
    return numberInput(field, id, answers, set, 'decimal', 'any');
  },

  yes_no(field, id, answers, set) {
    return singleChoice(field, id, answers, set);
  },

  select_one(field, id, answers, set) {
    return singleChoice(field, id, answers, set);
  },

  select_many(field, id, answers, set) {
    const list = choiceList(field, id, id, {
      many: true,
      selected: () => answers[field.name],
      onPick: (value, checked) => {
        const now = new Set(answers[field.name] || []);
        if (checked) now.add(value);
        else now.delete(value);
        // Keep the definition's order, as a person reads the list.
        set(field.choices.map((c) => c.value).filter((v) => now.has(v)));
        list.paint();
      },
      disabled: field.read_only,
    });
    return list;
  },

  date(field, id, answers, set) {
    const input = h('input', { type: 'date', id, value: answers[field.name] ?? '', disabled: field.read_only });
    input.addEventListener('change', () => set(input.value || null));
    return input;
  },

  datetime(field, id, answers, set) {
    const current = answers[field.name];
    const input = h('input', { type: 'datetime-local', id, value: current ? current.slice(0, 16) : '', disabled: field.read_only });
    input.addEventListener('change', () => {
      if (!input.value) return set(null);
      const d = new Date(input.value);
      const off = -d.getTimezoneOffset();
      const pad = (x) => String(Math.floor(Math.abs(x))).padStart(2, '0');
      set(`${input.value}:00${off >= 0 ? '+' : '-'}${pad(off / 60)}:${pad(off % 60)}`);
    });
    return input;
  },

  geopoint(field, id, answers, set) {
    const shown = h('div.muted');
    const paint = () => {
      const v = answers[field.name];
      shown.textContent = v ? t('position_value', { lat: v.lat, lon: v.lon, acc: v.accuracy ?? '?' }) : '';
    };
    const button = h('button.btn.block', { type: 'button', id, disabled: field.read_only }, t('get_position'));
    button.addEventListener('click', async () => {
      button.disabled = true;
      button.textContent = t('position_wait');
      const p = await currentPosition({ maximumAge: 0 });
      button.disabled = false;
      button.textContent = t('get_position');
      if (!p) {
        shown.textContent = t('position_failed');
        return;
      }
      set({ lat: p.lat, lon: p.lon, accuracy: p.accuracy });
      paint();
    });
    paint();
    return h('div.stack', button, shown);
  },

  photo(field, id, answers, set, photos) {
    const grid = h('div.photos');
    const max = field.max_count ?? 5;
    const input = h('input', { type: 'file', accept: 'image/*', capture: 'environment', id, multiple: false, disabled: field.read_only });
    const camera = h('label.camera', { htmlFor: id }, icon('camera'), h('span', t('take_photo')), input);
    input.addEventListener('change', async () => {
      const files = [...input.files];
      input.value = '';
      // Making a large photo smaller takes a moment: no second shot until this one is kept.
      input.disabled = true;
      camera.setAttribute('aria-busy', 'true');
      for (const file of files) {
        try {
          const answer = await photos.add(file);
          const list = (answers[field.name] || []).filter((p) => p.sha256 !== answer.sha256);
          set([...list, answer]);
        } catch (err) {
          console.error(err);
          toast(t('photo_failed'), { error: true });
        }
      }
      input.disabled = false;
      camera.removeAttribute('aria-busy');
      paint();
    });
    async function paint() {
      const list = answers[field.name] || [];
      const tiles = await Promise.all(list.map(async (p) => {
        const url = await photos.thumb(p.sha256);
        const meta = p.position
          ? h('span.meta', t('photo_position', { n: Math.round(p.position.accuracy ?? 0) }))
          : h('span.meta.nopos', t('photo_no_position'));
        const del = h('button.del', { type: 'button', 'aria-label': t('remove'), title: t('remove') }, '×');
        del.addEventListener('click', () => {
          set((answers[field.name] || []).filter((x) => x.sha256 !== p.sha256));
          paint();
        });
        return h('div.photo', { dataset: { sha256: p.sha256 } }, url ? h('img', { src: url, alt: '' }) : null, meta, field.read_only ? null : del);
      }));
      grid.replaceChildren(...tiles);
      if (!field.read_only && list.length < max) grid.append(camera);
    }
    paint();
    return grid;
  },
};

/** One choice of a list (yes_no, select_one): picking a value sets it and repaints the list. */
function singleChoice(field, id, answers, set) {
  const list = choiceList(field, id, id, {
    selected: () => answers[field.name],
    onPick: (value) => {
      set(value);
      list.paint();
    },
    disabled: field.read_only,
  });
  return list;
}

function numberInput(field, id, answers, set, inputmode, step) {
  const input = h('input', { type: 'number', id, inputMode: inputmode, step, value: answers[field.name] ?? '', disabled: field.read_only });
  input.setAttribute('inputmode', inputmode);
  input.addEventListener('input', () => {
    const raw = input.value.trim();
    if (raw === '') return set(null);
    const n = Number(raw);
    set(Number.isFinite(n) ? n : raw);
  });
  return input;
}
