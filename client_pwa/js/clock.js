// Hybrid logical clocks: the JavaScript twin of sync/clock.py.
//
// A clock is {wallMs, counter, device}, encoded as "{wall_ms:013d}-{counter:04x}-{device}" so
// that string order is clock order (device ids are printable ASCII, so JavaScript's UTF-16
// comparison, Python's and SQLite's agree). tick() and receive() take the last clock (encoded
// string, decoded object or null) and return the new one encoded: keep that string and send it.
// The current time is always passed in (nowMs), so this module is pure.

export const MAX_WALL_MS = 10 ** 13 - 1; // 13 decimal digits, year 2286
export const MAX_COUNTER = 0xffff; // 4 hex digits

const DEVICE = /^[\x21-\x7e]{1,64}$/; // printable ASCII, no whitespace
const ENCODED = /^([0-9]{13})-([0-9a-f]{4})-([\x21-\x7e]{1,64})$/;

/** True if `device` can be part of a clock. */
export function validDevice(device) {
  return typeof device === 'string' && DEVICE.test(device);
}

// Refuse clocks that could not be encoded, so every clock round-trips.
function make(wallMs, counter, device) {
  if (!Number.isSafeInteger(wallMs) || wallMs < 0 || wallMs > MAX_WALL_MS) {
    throw new RangeError(`wall_ms out of range: ${wallMs}`);
  }
  if (!Number.isInteger(counter) || counter < 0 || counter > MAX_COUNTER) {
    throw new RangeError(`counter out of range: ${counter}`);
  }
  if (!validDevice(device)) throw new RangeError(`invalid device id: ${JSON.stringify(device)}`);
  return Object.freeze({ wallMs, counter, device });
}

/** Fixed-width text form whose string order is exactly the clock order. */
export function encode(clock) {
  const { wallMs, counter, device } = make(clock.wallMs, clock.counter, clock.device);
  return `${String(wallMs).padStart(13, '0')}-${counter.toString(16).padStart(4, '0')}-${device}`;
}

/** Parse encode()'s output into {wallMs, counter, device}; anything else is a RangeError. */
export function decode(text) {
  const m = typeof text === 'string' ? ENCODED.exec(text) : null;
  if (m === null) throw new RangeError(`malformed clock: ${JSON.stringify(text)}`);
  return make(Number(m[1]), parseInt(m[2], 16), m[3]);
}

const asClock = (c) => (typeof c === 'string' ? decode(c) : c);

// Build a clock, carrying a counter overflow into wallMs (at most 1 ms ahead per 65 536 events).
// At the top of the range (year 2286) there is nothing left to advance to: saturate at the
// largest clock of the device rather than throw, as sync/clock.py does.
function carry(wallMs, counter, device) {
  if (counter <= MAX_COUNTER) return make(wallMs, counter, device);
  if (wallMs >= MAX_WALL_MS) return make(MAX_WALL_MS, MAX_COUNTER, device);
  return make(wallMs + 1, 0, device);
}

// A wall time inside the encodable range (a phone clock set absurdly far ahead reads as the top).
const wall = (nowMs) => Math.min(Math.max(nowMs, 0), MAX_WALL_MS);

/** Stamp a local event: later than `last` even if the wall clock went backwards. */
export function tick(last, nowMs, device) {
  const prev = last == null ? null : asClock(last);
  nowMs = wall(nowMs);
  if (prev === null || nowMs > prev.wallMs) return encode(make(nowMs, 0, device));
  return encode(carry(prev.wallMs, prev.counter + 1, device));
}

/** Stamp the receipt of `remote` (e.g. the `clock` of a pull or push answer): later than both. */
export function receive(last, remote, nowMs, device) {
  const r = asClock(remote);
  const l = last == null ? r : asClock(last);
  const w = Math.max(l.wallMs, r.wallMs, wall(nowMs));
  let counter = 0;
  if (w === l.wallMs && w === r.wallMs) counter = Math.max(l.counter, r.counter) + 1;
  else if (w === l.wallMs) counter = l.counter + 1;
  else if (w === r.wallMs) counter = r.counter + 1;
  return encode(carry(w, counter, device));
}
