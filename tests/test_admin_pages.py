"""The admin pages under /desk/admin (issue 13): scope, refusals, CSRF, audit with actor.

A county admin (demo `admin`, county 450222) manages the county's users, villages,
facilities, settings and reads the audit log; a township supervisor sees only a read-only
list of their township's people; an admin of another county sees nothing of this one (404);
a POST without the CSRF token is a 400 that changes nothing. Every POST leaves an audit entry
naming its actor.
"""

import io
import json

import pytest
from desk_helpers import desk_session
from openpyxl import Workbook
from werkzeug.security import generate_password_hash

CSRF = "token"
YUNYU = "450222101001"
TOILET = "f5b19f71-ec7a-48ad-9b2b-a06b6ae12c97"  # 陈朝光户厕, 云屿村
GOOD_CSV = (
    "code,name,township,county,county_class,households\n"
    "450222103001,新塘村,新塘镇,柳城县,2,120\n"
    "450222103002,和平村,新塘镇,柳城县,2,95\n"
)
BAD_CSV = (
    "code,name,township,county,county_class,households\n"
    "450222103001,新塘村,新塘镇,柳城县,2,120\n"
    "4502221030,短码村,新塘镇,柳城县,2,80\n"
    "450222103003,,新塘镇,柳城县,9,-4\n"
)


def _as(client, store, username):
    desk_session(client, store, username, csrf=CSRF)
    return client


def _audit_count(store) -> int:
    return store.scalar("SELECT count(*) FROM audit")


def _last_audit(store, action) -> dict:
    return store.row(
        "SELECT * FROM audit WHERE action = :action ORDER BY id DESC LIMIT 1", action=action
    )


def _post(client, url, data=None, **kw):
    return client.post(url, data={"csrf_token": CSRF, **(data or {})}, **kw)


@pytest.fixture
def admin(client, store):
    return _as(client, store, "admin")


@pytest.fixture
def other_admin(app, store):
    """An admin of another county (450223), which holds no village of the demo."""
    store.create_user(
        username="admin2",
        password_hash=generate_password_hash("Harbour-Kite-58"),
        role="admin",
        display_name="邻县管理员",
        at="2026-11-01T00:00:00+08:00",
        scope_county="450223",
    )
    return _as(app.test_client(), store, "admin2")


def test_supervisor_sees_township_people_and_manages_nothing(app, store):
    sup = _as(app.test_client(), store, "supervisor")
    page = sup.get("/desk/admin/users").get_data(as_text=True)
    assert "inspector" in page and "secretary" in page  # 桐浦乡's people
    assert "inspector2" not in page  # 石岭镇's inspector
    assert 'id="create-user"' not in page and ">人员</a>" in page
    inspector = store.user(username="inspector")["id"]
    before = _audit_count(store)
    refused = [
        _post(
            sup,
            "/desk/admin/users",
            {"username": "x", "role": "inspector", "password": "Harbour-Kite-58"},
        ).status_code,
        sup.get(f"/desk/admin/users/{inspector}").status_code,
        _post(sup, f"/desk/admin/users/{inspector}/active", {"active": "0"}).status_code,
        sup.get("/desk/admin/villages").status_code,
        sup.get("/desk/admin/facilities").status_code,
        sup.get("/desk/admin/settings").status_code,
        sup.get("/desk/admin/audit").status_code,
        sup.get("/desk/admin/audit.csv").status_code,
    ]
    assert refused == [403] * len(refused)
    assert store.user(username="x") is None and store.user(id=inspector)["active"]
    assert _audit_count(store) == before
    assert sup.get("/desk/admin/").status_code == 302


