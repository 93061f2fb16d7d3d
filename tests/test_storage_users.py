"""Storage contract: users, assignments, device tokens, devices, desk sessions and the login
throttle. Runs unchanged on SQLite and PostgreSQL (`any_store`)."""

import json
import threading
import time

import pytest

from server.storage import connect

AT = "2026-11-20T02:00:00.000+00:00"
LATER = "2026-11-20T02:05:30.000+00:00"
CODES = ["450222101001", "450222101002", "450222102001"]


@pytest.fixture
def store(any_store):
    any_store.upsert_villages(
        [
            {"code": c, "name": f"村{c[-1]}", "township": "桐浦乡", "county": "柳城县"}
            | {"county_class": 2}
            for c in CODES
        ],
        at=AT,
    )
    return any_store


def new_user(store, username="inspector", role="inspector", **scope) -> int:
    return store.create_user(
        username=username,
        password_hash="scrypt:hash",
        role=role,
        display_name=f"{username} 名",
        at=AT,
        **scope,
    )


def actions(store) -> list[str]:
    return [e["action"] for e in reversed(store.audit_entries())]


def test_a_created_user_is_found_by_id_and_by_username(store):
    user_id = new_user(store, "supervisor", "supervisor", scope_township="桐浦乡")
    assert isinstance(user_id, int)
    expected = {
        "id": user_id,
        "username": "supervisor",
        "display_name": "supervisor 名",
        "role": "supervisor",
        "password_hash": "scrypt:hash",
        "scope_township": "桐浦乡",
        "scope_county": None,
        "active": 1,
        "created_at": AT,
        "must_change_password": 0,
        "password_changed_at": None,
        "totp_secret": None,
        "totp_enrolled_at": None,
        "totp_recovery": None,
        "totp_last_step": None,
    }
    assert store.user(id=user_id) == expected
    assert store.user(username="supervisor") == expected
    assert store.user(id=user_id + 1) is None
    assert store.user(username="nobody") is None
    assert actions(store) == ["user.create"]
    assert store.audit_entries()[0]["entity_id"] == "supervisor"


def test_assignments_are_idempotent_and_sorted_and_can_be_removed(store):
    user_id = new_user(store)
    assert store.assigned_villages(user_id) == []
    store.assign(user_id, reversed(CODES[:2]), at=AT)
    store.assign(user_id, [CODES[0], CODES[2]], at=AT)
    assert store.assigned_villages(user_id) == CODES
    assert json.loads(store.audit_entries()[0]["detail"]) == {"villages": [CODES[0], CODES[2]]}
    assert store.unassign(user_id, [CODES[2], CODES[0], "999"], at=AT, by=user_id) == 2
    assert store.assigned_villages(user_id) == [CODES[1]]
    assert store.unassign(user_id, [], at=AT) == 0
    assert actions(store) == ["user.create", "user.assign", "user.assign"] + ["user.unassign"] * 2


def test_tokens_are_found_by_hash_listed_and_revoked(store):
    user_id, other = new_user(store), new_user(store, "other")
    first = store.create_token(
        user_id=user_id, token_hash="h1", device_id="phone-1", label="手机", at=AT
    )
    second = store.create_token(user_id=user_id, token_hash="h2", device_id=None, label=None, at=AT)
    assert second > first
    assert store.token("h1") == {
        "id": first,
        "user_id": user_id,
        "token_hash": "h1",
        "device_id": "phone-1",
        "label": "手机",
        "created_at": AT,
        "last_used_at": AT,
        "revoked_at": None,
    }
    assert store.token("nope") is None
    assert [t["id"] for t in store.tokens_of(user_id)] == [first, second]
    assert store.tokens_of(other) == []
    assert set(store.tokens_of(user_id)[0]) == {
        "id",
        "device_id",
        "label",
        "created_at",
        "last_used_at",
        "revoked_at",
    }
    assert not store.revoke_token(first, user_id=other, by=other, at=LATER)
    assert store.revoke_token(first, user_id=user_id, by=other, at=LATER)
    assert not store.revoke_token(first, user_id=user_id, by=other, at=LATER)  # already revoked
    assert store.token("h1")["revoked_at"] == LATER
    assert store.audit_entries()[0]["entity_id"] == str(first)
    assert actions(store).count("token.revoke") == 1
    assert [e["entity_id"] for e in store.audit_entries() if e["action"] == "token.create"] == [
        str(second),
        str(first),
    ]
    with store.write():
        assert store.revoke_tokens_of(user_id, at=LATER) == 1
    assert store.revoke_tokens_of(user_id, at=LATER) == 0
    assert all(t["revoked_at"] == LATER for t in store.tokens_of(user_id))


