"""Load benchmark (on demand, not in CI): many phones syncing at once against `villagecheck serve`.

Loads the demo county plus 2,000 household toilets (so inspections spread over many facilities,
as in a month's work, instead of piling on the demo's few), starts `villagecheck serve` as a
subprocess on 127.0.0.1 (one process, as deployed by default), then runs one thread per simulated
device: each logs in as one of the demo inspectors (one after another over the first seconds)
and loops pull, think, push 1-3 toilet inspections, think, like a phone's sync loop. A push that
fails stays in the device's outbox and is sent again, as the PWA does. With --photos each
inspection's two photos (real camera JPEGs, each copy made distinct) are uploaded after the
push in 512 KiB chunks, as the PWA does; without it the items wait for them.

Reports every non-2xx answer, push and pull latency percentiles, and an integrity check of the
database afterwards: each item the server accepted is stored exactly once (one submission, one
observation), and nothing was stored from a push that answered with an error.

    .venv/bin/python tests/bench/bench_load.py [--devices 100] [--duration 120] [--think 1.0]
    .venv/bin/python tests/bench/bench_load.py --short      # 20 devices for 20 s
    .venv/bin/python tests/bench/bench_load.py --photos --engine postgresql \
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres --serve-arg=--workers=4
"""

import argparse
import hashlib
import http.client
import json
import os
import platform
import random
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "bench"))

from bench_sync import add_facilities  # noqa: E402
from conftest import CORPUS, photo, submission, toilet_answers  # noqa: E402
from engines import create_database  # noqa: E402
from live_serve import Serve  # noqa: E402

from server.auth import hash_password  # noqa: E402
from server.bootstrap import init_db  # noqa: E402
from server.demo import demo_data, load_demo  # noqa: E402
from server.storage import connect, database_url  # noqa: E402
from sync.clock import decode, encode, receive, tick  # noqa: E402

STORED = {"accepted", "duplicate", "waiting_for_photos"}
MAX_PAGES = 20  # per pull round: a device never loops on pull


