"""Issue 13: the password policy at its boundaries, choosing a new password at first login,
after an admin's reset and when it has expired (desk and phone API), and TOTP two-factor login
with real codes computed by pyotp from the enrolled secret at the fixed test clock."""

import re

import pyotp
import pytest
from conftest import PASSWORDS
from test_supervisor import CSRF

from server import password_policy
from server.demo import demo_data
from server.password_policy import character_classes, problems

# -- the policy, pure ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "accepted"),
    [
        ("Qzvkwmr-1", False),  # 9 characters, 4 classes
        ("Qzvkwmr-12", True),  # 10
        ("qzvkwmrtxj", False),  # 1 class
        ("qzvkwmrtx1", False),  # 2 classes: lower + digit
        ("qzvkwmrt-1", True),  # 3: lower, other, digit
        ("QZVKWMRT-1", True),  # 3: upper, other, digit
        ("Qzvkwmrtxj", False),  # 2: lower + upper
        ("Qzvkwmrtx1", True),  # 3: lower, upper, digit
        ("Qzvkwmrtx-", True),  # 3: lower, upper, other
        ("qzvkwmrtx-1", True),
        ("天地玄黄宇宙洪荒A1", True),  # Chinese counts as "other"; upper, digit
    ],
)
def test_length_and_classes_at_their_boundaries(password, accepted):
    assert (problems(password) == []) is accepted, problems(password)


def test_each_class_counts_once():
    assert [character_classes(p) for p in ("aaa", "aA", "aA1", "aA1-", "----", "")] == [
        1,
        2,
        3,
        4,
        1,
        0,
    ]


def test_messages_say_each_reason_in_chinese():
    assert problems("zq") == [
        "密码至少 10 位",
        "密码须包含小写字母、大写字母、数字、其他符号中的至少 3 类",
    ]


@pytest.mark.parametrize(
    ("password", "username", "accepted"),
    [
        ("Xx-liming-2026", "liming", False),
        ("Xx-LiMing-2026", "liming", False),  # case-insensitive
        ("Xx-liming-2026", "LIMING", False),
        ("Xx-limin-2026", "liming", True),  # a part of the name is fine
        ("Xx-abc-20261", "abc", False),  # 3 characters: checked
        ("Xx-ab-202612", "ab", True),  # 2: too short to forbid
    ],
)
def test_the_username_may_not_be_inside(password, username, accepted):
    assert (problems(password, username) == []) is accepted, problems(password, username)


@pytest.mark.parametrize(
    "password", ["Password123", "Password2026!", "Qwertyuiop1", "Sunshine@123"]
)
def test_common_passwords_are_refused_even_with_classes_and_length(password):
    assert problems(password) == ["密码过于常见，容易被猜中，请换一个"]


def test_the_shipped_list_is_the_documented_one():
    words = password_policy.common_passwords()
    assert 19_000 < len(words) < 21_000 and "123456" in words and "password" in words
    assert (password_policy.COMMON_FILE.parent / "COMMON-PASSWORDS.md").is_file()
    assert (password_policy.COMMON_FILE.parent / "LICENSE").is_file()


def test_the_demo_passwords_follow_the_policy():
    for user in demo_data()["users"]:
        assert problems(user["password"], user["username"]) == [], user["username"]


# -- helpers -----------------------------------------------------------------------------------


def post_login(client, username, password):
    token = CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    form = {"username": username, "password": password, "csrf_token": token}
    return client.post("/login", data=form)


def form_csrf(client, url) -> str:
    return CSRF.search(client.get(url).get_data(as_text=True)).group(1)


def api_login(client, username, password, **extra):
    return client.post(
        "/api/v1/auth/login", json={"username": username, "password": password, **extra}
    )


# -- first login, admin reset, maximum age ---------------------------------------------------