def test_a_token_is_touched_at_most_once_a_minute(store):
    token_id = store.create_token(
        user_id=new_user(store), token_hash="h", device_id=None, label=None, at=AT
    )
    store.touch_token(token_id, "2026-11-20T02:00:59.000+00:00")  # the same minute
    assert store.token("h")["last_used_at"] == AT
    store.touch_token(token_id, LATER)
    assert store.token("h")["last_used_at"] == LATER
    store.touch_token(token_id, "2026-11-20T02:05:50.000+00:00")
    assert store.token("h")["last_used_at"] == LATER


def test_touching_a_token_gives_up_quietly_while_another_writer_holds_it(
    store, engine_url, monkeypatch
):
    monkeypatch.setattr("server.storage.users.TOUCH_WAIT_SECONDS", 0.1)
    token_id = store.create_token(
        user_id=new_user(store), token_hash="h", device_id=None, label=None, at=AT
    )
    other = connect(engine_url)
    try:
        with other.write():
            other.q("UPDATE tokens SET label = 'busy' WHERE id = :id", id=token_id)
            store.touch_token(token_id, LATER)  # neither waits long nor raises
        assert store.token("h")["last_used_at"] == AT
    finally:
        other.close()
    store.touch_token(token_id, LATER)
    token = store.token("h")
    assert (token["label"], token["last_used_at"]) == ("busy", LATER)


def test_throttle_buckets_are_saved_replaced_read_deleted_and_pruned(store):
    with store.write():
        assert store.throttle_rows([]) == {}
        store.save_throttle("a", "pair", failures=1, last_at=100.5, next_at=100.5)
        store.save_throttle("b", "user", failures=7, last_at=200.0, next_at=260.0)
        store.save_throttle("g", "good", failures=0, last_at=50.0, next_at=0)
        store.save_throttle("a", "pair", failures=2, last_at=150.25, next_at=151.25)
    with store.write():
        assert store.throttle_rows(iter(["a", "b", "missing"])) == {
            "a": {"key": "a", "kind": "pair", "failures": 2, "last_at": 150.25, "next_at": 151.25},
            "b": {"key": "b", "kind": "user", "failures": 7, "last_at": 200.0, "next_at": 260.0},
        }
        store.delete_throttle("a")
        store.delete_throttle("never")
        assert set(store.throttle_rows(["a", "b", "g"])) == {"b", "g"}
    # "b" was quiet since before 250 but its wait runs until 260: kept until then.
    with store.write():
        store.prune_throttle(now=255.0, failures_before=250.0, good_before=40.0)
        assert set(store.throttle_rows(["b", "g"])) == {"b", "g"}
    with store.write():
        store.prune_throttle(now=260.0, failures_before=250.0, good_before=60.0)
        assert store.throttle_rows(["b", "g"]) == {}


def test_a_throttle_write_waits_until_another_has_saved_its_buckets(store, engine_url):
    """Two tries of one bucket are counted one after another, even while it has no row."""
    other, seen = connect(engine_url), []

    def second_try():
        with other.write():
            seen.append(other.throttle_rows(["a"]))

    try:
        with store.write():
            assert store.throttle_rows(["a"]) == {}
            thread = threading.Thread(target=second_try)
            thread.start()
            time.sleep(0.2)
            assert seen == []  # still waiting
            store.save_throttle("a", "pair", failures=1, last_at=1.0, next_at=1.0)
        thread.join(timeout=5)
        assert [rows["a"]["failures"] for rows in seen] == [1]
    finally:
        other.close()


