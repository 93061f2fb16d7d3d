// Form expressions: the JavaScript twin of forms/expr.py (see docs/EXPRESSIONS.md).
//
// Same syntax, same values, same errors: both twins pass forms/expr_vectors.json. Internally a
// value is one of: null (no answer; '' is the same value), a boolean, a finite number or a
// non-empty string. Select-many answers are seen as their space-separated string, as in XLSForm.
// A repeat's values come in as a Nodeset (built by the caller, never by the evaluator): functions
// over node-sets (count, sum, join...) read its items, everything else reads its first item.

const MAX_DEPTH = 100; // deepest allowed syntax tree; keeps both twins clear of stack limits

export class ExprError extends Error {
  constructor(message, position = null) {
    super(position === null ? message : `${message} at column ${position + 1}`);
    this.name = 'ExprError';
    this.position = position;
  }
}

/** The values of one field across a repeat's instances (or the instance objects themselves). */
export class Nodeset {
  constructor(items = []) {
    this.items = Object.freeze([...items]);
    Object.freeze(this);
  }
}

// name -> [fewest, most] arguments; null means any number
export const FUNCTIONS = Object.freeze({
  if: [3, 3],
  selected: [2, 2],
  'count-selected': [1, 1],
  'string-length': [1, 1],
  today: [0, 0],
  true: [0, 0],
  false: [0, 0],
  not: [1, 1],
  number: [1, 1],
  int: [1, 1],
  round: [1, 2],
  coalesce: [2, 2],
  concat: [0, null],
  regex: [2, 2],
  // text
  contains: [2, 2],
  'starts-with': [2, 2],
  'ends-with': [2, 2],
  substr: [2, 3],
  'substring-before': [2, 2],
  'substring-after': [2, 2],
  translate: [3, 3],
  'normalize-space': [1, 1],
  string: [1, 1],
  join: [2, null],
  // maths
  pow: [2, 2],
  abs: [1, 1],
  sqrt: [1, 1],
  log: [1, 1],
  log10: [1, 1],
  exp: [1, 1],
  pi: [0, 0],
  ceiling: [1, 1],
  floor: [1, 1],
  // conversion and choices
  boolean: [1, 1],
  'boolean-from-string': [1, 1],
  'selected-at': [2, 2],
  // dates
  now: [0, 0],
  date: [1, 1],
  'decimal-date-time': [1, 1],
  'format-date': [2, 2],
  'format-date-time': [2, 2],
  // lists (select-many items) and other
  'count-non-empty': [1, 1],
  sum: [1, null],
  max: [1, null],
  min: [1, null],
  checklist: [2, null],
  'weighted-checklist': [2, null],
  once: [1, 1],
  random: [0, 0],
  uuid: [0, 1],
  // repeats (node-sets)
  count: [1, 1],
  'indexed-repeat': [3, 3],
  position: [1, 1], // only as position(..)
  // other
  digest: [2, 3],
  distance: [1, null],
  area: [1, 1],
});

// functions of XLSForm's library refused at parse time, with the reason (docs/EXPRESSIONS.md)
export const REFUSED = Object.freeze({
  pulldata: 'pulldata() reads a CSV file attached to the form; forms here have no '
    + 'attachments, so write the values as choices (with choice_filter) instead',
});

// binding power of binary operators, XPath order; unary minus binds tighter than all of them
const BINARY = {
  or: 1, and: 2, '=': 3, '!=': 3, '<': 4, '<=': 4, '>': 4, '>=': 4,
  '+': 5, '-': 5, '*': 6, div: 6, mod: 6,
};
const UNARY_BP = 7;
const has = (object, key) => Object.prototype.hasOwnProperty.call(object, key);

// ---------------------------------------------------------------- tokenizer

const TOKEN = new RegExp(
  [
    '(?<ws>[ \\t\\r\\n]+)',
    '(?<ref>\\$\\{[A-Za-z_][A-Za-z0-9_.-]*\\})',
    '(?<num>[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)',
    `(?<str>'[^']*'|"[^"]*")`,
    '(?<name>[A-Za-z_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)',
    '(?<op>!=|<=|>=|\\.\\.|[=<>+\\-*(),.])',
  ].join('|'),
  'y',
);

function tokenize(source) {
  const tokens = [];
  let pos = 0;
  while (pos < source.length) {
    TOKEN.lastIndex = pos;
    const m = TOKEN.exec(source);
    if (m === null) {
      const ch = String.fromCodePoint(source.codePointAt(pos));
      if (ch === "'" || ch === '"') throw new ExprError('unclosed string', pos);
      if (ch === '$') throw new ExprError('bad field reference, expected ${name}', pos);
      throw new ExprError(`unexpected character '${ch}'`, pos);
    }
    const kind = Object.keys(m.groups).find((k) => m.groups[k] !== undefined);
    if (kind !== 'ws') tokens.push({ kind, text: m[0], pos });
    pos = TOKEN.lastIndex;
  }
  tokens.push({ kind: 'end', text: '', pos: source.length });
  return tokens;
}

// ---------------------------------------------------------------- parser (Pratt)

const describe = (tok) => (tok.kind === 'end' ? 'end of expression' : `'${tok.text}'`);
const isOp = (tok, text) => tok.kind === 'op' && tok.text === text;

function deeper(depth, tok) {
  if (depth + 1 > MAX_DEPTH) {
    throw new ExprError(`expression nested deeper than ${MAX_DEPTH}`, tok.pos);
  }
  return depth + 1;
}

class Parser {
  constructor(source) {
    this.tokens = tokenize(source);
    this.i = 0;
    this.level = 0;
  }

  peek() {
    return this.tokens[this.i];
  }

  take() {
    return this.tokens[this.i++];
  }

  expect(text) {
    const tok = this.take();
    if (tok.text !== text || (tok.kind !== 'op' && tok.kind !== 'end')) {
      throw new ExprError(`expected '${text}' but found ${describe(tok)}`, tok.pos);
    }
  }

  // Parse operators binding tighter than minBp; return [node, tree depth].
  expression(minBp = 0) {
    this.level += 1;
    if (this.level > MAX_DEPTH) {
      throw new ExprError(`expression nested deeper than ${MAX_DEPTH}`, this.peek().pos);
    }
    let [left, depth] = this.prefix();
    for (;;) {
      const tok = this.peek();
      const op = (tok.kind === 'op' || tok.kind === 'name') && has(BINARY, tok.text) ? tok.text : null;
      if (op === null || BINARY[op] <= minBp) break;
      this.take();
      const [right, rightDepth] = this.expression(BINARY[op]);
      left = Object.freeze({ type: 'binary', op, left, right });
      depth = deeper(Math.max(depth, rightDepth), tok);
    }
    this.level -= 1;
    return [left, depth];
  }

