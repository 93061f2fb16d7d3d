// Form rules on the phone: the JavaScript twin of CompiledForm.validate in forms/compiler.py.
//
// The renderer asks fieldStates() what to show on every change, and validate() before a
// submission goes to the outbox. validate() gives the same answers, error codes, messages and
// dropped list as the server (tests/test_js.py checks it on generated answer sets), so what the
// phone accepts the server accepts. A repeat's answer is a list of instance objects; each
// instance is settled with its own answers and position (errors keyed `rooms[2].field`), and
// outside it the repeat's values are node-sets. Definitions are trusted: the server checked them before
// publishing. `today` is the observation date "YYYY-MM-DD": `${observed_on}` and today();
// `now` (optional) the observation time with its offset, what now() gives (the server's
// validate(observed_at=...)); without it a rule calling now() is an `expression` error.

import { Nodeset, evaluate, references, truthy } from './expr.js';

const OBSERVED_ON = 'observed_on';
const ANSWER_TYPES = new Set(['text', 'integer', 'decimal', 'yes_no', 'select_one', 'select_many',
  'date', 'datetime', 'geopoint', 'photo']);
const LIST_TYPES = new Set(['select_many', 'photo']);
const MAX_TEXT = 5000;
const MAX_LIST = 100;
export const MAX_REPEAT_INSTANCES = 100;

/** A date field's default `today()`: filled with the day when the field first shows, not stored. */
export const isTodayDefault = (field) => field.type === 'date' && field.default === 'today()';

function withDefaults(fields, out) {
  for (const f of fields || []) if (f.default !== undefined && !isTodayDefault(f)) out[f.name] = f.default;
  return out;
}

/** A new instance of a repeat, with its fields' defaults. */
export function newInstance(repeat) {
  return withDefaults(repeat.fields, {});
}

/** A new draft's answers: the defaults, and each repeat's min_count instances. */
export function initialAnswers(definition) {
  const answers = withDefaults(definition.fields.filter((f) => f.type !== 'repeat'), {});
  for (const f of definition.fields) {
    const n = f.type === 'repeat' ? Math.min(Number.isInteger(f.min_count) ? f.min_count : 0, MAX_REPEAT_INSTANCES) : 0;
    if (n > 0) answers[f.name] = Array.from({ length: n }, () => newInstance(f));
  }
  return answers;
}
const REPEAT = 'repeat';

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
  if (type === REPEAT) return msg('请至少添加一项', 'Add at least one');
  return msg('必须填写', 'This is required');
}

const repeatCountMessages = (lo, hi) => [
  msg(`至少要添加 ${lo} 项`, `Add at least ${lo}`),
  msg(`最多只能添加 ${hi} 项`, `At most ${hi}`),
];
const repeatCountMessage = (expected, got) => msg(`应添加 ${expected} 项，现在是 ${got} 项`, `Needs exactly ${expected}, has ${got}`);
const MSG_REPEAT_TYPE = msg('重复组的内容格式不对', "A repeat's answer must be a list of objects");

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

// What a field's relevance, calculation and choice_filter read (they order evaluation).
function orderingRefs(spec) {
  const refs = new Set(spec.names_where ? spec.names_where.fields : []);
  for (const key of ['relevant', 'calculation', 'choice_filter']) {
    if (typeof spec[key] === 'string') for (const ref of references(spec[key])) refs.add(ref);
  }
  refs.delete(OBSERVED_ON);
  refs.delete(spec.name);
  return refs;
}

// Definition order, except that a field moves after the fields it reads.
function evaluationOrder(id, names, deps) {
  const order = [];
  const state = new Map();
  const visit = (name) => {
    if (state.get(name) === 2) return;
    if (state.get(name) === 1) throw new Error(`form ${id}: circular relevance/calculation at ${name}`);
    state.set(name, 1);
    for (const dep of names) if (deps.get(name).has(dep)) visit(dep);
    state.set(name, 2);
    order.push(name);
  };
  names.forEach(visit);
  return order;
}

function makeLevel(specs) {
  const fields = new Map(specs.map((spec) => [spec.name, spec]));
  const choices = new Map([...fields].map(([name, spec]) => [name, new Set((spec.choices || []).map((c) => c.value))]));
  return { fields, choices, order: [] };
}

