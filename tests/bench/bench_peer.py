"""The peer comparison's photo scenario (on demand, not in CI): CPU per submission and
submissions/s at 1 and 8 clients, against `villagecheck serve`.

The scenario measured against ODK Central's backend (issue "Production serving"): each submission
is one toilet inspection with one distinct ~3 MB 12 MP JPEG (a collage of corpus photos), pushed
and then uploaded in 512 KiB chunks the way the PWA does it. Our toilet form asks for two
photos; both fields name the same photo, so one photo is uploaded per submission, as in the peer
scenario. A client goes on with its next submission when the last chunk answers 503
`processing` (the PWA does too); the clock stops when the server has processed every photo.
CPU is the server's (every process of the arbiter's tree: gunicorn workers and their ingest
threads), read from /proc.

    .venv/bin/python tests/bench/bench_peer.py [--submissions 48] [--clients 1 8] [--workers 2]
"""

import argparse
import hashlib
import http.client
import io
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "bench"))

from bench_load import add_device_users, prepare, tree_rss_kb  # noqa: E402
from conftest import CORPUS, photo, submission, toilet_answers  # noqa: E402
from live_serve import Serve  # noqa: E402

from server.demo import demo_data  # noqa: E402
from server.storage import database_url  # noqa: E402
from sync.clock import encode, tick  # noqa: E402

CHUNK = 512 * 1024
BASES = ["iphone_hdr_NO.jpg", "HMD_Nokia_8.3_5G.jpg", "canon_hdr_NO.jpg", "87_OSError.jpg"]


def make_photos(count: int, rng: random.Random) -> list[bytes]:
    """Distinct 4000x3000 JPEGs of about 3 MB, each a different scene as the evidence checks see
    it: a collage of large tiles cut from random places of the corpus photos, some mirrored,
    with a corpus photo's EXIF. (Tinted copies of one photo would be near-duplicates of each
    other, and the checks would rightly chase them as reuse across facilities.)"""
    sources = []
    for name in BASES:
        img = Image.open(CORPUS / name)
        sources.append((img.convert("RGB").resize((2000, 1500)), img.info.get("exif", b"")))
    photos = []
    for n in range(count):
        canvas = Image.new("RGB", (4000, 3000))
        for y in range(0, 3000, 1000):
            for x in range(0, 4000, 1000):
                tile_src, _ = rng.choice(sources)
                left, top = rng.randrange(0, 1000), rng.randrange(0, 500)
                tile = tile_src.crop((left, top, left + 1000, top + 1000))
                if rng.random() < 0.5:
                    tile = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                canvas.paste(tile, (x, y))
        out = io.BytesIO()
        canvas.save(out, "JPEG", quality=94, exif=sources[n % len(sources)][1])
        photos.append(out.getvalue())
    return photos


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (gunicorn's workers), in seconds."""
    tick_hz = os.sysconf("SC_CLK_TCK")
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(proc.name) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / tick_hz


class Client:
    """One phone: logs in, then for each of its photos pushes a submission and uploads it."""

    def __init__(self, port, user, facilities, rng):
        self.port, self.user, self.facilities, self.rng = port, user, facilities, rng
        self.device_id = f"peer-{user[0]}"
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.token, self.clock = None, None

    def call(self, method, path, *, body=None, data=None, headers=None):
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = json.loads(response.read())
        if response.status == 503 and payload["error"]["code"] == "processing":
            return None
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {payload}")
        return payload

    def login(self):
        body = {"username": self.user[0], "password": self.user[1], "device_id": self.device_id}
        self.token = self.call("POST", "/api/v1/auth/login", body=body)["token"]

    def send(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.clock = tick(self.clock, int(time.time() * 1000), self.device_id)
        answers = toilet_answers(photo_outside=[photo(digest)], photo_inside=[photo(digest)])
        item = submission(self.rng.choice(self.facilities), encode(self.clock), answers=answers)
        pushed = self.call(
            "POST", "/api/v1/sync/push", body={"device_id": self.device_id, "items": [item]}
        )
        assert pushed["results"][0]["status"] == "waiting_for_photos", pushed
        offset = 0
        while True:
            body = self.call(
                "PATCH",
                f"/api/v1/media/{digest}",
                data=data[offset : offset + CHUNK],
                headers={
                    "Upload-Offset": str(offset),
                    "Upload-Length": str(len(data)),
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            if body is None or body["complete"]:
                return digest
            offset = body["offset"]

    def wait_processed(self, digests):
        for digest in digests:
            while self.call("GET", f"/api/v1/media/{digest}") is None:
                time.sleep(0.05)


def run(clients: int, photos: list[bytes], workers: int, rng: random.Random) -> dict:
    data = demo_data()
    inspectors = [
        (u["username"], u["password"], u["villages"])
        for u in data["users"]
        if u["role"] == "inspector"
    ]
    folder = Path(tempfile.mkdtemp(prefix="vc-peer-"))
    url = database_url(folder / "vc.db")
    toilets = prepare(url, inspectors, 200, rng)
    users = add_device_users(url, inspectors, clients)
    with Serve(folder, "--workers", str(workers)) as server:
        phones = [Client(server.port, user, toilets[who], rng) for user, who in users]
        for phone in phones:
            phone.login()
        shares = [photos[n::clients] for n in range(clients)]
        sent = [[] for _ in phones]
        cpu = tree_cpu_seconds(server.process.pid)
        started = time.perf_counter()

        def work(n):
            sent[n] = [phones[n].send(p) for p in shares[n]]
            phones[n].wait_processed(sent[n])

        threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        cpu = tree_cpu_seconds(server.process.pid) - cpu
        rss = tree_rss_kb(server.process.pid) / 1024
    done = sum(len(s) for s in sent)
    assert done == len(photos), (done, len(photos))
    return {"clients": clients, "seconds": elapsed, "cpu": cpu, "n": done, "rss": rss}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--submissions", type=int, default=48)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--workers", type=int, default=2, help="`serve --workers`")
    args = parser.parse_args()
    rng = random.Random(11)
    photos = make_photos(args.submissions * len(args.clients), rng)
    mean_mb = sum(map(len, photos)) / len(photos) / 2**20
    print(
        f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"python {platform.python_version()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    print(
        f"{args.submissions} submissions per run, one distinct 4000x3000 JPEG each "
        f"({mean_mb:.1f} MB mean), 512 KiB chunks; `villagecheck serve --workers {args.workers}`"
    )
    for n, clients in enumerate(args.clients):
        mine = photos[n * args.submissions : (n + 1) * args.submissions]
        r = run(clients, mine, args.workers, rng)
        print(
            f"  {clients} client(s): {r['n'] / r['seconds']:.1f} submissions/s, "
            f"{r['cpu'] / r['n'] * 1000:.0f} server CPU-ms per submission, "
            f"server RSS {r['rss']:.0f} MB"
        )
    print("peer (ODK Central, the issue's figures): 99-125 CPU-ms; 5.2 / 6.3 submissions/s")
    print("goal: at least 12.6 submissions/s at 8 clients (twice the peer's) on the same machine")


if __name__ == "__main__":
    main()
