// client_pwa/js/clock.js: the rules of sync/clock.py, and (through tests/test_js.py) the same
// answers as Python for generated event sequences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { MAX_COUNTER, MAX_WALL_MS, decode, encode, receive, tick, validDevice } from '../../client_pwa/js/clock.js';

const NOW = 1_795_000_000_000;
const YEAR_MS = 365 * 24 * 60 * 60 * 1000;

test('encode has fixed-width fields and decode inverts it', () => {
  assert.equal(encode({ wallMs: NOW, counter: 10, device: 'phone-1' }), '1795000000000-000a-phone-1');
  assert.equal(encode({ wallMs: 0, counter: 0, device: 'x' }), '0000000000000-0000-x');
  assert.deepEqual(decode('0000000000042-00ff-a-b--c'), { wallMs: 42, counter: 255, device: 'a-b--c' });
});

test('decode refuses anything but the canonical spelling', () => {
  for (const text of ['', 'garbage', '000000000042-0000-a', '00000000000042-0000-a', '-000000000042-0000-a',
    '0000000000042--001-a', '0000000000042-000-a', '0000000000042-10000-a', '0000000000042-00FF-a',
    '0000000000042-0000-', '0000000000042-0000', '0000000000042-0000-a b', '0000000000042-0000-a\n',
    `0000000000042-0000-${'d'.repeat(65)}`, '0000000000042-0000-手机', '+000000000042-0000-a',
    '٠٠٠٠٠٠٠٠٠٠٠٤٢-0000-a', null, 42]) {
    assert.throws(() => decode(text), RangeError, JSON.stringify(text));
  }
});

test('clocks that cannot be encoded are refused', () => {
  for (const [wallMs, counter, device] of [[-1, 0, 'a'], [0, -1, 'a'], [0, MAX_COUNTER + 1, 'a'],
    [MAX_WALL_MS + 1, 0, 'a'], [0, 0, ''], [0, 0, 'a b'], [0, 0, 'x'.repeat(65)], [true, 0, 'a'], [0, 0, null], [1.5, 0, 'a']]) {
    assert.throws(() => encode({ wallMs, counter, device }), RangeError);
  }
  assert.throws(() => tick(null, NOW, 'a b'), RangeError);
});

test('device ids are printable ASCII up to 64 characters', () => {
  assert.ok(validDevice('3f2a-phone-1') && validDevice('x'.repeat(64)));
  assert.ok(!validDevice('x'.repeat(65)) && !validDevice('') && !validDevice('a\tb') && !validDevice(7));
});

test('tick: wall time first, then the counter when the wall clock stalls', () => {
  const first = tick(null, NOW, 'p');
  assert.equal(first, encode({ wallMs: NOW, counter: 0, device: 'p' }));
  assert.equal(tick(first, NOW, 'p'), encode({ wallMs: NOW, counter: 1, device: 'p' }));
  assert.equal(tick(decode(first), NOW - 5000, 'p'), encode({ wallMs: NOW, counter: 1, device: 'p' }));
});

test('counter overflow advances the wall by 1 ms and restarts the counter', () => {
  const last = encode({ wallMs: NOW, counter: MAX_COUNTER, device: 'p' });
  assert.equal(tick(last, NOW, 'p'), encode({ wallMs: NOW + 1, counter: 0, device: 'p' }));
  assert.equal(receive(null, last, NOW - 5, 'q'), encode({ wallMs: NOW + 1, counter: 0, device: 'q' }));
});

test('at the top of the range tick and receive saturate instead of throwing', () => {
  const top = encode({ wallMs: MAX_WALL_MS, counter: MAX_COUNTER, device: 'p' });
  assert.equal(tick(top, NOW, 'p'), top);
  assert.equal(tick(null, 10 ** 15, 'p'), encode({ wallMs: MAX_WALL_MS, counter: 0, device: 'p' }));
  assert.equal(receive(null, top, NOW, 'p'), top);
  assert.equal(receive(top, encode({ wallMs: MAX_WALL_MS, counter: MAX_COUNTER, device: 'q' }), 10 ** 15, 'p'), top);
  assert.equal(tick(null, -5, 'p'), encode({ wallMs: 0, counter: 0, device: 'p' }));
});

test('receive: max counter on a tie, counter reset on fresh wall time', () => {
  const last = encode({ wallMs: NOW, counter: 3, device: 'p' });
  const remote = encode({ wallMs: NOW, counter: 7, device: 'q' });
  assert.equal(receive(last, remote, NOW - 1, 'p'), encode({ wallMs: NOW, counter: 8, device: 'p' }));
  assert.equal(receive(last, remote, NOW + 5, 'p'), encode({ wallMs: NOW + 5, counter: 0, device: 'p' }));
});

test('a phone years behind still stamps after what it received', () => {
  const remote = encode({ wallMs: NOW, counter: 9, device: 'server' });
  const slow = NOW - 3 * YEAR_MS;
  let c = receive(null, remote, slow, 'slow-phone');
  assert.ok(c > remote);
  for (let i = 0; i < 100; i++) {
    const next = tick(c, slow, 'slow-phone');
    assert.ok(next > c);
    c = next;
  }
});

const fixture = process.env.VILLAGECHECK_JS_FIXTURES;
test('agrees with sync/clock.py on generated event sequences', { skip: !fixture && 'run through tests/test_js.py' }, () => {
  const runs = JSON.parse(readFileSync(`${fixture}/clock_cases.json`, 'utf8'));
  for (const run of runs) {
    let last = run.start;
    for (const step of run.steps) {
      last = step.remote === null ? tick(last, step.now, run.device) : receive(last, step.remote, step.now, run.device);
      assert.equal(last, step.expected);
    }
  }
  assert.ok(runs.length >= 50);
});