def test_another_county_admin_sees_nothing_of_this_county(other_admin, store):
    page = other_admin.get("/desk/admin/users").get_data(as_text=True)
    assert ">inspector<" not in page and "王建华" not in page
    inspector = store.user(username="inspector")["id"]
    before = _audit_count(store)
    statuses = [
        other_admin.get(f"/desk/admin/users/{inspector}").status_code,
        _post(other_admin, f"/desk/admin/users/{inspector}/active", {"active": "0"}).status_code,
        _post(
            other_admin,
            f"/desk/admin/users/{inspector}/password",
            {"password": "Another-pass-2026"},
        ).status_code,
        _post(other_admin, f"/desk/admin/users/{inspector}/tokens/1/revoke").status_code,
        _post(other_admin, f"/desk/admin/facilities/{TOILET}/retire").status_code,
        _post(other_admin, f"/desk/admin/facilities/{TOILET}", {"name": "改名"}).status_code,
    ]
    assert statuses == [404] * len(statuses)
    assert store.user(id=inspector)["active"]
    assert store.facility(TOILET)["name"] == "陈朝光户厕"
    assert _audit_count(store) == before
    villages = other_admin.get("/desk/admin/villages").get_data(as_text=True)
    assert "云屿村" not in villages
    facilities = other_admin.get("/desk/admin/facilities").get_data(as_text=True)
    assert "陈朝光户厕" not in facilities
    # and it cannot hand itself this county's villages or scope
    created = _post(
        other_admin,
        "/desk/admin/users",
        {"username": "spy", "role": "inspector", "villages": YUNYU, "password": "Harbour-Kite-58"},
    )
    assert created.status_code == 302 and store.user(username="spy") is None
    imported = _post(
        other_admin,
        "/desk/admin/villages",
        {"file": (io.BytesIO(GOOD_CSV.encode()), "v.csv")},
        content_type="multipart/form-data",
    )
    assert "不在您管理的县内" in imported.get_data(as_text=True)
    assert store.village("450222103001") is None


def test_missing_csrf_is_400_and_changes_nothing(admin, store):
    inspector = store.user(username="inspector")["id"]
    before = _audit_count(store)
    posts = {
        "/desk/admin/users": {
            "username": "nocsrf",
            "role": "inspector",
            "password": "Harbour-Kite-58",
        },
        f"/desk/admin/users/{inspector}/active": {"active": "0"},
        f"/desk/admin/users/{inspector}/password": {"password": "Another-pass-2026"},
        f"/desk/admin/facilities/{TOILET}/retire": {},
        "/desk/admin/settings": {"EVIDENCE_FAR_METRES": "500"},
    }
    for url, data in posts.items():
        assert admin.post(url, data=data).status_code == 400, url
        assert admin.post(url, data={**data, "csrf_token": "wrong"}).status_code == 400, url
    assert store.user(username="nocsrf") is None and store.user(id=inspector)["active"]
    assert store.admin_settings("450222") == {}
    assert _audit_count(store) == before


