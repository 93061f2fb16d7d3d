"""Reuse and near-duplicate flags: bounded work per new use, and the same flags in any order.

A photo used by many submissions must not make each new use re-judge all the others (issue 8,
finding 5: that was quadratic and held the write lock for minutes). These tests count the SQL
statements a push runs, and replay one set of inspections in many arrival orders.
"""

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import START, Phone, app_on, photo, sha, submission, toilet_answers
from engines import create_database, drop_database, session_engine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import event
from sqlalchemy.engine import make_url
from test_media_api import noise_photo, upload

import server.context
from server.demo import demo_data
from server.storage import connect

VILLAGES = ("450222101001", "450222101002", "450222101003")  # the demo inspector's villages
TOILETS = [
    f["id"] for f in demo_data()["facilities"] if f["village"] in VILLAGES and f["kind"] == "toilet"
]


def inspection(phone, facility_id, hashes, sub_id=None):
    answers = toilet_answers(
        photo_outside=[photo(hashes[0])], photo_inside=[photo(h) for h in hashes[1:]]
    )
    return submission(facility_id, phone.clock(), answers=answers, sub_id=sub_id)


def push_one(phone, item) -> dict:
    response = phone.push([item])
    assert response.status_code == 200, response.json
    return response.json["results"][0]


@pytest.fixture
def statements(monkeypatch):
    """Every SQL statement the app's connections send to the driver, in order (one for each
    row of an executemany)."""
    seen: list[str] = []
    connect = server.context.connect

    def spy(_conn, _cursor, statement, parameters, _context, executemany):
        seen.extend([statement] * (len(parameters) if executemany else 1))

    def traced(url, **kwargs):
        store = connect(url, **kwargs)
        event.listen(store.conn, "before_cursor_execute", spy)
        return store

    monkeypatch.setattr(server.context, "connect", traced)
    return seen


def test_each_new_use_of_a_photo_costs_the_same_however_often_it_was_used(
    statements, make_phone, store
):
    phone = make_phone()
    reused = noise_photo(1)
    first = inspection(phone, TOILETS[0], [sha(reused), sha(reused)])
    assert sha(reused) in push_one(phone, first)["missing"]
    assert upload(phone.client, phone, reused).status_code == 200
    cost = {}
    for n, facility_id in enumerate(TOILETS[1:31], start=2):
        statements.clear()
        item = inspection(phone, facility_id, [sha(reused), sha(reused)])
        assert push_one(phone, item)["status"] == "accepted"
        cost[n] = len(statements)
    # the second use adds the flag to the first; from then on every use costs the same
    assert cost[3] == cost[10] == cost[31], cost
    flagged = store.scalar(
        "SELECT count(DISTINCT submission_id) FROM flags WHERE code = 'reused_photo'"
    )
    assert flagged == 31
    assert min(store.q("SELECT risk_score FROM submissions").scalars()) >= 50


def test_reuse_figures_are_counted_when_read(make_phone, phone, client):
    reused = noise_photo(2)
    items = [
        inspection(phone, TOILETS[i], [sha(reused), sha(noise_photo(10 + i))]) for i in (0, 1, 2)
    ]
    for item in items:
        for h in push_one(phone, item).get("missing", []):
            data = reused if h == sha(reused) else noise_photo(10 + items.index(item))
            assert upload(client, phone, data).status_code == 200
    supervisor = make_phone("supervisor")
    body = client.get(f"/api/v1/submissions/{items[0]['id']}", headers=supervisor.headers).json
    flag = next(f for f in body["flags"] if f["code"] == "reused_photo")
    assert flag["figures"]["count"] == 2
    assert {u["submission_id"] for u in flag["figures"]["other_uses"]} == {
        items[1]["id"],
        items[2]["id"],
    }
    assert sorted(flag["figures"]["facility_ids"]) == sorted(TOILETS[1:3])
    assert "另外 2 条记录" in flag["message"]["zh"]


# -- the same flags whatever the arrival order -----------------------------------------------


def _near_copy(data: bytes) -> bytes:
    """The same picture re-encoded at lower quality: new bytes, a near-duplicate."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, "JPEG", quality=55)
    return buf.getvalue()


A = noise_photo(101)
PHOTOS = {"A": A, "A2": _near_copy(A), "B": noise_photo(102), "C": noise_photo(103)}
PHOTOS["D"] = noise_photo(104)
# submission -> (facility, photos): A reused across records, A2 a near copy of A, B reused on
# one facility, D reused across two.
SCENARIO = {
    "00000000-0000-4000-8000-000000000001": (TOILETS[0], ["A", "B"]),
    "00000000-0000-4000-8000-000000000002": (TOILETS[1], ["A", "C"]),
    "00000000-0000-4000-8000-000000000003": (TOILETS[2], ["A2", "D"]),
    "00000000-0000-4000-8000-000000000004": (TOILETS[0], ["B", "D"]),
}


class LoggedIn(Phone):
    """A phone whose login is already in the template database (logins hash passwords)."""

    def __init__(self, client, token, device_id):
        self.client, self.token, self.device_id = client, token, device_id
        self.wall_ms, self.counter, self.cursor = int(START.timestamp() * 1000), 0, None


@contextlib.contextmanager
def fresh_app(template):
    """An app on a copy of `template`: a SQLite file, or a PostgreSQL database's name."""
    with tempfile.TemporaryDirectory() as tmp:
        if session_engine() == "sqlite":
            shutil.copy(template, Path(tmp) / "vc.db")
            yield app_on(Path(tmp))
            return
        url = create_database(template=template)
        try:
            yield app_on(Path(tmp), database_url=url)
        finally:
            drop_database(url)


