"""Rules of merging observations into records (sync/merge.py); pure, no I/O."""

import json

from hypothesis import given
from hypothesis import strategies as st

from sync.clock import Clock, encode
from sync.merge import (
    DAY_MS,
    DEFAULT_CONFLICT_WINDOW_MS,
    Conflict,
    Observation,
    apply,
    conflict_id,
    conflict_resolved_by,
    find_conflicts,
    is_retired,
    replay,
    same_value,
    window_bounds,
)

NOW = 1_795_000_000_000
HOUR_MS = 60 * 60 * 1000
W = DEFAULT_CONFLICT_WINDOW_MS
OLD = Clock(NOW - 30 * DAY_MS, 0, "server")


def obs(id, clock, fields, base=None, record_id="toilet-1"):
    return Observation(id=id, record_id=record_id, clock=clock, fields=fields, base=base or {})


def dumps(state):
    return json.dumps(state, sort_keys=True)


def arrive(observations, window_ms=W):
    """Conflicts found incrementally, as a server finds them while pushes arrive."""
    seen, found = [], set()
    for o in observations:
        found.update(find_conflicts(o, seen, window_ms))
        seen.append(o)
    return found


# --- strategies -------------------------------------------------------------------------------

FIELDS = ["sanitary", "in_use", "status", "hazards"]
VALUES = [True, False, None, 1, 1.0, 0, "retired", "active", ["pit"], [], {"k": 1}]
small_clocks = st.builds(
    Clock,
    st.integers(0, 6).map(lambda d: NOW + d * DAY_MS) | st.integers(NOW, NOW + 3),
    st.integers(0, 2),
    st.sampled_from(["p1", "p2", "p-3"]),
)
observations = st.builds(
    Observation,
    id=st.uuids().map(str),
    record_id=st.sampled_from(["toilet-1", "toilet-2"]),
    clock=small_clocks,
    fields=st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(VALUES), max_size=3),
    base=st.dictionaries(st.sampled_from(FIELDS), small_clocks, max_size=3),
)
observation_lists = st.lists(observations, max_size=12, unique_by=lambda o: o.id)


# --- field values -----------------------------------------------------------------------------


@given(st.data(), observation_lists)
def test_any_order_of_the_same_observations_gives_byte_identical_state(data, obs_list):
    shuffled = data.draw(st.permutations(obs_list))
    for rid in ("toilet-1", "toilet-2"):
        mine = [o for o in obs_list if o.record_id == rid]
        theirs = [o for o in shuffled if o.record_id == rid]
        assert dumps(replay(mine)) == dumps(replay(theirs))


@given(observation_lists)
def test_each_field_holds_the_value_of_its_newest_observation(obs_list):
    state = replay(obs_list)
    for name in FIELDS:
        having = [o for o in obs_list if name in o.fields]
        if not having:
            assert name not in state
            continue
        newest = max(having, key=lambda o: (o.clock, o.id))
        expected = {"value": newest.fields[name], "clock": encode(newest.clock), "by": newest.id}
        assert dumps(state[name]) == dumps(expected)


@given(observation_lists, st.data())
def test_applying_an_observation_twice_equals_applying_it_once(obs_list, data):
    state = replay(obs_list)
    for o in obs_list:
        assert dumps(apply(state, o)) == dumps(state)
    extra = data.draw(observations)
    once = apply(state, extra)
    assert dumps(apply(once, extra)) == dumps(once)


def test_older_observation_never_overwrites_newer():
    new = obs("n", Clock(NOW, 0, "p1"), {"sanitary": True})
    late_old = obs("o", Clock(NOW - 5 * DAY_MS, 0, "p2"), {"sanitary": False, "in_use": True})
    state = apply(apply({}, new), late_old)
    assert state["sanitary"] == {"value": True, "clock": encode(new.clock), "by": "n"}
    assert state["in_use"]["value"] is True  # a field only the old one reported is still taken


def test_equal_clocks_break_by_observation_id_whatever_the_order():
    c = Clock(NOW, 0, "p1")
    x, y = obs("aaa", c, {"sanitary": True}), obs("bbb", c, {"sanitary": False})
    assert replay([x, y]) == replay([y, x])
    assert replay([x, y])["sanitary"]["by"] == "bbb"


