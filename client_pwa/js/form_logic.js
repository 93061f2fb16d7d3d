// Form rules on the phone: the JavaScript twin of CompiledForm.validate in forms/compiler.py.
//
// The renderer asks fieldStates() what to show on every change, and validate() before a
// submission goes to the outbox. validate() gives the same answers, error codes, messages and
// dropped list as the server (tests/test_js.py checks it on generated answer sets), so what the
// phone accepts the server accepts. Definitions are trusted: the server checked them before
// publishing. `today` is the observation date "YYYY-MM-DD": `${observed_on}` and today().

import { evaluate, references, truthy } from './expr.js';

const OBSERVED_ON = 'observed_on';
const ANSWER_TYPES = new Set(['text', 'integer', 'decimal', 'yes_no', 'select_one', 'select_many',
  'date', 'datetime', 'geopoint', 'photo']);
const LIST_TYPES = new Set(['select_many', 'photo']);
const MAX_TEXT = 5000;
const MAX_LIST = 100;

// ---------------------------------------------------------------- messages (copied from the compiler)

const msg = (zh, en) => ({ zh, en });

const TYPE_MESSAGES = {
  text: msg('请填写文字', 'Enter text'),
  text_long: msg(`文字太长，最多 ${MAX_TEXT} 字`, `Text too long (at most ${MAX_TEXT})`),
  integer: msg('请填写整数（如 3）', 'Enter a whole number'),
  decimal: msg('请填写数字（如 3.5）', 'Enter a number'),
  yes_no: msg('请选择“是”或“否”', 'Choose yes or no'),
  select_one: msg('请从选项中选一项', 'Choose one of the options'),
  select_many: msg('请从选项中勾选', 'Choose from the options'),
  date: msg('日期格式不对，应为 年-月-日（如 2026-11-20）', 'Enter a date as YYYY-MM-DD'),
  datetime: msg('时间格式不对，应为 年-月-日T时:分:秒+08:00', 'Enter a date and time with its UTC offset'),
  geopoint: msg('位置格式不对（需要纬度、经度）', 'Location needs lat and lon'),
  photo: msg('照片信息格式不对，请重新拍照', 'Photo answer is malformed; retake the photo'),
  form: msg('提交的内容格式不对', 'Answers must be an object'),
};
const MSG_CHOICE = msg('不是可选的选项，请重新选择', 'Not one of the options');
const MSG_UNKNOWN = msg('表单里没有这一项', 'This form has no such question');
const MSG_READ_ONLY = msg('观察日期由系统填写，不能上传', 'observed_on is set by the server');
const MSG_CONSTRAINT = msg('填写的内容不符合要求，请检查', 'The answer is not allowed');
const MSG_DUPLICATE_PHOTO = msg('同一张照片重复上传了', 'The same photo is listed twice');
const MSG_EXPRESSION = msg('表单规则无法计算，请联系管理员', 'A rule of this form could not be evaluated');

function requiredMessage(type, minCount) {
  if (type === 'photo') {
    const n = Math.max(1, minCount);
    return msg(`请拍照，至少 ${n} 张`, `Take at least ${n} photo(s)`);
  }
  if (type === 'select_one' || type === 'yes_no') return msg('必须选择', 'Please choose');
  if (type === 'select_many') return msg('至少勾选一项', 'Choose at least one');
  return msg('必须填写', 'This is required');
}

const error = (code, message) => ({ code, message: { ...message } });

// ---------------------------------------------------------------- answer shapes

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const has = (object, key) => Object.prototype.hasOwnProperty.call(object, key);
const isEmpty = (v) => v === null || v === undefined || v === '' || (Array.isArray(v) && v.length === 0);

// Python's str.strip() whitespace (str.isspace), which differs from String.prototype.trim.
const PY_SPACE = '\\t\\n\\x0b\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');
const SHA256 = /^[0-9a-f]{64}$/;
const DATE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/;
// The canonical ISO 8601 forms (a subset of what Python's datetime.fromisoformat reads).
const DATETIME = /^([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]+)?)?(?:Z|[+-]([0-9]{2}):([0-9]{2}))$/;