def test_a_user_made_by_an_admin_chooses_their_password_on_the_phone(client, runner, store):
    weak = runner.invoke(
        args=["create-user", "zhang", "--role", "inspector", "--password", "zhang-2026a"]
    )
    assert weak.exit_code != 0 and "密码不能包含用户名" in weak.output
    made = runner.invoke(
        args=["create-user", "zhang", "--role", "inspector", "--password", "Start-Pass-91"]
    )
    assert made.exit_code == 0, made.output
    refused = api_login(client, "zhang", "Start-Pass-91")
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "password_change_required"
    assert (
        refused.json["error"]["reason"] == "must_change"
        and "新密码" in refused.json["error"]["message"]
    )

    change = "/api/v1/auth/password"
    wrong = client.post(
        change, json={"username": "zhang", "password": "nope", "new_password": "Mine-Own-77"}
    )
    assert wrong.status_code == 401 and wrong.json["error"]["code"] == "login_failed"
    body = {"username": "zhang", "password": "Start-Pass-91"}
    weak = client.post(change, json={**body, "new_password": "zhang12345"})
    assert weak.status_code == 422 and weak.json["error"]["code"] == "password_weak"
    assert "密码不能包含用户名" in weak.json["error"]["problems"]
    same = client.post(change, json={**body, "new_password": "Start-Pass-91"})
    assert same.json["error"]["code"] == "password_reused"
    assert store.user(username="zhang")["must_change_password"] == 1  # nothing written yet
    done = client.post(change, json={**body, "new_password": "Mine-Own-77"})
    assert done.status_code == 200 and done.json == {"changed": True}
    assert api_login(client, "zhang", "Start-Pass-91").status_code == 401
    assert api_login(client, "zhang", "Mine-Own-77").status_code == 200


def test_after_an_admin_reset_the_desk_asks_for_a_new_password_first(client, runner, store):
    reset = runner.invoke(args=["reset-password", "supervisor", "--password", "Reset-By-Admin-1"])
    assert reset.exit_code == 0 and "下次登录须设置新密码" in reset.output
    assert post_login(client, "supervisor", "Reset-By-Admin-1").status_code == 302
    for page in ("/desk", "/desk/queue"):
        assert client.get(page).headers["Location"] == "/desk/password"
    page = client.get("/desk/password").get_data(as_text=True)
    assert "管理员重置密码后" in page
    csrf = form_csrf(client, "/desk/password")
    form = {"password": "Reset-By-Admin-1", "csrf_token": csrf}
    weak = client.post(
        "/desk/password", data={**form, "new_password": "abcdefghi1", "new_password2": "abcdefghi1"}
    )
    assert weak.status_code == 200 and "至少 3 类" in weak.get_data(as_text=True)
    ok = client.post(
        "/desk/password",
        data={**form, "new_password": "Desk-Own-2026x", "new_password2": "Desk-Own-2026x"},
    )
    assert ok.status_code == 302 and ok.headers["Location"] == "/desk"
    assert client.get("/desk").status_code == 200
    user = store.user(username="supervisor")
    assert user["must_change_password"] == 0


def test_an_old_password_must_be_changed_when_a_maximum_age_is_set(app, client, clock):
    app.config["PASSWORD_MAX_AGE_DAYS"] = 90
    assert api_login(client, "inspector", PASSWORDS["inspector"]).status_code == 200
    clock.advance(days=91)
    expired = api_login(client, "inspector", PASSWORDS["inspector"])
    assert expired.status_code == 403 and expired.json["error"]["reason"] == "expired"
    post_login(client, "supervisor", PASSWORDS["supervisor"])
    assert client.get("/desk").headers["Location"] == "/desk/password"
    assert "有效期" in client.get("/desk/password").get_data(as_text=True)
    app.config["PASSWORD_MAX_AGE_DAYS"] = 0
    assert client.get("/desk").status_code == 200


# -- TOTP --------------------------------------------------------------------------------------


def enrol(client, clock) -> tuple[str, list[str]]:
    """Enrol on /desk/totp with a real code; returns the secret and the recovery codes."""
    page = client.get("/desk/totp").get_data(as_text=True)
    assert "<svg" in page and 'class="segno"' in page
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    code = pyotp.TOTP(secret).at(clock.now)
    csrf = CSRF.search(page).group(1)
    done = client.post("/desk/totp", data={"code": code, "csrf_token": csrf}).get_data(as_text=True)
    codes = re.findall(r"<li><code>([a-z0-9]{4}-[a-z0-9]{4})</code></li>", done)
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


def logout(client):
    client.post("/logout", data={"csrf_token": form_csrf(client, "/desk")})


def second_step(client, code):
    csrf = form_csrf(client, "/login/code")
    return client.post("/login/code", data={"code": code, "csrf_token": csrf})


