"""The monthly township report (督查月报) and the desk polish of issue 12: flag names, the review
flash, the favicon, the start banner."""

import io

from conftest import START, YUNYU, photo, photo_exif, sha, submission, toilet_answers, upload_photo
from desk_helpers import desk_session
from PIL import Image

from server.evidence import named_flags
from server.reports import problems_in


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "orange").save(
        out, "JPEG", exif=photo_exif("2026:11:20 09:30:00", lat=24.1, lon=110.2)
    )
    return out.getvalue()


def report_world(client, store, phone, facilities):
    """One toilet inspection that finds a problem (with a photo), one that is rejected."""
    data = jpeg()
    toilet = facilities[(YUNYU, "toilet")]["id"]
    bad = submission(
        toilet,
        phone.clock(),
        answers=toilet_answers(in_use=False, photo_outside=[photo(sha(data))]),
    )
    sent_back = submission(toilet, phone.clock(), answers=toilet_answers(sanitary=False))
    assert all(r["status"] != "invalid" for r in phone.push([bad, sent_back]).json["results"])
    assert upload_photo(client, phone.headers, data).status_code == 200
    store.add_review(
        submission_id=sent_back["id"],
        decision="reject",
        state="rejected",
        reason="照片看不清厕所内部",
        reviewer_id=store.user(username="supervisor")["id"],
        author_id=store.user(username="inspector")["id"],
        at=START.isoformat(),
    )
    return {"bad": bad["id"], "sent_back": sent_back["id"], "photo": sha(data)}


def test_monthly_report_lists_indicators_problems_overdue_tasks_and_rejections(
    client, store, phone, facilities
):
    world = report_world(client, store, phone, facilities)
    desk_session(client, store, "supervisor")
    response = client.get("/desk/reports/monthly?township=桐浦乡&month=2026-11")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "桐浦乡督查月报（2026年11月）" in html
    assert "一、指标完成情况" in html and "卫生厕所普及率" in html and "云屿村" in html
    assert "二、发现的问题" in html and "正常使用：否" in html
    assert f"/desk/media/{world['photo']}/320" in html
    assert "四、退回与要求复查（1 份）" in html and "照片看不清厕所内部" in html
    assert "三、逾期的月度工作" in html
    assert "石岭村" not in html  # another township's village
    assert 'href="/desk/reports/monthly"' in html  # in the nav
    # the rejected one is a rejection, not a problem found
    assert html.count("是卫生厕所：否") == 0


def test_monthly_report_scope_and_arguments(client, store):
    assert client.get("/desk/reports/monthly").status_code == 302
    desk_session(client, store, "supervisor")
    assert client.get("/desk/reports/monthly").status_code == 200  # the viewer's township
    assert client.get("/desk/reports/monthly?township=石岭镇").status_code == 404
    assert client.get("/desk/reports/monthly?month=2026-13").status_code == 400
    desk_session(client, store, "inspector")
    assert client.get("/desk/reports/monthly").status_code == 403


def test_problems_are_failed_checks_overflow_and_failed_tidiness_items():
    columns = [
        {"name": "running", "type": "yes_no", "label": {"zh": "正常运行"}},
        {"name": "overflow", "type": "yes_no", "label": {"zh": "垃圾满溢"}},
        {"name": "waterways", "type": "select_one", "label": {"zh": "河塘沟渠"}},
        {"name": "failed_items", "type": "calculate", "label": {"zh": "未达标项"}},
    ]
    assert problems_in({"running": True, "overflow": False}, columns) == []
    assert problems_in(
        {"running": False, "overflow": True, "failed_items": ["waterways"]}, columns
    ) == ["正常运行：否", "垃圾满溢：是", "未达标项：河塘沟渠"]


def test_flags_name_records_instead_of_ids():
    task_id = "task-450222101001-2026-11-three_meetings-1"
    uuid = "6f1c0b7e-3f9a-4b8e-9d41-2a7c1e5d9b10"
    flag = {
        "code": "reused_photo",
        "photo": "a" * 64,
        "figures": {"count": 2, "facility_ids": [uuid, task_id], "other_uses": []},
        "message": {"zh": f"同一张照片还用在另外 2 条记录中（设施：{uuid}、{task_id}）"},
    }
    names = {uuid: "云屿村 张家户厕", task_id: "云屿村2026-11 三会一课"}
    (shown,) = named_flags([flag], names)
    assert uuid not in shown["message"]["zh"] and task_id not in shown["message"]["zh"]
    assert "“云屿村 张家户厕”" in shown["message"]["zh"]
    assert shown["figures"]["record_names"] == ["云屿村 张家户厕", "云屿村2026-11 三会一课"]
    assert "facility_ids" not in shown["figures"]


def test_the_review_flash_says_the_state_once(client, store, phone, facilities):
    item = submission(facilities[(YUNYU, "toilet")]["id"], phone.clock())
    phone.push([item])
    desk_session(client, store, "supervisor")
    response = client.post(
        f"/desk/submissions/{item['id']}/review",
        data={"decision": "reject", "reason": "照片模糊", "csrf_token": "token"},
        follow_redirects=True,
    )
    html = response.get_data(as_text=True)
    assert "已退回：已退回" not in html
    assert "审核完成，状态为“已退回”" in html


def test_favicon_is_the_app_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.get_data()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_start_banner_names_the_desk(tmp_path, demo_db):
    from test_no_password_output import serve_banner

    assert "/desk (督查工作台)" in serve_banner(tmp_path, demo_db)


def test_the_desk_names_the_records_a_reused_photo_flag_cites(client, store, phone, toilets):
    data = jpeg()
    first, second = (store.facility(i) for i in toilets[:2])
    items = [
        submission(t["id"], phone.clock(), answers=toilet_answers(photo_outside=[photo(sha(data))],
                                                                  photo_inside=[photo(sha(data))]))
        for t in (first, second)
    ]  # fmt: skip
    assert all(r["status"] != "invalid" for r in phone.push(items).json["results"])
    assert upload_photo(client, phone.headers, data).status_code == 200
    desk_session(client, store, "supervisor")
    html = client.get(f"/desk/submissions/{items[0]['id']}").get_data(as_text=True)
    assert "照片重复使用" in html
    flags = html[html.index("证据问题") : html.index("</section>", html.index("证据问题"))]
    assert second["name"] in flags and second["id"] not in flags
