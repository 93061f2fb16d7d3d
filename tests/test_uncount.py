"""Issue 12: a rejected submission stops counting, and phones learn about conflicts.

A record is the merge of its observations that count (every one but a rejected submission's).
Through the HTTP API: two phones report one toilet differently; rejecting the newer report
puts the older one's values back (上次检查 included), closes the conflict and reaches both
phones through pull; re-approving it counts it again. Then a hypothesis property: whatever the
order of pushes, rejections and re-approvals, the stored record and its conflicts equal the
pure merge of the accepted set.
"""

import random
import uuid

from conftest import YUNYU, Phone, submission, toilet_answers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server import recount
from sync.clock import Clock, decode, encode
from sync.merge import (
    DEFAULT_CONFLICT_WINDOW_MS,
    Observation,
    apply,
    conflict_resolved_by,
    find_conflicts,
    merge_accepted,
)

WINDOW_MS = 72 * 3600 * 1000


def _toilet(facilities):
    return facilities[(YUNYU, "toilet")]["id"]


def _review(client, headers, sub_id, decision, reason="照片与现场不符"):
    response = client.post(
        f"/api/v1/submissions/{sub_id}/review",
        json={"decision": decision, "reason": None if decision == "approve" else reason},
        headers=headers,
    )
    assert response.status_code == 200, response.json
    return response.json


def _pulled(phone, kind, record_id):
    """The record as the phone's next pull gives it (None when the pull leaves it out), and
    the outcomes it got."""
    seen, outcomes = None, []
    while True:
        body = phone.pull().json
        phone.cursor = body["cursor"]
        outcomes += body["outcomes"]
        seen = next((r for r in body[kind] if r["id"] == record_id), seen)
        if not body["more"]:
            return seen, {o["submission_id"]: o for o in outcomes}


def test_rejecting_the_newer_report_puts_the_older_back_on_the_record_and_the_phones(
    client, store, facilities
):
    toilet = _toilet(facilities)
    a = Phone(client, "inspector", device_id="phone-a")
    b = Phone(client, "secretary", device_id="phone-b")
    desk = Phone(client, "supervisor", device_id="desk-1")
    base = _pulled(a, "facilities", toilet)[0]["clocks"]
    _pulled(b, "facilities", toilet)
    old, new = str(uuid.uuid4()), str(uuid.uuid4())
    older = submission(
        toilet,
        a.clock(minutes=5),
        base=base,
        sub_id=old,
        observed_at="2026-11-20T10:35:00+08:00",
        answers=toilet_answers(sanitary=True, harmless=True, construction="septic3"),
    )
    newer = submission(
        toilet,
        b.clock(minutes=60),
        base=base,
        sub_id=new,
        observed_at="2026-11-21T09:00:00+08:00",
        answers=toilet_answers(sanitary=False, harmless=None, construction="double_urn"),
    )
    first = a.push([older]).json["results"][0]
    assert "conflict" not in first  # nothing to disagree with yet
    second = b.push([newer]).json["results"][0]
    # The newer report stands by the clock rule; it is in conflict on what it changed.
    assert second["conflict"] is True
    assert {"sanitary", "construction"} <= set(second["conflict_fields"])
    assert second["lost_fields"] == []
    state = store.facility(toilet)["state"]
    assert state["sanitary"]["value"] is False and state["last_inspected"]["value"] == "2026-11-21"
    # Phone A learns through pull that its values lost meanwhile, and sees the facility's
    # conflicting fields.
    record, outcomes = _pulled(a, "facilities", toilet)
    assert {"sanitary", "construction"} <= set(record["conflicts"])
    mine = outcomes[old]
    assert mine["conflict"] is True and "sanitary" in mine["lost_fields"]
    assert mine["state"] in ("received", "complete")

    _review(client, desk.headers, new, "reject")

    state = store.facility(toilet)["state"]
    assert state["sanitary"] == {"value": True, "clock": older["clock"], "by": old}
    assert state["construction"]["value"] == "septic3"
    assert state["last_inspected"]["value"] == "2026-11-20"  # 上次检查 not from the rejected one
    assert not [c for c in store.conflicts(record_id=toilet) if new in (c["a"], c["b"])]
    record, outcomes = _pulled(a, "facilities", toilet)
    assert record["fields"]["sanitary"] is True and record["fields"]["construction"] == "septic3"
    assert record["fields"]["last_inspected"] == "2026-11-20"
    assert record["clocks"]["sanitary"] == older["clock"]
    assert record["conflicts"] == []
    assert outcomes[old]["conflict"] is False and outcomes[old]["lost_fields"] == []
    record, outcomes = _pulled(b, "facilities", toilet)
    assert record["fields"]["sanitary"] is True
    assert outcomes[new]["state"] == "rejected" and outcomes[new]["conflict"] is False

    # Withdrawing the rejection (approving it after all) counts the report again.
    _review(client, desk.headers, new, "approve")
    state = store.facility(toilet)["state"]
    assert state["sanitary"]["value"] is False and state["last_inspected"]["value"] == "2026-11-21"
    record, outcomes = _pulled(a, "facilities", toilet)
    assert record["fields"]["sanitary"] is False and "sanitary" in record["conflicts"]
    assert outcomes[old]["conflict"] is True
    # The desk's review path does the same (and un-counts in one transaction with the review).
    assert recount.counts("approved") and not recount.counts("rejected")


