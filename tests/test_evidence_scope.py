"""A photo's hash is not a key to it, and flags do not leak other townships' records.

Issue 8, finding 6: putting another township's photo SHA-256 into an inspection of one's own
village used to open that photo (a supervisor got the original, EXIF GPS included). A photo is
now readable only through a submission whose author holds its bytes (see PROTOCOL, Photos),
and reuse and near-duplicate flags name another township's records only to admins.
"""

import io
import zipfile

import pytest
from conftest import (
    PASSWORDS,
    SHILING,
    START,
    YUNYU,
    party_day_report,
    photo,
    sha,
    submission,
    toilet_answers,
    version_3_database,
)
from test_media_api import TOILET_POS, inspect, noise_photo, retagged, upload
from test_supervisor import TONGPU_2, add_user, login_page

from server.demo import demo_data, load_demo
from server.evidence import WITHHELD, visible_flags
from server.storage import SCHEMA_VERSION, connect


def api_login(client, username, password) -> dict:
    response = client.post(
        "/api/v1/auth/login",
        json={"username": username, "password": password, "device_id": f"dev-{username}"},
    )
    assert response.status_code == 200, response.json
    return {"Authorization": f"Bearer {response.json['token']}"}


def first_toilet(village: str) -> str:
    return next(
        f["id"]
        for f in demo_data()["facilities"]
        if f["village"] == village and f["kind"] == "toilet"
    )


def display(client, headers, data: bytes, variant="display/320"):
    return client.get(f"/api/v1/media/{sha(data)}/{variant}", headers=headers)


@pytest.fixture
def planted(make_phone, client):
    """桐浦乡's inspector inspects a toilet with photo P; 石岭镇's inspector then puts P's hash
    (never its bytes) into an inspection in 石岭村, with a photo of their own."""
    victim = retagged("iphone_hdr_NO.jpg", lat=TOILET_POS[0], lon=TOILET_POS[1])
    tongpu_phone = make_phone("inspector")
    honest = inspect(tongpu_phone, first_toilet(YUNYU), victim, noise_photo(1))
    attacker = make_phone("inspector2")
    own = retagged("HMD_Nokia_8.3_5G.jpg", lat=24.6126, lon=109.2186)  # at the 石岭村 toilet
    probe = inspect(attacker, first_toilet(SHILING), victim, own)
    return {
        "victim": victim,
        "own": own,
        "honest": honest,
        "probe": probe,
        "attacker": attacker,
        "tongpu": tongpu_phone,
    }


def test_a_hash_alone_does_not_open_another_townships_photo(planted, client, store):
    victim, own, attacker = planted["victim"], planted["own"], planted["attacker"]
    assert store.submission(planted["probe"]["id"])["state"] == "complete"
    # the phone may still ask about and upload what its own submission references
    status = client.get(f"/api/v1/media/{sha(own)}", headers=attacker.headers)
    assert status.status_code == 200 and status.json["complete"]
    assert display(client, attacker.headers, own).status_code == 200
    # but the other township's photo stays closed, to the attacker and to their supervisor
    assert display(client, attacker.headers, victim).status_code == 403
    assert display(client, attacker.headers, victim, "display/1280").status_code == 403
    add_user(store, "shiling")
    shiling = api_login(client, "shiling", "Pw-12345678")
    assert display(client, shiling, victim).status_code == 403
    assert display(client, shiling, victim, "original").status_code == 403
    assert display(client, shiling, own, "original").status_code == 200
    # the photo's own township and the county still see it
    assert display(client, planted["tongpu"].headers, victim).status_code == 200
    admin = api_login(client, "admin", PASSWORDS["admin"])
    assert display(client, admin, victim, "original").status_code == 200