class Stats:
    """Latencies and failures of every request, shared by the device threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latency = {"push": [], "pull": [], "login": [], "upload": []}
        self.steady = {"push": [], "pull": []}  # requests begun after every device logged in
        self.steady_from = float("inf")
        self.errors = Counter()
        self.outcomes = Counter()
        self.stored = {}  # item id -> the item, for every item the server said it holds
        self.failed_push_ids = set()  # items sent in a push that answered non-2xx
        self.stored_by_failed_push = set()  # of those, found already stored on the resend

    def request(self, kind, seconds, status, code=None):
        with self.lock:
            self.latency[kind].append(seconds)
            if kind in self.steady and time.monotonic() - seconds > self.steady_from:
                self.steady[kind].append(seconds)
            if not 200 <= status < 300:
                self.errors[(kind, status, code)] += 1


CHUNK = 512 * 1024  # the PWA's upload chunk


class PhotoPool:
    """Distinct real camera JPEGs for the devices: corpus photos, each copy made distinct by a
    random JPEG comment after its start marker (same picture, new SHA-256), so every
    inspection uploads its own bytes as a phone would. `None` when photos are not uploaded."""

    def __init__(self, folder: Path):
        self.bases = [
            p.read_bytes()
            for p in sorted(folder.glob("*.jpg"))
            if p.stat().st_size > 500_000  # the camera photos, not the EXIF oddities
        ]

    def take(self, rng) -> bytes:
        base = rng.choice(self.bases)
        comment = rng.randbytes(16)
        return base[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + base[2:]


class Device:
    def __init__(self, n, port, user, facilities, stats, rng, think, photos=None):
        self.n, self.user, self.facilities, self.stats = n, user, facilities, stats
        self.rng, self.think, self.photos = rng, think, photos
        self.held = {}  # sha256 -> bytes of this device's photos not yet uploaded
        self.missing = set()  # photos the server asked for
        self.device_id = f"load-{n:03d}"
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.token, self.cursor, self.clock, self.outbox = None, None, None, []
        self.known = {}  # facility id -> the field clocks of its record as last pulled

    def call(self, kind, method, path, body=None, *, data=None, headers=None):
        headers = {"Content-Type": "application/json", **(headers or {})}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            data = json.dumps(body).encode()
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            raw = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            self.stats.request(kind, time.perf_counter() - started, 0, type(exc).__name__)
            return 0, None
        elapsed = time.perf_counter() - started
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        code = (payload or {}).get("error", {}).get("code") if status >= 300 else None
        # The last chunk's 503 `processing`: held and queued for processing, not an error.
        counted = 202 if kind == "upload" and code == "processing" else status
        self.stats.request(kind, elapsed, counted, code)
        return status, payload

    def pause(self):
        time.sleep(self.rng.uniform(0.5, 1.5) * self.think)

    def login(self) -> bool:
        status, body = self.call(
            "login",
            "POST",
            "/api/v1/auth/login",
            {"username": self.user[0], "password": self.user[1], "device_id": self.device_id},
        )
        if status == 200:
            self.token = body["token"]
        return status == 200

    def pull(self, deadline):
        for _ in range(MAX_PAGES):
            path = "/api/v1/sync/pull" + (f"?since={self.cursor}" if self.cursor else "")
            status, body = self.call("pull", "GET", path)
            if status != 200 or time.monotonic() > deadline:
                return
            self.cursor = body["cursor"]
            self.known.update((f["id"], f["clocks"]) for f in body["facilities"])
            self.clock = receive(self.clock, decode(body["clock"]), _now_ms(), self.device_id)
            if not body["more"]:
                return

    def inspect(self):
        """One toilet inspection as the PWA sends it: answers, two photos, the phone's clock."""
        self.clock = tick(self.clock, _now_ms(), self.device_id)
        sanitary = self.rng.random() < 0.9
        answers = toilet_answers(
            sanitary=sanitary,
            harmless=(self.rng.random() < 0.9) if sanitary else None,
            in_use=self.rng.random() < 0.95,
            photo_outside=[photo(self._photo())],
            photo_inside=[photo(self._photo())],
        )
        facility = self.rng.choice(self.facilities)
        return submission(
            facility,
            encode(self.clock),
            answers=answers,
            base=self.known.get(facility),  # what the phone had seen, as the PWA sends it
            observed_at=datetime.now(UTC).isoformat(timespec="seconds"),
            sub_id=str(_uuid(self.rng)),
        )

    def _photo(self) -> str:
        """A new photo's SHA-256 (its bytes kept for upload when photos are uploaded)."""
        if self.photos is None:
            return self.rng.randbytes(32).hex()
        data = self.photos.take(self.rng)
        digest = hashlib.sha256(data).hexdigest()
        self.held[digest] = data
        return digest

    def upload(self, digest: str) -> None:
        """One photo by resumable upload in the PWA's chunks; kept for the next round if a
        chunk fails."""
        data, offset = self.held[digest], 0
        while True:
            status, body = self.call(
                "upload",
                "PATCH",
                f"/api/v1/media/{digest}",
                data=data[offset : offset + CHUNK],
                headers={
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": str(offset),
                    "Upload-Length": str(len(data)),
                },
            )
            if status == 503 and (body or {}).get("error", {}).get("code") == "processing":
                del self.held[digest]  # held and queued: the server processes it in the background
                return
            if status != 200:
                return
            offset = body["offset"]
            if body["complete"] or offset >= len(data):
                del self.held[digest]
                return

    def push(self):
        self.outbox += [self.inspect() for _ in range(self.rng.randint(1, 3))]
        body = {"device_id": self.device_id, "device_time_ms": _now_ms(), "items": self.outbox}
        status, result = self.call("push", "POST", "/api/v1/sync/push", body)
        with self.stats.lock:
            if status != 200:
                self.stats.failed_push_ids.update(i["id"] for i in self.outbox)
                return
            sent = {i["id"]: i for i in self.outbox}
            for r in result["results"]:
                self.stats.outcomes[r["status"]] += 1
                self.missing.update(r.get("missing", []))
                if r["status"] in STORED:
                    self.stats.stored[r["id"]] = sent[r["id"]]
                if r["status"] == "duplicate" and r["id"] in self.stats.failed_push_ids:
                    self.stats.stored_by_failed_push.add(r["id"])
        self.outbox = []
        if self.photos is not None:
            for digest in sorted(self.missing & self.held.keys()):
                self.upload(digest)
            self.missing &= self.held.keys()

    def run(self, start_at, deadline):
        time.sleep(max(0.0, start_at - time.monotonic()))
        if not self.login():
            return
        while time.monotonic() < deadline:
            self.pull(deadline)
            self.pause()
            if time.monotonic() >= deadline:
                break
            self.push()
            self.pause()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _uuid(rng):
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and its children (gunicorn's workers), in KiB."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(proc.name) == pid or int(fields.get("PPid", "0").strip()) == pid:
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def integrity(url: str, stats: Stats) -> dict:
    """Every item the server said it holds is stored exactly once, with its observation."""
    store = connect(url)
    subs = Counter(
        r[0] for r in store.q("SELECT id FROM submissions WHERE device_id LIKE 'load-%'")
    )
    obs = Counter(
        r[0]
        for r in store.q(
            "SELECT o.id FROM observations o JOIN submissions s ON s.id = o.id"
            " WHERE s.device_id LIKE 'load-%'"
        )
    )
    store.close()
    accepted = set(stats.stored)
    return {
        "accepted": len(accepted),
        "missing": len(accepted - set(subs)),
        "stored_twice": sum(1 for c in subs.values() if c != 1),
        "observation_not_once": sum(1 for i in accepted if obs.get(i) != 1),
        "stored_but_never_accepted": len(set(subs) - accepted),
        "stored_by_failed_push": len(stats.stored_by_failed_push),
    }


def prepare(database: str, inspectors, households: int, rng) -> dict:
    """The demo county plus household toilets in every inspector's villages, so inspections
    spread over a county's facilities as they do in a month (not all on the demo's few).
    Returns the toilet ids by inspector."""
    store = connect(database)
    init_db(store, at=datetime.now(UTC).isoformat())
    load_demo(store, now=datetime.now(UTC))
    toilets = {}
    for username, _, villages in inspectors:
        per_user = households // len(inspectors)
        toilets[username] = add_facilities(store, per_user, rng, villages) if per_user else []
    toilets = {
        u: ids
        + [
            f["id"]
            for f in demo_data()["facilities"]
            if f["kind"] == "toilet" and f["village"] in v
        ]
        for (u, _, v), ids in zip(inspectors, toilets.values(), strict=True)
    }
    store.close()
    return toilets


def add_device_users(database: str, inspectors, devices: int) -> list[tuple]:
    """One inspector account per phone, sharing the demo inspectors' villages in turn: a team
    of many people, not many phones on two accounts (whose logins the throttle would rightly
    slow). Returns ((username, password, villages), demo inspector) per device."""
    store = connect(database)
    password = "Load-Test-2026x"
    password_hash = hash_password(
        password, username="bench-0000"
    )  # one scrypt for all: same cost to check, fast here
    at = datetime.now(UTC).isoformat()
    users = []
    for n in range(devices):
        inspector, _, villages = inspectors[n % len(inspectors)]
        username = f"bench-{n:04d}"
        user_id = store.create_user(
            username=username,
            password_hash=password_hash,
            role="inspector",
            display_name=username,
            at=at,
        )
        store.assign(user_id, villages, at=at)
        users.append(((username, password, villages), inspector))
    store.close()
    return users


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--think", type=float, default=1.0, help="mean pause between requests, s")
    parser.add_argument("--households", type=int, default=2000, help="toilets added to the demo")
    parser.add_argument(
        "--ramp", type=float, default=20.0, help="devices log in one after another over this, s"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting for this run, e.g. --set SERVE_THREADS=8",
    )
    parser.add_argument("--short", action="store_true", help="20 devices for 20 s")
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--photos", action="store_true", help="upload each inspection's two photos (real JPEGs)"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("VILLAGECHECK_TEST_POSTGRES", ""),
        help="a PostgreSQL server the bench may create a database on (--engine postgresql)",
    )
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an argument for `villagecheck serve`, e.g. --serve-arg=--workers=4",
    )
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()
    if args.short:
        args.devices, args.duration = 20, 20.0
    data = demo_data()
    inspectors = [
        (u["username"], u["password"], u["villages"])
        for u in data["users"]
        if u["role"] == "inspector"
    ]
    stats = Stats()
    folder = Path(tempfile.mkdtemp(prefix="vc-load-"))
    settings = dict(pair.split("=", 1) for pair in args.set)
    if args.engine == "postgresql":
        if not args.postgres:
            sys.exit("--engine postgresql needs --postgres URL (or VILLAGECHECK_TEST_POSTGRES)")
        os.environ["VILLAGECHECK_TEST_POSTGRES"] = args.postgres
        url = create_database()
        settings["DATABASE_URL"] = url
    else:
        url = database_url(folder / "vc.db")
    toilets = prepare(url, inspectors, args.households, random.Random(args.seed))
    users = add_device_users(url, inspectors, args.devices)
    photos = PhotoPool(CORPUS) if args.photos else None
    with Serve(folder, *args.serve_arg, settings=settings) as server:
        devices = []
        for n, (user, inspector) in enumerate(users):
            rng = random.Random(args.seed * 1000 + n)
            devices.append(
                Device(n, server.port, user, toilets[inspector], stats, rng, args.think, photos)
            )
        started = time.monotonic()
        deadline = started + args.duration
        ramp = min(args.ramp, args.duration / 2) / max(len(devices), 1)
        threads = [
            threading.Thread(target=d.run, args=(started + n * ramp, deadline))
            for n, d in enumerate(devices)
        ]
        stats.steady_from = started + min(args.ramp, args.duration / 2) + 5
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        rss_mb = tree_rss_kb(server.process.pid) / 1024
    check = integrity(url, stats)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores (shared with other sessions), "
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}"
    )
    print(
        f"load: {args.devices} devices for {elapsed:.0f} s (logging in over the first "
        f"{min(args.ramp, args.duration / 2):.0f} s), think {args.think} s mean, "
        f"{args.households} household toilets added to the demo county; "
        f"`villagecheck serve {' '.join(args.serve_arg)}` on 127.0.0.1, {args.engine}"
        + (f", settings {settings}" if settings else "")
    )
    total = sum(len(v) for v in stats.latency.values())
    print(f"requests: {total} ({total / elapsed:.1f}/s); item outcomes {dict(stats.outcomes)}")
    errors = sum(stats.errors.values())
    print(f"errors (non-2xx or no answer): {errors}" + (f" {dict(stats.errors)}" if errors else ""))
    rows = [(k, stats.latency[k]) for k in ("push", "pull", "login", "upload")]
    rows += [(f"{k} after logins", stats.steady[k]) for k in ("push", "pull")]
    for kind, values in rows:
        if values:
            print(
                f"  {kind:18} n={len(values):6}  p50 {percentile(values, 50) * 1000:7.0f} ms"
                f"  p95 {percentile(values, 95) * 1000:7.0f} ms"
                f"  p99 {percentile(values, 99) * 1000:7.0f} ms"
                f"  max {max(values) * 1000:7.0f} ms"
            )
    print(f"integrity: {check}")
    print(f"server resident memory at the end (all its processes): {rss_mb:.0f} MB")
    ok = (
        errors == 0
        and percentile(stats.latency["push"], 99) < 1.0
        and not any(v for k, v in check.items() if k != "accepted")
    )
    print(
        "targets (0 errors, push p99 < 1 s, every accepted item exactly once):",
        "met" if ok else "NOT met",
    )
    print(f"server folder (database, serve.log): {folder}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