def test_admin_manages_a_user_end_to_end(admin, store):
    me = store.user(username="admin")["id"]
    page = admin.get("/desk/admin/users").get_data(as_text=True)
    assert ">管理</a>" in page and 'id="create-user"' in page and "inspector2" in page
    short = _post(
        admin,
        "/desk/admin/users",
        {"username": "zhang", "role": "inspector", "password": "short"},
        follow_redirects=True,
    )
    assert "密码" in short.get_data(as_text=True) and store.user(username="zhang") is None
    created = _post(
        admin,
        "/desk/admin/users",
        {
            "username": "zhang",
            "display_name": "张三",
            "role": "inspector",
            "villages": [YUNYU, "450222101002"],
            "password": "Qingshan-River-92",
        },
    )
    assert created.status_code == 302
    zhang = store.user(username="zhang")
    assert store.assigned_villages(zhang["id"]) == [YUNYU, "450222101002"]
    entry = _last_audit(store, "admin.user.create")
    assert entry["user_id"] == me and entry["entity_id"] == str(zhang["id"])

    url = f"/desk/admin/users/{zhang['id']}"
    assert "张三" in admin.get(url).get_data(as_text=True)
    _post(admin, f"{url}/villages", {"villages": ["450222102001"]})
    assert store.assigned_villages(zhang["id"]) == ["450222102001"]
    assert _last_audit(store, "admin.user.villages")["user_id"] == me
    _post(admin, f"{url}/role", {"role": "supervisor", "township": "石岭镇"})
    zhang = store.user(id=zhang["id"])
    assert (zhang["role"], zhang["scope_township"]) == ("supervisor", "石岭镇")
    assert _last_audit(store, "user.role")["user_id"] == me
    outside = _post(
        admin, f"{url}/role", {"role": "supervisor", "township": "外县镇"}, follow_redirects=True
    )
    assert "不在您的管理范围" in outside.get_data(as_text=True)

    token = store.create_token(
        user_id=zhang["id"],
        token_hash="h" * 64,
        device_id="phone-1",
        label="红米",
        at="2026-11-20T10:00:00+08:00",
    )
    assert "phone-1" in admin.get(url).get_data(as_text=True)
    _post(admin, f"{url}/tokens/{token}/revoke")
    assert store.tokens_of(zhang["id"])[0]["revoked_at"]
    assert _last_audit(store, "admin.token.revoke")["user_id"] == me
    assert _post(admin, f"{url}/tokens/{token}/revoke").status_code == 404

    bad = _post(admin, f"{url}/password", {"password": "1234"}, follow_redirects=True)
    assert "密码未重置" in bad.get_data(as_text=True)
    old_hash = store.user(id=zhang["id"])["password_hash"]
    _post(admin, f"{url}/password", {"password": "Lijiang-Bamboo-47"})
    assert store.user(id=zhang["id"])["password_hash"] != old_hash
    assert _last_audit(store, "admin.user.password")["user_id"] == me

    _post(admin, f"{url}/active", {"active": "0"})
    assert not store.user(id=zhang["id"])["active"]
    assert _last_audit(store, "admin.user.deactivate")["user_id"] == me
    _post(admin, f"{url}/active", {"active": "1"})
    assert store.user(id=zhang["id"])["active"]
    myself = _post(admin, f"/desk/admin/users/{me}/active", {"active": "0"})
    assert myself.status_code == 302 and store.user(id=me)["active"]


def _xlsx(text: str) -> bytes:
    book = Workbook()
    for line in text.strip().splitlines():
        book.active.append([int(c) if c.isdigit() and len(c) < 6 else c for c in line.split(",")])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_village_import_previews_errors_and_bad_files_write_nothing(admin, store):
    before = store.scalar("SELECT count(*) FROM villages")
    changes = store.scalar("SELECT count(*) FROM changes")
    page = _post(
        admin,
        "/desk/admin/villages",
        {"file": (io.BytesIO(BAD_CSV.encode()), "v.csv")},
        content_type="multipart/form-data",
    ).get_data(as_text=True)
    assert "未导入任何村" in page and "确认导入" not in page
    assert "<td>3</td>" in page and "<td>4</td>" in page  # the rows of the errors
    # confirming the bad text by hand still writes nothing
    forced = _post(admin, "/desk/admin/villages", {"confirm": "1", "text": BAD_CSV})
    assert "未导入任何村" in forced.get_data(as_text=True)
    assert store.scalar("SELECT count(*) FROM villages") == before
    assert store.scalar("SELECT count(*) FROM changes") == changes

    preview = _post(
        admin,
        "/desk/admin/villages",
        {"file": (io.BytesIO(_xlsx(GOOD_CSV)), "v.xlsx")},
        content_type="multipart/form-data",
    ).get_data(as_text=True)
    assert "预览：2 个村" in preview and "新塘村" in preview
    assert store.village("450222103001") is None  # a preview writes nothing
    done = _post(admin, "/desk/admin/villages", {"confirm": "1", "text": GOOD_CSV})
    assert done.status_code == 302
    assert store.village("450222103002")["households"] == 95
    entry = _last_audit(store, "admin.village.import")
    assert entry["user_id"] == store.user(username="admin")["id"]
    assert json.loads(entry["detail"])["count"] == 2


