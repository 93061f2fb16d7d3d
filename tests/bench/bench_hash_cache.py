"""Benchmark: what a restart costs the near-duplicate index at N photos (run on demand).

    .venv/bin/python tests/bench/bench_hash_cache.py [--n 1000000] [--url postgresql+psycopg://…]

Fills a fresh database (a SQLite file by default) with N synthetic media rows (random 64-bit
pHash and five crop hashes, as ingest stores them), then measures in a fresh cache:

- cold load: the first `HashCache.index` (what a restarted process pays; `villagecheck serve`
  and `villagecheck worker` pay it in a background thread at start, not on a request);
- warm top-up: a later `HashCache.index` when nothing changed (the one query every use makes);
- top-up of one photo added by "another process", then a near-duplicate query finding it;
- a query over the whole index.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from media.phash import from_hex, to_hex  # noqa: E402
from server.evidence import HashCache  # noqa: E402
from server.storage import connect, dumps  # noqa: E402


def fill(store, n: int, rng: random.Random, batch: int = 50_000) -> None:
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(n, start + batch)):
            rows.append(
                {
                    "sha256": f"{i:064x}",
                    "phash": to_hex(rng.getrandbits(64)),
                    "crops": dumps([to_hex(rng.getrandbits(64)) for _ in range(5)]),
                }
            )
        with store.write():
            store.many(
                "INSERT INTO media (sha256, size, mime, width, height, exif, phash, crop_hashes,"
                " created_at, seq) VALUES (:sha256, 1, 'image/jpeg', 1, 1, '{}', :phash, :crops,"
                f" '2026-11-30T00:00:00.000+00:00', {store.dialect.next_seq('media')})",
                rows,
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--url", default=None, help="an empty database (default: a temp SQLite file)")
    args = ap.parse_args()
    rng = random.Random(20261130)
    folder = tempfile.mkdtemp()
    url = args.url or f"sqlite:///{folder}/bench.db"
    store = connect(url)
    store.migrate()
    t = time.perf_counter()
    fill(store, args.n, rng)
    print(f"filled {args.n} media rows in {time.perf_counter() - t:.1f} s ({url.split(':')[0]})")

    HashCache.forget()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    index = HashCache.index(store, url)
    cold = time.perf_counter() - t
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"cold load of {len(index)} photos: {cold:.2f} s, peak RSS +{(rss1 - rss0) / 1024:.0f} MB"
    )

    t = time.perf_counter()
    for _ in range(100):
        HashCache.index(store, url)
    print(f"warm top-up, nothing new: {(time.perf_counter() - t) * 10:.2f} ms a use")

    other = connect(url)  # "another process" ingests one photo
    h = rng.getrandbits(64)
    with other.write():
        other.insert_media(
            {
                "sha256": "f" * 64,
                "size": 1,
                "mime": "image/jpeg",
                "width": 1,
                "height": 1,
                "exif": {},
                "phash": to_hex(h),
                "crop_hashes": [to_hex(h ^ (1 << k)) for k in range(5)],
                "created_at": "2026-11-30T00:00:00.000+00:00",
            }
        )
    t = time.perf_counter()
    index = HashCache.index(store, url)
    hits = index.query(from_hex(to_hex(h ^ 0b111)), 12)
    print(
        f"top-up of 1 new photo + query: {(time.perf_counter() - t) * 1000:.1f} ms,"
        f" found: {'f' * 64 in [k for k, _ in hits]}"
    )
    t = time.perf_counter()
    for _ in range(20):
        index.query(rng.getrandbits(64), 12, crops=[rng.getrandbits(64) for _ in range(5)])
    print(f"query with crops over {len(index)}: {(time.perf_counter() - t) * 50:.1f} ms")

    HashCache.forget()
    t = time.perf_counter()
    HashCache.warm(url)
    started = time.perf_counter() - t
    HashCache.index(store, url)
    print(
        f"background warm: start returns in {started * 1000:.1f} ms; a use waits until loaded,"
        f" {time.perf_counter() - t:.2f} s after the start"
    )
    other.close()
    store.close()


if __name__ == "__main__":
    main()
