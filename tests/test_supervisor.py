"""The supervisors' pages: spot-check queue, a submission, photos, reviews, monthly tasks.

Each page and action through the Flask test client, including the forbidden ones: another
township's supervisor sees nothing of 桐浦乡, inspectors cannot log in to the pages, and a
POST without the session's CSRF token is refused and changes nothing.
"""

import io
import random
import re
import uuid

import pytest
from conftest import (
    PASSWORDS,
    START,
    YUNYU,
    Phone,
    party_day_report,
    photo,
    photo_exif,
    sha,
    submission,
    toilet_answers,
    upload_photo,
)
from PIL import Image

from server.auth import hash_password

TONGPU_2 = "450222101002"  # 桐浦村
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# -- helpers (also used by the conflict and browser tests) -----------------------------------


def login_page(client, username="supervisor", password=None) -> str:
    """Log in through the page form; returns the session's CSRF token."""
    page = client.get("/login")
    token = CSRF.search(page.get_data(as_text=True)).group(1)
    response = client.post(
        "/login",
        data={
            "username": username,
            "password": password or PASSWORDS[username],
            "csrf_token": token,
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return csrf_of(client)


def csrf_of(client) -> str:
    page = client.get("/desk")
    assert page.status_code == 200
    return CSRF.search(page.get_data(as_text=True)).group(1)


def add_user(store, username, *, role="supervisor", township="石岭镇", password="Pw-12345678"):
    user_id = store.create_user(
        username=username,
        password_hash=hash_password(password, username=username),
        role=role,
        display_name=f"{username}（{township}督查）",
        at=START.isoformat(),
        scope_township=township,
    )
    return user_id, password


def jpeg(seed: int, *, lat=None, lon=None, taken="2026:11:20 10:25:00") -> bytes:
    """A distinct small photo with EXIF time (and GPS when given)."""
    rng = random.Random(seed)
    img = Image.new("RGB", (32, 24))
    img.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(32 * 24)])
    img = img.resize((480, 360), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, exif=photo_exif(taken, lat=lat, lon=lon))
    return buf.getvalue()


def upload(client, headers, data: bytes):
    response = upload_photo(client, headers, data)
    assert response.status_code == 200, response.get_json()
    return response


def inspect_with_photos(phone, facility_id, photos: list[bytes], **answer_overrides):
    """A toilet inspection whose photos are uploaded (so the pipeline judges it)."""
    first, *rest = photos
    answers = toilet_answers(
        photo_outside=[photo(sha(first))],
        photo_inside=[photo(sha(p)) for p in rest] or [photo()],
        **answer_overrides,
    )
    item = submission(facility_id, phone.clock(minutes=1), answers=answers)
    result = phone.push([item]).json["results"][0]
    assert result["status"] in ("waiting_for_photos", "accepted"), result
    for data in photos:
        if sha(data) in result.get("missing", []):
            upload(phone.client, phone.headers, data)
    return item


def quick_submission(phone, facility_id, **answer_overrides) -> str:
    """An inspection whose photos never arrive (state received)."""
    item = submission(
        facility_id, phone.clock(minutes=1), answers=toilet_answers(**answer_overrides)
    )
    assert phone.push([item]).status_code == 200
    return item["id"]


def set_flags(store, submission_id, codes, score, state="complete"):
    """Evidence flags as the pipeline would store them (for queue ordering and filters)."""
    flags = [
        {"code": c, "photo": None, "figures": {"n": i}, "message": {"zh": f"问题{c}", "en": c}}
        for i, c in enumerate(codes)
    ]
    store.set_evidence(submission_id, flags=flags, risk_score=score, state=state, at="x")


def ids_in_page(html: str) -> list[str]:
    return re.findall(r"/desk/submissions/([0-9a-f-]{36})", html)


@pytest.fixture
def toilets(facilities):
    return {
        "yunyu": facilities[(YUNYU, "toilet")]["id"],
        "tongpu": facilities[(TONGPU_2, "toilet")]["id"],
    }


# -- login and roles -------------------------------------------------------------------------


