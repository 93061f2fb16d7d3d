"""Benchmark: NearDuplicateIndex over 1,000,000 synthetic 64-bit hashes (run on demand).

    .venv/bin/python tests/bench/bench_phash.py [--n 1000000] [--crops]

Synthetic hashes are uniform random, which is the best case for bucket sizes; real pHashes are
less uniform, so treat the figures as a lower bound. Half of the 200 queries are planted
near-duplicates (an indexed hash with up to DEFAULT_MAX_DISTANCE - 2 bits flipped), all must be
found.
With --crops every photo also gets 5 crop hashes and every query passes 5 crop hashes.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from media.near_dup import NearDuplicateIndex  # noqa: E402
from media.phash import DEFAULT_MAX_DISTANCE  # noqa: E402


def flip(h: int, k: int, rng: random.Random) -> int:
    for bit in rng.sample(range(64), k):
        h ^= 1 << bit
    return h


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--max-distance", type=int, default=DEFAULT_MAX_DISTANCE)
    ap.add_argument("--crops", action="store_true")
    args = ap.parse_args()
    rng = random.Random(20261120)
    hashes = [rng.getrandbits(64) for _ in range(args.n)]
    tracemalloc.start()
    t = time.perf_counter()
    index = NearDuplicateIndex()
    for i, h in enumerate(hashes):
        crops = [rng.getrandbits(64) for _ in range(5)] if args.crops else ()
        index.add(i, h, crops=crops)
    build = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"built index of {len(index):,} hashes{' (+5 crop hashes each)' if args.crops else ''}, "
        f"in {build:.1f} s, ~{peak / 1e6:.0f} MB"
    )
    times, found, planted = [], 0, 0
    for q in range(args.queries):
        crops = [rng.getrandbits(64) for _ in range(5)] if args.crops else ()
        if q % 2:
            target = rng.randrange(args.n)
            h = flip(hashes[target], rng.randint(0, args.max_distance - 2), rng)
            planted += 1
        else:
            target, h = None, rng.getrandbits(64)
        t = time.perf_counter()
        result = index.query(h, args.max_distance, crops=crops)
        times.append(time.perf_counter() - t)
        if target is not None and any(k == target for k, _ in result):
            found += 1
    times.sort()
    p95 = times[int(len(times) * 0.95) - 1]
    print(
        f"query max_distance={args.max_distance}: median {statistics.median(times) * 1000:.2f} ms, "
        f"p95 {p95 * 1000:.2f} ms, max {times[-1] * 1000:.2f} ms over {len(times)} queries; "
        f"planted near-duplicates found {found}/{planted}"
    )


if __name__ == "__main__":
    main()
