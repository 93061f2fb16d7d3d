"""Login throttling: counted before the password check, per address and per username."""

import threading

import pytest
from conftest import PASSWORDS
from hypothesis import given
from hypothesis import strategies as st
from test_auth import database_text

import server.auth
from server.login_throttle import Policy, decide, wait_after

POLICY = Policy(free=5, max_wait_s=900, user_free=20, user_max_wait_s=60)


def login(client, username, password, address="10.0.0.1", **headers):
    return client.post(
        "/api/v1/auth/login",
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
        headers=headers,
    )


def desk_login(client, username, password, address="10.0.0.1"):
    page = client.get("/login", environ_base={"REMOTE_ADDR": address})
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": address},
    )


def test_failures_from_one_address_make_that_address_wait_not_the_user(client, clock, store):
    for _ in range(5):
        assert login(client, "inspector", "guess").json["error"]["code"] == "login_failed"
    refused = login(client, "inspector", PASSWORDS["inspector"])
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json["error"]["code"] == "login_throttled"
    assert refused.json["error"]["message"] == "登录失败次数过多，请 1 秒后再试"
    # The real user on another address is not locked out by the stranger.
    assert login(client, "inspector", PASSWORDS["inspector"], "10.0.0.2").status_code == 200
    clock.advance(seconds=1)
    assert login(client, "inspector", PASSWORDS["inspector"]).status_code == 200
    alerts = [e for e in store.audit_entries() if e["action"] == "login_throttled"]
    assert [a["entity_id"] for a in alerts] == ["inspector"]


def test_the_wait_doubles_with_each_further_failure(client, clock):
    waits = []
    for _ in range(10):
        response = login(client, "inspector", "guess")
        while response.status_code == 429:
            waits.append(int(response.headers["Retry-After"]))
            clock.advance(seconds=waits[-1])
            response = login(client, "inspector", "guess")
        assert response.status_code == 401
    assert waits == [1, 2, 4, 8, 16]


def test_forty_parallel_guesses_get_at_most_five_password_checks(client, app):
    """Real threads, each with its own client: the try is counted before the check."""
    barrier = threading.Barrier(40)
    statuses = []

    def guess(n):
        own = app.test_client()
        barrier.wait()
        statuses.append(login(own, "admin", f"guess-{n}").status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # A 401 is a checked password; a 429 was refused before any check.
    assert sorted(set(statuses)) == [401, 429]
    assert statuses.count(401) <= 5
    assert statuses.count(429) >= 35


def test_guessing_from_many_addresses_slows_the_username_but_not_the_users_own_machine(
    client, clock
):
    assert login(client, "admin", PASSWORDS["admin"], "192.168.1.5").status_code == 200
    for n in range(20):
        assert login(client, "admin", "guess", f"10.1.0.{n}").status_code == 401
    refused = login(client, "admin", "guess", "10.2.0.1")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) <= 60
    # The admin's usual machine is not slowed by the strangers.
    assert login(client, "admin", PASSWORDS["admin"], "192.168.1.5").status_code == 200
    # And the slowdown never grows past a minute, however long the guessing goes on.
    for n in range(8):
        response = login(client, "admin", "guess", f"10.3.0.{n}")
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) <= 60
            clock.advance(seconds=int(response.headers["Retry-After"]))
    assert login(client, "admin", PASSWORDS["admin"], "10.9.9.9").status_code in (200, 429)
    clock.advance(seconds=60)
    assert login(client, "admin", PASSWORDS["admin"], "10.9.9.9").status_code == 200


def test_the_desk_page_and_the_api_share_one_throttle(client):
    for _ in range(3):
        assert login(client, "supervisor", "x").status_code == 401
    for _ in range(2):
        assert desk_login(client, "supervisor", "x").status_code == 200
    refused = desk_login(client, "supervisor", PASSWORDS["supervisor"])
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert "登录失败次数过多，请 1 秒后再试" in refused.text
    assert login(client, "supervisor", PASSWORDS["supervisor"]).status_code == 429


def test_unknown_usernames_leave_nothing_behind(client, clock, app, store):
    for n in range(20):
        assert login(client, f"nobody-{n:03}", "guess").status_code == 401
    assert store.scalar("SELECT count(*) FROM login_throttle") == 40
    clock.advance(minutes=16)
    assert login(client, "nobody-new", "guess").status_code == 401
    assert store.scalar("SELECT count(*) FROM login_throttle") == 2
    assert "nobody-" not in database_text(store)
    if store.dialect.name == "sqlite":  # not even in the file's free pages
        store.q("PRAGMA wal_checkpoint(TRUNCATE)")
        with open(app.config["DATABASE_PATH"], "rb") as f:
            assert b"nobody-" not in f.read()