// The top level and one level per repeat: fields by name, their choices, evaluation orders.
function compile(definition) {
  let form = compiledForms.get(definition);
  if (form) return form;
  const top = makeLevel(definition.fields);
  const levels = new Map();
  const innerOf = new Map();
  for (const [name, spec] of top.fields) {
    if (spec.type !== REPEAT) continue;
    const level = makeLevel(spec.fields);
    levels.set(name, level);
    for (const inner of level.fields.keys()) innerOf.set(inner, name);
  }
  const topDeps = new Map([...top.fields.keys()].map((name) => [name, new Set()]));
  for (const [rep, level] of levels) {
    const innerDeps = new Map();
    for (const [name, spec] of level.fields) {
      const refs = orderingRefs(spec);
      refs.delete(rep);
      innerDeps.set(name, new Set([...refs].filter((r) => innerOf.get(r) === rep)));
      for (const r of refs) {
        const node = innerOf.get(r) ?? r;
        if (node !== rep) topDeps.get(rep).add(node);
      }
    }
    level.order = evaluationOrder(definition.id, [...level.fields.keys()], innerDeps);
  }
  for (const [name, spec] of top.fields) {
    const refs = orderingRefs(spec);
    if (spec.type === REPEAT && typeof spec.repeat_count === 'string') {
      for (const ref of references(spec.repeat_count)) if (ref !== OBSERVED_ON) refs.add(ref);
    }
    for (const r of refs) {
      const node = innerOf.get(r) ?? r;
      if (node !== name) topDeps.get(name).add(node);
    }
  }
  top.order = evaluationOrder(definition.id, [...top.fields.keys()], topDeps);
  // select field name -> choice value -> Chinese label, for jr:choice-name() (as the server)
  const labels = Object.create(null);
  for (const level of [top, ...levels.values()]) {
    for (const [name, spec] of level.fields) {
      if (spec.type !== 'select_one' && spec.type !== 'select_many') continue;
      labels[name] = Object.create(null);
      for (const c of spec.choices) labels[name][c.value] = c.label.zh;
    }
  }
  form = { top, levels, labels };
  compiledForms.set(definition, form);
  return form;
}

// Evaluate a rule; a rule that cannot run must not crash the form. Returns [value, failed].
function run(source, env, ctx, { current = null, position = null, choice = null } = {}) {
  try {
    return [evaluate(source, env, { current, today: ctx.today, now: ctx.now, position, choice, labels: ctx.labels }), false];
  } catch {
    return [null, true];
  }
}

// A repeat_count result: a number or numeric text (as XPath's number() reads it), truncated
// into 0..100; null when it is not a number.
const NUMERIC_TEXT = /^[ \t\r\n]*-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[ \t\r\n]*$/;
function repeatCount(given) {
  const value = typeof given === 'string' && NUMERIC_TEXT.test(given) ? Number(given) : given;
  if (typeof value !== 'number' || !Number.isFinite(value)) return null;
  return Math.max(0, Math.min(MAX_REPEAT_INSTANCES, Math.trunc(value))) + 0;
}

function calculate(spec, env, ctx, key, position) {
  if (spec.names_where) {
    const { fields, equals } = spec.names_where;
    return fields.filter((name) => {
      const value = env[name];
      return value === equals || (Array.isArray(value) && value.includes(equals));
    });
  }
  const [value, failed] = run(spec.calculation, env, ctx, { position });
  if (failed) ctx.add(key, 'expression', MSG_EXPRESSION);
  return value;
}

// The choice values a choice_filter offers; a filter that cannot run offers the choice.
function offeredChoices(spec, env, ctx, key, position) {
  const keys = [...new Set(spec.choices.flatMap((c) => Object.keys(c.properties || {})))].sort();
  const offered = [];
  let failedOnce = false;
  for (const choice of spec.choices) {
    const props = choice.properties || {};
    const mapping = Object.create(null);
    for (const k of keys) mapping[k] = has(props, k) ? props[k] : null;
    mapping.name = choice.value;
    const [value, failed] = run(spec.choice_filter, env, ctx, { position, choice: mapping });
    if (failed && !failedOnce) {
      ctx.add(key, 'expression', MSG_EXPRESSION);
      failedOnce = true;
    }
    if (failed || truthy(value)) offered.push(choice.value);
  }
  return offered;
}

