"""Perceptual hash of evidence photos and near-duplicate lookup.

Pillow + numpy (no scipy/imagehash at run time).

Hash: 64-bit DCT pHash, the same algorithm as ``imagehash.phash`` (greyscale, 32x32 LANCZOS,
2-D DCT-II, top-left 8x8 coefficients including DC, bit = coefficient > median of the 64,
row-major, first coefficient = most significant bit). The 8x32 cosine basis is precomputed, so
only 8 of the 32 DCT rows/columns are ever computed: two small matrix products (numpy), about
0.03 ms, which matters because an ingest computes six hashes per photo and pure-Python
arithmetic would hold the GIL that other ingest threads need. It is computed from the
already-decoded 320 px display version (see ``media.images.process_image``), never from a
second decode of the original.

Measurements (corpus photos, 320 px display version, see ``tests/test_media_images.py``):

* This implementation gives bit-identical hashes to ``imagehash.phash`` on every corpus photo
  (except the perfectly flat grey frame, where both are float noise), at ~0.6 ms per hash vs
  ~0.34 ms for imagehash (numpy+scipy); scipy and PyWavelets are not run-time dependencies.
* dHash vs pHash: both give 0-2 bits for q60 recompression + 50% resize, and 4 for the iPhone HDR
  on/off pair; but distinct content (quadrants of different photos) gets as close as 13 bits with
  dHash vs 20 with pHash, so pHash separates better.
* A 10% crop moves whole-image hashes a lot: pHash 16 (centre 90%) to 26 (10% off one side),
  overlapping distinct photos (>= 22). Hence ``crop_hashes``: the centre-90% region and the four
  "10% off one side" regions are hashed too, and a lookup compares full-vs-crop both ways
  (``media.near_dup.NearDuplicateIndex``): then 10% crops are at 0-2 bits (on the regions) and <= 10
  bits for uneven crops (7% left + 3% right), while distinct content stays >= 20 (photos >= 22).
  Heavier crops (20% area and more) are not reliably caught.

Near-duplicate lookup over the archive is in ``media.near_dup``.
"""

from __future__ import annotations

import io
import math
from typing import BinaryIO

import numpy as np
from PIL import Image

HASH_BITS = 64

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


def _dct_basis() -> np.ndarray:
    """The 8 lowest DCT-II cosines over 32 samples, as an 8x32 matrix."""
    n = _HASH_SIDE
    return np.array(
        [[math.cos(math.pi * (2 * x + 1) * k / (2 * n)) for x in range(n)] for k in range(_LOW)]
    )


_BASIS = _dct_basis()


def phash_of_image(img: Image.Image) -> int:
    """64-bit pHash of a decoded PIL image (use the 320 px display version)."""
    if img.mode != "L":
        img = img.convert("L")
    grey = img.resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.LANCZOS)
    px = np.frombuffer(grey.tobytes(), dtype=np.uint8).reshape(_HASH_SIDE, _HASH_SIDE)
    # Row DCT keeping the 8 lowest frequencies, then the column DCT of those: 8x8 coefficients.
    coeffs = (_BASIS @ px.astype(np.float64) @ _BASIS.T).ravel()
    med = float(np.median(coeffs))
    value = 0
    for bit in coeffs > med:
        value = (value << 1) | int(bit)
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