class Bad extends Error {} // its message is the error kind, as the compiler's ValidationError

function validDate(text) {
  const m = DATE.exec(text);
  if (m === null) return false;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
  return year >= 1 && days !== undefined && day >= 1 && day <= days;
}

function checkDate(value) {
  if (typeof value !== 'string' || !validDate(value)) throw new Bad('type');
  return value;
}

function checkDatetime(value) {
  const m = typeof value === 'string' && value.length >= 19 && value.length <= 40 ? DATETIME.exec(value) : null;
  const inRange = (text, most) => text === undefined || Number(text) <= most;
  if (m === null || !validDate(m[1]) || !inRange(m[2], 23) || !inRange(m[3], 59) || !inRange(m[4], 59)
    || !inRange(m[5], 23) || !inRange(m[6], 59)) {
    throw new Bad('type');
  }
  return value;
}

const finiteNumber = (v) => typeof v === 'number' && Number.isFinite(v) && Math.abs(v) < 2 ** 53;

function checkPosition(value) {
  if (!isObject(value) || !has(value, 'lat') || !has(value, 'lon')) throw new Bad('type');
  if (Object.keys(value).some((k) => !['lat', 'lon', 'accuracy'].includes(k))) throw new Bad('type');
  const { lat, lon } = value;
  const acc = value.accuracy ?? null;
  if (!(finiteNumber(lat) && finiteNumber(lon) && lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180)) {
    throw new Bad('type');
  }
  if (acc !== null && !(finiteNumber(acc) && acc >= 0)) throw new Bad('type');
  return has(value, 'accuracy') ? { lat, lon, accuracy: acc } : { lat, lon };
}

function checkPhotos(value) {
  if (!Array.isArray(value) || value.length > MAX_LIST) throw new Bad('type');
  const seen = new Set();
  return value.map((item) => {
    if (!isObject(item) || !has(item, 'sha256')) throw new Bad('type');
    if (Object.keys(item).some((k) => !['sha256', 'captured_at', 'position'].includes(k))) throw new Bad('type');
    const sha = item.sha256;
    if (typeof sha !== 'string' || !SHA256.test(sha)) throw new Bad('type');
    if (seen.has(sha)) throw new Bad('duplicate');
    seen.add(sha);
    const captured = item.captured_at ?? null;
    if (captured !== null) checkDatetime(captured);
    const position = item.position == null ? null : checkPosition(item.position);
    return { sha256: sha, captured_at: captured, position };
  });
}

// One answer, shape-checked and cleaned (the compiler's marshmallow fields); throws Bad.
function readAnswer(spec, choices, value) {
  if (value === null || value === undefined) return null;
  switch (spec.type) {
    case 'text':
      if (typeof value !== 'string') throw new Bad('type');
      if ([...value].length > MAX_TEXT) throw new Bad('type:text_long');
      return value.replace(STRIP, '');
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value) || Math.abs(value) >= 2 ** 53) throw new Bad('type');
      return value + 0; // -0 becomes 0, like Python's int(-0.0)
    case 'decimal':
      // As the server reads it from JSON: a whole number below 1e21 travels as digits, becomes
      // a Python int and must stay below 2^53; from 1e21 up it travels as "1e+21", a float.
      if (typeof value !== 'number' || !Number.isFinite(value) || (Math.abs(value) >= 2 ** 53 && Math.abs(value) < 1e21)) {
        throw new Bad('type');
      }
      return value;
    case 'yes_no':
      if (typeof value !== 'boolean') throw new Bad('type');
      return value;
    case 'select_one':
      if (typeof value !== 'string') throw new Bad('type');
      if (value === '') return null;
      if (!choices.has(value)) throw new Bad('choice');
      return value;
    case 'select_many':
      if (!Array.isArray(value) || value.length > MAX_LIST || !value.every((v) => typeof v === 'string')) {
        throw new Bad('type');
      }
      if (value.some((v) => !choices.has(v))) throw new Bad('choice');
      return [...new Set(value)]; // duplicates collapse, order kept
    case 'date':
      return checkDate(value);
    case 'datetime':
      return checkDatetime(value);
    case 'geopoint':
      return checkPosition(value);
    default: // photo
      return checkPhotos(value);
  }
}

