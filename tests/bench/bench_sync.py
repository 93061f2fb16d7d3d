"""Sync benchmark (on demand, not in CI): push 10,000 submissions through HTTP and pull back, on
SQLite and on PostgreSQL in one run.

For each engine: 20 simulated phones push toilet inspections in batches of 100 to a live
`villagecheck serve` subprocess on loopback; then a fresh phone pulls everything in pages of 500.
CPU-seconds are those of the server process plus, on PostgreSQL, the cluster's processes (the
postmaster, its live backends and those that ended). In the same run the same submission rows
are inserted raw (executemany, one transaction per batch of 100) into an empty database on the
same engine, for the ratio merged/raw.

    .venv/bin/python tests/bench/bench_sync.py [--submissions 10000] [--engines sqlite,postgresql]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

PostgreSQL needs --postgres (or VILLAGECHECK_TEST_POSTGRES): a server where the bench may
create databases; without it, a throwaway cluster is started (scripts/pg_cluster.py).
"""

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines import create_database, drop_database  # noqa: E402
from live_serve import Serve  # noqa: E402

from forms.compiler import compile_form  # noqa: E402
from forms.definitions import get_builtin  # noqa: E402
from server.bootstrap import init_db  # noqa: E402
from server.demo import demo_data, load_demo  # noqa: E402
from server.storage import connect, database_url, dumps  # noqa: E402
from sync.clock import Clock, encode  # noqa: E402

START = datetime(2026, 11, 1, tzinfo=UTC)
VILLAGES = ["450222101001", "450222101002", "450222101003"]
TICK = os.sysconf("SC_CLK_TCK")


class Api:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.token = None

    def call(self, method, path, body=None):
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {payload}")
        return payload


def add_facilities(store, count, rng, villages=VILLAGES):
    """Extra household toilets so inspections spread as they would over a county."""
    ids = []
    at = START.isoformat()
    clock = encode(Clock(int(START.timestamp() * 1000), 0, "bench"))
    with store.write():
        for n in range(count):
            facility_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            store.insert_facility(
                {
                    "id": facility_id,
                    "village_code": villages[n % len(villages)],
                    "kind": "toilet",
                    "name": f"测试户厕{n}",
                    "lat": 24.76 + rng.random() / 100,
                    "lon": 109.30 + rng.random() / 100,
                    "state": {"toilet_type": {"value": "household", "clock": clock, "by": "bench"}},
                },
                at=at,
            )
            ids.append(facility_id)
    return ids


def make_items(n, device, facility_ids, rng, t0_ms):
    items = []
    for i in range(n):
        wall = t0_ms + rng.randrange(0, 20 * 86_400_000)
        sanitary = rng.random() < 0.9
        answers = {
            "toilet_type": "household",
            "sanitary": sanitary,
            "construction": "septic3",
            "in_use": rng.random() < 0.95,
            "hazards": [],
            "usage_notice": True,
            "phones_posted": True,
            "manure_emptied": True,
            "photo_outside": [
                {
                    "sha256": rng.randbytes(32).hex(),
                    "captured_at": None,
                    "position": {"lat": 24.76, "lon": 109.30, "accuracy": 9.0},
                }
            ],
            "photo_inside": [
                {"sha256": rng.randbytes(32).hex(), "captured_at": None, "position": None}
            ],
        }
        if sanitary:
            answers["harmless"] = rng.random() < 0.9
        items.append(
            {
                "type": "submission",
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "form": "toilet",
                "version": 1,
                "record": rng.choice(facility_ids),
                "clock": encode(Clock(wall, i % 60000, device)),
                "observed_at": datetime.fromtimestamp(wall / 1000, UTC).isoformat(),
                "answers": answers,
                "base": {},
            }
        )
    return items