  prefix() {
    const tok = this.take();
    if (tok.kind === 'num') {
      const value = Number(tok.text);
      if (!Number.isFinite(value)) throw new ExprError('number too large', tok.pos);
      return [Object.freeze({ type: 'num', value }), 1];
    }
    if (tok.kind === 'str') {
      return [Object.freeze({ type: 'str', value: tok.text.slice(1, -1) || null }), 1];
    }
    if (tok.kind === 'ref') return [Object.freeze({ type: 'ref', name: tok.text.slice(2, -1) }), 1];
    if (isOp(tok, '.')) return [Object.freeze({ type: 'current' }), 1];
    if (isOp(tok, '-')) {
      const [operand, depth] = this.expression(UNARY_BP);
      return [Object.freeze({ type: 'neg', operand }), deeper(depth, tok)];
    }
    if (isOp(tok, '(')) {
      const [inner, depth] = this.expression(0);
      this.expect(')');
      return [inner, deeper(depth, tok)];
    }
    if (tok.kind === 'name') {
      if (isOp(this.peek(), '(')) return this.call(tok);
      if (has(BINARY, tok.text)) {
        throw new ExprError(`operator '${tok.text}' is missing its left operand`, tok.pos);
      }
      return [Object.freeze({ type: 'name', name: tok.text }), 1];
    }
    if (isOp(tok, '..')) throw new ExprError("paths are not supported; '..' only in position(..)", tok.pos);
    if (tok.kind === 'end') throw new ExprError('unexpected end of expression', tok.pos);
    throw new ExprError(`unexpected ${describe(tok)}`, tok.pos);
  }

  call(name) {
    if (has(REFUSED, name.text)) throw new ExprError(REFUSED[name.text], name.pos);
    if (!has(FUNCTIONS, name.text)) throw new ExprError(`unknown function ${name.text}()`, name.pos);
    this.take(); // (
    if (name.text === 'position') { // XPath's position(..): the number of the repeat instance
      this.expect('..');
      this.expect(')');
      return [Object.freeze({ type: 'call', name: 'position', args: Object.freeze([]) }), 1];
    }
    const args = [];
    let depth = 0;
    if (!isOp(this.peek(), ')')) {
      for (;;) {
        const [arg, argDepth] = this.expression(0);
        args.push(arg);
        depth = Math.max(depth, argDepth);
        if (!isOp(this.peek(), ',')) break;
        this.take();
      }
    }
    this.expect(')');
    const [fewest, most] = FUNCTIONS[name.text];
    if (args.length < fewest || (most !== null && args.length > most)) {
      let wanted = fewest === most ? String(fewest) : `${fewest} to ${most}`;
      if (most === null) wanted = `at least ${fewest}`;
      throw new ExprError(`${name.text}() takes ${wanted} arguments, got ${args.length}`, name.pos);
    }
    if (name.text === 'weighted-checklist' && args.length % 2) {
      throw new ExprError('weighted-checklist() takes min, max, then value/weight pairs', name.pos);
    }
    if (name.text === 'digest') {
      for (const [arg, known, what] of [[args[1], DIGESTS, 'algorithm'], [args[2], ENCODINGS, 'encoding']]) {
        if (arg && arg.type === 'str' && !has(known, (arg.value || '').toLowerCase())) {
          throw new ExprError(`digest() has no ${what} '${arg.value || ''}'`, name.pos);
        }
      }
    }
    if (name.text === 'regex') {
      if (args[1].type !== 'str') {
        throw new ExprError('regex() needs a string literal as its pattern', name.pos);
      }
      try {
        compileRegex(args[1].value || '');
      } catch (e) {
        if (!(e instanceof RegexSubsetError)) throw e;
        throw new ExprError(`bad regex pattern (${e.message})`, name.pos);
      }
    }
    return [Object.freeze({ type: 'call', name: name.text, args: Object.freeze(args) }), deeper(depth, name)];
  }
}

// A small cache, like Python's lru_cache: forms re-evaluate on every keystroke.
function memo(limit, fn) {
  const cache = new Map();
  return (key) => {
    if (cache.has(key)) return cache.get(key);
    const value = fn(key);
    if (cache.size >= limit) cache.delete(cache.keys().next().value);
    cache.set(key, value);
    return value;
  };
}

const parseCached = memo(2048, (source) => {
  const parser = new Parser(source);
  if (parser.peek().kind === 'end') throw new ExprError('empty expression', 0);
  const [node] = parser.expression(0);
  const tok = parser.peek();
  if (tok.kind !== 'end') {
    throw new ExprError(`unexpected ${describe(tok)} after a complete expression`, tok.pos);
  }
  return node;
});

/** Parse once and cache; returns a frozen syntax tree. Throws ExprError. */
export function parse(source) {
  if (typeof source !== 'string') throw new ExprError('expression must be a string');
  return parseCached(source);
}

// Every node of an expression's tree.
function nodes(source) {
  const found = [];
  const stack = [parse(source)];
  while (stack.length) {
    const node = stack.pop();
    found.push(node);
    if (node.type === 'neg') stack.push(node.operand);
    else if (node.type === 'binary') stack.push(node.left, node.right);
    else if (node.type === 'call') stack.push(...node.args);
  }
  return found;
}

const referencesCached = memo(2048, (source) => new Set(nodes(source).filter((n) => n.type === 'ref').map((n) => n.name)));
const bareNamesCached = memo(2048, (source) => new Set(nodes(source).filter((n) => n.type === 'name').map((n) => n.name)));

/** The field names an expression reads (a new Set), so callers know what to re-evaluate. */
export function references(source) {
  return new Set(referencesCached(source));
}

/** The bare names (choice properties in a choice_filter) an expression reads (a new Set). */
export function bareNames(source) {
  return new Set(bareNamesCached(source));
}

/** True if the expression calls position(..) (it then needs the instance number). */
export function usesPosition(source) {
  return nodes(source).some((n) => n.type === 'call' && n.name === 'position');
}

// ---------------------------------------------------------------- values

const NUMERIC = /^[ \t\r\n]*-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[ \t\r\n]*$/;
const SPLIT = /[ \t\r\n]+/;
const YES_NO = { yes: true, true: true, no: false, false: false };

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

// Normalise an answer of any type to an internal value; never throws.
function load(value) {
  if (value === null || typeof value === 'boolean') return value;
  if (value instanceof Nodeset) return value.items.length ? load(value.items[0]) : null; // first item
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'string') return value || null;
  if (Array.isArray(value)) return value.map(itemText).filter(Boolean).join(' ') || null;
  if (isObject(value)) return Object.keys(value).length ? 'object' : null;
  return null;
}

