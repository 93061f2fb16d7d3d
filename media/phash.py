"""Perceptual hash of evidence photos and near-duplicate lookup.

Pure Pillow + stdlib (no numpy/scipy/imagehash at run time).

Hash: 64-bit DCT pHash, the same algorithm as ``imagehash.phash`` (greyscale, 32x32 LANCZOS,
2-D DCT-II, top-left 8x8 coefficients including DC, bit = coefficient > median of the 64,
row-major, first coefficient = most significant bit). The 8x32 cosine basis is precomputed, so
only 8 of the 32 DCT rows/columns are ever computed: ~10k multiply-adds in pure Python, well under
a millisecond. It is computed from the already-decoded 320 px display version (see
``media.images.process_image``), never from a second decode of the original.

Measurements (corpus photos, 320 px display version, see ``tests/test_media_images.py``):

* This implementation gives bit-identical hashes to ``imagehash.phash`` on every corpus photo
  (except the perfectly flat grey frame, where both are float noise), at ~0.6 ms per hash vs
  ~0.34 ms for imagehash (numpy+scipy). The whole-pipeline difference is < 2 ms per photo, so
  numpy, scipy and PyWavelets are not run-time dependencies.
* dHash vs pHash: both give 0-2 bits for q60 recompression + 50% resize, and 4 for the iPhone HDR
  on/off pair; but distinct content (quadrants of different photos) gets as close as 13 bits with
  dHash vs 20 with pHash, so pHash separates better.
* A 10% crop moves whole-image hashes a lot: pHash 16 (centre 90%) to 26 (10% off one side),
  overlapping distinct photos (>= 22). Hence ``crop_hashes``: the centre-90% region and the four
  "10% off one side" regions are hashed too, and a lookup compares full-vs-crop both ways
  (``NearDuplicateIndex(crops=...)``): then 10% crops are at 0-2 bits (on the regions) and <= 10
  bits for uneven crops (7% left + 3% right), while distinct content stays >= 20 (photos >= 22).
  Heavier crops (20% area and more) are not reliably caught.

Near-duplicate lookup: multi-index hashing. The 64 bits are cut into ``n`` contiguous bands
(``bands``). If two hashes differ in at most ``d`` bits, then at least one band differs in at most
``floor(d / n)`` bits (pigeonhole). ``NearDuplicateIndex`` keeps one dict per band
(band value -> keys) and, for a query, probes every band value within ``floor(d / n)`` bits of the
query's band (``band_probes``), then verifies the full Hamming distance of the candidates. With
``n = 4`` 16-bit bands and the default ``d = 12`` that is 4 x 697 exact lookups. A storage layer
can do the same with four indexed integer columns: ``WHERE b0 IN (...) OR b1 IN (...) ...`` with
the values from ``band_probes`` and a final ``hamming`` check in Python.
"""

from __future__ import annotations

import io
import math
from array import array
from collections.abc import Sequence
from functools import lru_cache
from itertools import combinations
from operator import mul
from typing import BinaryIO

from PIL import Image

HASH_BITS = 64
DEFAULT_BANDS = 4

# Default near-duplicate threshold (bits out of 64) for "the same scene, re-used as evidence",
# with crop hashes on both sides. Measured on the corpus (tests/test_media_images.py):
#   planted fraud vs its original: q60 + 50% resize 0, 10% crops (centre / one side) <= 2,
#   uneven 10% crop (7% + 3%) <= 10, iPhone HDR on/off pair 4;
#   distinct content: other photos >= 22, quadrants of different photos >= 20.
# 12 leaves 2 bits above the worst planted fraud and 8 below the closest distinct content.
# Without crop hashes a whole-image-only check would need ~16-18 to catch centre crops and
# still miss one-sided crops (up to 26), so always store and pass the crop hashes.
DEFAULT_MAX_DISTANCE = 12

_HASH_SIDE = 32  # pHash input is 32x32 grey
_LOW = 8  # keep the 8x8 lowest frequencies


def _dct_basis() -> list[list[float]]:
    n = _HASH_SIDE
    return [[math.cos(math.pi * (2 * x + 1) * k / (2 * n)) for x in range(n)] for k in range(_LOW)]


