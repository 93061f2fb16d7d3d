"""Folding a batch of observations into a record at once (sync/merge.py `merge_batch`): the same
record and conflicts as folding them one at a time, wherever the batch is cut. Pure, no I/O."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from test_merge import DAY_MS, NOW, W, obs, observation_lists

from sync.clock import Clock
from sync.merge import RecordHistory, merge_batch, replay, window_bounds


def one_record(observations):
    return [o for o in observations if o.record_id == "toilet-1"]


def fold(history: RecordHistory, new, window_ms=W) -> RecordHistory:
    """`merge_batch`, then the history the store would hold afterwards."""
    result = merge_batch(history, new, window_ms)
    made = {c.id: (c, by) for c, by in result.conflicts}
    clocks = {o.id: o.clock for o in [*history.held, *new]}
    still_open = [(c, pair) for c, pair in history.open if c.id not in result.resolved] + [
        (c, (clocks[c.a], clocks[c.b])) for c, by in made.values() if by is None
    ]
    return RecordHistory(result.state, [*history.held, *new], still_open)


def summary(history: RecordHistory):
    return (
        json.dumps(history.state, sort_keys=True),
        sorted(c.id for c, _ in history.open),
    )


EMPTY = RecordHistory({}, [], [])


@settings(max_examples=300)
@given(observation_lists, st.data())
def test_any_cut_of_a_batch_gives_what_one_at_a_time_gives(observations, data):
    observations = one_record(observations)
    one_at_a_time = EMPTY
    for o in observations:
        one_at_a_time = fold(one_at_a_time, [o])
    cut = data.draw(st.integers(0, len(observations)))
    in_two = fold(fold(EMPTY, observations[:cut]), observations[cut:])
    assert summary(in_two) == summary(one_at_a_time)


@settings(max_examples=200)
@given(observation_lists)
def test_the_state_is_the_replay_of_everything_held(observations):
    observations = one_record(observations)
    half = len(observations) // 2
    held = fold(EMPTY, observations[:half])
    result = merge_batch(held, observations[half:])
    assert json.dumps(result.state, sort_keys=True) == json.dumps(
        replay(observations), sort_keys=True
    )


def test_two_offline_phones_in_one_batch_make_one_open_conflict():
    a = obs("a", Clock(NOW, 0, "p1"), {"sanitary": True})
    b = obs("b", Clock(NOW + 1000, 0, "p2"), {"sanitary": False})
    result = merge_batch(EMPTY, [a, b])
    [(conflict, by)] = result.conflicts
    assert (conflict.a, conflict.b, conflict.winner, by) == ("a", "b", "b", None)
    assert result.state["sanitary"]["value"] is False
    assert result.resolved == {}


def test_a_later_report_in_the_same_batch_that_saw_both_resolves_the_new_conflict():
    a = obs("a", Clock(NOW, 0, "p1"), {"sanitary": True})
    b = obs("b", Clock(NOW + 1000, 0, "p2"), {"sanitary": False})
    fix = obs("c", Clock(NOW + 2000, 0, "p3"), {"sanitary": True}, base={"sanitary": b.clock})
    [(conflict, by)] = merge_batch(EMPTY, [a, b, fix]).conflicts
    assert by == "c"


def test_a_held_open_conflict_is_resolved_by_a_report_that_saw_both_sides():
    a = obs("a", Clock(NOW, 0, "p1"), {"sanitary": True})
    b = obs("b", Clock(NOW + 1000, 0, "p2"), {"sanitary": False})
    held = fold(EMPTY, [a, b])
    fix = obs("c", Clock(NOW + 2000, 0, "p3"), {"sanitary": True}, base={"sanitary": b.clock})
    result = merge_batch(held, [fix])
    assert result.conflicts == []
    assert result.resolved == {held.open[0][0].id: "c"}


def test_a_report_just_outside_the_window_makes_no_conflict_and_one_just_inside_does():
    a = obs("a", Clock(NOW, 0, "p1"), {"sanitary": True})
    inside = obs("b", Clock(NOW + W, 0, "p2"), {"sanitary": False})
    outside = obs("c", Clock(NOW + W + 1, 0, "p3"), {"sanitary": False})
    assert len(merge_batch(EMPTY, [a, inside]).conflicts) == 1
    assert merge_batch(EMPTY, [a, outside]).conflicts == []
    assert window_bounds(a.clock, W) == (NOW - W, NOW + W)
    assert DAY_MS * 3 == W


def test_a_held_report_at_the_far_edge_of_the_window_conflicts_with_an_older_new_one():
    later = obs("a", Clock(NOW + W, 0, "p1"), {"sanitary": True})
    held = fold(EMPTY, [later])
    older = obs("b", Clock(NOW, 0, "p2"), {"sanitary": False})
    assert len(merge_batch(held, [older]).conflicts) == 1


def test_a_conflict_found_already_resolved_keeps_its_first_resolver():
    """b arrives after the report that settled a and b: the conflict is made resolved by it,
    and a later report in the same batch that saw both does not take its place."""
    a = obs("a", Clock(NOW, 0, "p1"), {"sanitary": True})
    b = obs("b", Clock(NOW + 1000, 0, "p2"), {"sanitary": False})
    first = obs("r1", Clock(NOW + 2000, 0, "p3"), {"sanitary": True}, base={"sanitary": b.clock})
    second = obs("r2", Clock(NOW + 3000, 0, "p4"), {"sanitary": True}, base={"sanitary": b.clock})
    held = fold(EMPTY, [a, first])
    [(conflict, by)] = merge_batch(held, [b, second]).conflicts
    assert by == "r1"


def test_a_held_open_conflict_is_resolved_once_by_the_first_report_that_settles_it():
    a = obs("a", Clock(NOW, 0, "p1"), {"sanitary": True})
    b = obs("b", Clock(NOW + 1000, 0, "p2"), {"sanitary": False})
    held = fold(EMPTY, [a, b])
    first = obs("r1", Clock(NOW + 2000, 0, "p3"), {"sanitary": True}, base={"sanitary": b.clock})
    second = obs("r2", Clock(NOW + 3000, 0, "p4"), {"sanitary": True}, base={"sanitary": b.clock})
    assert merge_batch(held, [first, second]).resolved == {held.open[0][0].id: "r1"}


def test_a_report_on_other_fields_leaves_a_conflict_open():
    a = obs("a", Clock(NOW, 0, "p1"), {"sanitary": True})
    b = obs("b", Clock(NOW + 1000, 0, "p2"), {"sanitary": False})
    held = fold(EMPTY, [a, b])
    other = obs("r", Clock(NOW + 2000, 0, "p3"), {"in_use": True}, base={"sanitary": b.clock})
    assert merge_batch(held, [other]).resolved == {}