def test_flags_name_another_townships_record_only_to_admins(planted, client, store):
    probe, honest = planted["probe"]["id"], planted["honest"]
    add_user(store, "shiling")
    shiling = api_login(client, "shiling", "Pw-12345678")
    body = client.get(f"/api/v1/submissions/{probe}", headers=shiling)
    assert body.status_code == 200
    flags = {f["code"]: f for f in body.json["flags"] if f["photo"] == sha(planted["victim"])}
    reuse = flags["reused_photo"]
    assert "另一乡镇的记录 1 条" in reuse["message"]["zh"]
    assert reuse["figures"]["other_uses"] == [] and reuse["figures"]["other_township_uses"] == 1
    # the victim photo's EXIF (GPS 2 km away, its time) is withheld from this viewer
    assert flags["far_from_facility"]["figures"] == {"withheld": True}
    assert flags["far_from_facility"]["message"] == WITHHELD
    text = body.get_data(as_text=True)
    assert honest["id"] not in text and honest["record"] not in text
    assert "24.76362" not in text  # the victim's EXIF latitude
    assert store.submission(probe)["risk_score"] >= 50
    # an admin sees which record it is
    admin = api_login(client, "admin", PASSWORDS["admin"])
    theirs = client.get(f"/api/v1/submissions/{probe}", headers=admin).json
    reuse = next(f for f in theirs["flags"] if f["code"] == "reused_photo")
    assert reuse["figures"]["other_uses"] == [
        {"submission_id": honest["id"], "facility_id": honest["record"]}
    ]
    # and the honest record's own supervisor sees the probe as another township's record
    tongpu = api_login(client, "supervisor", PASSWORDS["supervisor"])
    mine = client.get(f"/api/v1/submissions/{honest['id']}", headers=tongpu).json
    reuse = next(f for f in mine["flags"] if f["code"] == "reused_photo")
    assert reuse["figures"]["other_township_uses"] == 1
    assert probe not in str(mine["flags"])


def test_the_desk_withholds_another_townships_photo_and_names_no_record(planted, client, store):
    victim, honest = planted["victim"], planted["honest"]
    add_user(store, "shiling")
    login_page(client, "shiling", "Pw-12345678")
    for variant in ("320", "1280", "original"):
        assert client.get(f"/desk/media/{sha(victim)}/{variant}").status_code == 404
    assert client.get(f"/desk/media/{sha(planted['own'])}/320").status_code == 200
    html = client.get(f"/desk/submissions/{planted['probe']['id']}").get_data(as_text=True)
    assert "另一乡镇的记录" in html and "无权查看" in html
    assert f"/desk/media/{sha(victim)}/320" not in html
    assert honest["record"] not in html and honest["id"] not in html
    assert "照片 GPS（EXIF）" not in html.split("无权查看")[1].split("photo-card")[0]
    archive = client.get(f"/desk/exports/villages/{SHILING}/photos.zip")
    names = zipfile.ZipFile(io.BytesIO(archive.get_data())).namelist()
    assert not any(sha(victim)[:12] in n for n in names)
    assert any(sha(planted["own"])[:12] in n for n in names)


def test_the_monthly_task_page_shows_no_photo_the_viewer_may_not_read(
    planted, make_phone, client, store
):
    """桐浦乡's secretary puts 石岭镇's photo hash, and a photo never sent, into a task report:
    the supervisor's task page withholds the one and says the other is not uploaded."""
    secretary = make_phone("secretary")
    party = next(t for t in store.tasks(YUNYU, "2026-11") if t["template"] == "party_day")
    never_sent = noise_photo(9)
    photos = [photo(sha(planted["own"])), photo(sha(never_sent))]
    item = party_day_report(party["id"], secretary.clock(), photos)
    assert secretary.push([item]).json["results"][0]["status"] in ("accepted", "waiting_for_photos")
    login_page(client, "supervisor")
    html = client.get("/desk/tasks?month=2026-11").get_data(as_text=True)
    assert f"/desk/media/{sha(planted['own'])}/320" not in html and "无权查看" in html
    assert f"/desk/media/{sha(never_sent)}/320" not in html and "照片未上传" in html