def test_apply_returns_a_new_state_and_leaves_the_input_alone():
    first = apply({}, obs("a", Clock(NOW, 0, "p1"), {"hazards": ["pit"]}))
    before = dumps(first)
    second = apply(first, obs("b", Clock(NOW + 1, 0, "p1"), {"hazards": []}))
    assert dumps(first) == before
    assert second["hazards"]["value"] == []


def test_state_does_not_alias_observation_values():
    hazards = ["pit"]
    state = apply({}, obs("a", Clock(NOW, 0, "p1"), {"hazards": hazards}))
    hazards.append("smell")
    assert state["hazards"]["value"] == ["pit"]


def test_fields_an_observation_does_not_mention_are_kept():
    state = replay(
        [
            obs("a", Clock(NOW, 0, "p1"), {"sanitary": True, "in_use": True}),
            obs("b", Clock(NOW + 1, 0, "p1"), {"in_use": False}),
        ]
    )
    assert state["sanitary"]["value"] is True
    assert state["in_use"]["value"] is False


# --- retirement -------------------------------------------------------------------------------


def test_retiring_a_facility_is_an_observation_and_keeps_its_fields():
    inspected = obs("a", Clock(NOW, 0, "p1"), {"status": "active", "sanitary": True})
    retired = obs("r", Clock(NOW + DAY_MS, 0, "sup"), {"status": "retired"})
    state = replay([inspected, retired])
    assert is_retired(state)
    assert state["sanitary"]["value"] is True


def test_late_older_inspection_does_not_unretire_a_facility():
    retired = obs("r", Clock(NOW + DAY_MS, 0, "sup"), {"status": "retired"})
    late = obs("a", Clock(NOW, 0, "p1"), {"status": "active", "sanitary": False})
    state = replay([retired, late])
    assert is_retired(state)
    assert state["sanitary"]["value"] is False


def test_newer_observation_can_bring_a_retired_facility_back():
    retired = obs("r", Clock(NOW, 0, "sup"), {"status": "retired"})
    back = obs("b", Clock(NOW + DAY_MS, 0, "sup"), {"status": "active"})
    assert not is_retired(replay([back, retired]))
    assert not is_retired({})


# --- conflicts --------------------------------------------------------------------------------


def offline_pair():
    """Two phones offline, both knowing only the same old value, disagree about one toilet."""
    a = obs("obs-a", Clock(NOW, 0, "p1"), {"sanitary": True}, {"sanitary": OLD})
    b = obs("obs-b", Clock(NOW + HOUR_MS, 0, "p2"), {"sanitary": False}, {"sanitary": OLD})
    return a, b


def test_two_offline_phones_disagreeing_make_exactly_one_conflict_in_either_push_order():
    a, b = offline_pair()
    assert find_conflicts(a, []) == []
    ab = find_conflicts(b, [a])
    ba = find_conflicts(a, [b])
    assert ab == ba
    [c] = ab
    assert (c.record_id, c.field, c.a, c.b) == ("toilet-1", "sanitary", "obs-a", "obs-b")
    assert c.values == (True, False)
    assert c.winner == "obs-b"
    assert c.id == conflict_id("toilet-1", "sanitary", "obs-a", "obs-b")
    assert len(c.id) == 32 and int(c.id, 16) >= 0
    assert replay([a, b])["sanitary"]["value"] is False  # the clock winner stands meanwhile


def test_observation_that_saw_both_sides_wins_and_resolves_the_conflict():
    a, b = offline_pair()
    [c] = find_conflicts(b, [a])
    assert conflict_resolved_by(c, (a.clock, b.clock), [a, b]) is None
    sup = obs("obs-s", Clock(NOW + DAY_MS, 0, "sup"), {"sanitary": True}, {"sanitary": b.clock})
    assert find_conflicts(sup, [a, b]) == []
    assert replay([sup, b, a])["sanitary"] == {
        "value": True,
        "clock": encode(sup.clock),
        "by": "obs-s",
    }
    assert conflict_resolved_by(c, (a.clock, b.clock), [a, sup, b]) == "obs-s"