// Steps 1-3 of the compiler for one level: keys, shapes, then relevance and calculations in
// order. `env` holds what the level reads from outside; its own values are added as they settle.
function settleLevel(form, level, answers, env, ctx, position, prefix) {
  const loaded = Object.create(null);
  const bad = new Set();
  for (const [key, value] of Object.entries(answers)) {
    const spec = level.fields.get(key);
    if (key === OBSERVED_ON) ctx.add(prefix + key, 'read_only', MSG_READ_ONLY);
    else if (spec === undefined) ctx.add(prefix + key, 'unknown_field', MSG_UNKNOWN);
    else if (ANSWER_TYPES.has(spec.type)) {
      try {
        loaded[key] = readAnswer(spec, level.choices.get(key), value);
      } catch (e) {
        if (!(e instanceof Bad)) throw e;
        bad.add(key);
        if (e.message === 'choice') ctx.add(prefix + key, 'choice', MSG_CHOICE);
        else if (e.message === 'duplicate') ctx.add(prefix + key, 'duplicate', MSG_DUPLICATE_PHOTO);
        else ctx.add(prefix + key, 'type', TYPE_MESSAGES[e.message === 'type:text_long' ? 'text_long' : spec.type]);
      }
    } // note: nothing to store; calculate: recomputed; repeat: read when it settles
  }

  const settled = { env, relevant: Object.create(null), bad, position, prefix, repeats: new Map(), offered: new Map() };
  for (const name of level.order) {
    const spec = level.fields.get(name);
    const key = prefix + name;
    let shown = true;
    if ('relevant' in spec) {
      const [value, failed] = run(spec.relevant, env, ctx, { position });
      if (failed) ctx.add(key, 'expression', MSG_EXPRESSION);
      shown = failed || truthy(value);
    }
    settled.relevant[name] = shown;
    if (spec.type === 'calculate') {
      if (shown) {
        const value = calculate(spec, env, ctx, key, position);
        if (!isEmpty(value) || Array.isArray(value)) env[name] = value;
      }
      continue;
    }
    if (spec.type === 'note') continue;
    if (spec.type === REPEAT) {
      settleRepeat(form, spec, has(answers, name) ? answers[name] : null, shown, settled, ctx);
      continue;
    }
    if (!shown) {
      if (has(answers, name) && !isEmpty(answers[name])) ctx.dropped.push(key);
      ctx.errors.delete(key); // a hidden answer is dropped, not judged
      continue;
    }
    let value = loaded[name] ?? null;
    if ('choice_filter' in spec) {
      const offered = offeredChoices(spec, env, ctx, key, position);
      settled.offered.set(name, offered);
      if (!bad.has(name) && !isEmpty(value) && (Array.isArray(value) ? value : [value]).some((v) => !offered.includes(v))) {
        ctx.add(key, 'choice', MSG_CHOICE);
        bad.add(name);
      }
    }
    if (bad.has(name)) continue;
    if (LIST_TYPES.has(spec.type) && value === null) value = [];
    if (value !== null && (value !== '' || LIST_TYPES.has(spec.type))) env[name] = value;
  }
  return settled;
}

function settleRepeat(form, spec, answer, shown, parent, ctx) {
  const { name } = spec;
  const { env } = parent;
  const level = form.levels.get(name);
  // until settled (hidden, or a bad shape: for good), the repeat reads as no instances
  env[name] = new Nodeset([]);
  for (const inner of level.fields.keys()) env[inner] = new Nodeset([]);
  if (!shown) {
    if (!isEmpty(answer)) ctx.dropped.push(name);
    return;
  }
  let count = null;
  if ('repeat_count' in spec) {
    const [value, failed] = run(spec.repeat_count, env, ctx);
    if (failed) ctx.add(name, 'expression', MSG_EXPRESSION);
    else count = repeatCount(value);
  }
  const list = answer ?? [];
  if (!Array.isArray(list) || !list.every(isObject)) {
    ctx.add(name, 'type', MSG_REPEAT_TYPE);
    parent.repeats.set(name, { count, instances: [], cleaned: [], ok: false });
    return;
  }
  if (list.length > MAX_REPEAT_INSTANCES) {
    ctx.add(name, 'count', repeatCountMessages(0, MAX_REPEAT_INSTANCES)[1]);
    parent.repeats.set(name, { count, instances: [], cleaned: [], ok: false });
    return;
  }
  const sent = new Nodeset(list);
  const outside = Object.create(null);
  for (const [k, v] of Object.entries(env)) if (!level.fields.has(k)) outside[k] = v;
  const instances = [];
  const cleaned = [];
  list.forEach((instance, index) => {
    const innerEnv = Object.assign(Object.create(null), outside, { [name]: sent });
    const settled = settleLevel(form, level, instance, innerEnv, ctx, index + 1, `${name}[${index + 1}].`);
    instances.push(settled);
    const values = {};
    for (const [inner, innerSpec] of level.fields) {
      if (has(settled.env, inner) && innerSpec.type !== 'note') values[inner] = settled.env[inner];
    }
    cleaned.push(values);
  });
  env[name] = new Nodeset(cleaned);
  for (const inner of level.fields.keys()) env[inner] = new Nodeset(cleaned.map((c) => (has(c, inner) ? c[inner] : null)));
  parent.repeats.set(name, { count, instances, cleaned, ok: true });
}