def test_the_desk_shows_an_admin_the_details(planted, client):
    login_page(client, "admin")
    html = client.get(f"/desk/submissions/{planted['probe']['id']}").get_data(as_text=True)
    assert planted["honest"]["id"] in html and "另一乡镇的记录" not in html
    assert client.get(f"/desk/media/{sha(planted['victim'])}/320").status_code == 200


def test_a_photo_reused_by_someone_who_could_already_see_it_opens_in_their_village(
    make_phone, client, store
):
    """Held in scope: an inspector of 云屿村 and 桐浦村 reuses a 云屿村 photo in 桐浦村; a
    user of 桐浦村 alone may then see it there."""
    both, _ = add_user(store, "both", role="inspector", township="桐浦乡")
    only, _ = add_user(store, "only", role="inspector", township="桐浦乡")
    store.assign(both, [YUNYU, TONGPU_2], at=START.isoformat())
    store.assign(only, [TONGPU_2], at=START.isoformat())
    shared = noise_photo(7)
    inspect(make_phone("inspector"), first_toilet(YUNYU), shared, noise_photo(8))
    only_headers = api_login(client, "only", "Pw-12345678")
    assert display(client, only_headers, shared).status_code == 403  # not used in 桐浦村 yet
    both_headers = api_login(client, "both", "Pw-12345678")
    answers = toilet_answers(photo_outside=[photo(sha(shared))], photo_inside=[photo(sha(shared))])
    item = submission(first_toilet(TONGPU_2), "1795140000000-0000-dev-both", answers=answers)
    body = {"device_id": "dev-both", "device_time_ms": 1795140000000, "items": [item]}
    result = client.post("/api/v1/sync/push", json=body, headers=both_headers).json
    assert result["results"][0]["status"] == "accepted"
    assert display(client, only_headers, shared).status_code == 200


def test_an_upload_records_who_sent_the_bytes(phone, client, store):
    data = noise_photo(9)
    answers = toilet_answers(photo_outside=[photo(sha(data))], photo_inside=[photo(sha(data))])
    item = submission(first_toilet(YUNYU), phone.clock(), answers=answers)
    assert phone.push([item]).json["results"][0]["missing"] == [sha(data)]
    assert store.photos_held_by(1, [sha(data)]) == set()
    assert upload(client, phone, data).status_code == 200
    inspector = store.user(username="inspector")["id"]
    assert store.photos_held_by(inspector, [sha(data)]) == {sha(data)}


# -- a version 3 database ------------------------------------------------------------------