// ---------------------------------------------------------------- the compiled form

const compiledForms = new WeakMap();

// Fields by name, their choices, and the evaluation order: definition order, except that a
// field moves after the fields its relevance or calculation reads.
function compile(definition) {
  let form = compiledForms.get(definition);
  if (form) return form;
  const fields = new Map(definition.fields.map((spec) => [spec.name, spec]));
  const names = [...fields.keys()];
  const deps = new Map();
  for (const [name, spec] of fields) {
    const refs = new Set(spec.names_where ? spec.names_where.fields : []);
    for (const key of ['relevant', 'calculation']) {
      if (typeof spec[key] === 'string') for (const ref of references(spec[key])) refs.add(ref);
    }
    deps.set(name, names.filter((n) => refs.has(n)));
  }
  const order = [];
  const state = new Map();
  const visit = (name) => {
    if (state.get(name) === 2) return;
    if (state.get(name) === 1) throw new Error(`form ${definition.id}: circular relevance/calculation at ${name}`);
    state.set(name, 1);
    for (const dep of deps.get(name)) visit(dep);
    state.set(name, 2);
    order.push(name);
  };
  names.forEach(visit);
  const choices = new Map([...fields].map(([name, spec]) => [name, new Set((spec.choices || []).map((c) => c.value))]));
  form = { fields, order, choices };
  compiledForms.set(definition, form);
  return form;
}

// Evaluate a rule; a rule that cannot run must not crash the form. Returns [value, failed].
function run(source, env, today, current = null) {
  try {
    return [evaluate(source, env, { current, today }), false];
  } catch {
    return [null, true];
  }
}

function calculate(spec, env, today, add) {
  if (spec.names_where) {
    const { fields, equals } = spec.names_where;
    return fields.filter((name) => {
      const value = env[name];
      return value === equals || (Array.isArray(value) && value.includes(equals));
    });
  }
  const [value, failed] = run(spec.calculation, env, today);
  if (failed) add(spec.name, 'expression', MSG_EXPRESSION);
  return value;
}

// Steps 1-3 of the compiler: keys, shapes, then relevance and calculations in order.
function settle(definition, answers, today) {
  const form = compile(definition);
  // Maps and prototype-less objects: answer keys such as "__proto__" or "constructor" are data.
  const errors = new Map();
  const add = (name, code, message) => {
    if (!errors.has(name)) errors.set(name, []);
    errors.get(name).push(error(code, message));
  };
  const loaded = Object.create(null);
  const badType = new Set();
  for (const [key, value] of Object.entries(answers)) {
    const spec = form.fields.get(key);
    if (key === OBSERVED_ON) add(key, 'read_only', MSG_READ_ONLY);
    else if (spec === undefined) add(key, 'unknown_field', MSG_UNKNOWN);
    else if (ANSWER_TYPES.has(spec.type)) {
      try {
        loaded[key] = readAnswer(spec, form.choices.get(key), value);
      } catch (e) {
        if (!(e instanceof Bad)) throw e;
        badType.add(key);
        if (e.message === 'choice') add(key, 'choice', MSG_CHOICE);
        else if (e.message === 'duplicate') add(key, 'duplicate', MSG_DUPLICATE_PHOTO);
        else add(key, 'type', TYPE_MESSAGES[e.message === 'type:text_long' ? 'text_long' : spec.type]);
      }
    } // note: nothing to store; calculate: recomputed, what the phone holds is ignored
  }

  const env = Object.assign(Object.create(null), { [OBSERVED_ON]: today });
  const relevant = Object.create(null);
  const dropped = [];
  for (const name of form.order) {
    const spec = form.fields.get(name);
    let shown = true;
    if ('relevant' in spec) {
      const [value, failed] = run(spec.relevant, env, today);
      if (failed) add(name, 'expression', MSG_EXPRESSION);
      shown = failed || truthy(value);
    }
    relevant[name] = shown;
    if (spec.type === 'calculate') {
      if (shown) {
        const value = calculate(spec, env, today, add);
        if (!isEmpty(value) || Array.isArray(value)) env[name] = value;
      }
      continue;
    }
    if (spec.type === 'note') continue;
    if (!shown) {
      if (has(answers, name) && !isEmpty(answers[name])) dropped.push(name);
      errors.delete(name); // a hidden answer is dropped, not judged
      continue;
    }
    if (badType.has(name)) continue;
    let value = loaded[name] ?? null;
    if (LIST_TYPES.has(spec.type) && value === null) value = [];
    if (value !== null && (value !== '' || LIST_TYPES.has(spec.type))) env[name] = value;
  }
  return { form, errors, add, env, relevant, dropped, badType };
}