def test_a_registered_facility_keeps_its_registration_when_its_only_report_is_rejected(
    client, store, phone
):
    desk = Phone(client, "supervisor", device_id="desk-2")
    fid = str(uuid.uuid4())
    registered = {
        "type": "facility",
        "id": fid,
        "village": YUNYU,
        "kind": "toilet",
        "name": "新登记户厕",
        "lat": 24.76,
        "lon": 109.29,
        "clock": phone.clock(minutes=1),
        "fields": {"toilet_type": "household"},
    }
    report = submission(fid, phone.clock(minutes=2))
    results = phone.push([registered, report]).json["results"]
    assert [r["status"] for r in results] == ["accepted", "waiting_for_photos"]
    assert store.facility(fid)["state"]["toilet_type"]["by"] == report["id"]
    _review(client, desk.headers, report["id"], "reject")
    state = store.facility(fid)["state"]
    assert state["toilet_type"] == {"value": "household", "clock": registered["clock"], "by": fid}
    assert state["status"]["value"] == "active"
    assert "sanitary" not in state and "last_inspected" not in state


# -- the property: any order of pushes, rejections and re-approvals -----------------------------

DEVICES = ["ph-a", "ph-b", "ph-c"]
# One operation: ("push", device, minutes later, sanitary, construction, saw everything so far)
# or ("reject" | "approve", which earlier push).
_push = st.tuples(
    st.just("push"),
    st.sampled_from(DEVICES),
    st.integers(0, 3000),
    st.booleans(),
    st.sampled_from(["septic3", "double_urn"]),
    st.booleans(),
)
_review_op = st.tuples(st.sampled_from(["reject", "approve"]), st.integers(0, 50))
OPS = st.lists(st.one_of(_push, _review_op), min_size=1, max_size=9)


def _oracle(registration: dict, observations: list[Observation], rejected: set):
    """The record and open conflicts the accepted set gives, by the pure rule, folded in a
    random order (the state is a function of the set)."""
    accepted = [o for o in observations if o.id not in rejected]
    state = {k: dict(v) for k, v in registration.items()}
    for obs in random.sample(accepted, len(accepted)):
        state = apply(state, obs)
    open_ = set()
    for i, obs in enumerate(accepted):
        for c in find_conflicts(obs, accepted[:i], DEFAULT_CONFLICT_WINDOW_MS):
            clocks = {o.id: o.clock for o in accepted}
            if conflict_resolved_by(c, (clocks[c.a], clocks[c.b]), accepted) is None:
                open_.add((c.field, c.a, c.b))
    return state, open_