def test_pages_need_a_login(client):
    for path in ("/desk/queue", "/desk/conflicts", "/desk/tasks", "/desk/submissions/x"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")


def test_an_inspector_cannot_log_in_to_the_pages(client):
    page = client.get("/login")
    token = CSRF.search(page.get_data(as_text=True)).group(1)
    response = client.post(
        "/login",
        data={"username": "inspector", "password": PASSWORDS["inspector"], "csrf_token": token},
    )
    assert response.status_code == 200
    assert "请使用手机应用登录" in response.get_data(as_text=True)
    assert client.get("/desk/queue").status_code == 302


def test_home_links_to_the_supervisor_pages(client):
    login_page(client, "supervisor")
    html = client.get("/desk").get_data(as_text=True)
    for href in ("/desk/queue", "/desk/conflicts", "/desk/tasks"):
        assert f'href="{href}"' in html


# -- the queue -------------------------------------------------------------------------------


def test_queue_is_ordered_by_risk_then_newest(client, store, clock, toilets):
    phone = Phone(client, "inspector")
    low = quick_submission(phone, toilets["yunyu"])
    clock.advance(minutes=5)
    high_old = quick_submission(phone, toilets["yunyu"])
    clock.advance(minutes=5)
    unjudged = quick_submission(phone, toilets["tongpu"])
    clock.advance(minutes=5)
    high_new = quick_submission(phone, toilets["tongpu"])
    set_flags(store, low, ["no_exif"], 10)
    set_flags(store, high_old, ["far_from_facility", "reused_photo"], 90)
    set_flags(store, high_new, ["reused_photo"], 90)
    login_page(client, "supervisor")
    html = client.get("/desk/queue").get_data(as_text=True)
    assert ids_in_page(html) == [high_new, high_old, low, unjudged]
    assert "照片重复使用" in html and "离设施太远" in html  # flags in Chinese
    assert "厕所检查" in html  # the form's title
    assert "待审核" in html and "照片未齐" in html  # states in Chinese
    assert "云屿村" in html and "陈朝光户厕" in html


def test_queue_filters_by_village_form_flag_and_state(client, store, toilets):
    phone = Phone(client, "inspector")
    a = quick_submission(phone, toilets["yunyu"])
    b = quick_submission(phone, toilets["tongpu"])
    c = quick_submission(phone, toilets["tongpu"])
    set_flags(store, a, ["far_from_facility"], 40)
    set_flags(store, b, ["no_exif"], 15)
    set_flags(store, c, ["far_from_facility", "no_exif"], 55)
    login_page(client, "supervisor")

    def listed(**query):
        response = client.get("/desk/queue", query_string=query)
        assert response.status_code == 200
        return ids_in_page(response.get_data(as_text=True))

    assert listed(village=YUNYU) == [a]
    assert listed(village=TONGPU_2) == [c, b]
    assert listed(flag="far_from_facility") == [c, a]
    assert listed(flag="no_exif", village=TONGPU_2) == [c, b]
    assert listed(form="toilet") == [c, a, b]
    assert listed(form="fire") == []
    assert listed(township="桐浦乡") == [c, a, b]
    # A village outside the viewer's scope is ignored, not a way in.
    assert listed(village="450222102001") == [c, a, b]
    client.post(  # reviewed ones leave the default (pending) view
        f"/desk/submissions/{a}/review",
        data={"decision": "approve", "csrf_token": csrf_of(client)},
    )
    assert listed() == [c, b]
    assert listed(state="approved") == [a]
    assert listed(state="all") == [c, a, b]


def test_queue_pages(client, store, toilets):
    phone = Phone(client, "inspector")
    items = [
        submission(toilets["yunyu"], phone.clock(minutes=1), answers=toilet_answers())
        for _ in range(23)
    ]
    assert phone.push(items).status_code == 200
    login_page(client, "supervisor")
    first = client.get("/desk/queue").get_data(as_text=True)
    second = client.get("/desk/queue?page=2").get_data(as_text=True)
    assert len(ids_in_page(first)) == 20 and len(ids_in_page(second)) == 3
    assert "第 1 / 2 页" in first and "下一页" in first
    assert set(ids_in_page(first)).isdisjoint(ids_in_page(second))
    assert client.get("/desk/queue?page=abc").status_code == 200


def test_another_townships_supervisor_sees_nothing_of_tongpu(client, store, toilets):
    phone = Phone(client, "inspector")
    data = jpeg(1, lat=24.763623, lon=109.294765)
    item = inspect_with_photos(phone, toilets["yunyu"], [data, jpeg(2)])
    sub_id = item["id"]
    add_user(store, "shiling")
    login_page(client, "shiling", "Pw-12345678")
    queue = client.get("/desk/queue?state=all").get_data(as_text=True)
    assert sub_id not in queue and "云屿村" not in queue
    assert client.get(f"/desk/submissions/{sub_id}").status_code == 404
    for variant in ("320", "1280", "original"):
        assert client.get(f"/desk/media/{sha(data)}/{variant}").status_code == 404
    response = client.post(
        f"/desk/submissions/{sub_id}/review",
        data={"decision": "reject", "reason": "假照片", "csrf_token": csrf_of(client)},
    )
    assert response.status_code == 404
    assert store.submission(sub_id)["state"] == "complete"
    assert store.desk_reviews(sub_id) == []
    assert "云屿村" not in client.get("/desk/tasks").get_data(as_text=True)


# -- a submission ----------------------------------------------------------------------------


def test_submission_page_shows_answers_photos_positions_flags_and_history(
    client, store, clock, toilets
):
    phone = Phone(client, "inspector")
    earlier = quick_submission(phone, toilets["yunyu"])
    clock.advance(minutes=30)
    near = jpeg(10, lat=24.763623, lon=109.294765)  # at the toilet
    far = jpeg(11, lat=24.7700, lon=109.2947)  # about 710 m north
    item = inspect_with_photos(phone, toilets["yunyu"], [near, far], construction="biogas")
    row = store.submission(item["id"])
    assert row["state"] == "complete"
    codes = [f["code"] for f in store.flags_of(item["id"])]
    assert "far_from_facility" in codes
    login_page(client, "supervisor")
    response = client.get(f"/desk/submissions/{item['id']}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    # answers with the form's Chinese labels and choice labels
    assert "是卫生厕所" in html and "三联通沼气池式" in html and "发现的隐患" in html
    # display photos: 320 thumbnails linking to 1280, the original on demand
    for data in (near, far):
        assert f"/desk/media/{sha(data)}/320" in html
        assert f"/desk/media/{sha(data)}/1280" in html
        assert f"/desk/media/{sha(data)}/original" in html
    # positions with distances, and a plot with a scale bar
    assert "设施登记位置" in html and "照片 GPS（EXIF）" in html and "拍照时手机定位" in html
    assert re.search(r"<strong>7\d\d 米</strong>", html)
    assert "<svg" in html and 'class="scale"' in html
    # the flag with its figures, in Chinese
    assert "离设施太远" in html and "距离（米）" in html
    # the facility's history: this inspection and the earlier one
    assert f"/desk/submissions/{earlier}" in html and "本次" in html
    assert "Redmi Note 12" in html


def test_unknown_submission_is_404(client):
    login_page(client, "supervisor")
    assert client.get(f"/desk/submissions/{uuid.uuid4()}").status_code == 404


def test_a_task_submission_is_measured_from_the_village(client, store):
    secretary = Phone(client, "secretary")
    task = next(t for t in store.tasks(YUNYU, "2026-11") if t["template"] == "party_day")
    data = jpeg(20, lat=24.76521, lon=109.30183)
    answers = {
        "task_kind": "party_day",
        "status": "done",
        "completed_on": "2026-11-19",
        "party_topic": "学习二十届四中全会精神",
        "party_attendance": 23,
        "evidence_photos": [photo(sha(data))],
    }
    item = submission(task["id"], secretary.clock(), form="monthly_task", answers=answers)
    result = secretary.push([item]).json["results"][0]
    assert result["status"] == "waiting_for_photos", result
    upload(client, secretary.headers, data)
    login_page(client, "supervisor")
    html = client.get(f"/desk/submissions/{item['id']}").get_data(as_text=True)
    assert "村庄中心位置" in html and "主题党日" in html and "学习二十届四中全会精神" in html
    assert "<strong>0 米</strong>" in html


# -- photos ----------------------------------------------------------------------------------


def test_photos_are_served_with_etag_and_cache_headers(client, store, toilets):
    phone = Phone(client, "inspector")
    data = jpeg(30, lat=24.763623, lon=109.294765)
    inspect_with_photos(phone, toilets["yunyu"], [data, jpeg(31)])
    login_page(client, "supervisor")
    digest = sha(data)
    for variant in ("320", "1280"):
        response = client.get(f"/desk/media/{digest}/{variant}")
        assert response.status_code == 200
        assert response.mimetype == "image/jpeg"
        assert response.headers["Cache-Control"] == "private, max-age=31536000, immutable"
        etag = response.headers["ETag"]
        body = response.get_data()
        assert body[:2] == b"\xff\xd8" and body != data  # a display version, not the original
        again = client.get(f"/desk/media/{digest}/{variant}", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.get_data() == b""
    original = client.get(f"/desk/media/{digest}/original")
    assert original.status_code == 200 and original.get_data() == data
    assert any(e["action"] == "media.original" for e in store.audit_entries(entity_id=digest))
    assert client.get(f"/desk/media/{digest}/640").status_code == 404
    assert client.get(f"/desk/media/{'0' * 64}/320").status_code == 404
    assert client.get("/desk/media/not-a-hash/320").status_code == 404


def test_an_admin_may_open_photos_of_the_county(client, toilets):
    phone = Phone(client, "inspector")
    data = jpeg(32)
    inspect_with_photos(phone, toilets["yunyu"], [data, jpeg(33)])
    login_page(client, "admin")
    assert client.get(f"/desk/media/{sha(data)}/original").status_code == 200
    assert client.get("/desk/queue").status_code == 200


# -- reviews ---------------------------------------------------------------------------------


def test_reject_with_a_reason_reaches_the_authors_phone(client, store, toilets):
    phone = Phone(client, "inspector")
    phone.pull_all()
    sub_id = quick_submission(phone, toilets["yunyu"])
    csrf = login_page(client, "supervisor")
    response = client.post(
        f"/desk/submissions/{sub_id}/review",
        data={"decision": "reject", "reason": "照片不是该户厕所，请重新拍摄", "csrf_token": csrf},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/desk/submissions/{sub_id}"
    assert store.submission(sub_id)["state"] == "rejected"
    assert any(e["action"] == "review.reject" for e in store.audit_entries(entity_id=sub_id))
    reviews = phone.pull().json["reviews"]
    assert reviews == [
        {
            "submission_id": sub_id,
            "state": "rejected",
            "decision": "reject",
            "reason": "照片不是该户厕所，请重新拍摄",
            "at": START.isoformat(timespec="milliseconds"),
            "reviewer": "覃志强（桐浦乡督查）",
        }
    ]
    page = client.get(f"/desk/submissions/{sub_id}").get_data(as_text=True)
    assert "照片不是该户厕所，请重新拍摄" in page and "已退回" in page


def test_reject_and_reinspect_need_a_reason(client, store, toilets):
    phone = Phone(client, "inspector")
    sub_id = quick_submission(phone, toilets["yunyu"])
    csrf = login_page(client, "supervisor")
    for decision in ("reject", "reinspect"):
        response = client.post(
            f"/desk/submissions/{sub_id}/review",
            data={"decision": decision, "reason": "  ", "csrf_token": csrf},
        )
        assert response.status_code == 400
        assert "必须填写原因" in response.get_data(as_text=True)
    assert store.submission(sub_id)["state"] == "received"
    assert store.desk_reviews(sub_id) == []
    response = client.post(
        f"/desk/submissions/{sub_id}/review",
        data={"decision": "reinspect", "reason": "化粪池盖板看不清，请复查", "csrf_token": csrf},
    )
    assert response.status_code == 302
    assert store.submission(sub_id)["state"] == "reinspection_requested"
    response = client.post(
        f"/desk/submissions/{sub_id}/review",
        data={"decision": "approve", "csrf_token": csrf, "next": "/desk/queue?village=" + YUNYU},
    )
    assert response.headers["Location"] == f"/desk/queue?village={YUNYU}"
    assert store.submission(sub_id)["state"] == "approved"
    bad = client.post(
        f"/desk/submissions/{sub_id}/review", data={"decision": "delete", "csrf_token": csrf}
    )
    assert bad.status_code == 400 and store.submission(sub_id)["state"] == "approved"


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(client, store, toilets):
    phone = Phone(client, "inspector")
    sub_id = quick_submission(phone, toilets["yunyu"])
    login_page(client, "supervisor")
    for data in (
        {"decision": "reject", "reason": "假照片"},
        {"decision": "reject", "reason": "假照片", "csrf_token": "forged"},
    ):
        response = client.post(f"/desk/submissions/{sub_id}/review", data=data)
        assert response.status_code == 400
    assert store.submission(sub_id)["state"] == "received"
    assert store.desk_reviews(sub_id) == []
    assert phone.pull().json["reviews"] == []


def test_next_cannot_leave_the_site(client, toilets):
    phone = Phone(client, "inspector")
    sub_id = quick_submission(phone, toilets["yunyu"])
    csrf = login_page(client, "supervisor")
    response = client.post(
        f"/desk/submissions/{sub_id}/review",
        data={"decision": "approve", "csrf_token": csrf, "next": "https://evil.example/"},
    )
    assert response.headers["Location"] == f"/desk/submissions/{sub_id}"


# -- monthly tasks ---------------------------------------------------------------------------


def test_monthly_tasks_by_village_with_overdue_and_evidence(client, store, clock):
    secretary = Phone(client, "secretary")
    tasks = store.tasks(YUNYU, "2026-11")
    party = next(t for t in tasks if t["template"] == "party_day")
    data = jpeg(40)
    item = party_day_report(party["id"], secretary.clock(), [photo(sha(data))])
    assert secretary.push([item]).json["results"][0]["status"] == "waiting_for_photos"
    upload(client, secretary.headers, data)
    login_page(client, "supervisor")
    html = client.get("/desk/tasks").get_data(as_text=True)  # this month by default
    assert "2026 年 11 月" in html
    assert "云屿村" in html and "桐浦村" in html and "石岭村" not in html
    assert "完成 1/8" in html  # one of 云屿村's eight tasks is done
    assert f"/desk/media/{sha(data)}/320" in html and f"/desk/submissions/{item['id']}" in html
    # On 11-20 only the first dispute screening (due 11-15) of each village is overdue:
    # three task rows and the three villages' summary rows.
    assert html.count('class="overdue"') == 3 + 3
    clock.advance(days=26)  # 12-16: every November task not done is overdue
    login_page(client, "supervisor")  # the desk session of 26 days ago has long ended
    html = client.get("/desk/tasks?month=2026-11").get_data(as_text=True)
    assert html.count('class="overdue"') == (7 + 8 + 8) + 3
    assert "逾期 7" in html
    other = client.get("/desk/tasks?month=2026-10").get_data(as_text=True)
    assert "这个月没有月度工作任务" in other
    assert client.get("/desk/tasks?month=junk").status_code == 200


def test_a_task_marked_overdue_shows_as_overdue(client, store):
    task = store.tasks(YUNYU, "2026-11")[0]
    state = {"status": {"value": "overdue", "clock": "1763604000000-0000-server", "by": "x"}}
    with store.write():
        store.set_record_states(
            "task", [{"id": task["id"], "state": state, "village_code": YUNYU}], at="x"
        )
    login_page(client, "supervisor")
    html = client.get("/desk/tasks?month=2026-11").get_data(as_text=True)
    # the task marked overdue, the dispute screening due 11-15, and 云屿村's summary row,
    # besides the two other villages' overdue screening and summary rows
    assert html.count('class="overdue"') == 3 + 2 + 2
    assert "逾期 2" in html


def test_session_cookie_is_httponly_and_samesite_lax(client):
    from conftest import PASSWORDS

    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post(
        "/login",
        data={"username": "supervisor", "csrf_token": token, "password": PASSWORDS["supervisor"]},
    )
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
