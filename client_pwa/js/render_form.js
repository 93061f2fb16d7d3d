// Renders a form definition (docs/FORMS_FORMAT.md) as one column of big controls, and keeps
// what is shown in step with the answers: relevance, required marks and calculated values come
// from form_logic.fieldStates on every change; errors from form_logic.validate on submit.

import { fieldStates } from './form_logic.js';
import { t, pick } from './i18n.js';
import { currentPosition, h, icon, toast } from './screens/ui.js';

const isEmpty = (v) => v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0);

/**
 * Build the form. `answers` is changed in place; `onChange(name)` runs after each change.
 * `photos.add(file) → Promise<answer>` keeps a photo just taken; `photos.thumb(sha) → Promise<url|null>`.
 * Returns {el, update(), showErrors(errors) → first element with an error}.
 */
export function renderForm(definition, answers, { today, onChange, photos }) {
  const parts = new Map(); // name → {box, reqMark, errorsEl, refresh}
  const el = h('div.form');

  function changed(name, value) {
    if (isEmpty(value) && !Array.isArray(value)) delete answers[name];
    else answers[name] = value;
    const part = parts.get(name);
    if (part) setErrors(part, []);
    update();
    onChange(name);
  }

  for (const field of definition.fields) {
    const part = buildField(field, answers, changed, photos, definition);
    parts.set(field.name, part);
    el.append(part.box);
  }

  function update() {
    const states = fieldStates(definition, answers, { today });
    for (const [name, part] of parts) {
      const state = states[name] || { visible: true, required: false, value: null };
      part.box.hidden = !state.visible;
      if (part.reqMark) part.reqMark.hidden = !state.required;
      if (part.showValue) part.showValue(state.value);
      if (part.defaultToday && state.visible && !part.defaulted && isEmpty(answers[name])) {
        part.defaulted = true;
        part.defaultToday(today);
      }
    }
  }

  function showErrors(errors) {
    let first = null;
    for (const [name, part] of parts) {
      const list = (errors && errors[name]) || [];
      setErrors(part, list);
      if (list.length && !part.box.hidden && !first) first = part.box;
    }
    return first;
  }

  update();
  return { el, update, showErrors };
}

function setErrors(part, list) {
  part.errorsEl.textContent = list.map((e) => pick(e.message)).join('；');
  part.errorsEl.hidden = list.length === 0;
  part.box.classList.toggle('has-error', list.length > 0);
}

/** A calculated value as people read it: names of items (names_where) become their questions. */
export function calcText(definition, field, v) {
  if (isEmpty(v)) return t('no_value');
  if (Array.isArray(v)) {
    const byName = new Map(definition.fields.map((f) => [f.name, f]));
    return v.map((x) => (field.names_where && byName.has(x) ? pick(byName.get(x).label) : String(x))).join('、');
  }
  return String(v);
}

// A date the user almost always fills in with the day of the report (issue 12: the completion
// date of a monthly task defaults to today when it appears).
const TODAY_BY_DEFAULT = new Set(['completed_on']);

function buildField(field, answers, changed, photos, definition) {
  const id = `f-${field.name}`;
  const reqMark = h('span.req', `*${t('required_mark')}`);
  reqMark.hidden = true;
  const label = h('label.label', { htmlFor: id }, pick(field.label), reqMark);
  const hint = field.hint ? h('div.hint', pick(field.hint)) : null;
  const errorsEl = h('div.errors', { role: 'alert' });
  errorsEl.hidden = true;
  const box = h(`div.field.t-${field.type}`, { dataset: { field: field.name } });
  const part = { box, reqMark, errorsEl };

  if (field.type === 'note') {
    box.classList.add('note');
    box.append(pick(field.label));
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
  if (field.type === 'date' && TODAY_BY_DEFAULT.has(field.name) && !field.read_only) {
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