def test_facilities_filter_edit_and_retire(admin, store):
    listed = admin.get(f"/desk/admin/facilities?village={YUNYU}&kind=toilet&q=陈朝光")
    text = listed.get_data(as_text=True)
    assert "陈朝光户厕" in text and "韦桂芳户厕" not in text
    # a position typed in GCJ-02 (AMap) is stored as WGS-84 with its datum
    _post(
        admin,
        f"/desk/admin/facilities/{TOILET}",
        {"name": "陈朝光户厕（新）", "lat": "24.7610", "lon": "109.3000", "datum": "gcj02"},
    )
    facility = store.facility(TOILET)
    assert facility["name"] == "陈朝光户厕（新）" and facility["datum"] == "gcj02"
    assert facility["lat"] != 24.7610 and abs(facility["lat"] - 24.7610) < 0.01
    assert _last_audit(store, "facility.edit")["user_id"] == store.user(username="admin")["id"]
    bad = _post(
        admin,
        f"/desk/admin/facilities/{TOILET}",
        {"name": "x", "lat": "北纬"},
        follow_redirects=True,
    )
    assert "坐标须为数字" in bad.get_data(as_text=True)

    assert _post(admin, f"/desk/admin/facilities/{TOILET}/retire").status_code == 302
    facility = store.facility(TOILET)
    assert facility["state"]["status"]["value"] == "retired"
    obs = json.loads(_last_audit(store, "admin.facility.retire")["detail"])["observation"]
    assert store.scalar("SELECT count(*) FROM observations WHERE id = :id", id=obs) == 1
    assert store.scalar("SELECT count(*) FROM facilities WHERE id = :id", id=TOILET) == 1
    assert "已撤销" in admin.get(f"/desk/admin/facilities?village={YUNYU}").get_data(as_text=True)


def test_settings_override_config_and_are_audited(admin, app, store):
    from server.admin import setting
    from server.evidence import settings_from
    from server.overrides import effective_config

    page = admin.get("/desk/admin/settings").get_data(as_text=True)
    assert "EVIDENCE_FAR_METRES" in page and "县 450222" in page
    wrong = _post(
        admin, "/desk/admin/settings", {"EVIDENCE_FAR_METRES": "abc"}, follow_redirects=True
    )
    assert "须为数字" in wrong.get_data(as_text=True) and store.admin_settings("450222") == {}
    _post(
        admin,
        "/desk/admin/settings",
        {"EVIDENCE_FAR_METRES": "350", "COUNTY_CLASS": "1", "TIDINESS_TARGET": ""},
    )
    assert store.admin_settings("450222") == {"EVIDENCE_FAR_METRES": 350, "COUNTY_CLASS": 1}
    entries = store.rows("SELECT * FROM audit WHERE action = 'settings.change' ORDER BY id")
    assert [e["entity_id"] for e in entries] == [
        "450222:EVIDENCE_FAR_METRES",
        "450222:COUNTY_CLASS",
    ]
    assert {e["user_id"] for e in entries} == {store.user(username="admin")["id"]}
    assert json.loads(entries[0]["detail"]) == {"old": None, "new": 350}
    with app.app_context():
        assert setting("EVIDENCE_FAR_METRES", "450222", store=store) == 350
        assert setting("EVIDENCE_FAR_METRES", "450223", store=store) == 200  # config value
    assert settings_from(effective_config(app.config, store, "450222")).far_metres == 350
    assert settings_from(app.config).far_metres == 200


