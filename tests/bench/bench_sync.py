"""Sync benchmark (on demand, not in CI): push 10,000 submissions through HTTP and pull back.

20 simulated phones push toilet inspections in batches of 100 to a live server on loopback;
then a fresh phone pulls everything in pages of 500. In the same run the same submission rows
are inserted raw with sqlite-utils in batches of 100, for the ratio.

    .venv/bin/python tests/bench/bench_sync.py [--submissions 10000] [--facilities 2000]
"""

import argparse
import http.client
import json
import platform
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils
from werkzeug.serving import WSGIRequestHandler, make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from forms.compiler import compile_form  # noqa: E402
from forms.definitions import get_builtin  # noqa: E402
from server import create_app  # noqa: E402
from server.bootstrap import init_db  # noqa: E402
from server.demo import demo_data, load_demo  # noqa: E402
from server.storage import connect, dumps  # noqa: E402
from sync.clock import Clock, encode  # noqa: E402

START = datetime(2026, 11, 1, tzinfo=UTC)
VILLAGES = ["450222101001", "450222101002", "450222101003"]


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--submissions", type=int, default=10_000)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--facilities", type=int, default=2_000)
    args = parser.parse_args()
    rng = random.Random(7)
    tmp = Path(tempfile.mkdtemp(prefix="vc-bench-"))

    store = connect(tmp / "vc.db")
    init_db(store, at=START.isoformat())
    load_demo(store, now=START)
    facility_ids = add_facilities(store, args.facilities, rng)
    facility_ids += [
        f["id"]
        for f in demo_data()["facilities"]
        if f["kind"] == "toilet" and f["village"] in VILLAGES
    ]
    store.close()

    app = create_app(
        {"DATABASE": str(tmp / "vc.db"), "MEDIA_ROOT": str(tmp / "media"), "SECRET_KEY": "bench"}
    )
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port

    per_device = args.submissions // args.devices
    t0_ms = int(START.timestamp() * 1000)
    phones = []
    for d in range(args.devices):
        api = Api(port)
        device = f"bench-phone-{d:02d}"
        login = api.call(
            "POST",
            "/api/v1/auth/login",
            {"username": "inspector", "password": "demo-inspector-2026", "device_id": device},
        )
        api.token = login["token"]
        phones.append((api, device, make_items(per_device, device, facility_ids, rng, t0_ms)))

    batches = []
    for api, device, items in phones:
        for i in range(0, len(items), args.batch):
            batches.append((api, device, items[i : i + args.batch]))
    rng.shuffle(batches)
    statuses = {}
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
    merged = sum(statuses.get(s, 0) for s in ("accepted", "waiting_for_photos"))

    puller = Api(port)
    puller.token = puller.call(
        "POST",
        "/api/v1/auth/login",
        {"username": "inspector", "password": "demo-inspector-2026", "device_id": "bench-puller"},
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
    server.shutdown()

    raw = sqlite_utils.Database(tmp / "raw.db")
    raw.conn.execute("PRAGMA journal_mode=WAL")
    raw.conn.execute("PRAGMA synchronous=NORMAL")
    rows = [row for _, device, items in phones for row in raw_rows(items, device)]
    started = time.perf_counter()
    for i in range(0, len(rows), args.batch):
        raw["submissions"].insert_all(rows[i : i + args.batch], pk="id")
    raw_s = time.perf_counter() - started

    form = compile_form(get_builtin("toilet", 1))
    started = time.perf_counter()
    for _, _, items in phones:
        for item in items:
            form.validate(item["answers"], observed_on=START.date())
    validate_s = time.perf_counter() - started

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    merge_rate = merged / push_s
    raw_rate = len(rows) / raw_s
    print(
        f"machine: {platform.machine()}, {platform.processor() or '?'}, "
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}"
    )
    print(
        f"push: {len(batches)} batches of {args.batch} from {args.devices} devices, "
        f"{args.facilities} extra facilities; outcomes {statuses}"
    )
    print(f"  merged {merged} submissions in {push_s:.2f} s = {merge_rate:.0f} submissions/s")
    print(
        f"raw sqlite-utils insert_all of the same rows in batches of {args.batch}: "
        f"{raw_s:.3f} s = {raw_rate:.0f} rows/s"
    )
    print(f"  ratio merged/raw = {merge_rate / raw_rate:.3f} (target >= 0.3)")
    print(
        f"form validation alone (no HTTP, no SQL): {len(rows) / validate_s:.0f} submissions/s, "
        f"{validate_s / push_s:.0%} of the push time"
    )
    print(
        f"pull: {len(latencies)} pages of 500, {records} records; page latency median "
        f"{statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms "
        f"(target median < 100 ms)"
    )
    print(f"peak RSS (server and clients in one process): {rss_mb:.0f} MB (target < 200 MB)")


if __name__ == "__main__":
    main()