function itemText(item) {
  if (Array.isArray(item)) return item.length ? 'object' : '';
  if (isObject(item)) return Object.keys(item).length ? 'object' : '';
  return text(load(item));
}

function text(value) {
  if (value === null) return '';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return String(value); // numbers: JavaScript's own printing is the reference
}

function number(value) {
  if (value === null) return null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'number') return value;
  if (NUMERIC.test(value)) return finite(Number(value));
  const parts = dateParts(value);
  return parts === null ? null : days(parts);
}

const finite = (x) => (Number.isFinite(x) ? x : null);

function bool(value) {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value !== 0;
  return value !== null;
}

/** XPath boolean() of a value: decides relevance, constraints and required-if. */
export function truthy(value) {
  return bool(load(value));
}

const out = (value) => (value === 0 ? 0 : value); // -0 leaves as 0, like Python's int(-0.0)

// ---------------------------------------------------------------- comparisons and arithmetic

function equal(a, b) {
  if (a === null || b === null) return a === null && b === null;
  if (typeof a === 'boolean' || typeof b === 'boolean') {
    if (typeof a === 'boolean' && typeof b === 'boolean') return a === b;
    const [flag, other] = typeof a === 'boolean' ? [a, b] : [b, a];
    if (typeof other === 'number') return (flag ? 1 : 0) === other;
    return has(YES_NO, other) && YES_NO[other] === flag;
  }
  if (typeof a === 'number' || typeof b === 'number') {
    const x = number(a);
    const y = number(b);
    return x !== null && y !== null && x === y;
  }
  return a === b;
}

function order(op, a, b) {
  if (a === null || b === null) return false;
  let x = a;
  let y = b;
  if (typeof a !== 'string' || typeof b !== 'string') {
    x = number(a);
    y = number(b);
    if (x === null || y === null) return false;
  } // two texts compare by UTF-16 code units, which is what < does on strings
  if (op === '<') return x < y;
  if (op === '<=') return x <= y;
  if (op === '>') return x > y;
  return x >= y;
}

function arithmetic(op, a, b) {
  const x = number(a);
  const y = number(b);
  if (x === null || y === null) return null;
  if (op === '+') return finite(x + y);
  if (op === '-') return finite(x - y);
  if (op === '*') return finite(x * y);
  if (y === 0) return null;
  return finite(op === 'div' ? x / y : x % y); // % is C fmod: the sign of the dividend
}

// Round half away from zero, with exactly the double steps forms/expr.py takes.
function round(x, digits) {
  if (x === null || digits === null) return null;
  const d = Math.max(-308, Math.min(308, Math.trunc(digits)));
  const scale = Number(`1e${Math.abs(d)}`);
  const scaled = d >= 0 ? Math.abs(x) * scale : Math.abs(x) / scale;
  if (!Number.isFinite(scaled) || scaled >= 2 ** 52) return x;
  let whole = Math.floor(scaled);
  if (scaled - whole >= 0.5) whole += 1;
  const result = d >= 0 ? whole / scale : whole * scale;
  return finite(result ? (x < 0 ? -result : result) : 0);
}

const trim = (s) => s.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
const tokens = (value) => text(value).split(SPLIT).filter(Boolean);
// A node-set outside the node-set functions reads as its first item (XPath's string value).
const scalar = (value) => (value instanceof Nodeset ? load(value) : value);
// A node-set's items as values (empty ones included); any other value is one item.
const items = (value) => (value instanceof Nodeset ? value.items.map(load) : [value]);

// ---------------------------------------------------------------- evaluator

/**
 * Evaluate to a JSON value (null, boolean, finite number or non-empty string).
 * `current` is `.`; `today` is "YYYY-MM-DD" (needed only if today() is reached).
 */
// `now` ("YYYY-MM-DDTHH:MM:SS+08:00") is needed only if now() is reached; `position` (the 1-based
// repeat instance) only by position(..); `choice` (a choice's properties plus `name`) only by bare
// names, as in a choice_filter.
export function evaluate(source, answers, {
  current = null, today = null, now = null, position = null, choice = null,
} = {}) {
  const node = typeof source === 'string' ? parse(source) : source;
  const ctx = {
    answers: answers || {}, current: load(current ?? null), rawCurrent: current ?? null, today, now,
    position: position ?? null, choice: choice ?? null,
  };
  return out(scalar(evalNode(node, ctx)));
}

function evalNode(node, ctx) {
  switch (node.type) {
    case 'num':
    case 'str':
      return node.value;
    case 'ref': {
      const value = has(ctx.answers, node.name) ? ctx.answers[node.name] : null;
      return value instanceof Nodeset ? value : load(value ?? null);
    }
    case 'current':
      return ctx.current;
    case 'name': {
      if (ctx.choice === null) {
        throw new ExprError(`bare name '${node.name}' reads a choice property, only in a choice_filter: `
          + `write \${${node.name}} for a field, '${node.name}' for text or ${node.name}() for a function`);
      }
      return load(has(ctx.choice, node.name) ? (ctx.choice[node.name] ?? null) : null);
    }
    case 'neg': {
      const x = number(scalar(evalNode(node.operand, ctx)));
      return x === null ? null : -x;
    }
    case 'binary': {
      const { op } = node;
      const left = scalar(evalNode(node.left, ctx));
      if (op === 'and') return bool(left) && bool(scalar(evalNode(node.right, ctx)));
      if (op === 'or') return bool(left) || bool(scalar(evalNode(node.right, ctx)));
      const right = scalar(evalNode(node.right, ctx));
      if (op === '=') return equal(left, right);
      if (op === '!=') return !equal(left, right);
      if (op === '<' || op === '<=' || op === '>' || op === '>=') return order(op, left, right);
      return arithmetic(op, left, right);
    }
    case 'call':
      return call(node, ctx);
    default:
      throw new ExprError(`not an expression: ${JSON.stringify(node)}`);
  }
}

const ISO_DATE = /^[0-9]{4}-[0-9]{2}-[0-9]{2}$/;