_BASIS = _dct_basis()


def phash_of_image(img: Image.Image) -> int:
    """64-bit pHash of a decoded PIL image (use the 320 px display version)."""
    if img.mode != "L":
        img = img.convert("L")
    grey = img.resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.LANCZOS)
    px = grey.tobytes()
    n = _HASH_SIDE
    rows = [px[i * n : (i + 1) * n] for i in range(n)]
    # Row DCT, keeping only the 8 lowest frequencies: rowdct[y][k]
    rowdct = [[sum(map(mul, basis, row)) for basis in _BASIS] for row in rows]
    # Column DCT of those 8 columns: coeff[k1][k2] = sum_y basis[k1][y] * rowdct[y][k2]
    cols = list(zip(*rowdct, strict=True))
    coeffs = [sum(map(mul, _BASIS[k1], cols[k2])) for k1 in range(_LOW) for k2 in range(_LOW)]
    med = _median(coeffs)
    value = 0
    for c in coeffs:
        value = (value << 1) | (c > med)
    return value


# Regions hashed in addition to the whole picture, as (left, top, right, bottom) fractions:
# centre 90%, and 10% off each side. A photo that is an up-to-10% crop of another is close to
# one of these regions of the other (measured distances in the module docstring).
CROP_REGIONS: tuple[tuple[float, float, float, float], ...] = (
    (0.05, 0.05, 0.95, 0.95),
    (0.0, 0.0, 0.9, 1.0),
    (0.1, 0.0, 1.0, 1.0),
    (0.0, 0.0, 1.0, 0.9),
    (0.0, 0.1, 1.0, 1.0),
)


def crop_hashes(img: Image.Image) -> list[int]:
    """pHashes of ``CROP_REGIONS`` of a decoded image (same order), for crop-robust lookup."""
    if img.mode != "L":
        img = img.convert("L")  # once, not per region
    w, h = img.size
    out = []
    for left, top, right, bottom in CROP_REGIONS:
        box = (round(left * w), round(top * h), round(right * w), round(bottom * h))
        out.append(phash_of_image(img.crop(box)))
    return out