def test_settings_take_effect_on_judging_and_the_indicators(admin, app, store, client):
    """A county's far threshold decides the flag on a photo 2 km away; its county class decides
    the toilet targets the indicators judge against."""
    from conftest import Phone
    from test_media_api import TOILET_POS, inspect, noise_photo, retagged

    from server import indicators
    from server.overrides import villages_with_class

    def sanitary_target():
        villages = villages_with_class(store, app.config)
        report = indicators.report(villages, {}, visible=[YUNYU], tidiness_target=75)
        return report["villages"][0]["cells"]["sanitary"]["target"]

    phone = Phone(client, "inspector")
    toilets = [f["id"] for f in store.facilities(YUNYU) if f["kind"] == "toilet"]
    far = retagged("canon_hdr_NO.jpg", lat=TOILET_POS[0] + 0.018, lon=TOILET_POS[1])
    flagged = inspect(phone, toilets[0], far, noise_photo(41))
    assert "far_from_facility" in {f["code"] for f in store.flags_of(flagged["id"])}
    assert sanitary_target() == 0.98  # 柳城县 is registered as a class 2 county

    _post(admin, "/desk/admin/settings", {"EVIDENCE_FAR_METRES": "5000", "COUNTY_CLASS": "1"})
    again = retagged("canon_hdr_NO.jpg", lat=TOILET_POS[0] + 0.018, lon=TOILET_POS[1], quality=80)
    passed = inspect(phone, toilets[1], again, noise_photo(42))
    assert "far_from_facility" not in {f["code"] for f in store.flags_of(passed["id"])}
    assert sanitary_target() == 1.00
    assert admin.get("/desk/indicators").status_code == 200


def test_audit_page_filters_and_csv_and_cli_actor(admin, store, runner):
    assert runner.invoke(args=["deactivate-user", "inspector2"]).exit_code == 0
    cli = _last_audit(store, "user.deactivate")
    assert cli["user_id"] is None and json.loads(cli["detail"])["os_user"]
    os_user = json.loads(cli["detail"])["os_user"]
    _post(admin, "/desk/admin/settings", {"EVIDENCE_FAR_METRES": "300"})
    page = admin.get("/desk/admin/audit?action=settings.").get_data(as_text=True)
    assert "<td>settings.change</td>" in page and "<td>user.deactivate</td>" not in page
    by_cli = admin.get(f"/desk/admin/audit?actor=cli:{os_user}").get_data(as_text=True)
    assert "<td>user.deactivate</td>" in by_cli and "<td>settings.change</td>" not in by_cli
    assert f"<td>cli:{os_user}</td>" in by_cli
    empty = admin.get("/desk/admin/audit?since=2000-01-01&until=2000-01-02")
    assert "没有记录" in empty.get_data(as_text=True)
    export = admin.get("/desk/admin/audit.csv?entity=setting")
    body = export.get_data(as_text=True)
    assert export.mimetype == "text/csv" and "个人信息" in body
    assert "settings.change" in body and "user.deactivate" not in body
    # the pooled connection's audit is itself again: a page action names its user
    assert "audit" not in vars(store)
    _post(admin, "/desk/admin/settings", {"EVIDENCE_FAR_METRES": "310"})
    assert "os_user" not in (_last_audit(store, "settings.change")["detail"])
    assert _last_audit(store, "admin.audit.export")["user_id"] == store.user(username="admin")["id"]


def test_passwords_go_through_the_policy_in_hash_password(admin, store, monkeypatch):
    """Once `auth.hash_password` takes the username (the password policy, h/auth), its
    refusal is what the page shows, and nothing is written."""
    from server import auth

    def policy_hash(password, *, username):
        if username in password:
            raise ValueError("密码不能包含用户名")
        return "scrypt:policy$" + password

    monkeypatch.setattr(auth, "hash_password", policy_hash)
    refused = _post(
        admin,
        "/desk/admin/users",
        {"username": "liu", "role": "inspector", "password": "liu-Long-enough-1"},
        follow_redirects=True,
    )
    assert "密码不能包含用户名" in refused.get_data(as_text=True)
    assert store.user(username="liu") is None
    inspector = store.user(username="inspector")
    reset = _post(
        admin,
        f"/desk/admin/users/{inspector['id']}/password",
        {"password": "has-inspector-in-it"},
        follow_redirects=True,
    )
    assert "密码未重置：密码不能包含用户名" in reset.get_data(as_text=True)
    assert store.user(id=inspector["id"])["password_hash"] == inspector["password_hash"]
    _post(admin, f"/desk/admin/users/{inspector['id']}/password", {"password": "Fine-1"})
    assert store.user(id=inspector["id"])["password_hash"] == "scrypt:policy$Fine-1"