function call(node, ctx) {
  const { name, args } = node;
  if (name === 'if') return evalNode(bool(scalar(evalNode(args[0], ctx))) ? args[1] : args[2], ctx);
  if (name === 'coalesce') {
    const first = scalar(evalNode(args[0], ctx));
    return first !== null ? first : scalar(evalNode(args[1], ctx));
  }
  if (name === 'today') {
    if (typeof ctx.today !== 'string' || !ISO_DATE.test(ctx.today)) {
      throw new ExprError('today() needs evaluate(..., {today: "YYYY-MM-DD"})');
    }
    return ctx.today;
  }
  if (name === 'now') {
    const now = ctx.now;
    if (typeof now !== 'string' || dateParts(now) === null || !now.includes('T')) {
      throw new ExprError('now() needs evaluate(..., {now: "YYYY-MM-DDTHH:MM:SS+08:00"})');
    }
    return now;
  }
  if (name === 'once') return ctx.current !== null ? ctx.current : scalar(evalNode(args[0], ctx)); // the answer already there, else x
  if (name === 'distance' || name === 'area') { // geopoint objects are read as they are, not as text
    return geo(name, args.map((arg) => rawArgument(arg, ctx)));
  }
  if (name === 'position') {
    const position = number(load(ctx.position));
    if (position === null) throw new ExprError('position(..) is only defined inside a repeat instance');
    return position;
  }
  const raw = args.map((arg) => evalNode(arg, ctx));
  if (has(NODESET_FUNCTIONS, name)) return NODESET_FUNCTIONS[name](raw, args);
  const values = raw.map(scalar);
  switch (name) {
    case 'true':
      return true;
    case 'false':
      return false;
    case 'not':
      return !bool(values[0]);
    case 'selected': {
      const wanted = trim(text(values[1])); // as Enketo and JavaRosa: trimmed
      return Boolean(wanted) && tokens(values[0]).includes(wanted);
    }
    case 'count-selected':
      return tokens(values[0]).length;
    case 'string-length':
      return [...text(values[0])].length; // code points, like Python's len()
    case 'number':
      return number(values[0]);
    case 'int': {
      const x = number(values[0]);
      return x === null ? null : Math.trunc(x);
    }
    case 'round':
      return round(number(values[0]), values.length > 1 ? number(values[1]) : 0);
    case 'concat':
      return values.map(text).join('') || null;
    case 'contains':
    case 'starts-with':
    case 'ends-with':
    case 'substring-before':
    case 'substring-after':
    case 'translate':
    case 'normalize-space':
    case 'string':
    {
      const result = TEXT_FUNCTIONS[name](...values.map(text));
      return typeof result === 'boolean' ? result : result || null;
    }
    case 'substr':
      return substr(text(values[0]), values.slice(1));
    case 'pow':
    case 'abs':
    case 'sqrt':
    case 'log':
    case 'log10':
    case 'exp':
    case 'ceiling':
    case 'floor':
      return maths(MATH_FUNCTIONS[name], values.map(number));
    case 'pi':
      return Math.PI;
    case 'boolean':
      return bool(values[0]);
    case 'boolean-from-string': {
      const s = text(values[0]);
      return s === 'true' || s === '1';
    }
    case 'selected-at': {
      const items = tokens(values[0]);
      const n = number(values[1]);
      if (n === null || !(n >= 0 && n < items.length)) return null;
      return items[Math.trunc(n)];
    }
    case 'checklist':
      return within(values.slice(0, 2), values.slice(2).filter(bool).length);
    case 'weighted-checklist': {
      let total = 0;
      for (let i = 2; i + 1 < values.length; i += 2) {
        const w = bool(values[i]) ? number(values[i + 1]) : 0;
        if (w === null) return false;
        total += w;
      }
      return within(values.slice(0, 2), total);
    }
    case 'digest':
      return digest(...values.map(text));
    case 'random':
      return Math.random();
    case 'uuid':
      return uuid(values.length ? values[0] : null);
    case 'date': {
      const parts = dateParts(values[0]);
      return parts === null ? null : `${pad(parts[0], 4)}-${pad(parts[1], 2)}-${pad(parts[2], 2)}`;
    }
    case 'decimal-date-time': {
      const parts = dateParts(values[0]);
      return parts === null ? null : days(parts);
    }
    case 'format-date':
    case 'format-date-time': {
      const parts = dateParts(values[0]);
      return parts === null ? null : formatDate(parts, text(values[1])) || null;
    }
    case 'regex': {
      let pattern;
      try {
        pattern = compileRegex(args[1].value || '');
      } catch (e) { // only for trees built by hand
        throw new ExprError(`bad regex pattern (${e.message})`);
      }
      return pattern.test(text(values[0]));
    }
    default:
      throw new ExprError(`unknown function ${name}()`);
  }
}

// ---------------------------------------------------------------- the function library
// Text functions work on Unicode code points, like Python's str.

const chars = (s) => [...s];

function translate(s, source, target) {
  const table = new Map();
  const from = chars(source);
  const to = chars(target);
  from.forEach((ch, i) => {
    if (!table.has(ch)) table.set(ch, i < to.length ? to[i] : '');
  });
  return chars(s).map((ch) => (table.has(ch) ? table.get(ch) : ch)).join('');
}

const TEXT_FUNCTIONS = {
  contains: (a, b) => a.includes(b),
  'starts-with': (a, b) => a.startsWith(b),
  'ends-with': (a, b) => a.endsWith(b),
  'substring-before': (a, b) => (a.includes(b) ? a.slice(0, a.indexOf(b)) : ''),
  'substring-after': (a, b) => (a.includes(b) ? a.slice(a.indexOf(b) + b.length) : ''),
  translate,
  'normalize-space': (a) => a.split(SPLIT).filter(Boolean).join(' '),
  string: (a) => a,
};

// substr(s, start[, end]): code points start..end-1 (0-based, end exclusive), clamped.
function substr(s, bounds) {
  const numbers = bounds.map(number);
  if (numbers.some((n) => n === null)) return null;
  const cs = chars(s);
  const clamp = (n) => Math.max(0, Math.min(cs.length, Math.trunc(n)));
  const start = clamp(numbers[0]);
  const end = numbers.length > 1 ? clamp(numbers[1]) : cs.length;
  return cs.slice(start, end).join('') || null;
}

// join(sep, x): the items of x (a node-set or select-many); join(sep, a, b, ...): the values
// (node-sets give all their items); empty items left out.
function join(values) {
  const sep = text(scalar(values[0]));
  const parts = values.length === 2 && !(values[1] instanceof Nodeset)
    ? tokens(values[1]) : values.slice(1).flatMap(items).map(text);
  return parts.filter(Boolean).join(sep) || null;
}

const MATH_FUNCTIONS = {
  pow: Math.pow,
  abs: Math.abs,
  sqrt: (x) => (x >= 0 ? Math.sqrt(x) : null),
  log: (x) => (x > 0 ? Math.log(x) : null),
  log10: (x) => (x > 0 ? Math.log10(x) : null),
  exp: Math.exp,
  ceiling: Math.ceil,
  floor: Math.floor,
};

