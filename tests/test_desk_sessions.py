"""Desk sessions live on the server: logout, reset, deactivation and role change end them."""

import hashlib

import pytest
from conftest import PASSWORDS, Phone, version_3_database
from test_supervisor import CSRF, login_page

from server.storage import SCHEMA_VERSION, connect


def opens_desk(client) -> bool:
    response = client.get("/desk")
    assert response.status_code in (200, 302)
    return response.status_code == 200


def copy_of_cookie(app, client):
    """A second browser holding a copy of `client`'s session cookie."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def test_a_copied_cookie_stops_working_at_logout(app, client):
    csrf = login_page(client)
    thief = copy_of_cookie(app, client)
    assert opens_desk(thief)
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert not opens_desk(client)
    assert not opens_desk(thief)
    assert client.get("/desk/queue").headers["Location"].startswith("/login")


def test_a_password_reset_ends_desk_sessions_and_by_default_phone_logins(
    app, client, runner, store
):
    login_page(client)
    thief = copy_of_cookie(app, client)
    phone = Phone(client, "supervisor")
    result = runner.invoke(args=["reset-password", "supervisor", "--password", "New-Pass-2026"])
    assert result.exit_code == 0, result.output
    assert "New-Pass-2026" not in result.output
    assert not opens_desk(client) and not opens_desk(thief)
    me = client.get("/api/v1/auth/me", headers=phone.headers)
    assert me.json["error"]["code"] == "token_revoked"
    token = CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    form = {"username": "supervisor", "password": "New-Pass-2026", "csrf_token": token}
    assert client.post("/login", data=form).status_code == 302
    # an admin's reset: the user chooses their own password before any other page (issue 13)
    assert client.get("/desk").headers["Location"] == "/desk/password"


def test_a_reset_can_leave_the_phones_logged_in(client, runner):
    login_page(client)
    phone = Phone(client, "supervisor")
    result = runner.invoke(
        args=["reset-password", "supervisor", "--password", "New-Pass-2026", "--keep-tokens"]
    )
    assert result.exit_code == 0, result.output
    assert not opens_desk(client)
    assert client.get("/api/v1/auth/me", headers=phone.headers).status_code == 200


@pytest.mark.parametrize(
    "command",
    [["deactivate-user", "supervisor"], ["set-role", "supervisor", "admin"]],
    ids=["deactivation", "role change"],
)
def test_deactivation_and_role_change_end_desk_sessions(client, runner, command):
    login_page(client)
    assert runner.invoke(args=command).exit_code == 0
    assert not opens_desk(client)


def test_an_idle_session_ends_after_thirty_minutes(client, clock):
    login_page(client)
    for _ in range(4):  # two hours of work, a page every 29 minutes
        clock.advance(minutes=29)
        assert opens_desk(client)
    clock.advance(minutes=31)
    assert not opens_desk(client)


def test_a_session_ends_twelve_hours_after_login_however_busy(client, clock):
    login_page(client)
    for _ in range(11 * 3 + 2):  # a page every 20 minutes for 11 h 40 min
        clock.advance(minutes=20)
        assert opens_desk(client)
    clock.advance(minutes=21)  # 12 h 1 min after login, 21 min after the last page
    assert not opens_desk(client)


def test_only_a_hash_of_the_session_id_is_stored(client, store):
    login_page(client)
    with client.session_transaction() as session:
        session_id = session["sid"]
        assert set(session) == {"sid", "csrf", "_permanent"}  # no user id in the cookie
    hashes = store.q("SELECT session_hash FROM desk_sessions").scalars().all()
    assert hashes == [hashlib.sha256(session_id.encode()).hexdigest()]


def test_a_login_starts_a_new_session_and_a_new_csrf_token(client):
    before = CSRF.search(client.get("/login").text).group(1)
    after = login_page(client)
    assert after != before
    # A POST still needs the session's token.
    assert client.post("/logout").status_code == 400
    assert opens_desk(client)
    assert client.post("/logout", data={"csrf_token": before}).status_code == 400
    assert client.post("/logout", data={"csrf_token": after}).status_code == 302


def test_the_cookie_is_secure_over_https_and_stays_httponly_and_lax(client):
    token = CSRF.search(client.get("/login", base_url="https://localhost").text).group(1)
    response = client.post(
        "/login",
        base_url="https://localhost",
        data={"username": "supervisor", "password": PASSWORDS["supervisor"], "csrf_token": token},
    )
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    plain = client.get("/login").headers.get("Set-Cookie", "")
    assert "Secure" not in plain


def test_a_version_3_database_is_upgraded_in_place(tmp_path):
    path = tmp_path / "v3.db"
    old = version_3_database(path)
    with old.write():
        old.q("INSERT INTO login_failures VALUES ('admin', '2026-11-20')")
        # As schema-3 code wrote it (today's create_user also appends to the audit chain).
        old.q(
            "INSERT INTO users (username, password_hash, role, display_name, created_at)"
            " VALUES ('w', 'x', 'admin', 'W', 't')"
        )
    old.close()

    store = connect(path)
    assert store.migrate() == SCHEMA_VERSION
    assert store.user(username="w")["role"] == "admin"
    tables = store.table_names()
    assert {"desk_sessions", "login_throttle"} <= tables and "login_failures" not in tables
    assert store.migrate() == SCHEMA_VERSION
    store.close()
