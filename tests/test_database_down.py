"""The database goes away, on PostgreSQL: before a push, or in the middle of one.

The phone gets a 503 JSON error with the code `database_unavailable` and a Retry-After (or, if
the push had finished, its answer); nothing half-written remains (the push's rows and the
records it merges into are as before it or as after a clean run of it, never in between); and
the phone's retry stores everything exactly once, as a clean run does.

Each test stops a PRIVATE throwaway cluster (scripts/pg_cluster.py), never the shared test
server. Skipped with the reason where PostgreSQL is not installed.
"""

import importlib.util
import itertools
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from conftest import (
    START,
    YUNYU,
    FakeClock,
    Phone,
    app_on,
    demo_database,
    submission,
    toilet_answers,
)
from sqlalchemy import event
from sqlalchemy.engine import make_url

from server.demo import demo_data
from server.storage import connect
from server.storage.core import engine_for
from sync.clock import Clock, encode


def _load_pg_cluster():
    """scripts/ is not an installed package: load the module from its file."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "pg_cluster.py"
    spec = importlib.util.spec_from_file_location("pg_cluster", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pg_cluster = _load_pg_cluster()
NO_POSTGRES = pg_cluster.unavailable_reason()
pytestmark = pytest.mark.skipif(
    NO_POSTGRES is not None, reason=f"needs a throwaway PostgreSQL cluster: {NO_POSTGRES}"
)

DEVICE = "phone-database-down"
BATCH = 200  # PUSH_BATCH_MAX: a push long enough to be cut in the middle
DONE = {"accepted", "waiting_for_photos"}


def create_database(cluster, name: str, template: str | None = None) -> str:
    """A new database on the private cluster (a copy of `template` if given); returns its URL."""
    url = make_url(cluster.url)
    with psycopg.connect(
        host=url.host, port=url.port, user=url.username, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return url.set(database=name).render_as_string(hide_password=False)


def snapshot(url: str, items: list[dict]) -> dict:
    """What a push of `items` leaves in the database: its submissions, observations and photo
    links, and the records it merges into with their conflicts and change-log entries (counted:
    a rolled-back push uses up sequence numbers)."""
    ids = [item["id"] for item in items]
    records = sorted({item["record"] for item in items})
    store = connect(url)
    try:
        return {
            "submissions": store.rows(
                "SELECT id, record_id, clock, answers, state, received_at FROM submissions"
                " WHERE id IN :ids ORDER BY id",
                ids=ids,
            ),
            "observations": store.rows(
                "SELECT id, record_id, clock, fields, base FROM observations"
                " WHERE id IN :ids ORDER BY id",
                ids=ids,
            ),
            "photo links": store.scalar(
                "SELECT count(*) FROM submission_media WHERE submission_id IN :ids", ids=ids
            ),
            "records": store.rows(
                "SELECT id, state FROM facilities WHERE id IN :records ORDER BY id",
                records=records,
            ),
            "conflicts": store.rows(
                "SELECT * FROM conflicts WHERE record_id IN :records ORDER BY id", records=records
            ),
            "record changes": store.scalar(
                "SELECT count(*) FROM changes WHERE entity_id IN :records", records=records
            ),
        }
    finally:
        store.close()


def phone_on(cluster, folder: Path):
    """A new database copied from the demo county, an app on it and the inspector's phone."""
    url = create_database(cluster, f"vc_{uuid.uuid4().hex[:12]}", template="demo")
    folder.mkdir()
    app = app_on(folder, FakeClock(START), url)
    return url, app, Phone(app.test_client(), "inspector", device_id=DEVICE)


def keep_idle_connections(app, count: int = 3) -> None:
    """Leave `count` connections idle in the app's pool, as a busy server would (all of them
    die with the database server)."""
    pool = app.extensions["villagecheck.pool"]
    for store in [pool.acquire() for _ in range(count)]:
        pool.release(store)


def statuses(response) -> list[str]:
    return [result["status"] for result in response.json["results"]]


def assert_unavailable(response, where: str = "") -> None:
    assert response.status_code == 503, (where, response.status_code, response.json)
    assert response.json["error"]["code"] == "database_unavailable"
    assert int(response.headers["Retry-After"]) > 0


class Statements:
    """Records the SQL statements run on one database; can stop the cluster just before the
    k-th (`pg_ctl stop -m immediate`: every connection drops, open transactions are lost)."""

    def __init__(self, url: str, cluster=None, stop_before: int = 0):
        self.engine = engine_for(url)
        self.cluster, self.stop_before = cluster, stop_before
        self.seen: list[str] = []

    def _before(self, _conn, _cursor, statement, *_args) -> None:
        self.seen.append(" ".join(statement.split())[:100])
        if len(self.seen) == self.stop_before:
            self.cluster.stop("immediate")

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._before)
        return self

    def __exit__(self, *_exc):
        event.remove(self.engine, "before_cursor_execute", self._before)


@dataclass
class Reference:
    """One push of BATCH inspections, run cleanly: what it stores and how long it takes."""

    items: list[dict]
    before: dict
    after: dict
    statuses: list[str]
    statements: list[str]
    seconds: float