def test_login_alerts_are_the_recent_throttle_entries_newest_first(store):
    for n, at in enumerate(["2026-11-19T00:00:00", "2026-11-20T01:00:00", "2026-11-20T03:00:00"]):
        store.audit(
            "login_throttled", at=at, entity="user", entity_id=f"u{n}", detail={"address": "x"}
        )
    store.audit("user.create", at="2026-11-20T04:00:00", entity="user", entity_id="u9")
    alerts = store.login_alerts("2026-11-20T00:00:00")
    assert [(a["at"], a["username"]) for a in alerts] == [
        ("2026-11-20T03:00:00", "u2"),
        ("2026-11-20T01:00:00", "u1"),
    ]
    assert json.loads(alerts[0]["detail"]) == {"address": "x"}
    assert [a["username"] for a in store.login_alerts("2026-11-01", limit=1)] == ["u2"]


def test_desk_sessions_are_created_found_touched_ended_and_pruned(store):
    user_id, other = new_user(store, "supervisor", "supervisor"), new_user(store, "admin", "admin")
    session_id = store.create_desk_session("s1", user_id, at=AT)
    assert store.desk_session("s1") == {
        "id": session_id,
        "session_hash": "s1",
        "user_id": user_id,
        "created_at": AT,
        "last_seen_at": AT,
    }
    assert store.desk_session("nope") is None
    store.touch_desk_session(session_id, LATER)
    assert store.desk_session("s1")["last_seen_at"] == LATER
    store.end_desk_session("s1")
    assert store.desk_session("s1") is None

    store.create_desk_session("old", user_id, at="2026-11-19T00:00:00")
    store.create_desk_session("idle", other, at="2026-11-20T01:00:00")
    store.create_desk_session("fresh", other, at="2026-11-20T01:00:00")
    store.touch_desk_session(store.desk_session("fresh")["id"], "2026-11-20T02:00:00")
    store.prune_desk_sessions(idle_before="2026-11-20T01:30:00", created_before="2026-11-19T12")
    assert [store.desk_session(h) is not None for h in ("old", "idle", "fresh")] == [
        False,
        False,
        True,
    ]
    store.create_desk_session("more", other, at=AT)
    with store.write():
        assert store.end_desk_sessions_of(other) == 2
    assert store.end_desk_sessions_of(other) == 0
    assert actions(store).count("web.login") == 5


def test_a_new_password_ends_desk_sessions_and_by_default_revokes_tokens(store):
    user_id = new_user(store)
    store.create_token(user_id=user_id, token_hash="h1", device_id=None, label=None, at=AT)
    store.create_desk_session("s1", user_id, at=AT)
    assert store.set_password_hash(user_id, "scrypt:new", at=LATER) == 1
    assert store.user(id=user_id)["password_hash"] == "scrypt:new"
    assert store.desk_session("s1") is None
    assert store.token("h1")["revoked_at"] == LATER
    assert json.loads(store.audit_entries()[0]["detail"]) == {
        "tokens_revoked": 1,
        "desk_sessions_ended": 1,
    }

    store.create_token(user_id=user_id, token_hash="h2", device_id=None, label=None, at=AT)
    assert store.set_password_hash(user_id, "scrypt:again", at=LATER, revoke_tokens=False) == 0
    assert store.token("h2")["revoked_at"] is None
    assert actions(store).count("user.password") == 2


