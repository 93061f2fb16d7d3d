"""Photo reuse benchmark (on demand, not in CI): push time per item as one photo's uses grow.

Issue 8, finding 5: each new use of a photo used to re-judge every other submission using it,
inside the push's write transaction, so 50 items took 1.0 s at 52 uses and 106 s at 353. This
uploads one photo, then pushes batches of 50 inspections that all use it (both photo fields,
so each is judged at push) through the Flask app on a real SQLite file, and prints the time per
item of the batch that reaches each checkpoint. Meanwhile another user on another thread keeps
pushing one inspection at a time (photos not sent, so it is only written, never judged): its
slowest push and any errors show how long the reuse pushes make other writers wait.

    .venv/bin/python tests/bench/bench_photo_reuse.py [--uses 400] [--batch 50]

To time another checkout (say, before the fix), put it first on the path:
    VILLAGECHECK_CODE=/path/to/checkout .venv/bin/python tests/bench/bench_photo_reuse.py
"""

import argparse
import hashlib
import io
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, os.environ.get("VILLAGECHECK_CODE", str(ROOT)))  # first: the code timed

from conftest import (  # noqa: E402
    PASSWORDS,
    START,
    demo_database,
    submission,
    toilet_answers,
    upload_photo,
)

from server import create_app  # noqa: E402
from server.demo import demo_data  # noqa: E402
from sync.clock import Clock, encode  # noqa: E402


def jpeg(seed: int) -> bytes:
    rng = random.Random(seed)
    img = Image.new("RGB", (64, 48))
    img.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(64 * 48)])
    buf = io.BytesIO()
    img.resize((640, 480), Image.Resampling.NEAREST).save(buf, "JPEG", quality=90)
    return buf.getvalue()


class Phone:
    def __init__(self, client, username):
        self.client, self.device = client, f"bench-{username}"
        response = client.post(
            "/api/v1/auth/login",
            json={"username": username, "password": PASSWORDS[username], "device_id": self.device},
        )
        self.headers = {"Authorization": f"Bearer {response.json['token']}"}
        self.wall_ms, self.counter = int(START.timestamp() * 1000), 0

    def item(self, facility_id: str, photos: list[str]) -> dict:
        self.counter += 1
        taken = "2026-11-20T10:31:05+08:00"
        answers = toilet_answers(
            photo_outside=[{"sha256": photos[0], "captured_at": taken}],
            photo_inside=[{"sha256": photos[-1], "captured_at": taken}],
        )
        clock = encode(Clock(self.wall_ms, self.counter, self.device))
        return submission(facility_id, clock, answers=answers)

    def push(self, items) -> dict:
        body = {"device_id": self.device, "device_time_ms": self.wall_ms, "items": items}
        response = self.client.post("/api/v1/sync/push", json=body, headers=self.headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        return response.json

    def upload(self, data: bytes) -> None:
        response = upload_photo(self.client, self.headers, data)
        assert response.status_code == 200, response.json


def keep_pushing(phone, facilities, stop, latencies, errors) -> None:
    """Push one fresh inspection at a time (its photo never sent) until told to stop."""
    while True:
        item = phone.item(facilities[len(latencies) % len(facilities)], [uuid.uuid4().hex * 2])
        started = time.perf_counter()
        try:
            phone.push([item])
        except AssertionError as exc:
            errors.append(str(exc))
        latencies.append((time.perf_counter() - started) * 1000)
        if stop.is_set():
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uses", type=int, default=400)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-reuse-"))
    try:
        demo_database(folder / "vc.db")
        app = create_app(
            {
                "DATABASE": str(folder / "vc.db"),
                "MEDIA_ROOT": str(folder / "media"),
                "SECRET_KEY": "bench",
            }
        )
        client = app.test_client()
        inspector, other = Phone(client, "inspector"), Phone(app.test_client(), "inspector2")
        mine = {"450222101001", "450222101002", "450222101003"}
        facilities = demo_data()["facilities"]
        toilets = [f["id"] for f in facilities if f["village"] in mine and f["kind"] == "toilet"]
        theirs = [
            f["id"] for f in facilities if f["village"] == "450222102001" and f["kind"] == "toilet"
        ]
        photo = jpeg(1)
        reused = hashlib.sha256(photo).hexdigest()
        inspector.push([inspector.item(toilets[0], [reused])])
        inspector.upload(photo)
        print(
            f"python {platform.python_version()}, {os.cpu_count()} cores, code from {sys.path[0]}"
        )
        print(
            f"{'uses':>6} {'ms/item':>9} {'batch s':>8} {'other pushes':>13} {'p50 ms':>8}"
            f" {'max ms':>8} {'errors':>7}"
        )
        uses, n = 1, 0
        while uses < args.uses:
            size = min(args.batch, args.uses - uses)
            items = [inspector.item(toilets[(n + i) % len(toilets)], [reused]) for i in range(size)]
            n += size
            stop, latencies, errors = threading.Event(), [], []
            writer = threading.Thread(
                target=keep_pushing, args=(other, theirs, stop, latencies, errors)
            )
            writer.start()
            started = time.perf_counter()
            result = inspector.push(items)
            elapsed = time.perf_counter() - started
            stop.set()
            writer.join()
            assert all(r["status"] == "accepted" for r in result["results"]), result["results"][0]
            uses += size
            print(
                f"{uses:>6} {elapsed / size * 1000:>9.1f} {elapsed:>8.2f} {len(latencies):>13}"
                f" {statistics.median(latencies):>8.1f} {max(latencies):>8.1f} {len(errors):>7}"
            )
            sys.stdout.flush()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