// A maths function of numbers; empty for a non-number, a domain error or an overflow.
function maths(fn, args) {
  if (args.some((x) => x === null)) return null;
  const result = fn(...args);
  return result === null ? null : finite(result);
}

// ---------------------------------------------------------------- lists and other
// A select-many (or any list answer) is this project's only list: sum/max/min/count-non-empty read
// its items; with several arguments, sum/max/min read the arguments themselves.

const UUID_CHARS = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

function aggregate(name, values) {
  const list = values.length === 1 && !(values[0] instanceof Nodeset) ? tokens(values[0]) : values.flatMap(items);
  const numbers = list.filter((v) => v !== null).map(number);
  if (!numbers.length) return name === 'sum' ? 0 : null;
  if (numbers.some((x) => x === null)) return null;
  if (name === 'sum') {
    let total = 0;
    for (const x of numbers) total += x;
    return finite(total);
  }
  return name === 'max' ? Math.max(...numbers) : Math.min(...numbers);
}

// count(ns): its items (instances of a repeat count even when empty); a value: 1 or 0.
function count(values) {
  const value = values[0];
  if (value instanceof Nodeset) return value.items.length;
  return value !== null ? 1 : 0;
}

// count-non-empty(ns): its non-empty items; of a select-many (or text): its items.
function countNonEmpty(values) {
  const value = values[0];
  if (value instanceof Nodeset) return items(value).filter((v) => v !== null).length;
  return tokens(value).length;
}

// indexed-repeat(${field}, ${repeat}, n): the field's value in instance n (1-based).
function indexedRepeat(values, args) {
  const [field, repeat] = values;
  const n = number(scalar(values[2]));
  if (n === null) return null;
  let list;
  if (field instanceof Nodeset) list = field.items;
  else if (repeat instanceof Nodeset && args[0].type === 'ref') {
    // inside an instance ${field} is that instance's value: read instance n's own object
    list = repeat.items.map((item) => (isObject(item) && has(item, args[0].name) ? item[args[0].name] : null));
  } else return null;
  const i = Math.trunc(n);
  return i >= 1 && i <= list.length ? load(list[i - 1] ?? null) : null;
}

const NODESET_FUNCTIONS = {
  count,
  'count-non-empty': countNonEmpty,
  sum: (values) => aggregate('sum', values),
  max: (values) => aggregate('max', values),
  min: (values) => aggregate('min', values),
  join,
  'indexed-repeat': indexedRepeat,
};

// checklist's test: min <= count <= max, where -1 (or empty) means no limit.
function within(bounds, count) {
  const [low, high] = bounds.map(number);
  return (low === null || low === -1 || count >= low) && (high === null || high === -1 || count <= high);
}

function randomInt(n) {
  const c = globalThis.crypto;
  if (c && c.getRandomValues) {
    const buf = new Uint32Array(1);
    c.getRandomValues(buf);
    return buf[0] % n;
  }
  return Math.floor(Math.random() * n);
}

function uuid(length) {
  if (length === null) {
    const h = Array.from({ length: 32 }, () => randomInt(16).toString(16));
    h[12] = '4';
    h[16] = '89ab'[randomInt(4)];
    const s = h.join('');
    return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
  }
  const n = number(length);
  if (n === null || !(n >= 1 && n <= 1000)) return null;
  return Array.from({ length: Math.trunc(n) }, () => UUID_CHARS[randomInt(UUID_CHARS.length)]).join('');
}

// ---------------------------------------------------------------- digest, distance, area

const DIGESTS = { md5: md5, 'sha-1': sha1, 'sha-256': sha256, 'sha-384': (b) => sha512(b, 384), 'sha-512': sha512 };
const ENCODINGS = { base64: true, hex: true };
const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

// UTF-8 bytes of a string; a lone surrogate as its own three bytes, like Python's surrogatepass.
function utf8(s) {
  const out = [];
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return out;
}

// ODK's digest(): the hash of the text's UTF-8 bytes, in base64 (default) or hex.
function digest(data, algorithm, encoding = 'base64') {
  const algo = algorithm.toLowerCase();
  const enc = encoding.toLowerCase();
  if (!has(DIGESTS, algo) || !has(ENCODINGS, enc)) return null;
  const bytes = DIGESTS[algo](utf8(data));
  if (enc === 'hex') return bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
  let result = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    result += BASE64[n >> 18] + BASE64[(n >> 12) & 63];
    result += i + 1 < bytes.length ? BASE64[(n >> 6) & 63] : '=';
    result += i + 2 < bytes.length ? BASE64[n & 63] : '=';
  }
  return result;
}

// Message padding shared by the Merkle-Damgard hashes: 0x80, zeros, then the bit length.
function padded(bytes, block, lengthBytes, littleEndian) {
  const out = bytes.slice();
  out.push(0x80);
  while ((out.length + lengthBytes) % block) out.push(0);
  const bits = BigInt(bytes.length) * 8n;
  const length = [];
  for (let i = 0; i < lengthBytes; i++) length.push(Number((bits >> BigInt(8 * i)) & 255n));
  return out.concat(littleEndian ? length : length.reverse());
}

const rotl = (x, n) => (x << n) | (x >>> (32 - n));
const rotr = (x, n) => (x >>> n) | (x << (32 - n));
const wordsBE = (bytes, at, n) => Array.from({ length: n }, (_, i) => (
  (bytes[at + 4 * i] << 24) | (bytes[at + 4 * i + 1] << 16) | (bytes[at + 4 * i + 2] << 8) | bytes[at + 4 * i + 3]));
const bytesBE = (words) => words.flatMap((w) => [(w >>> 24) & 255, (w >>> 16) & 255, (w >>> 8) & 255, w & 255]);

const MD5_S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const MD5_K = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0);

function md5(input) {
  const m = padded(input, 64, 8, true);
  const h = [0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476];
  for (let at = 0; at < m.length; at += 64) {
    const w = Array.from({ length: 16 }, (_, i) => m[at + 4 * i] | (m[at + 4 * i + 1] << 8)
      | (m[at + 4 * i + 2] << 16) | (m[at + 4 * i + 3] << 24));
    let [a, b, c, d] = h;
    for (let i = 0; i < 64; i++) {
      let f;
      let g;
      if (i < 16) [f, g] = [(b & c) | (~b & d), i];
      else if (i < 32) [f, g] = [(d & b) | (~d & c), (5 * i + 1) % 16];
      else if (i < 48) [f, g] = [b ^ c ^ d, (3 * i + 5) % 16];
      else [f, g] = [c ^ (b | ~d), (7 * i) % 16];
      const t = d;
      d = c;
      c = b;
      b = (b + rotl((a + f + MD5_K[i] + w[g]) | 0, MD5_S[(i >> 4) * 4 + (i % 4)])) | 0;
      a = t;
    }
    [a, b, c, d].forEach((v, i) => { h[i] = (h[i] + v) | 0; });
  }
  return h.flatMap((x) => [x & 255, (x >>> 8) & 255, (x >>> 16) & 255, (x >>> 24) & 255]);
}