function isRequired(spec, env, today, add) {
  const required = spec.required ?? false;
  if (typeof required === 'boolean') return required;
  const [result, failed] = run(required, env, today, env[spec.name] ?? null);
  if (failed && add) add(spec.name, 'expression', MSG_EXPRESSION);
  return !failed && truthy(result);
}

/**
 * What to show for each field, in definition order:
 * {name: {visible, required, value}} — value is the cleaned answer or the calculated value
 * (null when none). Hidden fields are never required.
 */
export function fieldStates(definition, answers, { today }) {
  const { form, env, relevant } = settle(definition, isObject(answers) ? answers : {}, today);
  const states = {};
  for (const [name, spec] of form.fields) {
    const visible = relevant[name];
    const required = visible && ANSWER_TYPES.has(spec.type) && isRequired(spec, env, today, null);
    states[name] = { visible, required, value: has(env, name) ? env[name] : null };
  }
  return states;
}

/**
 * Check answers as the server will: {answers, errors, dropped, photos} — answers cleaned
 * (hidden ones removed, calculated values computed, empty ones omitted), errors
 * {field: [{code, message: {zh, en}}]}, dropped the names of hidden answers removed, photos
 * every kept photo answer with its field.
 */
export function validate(definition, answers, { today }) {
  if (!isObject(answers)) {
    return { answers: {}, errors: { _form: [error('type', TYPE_MESSAGES.form)] }, dropped: [], photos: [] };
  }
  const { form, errors, add, env, relevant, dropped, badType } = settle(definition, answers, today);
  for (const name of form.order) {
    const spec = form.fields.get(name);
    if (!ANSWER_TYPES.has(spec.type) || !relevant[name] || badType.has(name)) continue;
    const value = env[name] ?? null;
    const required = isRequired(spec, env, today, add);
    if (isEmpty(value)) {
      if (required) add(name, 'required', requiredMessage(spec.type, spec.min_count ?? 0));
      continue;
    }
    if ('constraint' in spec) {
      const [result, failed] = run(spec.constraint, env, today, value);
      if (failed) add(name, 'expression', MSG_EXPRESSION);
      else if (!truthy(result)) add(name, 'constraint', spec.constraint_message ?? MSG_CONSTRAINT);
    }
    if (spec.type === 'photo') {
      const lo = spec.min_count ?? 0;
      const hi = spec.max_count ?? null;
      if (value.length < lo) add(name, 'count', msg(`请拍照，至少 ${lo} 张`, `Take at least ${lo} photo(s)`));
      else if (hi !== null && value.length > hi) add(name, 'count', msg(`照片太多，最多 ${hi} 张`, `At most ${hi} photo(s)`));
    }
  }
  const cleaned = {};
  const photos = [];
  for (const [name, spec] of form.fields) {
    if (!has(env, name) || spec.type === 'note') continue;
    cleaned[name] = env[name];
    if (spec.type === 'photo') for (const photo of env[name]) photos.push({ field: name, ...photo });
  }
  return { answers: cleaned, errors: Object.fromEntries(errors), dropped, photos };
}