def _v3_database(path):
    store = version_3_database(path)
    # Today's storage writes the position columns of schema 7 and the audit chain of schema 10;
    # schema 3 has none, so they are there only while the demo is loaded.
    later = [(t, c) for t in ("villages", "facilities") for c in ("datum", "position_source")]
    later += [("audit", c) for c in ("seq", "prev_hash", "hash")]
    with store.write():
        for table, column in later:
            store.q(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
    load_demo(store, now=START)
    with store.write():
        for table, column in later:
            store.q(f"ALTER TABLE {table} DROP COLUMN {column}")
    return store


def _use(db, sid, village, facility, author, photos, received_at):
    """A submission and its photos, as schema 3 code wrote them (no `seq`: SQLite's rowid)."""
    db["submissions"].insert(
        {
            "id": sid,
            "form_id": "toilet",
            "form_version": 1,
            "record_id": facility,
            "record_type": "facility",
            "village_code": village,
            "author_id": author,
            "device_id": "d",
            "clock": f"1795140000000-0000-{sid}",
            "observed_at": "2026-11-20T10:35:00+08:00",
            "received_at": received_at,
            "answers": "{}",
            "content_hash": sid,
            "state": "complete",
        }
    )
    db["submission_media"].insert_all(
        {"submission_id": sid, "field": field, "sha256": sha256} for field, sha256 in photos
    )


def _media(db, sha256, created_at, phash):
    db["media"].insert(
        {
            "sha256": sha256,
            "size": 1,
            "mime": "image/jpeg",
            "width": 1,
            "height": 1,
            "exif": "{}",
            "phash": phash,
            "crop_hashes": "[]",
            "created_at": created_at,
        }
    )


PHOTO, LATER_PHOTO = "a" * 64, "0" * 64


@pytest.fixture
def v3(tmp_path):
    """A version 3 file holding two photos used by three submissions, with flags; the user ids
    by name. Rows go in out of key order, so their rowid order is a real order to keep."""
    store = _v3_database(tmp_path / "v3.db")
    ids = dict(store.q("SELECT username, id FROM users").all())
    with store.write():
        db = store.legacy_sqlite()
        _use(
            db,
            "s1",
            YUNYU,
            first_toilet(YUNYU),
            ids["inspector"],
            [("photo_outside", PHOTO), ("photo_inside", LATER_PHOTO), ("evidence", PHOTO)],
            "2026-11-01",
        )
        _media(db, PHOTO, "2026-11-02", "ffff000000000000")
        # a probe made before the upgrade, after the photo was held
        _use(
            db,
            "s2",
            SHILING,
            first_toilet(SHILING),
            ids["inspector2"],
            [("photo_outside", PHOTO)],
            "2026-11-03",
        )
        _media(db, LATER_PHOTO, "2026-11-04", "0000000000000000")
        db["flags"].insert_all(
            {"submission_id": "s1", "code": code, "photo": PHOTO, "figures": "{}", "message": "{}"}
            for code in ("taken_before", "no_gps", "clock_skew")
        )
    store.close()
    return tmp_path / "v3.db", ids


def test_a_version_3_database_keeps_the_photos_it_holds_readable(v3):
    path, ids = v3
    store = connect(path)
    assert store.migrate() == SCHEMA_VERSION
    assert store.schema_version() == SCHEMA_VERSION
    assert store.readable_photos([PHOTO], [YUNYU]) == {PHOTO}
    assert store.readable_photos([PHOTO], [SHILING]) == set()
    assert store.photos_held_by(ids["inspector"], [PHOTO, LATER_PHOTO]) == {PHOTO, LATER_PHOTO}
    assert store.migrate() == SCHEMA_VERSION  # again: nothing changes
    store.close()


def test_a_version_3_database_keeps_the_order_of_its_photos_and_flags(v3):
    path, _ = v3
    store = connect(path)
    store.migrate()
    for table in ("media", "submission_media", "flags"):  # seq is the old rowid
        assert store.q(f"SELECT seq FROM {table} ORDER BY rowid").scalars().all() == [
            *range(1, store.scalar(f"SELECT count(*) FROM {table}") + 1)
        ], table
    assert [sha for _, sha, _, _ in store.media_hashes_after(0)] == [PHOTO, LATER_PHOTO]
    assert [u["sha256"] for u in store.submissions_using([PHOTO, LATER_PHOTO])][:3] == [
        PHOTO,
        LATER_PHOTO,
        PHOTO,
    ]
    assert [f["code"] for f in store.flags_of("s1")] == ["taken_before", "no_gps", "clock_skew"]
    # new rows follow the old ones
    store.insert_media(
        {
            "sha256": "b" * 64,
            "size": 1,
            "mime": "image/jpeg",
            "width": 1,
            "height": 1,
            "exif": {},
            "phash": "00ff000000000000",
            "crop_hashes": [],
            "created_at": "2026-11-30",
        }
    )
    assert [sha for _, sha, _, _ in store.media_hashes_after(2)] == ["b" * 64]
    flag = {"code": "reused_photo", "photo": PHOTO, "figures": {}, "message": {}}
    store.add_flags([{**flag, "submission_id": "s1"}])
    assert [f["code"] for f in store.flags_of("s1")][-1] == "reused_photo"
    assert store.scalar("SELECT max(seq) FROM flags") == 4
    store.close()


# -- the redaction itself (pure) -----------------------------------------------------------


def _reuse(relations):
    return {
        "code": "reused_photo",
        "photo": "p" * 64,
        "figures": {},
        "message": {},
        "relations": relations,
    }


def test_redaction_counts_out_of_scope_records_and_names_the_others():
    flag = _reuse(
        [
            {"submission_id": "s-mine", "facility_id": "F-MINE", "village": "V1"},
            {"submission_id": "s-theirs", "facility_id": "F-THEIRS", "village": "V9"},
        ]
    )
    (shown,) = visible_flags([flag], villages={"V1"}, readable={"p" * 64}, admin=False)
    assert shown["figures"]["other_uses"] == [{"submission_id": "s-mine", "facility_id": "F-MINE"}]
    assert shown["figures"]["count"] == 2 and shown["figures"]["other_township_uses"] == 1
    assert "F-THEIRS" not in str(shown) and "s-theirs" not in str(shown)
    assert shown["message"]["zh"].endswith("（设施：F-MINE；另一乡镇的记录 1 条）")
    (admin,) = visible_flags([flag], villages={"V1"}, readable=set(), admin=True)
    assert admin["figures"]["facility_ids"] == ["F-MINE", "F-THEIRS"]
    assert "other_township_uses" not in admin["figures"]


def test_redaction_hides_a_near_duplicates_hash_and_facility():
    theirs = "t" * 64
    flag = {
        "code": "near_duplicate",
        "photo": "p" * 64,
        "figures": {},
        "message": {},
        "threshold": 10,
        "relations": [{"sha256": theirs, "facility_id": "F-T", "distance": 3, "village": "V9"}],
    }
    (shown,) = visible_flags([flag], villages={"V1"}, readable=set(), admin=False)
    assert theirs not in str(shown) and "F-T" not in str(shown)
    assert shown["figures"]["matches"] == [
        {"sha256": None, "facility_id": None, "distance": 3, "other_township": True}
    ]
    assert "另一乡镇的记录" in shown["message"]["zh"] and "差异值 3" in shown["message"]["zh"]
    (admin,) = visible_flags([flag], villages={"V1"}, readable=set(), admin=True)
    assert admin["figures"]["matches"][0]["sha256"] == theirs


def test_redaction_withholds_exif_figures_of_a_photo_the_viewer_may_not_read():
    far = {
        "code": "far_from_facility",
        "photo": "p" * 64,
        "figures": {"photo_position": {"lat": 24.7, "lon": 109.2}, "distance_m": 2000},
        "message": {"zh": "照片拍摄地点距设施 2.0 公里", "en": "..."},
    }
    skew = {"code": "large_clock_skew", "photo": None, "figures": {"skew_ms": 1}, "message": {}}
    shown = visible_flags([skew, far], villages={"V1"}, readable=set(), admin=False)
    assert shown[0]["figures"] == {"skew_ms": 1}
    assert shown[1] == {
        "code": "far_from_facility",
        "photo": "p" * 64,
        "figures": {"withheld": True},
        "message": WITHHELD,
    }
    assert visible_flags([far], villages={"V1"}, readable={"p" * 64}, admin=False)[0] == {
        k: far[k] for k in ("code", "photo", "figures", "message")
    }


def test_a_relation_flag_without_current_relations_shows_only_its_summary():
    """A reuse flag judged before schema 4 stored its figures, naming the other records."""
    old = _reuse([])
    old.update(figures={"facility_ids": ["F-THEIRS"]}, message={"zh": "…（设施：F-THEIRS）"})
    (shown,) = visible_flags([old], villages={"V1"}, readable=set(), admin=False)
    assert "F-THEIRS" not in str(shown)
    assert (
        shown["figures"] == {}
        and shown["message"]["zh"] == "同一张照片（内容完全相同）还用在其他记录中"
    )