def test_observation_that_saw_only_one_side_does_not_resolve():
    a, b = offline_pair()
    [c] = find_conflicts(b, [a])
    partial = obs("obs-x", Clock(NOW + DAY_MS, 0, "p3"), {"sanitary": True}, {"sanitary": a.clock})
    assert conflict_resolved_by(c, (a.clock, b.clock), [a, b, partial]) is None


def test_resolution_must_be_newer_than_both_sides_so_that_it_stands():
    a, b = offline_pair()
    [c] = find_conflicts(b, [a])
    stale = obs("obs-x", Clock(NOW - 1, 0, "p3"), {"sanitary": True}, {"sanitary": b.clock})
    assert conflict_resolved_by(c, (a.clock, b.clock), [stale]) is None


def test_earliest_resolving_observation_is_chosen_whatever_the_order():
    a, b = offline_pair()
    [c] = find_conflicts(b, [a])
    base = {"sanitary": b.clock}
    s1 = obs("s-late", Clock(NOW + 2 * DAY_MS, 0, "sup"), {"sanitary": False}, base)
    s2 = obs("s-early", Clock(NOW + DAY_MS, 0, "sup2"), {"sanitary": True}, base)
    assert conflict_resolved_by(c, (a.clock, b.clock), [s1, s2]) == "s-early"
    assert conflict_resolved_by(c, (a.clock, b.clock), [s2, s1]) == "s-early"


def test_observations_of_another_record_or_field_do_not_resolve():
    a, b = offline_pair()
    [c] = find_conflicts(b, [a])
    when, base = Clock(NOW + DAY_MS, 0, "sup"), {"sanitary": b.clock, "in_use": b.clock}
    other_record = obs("x", when, {"sanitary": True}, base, record_id="toilet-2")
    other_field = obs("y", when, {"in_use": True}, base)
    assert conflict_resolved_by(c, (a.clock, b.clock), [other_record, other_field]) is None


def test_observation_made_after_seeing_the_other_is_not_a_conflict():
    a = obs("a", Clock(NOW, 0, "p1"), {"sanitary": True}, {"sanitary": OLD})
    b = obs("b", Clock(NOW + HOUR_MS, 0, "p2"), {"sanitary": False}, {"sanitary": a.clock})
    assert find_conflicts(b, [a]) == [] == find_conflicts(a, [b])


def test_later_observation_from_the_same_phone_is_not_a_conflict():
    a = obs("a", Clock(NOW, 0, "p1"), {"sanitary": True}, {"sanitary": OLD})
    fix = obs("b", Clock(NOW + 60_000, 0, "p1"), {"sanitary": False}, {"sanitary": OLD})
    assert find_conflicts(fix, [a]) == [] == find_conflicts(a, [fix])


def test_observations_ten_days_apart_are_not_a_conflict():
    assert DEFAULT_CONFLICT_WINDOW_MS == 3 * DAY_MS
    a = obs("a", Clock(NOW, 0, "p1"), {"sanitary": True}, {"sanitary": OLD})
    b = obs("b", Clock(NOW + 10 * DAY_MS, 0, "p2"), {"sanitary": False}, {"sanitary": OLD})
    assert find_conflicts(b, [a]) == [] == find_conflicts(a, [b], DEFAULT_CONFLICT_WINDOW_MS)
    assert replay([b, a])["sanitary"]["value"] is False  # the newer one simply stands


def test_conflict_window_is_inclusive_and_matches_window_bounds():
    a = obs("a", Clock(NOW, 0, "p1"), {"sanitary": True})
    edge = obs("b", Clock(NOW + W, 0, "p2"), {"sanitary": False})
    past = obs("c", Clock(NOW + W + 1, 0, "p2"), {"sanitary": False})
    assert len(find_conflicts(edge, [a])) == 1
    assert find_conflicts(past, [a]) == []
    assert window_bounds(a.clock, W) == (NOW - W, NOW + W)
    assert window_bounds(Clock(5, 0, "p"), 10) == (0, 15)


