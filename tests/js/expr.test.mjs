// client_pwa/js/expr.js: the shared vectors, the API rules, and (when tests/test_js.py
// provides them) Python's own answers to generated expressions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import {
  ExprError, FUNCTIONS, Nodeset, bareNames, evaluate, parse, references, truthy, usesPosition,
} from '../../client_pwa/js/expr.js';

const VECTORS = JSON.parse(readFileSync(new URL('../../forms/expr_vectors.json', import.meta.url), 'utf8'));
const TODAY = VECTORS.today;

// The case's answers, with {"$nodeset": [...]} values made node-sets.
const answersOf = (c) => Object.fromEntries(Object.entries(c.answers).map(([k, v]) => [
  k, v !== null && typeof v === 'object' && !Array.isArray(v) && '$nodeset' in v ? new Nodeset(v.$nodeset) : v]));

// JSON equality as tests/test_expr.py has it: numbers within 1e-9 (relative above 1), a
// boolean never equal to a number.
export function same(got, want) {
  if (typeof want === 'boolean' || typeof got === 'boolean' || want === null || got === null) {
    return got === want;
  }
  if (typeof want === 'number' && typeof got === 'number') {
    return Math.abs(got - want) <= 1e-9 * Math.max(1, Math.abs(got), Math.abs(want));
  }
  return typeof got === typeof want && got === want;
}