def test_a_device_keeps_its_latest_clock_whatever_order_pushes_arrive_in(store):
    user_id, other = new_user(store), new_user(store, "other")
    assert store.device("phone-1") is None
    store.record_device(device_id="phone-1", user_id=user_id, clock=None, skew_ms=None, at=AT)
    assert store.device("phone-1") == {
        "device_id": "phone-1",
        "user_id": user_id,
        "last_seen_at": AT,
        "last_clock": None,
        "skew_ms": None,
    }
    late, early = "1764122400000-0002-phone-1", "1764122400000-0001-phone-1"
    with store.write():
        store.record_device(device_id="phone-1", user_id=user_id, clock=late, skew_ms=5, at=AT)
        store.record_device(
            device_id="phone-1", user_id=other, clock=early, skew_ms=-1200, at=LATER
        )
    assert store.device("phone-1") == {
        "device_id": "phone-1",
        "user_id": other,
        "last_seen_at": LATER,
        "last_clock": late,
        "skew_ms": -1200,
    }
    store.record_device(device_id="phone-1", user_id=other, clock=None, skew_ms=None, at=LATER)
    assert store.device("phone-1")["last_clock"] == late  # a push without a clock keeps it
    store.record_device(device_id="phone-2", user_id=other, clock=None, skew_ms=None, at=AT)
    store.record_device(device_id="phone-2", user_id=other, clock=None, skew_ms=None, at=LATER)
    assert store.device("phone-2")["last_clock"] is None


def test_users_lists_everyone_with_their_villages_and_live_tokens(store):
    admin = new_user(store, "admin", "admin")
    inspector = new_user(store, "inspector")
    store.assign(inspector, CODES[:2], at=AT)
    store.create_token(user_id=inspector, token_hash="h1", device_id=None, label=None, at=AT)
    store.create_token(user_id=inspector, token_hash="h2", device_id=None, label=None, at=AT)
    store.revoke_tokens_of(inspector, at=AT)
    store.create_token(user_id=inspector, token_hash="h3", device_id=None, label=None, at=AT)
    listed = store.users()
    assert [(u["id"], u["username"], u["villages"], u["live_tokens"]) for u in listed] == [
        (admin, "admin", 0, 0),
        (inspector, "inspector", 2, 1),
    ]
    assert set(listed[0]) == {
        "id",
        "username",
        "display_name",
        "role",
        "scope_township",
        "scope_county",
        "active",
        "created_at",
        "villages",
        "live_tokens",
    }
    assert listed[1]["active"] == 1 and listed[1]["role"] == "inspector"


def test_a_role_change_sets_the_scope_and_ends_desk_sessions(store):
    admin, user_id = new_user(store, "admin", "admin"), new_user(store)
    store.create_desk_session("s1", user_id, at=AT)
    store.set_user_role(
        user_id, "supervisor", scope_township="桐浦乡", scope_county="柳城县", at=LATER, by=admin
    )
    user = store.user(id=user_id)
    assert (user["role"], user["scope_township"], user["scope_county"]) == (
        "supervisor",
        "桐浦乡",
        "柳城县",
    )
    assert store.desk_session("s1") is None
    entry = store.audit_entries()[0]
    assert (entry["action"], entry["user_id"]) == ("user.role", admin)
    assert json.loads(entry["detail"]) == {
        "role": "supervisor",
        "township": "桐浦乡",
        "county": "柳城县",
    }


def test_deactivating_revokes_tokens_and_ends_sessions_and_activating_does_not(store):
    user_id = new_user(store)
    store.create_token(user_id=user_id, token_hash="h1", device_id=None, label=None, at=AT)
    store.create_desk_session("s1", user_id, at=AT)
    assert store.set_user_active(user_id, False, at=LATER) == 1
    assert store.user(id=user_id)["active"] == 0
    assert store.token("h1")["revoked_at"] == LATER
    assert store.desk_session("s1") is None
    assert json.loads(store.audit_entries()[0]["detail"]) == {"tokens_revoked": 1}

    store.create_desk_session("s2", user_id, at=LATER)
    assert store.set_user_active(user_id, True, at=LATER, by=user_id) == 0
    assert store.user(id=user_id)["active"] == 1
    assert store.desk_session("s2") is not None
    assert store.audit_entries()[0]["detail"] is None
    assert [a for a in actions(store) if a.startswith("user.")][-2:] == [
        "user.deactivate",
        "user.activate",
    ]