@pytest.fixture(scope="module")
def template(demo_db, tmp_path_factory):
    """The demo database with the inspector and an admin logged in: a SQLite file, or the name
    of a PostgreSQL database to copy."""
    folder = tmp_path_factory.mktemp("reuse-template")
    sqlite = session_engine() == "sqlite"
    if sqlite:
        shutil.copy(demo_db, folder / "vc.db")
    url = "" if sqlite else create_database(template=demo_db)
    app = app_on(folder, database_url=url)
    client = app.test_client()
    phones = {name: Phone(client, name) for name in ("inspector", "admin")}
    sessions = {name: (p.token, p.device_id) for name, p in phones.items()}
    # a copy is whole only once the log is checkpointed (SQLite) or nobody is connected
    # (PostgreSQL copies no database in use)
    pool = app.extensions["villagecheck.pool"]
    while not pool._idle.empty():
        pool._idle.get_nowait().close()
    if sqlite:
        store = connect(folder / "vc.db")
        store.q("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        yield folder / "vc.db", sessions
        return
    yield make_url(url).database, sessions
    drop_database(url)


def _outcome(template, events) -> dict:
    """Run push and upload events on a fresh server; each submission's state, score and flags
    as an admin sees them."""
    db, sessions = template
    with fresh_app(db) as app:
        client = app.test_client()
        phone = LoggedIn(client, *sessions["inspector"])
        admin = LoggedIn(client, *sessions["admin"])
        for kind, key in events:
            if kind == "push":
                facility, names = SCENARIO[key]
                push_one(phone, inspection(phone, facility, [sha(PHOTOS[n]) for n in names], key))
            else:
                status = client.get(f"/api/v1/media/{sha(PHOTOS[key])}", headers=phone.headers)
                if not status.json["complete"]:
                    assert upload(client, phone, PHOTOS[key]).status_code == 200
        out = {}
        for sid in SCENARIO:
            body = client.get(f"/api/v1/submissions/{sid}", headers=admin.headers).json
            out[sid] = (
                body["submission"]["state"],
                body["submission"]["risk_score"],
                body["flags"],
            )
        return out


@pytest.fixture(scope="module")
def reference(template):
    """The outcome of the plain order: every push, then every upload."""
    return _outcome(template, [("push", s) for s in SCENARIO] + [("upload", p) for p in PHOTOS])


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_flags_are_the_same_whatever_order_inspections_and_photos_arrive_in(
    template, reference, data
):
    pending = [("push", s) for s in SCENARIO] + [("upload", p) for p in PHOTOS]
    pushed: set[str] = set()
    events = []
    while pending:
        ready = [
            e for e in pending if e[0] == "push" or any(e[1] in SCENARIO[s][1] for s in pushed)
        ]
        event = ready[data.draw(st.integers(0, len(ready) - 1))]
        pending.remove(event)
        events.append(event)
        if event[0] == "push":
            pushed.add(event[1])
    outcome = _outcome(template, events)
    assert outcome == reference, events
    first, second = list(SCENARIO)[:2]
    assert "reused_photo" in {f["code"] for f in outcome[first][2]}
    assert "near_duplicate" in {
        f["code"] for f in outcome["00000000-0000-4000-8000-000000000003"][2]
    }
    assert all(state == "complete" for state, _, _ in outcome.values())
    assert outcome[second][1] >= 50


def test_the_scenario_raises_every_relation(reference):
    codes = {
        sid: {(f["code"], f["photo"]) for f in flags} for sid, (_, _, flags) in reference.items()
    }
    s1, s2, s3, s4 = SCENARIO
    assert ("reused_photo", sha(A)) in codes[s1] and ("reused_photo", sha(A)) in codes[s2]
    assert ("near_duplicate", sha(PHOTOS["A2"])) in codes[s3]
    assert ("near_duplicate", sha(A)) in codes[s1] and ("near_duplicate", sha(A)) in codes[s2]
    assert ("reused_photo", sha(PHOTOS["B"])) in codes[s4]  # same facility still counts
    assert ("reused_photo", sha(PHOTOS["D"])) in codes[s3]