test('the vectors file has the expected shape', () => {
  assert.equal(VECTORS.version, 1);
  assert.equal(new Set(VECTORS.cases.map((c) => c.name)).size, VECTORS.cases.length);
  const called = new Set(VECTORS.cases.flatMap((c) => [...c.expr.matchAll(/([a-z][a-z0-9-]*)\(/g)].map((m) => m[1])));
  for (const name of Object.keys(FUNCTIONS)) assert.ok(called.has(name), name);
});

test('every shared vector', () => {
  const failures = [];
  for (const c of VECTORS.cases) {
    const options = {
      current: c.current ?? null, today: TODAY, now: VECTORS.now, position: c.position ?? null, choice: c.choice ?? null,
    };
    if ('error' in c) {
      const runs = [() => evaluate(c.expr, answersOf(c), options)];
      if (c.error === 'parse') runs.push(() => parse(c.expr));
      for (const run of runs) {
        try {
          run();
          failures.push(`${c.name}: no error`);
        } catch (e) {
          if (!(e instanceof ExprError)) failures.push(`${c.name}: ${e}`);
        }
      }
      continue;
    }
    let got;
    try {
      got = evaluate(c.expr, answersOf(c), options);
    } catch (e) {
      failures.push(`${c.name}: threw ${e}`);
      continue;
    }
    if (!same(got, c.result)) failures.push(`${c.name}: ${JSON.stringify(c.expr)} gave ${JSON.stringify(got)}`);
    if (c.references && JSON.stringify([...references(c.expr)].sort()) !== JSON.stringify([...c.references].sort())) {
      failures.push(`${c.name}: references ${[...references(c.expr)]}`);
    }
    if (c.bare_names && JSON.stringify([...bareNames(c.expr)].sort()) !== JSON.stringify([...c.bare_names].sort())) {
      failures.push(`${c.name}: bare names ${[...bareNames(c.expr)]}`);
    }
    if ('uses_position' in c && usesPosition(c.expr) !== c.uses_position) failures.push(`${c.name}: usesPosition`);
  }
  assert.deepEqual(failures, []);
  assert.ok(VECTORS.cases.length >= 300);
});

test('parse is cached and trees are frozen', () => {
  const node = parse('${a} + 1');
  assert.equal(parse('${a} + 1'), node);
  assert.ok(Object.isFrozen(node) && Object.isFrozen(node.left));
  assert.equal(evaluate(node, { a: 4 }, { today: TODAY }), 5);
});

test('ExprError says where', () => {
  assert.throws(() => parse('1 +* 2'), (e) => e instanceof ExprError && e.position === 3
    && e.message === "unexpected '*' at column 4");
  for (const [source, message] of [
    ['total(1)', 'unknown function total()'],
    ['if(1, 2)', 'if() takes 3 arguments, got 2'],
    ["'abc", 'unclosed string'],
    ['${a b}', 'bad field reference'],
    ['..', "'..' only in position(..)"],
    ['position(.)', "expected '..'"],
    ["regex(., '(?=a)')", 'bad regex pattern'],
  ]) {
    assert.throws(() => parse(source), (e) => e instanceof ExprError && e.message.includes(message), source);
  }
  assert.throws(() => parse(42), ExprError);
});

test('a bare name outside a choice_filter, position(..) outside a repeat', () => {
  assert.throws(() => evaluate('yes', {}, { today: TODAY }), (e) => e instanceof ExprError
    && e.message.includes("write ${yes} for a field, 'yes' for text"));
  assert.throws(() => evaluate('position(..)', {}, { today: TODAY }), (e) => e instanceof ExprError
    && e.message.includes('position(..) is only defined inside a repeat'));
  const ns = new Nodeset([1, 2]);
  assert.ok(Object.isFrozen(ns) && Object.isFrozen(ns.items));
  assert.deepEqual([...bareNames('size = 3 and name != ${a}')].sort(), ['name', 'size']);
});

test('and, or, if and coalesce short-circuit', () => {
  for (const source of ["false() and today() = ''", "true() or today() = ''", 'if(true(), 1, today())', 'coalesce(1, today())']) {
    assert.ok([true, false, 1].includes(evaluate(source, {}, {})), source);
  }
  assert.throws(() => evaluate("true() and today() = ''", {}, {}), /today/);
});

test('truthy is XPath boolean()', () => {
  const table = [[null, false], [undefined, false], ['', false], ['no', true], [0, false], [2, true],
    [true, true], [false, false], [[], false], [['a'], true], [{}, false], [{ lat: 1 }, true], [NaN, false]];
  for (const [value, expected] of table) assert.equal(truthy(value), expected, JSON.stringify(value));
});

test('answers are read as own properties only', () => {
  assert.equal(evaluate("${constructor} = ''", {}, { today: TODAY }), true);
  assert.equal(evaluate('${toString}', {}, { today: TODAY }), null);
  assert.equal(evaluate('${x}', { x: Infinity }, { today: TODAY }), null);
});

test('-0 comes out as 0', () => {
  assert.ok(Object.is(evaluate('-0', {}, { today: TODAY }), 0));
  assert.ok(Object.is(evaluate('int(-0.5)', {}, { today: TODAY }), 0));
});

test('references returns a fresh Set', () => {
  const refs = references("${a} + ${b} + '${c}'");
  assert.deepEqual([...refs].sort(), ['a', 'b']);
  refs.add('z');
  assert.deepEqual([...references("${a} + ${b} + '${c}'")].sort(), ['a', 'b']);
});

// A seeded generator keeps the fuzz tests reproducible.
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const randomText = (rand, alphabet, max) =>
  Array.from({ length: Math.floor(rand() * (max + 1)) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('');

test('parse throws nothing but ExprError', () => {
  const rand = rng(1);
  const alphabet = [..."${}()'\" .,=!<>+-*0123456789abcdefilmnorstuvx_[]\\^?|（村"];
  for (let n = 0; n < 3000; n++) {
    const source = randomText(rand, alphabet, 40);
    try {
      parse(source);
    } catch (e) {
      assert.ok(e instanceof ExprError, `${JSON.stringify(source)}: ${e}`);
    }
  }
});

test('regex patterns are refused or compile to a working RegExp', () => {
  const rand = rng(2);
  const alphabet = [...'ab0-9[]^$.|?*+(){},:=!\\dwsDWSbpu4e -😀'];
  for (let n = 0; n < 3000; n++) {
    const pattern = randomText(rand, alphabet, 16);
    let node;
    try {
      node = parse(`regex(., '${pattern}')`);
    } catch (e) {
      assert.ok(e instanceof ExprError, `${JSON.stringify(pattern)}: ${e}`);
      continue;
    }
    assert.equal(typeof evaluate(node, {}, { current: 'ab 09', today: TODAY }), 'boolean');
  }
});

// Written by tests/test_js.py: expressions and regex patterns with Python's results.
const fixture = process.env.VILLAGECHECK_JS_FIXTURES;
test('agrees with forms/expr.py on generated expressions', { skip: !fixture && 'run through tests/test_js.py' }, () => {
  const cases = JSON.parse(readFileSync(`${fixture}/expr_cases.json`, 'utf8'));
  const failures = [];
  for (const c of cases) {
    let got;
    try {
      got = { result: evaluate(c.expr, c.answers, { current: c.current, today: c.today }) };
    } catch (e) {
      got = { error: e instanceof ExprError ? 'ExprError' : String(e) };
    }
    const ok = 'error' in c.expected ? got.error === c.expected.error : 'result' in got && same(got.result, c.expected.result);
    if (!ok) failures.push(`${JSON.stringify(c)} -> ${JSON.stringify(got)}`);
  }
  assert.deepEqual(failures.slice(0, 10), []);
  assert.ok(cases.length > 1000);
});

// (whole code points: a lone surrogate is encoded as Python's surrogatepass does, to agree with the
// Python twin, where Buffer would write U+FFFD)
test('digest() matches node:crypto for every algorithm, message lengths 0 to 140 and non-ASCII', async () => {
  const { createHash } = await import('node:crypto');
  const algorithms = [['MD5', 'md5'], ['SHA-1', 'sha1'], ['SHA-256', 'sha256'], ['SHA-384', 'sha384'], ['SHA-512', 'sha512']];
  const failures = [];
  for (const n of [...Array(141).keys(), 200, 260]) {
    const data = n % 7 === 3 ? '村'.repeat(n) : [...'ab😀c'.repeat(n)].slice(0, n).join('');
    for (const [name, node] of algorithms) {
      for (const encoding of ['hex', 'base64']) {
        const got = evaluate(`digest(\${d}, '${name}', '${encoding}')`, { d: data }, { today: TODAY });
        const want = createHash(node).update(Buffer.from(data, 'utf8')).digest(encoding);
        if (got !== want) failures.push(`${name} ${encoding} ${n}`);
      }
    }
  }
  assert.deepEqual(failures.slice(0, 5), []);
});
