"""Rules of the hybrid logical clock (sync/clock.py); pure, no I/O."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.clock import (
    MAX_COUNTER,
    MAX_WALL_MS,
    Clock,
    decode,
    encode,
    receive,
    skew_ms,
    tick,
    valid_device,
)

YEAR_MS = 365 * 24 * 60 * 60 * 1000
NOW = 1_795_000_000_000  # late 2026

devices = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1)
devices = devices.filter(lambda d: len(d) <= 64) | st.sampled_from(["a", "a-b", "phone-1", "-"])
walls = st.integers(min_value=0, max_value=MAX_WALL_MS // 2)
clocks = st.builds(Clock, walls, st.integers(0, MAX_COUNTER), devices)
events = st.lists(
    st.tuples(st.booleans(), walls, clocks),  # (is_receive, now_ms, remote)
    max_size=30,
)


def test_clock_orders_by_wall_then_counter_then_device():
    assert Clock(1, 9, "z") < Clock(2, 0, "a")
    assert Clock(1, 1, "z") < Clock(1, 2, "a")
    assert Clock(1, 1, "a") < Clock(1, 1, "b")


def test_encode_has_fixed_width_fields():
    assert encode(Clock(1_795_000_000_000, 10, "phone-1")) == "1795000000000-000a-phone-1"
    assert encode(Clock(0, 0, "x")) == "0000000000000-0000-x"


@given(clocks)
def test_decode_inverts_encode(c):
    assert decode(encode(c)) == c


@given(clocks, clocks)
def test_encoded_strings_sort_exactly_like_clocks(x, y):
    assert (encode(x) < encode(y)) == (x < y)
    assert (encode(x) == encode(y)) == (x == y)


def test_decode_splits_device_ids_containing_dashes():
    assert decode("0000000000042-00ff-a-b--c") == Clock(42, 255, "a-b--c")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "000000000042-0000-a",  # wall too short
        "00000000000042-0000-a",  # wall too long
        "-000000000042-0000-a",  # negative wall
        "0000000000042--001-a",  # negative counter
        "0000000000042-000-a",  # counter too short
        "0000000000042-10000-a",  # counter overflows 0xFFFF
        "0000000000042-00FF-a",  # non-canonical hex
        "0000000000042-0000-",  # empty device
        "0000000000042-0000",  # no device
        "0000000000042-0000-a b",  # whitespace in device
        "0000000000042-0000-a\n",  # trailing newline
        "0000000000042-0000-" + "d" * 65,  # device too long
        "0000000000042-0000-手机",  # non-ASCII device
        "+000000000042-0000-a",
        "٠٠٠٠٠٠٠٠٠٠٠٤٢-0000-a",  # non-ASCII digits
    ],
)
def test_decode_rejects_malformed_strings(text):
    with pytest.raises(ValueError):
        decode(text)


@pytest.mark.parametrize("text", [None, 42, b"0000000000042-0000-a"])
def test_decode_rejects_non_strings_with_value_error(text):
    with pytest.raises(ValueError):
        decode(text)


@pytest.mark.parametrize(
    "args",
    [(-1, 0, "a"), (0, -1, "a"), (0, MAX_COUNTER + 1, "a"), (MAX_WALL_MS + 1, 0, "a"),
     (0, 0, ""), (0, 0, "a b"), (0, 0, "x" * 65), (True, 0, "a"), (0, 0, None)],
)  # fmt: skip
def test_clock_refuses_values_that_cannot_be_encoded(args):
    with pytest.raises(ValueError):
        Clock(*args)


def test_device_ids_are_printable_ascii_up_to_64_chars():
    assert valid_device("3f2a-phone-1")
    assert valid_device("x" * 64)
    assert not valid_device("x" * 65)
    assert not valid_device("")
    assert not valid_device("a\tb")


def test_first_tick_uses_wall_time():
    assert tick(None, NOW, "p") == Clock(NOW, 0, "p")


def test_tick_with_stalled_wall_clock_bumps_counter():
    first = tick(None, NOW, "p")
    assert tick(first, NOW, "p") == Clock(NOW, 1, "p")


def test_counter_overflow_advances_wall_by_one_ms_and_resets():
    last = Clock(NOW, MAX_COUNTER, "p")
    assert tick(last, NOW, "p") == Clock(NOW + 1, 0, "p")
    assert receive(None, last, NOW - 5, "q") == Clock(NOW + 1, 0, "q")


def test_receive_takes_max_counter_when_walls_tie():
    last = Clock(NOW, 3, "p")
    assert receive(last, Clock(NOW, 7, "q"), NOW - 1, "p") == Clock(NOW, 8, "p")


def test_receive_with_fresh_wall_time_resets_counter():
    assert receive(Clock(NOW, 3, "p"), Clock(NOW, 7, "q"), NOW + 5, "p") == Clock(NOW + 5, 0, "p")


@given(st.none() | clocks, events, devices)
def test_every_tick_and_receive_is_after_everything_seen(start, steps, device):
    last = start
    for is_receive, now_ms, remote in steps:
        new = receive(last, remote, now_ms, device) if is_receive else tick(last, now_ms, device)
        if last is not None:
            assert new > last
        if is_receive:
            assert new > remote
        assert new.wall_ms >= now_ms
        assert decode(encode(new)) == new
        last = new


@given(clocks, st.integers(1, 30), st.integers(0, 100))
def test_device_years_behind_still_stamps_after_what_it_received(remote, years, ticks):
    now = max(0, remote.wall_ms - years * YEAR_MS)
    c = receive(None, remote, now, "slow-phone")
    assert c > remote
    for _ in range(ticks):
        nxt = tick(c, now, "slow-phone")
        assert nxt > c > remote
        c = nxt


TOP = Clock(MAX_WALL_MS, MAX_COUNTER, "p")
near_top = st.builds(
    Clock,
    st.integers(MAX_WALL_MS - 3, MAX_WALL_MS),
    st.integers(MAX_COUNTER - 3, MAX_COUNTER),
    devices,
)
any_now = st.integers(-(10**14), 10**15)


def test_the_largest_clock_saturates_instead_of_overflowing():
    assert tick(TOP, NOW, "p") == TOP
    assert receive(None, TOP, NOW, "p") == TOP
    assert receive(TOP, Clock(MAX_WALL_MS, MAX_COUNTER, "q"), NOW, "p") == TOP
    assert tick(None, 10**15, "p") == Clock(MAX_WALL_MS, 0, "p")
    assert tick(None, -5, "p") == Clock(0, 0, "p")


@given(st.none() | near_top | clocks, near_top | clocks, any_now, devices, st.booleans())
def test_tick_and_receive_never_raise_and_stay_ordered_below_the_top(
    last, remote, now_ms, device, is_receive
):
    new = receive(last, remote, now_ms, device) if is_receive else tick(last, now_ms, device)
    assert decode(encode(new)) == new
    saturated = (new.wall_ms, new.counter) == (MAX_WALL_MS, MAX_COUNTER)
    seen = [c for c in (last, remote if is_receive else None) if c is not None]
    assert all(new > c for c in seen) or saturated
    assert new.wall_ms >= min(max(now_ms, 0), MAX_WALL_MS)


def test_skew_is_device_minus_server():
    assert skew_ms(NOW + 1500, NOW) == 1500
    assert skew_ms(NOW - 2 * YEAR_MS, NOW) == -2 * YEAR_MS


# Exact steps, so a clock that jumps further than it must is caught (mutation testing found the
# properties above only require "later", not "the next one").


def test_tick_uses_the_last_counter_value_before_carrying_into_the_next_millisecond():
    assert tick(Clock(NOW, MAX_COUNTER - 1, "a"), NOW, "a") == Clock(NOW, MAX_COUNTER, "a")
    assert tick(Clock(NOW, MAX_COUNTER, "a"), NOW, "a") == Clock(NOW + 1, 0, "a")


def test_receive_steps_the_counter_by_exactly_one():
    ahead, behind = Clock(NOW, 7, "a"), Clock(NOW - 5, 3, "b")
    assert receive(ahead, behind, NOW - 10, "a") == Clock(NOW, 8, "a")  # own clock leads
    assert receive(behind, ahead, NOW - 10, "b") == Clock(NOW, 8, "b")  # remote leads
    assert receive(Clock(NOW, 2, "a"), Clock(NOW, 9, "b"), NOW, "a") == Clock(NOW, 10, "a")
    assert receive(ahead, behind, NOW + 1, "a") == Clock(NOW + 1, 0, "a")  # wall time leads