def test_forwarded_addresses_are_ignored_unless_the_proxy_is_trusted(client):
    for n in range(5):
        login(client, "inspector", "guess", **{"X-Forwarded-For": f"1.2.3.{n}"})
    # Not trusted (the default): the header is ignored, so all five came from one address.
    spoofed = login(client, "inspector", "guess", **{"X-Forwarded-For": "9.9.9.9"})
    assert spoofed.status_code == 429


@pytest.fixture
def proxied_app(app):
    from server import create_app

    config = {
        k: app.config[k] for k in ("DATABASE", "DATABASE_URL", "MEDIA_ROOT", "SECRET_KEY", "CLOCK")
    }
    return create_app({**config, "TESTING": True, "TRUSTED_PROXY": True})


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(proxied_app):
    client = proxied_app.test_client()
    for _ in range(5):
        login(client, "inspector", "guess", **{"X-Forwarded-For": "1.2.3.4"})
    assert login(client, "inspector", "guess", **{"X-Forwarded-For": "1.2.3.4"}).status_code == 429
    other = login(client, "inspector", PASSWORDS["inspector"], **{"X-Forwarded-For": "5.6.7.8"})
    assert other.status_code == 200


@given(failures=st.integers(0, 10_000))
def test_waits_never_exceed_their_caps(failures):
    assert 0 <= wait_after(failures, POLICY.free, POLICY.max_wait_s) <= 900
    assert 0 <= wait_after(failures, POLICY.user_free, POLICY.user_max_wait_s) <= 60


@given(st.lists(st.floats(0, 2000), min_size=1, max_size=60))
def test_after_the_free_tries_no_two_counted_tries_are_closer_than_the_wait(gaps):
    """Whatever the timing, a counted try never comes before the previous one's wait ends."""
    pair = user = None
    at, counted = 0.0, []
    for gap in gaps:
        at += gap
        wait, updates = decide(pair, user, False, at, POLICY)
        if updates:
            counted.append((at, updates["pair"]["next_at"]))
            pair = {**updates["pair"]}
            user = {**updates["user"]}
    for (_, allowed_from), (later, _) in zip(counted, counted[1:], strict=False):
        assert later >= allowed_from


@pytest.mark.parametrize("field", ["username", "password", "label"])
def test_half_an_emoji_in_a_login_is_a_400_and_counts_nothing(client, store, field):
    body = {"username": "admin", "password": PASSWORDS["admin"], "label": "phone"}
    text = '{"username": "%s", "password": "%s", "label": "%s"}'
    values = [("\\ud83d" if name == field else body[name]) for name in body]
    response = client.post(
        "/api/v1/auth/login", data=text % tuple(values), content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_text"
    assert store.scalar("SELECT count(*) FROM login_throttle") == 0
    assert store.scalar("SELECT count(*) FROM tokens") == 0


def test_password_checks_run_at_most_the_setting_at_once_and_the_rest_wait(app, monkeypatch):
    """Each scrypt check takes about 32 MB: a burst of logins must not run them all at once."""
    app.config["PASSWORD_CHECKS_AT_ONCE"] = 2
    real, lock = server.auth.check_password_hash, threading.Lock()
    seen = {"active": 0, "peak": 0}

    def counted(*args):
        with lock:
            seen["active"] += 1
            seen["peak"] = max(seen["peak"], seen["active"])
        try:
            return real(*args)
        finally:
            with lock:
                seen["active"] -= 1

    monkeypatch.setattr(server.auth, "check_password_hash", counted)
    logins = 8
    start, codes = threading.Barrier(logins), [None] * logins

    def login(i: int) -> None:
        client = app.test_client()
        start.wait()
        codes[i] = client.post(
            "/api/v1/auth/login",
            json={"username": "inspector", "password": PASSWORDS["inspector"]},
            environ_base={"REMOTE_ADDR": f"10.0.0.{i}"},
        ).status_code

    threads = [threading.Thread(target=login, args=(i,)) for i in range(logins)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert codes == [200] * logins
    assert seen["peak"] == 2


def test_a_try_with_nothing_against_it_waits_exactly_nothing():
    wait, updates = decide(None, None, False, 1000.0, POLICY)
    assert wait == 0 and updates["pair"]["failures"] == updates["user"]["failures"] == 1
