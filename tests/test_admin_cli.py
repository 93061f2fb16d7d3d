"""The admin commands: users, roles, villages, passwords, device tokens; each one audited."""

from conftest import PASSWORDS, SHILING, YUNYU, Phone

from server.auth import check_password


def audit_actions(store, user_id):
    return [e["action"] for e in store.audit_entries(entity_id=str(user_id))]


def test_users_lists_every_user_with_role_scope_and_counts(runner, client):
    Phone(client, "inspector")
    result = runner.invoke(args=["users"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert set(lines) == set(PASSWORDS)
    assert "inspector" in lines["inspector"] and "村   3" in lines["inspector"]
    assert "设备  1" in lines["inspector"]
    assert "桐浦乡" in lines["supervisor"]


def test_set_role_changes_role_and_scope(runner, store):
    user = store.user(username="inspector2")
    result = runner.invoke(args=["set-role", "inspector2", "supervisor", "--township", "石岭镇"])
    assert result.exit_code == 0, result.output
    changed = store.user(username="inspector2")
    assert (changed["role"], changed["scope_township"]) == ("supervisor", "石岭镇")
    assert "user.role" in audit_actions(store, user["id"])
    result = runner.invoke(args=["set-role", "inspector2", "inspector", "--township", "石岭镇"])
    assert result.exit_code != 0  # inspectors are scoped by their villages
    assert runner.invoke(args=["set-role", "nobody", "admin"]).exit_code != 0
    assert runner.invoke(args=["set-role", "inspector2", "king"]).exit_code != 0
    result = runner.invoke(args=["set-role", "inspector2", "supervisor"])
    assert "看不到任何村" in result.output


def test_assign_and_unassign_villages(runner, store, client):
    user = store.user(username="inspector")
    result = runner.invoke(args=["assign-villages", "inspector", SHILING])
    assert result.exit_code == 0, result.output
    assert SHILING in store.assigned_villages(user["id"])
    assert runner.invoke(args=["assign-villages", "inspector", "999"]).exit_code != 0
    result = runner.invoke(args=["unassign-villages", "inspector", YUNYU, SHILING])
    assert result.exit_code == 0 and "取消 2 个村" in result.output
    assert store.assigned_villages(user["id"]) == ["450222101002", "450222101003"]
    assert {"user.assign", "user.unassign"} <= set(audit_actions(store, user["id"]))
    # the phone's scope follows at once
    me = client.get("/api/v1/auth/me", headers=Phone(client, "inspector").headers)
    assert YUNYU not in me.json["villages"]


def test_reset_password(app, runner, store, client):
    user = store.user(username="inspector")
    result = runner.invoke(args=["reset-password", "inspector"], input="New-Pass-2026\n" * 2)
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert check_password(store.user(username="inspector"), "New-Pass-2026")
    assert "user.password" in audit_actions(store, user["id"])
    result = runner.invoke(args=["reset-password", "inspector", "--password", "short"])
    assert result.exit_code != 0 and "至少 10 位" in result.output


def test_list_and_revoke_device_tokens(runner, store, client):
    lost, kept = Phone(client, "inspector"), Phone(client, "inspector")
    result = runner.invoke(args=["tokens", "inspector"])
    assert result.exit_code == 0 and lost.device_id in result.output
    assert lost.token not in result.output  # never the token itself
    token_id = next(t["id"] for t in store.tokens_of(store.user(username="inspector")["id"])
                    if t["device_id"] == lost.device_id)  # fmt: skip
    result = runner.invoke(args=["revoke-token", "inspector", str(token_id)])
    assert result.exit_code == 0, result.output
    assert client.get("/api/v1/auth/me", headers=lost.headers).json["error"]["code"] == (
        "token_revoked"
    )
    assert client.get("/api/v1/auth/me", headers=kept.headers).status_code == 200
    assert "token.revoke" in [e["action"] for e in store.audit_entries(entity_id=str(token_id))]
    assert runner.invoke(args=["revoke-token", "inspector", str(token_id)]).exit_code != 0
    assert runner.invoke(args=["revoke-token", "secretary", str(token_id)]).exit_code != 0
    result = runner.invoke(args=["revoke-token", "inspector", "--all"])
    assert result.exit_code == 0
    assert client.get("/api/v1/auth/me", headers=kept.headers).status_code == 401


def test_deactivate_stops_logins_and_revokes_tokens_then_activate(runner, store, client):
    phone = Phone(client, "inspector")
    user = store.user(username="inspector")
    result = runner.invoke(args=["deactivate-user", "inspector"])
    assert result.exit_code == 0 and "注销设备登录 1 个" in result.output
    assert client.get("/api/v1/auth/me", headers=phone.headers).status_code == 401
    login = client.post(
        "/api/v1/auth/login", json={"username": "inspector", "password": PASSWORDS["inspector"]}
    )
    assert login.status_code == 401
    assert "停用" in runner.invoke(args=["users"]).output
    assert runner.invoke(args=["activate-user", "inspector"]).exit_code == 0
    Phone(client, "inspector")  # logs in again
    assert audit_actions(store, user["id"])[:2] == ["user.activate", "user.deactivate"]
    assert store.user(username="inspector")["active"] == 1
