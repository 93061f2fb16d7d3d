"""Server-verified photo stamps through the app: a code is stored when a photo's ingest
completes a submission (the real upload path, a real camera photo), the desk shows it,
/desk/verify finds it within the viewer's villages only and says so in Chinese when a code is
forged or altered, and the stamped version is drawn once and kept in the photo store. The
storage methods run on both engines (`any_store`)."""

import io
import re

import pytest
from conftest import CORPUS, YUNYU, Phone, photo, sha, submission, toilet_answers, upload_photo
from PIL import Image
from test_storage_media import P1, P2, add_submission, media_row, pipeline  # noqa: F401
from test_supervisor import add_user, jpeg, login_page

from media import stamp_code
from media.stamp_code import ALPHABET, display
from server import stamp as stamps
from server.context import media_store_for

INVALID = "校验码无效：未找到对应照片，可能是伪造或被改动"
CAMERA = CORPUS / "iphone_hdr_NO.jpg"  # a real camera photo with EXIF


@pytest.fixture
def toilet(facilities):
    return facilities[(YUNYU, "toilet")]["id"]


def inspect(phone, facility_id, photos: list[bytes]):
    """A toilet inspection pushed, then its photos uploaded (through the ingest queue)."""
    answers = toilet_answers(
        photo_outside=[photo(sha(photos[0]))], photo_inside=[photo(sha(p)) for p in photos[1:]]
    )
    if len(photos) == 1:
        answers["photo_inside"] = [photo(sha(photos[0]))]
    item = submission(facility_id, phone.clock(minutes=1), answers=answers)
    result = phone.push([item]).json["results"][0]
    assert result["status"] in ("waiting_for_photos", "accepted"), result
    for data in photos:
        if sha(data) in result.get("missing", []):
            response = upload_photo(phone.client, phone.headers, data)
            assert response.status_code == 200, response.get_json()
    return item["id"]


@pytest.fixture
def inspected(client, store, toilet):
    """An inspection of 云屿村's toilet with a real camera photo, processed."""
    data = CAMERA.read_bytes()
    sid = inspect(Phone(client, "inspector"), toilet, [data])
    return sid, sha(data)


def test_a_code_is_stored_when_the_photos_ingest_completes_the_submission(app, store, inspected):
    sid, digest = inspected
    row = store.submission(sid)
    assert row["state"] == "complete"
    codes = store.photo_codes_of(sid)
    assert list(codes) == [digest]
    code = codes[digest]
    assert code["received_at"] == row["completed_at"]
    secret = stamp_code.stamp_secret(app.config)
    assert code["key_id"] == stamp_code.key_id(secret)
    assert stamp_code.verify(
        secret,
        code["code"],
        sha256=digest,
        submission_id=sid,
        received_at=row["completed_at"],
        facility_id=row["record_id"],
    )


def test_a_photo_used_again_gets_a_code_of_its_own_for_each_submission(
    client, store, inspected, toilet
):
    first, digest = inspected
    # the photo is already held: the second submission is complete at push
    second = inspect(Phone(client, "inspector"), toilet, [CAMERA.read_bytes()])
    assert store.submission(second)["state"] == "complete"
    a, b = store.photo_codes_of(first)[digest], store.photo_codes_of(second)[digest]
    assert a["code"] != b["code"]


def test_the_desk_shows_each_photos_code_and_links_its_stamped_version(client, store, inspected):
    sid, digest = inspected
    code = store.photo_codes_of(sid)[digest]["code"]
    login_page(client, "supervisor")
    html = client.get(f"/desk/submissions/{sid}").get_data(as_text=True)
    assert f"<code>{display(code)}</code>" in html
    assert f"/desk/submissions/{sid}/stamped/{digest}.jpg" in html
    assert "/desk/verify" in html  # the nav's link to the look-up form


def test_photos_processed_before_the_stamps_get_their_code_when_first_shown(
    client, store, inspected
):
    sid, digest = inspected
    code = store.photo_codes_of(sid)[digest]["code"]
    store.q("DELETE FROM photo_codes")  # as after the upgrade to schema 8
    login_page(client, "supervisor")
    html = client.get(f"/desk/submissions/{sid}").get_data(as_text=True)
    assert f"<code>{display(code)}</code>" in html  # the same code: it is derived, not drawn
    assert store.photo_codes_of(sid)[digest]["code"] == code


def test_no_code_before_the_photos_are_in(client, store, toilet):
    phone = Phone(client, "inspector")
    item = submission(toilet, phone.clock(), answers=toilet_answers())
    assert phone.push([item]).json["results"][0]["status"] == "waiting_for_photos"
    assert store.photo_codes_of(item["id"]) == {}
    login_page(client, "supervisor")
    html = client.get(f"/desk/submissions/{item['id']}").get_data(as_text=True)
    assert "校验码" not in html and store.photo_codes_of(item["id"]) == {}


