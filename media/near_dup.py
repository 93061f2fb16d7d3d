"""Near-duplicate lookup over a county's archive of perceptual hashes.

A brute-force Hamming scan with numpy: XOR and popcount over every stored hash. Measured on
this project's 2-core machine (tests/bench/bench_phash.py), a query over 1,000,000 photos with
their crop hashes (6,000,000 hashes) takes about 10 ms, simpler and faster than the
multi-index hashing in pure Python we tried first (157 ms with crops). Memory is 56 bytes a
photo (one full and five crop hashes).

A query matches when the new photo's full hash is near a stored photo's full or crop hash (the
new photo is a crop of an archived one) or one of the new photo's crop hashes is near a stored
full hash (an archived photo is a crop of the new one); the distance is the smallest of those.
"""

from collections.abc import Sequence

import numpy as np

from media.phash import DEFAULT_MAX_DISTANCE

CROPS = 5  # media.phash.crop_hashes makes five regions


class NearDuplicateIndex:
    """Photos' hashes in growable numpy arrays; `query` is exact (no false negatives)."""

    def __init__(self, capacity: int = 1024) -> None:
        self._keys: list[object] = []
        self._full = np.zeros(capacity, dtype=np.uint64)
        self._crops = np.zeros((capacity, CROPS), dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: object, h: int, *, crops: Sequence[int] = ()) -> None:
        """Add a photo; without crop hashes its full hash stands in for them."""
        if crops and len(crops) != CROPS:
            raise ValueError(f"expected {CROPS} crop hashes, got {len(crops)}")
        n = len(self._keys)
        if n == len(self._full):
            self._full = np.resize(self._full, 2 * n)
            self._crops = np.resize(self._crops, (2 * n, CROPS))
        self._full[n] = h
        self._crops[n] = list(crops) if crops else [h] * CROPS
        self._keys.append(key)

    def extend(self, keys: Sequence[object], full: np.ndarray, crops: np.ndarray) -> None:
        """Add many photos at once: `full` (n,) and `crops` (n, CROPS) uint64 arrays."""
        n, m = len(self._keys), len(keys)
        if len(full) != m or crops.shape != (m, CROPS):
            raise ValueError("keys, full and crops must describe the same photos")
        if n + m > len(self._full):
            size = max(2 * len(self._full), n + m)
            self._full = np.resize(self._full, size)
            self._crops = np.resize(self._crops, (size, CROPS))
        self._full[n : n + m] = full
        self._crops[n : n + m] = crops
        self._keys.extend(keys)

    def query(
        self, h: int, max_distance: int = DEFAULT_MAX_DISTANCE, *, crops: Sequence[int] = ()
    ) -> list[tuple[object, int]]:
        """All (key, distance) with distance <= max_distance, nearest first."""
        n = len(self._keys)
        if n == 0:
            return []
        full, q = self._full[:n], np.uint64(h)
        distance = np.bitwise_count(full ^ q)
        distance = np.minimum(distance, np.bitwise_count(self._crops[:n] ^ q).min(axis=1))
        for c in crops:
            distance = np.minimum(distance, np.bitwise_count(full ^ np.uint64(c)))
        hits = np.flatnonzero(distance <= max_distance)
        order = sorted(hits.tolist(), key=lambda i: (int(distance[i]), i))
        return [(self._keys[i], int(distance[i])) for i in order]