def test_equal_values_never_conflict():
    a = obs("a", Clock(NOW, 0, "p1"), {"hazards": ["pit", "smell"], "extinguisher_count": 1})
    b = obs("b", Clock(NOW + 1, 0, "p2"), {"hazards": ["pit", "smell"], "extinguisher_count": 1.0})
    assert find_conflicts(b, [a]) == []


def test_json_different_values_conflict_even_if_python_calls_them_equal():
    assert not same_value(True, 1)
    assert same_value(1, 1.0)
    a = obs("a", Clock(NOW, 0, "p1"), {"in_use": True})
    b = obs("b", Clock(NOW + 1, 0, "p2"), {"in_use": 1})
    assert len(find_conflicts(b, [a])) == 1


def test_observations_of_different_records_never_conflict():
    a = obs("a", Clock(NOW, 0, "p1"), {"sanitary": True}, record_id="toilet-1")
    b = obs("b", Clock(NOW + 1, 0, "p2"), {"sanitary": False}, record_id="toilet-2")
    assert find_conflicts(b, [a]) == []


def test_one_conflict_per_disagreeing_field():
    a = obs("a", Clock(NOW, 0, "p1"), {"sanitary": True, "in_use": True, "harmless": True})
    b = obs("b", Clock(NOW + 1, 0, "p2"), {"sanitary": False, "in_use": False, "harmless": True})
    assert [c.field for c in find_conflicts(b, [a, a])] == ["in_use", "sanitary"]


@given(st.data(), observation_lists)
def test_any_arrival_order_finds_the_identical_set_of_conflicts(data, obs_list):
    shuffled = data.draw(st.permutations(obs_list))
    found = arrive(obs_list)
    assert arrive(shuffled) == found
    assert arrive(shuffled + obs_list) == found  # duplicates arriving again add nothing
    assert len({c.id for c in found}) == len(found)


@given(st.data(), observation_lists)
def test_conflicts_follow_the_pairwise_rule(data, obs_list):
    window = data.draw(st.sampled_from([0, DAY_MS, W]))
    found = {(c.record_id, c.field, c.a, c.b) for c in arrive(obs_list, window)}
    expected = set()
    for i, x in enumerate(obs_list):
        for y in obs_list[:i]:
            for name in x.fields.keys() & y.fields.keys():
                if (
                    x.record_id == y.record_id
                    and not same_value(x.fields[name], y.fields[name])
                    and not _saw(x, name, y)
                    and not _saw(y, name, x)
                    and abs(x.clock.wall_ms - y.clock.wall_ms) <= window
                ):
                    expected.add((x.record_id, name, *sorted((x.id, y.id))))
    assert found == expected


def _saw(x, name, y):
    known = x.base.get(name)
    seen_base = known is not None and known >= y.clock
    return seen_base or (x.clock.device == y.clock.device and x.clock > y.clock)


@given(observation_lists)
def test_conflict_winner_is_the_clock_winner_and_values_belong_to_a_and_b(obs_list):
    by_id = {o.id: o for o in obs_list}
    for c in arrive(obs_list):
        a, b = by_id[c.a], by_id[c.b]
        assert c.a < c.b
        assert c.values == (a.fields[c.field], b.fields[c.field])
        assert c.winner == max(a, b, key=lambda o: (o.clock, o.id)).id


@given(st.data(), observation_lists)
def test_resolution_does_not_depend_on_order(data, obs_list):
    shuffled = data.draw(st.permutations(obs_list))
    by_id = {o.id: o for o in obs_list}
    for c in arrive(obs_list):
        clocks = (by_id[c.a].clock, by_id[c.b].clock)
        assert conflict_resolved_by(c, clocks, obs_list) == conflict_resolved_by(
            c, clocks, shuffled
        )


def test_conflicts_with_list_values_are_hashable():
    a = obs("a", Clock(NOW, 0, "p1"), {"hazards": ["pit"]})
    b = obs("b", Clock(NOW + 1, 0, "p2"), {"hazards": []})
    [c] = find_conflicts(b, [a])
    assert isinstance(c, Conflict)
    assert {c, c} == {c}
