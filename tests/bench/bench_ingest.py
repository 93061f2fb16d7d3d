"""Photo ingest benchmark (on demand, not in CI): 200 photos of 12 MP through the HTTP API.

Makes 200 distinct 4000x3000 JPEGs from the corpus, pushes inspections that use them, then
uploads every photo in 1 MB chunks to `villagecheck serve --workers 2` on loopback: upload,
SHA-256 check, EXIF, two display versions, perceptual hashes and evidence checks, end to end
(until the server says every photo is processed; its processes ingest them in the background,
with INGEST_WORKERS threads each). In the same run it times Pillow's bare draft-mode decode of
the same files, for the ratio, and a second upload run from 4 clients for throughput and memory.
`--edge 2560` makes the photos the size a phone sends after downsizing (PWA_MAX_PHOTO_EDGE).

    .venv/bin/python tests/bench/bench_ingest.py [--photos 200] [--workers 2] [--edge 2560]
"""

import argparse
import hashlib
import http.client
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "bench"))

from bench_load import tree_rss_kb  # noqa: E402
from conftest import CORPUS, demo_database, toilet_answers  # noqa: E402
from live_serve import Serve  # noqa: E402

from server.demo import demo_data  # noqa: E402

NAMES = ["iphone_hdr_NO.jpg", "HMD_Nokia_8.3_5G.jpg", "87_OSError.jpg", "canon_hdr_NO.jpg"]
START = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
CHUNK = 1024 * 1024


def make_photos(folder: Path, count: int, edge: int = 4000) -> list[Path]:
    """Distinct 4:3 JPEGs (12 MP by default) with the corpus photos' EXIF (a tinted copy each)."""
    rng = random.Random(5)
    bases = []
    for name in NAMES:
        img = Image.open(CORPUS / name)
        exif = img.info.get("exif", b"")
        bases.append((img.convert("RGB").resize((edge, edge * 3 // 4)), exif))
    paths = []
    for n in range(count):
        img, exif = bases[n % len(bases)]
        tint = Image.new("RGB", img.size, tuple(rng.randrange(256) for _ in range(3)))
        path = folder / f"photo{n:03d}.jpg"
        Image.blend(img, tint, 0.04).save(path, "JPEG", quality=90, exif=exif)
        paths.append(path)
    return paths


def call(port, method, path, body=None, headers=None):
    """The JSON answer; None for 503 `processing` (held and queued, not processed yet)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status == 503 and json.loads(data)["error"]["code"] == "processing":
        return None
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:300]}")
    return json.loads(data)


def upload(port, token, path: Path) -> str:
    """Send a photo as the PWA does; its hash. The last chunk answers at once (503
    `processing`): the server's ingest workers process the photo in the background, and the
    phone goes on with its next photo, asking about this one afterwards (`processed`)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    offset = 0
    while True:
        body = call(
            port,
            "PATCH",
            f"/api/v1/media/{digest}",
            data[offset : offset + CHUNK],
            {
                "Authorization": f"Bearer {token}",
                "Upload-Offset": str(offset),
                "Upload-Length": str(len(data)),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        if body is None or body["complete"]:
            return digest
        offset = body["offset"]


def processed(port, token, digests: list[str]) -> None:
    """Ask about each photo until the server has processed it."""
    for digest in digests:
        while True:
            body = call(
                port, "GET", f"/api/v1/media/{digest}", None, {"Authorization": f"Bearer {token}"}
            )
            if body is not None and body["complete"]:
                break
            time.sleep(0.02)


class Server(Serve):
    """`villagecheck serve --workers N` on the demo county, in a folder of its own."""

    def __init__(self, folder: Path, workers: int):
        folder.mkdir()
        demo_database(folder / "vc.db")
        super().__init__(folder, "--workers", str(workers))

    def rss_mb(self) -> float:
        return tree_rss_kb(self.process.pid) / 1024


def push_inspections(port, photos: list[Path]) -> str:
    token = call(
        port,
        "POST",
        "/api/v1/auth/login",
        json.dumps({"username": "inspector", "password": "Field-Team1-2026", "device_id": "bench"}),
        {"Content-Type": "application/json"},
    )["token"]
    toilet = next(f["id"] for f in demo_data()["facilities"] if f["kind"] == "toilet")
    hashes = [hashlib.sha256(p.read_bytes()).hexdigest() for p in photos]
    items = []
    for n in range(0, len(hashes), 2):
        answers = toilet_answers(
            photo_outside=[{"sha256": hashes[n], "captured_at": None, "position": None}],
            photo_inside=[{"sha256": hashes[n + 1], "captured_at": None, "position": None}],
        )
        items.append(
            {
                "type": "submission",
                "id": str(uuid.uuid4()),
                "form": "toilet",
                "version": 1,
                "record": toilet,
                "clock": f"{int(START.timestamp() * 1000) + n:013d}-0000-bench",
                "observed_at": "2026-11-20T10:00:00+08:00",
                "answers": answers,
            }
        )
    for i in range(0, len(items), 100):
        call(
            port,
            "POST",
            "/api/v1/sync/push",
            json.dumps({"device_id": "bench", "items": items[i : i + 100]}),
            {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
    return token


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="`serve --workers`")
    parser.add_argument("--edge", type=int, default=4000, help="long edge of the photos, px")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vc-ingest-"))
    (tmp / "photos").mkdir()
    t = time.perf_counter()
    photos = make_photos(tmp / "photos", args.photos, args.edge)
    size_mb = sum(p.stat().st_size for p in photos) / 2**20
    print(
        f"made {len(photos)} photos of {args.edge}x{args.edge * 3 // 4} ({size_mb:.0f} MB) in "
        f"{time.perf_counter() - t:.0f} s"
    )

    t = time.perf_counter()
    for path in photos:
        with Image.open(path) as img:
            img.draft("RGB", (1280, 1280))
            img.load()
    bare = time.perf_counter() - t

    with Server(tmp / "one", args.workers) as server:
        token = push_inspections(server.port, photos)
        t = time.perf_counter()
        processed(server.port, token, [upload(server.port, token, path) for path in photos])
        pipeline = time.perf_counter() - t
        rss_one = server.rss_mb()

    with Server(tmp / "four", args.workers) as server:
        token = push_inspections(server.port, photos)
        t = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            digests = list(pool.map(lambda p: upload(server.port, token, p), photos))
        processed(server.port, token, digests)
        threaded = time.perf_counter() - t
        rss_four = server.rss_mb()

    n = len(photos)
    print(
        f"machine: {platform.machine()}, {platform.python_version()}, "
        f"{len(os.sched_getaffinity(0))} cores; `villagecheck serve --workers {args.workers}`"
    )
    print(f"bare draft-mode decode: {bare:.1f} s = {n / bare:.1f} photos/s")
    print(
        f"end to end over HTTP, 1 client: {pipeline:.1f} s = {n / pipeline:.1f} photos/s; "
        f"ratio to bare decode {pipeline / bare:.2f} (target <= 2.0)"
    )
    print(f"end to end over HTTP, 4 clients: {threaded:.1f} s = {n / threaded:.1f} photos/s")
    print(
        f"server resident memory at the end (all its processes): {rss_one:.0f} MB with 1 client, "
        f"{rss_four:.0f} MB with 4 clients"
    )


if __name__ == "__main__":
    main()