function settle(definition, answers, today, now) {
  const form = compile(definition);
  // Maps and prototype-less objects: answer keys such as "__proto__" or "constructor" are data.
  const errors = new Map();
  const ctx = {
    today,
    now,
    labels: form.labels,
    errors,
    dropped: [],
    add(key, code, message) {
      if (!errors.has(key)) errors.set(key, []);
      errors.get(key).push(error(code, message));
    },
  };
  const env = Object.assign(Object.create(null), { [OBSERVED_ON]: today });
  const top = settleLevel(form, form.top, answers, env, ctx, null, '');
  return { form, ctx, top };
}

function isRequired(spec, env, ctx, key, current, position, report) {
  const required = spec.required ?? false;
  if (typeof required === 'boolean') return required;
  const [result, failed] = run(required, env, ctx, { current, position });
  if (failed && report) ctx.add(key, 'expression', MSG_EXPRESSION);
  return !failed && truthy(result);
}

// The environment in which an instance's required/constraint run: the form's final values,
// with the repeat's inner names meaning this instance.
function instanceEnv(level, repeatName, instance, topEnv) {
  const env = Object.assign(Object.create(null), topEnv, { [repeatName]: instance.env[repeatName] });
  for (const inner of level.fields.keys()) env[inner] = has(instance.env, inner) ? instance.env[inner] : null;
  return env;
}

// Step 4: required, constraint, counts; every level's values are settled now.
function checkLevel(form, level, settled, ctx) {
  const { env, position, prefix } = settled;
  for (const name of level.order) {
    const spec = level.fields.get(name);
    if (!settled.relevant[name] || settled.bad.has(name)) continue;
    if (spec.type === REPEAT) {
      checkRepeat(form, spec, settled, ctx);
      continue;
    }
    if (!ANSWER_TYPES.has(spec.type)) continue;
    const key = prefix + name;
    const value = env[name] ?? null;
    const required = isRequired(spec, env, ctx, key, value, position, true);
    if (isEmpty(value)) {
      if (required) ctx.add(key, 'required', spec.required_message ?? requiredMessage(spec.type, spec.min_count ?? 0));
      continue;
    }
    if ('constraint' in spec) {
      const [result, failed] = run(spec.constraint, env, ctx, { current: value, position });
      if (failed) ctx.add(key, 'expression', MSG_EXPRESSION);
      else if (!truthy(result)) ctx.add(key, 'constraint', spec.constraint_message ?? MSG_CONSTRAINT);
    }
    if (spec.type === 'photo') {
      const lo = spec.min_count ?? 0;
      const hi = spec.max_count ?? null;
      if (value.length < lo) ctx.add(key, 'count', msg(`请拍照，至少 ${lo} 张`, `Take at least ${lo} photo(s)`));
      else if (hi !== null && value.length > hi) ctx.add(key, 'count', msg(`照片太多，最多 ${hi} 张`, `At most ${hi} photo(s)`));
    }
  }
}