# -- /desk/verify ----------------------------------------------------------------------------


def test_the_verify_form_and_a_found_code_in_any_spelling(client, store, inspected):
    sid, digest = inspected
    code = store.photo_codes_of(sid)[digest]["code"]
    login_page(client, "supervisor")
    form = client.get("/desk/verify")
    assert form.status_code == 200 and 'name="code"' in form.get_data(as_text=True)
    typed = f" {display(code).lower().replace('0', 'o').replace('1', 'l')} "
    response = client.get("/desk/verify", query_string={"code": typed})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f"校验码 <code>{display(code)}</code> 有效" in html
    assert f"/desk/submissions/{sid}" in html and digest in html
    assert f"/desk/media/{digest}/320" in html  # the photo
    assert "王建华" in html  # the inspector
    assert INVALID not in html
    assert any(e["action"] == "stamp.verify" for e in store.audit_entries(entity_id=code))


def test_a_forged_or_altered_code_is_refused_in_chinese(client, store, inspected):
    sid, digest = inspected
    code = store.photo_codes_of(sid)[digest]["code"]
    login_page(client, "supervisor")
    altered = code[:3] + ALPHABET[(ALPHABET.index(code[3]) + 1) % 32] + code[4:]
    forged = "K7QF3M2XPA" if code != "K7QF3M2XPA" else "K7QF3M2XPB"
    for text in (altered, forged, "not a code", code + "0"):
        response = client.get("/desk/verify", query_string={"code": text})
        assert response.status_code == 404, text
        html = response.get_data(as_text=True)
        assert INVALID in html and sid not in html and digest not in html


def test_a_row_planted_without_the_secret_does_not_verify(client, store, inspected):
    sid, digest = inspected
    store.q("UPDATE photo_codes SET code = 'AAAAAAAAAA' WHERE submission_id = :sid", sid=sid)
    login_page(client, "supervisor")
    response = client.get("/desk/verify", query_string={"code": "AAAA-AAAA-AA"})
    assert response.status_code == 404 and INVALID in response.get_data(as_text=True)


def test_another_townships_supervisor_gets_the_not_found_answer(client, store, inspected):
    sid, digest = inspected
    code = store.photo_codes_of(sid)[digest]["code"]
    _, password = add_user(store, "shiling")
    login_page(client, "shiling", password)
    mine = client.get("/desk/verify", query_string={"code": display(code)})
    unknown = client.get("/desk/verify", query_string={"code": "K7QF3M2XPA"})
    assert mine.status_code == unknown.status_code == 404
    strip = lambda r: re.sub(r'value="[^"]*"', "", r.get_data(as_text=True))  # noqa: E731
    assert strip(mine) == strip(unknown)  # the same page, but for the code typed in
    assert client.get(f"/desk/submissions/{sid}/stamped/{digest}.jpg").status_code == 404


def test_an_admin_finds_the_code(client, store, inspected):
    sid, digest = inspected
    code = store.photo_codes_of(sid)[digest]["code"]
    login_page(client, "admin")
    response = client.get("/desk/verify", query_string={"code": code})
    assert response.status_code == 200 and f"/desk/submissions/{sid}" in response.get_data(
        as_text=True
    )


def test_a_code_issued_under_a_replaced_secret_says_so(app, client, store, inspected):
    sid, digest = inspected
    code = store.photo_codes_of(sid)[digest]["code"]
    app.config["STAMP_SECRET"] = "a new secret"
    login_page(client, "supervisor")
    response = client.get("/desk/verify", query_string={"code": code})
    assert response.status_code == 404
    assert "旧密钥" in response.get_data(as_text=True)


def test_look_ups_are_rate_limited_per_user(app, client, monkeypatch):
    monkeypatch.setattr(stamps, "VERIFY_LIMITER", stamps.VerifyLimiter())
    app.config["STAMP_VERIFY_PER_MINUTE"] = 3
    login_page(client, "supervisor")
    answers = [
        client.get("/desk/verify", query_string={"code": "K7QF3M2XPA"}).status_code
        for _ in range(4)
    ]
    assert answers == [404, 404, 404, 429]
    limiter = stamps.VerifyLimiter()
    config = {"STAMP_VERIFY_PER_MINUTE": 1}
    assert limiter.allow(1, config, now=0) and not limiter.allow(1, config, now=30)
    assert limiter.allow(2, config, now=30) and limiter.allow(1, config, now=61)


# -- the stamped version ---------------------------------------------------------------------