def test_the_record_is_the_merge_of_the_accepted_set_in_any_order(client, store, phone):
    desk = Phone(client, "supervisor", device_id="desk-p")
    users = {d: Phone(client, "inspector", device_id=d) for d in DEVICES}

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(OPS)
    def run(ops):
        fid = str(uuid.uuid4())
        reg_clock = phone.clock(minutes=1)
        assert (
            phone.push(
                [
                    {
                        "type": "facility",
                        "id": fid,
                        "village": YUNYU,
                        "kind": "toilet",
                        "name": "性质测试户厕",
                        "lat": 24.76,
                        "lon": 109.29,
                        "clock": reg_clock,
                        "fields": {"toilet_type": "household"},
                    }
                ]
            ).json["results"][0]["status"]
            == "accepted"
        )
        registration = store.facility(fid)["state"]
        pushed, rejected = [], set()
        for op in ops:
            if op[0] == "push":
                _, device, minutes, sanitary, construction, saw_all = op
                p = users[device]
                base = store.facility(fid)["state"] if saw_all else registration
                item = submission(
                    fid,
                    p.clock(minutes=minutes),
                    base={k: v["clock"] for k, v in base.items()},
                    answers=toilet_answers(sanitary=sanitary, construction=construction),
                )
                assert p.push([item]).json["results"][0]["status"] == "waiting_for_photos"
                pushed.append(item["id"])
            elif pushed:
                sub_id = pushed[op[1] % len(pushed)]
                _review(client, desk.headers, sub_id, op[0])
                (rejected.add if op[0] == "reject" else rejected.discard)(sub_id)
        rows = store.observations_of_record(fid)
        observations = [
            Observation(
                r["id"],
                r["record_id"],
                decode(r["clock"]),
                r["fields"],
                {k: decode(v) for k, v in r["base"].items()},
            )
            for r in rows
            if r["id"] != fid
        ]
        assert {o.id for o in observations} == set(pushed)
        assert {r["id"] for r in rows if not r["counted"]} == rejected
        state, open_ = _oracle(registration, observations, rejected)
        assert store.facility(fid)["state"] == state
        held = {(c["field"], c["a"], c["b"]) for c in store.open_conflicts_of([fid])}
        assert held == open_
        # and what a phone pulls is that record
        record = next(f for f in phone.pull_all()["facilities"] if f["id"] == fid)
        assert record["fields"] == {k: v["value"] for k, v in state.items()}
        assert record["conflicts"] == sorted({f for f, _, _ in open_})

    run()


@given(
    st.lists(
        st.tuples(st.sampled_from(DEVICES), st.integers(0, 10), st.integers(0, 2), st.booleans()),
        min_size=1,
        max_size=7,
    ),
    st.randoms(use_true_random=False),
)
@settings(max_examples=60, deadline=None)
def test_merge_accepted_is_a_function_of_the_set(reports, rnd):
    """Pure: the same accepted observations in any order give the same record and conflicts."""
    observations = []
    for i, (device, hours, value, saw) in enumerate(reports):
        clock = Clock(1_760_000_000_000 + hours * 3_600_000, i, device)
        prior = [o.clock for o in observations]
        base = {"v": max(prior)} if saw and prior else {}
        observations.append(Observation(f"o{i}", "r", clock, {"v": value}, base))
    base = {"v": {"value": -1, "clock": encode(Clock(1, 0, "reg")), "by": "r"}}
    one = merge_accepted(base, observations)
    two = merge_accepted(base, rnd.sample(observations, len(observations)))
    assert one.state == two.state
    assert sorted((c.id, by) for c, by in one.conflicts) == sorted(
        (c.id, by) for c, by in two.conflicts
    )
