"""Dashboard benchmark (on demand, not in CI): /desk/indicators on a county-sized database.

Builds the demo county scaled up to 300 villages in 15 townships, 15,000 facilities, a year of
monthly tasks and 200,000 submissions (inserted straight through storage, no HTTP), runs the
`recompute-indicators` job, then times the page for the county admin (all 300 villages) and a
township supervisor, from the snapshot and computed live (no snapshot for the month).
Target: under 500 ms.

    .venv/bin/python tests/bench/bench_dashboard.py [--submissions 200000] [--runs 10]
        [--db PATH_OR_URL]   (a SQLite file or a PostgreSQL database URL; built unless it
                              already holds submissions, else reused)
"""

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import toilet_answers  # noqa: E402

from server import create_app  # noqa: E402
from server.auth import hash_token  # noqa: E402
from server.bootstrap import init_db  # noqa: E402
from server.demo import load_demo  # noqa: E402
from server.jobs import JobContext, generate_tasks, recompute_indicators  # noqa: E402
from server.storage import connect, database_url  # noqa: E402
from sync.clock import Clock, encode  # noqa: E402

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
TOWNSHIPS = 15
VILLAGES_PER_TOWNSHIP = 20
CONFIG = {"TIMEZONE": "Asia/Shanghai", "CONFLICT_WINDOW_HOURS": 72}


def facility_plan(rng, first_in_township):
    """(kind, fields) of one village's 50 facilities."""
    plan = []
    for _ in range(35):
        sanitary = rng.random() < 0.97
        plan.append(
            (
                "toilet",
                {
                    "toilet_type": "household",
                    "sanitary": sanitary,
                    "harmless": sanitary and rng.random() < 0.9,
                    "in_use": rng.random() < 0.98,
                },
            )
        )
    plan.append(("toilet", {"toilet_type": "committee", "open_to_public": True, "in_use": True}))
    kinds = ["transfer_station" if first_in_township else "collection_point"] + ["bin_group"] * 4
    plan += [("rubbish", {"rubbish_type": k, "running": rng.random() < 0.95}) for k in kinds]
    fire = ["micro_station", "publicity_point"] if first_in_township else ["extinguisher_point"] * 2
    plan += [("fire", {"fire_type": k, "equipment_ok": True}) for k in fire + ["homestay"]]
    plan += [
        ("zone", {"zone_type": "hamlet", "score": rng.choice([60, 70, 80, 90, 100])})
        for _ in range(50 - len(plan))
    ]
    return plan


