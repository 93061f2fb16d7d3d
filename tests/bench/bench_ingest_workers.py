"""Benchmark: do ingest worker threads use several cores? (run on demand)

    .venv/bin/python tests/bench/bench_ingest_workers.py [--photos 12] [--threads 1 2 4]

Queues N distinct 12 MP camera JPEGs (a corpus photo re-encoded at N qualities) in a fresh
instance's photo store, then lets `--threads` ingest workers (server/ingest_worker.py) process
them, INGEST_CONCURRENCY raised to match. Reports photos/s and the process's CPU seconds per
wall second: above 1 means threads ran on several cores at once, which they can only while
Pillow has released the GIL (decode, resize, encode); hashing, EXIF and the database hold it.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from PIL import Image  # noqa: E402

from server import create_app, ingest_worker  # noqa: E402
from server.context import media_store, now_iso, storage  # noqa: E402

CORPUS = Path(os.environ.get("VILLAGECHECK_CORPUS", "/work/shared/corpus/exif-samples"))


def photos(n: int) -> list[bytes]:
    img = Image.open(CORPUS / "HMD_Nokia_8.3_5G.jpg")
    exif = img.info.get("exif", b"")
    img = img.convert("RGB")
    out = []
    for quality in range(80, 80 + n):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality, exif=exif)
        out.append(buf.getvalue())
    return out


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(threads: int, data: list[bytes]) -> tuple[float, float]:
    folder = Path(tempfile.mkdtemp())
    app = create_app(
        {
            "DATABASE": str(folder / "vc.db"),
            "MEDIA_ROOT": str(folder / "media"),
            "SECRET_KEY": "bench",
            "INGEST_CONCURRENCY": threads,
        }
    )
    import hashlib

    with app.app_context():
        store = storage()
        store.migrate()
        media = media_store()
        for d in data:
            digest = hashlib.sha256(d).hexdigest()
            media.append_chunk(digest, 0, d, len(d))
            store.enqueue_ingest(digest, at=now_iso())
    t, c = time.perf_counter(), cpu()
    workers = ingest_worker.start(app, threads)
    with app.app_context():
        while storage().ingest_counts()["queued"]:
            time.sleep(0.02)
    wall, used = time.perf_counter() - t, cpu() - c
    workers.shutdown()
    return len(data) / wall, used / wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=12)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args()
    data = photos(args.photos)
    print(
        f"{len(data)} photos of {sum(map(len, data)) / len(data) / 2**20:.1f} MB; "
        f"{len(os.sched_getaffinity(0))} CPUs"
    )
    for threads in args.threads:
        rate, cores = run(threads, data)
        print(f"threads {threads}: {rate:.2f} photos/s, {cores:.2f} cores busy")


if __name__ == "__main__":
    main()