def raw_rows(items, device):
    return [
        {
            "id": it["id"],
            "form_id": it["form"],
            "form_version": it["version"],
            "record_id": it["record"],
            "record_type": "facility",
            "village_code": VILLAGES[0],
            "author_id": 1,
            "device_id": device,
            "clock": it["clock"],
            "observed_at": it["observed_at"],
            "received_at": START.isoformat(),
            "answers": dumps(it["answers"]),
            "content_hash": uuid.uuid4().hex,
            "state": "received",
            "skew_ms": 0,
        }
        for it in items
    ]


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """CPU time of a process (and of its ended, reaped children) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def cluster_cpu(postmaster: int) -> float:
    """The postmaster's CPU, its ended backends' and its live ones'."""
    total = cpu_seconds(postmaster, children=True)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                total += cpu_seconds(int(proc.name))
    return total


def postmaster_pid(url: str) -> int:
    store = connect(url)
    try:
        data = store.scalar("SELECT setting FROM pg_settings WHERE name = 'data_directory'")
    finally:
        store.close()
    return int((Path(data) / "postmaster.pid").read_text().split()[0])


def prepare(url: str, facilities: int, rng) -> list[str]:
    """The demo county plus `facilities` extra toilets; returns the toilets to inspect."""
    store = connect(url)
    init_db(store, at=START.isoformat())
    load_demo(store, now=START)
    ids = add_facilities(store, facilities, rng)
    store.close()
    return ids + [
        f["id"]
        for f in demo_data()["facilities"]
        if f["kind"] == "toilet" and f["village"] in VILLAGES
    ]


def push_and_pull(url: str, folder: Path, args, postmaster: int | None) -> dict:
    rng = random.Random(7)
    facility_ids = prepare(url, args.facilities, rng)
    with Serve(folder, settings={"DATABASE_URL": url}) as server:
        per_device = args.submissions // args.devices
        t0_ms = int(START.timestamp() * 1000)
        phones = []
        for d in range(args.devices):
            api = Api(server.port)
            device = f"bench-phone-{d:02d}"
            login = api.call(
                "POST",
                "/api/v1/auth/login",
                {"username": "inspector", "password": "Field-Team1-2026", "device_id": device},
            )
            api.token = login["token"]
            phones.append((api, device, make_items(per_device, device, facility_ids, rng, t0_ms)))
        batches = [
            (api, device, items[i : i + args.batch])
            for api, device, items in phones
            for i in range(0, len(items), args.batch)
        ]
        rng.shuffle(batches)
        statuses = {}
        cpu0 = cpu_seconds(server.process.pid)
        db0 = cluster_cpu(postmaster) if postmaster else 0.0
        started = time.perf_counter()
        for api, device, items in batches:
            result = api.call(
                "POST",
                "/api/v1/sync/push",
                {"device_id": device, "device_time_ms": t0_ms, "items": items},
            )
            for r in result["results"]:
                statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        push_s = time.perf_counter() - started
        server_cpu = cpu_seconds(server.process.pid) - cpu0
        db_cpu = (cluster_cpu(postmaster) - db0) if postmaster else 0.0

        puller = Api(server.port)
        puller.token = puller.call(
            "POST",
            "/api/v1/auth/login",
            {"username": "inspector", "password": "Field-Team1-2026", "device_id": "puller"},
        )["token"]
        latencies, cursor, records = [], None, 0
        while True:
            path = "/api/v1/sync/pull?limit=500" + (f"&since={cursor}" if cursor else "")
            t = time.perf_counter()
            page = puller.call("GET", path)
            latencies.append(time.perf_counter() - t)
            records += len(page["facilities"])
            cursor = page["cursor"]
            if not page["more"]:
                break
    merged = sum(statuses.get(s, 0) for s in ("accepted", "waiting_for_photos"))
    return {
        "statuses": statuses,
        "merged": merged,
        "push_s": push_s,
        "cpu_per_1000": (server_cpu + db_cpu) / merged * 1000,
        "server_cpu": server_cpu,
        "db_cpu": db_cpu,
        "pages": latencies,
        "records": records,
        "rows": [row for _, device, items in phones for row in raw_rows(items, device)],
    }


