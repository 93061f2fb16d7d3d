"""Hybrid logical clocks: a total order on events from phones whose wall clocks are wrong.

Pure logic: no I/O, and the current time is always passed in (`now_ms`).

A clock is (wall_ms, counter, device). `tick` stamps a local event, `receive` folds in a clock
seen from elsewhere; both return a clock strictly greater than every clock they were given, so
a phone whose wall clock is years behind still stamps its events after what it has seen.

The counter is bounded to 0..0xFFFF so the encoding keeps a fixed width. When it would
overflow, wall_ms is advanced by 1 ms and the counter restarts at 0; the clock then runs at
most 1 ms ahead of physical time per 65 536 events within one millisecond, which is harmless.

At the very top of the range (MAX_WALL_MS, the year 2286) there is nothing left to advance to:
`tick` and `receive` then saturate at the largest clock of the device instead of raising, and
a wall time beyond the range is read as MAX_WALL_MS. Only a wildly wrong or hostile clock gets
there; the server refuses to adopt such clocks (server/push.py re-stamps anything more than
CLOCK_AHEAD_MAX_HOURS ahead), so saturation is a last resort that keeps every caller working.

Device ids are 1..64 printable ASCII characters without whitespace (0x21..0x7E). They may
contain '-'. Keeping them ASCII makes encoded clocks sort identically in Python, SQLite
(BINARY collation) and JavaScript (UTF-16 comparison).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

MAX_WALL_MS = 10**13 - 1  # 13 decimal digits, year 2286
MAX_COUNTER = 0xFFFF  # 4 hex digits
MAX_DEVICE_LEN = 64

_DEVICE = r"[\x21-\x7e]{1,64}"  # printable ASCII, no whitespace; 64 = MAX_DEVICE_LEN
_DEVICE_RE = re.compile(_DEVICE)
_ENCODED_RE = re.compile(r"([0-9]{13})-([0-9a-f]{4})-(" + _DEVICE + ")")


def valid_device(device: object) -> bool:
    """True if `device` can be part of a clock (so callers can reject it before storing)."""
    return isinstance(device, str) and _DEVICE_RE.fullmatch(device) is not None


def _is_int(x: object) -> bool:
    """bool is an int in Python; a clock component must not be one."""
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True, order=True)
class Clock:
    """One HLC timestamp; compares by (wall_ms, counter, device), like its encoding."""

    wall_ms: int
    counter: int
    device: str

    def __post_init__(self) -> None:
        """Refuse clocks that could not be encoded, so every Clock round-trips."""
        if not _is_int(self.wall_ms) or not 0 <= self.wall_ms <= MAX_WALL_MS:
            raise ValueError(f"wall_ms out of range: {self.wall_ms!r}")
        if not _is_int(self.counter) or not 0 <= self.counter <= MAX_COUNTER:
            raise ValueError(f"counter out of range: {self.counter!r}")
        if not valid_device(self.device):
            raise ValueError(f"invalid device id: {self.device!r}")

    def __str__(self) -> str:
        return encode(self)


def encode(c: Clock) -> str:
    """Fixed-width text form whose string order is exactly the clock order."""
    return f"{c.wall_ms:013d}-{c.counter:04x}-{c.device}"


def decode(s: str) -> Clock:
    """Parse `encode`'s output; anything else (even a non-canonical spelling) is a ValueError."""
    if not isinstance(s, str):
        raise ValueError(f"malformed clock: {s!r}")
    return _decode_text(s)


@functools.lru_cache(maxsize=1 << 16)
def _decode_text(s: str) -> Clock:
    """Cached: merging a busy record decodes the same few clocks (its base) thousands of times;
    Clock is immutable, so sharing one is safe."""
    m = _ENCODED_RE.fullmatch(s)
    if m is None:
        raise ValueError(f"malformed clock: {s!r}")
    return Clock(int(m[1]), int(m[2], 16), m[3])


def _make(wall_ms: int, counter: int, device: str) -> Clock:
    """Build a clock, carrying a counter overflow into wall_ms (saturating at the top)."""
    if counter > MAX_COUNTER:
        if wall_ms >= MAX_WALL_MS:
            return Clock(MAX_WALL_MS, MAX_COUNTER, device)
        wall_ms, counter = wall_ms + 1, 0
    return Clock(wall_ms, counter, device)


def _wall(now_ms: int) -> int:
    """A wall time inside the encodable range."""
    return min(max(now_ms, 0), MAX_WALL_MS)


def tick(last: Clock | None, now_ms: int, device: str) -> Clock:
    """Stamp a local or send event: later than `last` even if the wall clock went backwards.

    Strictly later unless `last` is already the largest clock (see the module docstring).
    """
    now_ms = _wall(now_ms)
    if last is None or now_ms > last.wall_ms:
        return Clock(now_ms, 0, device)
    return _make(last.wall_ms, last.counter + 1, device)


def receive(last: Clock | None, remote: Clock, now_ms: int, device: str) -> Clock:
    """Stamp the receipt of `remote`: later than both `last` and `remote` (or saturated)."""
    now_ms = _wall(now_ms)
    if last is None:
        last = remote
    wall = max(last.wall_ms, remote.wall_ms, now_ms)
    if wall == last.wall_ms == remote.wall_ms:
        counter = max(last.counter, remote.counter) + 1
    elif wall == last.wall_ms:
        counter = last.counter + 1
    elif wall == remote.wall_ms:
        counter = remote.counter + 1
    else:
        counter = 0
    return _make(wall, counter, device)


def skew_ms(device_now_ms: int, server_now_ms: int) -> int:
    """How far the device's wall clock is ahead of the server's (negative: behind)."""
    return device_now_ms - server_now_ms
