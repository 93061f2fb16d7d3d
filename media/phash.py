"""Perceptual hash of evidence photos and near-duplicate lookup.

Pillow + numpy (no scipy/imagehash at run time).

Hash: 64-bit DCT pHash, the same algorithm as ``imagehash.phash`` (greyscale, 32x32 LANCZOS,
2-D DCT-II, top-left 8x8 coefficients including DC, bit = coefficient > median of the 64,
row-major, first coefficient = most significant bit). The 8x32 cosine basis is precomputed, so
only 8 of the 32 DCT rows/columns are ever computed: two small matrix products (numpy), about
0.03 ms, which matters because an ingest computes ten hashes per photo and pure-Python
arithmetic would hold the GIL that other ingest threads need. It is computed from the
already-decoded 320 px display version (see ``media.images.process_image``), never from a
second decode of the original. This module only hashes decoded pictures; decoding is
``media.images``' job (``media.images.phash`` hashes encoded bytes through the ingest path).

Orientation: ``dihedral_hashes`` gives the hashes of the picture's eight forms (mirror, turns
by 90/180/270 degrees and their mirrors) from one coefficient matrix. Only a photo's own hashes
are stored; a lookup tries the new photo's eight forms (``media.near_dup``).

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
* Issue 14 added band-free regions (水印相机 bands), a centre-82% region, frame trimming
  (``trim_border``) and the eight dihedral forms; tests/bench/bench_evidence.py measures them on
  the corpus (catch rate per kind of copy, distinct pairs) and docs/EVIDENCE.md quotes it. With
  forms and more regions, parts of distinct photos come closer (down to 10 bits), which is why
  a hash match is only a candidate until ``media.near_dup.similarity`` confirms it.

Near-duplicate lookup over the archive is in ``media.near_dup``.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageChops

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


def trim_border(img: Image.Image, tolerance: int = 24) -> Image.Image:
    """The picture without a plain frame around it (a border added to disguise a copy): rows
    and columns at the edges that differ from the corner colour by no more than `tolerance`.
    Only a frame on all four sides, each at least 1% thick, around at least half the picture
    is trimmed; camera photos (a plain sky reaches one or two edges, not all four) come back
    unchanged."""
    grey = img if img.mode == "L" else img.convert("L")
    w, h = grey.size
    corner = grey.getpixel((0, 0))
    mask = ImageChops.difference(grey, Image.new("L", grey.size, corner)).point(
        lambda v: 255 if v > tolerance else 0
    )
    box = mask.getbbox()
    if box is None:
        return img
    left, top, right, bottom = box
    edge = 0.01 * min(w, h)
    framed = min(left, top, w - right, h - bottom) >= edge  # a frame goes all round
    if not framed or (right - left) * (bottom - top) < 0.5 * w * h:
        return img
    return img.crop(box)


def coefficients(img: Image.Image) -> np.ndarray:
    """The 8x8 lowest DCT-II coefficients of the 32x32 grey version of a decoded image."""
    if img.mode != "L":
        img = img.convert("L")
    grey = img.resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.LANCZOS)
    px = np.frombuffer(grey.tobytes(), dtype=np.uint8).reshape(_HASH_SIDE, _HASH_SIDE)
    # Row DCT keeping the 8 lowest frequencies, then the column DCT of those: 8x8 coefficients.
    return _BASIS @ px.astype(np.float64) @ _BASIS.T


def hash_of_coefficients(coeffs: np.ndarray) -> int:
    """Bit = coefficient > median of the 64, row-major, first coefficient most significant."""
    flat = coeffs.ravel()
    return int.from_bytes(np.packbits(flat > np.median(flat)).tobytes(), "big")


def phash_of_image(img: Image.Image) -> int:
    """64-bit pHash of a decoded PIL image (use the 320 px display version)."""
    return hash_of_coefficients(coefficients(img))


# The eight dihedral forms of a picture (its orientations and their mirrors), as PIL transposes
# applied to the picture; form 0 is the picture itself. A copy that was mirrored or turned is
# one of these forms of the original.
FORMS: tuple[Image.Transpose | None, ...] = (
    None,
    Image.Transpose.FLIP_LEFT_RIGHT,
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_180,
    Image.Transpose.ROTATE_270,
    Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.TRANSPOSE,
    Image.Transpose.TRANSVERSE,
)
FORM_NAMES = ("原样", "左右镜像", "旋转90°", "旋转180°", "旋转270°", "上下镜像", "转置", "反转置")

# A flip of the DCT input negates the odd-frequency coefficients along that axis, a transpose of
# the input transposes the coefficients; so the forms' hashes come from the one coefficient
# matrix, without resizing seven more pictures (tests/test_evidence_dihedral.py checks them
# against hashing each transposed picture).
_ODD = np.array([(-1.0) ** k for k in range(_LOW)])
_ROW_SIGN = _ODD[:, None]  # vertical flip: odd row frequencies change sign
_COL_SIGN = _ODD[None, :]  # horizontal flip: odd column frequencies change sign


def _form_coefficients(c: np.ndarray, form: int) -> np.ndarray:
    if form == 0:
        return c
    if form == 1:  # FLIP_LEFT_RIGHT
        return c * _COL_SIGN
    if form == 2:  # ROTATE_90 (counter-clockwise): transpose, then flip top-bottom
        return c.T * _ROW_SIGN
    if form == 3:  # ROTATE_180
        return c * _ROW_SIGN * _COL_SIGN
    if form == 4:  # ROTATE_270: transpose, then flip left-right
        return c.T * _COL_SIGN
    if form == 5:  # FLIP_TOP_BOTTOM
        return c * _ROW_SIGN
    if form == 6:  # TRANSPOSE
        return c.T
    return c.T * _ROW_SIGN * _COL_SIGN  # TRANSVERSE


def dihedral_hashes(img: Image.Image) -> list[int]:
    """pHashes of the picture's eight ``FORMS`` (same order), without a plain frame ([0] is
    ``photo_hashes(img)[0]``)."""
    c = coefficients(trim_border(img))
    return [hash_of_coefficients(_form_coefficients(c, k)) for k in range(len(FORMS))]


def apply_form(img: Image.Image, form: int) -> Image.Image:
    t = FORMS[form]
    return img if t is None else img.transpose(t)


# Regions hashed in addition to the whole picture, as (left, top, right, bottom) fractions:
# centre 90%, 10% off each side, the picture without a 15% band at the top and bottom, at
# the bottom only and at the top only (where watermark-camera apps, 水印相机, draw their band),
# and the centre 82% (a 15% centre crop is 5% off the centre-90% region: up to 18 bits).
# A photo that is an up-to-10% crop of another is close to one of the first five regions of the
# other; a copy with a band drawn over it is close on the band-free region (compared region to
# region, media.near_dup). Measured distances in the module docstring and
# tests/bench/bench_evidence.py.
CROP_REGIONS: tuple[tuple[float, float, float, float], ...] = (
    (0.05, 0.05, 0.95, 0.95),
    (0.0, 0.0, 0.9, 1.0),
    (0.1, 0.0, 1.0, 1.0),
    (0.0, 0.0, 1.0, 0.9),
    (0.0, 0.1, 1.0, 1.0),
    (0.0, 0.15, 1.0, 0.85),
    (0.0, 0.0, 1.0, 0.85),
    (0.0, 0.15, 1.0, 1.0),
    (0.09, 0.09, 0.91, 0.91),
)
BAND_REGIONS = (5, 6, 7)  # indexes in CROP_REGIONS of the band-free regions


def crop_box(size: tuple[int, int], region: int) -> tuple[int, int, int, int]:
    w, h = size
    left, top, right, bottom = CROP_REGIONS[region]
    return (round(left * w), round(top * h), round(right * w), round(bottom * h))


def photo_hashes(img: Image.Image) -> tuple[int, list[int]]:
    """What ingest stores of a decoded photo: its full pHash and ``crop_hashes``, both of the
    picture without a plain frame (``trim_border``)."""
    img = trim_border(img if img.mode == "L" else img.convert("L"))
    return phash_of_image(img), crop_hashes(img)


def crop_hashes(img: Image.Image) -> list[int]:
    """pHashes of ``CROP_REGIONS`` of a decoded image (same order), for crop-robust lookup."""
    if img.mode != "L":
        img = img.convert("L")  # once, not per region
    return [phash_of_image(img.crop(crop_box(img.size, r))) for r in range(len(CROP_REGIONS))]


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
