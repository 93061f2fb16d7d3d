"""Fixtures: an app on a real SQLite file holding the demo county, a client, and helpers."""

import hashlib
import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from engines import ENGINES, create_database, database_on, drop_database, session_engine
from PIL import Image
from sqlalchemy.engine import make_url

from server import create_app
from server.bootstrap import init_db
from server.demo import demo_data, load_demo
from server.storage import MIGRATIONS, connect, database_url
from sync.clock import Clock, encode

START = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
# Real camera photos with real EXIF (shared/corpus beside the checkout, or VILLAGECHECK_CORPUS).
CORPUS = Path(
    os.environ.get(
        "VILLAGECHECK_CORPUS",
        Path(__file__).resolve().parents[2] / "shared" / "corpus" / "exif-samples",
    )
)
assert CORPUS.is_dir(), f"photo corpus not found at {CORPUS}: set VILLAGECHECK_CORPUS"
PASSWORDS = {u["username"]: u["password"] for u in demo_data()["users"]}
YUNYU = "450222101001"  # 云屿村, 桐浦乡
SHILING = "450222102001"  # 石岭村, 石岭镇: not the inspector's village


class FakeClock:
    """The server's wall clock, fixed unless a test moves it."""

    def __init__(self, start=START):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


def demo_database(path: Path, now: datetime = START) -> Path:
    """Create a database file at `path` holding the demo county (also used by the benches)."""
    store = connect(path)
    init_db(store, at=now.isoformat())
    load_demo(store, now=now)
    if store.dialect.name == "sqlite":
        store.q("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return path


def version_3_database(path: Path):
    """An empty database at schema version 3 (before desk sessions); returns it open."""
    store = connect(path)
    with store.write():
        db = store.legacy_sqlite()
        db["meta"].create({"key": str, "value": str}, pk="key")
        for version in (1, 2, 3):
            MIGRATIONS[version](db)
        db.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    return store


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory):
    """The demo county, built once and copied for each test: a SQLite file, or on PostgreSQL
    (VILLAGECHECK_TEST_ENGINE=postgresql) a template database."""
    if session_engine() == "sqlite":
        yield demo_database(tmp_path_factory.mktemp("template") / "demo.db")
        return
    url = create_database()
    demo_database(url)
    yield make_url(url).database
    drop_database(url)


@pytest.fixture(params=ENGINES)
def engine_url(request, tmp_path):
    """An empty database on each engine in turn (the storage contract runs on both)."""
    url = database_on(request.param, tmp_path)
    yield url
    if request.param == "postgresql":
        drop_database(url)


@pytest.fixture
def any_store(engine_url):
    """A migrated, empty `Storage` on each engine in turn."""
    store = connect(engine_url)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def clock():
    return FakeClock()


def app_on(folder: Path, clock=None, database_url: str = ""):
    """A test app on `folder`'s vc.db (or `database_url`) and media store, its clock fixed at
    START unless given."""
    return create_app(
        {
            "TESTING": True,
            "DATABASE": str(folder / "vc.db"),
            "DATABASE_URL": database_url,
            "MEDIA_ROOT": str(folder / "media"),
            "SECRET_KEY": "test",
            "CLOCK": clock or FakeClock(),
        }
    )


def demo_copy(folder: Path, demo_db) -> str:
    """A fresh copy of the demo county on this session's engine; returns its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    if session_engine() == "sqlite":
        shutil.copy(demo_db, folder / "vc.db")
        return database_url(folder / "vc.db")
    return create_database(template=demo_db)


@pytest.fixture
def app(tmp_path, demo_db, clock):
    url = demo_copy(tmp_path, demo_db)
    yield app_on(tmp_path, clock, url)
    if session_engine() == "postgresql":
        drop_database(url)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def store(app):
    s = connect(app.config["DATABASE_URL"])
    yield s
    s.close()


@pytest.fixture
def toilets():
    """The household toilets of 云屿村 in the demo county."""
    return [
        f["id"]
        for f in demo_data()["facilities"]
        if f["village"] == YUNYU and f["kind"] == "toilet"
    ]


@pytest.fixture
def facilities():
    """Demo facilities by (village, kind): the first of each."""
    out = {}
    for f in demo_data()["facilities"]:
        out.setdefault((f["village"], f["kind"]), f)
    return out


class Phone:
    """A phone talking to the server through the test client, with its own clock."""

    def __init__(self, client, username, device_id=None):
        self.client = client
        self.device_id = device_id or f"phone-{username}-{uuid.uuid4().hex[:6]}"
        response = client.post(
            "/api/v1/auth/login",
            json={
                "username": username,
                "password": PASSWORDS[username],
                "device_id": self.device_id,
            },
        )
        assert response.status_code == 200, response.json
        self.token = response.json["token"]
        self.wall_ms = int(START.timestamp() * 1000)
        self.counter = 0
        self.cursor = None

    @property
    def headers(self):
        return {"Authorization": f"Bearer {self.token}"}

    def clock(self, minutes=0) -> str:
        """A new clock reading; `minutes` moves the phone's wall clock first."""
        self.wall_ms += int(minutes * 60_000)
        self.counter += 1
        return encode(Clock(self.wall_ms, self.counter, self.device_id))

    def push(self, items, **extra):
        body = {
            "device_id": self.device_id,
            "device_time_ms": self.wall_ms,
            "items": items,
            **extra,
        }
        return self.client.post("/api/v1/sync/push", json=body, headers=self.headers)

    def pull(self, since=None, **params):
        query = {"since": since if since is not None else self.cursor, **params}
        query = {k: v for k, v in query.items() if v is not None}
        return self.client.get("/api/v1/sync/pull", query_string=query, headers=self.headers)

    def pull_all(self):
        """Pull every page; returns the merged lists by kind."""
        seen = {"forms": [], "villages": [], "facilities": [], "tasks": []}
        while True:
            response = self.pull()
            assert response.status_code == 200, response.json
            for key in seen:
                seen[key].extend(response.json[key])
            self.cursor = response.json["cursor"]
            if not response.json["more"]:
                return seen