function sha1(input) {
  const m = padded(input, 64, 8, false);
  const h = [0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476, 0xc3d2e1f0 | 0];
  for (let at = 0; at < m.length; at += 64) {
    const w = wordsBE(m, at, 16);
    for (let i = 16; i < 80; i++) w.push(rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1));
    let [a, b, c, d, e] = h;
    for (let i = 0; i < 80; i++) {
      let f;
      let k;
      if (i < 20) [f, k] = [(b & c) | (~b & d), 0x5a827999];
      else if (i < 40) [f, k] = [b ^ c ^ d, 0x6ed9eba1];
      else if (i < 60) [f, k] = [(b & c) | (b & d) | (c & d), 0x8f1bbcdc | 0];
      else [f, k] = [b ^ c ^ d, 0xca62c1d6 | 0];
      const t = (rotl(a, 5) + f + e + k + w[i]) | 0;
      [e, d, c, b, a] = [d, c, rotl(b, 30), a, t];
    }
    [a, b, c, d, e].forEach((v, i) => { h[i] = (h[i] + v) | 0; });
  }
  return bytesBE(h);
}

// The first 32 (64) bits of the fractional parts of the square and cube roots of the primes.
const PRIMES = [];
for (let n = 2; PRIMES.length < 80; n++) if (PRIMES.every((p) => n % p)) PRIMES.push(n);

// floor(frac(p^(1/k)) * 2^bits), exact, with BigInt integer roots.
function rootBits(p, k, bits) {
  const scaled = BigInt(p) << BigInt(k * bits);
  let lo = 0n;
  let hi = 1n << BigInt(bits + 8);
  while (lo < hi) { // the largest r with r^k <= p * 2^(k*bits)
    const mid = (lo + hi + 1n) >> 1n;
    if (mid ** BigInt(k) <= scaled) lo = mid;
    else hi = mid - 1n;
  }
  return lo & ((1n << BigInt(bits)) - 1n);
}

const SHA256_K = PRIMES.slice(0, 64).map((p) => Number(rootBits(p, 3, 32)) | 0);
const SHA256_H = PRIMES.slice(0, 8).map((p) => Number(rootBits(p, 2, 32)) | 0);

function sha256(input) {
  const m = padded(input, 64, 8, false);
  const h = SHA256_H.slice();
  for (let at = 0; at < m.length; at += 64) {
    const w = wordsBE(m, at, 16);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w.push((w[i - 16] + s0 + w[i - 7] + s1) | 0);
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + SHA256_K[i] + w[i]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      [hh, g, f, e, d, c, b, a] = [g, f, e, (d + t1) | 0, c, b, a, (t1 + t2) | 0];
    }
    [a, b, c, d, e, f, g, hh].forEach((v, i) => { h[i] = (h[i] + v) | 0; });
  }
  return bytesBE(h);
}

const MASK64 = (1n << 64n) - 1n;
const SHA512_K = PRIMES.map((p) => rootBits(p, 3, 64));
const SHA512_H = PRIMES.slice(0, 8).map((p) => rootBits(p, 2, 64));
// SHA-384's start: the square roots of the 9th to 16th primes
const SHA384_H = PRIMES.slice(8, 16).map((p) => rootBits(p, 2, 64));
const rotr64 = (x, n) => ((x >> n) | (x << (64n - n))) & MASK64;

function sha512(input, size = 512) {
  const m = padded(input, 128, 16, false);
  const h = (size === 384 ? SHA384_H : SHA512_H).slice();
  for (let at = 0; at < m.length; at += 128) {
    const w = [];
    for (let i = 0; i < 16; i++) {
      let x = 0n;
      for (let j = 0; j < 8; j++) x = (x << 8n) | BigInt(m[at + 8 * i + j]);
      w.push(x);
    }
    for (let i = 16; i < 80; i++) {
      const s0 = rotr64(w[i - 15], 1n) ^ rotr64(w[i - 15], 8n) ^ (w[i - 15] >> 7n);
      const s1 = rotr64(w[i - 2], 19n) ^ rotr64(w[i - 2], 61n) ^ (w[i - 2] >> 6n);
      w.push((w[i - 16] + s0 + w[i - 7] + s1) & MASK64);
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 80; i++) {
      const t1 = (hh + (rotr64(e, 14n) ^ rotr64(e, 18n) ^ rotr64(e, 41n)) + ((e & f) ^ (~e & MASK64 & g))
        + SHA512_K[i] + w[i]) & MASK64;
      const t2 = ((rotr64(a, 28n) ^ rotr64(a, 34n) ^ rotr64(a, 39n)) + ((a & b) ^ (a & c) ^ (b & c))) & MASK64;
      [hh, g, f, e, d, c, b, a] = [g, f, e, (d + t1) & MASK64, c, b, a, (t1 + t2) & MASK64];
    }
    [a, b, c, d, e, f, g, hh].forEach((v, i) => { h[i] = (h[i] + v) & MASK64; });
  }
  const out = [];
  for (const x of h.slice(0, size / 64)) for (let j = 7; j >= 0; j--) out.push(Number((x >> BigInt(8 * j)) & 255n));
  return out;
}

const EARTH_RADIUS = 6378100; // metres, JavaRosa's and Enketo's sphere
const POINT_NUMBER = /^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$/;
const WS_EDGES = /^[ \t\r\n]+|[ \t\r\n]+$/g;

// An argument as the answer itself: a reference or `.` unread, anything else evaluated.
function rawArgument(node, ctx) {
  if (node.type === 'ref') return has(ctx.answers, node.name) ? (ctx.answers[node.name] ?? null) : null;
  if (node.type === 'current') return ctx.rawCurrent;
  return scalar(evalNode(node, ctx));
}

const isCoordinate = (v) => typeof v === 'number';

function point(numbers) {
  const [lat, lon] = numbers;
  if (!(lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180)) return null;
  return [[lat, lon]];
}