def test_the_stamped_version_is_drawn_once_and_kept(app, client, store, inspected, monkeypatch):
    sid, digest = inspected
    code = store.photo_codes_of(sid)[digest]["code"]
    drawn = []
    real = stamps.render_jpeg

    def counting(data, facts):
        drawn.append(facts)
        return real(data, facts)

    monkeypatch.setattr(stamps, "render_jpeg", counting)
    media = media_store_for(app.config)
    assert media.open_derived(digest, f"stamp-{code.lower()}.jpg") is None  # not at ingest
    login_page(client, "supervisor")
    url = f"/desk/submissions/{sid}/stamped/{digest}.jpg"
    first = client.get(url)
    assert first.status_code == 200 and first.mimetype == "image/jpeg"
    with media.open_derived(digest, "1280.jpg") as f, Image.open(f) as display_version:
        size = display_version.size
    with Image.open(io.BytesIO(first.get_data())) as stamped:
        assert stamped.width == size[0] and stamped.height > size[1]
    facts = drawn[0]
    assert facts.code == code and facts.inspector.startswith("王建华")
    assert facts.village.startswith("云屿村") and facts.position_source in ("exif", "phone")
    second = client.get(url)
    assert second.status_code == 200 and second.get_data() == first.get_data()
    assert len(drawn) == 1  # the second request did not draw it again
    with media.open_derived(digest, f"stamp-{code.lower()}.jpg") as kept:
        assert kept.read() == first.get_data()
    etag = first.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304


def test_the_stamped_version_only_for_a_photo_of_that_submission(client, store, inspected):
    sid, digest = inspected
    login_page(client, "supervisor")
    other = sha(jpeg(99))
    assert client.get(f"/desk/submissions/{sid}/stamped/{other}.jpg").status_code == 404
    assert client.get(f"/desk/submissions/{sid}/stamped/not-a-hash.jpg").status_code == 404
    assert client.get(f"/desk/submissions/nope/stamped/{digest}.jpg").status_code == 404


# -- storage, on both engines ----------------------------------------------------------------


def test_codes_are_stored_once_per_use_and_found_by_code(pipeline):  # noqa: F811
    store, users = pipeline
    with store.write():
        add_submission(store, "s1", author=users["wang"], photos=[("a", P1), ("b", P1)])
        add_submission(store, "s2", author=users["wang"], photos=[("a", P1), ("b", P2)])
        add_submission(store, "s3", author=users["wang"], state="received", photos=[("a", P2)])
    store.q("UPDATE submissions SET completed_at = '2026-11-20T02:40:00+00:00'")
    store.insert_media(media_row(P1))
    uses = store.codeless_photo_uses(["s1", "s2", "s3"])
    assert [(u["submission_id"], u["sha256"]) for u in uses] == [("s1", P1), ("s2", P1)]
    assert uses[0]["record_id"] == "f1" and uses[0]["received_at"] == "2026-11-20T02:40:00+00:00"
    config = {"SECRET_KEY": "test", "STAMP_SECRET": ""}
    stamps.issue_codes(store, ["s1", "s2", "s3"], config=config)
    stamps.issue_codes(store, ["s1", "s2", "s3"], config=config)  # again: nothing new
    assert store.codeless_photo_uses(["s1", "s2", "s3"]) == []
    s1 = store.photo_codes_of("s1")
    assert list(s1) == [P1]
    found = store.photo_code_uses(s1[P1]["code"])
    assert [(u["submission_id"], u["village_code"], u["record_id"]) for u in found] == [
        ("s1", YUNYU, "f1")
    ]
    store.insert_photo_codes(
        [{**s1[P1], "submission_id": "s1", "sha256": P1, "code": "ZZZZZZZZZZ"}]
    )  # a use keeps its first code
    assert store.photo_codes_of("s1")[P1]["code"] == s1[P1]["code"]
    store.insert_photo_codes([])
    assert store.photo_code_uses("ZZZZZZZZZZ") == []


# -- the stamped version through the API (phones) --------------------------------------------


def test_the_author_gets_the_stamped_version_through_the_api(client, store, inspected):
    sid, digest = inspected
    code = store.photo_codes_of(sid)[digest]["code"]
    phone = Phone(client, "inspector")
    url = f"/api/v1/media/{digest}/stamped/{sid}"
    response = client.get(url, headers=phone.headers)
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert response.headers["X-Stamp-Code"] == display(code)
    again = client.get(url, headers={**phone.headers, "If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    assert client.get(url).status_code == 401
    missing = client.get(f"/api/v1/media/{digest}/stamped/nope", headers=phone.headers)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    # an inspector of other villages: the photo is not theirs to read
    other = Phone(client, "inspector2")
    assert client.get(url, headers=other.headers).status_code == 403