def test_totp_enrolment_then_login_with_a_real_code_and_recovery_codes(app, client, clock, store):
    app.config["TOTP_REQUIRED_ROLES"] = "admin"
    password = PASSWORDS["admin"]
    post_login(client, "admin", password)
    assert client.get("/desk").headers["Location"] == "/desk/totp"  # mandatory for admins
    bad = client.post(
        "/desk/totp", data={"code": "000000", "csrf_token": form_csrf(client, "/desk/totp")}
    )
    assert "验证码不正确" in bad.get_data(as_text=True)
    secret, codes = enrol(client, clock)
    assert client.get("/desk").status_code == 200
    row = store.user(username="admin")
    assert secret not in row["totp_secret"] and not any(c in row["totp_recovery"] for c in codes)
    logout(client)

    # password, then the code page; the session starts only after a right code
    assert post_login(client, "admin", password).headers["Location"] == "/login/code"
    sessions = "SELECT count(*) FROM desk_sessions WHERE user_id = :user_id"
    assert store.scalar(sessions, user_id=row["id"]) == 0
    wrong = second_step(
        client, "123456" if pyotp.TOTP(secret).at(clock.now) != "123456" else "654321"
    )
    assert "验证码错误" in wrong.get_data(as_text=True)
    replay = second_step(client, pyotp.TOTP(secret).at(clock.now))  # used at enrolment
    assert "验证码错误" in replay.get_data(as_text=True)
    clock.advance(seconds=30)
    ok = second_step(client, pyotp.TOTP(secret).at(clock.now))
    assert ok.status_code == 302 and ok.headers["Location"] == "/desk"
    assert client.get("/desk").status_code == 200
    logout(client)

    # a recovery code works once
    post_login(client, "admin", password)
    assert second_step(client, codes[3].upper()).headers["Location"] == "/desk"
    logout(client)
    post_login(client, "admin", password)
    again = second_step(client, codes[3])
    assert again.status_code == 200 and "验证码错误或已使用" in again.get_data(as_text=True)

    # the phone API needs the code too
    assert api_login(client, "admin", password).json["error"]["code"] == "second_factor_required"
    clock.advance(seconds=30)
    assert (
        api_login(client, "admin", password, code=pyotp.TOTP(secret).at(clock.now)).status_code
        == 200
    )

    # the code page is for a moment after the password only
    post_login(client, "admin", password)
    clock.advance(minutes=6)
    assert client.get("/login/code").headers["Location"] == "/login"


def test_wrong_codes_are_counted_by_the_login_throttle(app, client, clock):
    post_login(client, "supervisor", PASSWORDS["supervisor"])
    secret, _ = enrol(client, clock)  # any desk user may enrol; only the setting makes it mandatory
    logout(client)
    post_login(client, "supervisor", PASSWORDS["supervisor"])
    statuses = [
        second_step(client, "000001").status_code
        for _ in range(app.config["LOGIN_MAX_FAILURES"] + 1)
    ]
    assert statuses[-1] == 429 and 200 in statuses
    # refused before the code is looked at: even a right one waits
    assert second_step(client, pyotp.TOTP(secret).at(clock.now)).status_code == 429


def test_only_the_named_roles_must_enrol(app, client):
    app.config["TOTP_REQUIRED_ROLES"] = "admin"
    post_login(client, "supervisor", PASSWORDS["supervisor"])
    assert client.get("/desk").status_code == 200
    app.config["TOTP_REQUIRED_ROLES"] = "admin,supervisor"
    assert client.get("/desk").headers["Location"] == "/desk/totp"
    phone = api_login(client, "supervisor", PASSWORDS["supervisor"])
    assert phone.status_code == 403
    assert phone.json["error"]["code"] == "second_factor_enrolment_required"
    assert "您的角色须使用两步验证" in client.get("/desk/totp").get_data(as_text=True)


def test_reset_2fa_clears_the_second_factor(app, client, clock, runner, store):
    post_login(client, "supervisor", PASSWORDS["supervisor"])
    enrol(client, clock)
    assert runner.invoke(args=["reset-2fa", "inspector"]).exit_code != 0  # never enrolled
    result = runner.invoke(args=["reset-2fa", "supervisor"])
    assert result.exit_code == 0, result.output
    assert store.user(username="supervisor")["totp_secret"] is None
    assert client.get("/desk").headers["Location"].startswith("/login")  # session ended
    assert post_login(client, "supervisor", PASSWORDS["supervisor"]).headers["Location"] == "/desk"