// The points of a geopoint object, geopoint/geotrace/geoshape text ("lat lon alt acc" joined by
// ";") or a node-set of them; null if any point is malformed.
function points(value) {
  if (value instanceof Nodeset) {
    const found = [];
    for (const item of value.items) {
      const more = points(item);
      if (more === null) return null;
      found.push(...more);
    }
    return found;
  }
  if (isObject(value)) {
    if (!Object.keys(value).length) return [];
    if (!isCoordinate(value.lat) || !isCoordinate(value.lon)) return null;
    return point([value.lat, value.lon]);
  }
  const found = [];
  for (const part of (typeof value === 'string' ? value : text(load(value ?? null))).split(';')) {
    const trimmed = part.replace(WS_EDGES, '');
    if (!trimmed) continue;
    const words = trimmed.split(SPLIT);
    if (words.length < 2 || words.length > 4 || !words.every((w) => POINT_NUMBER.test(w))) return null;
    const numbers = words.map(Number);
    if (numbers.length === 4 && numbers[3] < 0) return null; // accuracy
    const p = point(numbers);
    if (p === null) return null;
    found.push(...p);
  }
  return found;
}

// distance(): metres along the points (great-circle legs on JavaRosa's sphere); area():
// square metres inside them (JavaRosa's projection and triangle fan). Empty with no points at all
// or a malformed one; 0 with too few.
function geo(name, values) {
  const all = [];
  for (const value of values) {
    const found = points(value);
    if (found === null) return null;
    all.push(...found);
  }
  if (!all.length) return null;
  if (name === 'distance') {
    let total = 0;
    for (let i = 1; i < all.length; i++) total += arc(...all[i - 1], ...all[i]) * EARTH_RADIUS;
    return total;
  }
  return area(all);
}

const radians = (deg) => (deg * Math.PI) / 180;

// The angle between two points: JavaRosa's spherical law of cosines, written with atan2 so that
// short legs do not lose digits in acos (both twins then agree to the last few bits).
function arc(lat1, lon1, lat2, lon2) {
  const p1 = radians(lat1);
  const p2 = radians(lat2);
  const dl = radians(lon1 - lon2);
  const cosine = Math.sin(p1) * Math.sin(p2) + Math.cos(p1) * Math.cos(p2) * Math.cos(dl);
  const across = Math.cos(p2) * Math.sin(dl);
  const along = Math.cos(p1) * Math.sin(p2) - Math.sin(p1) * Math.cos(p2) * Math.cos(dl);
  return Math.atan2(Math.sqrt(across * across + along * along), cosine);
}

function area(all) {
  if (all.length < 3) return 0;
  const metresPerDegree = (2 * EARTH_RADIUS * Math.PI) / 360;
  const [lat0, lon0] = all[0];
  const xs = all.slice(1).map(([lat, lon]) => (lon - lon0) * metresPerDegree * Math.cos(radians(lat)));
  const ys = all.slice(1).map(([lat]) => (lat - lat0) * metresPerDegree);
  let total = 0;
  for (let i = 1; i < xs.length; i++) total += (ys[i - 1] * xs[i] - xs[i - 1] * ys[i]) / 2;
  return Math.abs(total);
}

// ---------------------------------------------------------------- dates
// A date is ISO text "YYYY-MM-DD"; a date-time "YYYY-MM-DDTHH:MM[:SS[.fff]][Z|+HH:MM]". As numbers
// both are days since 1970-01-01 (a date-time: fractional days of its UTC instant), as in ODK.

const DATE_TEXT = /^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$/;
const MS_PER_DAY = 86400000;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const pad = (n, width) => String(n).padStart(width, '0');

// Days from 1970-01-01 to a proleptic Gregorian date (any year 1..9999), like Python's ordinals.
function epochDay(y, m, d) {
  const date = new Date(0);
  date.setUTCFullYear(y, m - 1, d);
  return Math.round(date.getTime() / MS_PER_DAY);
}

const MIN_DAY = epochDay(1, 1, 1);
const MAX_DAY = epochDay(9999, 12, 31);

