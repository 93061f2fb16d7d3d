"""Logins, device tokens and the JSON 401/403 answers."""

from conftest import PASSWORDS, Phone


def login(client, username, password, **extra):
    return client.post(
        "/api/v1/auth/login", json={"username": username, "password": password, **extra}
    )


def test_login_returns_a_token_and_the_users_villages(client):
    response = login(client, "inspector", PASSWORDS["inspector"], device_id="phone-1")
    assert response.status_code == 200
    body = response.json
    assert len(body["token"]) >= 40
    assert body["user"]["role"] == "inspector"
    assert body["user"]["role_name"] == "工作队员"
    assert body["villages"] == ["450222101001", "450222101002", "450222101003"]
    assert body["device_id"] == "phone-1"


def database_text(store) -> str:
    """Every row of every table, as text (on either engine)."""
    return "\n".join(
        repr(row)
        for table in sorted(store.table_names())
        for row in store.q(f"SELECT * FROM {table}")
    )


def test_token_is_stored_hashed_not_in_clear(client, store):
    token = login(client, "inspector", PASSWORDS["inspector"]).json["token"]
    dump = database_text(store)
    assert token not in dump
    assert "$scrypt$" not in token
    assert PASSWORDS["inspector"] not in dump


def test_passwords_use_a_slow_salted_hash(store):
    assert store.user(username="inspector")["password_hash"].startswith("scrypt:")


def test_wrong_password_and_unknown_user_get_the_same_answer(client):
    wrong = login(client, "inspector", "nope")
    unknown = login(client, "nobody", "nope")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json
    assert wrong.json["error"]["code"] == "login_failed"
    assert wrong.json["error"]["message"] == "用户名或密码错误"


def test_login_without_fields_is_a_clear_400(client):
    response = client.post("/api/v1/auth/login", json={"username": "inspector"})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid"


def test_login_refuses_a_malformed_device_id(client):
    response = login(client, "inspector", PASSWORDS["inspector"], device_id="has space")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_device_id"


def test_api_without_token_is_401_with_code(client):
    response = client.get("/api/v1/sync/pull")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "token_missing"


def test_api_with_unknown_token_is_401(client):
    response = client.get("/api/v1/sync/pull", headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "token_invalid"


def test_tokens_are_listed_per_user_without_the_secret(client):
    first, second = Phone(client, "inspector"), Phone(client, "inspector")
    listed = client.get("/api/v1/auth/tokens", headers=first.headers).json["tokens"]
    assert [t["device_id"] for t in listed] == [first.device_id, second.device_id]
    assert [t["current"] for t in listed] == [True, False]
    assert all("token" not in t and "token_hash" not in t for t in listed)


def test_revoked_token_stops_working_and_other_devices_keep_working(client):
    lost, kept = Phone(client, "inspector"), Phone(client, "inspector")
    lost_id = client.get("/api/v1/auth/tokens", headers=lost.headers).json["tokens"][0]["id"]
    response = client.delete(f"/api/v1/auth/tokens/{lost_id}", headers=kept.headers)
    assert response.status_code == 200
    after = lost.pull()
    assert after.status_code == 401
    assert after.json["error"]["code"] == "token_revoked"
    assert kept.pull().status_code == 200


def test_a_user_cannot_revoke_someone_elses_token(client):
    mine, theirs = Phone(client, "inspector"), Phone(client, "inspector2")
    their_id = client.get("/api/v1/auth/tokens", headers=theirs.headers).json["tokens"][0]["id"]
    response = client.delete(f"/api/v1/auth/tokens/{their_id}", headers=mine.headers)
    assert response.status_code == 404
    assert theirs.pull().status_code == 200


def test_logout_revokes_the_current_token(client):
    phone = Phone(client, "secretary")
    assert client.post("/api/v1/auth/logout", headers=phone.headers).status_code == 200
    assert phone.pull().json["error"]["code"] == "token_revoked"


def test_token_unused_for_months_expires(client, clock):
    phone = Phone(client, "inspector")
    clock.advance(days=181)
    response = phone.pull()
    assert response.status_code == 401
    assert response.json["error"]["code"] == "token_expired"


def test_revocation_is_audited(client, store):
    phone = Phone(client, "inspector")
    client.post("/api/v1/auth/logout", headers=phone.headers)
    actions = [e["action"] for e in store.audit_entries()]
    assert "token.revoke" in actions and "token.create" in actions


def test_supervisor_scope_is_their_township(client):
    supervisor = Phone(client, "supervisor")
    villages = client.get("/api/v1/auth/me", headers=supervisor.headers).json["villages"]
    assert villages == ["450222101001", "450222101002", "450222101003"]


def test_admin_scope_is_the_county(client):
    admin = Phone(client, "admin")
    villages = client.get("/api/v1/auth/me", headers=admin.headers).json["villages"]
    assert len(villages) == 5


def test_a_right_password_clears_earlier_failures(client):
    for _ in range(4):
        login(client, "inspector", "guess")
    assert login(client, "inspector", PASSWORDS["inspector"]).status_code == 200
    for _ in range(4):
        login(client, "inspector", "guess")
    assert login(client, "inspector", PASSWORDS["inspector"]).status_code == 200


def test_a_token_id_beyond_64_bits_is_not_found_not_a_server_error(client):
    token = login(client, "inspector", PASSWORDS["inspector"]).json["token"]
    response = client.delete(
        "/api/v1/auth/tokens/99999999999999999999999",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 404
    assert response.json["error"]["code"] == "token_not_found"


def test_a_device_label_must_be_short_text(client, store):
    for label in ({"a": 1}, ["phone"], "长" * 101):
        response = login(client, "inspector", PASSWORDS["inspector"], label=label)
        assert response.status_code == 400
        assert response.json["error"]["code"] == "invalid_label"
    assert store.scalar("SELECT count(*) FROM tokens") == 0