@pytest.fixture(scope="module")
def server():
    """The private cluster, holding the demo county in the database `demo` (the template of
    each test's)."""
    with pg_cluster.Cluster() as cluster:
        demo_database(create_database(cluster, "demo"))
        yield cluster


@pytest.fixture
def cluster(server):
    """The private cluster, running again after the test whatever it did."""
    yield server
    if not server.running():
        server.start()


def batch() -> list[dict]:
    """BATCH inspections of 云屿村's toilets by one phone, half of them saying unsanitary."""
    toilets = [
        f["id"]
        for f in demo_data()["facilities"]
        if f["village"] == YUNYU and f["kind"] == "toilet"
    ]
    wall_ms = int(START.timestamp() * 1000)
    return [
        submission(
            toilet,
            encode(Clock(wall_ms, i + 1, DEVICE)),
            answers=toilet_answers() if i % 2 else toilet_answers(sanitary=False, harmless=None),
        )
        for i, toilet in zip(range(BATCH), itertools.cycle(toilets), strict=False)
    ]


@pytest.fixture(scope="module")
def reference(server, tmp_path_factory):
    folder, items = tmp_path_factory.mktemp("reference"), batch()
    # Twice: the first run fills the process's caches (forms), whose reads later pushes skip.
    for run in ("warm-up", "measured"):
        url, _app, phone = phone_on(server, folder / run)
        before = snapshot(url, items)
        with Statements(url) as statements:
            start = time.monotonic()
            response = phone.push(items)
            seconds = time.monotonic() - start
        assert response.status_code == 200, response.json
        assert set(statuses(response)) <= DONE, response.json
        after = snapshot(url, items)
    assert after["submissions"] and after != before
    return Reference(items, before, after, statuses(response), statements.seen, seconds)


def test_a_push_while_the_database_is_down_is_a_503_and_its_retry_stores_it_once(
    cluster, reference, tmp_path
):
    url, app, phone = phone_on(cluster, tmp_path / "app")
    keep_idle_connections(app)
    cluster.stop()
    assert_unavailable(phone.push(reference.items))  # idle connections dropped, a new one refused
    assert_unavailable(phone.push(reference.items))  # and again, from an empty pool
    cluster.start()
    assert snapshot(url, reference.items) == reference.before

    retry = phone.push(reference.items)
    assert retry.status_code == 200, retry.json
    assert statuses(retry) == reference.statuses
    assert snapshot(url, reference.items) == reference.after
    again = phone.push(reference.items)
    assert set(statuses(again)) == {"duplicate"}
    assert snapshot(url, reference.items) == reference.after


def test_the_first_request_after_a_restart_succeeds(cluster, reference, tmp_path):
    """The pool's connections died with the server while idle: they are dropped, not used."""
    _url, app, phone = phone_on(cluster, tmp_path / "app")
    keep_idle_connections(app)
    cluster.stop()
    cluster.start()
    assert phone.pull().status_code == 200


def test_the_database_going_down_before_any_statement_of_a_push_leaves_nothing_half_written(
    cluster, reference, tmp_path
):
    """The cluster stops just before each SQL statement of the push in turn (the last is its
    COMMIT), each time on a new copy of the demo county."""
    for k, statement in enumerate(reference.statements, start=1):
        url, _app, phone = phone_on(cluster, tmp_path / f"cut-{k}")
        with Statements(url, cluster, stop_before=k):
            response = phone.push(reference.items)
        assert not cluster.running(), f"the push ran fewer than {k} statements"
        cluster.start()
        check_cut(url, phone, reference, response, f"stopped before statement {k}: {statement}")


@pytest.mark.parametrize("share", [0.2, 0.5, 0.8])
def test_the_database_going_down_during_a_push_leaves_nothing_half_written(
    cluster, reference, tmp_path, share
):
    """The cluster stops from another thread, at a share of a clean push's duration, as a
    crash would come (the push may finish first)."""
    url, _app, phone = phone_on(cluster, tmp_path / "app")
    answer = {}
    pusher = threading.Thread(target=lambda: answer.update(response=phone.push(reference.items)))
    pusher.start()
    time.sleep(share * reference.seconds)
    cluster.stop("immediate")
    pusher.join()
    cluster.start()
    check_cut(url, phone, reference, answer["response"], f"stopped after {share:.0%} of a push")


def check_cut(url, phone, reference, response, where: str) -> None:
    """The cut push answered 503 and stored all or nothing, or finished; the retry stores the
    rest, and everything is then as after a clean push."""
    stored = snapshot(url, reference.items)
    if response.status_code == 200:
        assert statuses(response) == reference.statuses, where
        assert stored == reference.after, where
    else:
        assert_unavailable(response, where)
        assert stored in (reference.before, reference.after), f"half-written, {where}"
    retry = phone.push(reference.items)
    assert retry.status_code == 200, (where, retry.json)
    if stored == reference.before:
        assert statuses(retry) == reference.statuses, where
    else:  # the push was stored, whether or not its answer got through
        assert set(statuses(retry)) == {"duplicate"}, where
    assert snapshot(url, reference.items) == reference.after, where