// [y, m, d, H, M, S, ms, offset minutes] of a date, date-time or number of days; or null.
function dateParts(value) {
  let v = value;
  if (typeof v === 'string' && NUMERIC.test(v)) v = Number(v);
  if (typeof v === 'number') {
    if (!(Math.abs(v) < 1e7)) return null; // beyond years 1..9999 either way; also NaN, infinities
    const ms = Math.floor(v * MS_PER_DAY + 0.5);
    const day = Math.floor(ms / MS_PER_DAY);
    const rest = ms - day * MS_PER_DAY;
    if (day < MIN_DAY || day > MAX_DAY) return null;
    const date = new Date(0);
    date.setUTCFullYear(1970, 0, 1 + day);
    return [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(),
      Math.floor(rest / 3600000), Math.floor(rest / 60000) % 60, Math.floor(rest / 1000) % 60,
      rest % 1000, 0];
  }
  if (typeof v !== 'string') return null;
  const m = DATE_TEXT.exec(v);
  if (m === null) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const [hh, mi, ss] = [m[4], m[5], m[6]].map((g) => Number(g || 0));
  const ms = Number((m[7] || '0').padEnd(3, '0').slice(0, 3));
  const zone = m[8] || 'Z';
  const offset = zone === 'Z' ? 0 : (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  if (mo < 1 || mo > 12 || d < 1) return null;
  const check = new Date(0);
  check.setUTCFullYear(y, mo - 1, d);
  if (check.getUTCDate() !== d || check.getUTCMonth() !== mo - 1 || y < 1) return null;
  if (hh > 23 || mi > 59 || ss > 59 || Math.abs(offset) > 18 * 60) return null;
  return [y, mo, d, hh, mi, ss, ms, offset];
}

function days(parts) {
  const [y, mo, d, hh, mi, ss, ms, offset] = parts;
  return epochDay(y, mo, d) + ((hh * 60 + mi - offset) * 60000 + ss * 1000 + ms) / MS_PER_DAY;
}

// ODK's format-date codes: %Y %y %m %n %b %d %e %a %H %h %M %S %3; others stay as written.
function formatDate(parts, fmt) {
  const [y, mo, d, hh, mi, ss, ms] = parts;
  const weekday = (((epochDay(y, mo, d) + 4) % 7) + 7) % 7; // 1970-01-01 was a Thursday
  const codes = {
    Y: pad(y, 4), y: pad(y % 100, 2), m: pad(mo, 2), n: String(mo), b: MONTHS[mo - 1],
    d: pad(d, 2), e: String(d), a: WEEKDAYS[weekday], H: pad(hh, 2), h: String(hh),
    M: pad(mi, 2), S: pad(ss, 2), 3: pad(ms, 3),
  };
  return [...fmt].join('').replace(/%([\s\S])/gu, (all, c) => (has(codes, c) ? codes[c] : all));
}

// ---------------------------------------------------------------- regex subset
// The same subset and the same checks as forms/expr.py, translated for RegExp with the "u"
// flag: \d \w \s become explicit ASCII / JavaScript-whitespace classes, exactly as Python's
// translation spells them. The pattern is walked by code points, as Python walks its str.

class RegexSubsetError extends Error {}

const JS_SPACE = '\\t\\n\\x0b\\f\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff';
const CLASS_SHORTHANDS = { d: '0-9', w: 'A-Za-z0-9_', s: JS_SPACE };
const CONTROL = { n: ['\\n', '\n'], t: ['\\t', '\t'], r: ['\\r', '\r'] };
const SYNTAX = new Set('\\^$.|?*+()[]{}/');
const QUANTIFIER = /^\{([0-9]{1,4})(?:(,)([0-9]{1,4})?)?\}/;
const HEX4 = /^u([0-9A-Fa-f]{4})/;

const compileRegex = memo(256, (pattern) => new RegExp(translateRegex([...pattern]), 'u'));

function translateRegex(p) {
  const out = [];
  let i = 0;
  let groups = 0;
  let canRepeat = false;
  while (i < p.length) {
    const c = p[i];
    if (c === '\\') {
      let textOut;
      [textOut, , i] = escape(p, i, false);
      out.push(textOut);
      canRepeat = true;
    } else if (c === '[') {
      let textOut;
      [textOut, i] = charClass(p, i);
      out.push(textOut);
      canRepeat = true;
    } else if (c === '(') {
      if (p[i + 1] === '?' && p[i + 2] === ':') {
        out.push('(?:');
        i += 3;
      } else if (p[i + 1] === '?') {
        throw new RegexSubsetError(`only (...) and (?:...) groups are supported, at ${i}`);
      } else {
        out.push('(');
        i += 1;
      }
      groups += 1;
      canRepeat = false;
    } else if (c === ')') {
      if (groups === 0) throw new RegexSubsetError(`unbalanced ) at ${i}`);
      groups -= 1;
      out.push(')');
      i += 1;
      canRepeat = true;
    } else if ('*+?{'.includes(c)) {
      if (!canRepeat) throw new RegexSubsetError(`nothing to repeat at ${i}`);
      let q = c;
      if (c === '{') {
        const m = QUANTIFIER.exec(p.slice(i, i + 12).join(''));
        if (m === null) {
          throw new RegexSubsetError(`bad {n,m} repeat at ${i} (write \\{ for a literal {)`);
        }
        if (m[3] !== undefined && Number(m[3]) < Number(m[1])) {
          throw new RegexSubsetError(`repeat bounds out of order at ${i}`);
        }
        q = m[0];
      }
      i += q.length; // a quantifier is ASCII: one code point per character
      if (p[i] === '?') {
        q += '?';
        i += 1;
      }
      out.push(q);
      canRepeat = false;
    } else if ('|^$'.includes(c)) {
      out.push(c); // without the m flag, $ is the end of text only (Python needs \Z)
      i += 1;
      canRepeat = false;
    } else if (c === ']' || c === '}') {
      throw new RegexSubsetError(`write \\${c} for a literal ${c}, at ${i}`);
    } else if (c === '.') {
      out.push('.'); // with the u flag: one code point other than \n \r \u2028 \u2029
      i += 1;
      canRepeat = true;
    } else {
      out.push(c); // a literal; with the u flag only syntax characters may be escaped
      i += 1;
      canRepeat = true;
    }
  }
  if (groups) throw new RegexSubsetError('unclosed (');
  return out.join('');
}

// Translate the escape at p[i]; returns [RegExp text, the single character or null, next i].
function escape(p, i, inClass) {
  if (i + 1 >= p.length) throw new RegexSubsetError('pattern ends with a backslash');
  const c = p[i + 1];
  const lower = c.toLowerCase();
  if (has(CLASS_SHORTHANDS, lower)) {
    const body = CLASS_SHORTHANDS[lower];
    const upper = c !== lower;
    if (inClass) {
      if (upper) throw new RegexSubsetError(`\\${c} is not supported inside [...], at ${i}`);
      return [body, null, i + 2];
    }
    return [`[${upper ? '^' : ''}${body}]`, null, i + 2];
  }
  if (has(CONTROL, c)) return [CONTROL[c][0], CONTROL[c][1], i + 2];
  if (c === 'u') {
    const m = HEX4.exec(p.slice(i + 1, i + 6).join(''));
    if (m === null) throw new RegexSubsetError(`\\u needs four hex digits, at ${i}`);
    const code = parseInt(m[1], 16);
    // \u{...}: a surrogate stays one lone code point, as in Python, never half of a pair
    return [`\\u{${m[1]}}`, String.fromCharCode(code), i + 6];
  }
  if (SYNTAX.has(c) || (inClass && c === '-')) return [`\\${c}`, c, i + 2];
  throw new RegexSubsetError(`unsupported escape \\${c} at ${i}`);
}

function charClass(p, i) {
  const out = ['['];
  let j = i + 1;
  if (p[j] === '^') {
    out.push('^');
    j += 1;
  }
  const first = j;
  for (;;) {
    if (j >= p.length) throw new RegexSubsetError('unclosed [');
    if (p[j] === ']') {
      if (j === first) throw new RegexSubsetError(`empty [] at ${i}`);
      out.push(']');
      return [out.join(''), j + 1];
    }
    let [textOut, start, next] = classAtom(p, j, first);
    j = next;
    if (j + 1 < p.length && p[j] === '-' && p[j + 1] !== ']') {
      const [endText, end, afterEnd] = classAtom(p, j + 1, first);
      j = afterEnd;
      if (start === null || end === null) {
        throw new RegexSubsetError(`a range needs single characters at both ends, at ${j}`);
      }
      if (start.codePointAt(0) > end.codePointAt(0)) {
        throw new RegexSubsetError(`range out of order at ${j}`);
      }
      textOut = `${textOut}-${endText}`;
    }
    out.push(textOut);
  }
}

function classAtom(p, j, first) {
  const c = p[j];
  if (c === '\\') return escape(p, j, true);
  if (c === '[') throw new RegexSubsetError(`write \\[ for a literal [ inside [...], at ${j}`);
  if (c === '-' && j !== first && p[j + 1] !== ']') {
    throw new RegexSubsetError(`write \\- for a literal - inside [...], at ${j}`);
  }
  // ^ - | need escaping to stay literal; & and ~ are plain characters without the v flag
  return ['^-|'.includes(c) ? `\\${c}` : c, c, j + 1];
}