def _median(values: list[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return (s[mid - 1] + s[mid]) / 2 if len(s) % 2 == 0 else s[mid]


def phash(data: bytes | BinaryIO) -> int:
    """pHash of an encoded image, through the same decode path as the ingest pipeline.

    Raises ``media.images.ImageRejected`` for unusable input.
    """
    from media.images import DEFAULT_SIZES, HASH_SOURCE_SIZE, decode_versions

    if isinstance(data, (bytes, bytearray, memoryview)):
        data = io.BytesIO(bytes(data))
    _, _, images = decode_versions(data, set(DEFAULT_SIZES) | {HASH_SOURCE_SIZE})
    return phash_of_image(images[HASH_SOURCE_SIZE])


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def to_hex(h: int) -> str:
    return f"{h:016x}"


def from_hex(s: str) -> int:
    return int(s, 16)


def to_signed64(h: int) -> int:
    """Two's-complement view for SQL INTEGER columns (SQLite/PostgreSQL bigint are signed)."""
    return h - (1 << 64) if h >= 1 << 63 else h


def from_signed64(v: int) -> int:
    return v + (1 << 64) if v < 0 else v


# --------------------------------------------------------------------------------------------
# multi-index hashing


def _band_widths(n: int) -> list[int]:
    if not 1 <= n <= 16:
        raise ValueError("n must be between 1 and 16")
    base, extra = divmod(HASH_BITS, n)
    return [base + 1 if i < extra else base for i in range(n)]


def bands(h: int, n: int = DEFAULT_BANDS) -> list[int]:
    """Split a 64-bit hash into ``n`` contiguous bands, most significant first.

    Band ``i`` is a non-negative int of ``64 // n`` (or one more) bits; store each in its own
    indexed column. Stable: the storage layer and ``NearDuplicateIndex`` use the same split.
    """
    if not 0 <= h < 1 << HASH_BITS:
        raise ValueError("hash must be an unsigned 64-bit int")
    out = []
    shift = HASH_BITS
    for width in _band_widths(n):
        shift -= width
        out.append((h >> shift) & ((1 << width) - 1))
    return out


@lru_cache(maxsize=64)
def _flip_masks(width: int, radius: int) -> tuple[int, ...]:
    masks = [0]
    for r in range(1, min(radius, width) + 1):
        for positions in combinations(range(width), r):
            m = 0
            for p in positions:
                m |= 1 << p
            masks.append(m)
    return tuple(masks)


def band_probes(h: int, max_distance: int, n: int = DEFAULT_BANDS) -> list[list[int]]:
    """For each band, the band values a hash within ``max_distance`` of ``h`` may have there.

    Every hash within ``max_distance`` of ``h`` has, in at least one band, one of the listed values
    (pigeonhole: some band differs in <= max_distance // n bits). Candidates still need a full
    ``hamming`` check. Values per band = sum over r <= max_distance // n of C(band width, r);
    with 4 bands and max_distance 12 that is 697 per band.
    """
    if max_distance < 0:
        raise ValueError("max_distance must be >= 0")
    radius = max_distance // n
    return [
        [v ^ m for m in _flip_masks(w, radius)]
        for v, w in zip(bands(h, n), _band_widths(n), strict=True)
    ]


class _MultiIndex:
    """Band tables over a list of hashes; each entry points at an owner (photo slot)."""

    def __init__(self, n_bands: int) -> None:
        self.n_bands = n_bands
        self.hashes = array("Q")
        self.owners = array("I")
        self.tables: list[dict[int, array]] = [{} for _ in range(n_bands)]

    def add(self, owner: int, h: int) -> None:
        entry = len(self.hashes)
        self.hashes.append(h)
        self.owners.append(owner)
        for table, band in zip(self.tables, bands(h, self.n_bands), strict=True):
            bucket = table.get(band)
            if bucket is None:
                table[band] = array("I", (entry,))
            else:
                bucket.append(entry)

    def probe(self, h: int, max_distance: int, best: dict[int, int]) -> None:
        """Record min distance per owner into ``best`` for entries within ``max_distance``."""
        if not self.hashes:
            return
        hashes, owners = self.hashes, self.owners
        seen: set[int] = set()
        for table, probes in zip(
            self.tables, band_probes(h, max_distance, self.n_bands), strict=True
        ):
            get = table.get
            for value in probes:
                bucket = get(value)
                if bucket is None:
                    continue
                for entry in bucket:
                    if entry in seen:
                        continue
                    seen.add(entry)
                    d = (hashes[entry] ^ h).bit_count()
                    if d <= max_distance:
                        owner = owners[entry]
                        if d < best.get(owner, 65):
                            best[owner] = d


class NearDuplicateIndex:
    """In-memory near-duplicate lookup over 64-bit pHashes; exact (no false negatives).

    ``add(key, hash)`` / ``query(hash, max_distance)`` compare whole-image hashes. To also catch
    ~10% crops, pass the photo's ``crop_hashes`` as ``crops=`` to both: then a query matches when
    the new photo's full hash is near a stored photo's full or crop hash (the new photo is a crop
    of an archived one) or one of the new photo's crop hashes is near a stored full hash (an
    archived photo is a crop of the new one). The reported distance is the minimum of those.
    """

    def __init__(self, n_bands: int = DEFAULT_BANDS) -> None:
        self.n_bands = n_bands
        self._keys: list[object] = []
        self._full = _MultiIndex(n_bands)
        self._crops = _MultiIndex(n_bands)

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: object, h: int, *, crops: Sequence[int] = ()) -> None:
        slot = len(self._keys)
        self._keys.append(key)
        self._full.add(slot, h)
        for c in crops:
            self._crops.add(slot, c)

    def query(
        self,
        h: int,
        max_distance: int = DEFAULT_MAX_DISTANCE,
        *,
        crops: Sequence[int] = (),
    ) -> list[tuple[object, int]]:
        """All (key, distance) with distance <= max_distance, nearest first."""
        best: dict[int, int] = {}
        self._full.probe(h, max_distance, best)
        self._crops.probe(h, max_distance, best)
        for c in crops:
            self._full.probe(c, max_distance, best)
        return [
            (self._keys[slot], d) for slot, d in sorted(best.items(), key=lambda kv: (kv[1], kv[0]))
        ]