function checkRepeat(form, spec, top, ctx) {
  const { name } = spec;
  const result = top.repeats.get(name);
  if (!result.ok) return;
  const got = result.cleaned.length;
  const required = isRequired(spec, top.env, ctx, name, null, null, true);
  const lo = spec.min_count ?? 0;
  const hi = Math.min(spec.max_count ?? MAX_REPEAT_INSTANCES, MAX_REPEAT_INSTANCES);
  if (got === 0 && required) ctx.add(name, 'required', spec.required_message ?? requiredMessage(REPEAT, 0));
  else if (result.count !== null) {
    if (got !== result.count) ctx.add(name, 'repeat_count', repeatCountMessage(result.count, got));
  } else if (got) {
    const [few, many] = repeatCountMessages(lo, hi);
    if (got < lo) ctx.add(name, 'count', few);
    else if (got > hi) ctx.add(name, 'count', many);
  }
  const level = form.levels.get(name);
  result.instances.forEach((instance, index) => {
    const env = instanceEnv(level, name, instance, top.env);
    checkLevel(form, level, { ...instance, env, position: index + 1 }, ctx);
  });
}

function levelStates(level, settled, ctx, report) {
  const states = {};
  for (const [name, spec] of level.fields) {
    const visible = settled.relevant[name];
    const required = visible && ANSWER_TYPES.has(spec.type)
      && isRequired(spec, settled.env, ctx, settled.prefix + name, settled.env[name] ?? null, settled.position, report);
    states[name] = { visible, required, value: has(settled.env, name) ? settled.env[name] : null };
    if ('choice_filter' in spec) states[name].choices = settled.offered.get(name) ?? [];
  }
  return states;
}

/**
 * What to show for each field, in definition order:
 * {name: {visible, required, value, choices?}} — value is the cleaned answer or the calculated
 * value (null when none); choices, for a select with a choice_filter, the values offered.
 * Hidden fields are never required. A repeat gives {visible, required, value (the cleaned
 * instances), count (the number of instances to keep when repeat_count gives one, else null),
 * instances: [{inner name: state} per instance]}.
 */
export function fieldStates(definition, answers, { today, now = null }) {
  const { form, ctx, top } = settle(definition, isObject(answers) ? answers : {}, today, now);
  const states = levelStates(form.top, top, ctx, false);
  for (const [name, spec] of form.top.fields) {
    if (spec.type !== REPEAT) continue;
    const state = states[name];
    const result = top.repeats.get(name);
    const visible = state.visible;
    state.required = visible && isRequired(spec, top.env, ctx, name, null, null, false);
    state.value = visible && result && result.ok ? result.cleaned : null;
    state.count = visible && result ? result.count : null;
    const level = form.levels.get(name);
    state.instances = visible && result && result.ok ? result.instances.map((instance, index) => {
      const env = instanceEnv(level, name, instance, top.env);
      return levelStates(level, { ...instance, env, position: index + 1 }, ctx, false);
    }) : [];
  }
  return states;
}

/**
 * Check answers as the server will: {answers, errors, dropped, photos} — answers cleaned
 * (hidden ones removed, calculated values computed, empty ones omitted), errors
 * {field: [{code, message: {zh, en}}]} (inside a repeat `rooms[2].field`), dropped the keys of
 * hidden answers removed, photos every kept photo answer with its field (`rooms[2].photo`).
 */
export function validate(definition, answers, { today, now = null }) {
  if (!isObject(answers)) {
    return { answers: {}, errors: { _form: [error('type', TYPE_MESSAGES.form)] }, dropped: [], photos: [] };
  }
  const { form, ctx, top } = settle(definition, answers, today, now);
  checkLevel(form, form.top, top, ctx);
  const cleaned = {};
  const photos = [];
  for (const [name, spec] of form.top.fields) {
    if (spec.type === REPEAT) {
      const result = top.repeats.get(name);
      if (!result || !result.ok || !top.relevant[name]) continue;
      cleaned[name] = result.cleaned;
      const level = form.levels.get(name);
      result.cleaned.forEach((instance, index) => {
        for (const [inner, innerSpec] of level.fields) {
          if (innerSpec.type !== 'photo' || !has(instance, inner)) continue;
          for (const photo of instance[inner]) photos.push({ field: `${name}[${index + 1}].${inner}`, ...photo });
        }
      });
    } else if (has(top.env, name) && spec.type !== 'note') {
      cleaned[name] = top.env[name];
      if (spec.type === 'photo') for (const photo of top.env[name]) photos.push({ field: name, ...photo });
    }
  }
  return { answers: cleaned, errors: Object.fromEntries(ctx.errors), dropped: ctx.dropped, photos };
}