def raw_insert(url: str, rows: list[dict], batch: int) -> float:
    """Seconds to insert `rows` into the demo county (their villages and author exist), one
    executemany per transaction."""
    store = connect(url)
    init_db(store, at=START.isoformat())
    load_demo(store, now=START)
    columns = list(rows[0])
    sql = (
        f"INSERT INTO submissions ({', '.join(columns)})"
        f" VALUES ({', '.join(':' + c for c in columns)})"
    )
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        with store.write():
            store.many(sql, rows[i : i + batch])
    seconds = time.perf_counter() - started
    store.close()
    return seconds


@contextlib.contextmanager
def postgres_server(args):
    """The PostgreSQL server to create the bench's databases on."""
    url = args.postgres or os.environ.get("VILLAGECHECK_TEST_POSTGRES")
    if url:
        yield url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from pg_cluster import Cluster  # noqa: PLC0415 (only when no server was given)

    with Cluster() as started:
        yield started.url


@contextlib.contextmanager
def database(engine: str, folder: Path, name: str):
    if engine == "sqlite":
        yield database_url(folder / f"{name}.db")
        return
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--facilities", type=int, default=2_000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--postgres", default="")
    args = parser.parse_args()
    engines = args.engines.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="vc-bench-"))
    results = {}
    with contextlib.ExitStack() as stack:
        if "postgresql" in engines:
            os.environ["VILLAGECHECK_TEST_POSTGRES"] = stack.enter_context(postgres_server(args))
        for engine in engines:
            folder = tmp / engine
            folder.mkdir()
            with database(engine, folder, "vc") as url:
                postmaster = postmaster_pid(url) if engine == "postgresql" else None
                result = push_and_pull(url, folder, args, postmaster)
            with database(engine, folder, "raw") as url:
                result["raw_s"] = raw_insert(url, result["rows"], args.batch)
            results[engine] = result

    form = compile_form(get_builtin("toilet", 1))
    rows = next(iter(results.values()))["rows"]
    started = time.perf_counter()
    for row in rows:
        form.validate(json.loads(row["answers"]), observed_on=START.date())
    validate_rate = len(rows) / (time.perf_counter() - started)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}"
    )
    print(
        f"{args.submissions} submissions in batches of {args.batch} from {args.devices} devices, "
        f"{args.facilities} extra facilities; form validation alone {validate_rate:.0f}/s"
    )
    for engine, r in results.items():
        merge_rate = r["merged"] / r["push_s"]
        raw_rate = len(r["rows"]) / r["raw_s"]
        print(f"{engine}: outcomes {r['statuses']}")
        print(
            f"  merged {r['merged']} in {r['push_s']:.2f} s = {merge_rate:.0f}/s;"
            f" CPU {r['cpu_per_1000']:.2f} s per 1000 (server {r['server_cpu']:.1f} s,"
            f" database {r['db_cpu']:.1f} s)"
        )
        print(
            f"  raw batched insert {raw_rate:.0f} rows/s; ratio merged/raw ="
            f" {merge_rate / raw_rate:.3f}"
        )
        print(
            f"  pull: {len(r['pages'])} pages of 500, {r['records']} records; page latency"
            f" median {statistics.median(r['pages']) * 1000:.1f} ms,"
            f" max {max(r['pages']) * 1000:.1f} ms (target median < 100 ms)"
        )
    if {"sqlite", "postgresql"} <= results.keys():
        rate = {e: r["merged"] / r["push_s"] for e, r in results.items()}
        print(
            f"PostgreSQL/SQLite merged throughput (one server process):"
            f" {rate['postgresql'] / rate['sqlite']:.2f} (target >= 0.5)"
        )


if __name__ == "__main__":
    main()