@pytest.fixture
def phone(client):
    return Phone(client, "inspector")


@pytest.fixture
def make_phone(client):
    return lambda username="inspector", **kw: Phone(client, username, **kw)


def sha(data: bytes) -> str:
    """The hex SHA-256 of some bytes (a photo's id)."""
    return hashlib.sha256(data).hexdigest()


def upload_photo(client, headers, data: bytes, *, chunk=None, digest=None, drain=True):
    """Send a photo's bytes by resumable upload, in chunks of `chunk` bytes (all in one request
    by default), as long as the server answers 200; returns the last response. The last chunk
    is answered 503 `processing`: then (unless `drain` is False) the queue is run and the
    answer is the photo's status once processed."""
    digest = digest or sha(data)
    chunk = chunk or max(len(data), 1)
    offset, response = 0, None
    while offset < len(data) or offset == 0:
        response = client.patch(
            f"/api/v1/media/{digest}",
            data=data[offset : offset + chunk],
            headers={
                **headers,
                "Upload-Offset": str(offset),
                "Upload-Length": str(len(data)),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        if drain and response.status_code == 503 and response.json["error"]["code"] == "processing":
            return processed(client, headers, digest)
        if response.status_code != 200:
            return response
        offset = response.json["offset"]
        if response.json["complete"]:
            break
    return response


def processed(client, headers, digest: str):
    """Run the ingest queue as a worker would (tests start no worker threads), then ask about
    the photo again: the answer the phone gets once the photo is processed."""
    from server import ingest_worker

    ingest_worker.drain(client.application)
    return client.get(f"/api/v1/media/{digest}", headers=headers)


def _dms(value: float):
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    return (degrees, minutes, round(((value - degrees) * 60 - minutes) * 60, 4))


def photo_exif(taken: str, *, lat=None, lon=None, camera=("Xiaomi", "Redmi Note 12")):
    """EXIF for a test photo: camera (unless None), time taken at +08:00, GPS when given."""
    exif = Image.Exif()
    if camera:
        exif[0x010F], exif[0x0110] = camera
    exif.get_ifd(0x8769)[0x9003] = taken
    exif.get_ifd(0x8769)[0x9011] = "+08:00"
    if lat is not None:
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2], gps[3], gps[4] = "N", _dms(lat), "E", _dms(lon)
    return exif


def photo(sha=None, **extra):
    return {
        "sha256": sha or uuid.uuid4().hex * 2,
        "captured_at": "2026-11-20T10:31:05+08:00",
        "position": {"lat": 24.7636, "lon": 109.2947, "accuracy": 8.0},
        **extra,
    }


def toilet_answers(**overrides):
    answers = {
        "toilet_type": "household",
        "sanitary": True,
        "harmless": True,
        "construction": "septic3",
        "in_use": True,
        "hazards": [],
        "usage_notice": True,
        "phones_posted": True,
        "manure_emptied": True,
        "photo_outside": [photo()],
        "photo_inside": [photo()],
    }
    answers.update(overrides)
    return {k: v for k, v in answers.items() if v is not None}


def party_day_report(task_id, clock, photos):
    """A first secretary's 主题党日 done on 11-19, with these evidence photos."""
    answers = {
        "task_kind": "party_day",
        "status": "done",
        "completed_on": "2026-11-19",
        "party_topic": "主题党日",
        "party_attendance": 18,
        "evidence_photos": photos,
    }
    return submission(task_id, clock, form="monthly_task", answers=answers)


def submission(
    facility_id,
    clock,
    *,
    form="toilet",
    version=1,
    answers=None,
    base=None,
    observed_at="2026-11-20T10:35:00+08:00",
    sub_id=None,
):
    return {
        "type": "submission",
        "id": sub_id or str(uuid.uuid4()),
        "form": form,
        "version": version,
        "record": facility_id,
        "clock": clock,
        "observed_at": observed_at,
        "answers": toilet_answers() if answers is None else answers,
        "base": base or {},
    }


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, one per test module (skipped where it is absent)."""
    from pwa_helpers import CHROMIUM, launch_chromium

    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()