def build(url: str, *, submissions: int, seed: int = 1) -> dict:
    """The scaled county; returns counts. Everything goes through storage methods."""
    rng = random.Random(seed)
    store = connect(url)
    at = NOW.isoformat(timespec="milliseconds")
    init_db(store, at=at)
    load_demo(store, now=NOW)
    clock = encode(Clock(int(NOW.timestamp() * 1000) - 86_400_000, 0, "bench"))
    villages = []
    for t in range(TOWNSHIPS):
        for v in range(VILLAGES_PER_TOWNSHIP):
            code = f"450222{101 + t:03d}{v + 1:03d}"
            if store.village(code) is None:
                villages.append(
                    {
                        "code": code,
                        "name": f"第{t + 1}乡{v + 1}村",
                        "township": f"第{t + 1}乡" if t > 1 else ("桐浦乡", "石岭镇")[t],
                        "county": "柳城县",
                        "county_class": 2,
                        "households": rng.randint(120, 400),
                        "lat": 24.5 + t * 0.02,
                        "lon": 109.2 + v * 0.01,
                    }
                )
    store.upsert_villages(villages, at=at)
    all_villages = store.villages()
    facility_ids = []
    with store.write():
        for village in villages:
            first = village["code"].endswith("001")
            for kind, fields in facility_plan(rng, first):
                fid = str(uuid.uuid4())
                store.insert_facility(
                    {
                        "id": fid,
                        "village_code": village["code"],
                        "kind": kind,
                        "name": f"{village['name']}{kind}{len(facility_ids)}",
                        "lat": village["lat"] + rng.random() * 0.01,
                        "lon": village["lon"] + rng.random() * 0.01,
                        "created_clock": clock,
                        "state": {
                            k: {"value": val, "clock": clock, "by": "bench"}
                            for k, val in {**fields, "status": "active"}.items()
                        },
                    },
                    at=at,
                )
                if kind == "toilet":
                    facility_ids.append((fid, village["code"]))
    for month in range(1, 13):
        generate_tasks(JobContext(store, NOW, CONFIG, month=f"2026-{month:02d}"))
    answers = toilet_answers(
        photo_outside=None, photo_inside=None, notes="户主在家，厕所干净，化粪池盖板完好。"
    )
    admin_id = store.user(username="inspector")["id"]
    with store.write():
        for n in range(submissions):
            fid, code = facility_ids[n % len(facility_ids)]
            sub_id = str(uuid.uuid4())
            day = 1 + n % 28
            month = 1 + (n // 28) % 11
            shas = [uuid.uuid4().hex * 2, uuid.uuid4().hex * 2]
            photo = [{"sha256": s, "captured_at": None, "position": None} for s in shas]
            store.insert_submissions(
                [
                    (
                        {
                            "id": sub_id,
                            "form_id": "toilet",
                            "form_version": 1,
                            "record_id": fid,
                            "record_type": "facility",
                            "village_code": code,
                            "author_id": admin_id,
                            "device_id": "bench",
                            "clock": encode(Clock(1_760_000_000_000 + n, 0, "bench")),
                            "observed_at": f"2026-{month:02d}-{day:02d}T10:00:00+08:00",
                            "received_at": at,
                            "answers": {
                                **answers,
                                "photo_outside": photo[:1],
                                "photo_inside": photo[1:],
                            },
                            "content_hash": sub_id,
                            "state": "approved",
                        },
                        [{"field": "photo_outside", "sha256": shas[0]}],
                    )
                ]
            )
    if store.dialect.name == "sqlite":
        store.q("PRAGMA wal_checkpoint(TRUNCATE)")
    counts = {
        "villages": len(all_villages),
        **{t: store.scalar(f"SELECT count(*) FROM {t}") for t in ("facilities", "tasks")},
        "submissions": submissions_in(store),
    }
    store.close()
    return counts


def submissions_in(store) -> int:
    """Submissions in the database (0 for a new, empty one)."""
    if "submissions" not in store.table_names():
        return 0
    return store.scalar("SELECT count(*) FROM submissions")


def engine_version(url: str) -> str:
    store = connect(url)
    try:
        if store.dialect.name == "sqlite":
            return f"sqlite {store.scalar('SELECT sqlite_version()')}"
        return store.scalar("SELECT version()").split(" on ")[0]
    finally:
        store.close()


def timed_get(client, url, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url)
        body = response.get_data()
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    return times, len(body)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submissions", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--db", default=None, help="a SQLite file or a database URL")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vc-bench-dash-"))
    url = database_url(args.db or folder / "county.db")
    store = connect(url)
    built = submissions_in(store)
    store.close()
    if not built:
        start = time.perf_counter()
        counts = build(url, submissions=args.submissions)
        print(f"built {json.dumps(counts)} in {time.perf_counter() - start:.1f} s -> {url}")
    store = connect(url)
    start = time.perf_counter()
    recompute_indicators(JobContext(store, NOW, CONFIG, month="2026-11"))
    job_ms = (time.perf_counter() - start) * 1000
    store.close()
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": url,
            "MEDIA_ROOT": str(folder / "media"),
            "SECRET_KEY": "bench",
            "CLOCK": lambda: NOW,
        }
    )
    results = {"recompute-indicators job": (None, job_ms)}
    store = connect(url)
    for username, page, label in (
        ("admin", "/desk/indicators?month=2026-11", "admin, 300 villages, snapshot"),
        ("supervisor", "/desk/indicators?month=2026-11", "supervisor, 20 villages, snapshot"),
        ("admin", "/desk/indicators?month=2026-10", "admin, 300 villages, live (no snapshot)"),
    ):
        client = app.test_client()
        session_id = uuid.uuid4().hex
        store.create_desk_session(
            hash_token(session_id), store.user(username=username)["id"], at=NOW.isoformat()
        )
        with client.session_transaction() as session:
            session["sid"] = session_id
        client.get(page)  # warm up (templates compiled)
        times, size = timed_get(client, page, args.runs)
        results[label] = (times, size)
    store.close()
    print(f"python {platform.python_version()}, {engine_version(url)}")
    print(f"recompute-indicators job: {job_ms:.0f} ms")
    for label, (times, size) in results.items():
        if times is None:
            continue
        print(
            f"GET {label}: median {statistics.median(times):.0f} ms, "
            f"max {max(times):.0f} ms over {len(times)} runs ({size // 1024} KB)"
        )


if __name__ == "__main__":
    main()
