"""Near-duplicate lookup over a county's archive of perceptual hashes, and the second-stage
check that confirms a candidate before it is flagged.

Stage one (``NearDuplicateIndex``): a brute-force Hamming scan with numpy, XOR and popcount over
every stored hash, row blocks at a time so a block's hashes stay in the CPU cache. Each photo is
stored with its own hashes only (the full picture and ``CROP_REGIONS``: 9 x 8 bytes = 72 bytes a
photo). A query pairs the new photo's hashes with stored columns (``PAIRINGS``):

* its full hash against a stored photo's full and every crop hash (the new photo is a crop of
  an archived one);
* each of its crop hashes against a stored full hash (an archived photo is a crop of the new
  one);
* its band-free regions against the same regions of a stored photo (a 水印相机 band drawn over
  either one);
* the seven other dihedral forms of its full hash (``media.phash.dihedral_hashes``: mirrored,
  turned by 90/180/270 degrees and their mirrors) against a stored full and centre-90% hash.

The distance is the smallest over those pairings, and a match remembers which pairing gave it
(form and regions), so stage two compares the right parts of the pictures.

Stage two (``similarity``): an independent comparison of the two 320 px display versions kept
at ingest, turned and cropped as the pairing says: 24x24 block means of the grey pictures and of
their horizontal and vertical differences, compared by normalized cross-correlation (1 = same
pattern, brightness and contrast changes do not matter). Measured in tests/bench/bench_evidence.py.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from media.phash import (
    BAND_REGIONS,
    CROP_REGIONS,
    DEFAULT_MAX_DISTANCE,
    FORMS,
    apply_form,
    crop_box,
)

CROPS = len(CROP_REGIONS)  # media.phash.crop_hashes makes one hash per region
COLUMNS = 1 + CROPS  # stored per photo: full hash, then the crop hashes
FULL = -1  # "region" of the whole picture

# (query form, query region, stored region): which of the new photo's hashes is compared with
# which stored column. Regions index CROP_REGIONS, FULL is the whole picture.
PAIRINGS: tuple[tuple[int, int, int], ...] = (
    *((0, FULL, r) for r in (FULL, *range(CROPS))),
    *((0, r, FULL) for r in range(CROPS)),
    *((0, r, r) for r in BAND_REGIONS),
    *((f, FULL, s) for f in range(1, len(FORMS)) for s in (FULL, 0)),
)

# Stage two: a candidate is confirmed when its similarity is at least this (bench_evidence.py:
# planted copies >= 0.8x, distinct scenes <= 0.6x; see docs/EVIDENCE.md).
DEFAULT_MIN_SIMILARITY = 0.75

_BLOCK = 65_536  # rows per scan block: 65,536 x 9 x 8 bytes = 4.7 MB


@dataclass(frozen=True)
class Match:
    key: object
    distance: int
    form: int  # the dihedral form of the new photo (media.phash.FORMS) that matched
    query_region: int  # region of the new photo (FULL or an index of CROP_REGIONS)
    stored_region: int  # region of the stored photo


class NearDuplicateIndex:
    """Photos' hashes in one growable numpy array; `query` is exact (no false negatives)."""

    def __init__(self, capacity: int = 1024) -> None:
        self._keys: list[object] = []
        self._h = np.zeros((capacity, COLUMNS), dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def nbytes(self) -> int:
        return self._h.nbytes

    def add(self, key: object, h: int, *, crops: Sequence[int] = ()) -> None:
        """Add a photo; crop hashes it lacks (older photos had 5, none at all) are its full
        hash, which then matches exactly as the full hash does."""
        if len(crops) > CROPS:
            raise ValueError(f"expected at most {CROPS} crop hashes, got {len(crops)}")
        n = len(self._keys)
        if n == len(self._h):
            self._h = np.resize(self._h, (2 * n, COLUMNS))
        self._h[n] = [h, *crops, *[h] * (CROPS - len(crops))]
        self._keys.append(key)

    def extend(self, keys: Sequence[object], full: np.ndarray, crops: np.ndarray) -> None:
        """Add many photos at once: `full` (n,) and `crops` (n, CROPS) uint64 arrays."""
        n, m = len(self._keys), len(keys)
        if len(full) != m or crops.shape != (m, CROPS):
            raise ValueError("keys, full and crops must describe the same photos")
        if n + m > len(self._h):
            self._h = np.resize(self._h, (max(2 * len(self._h), n + m), COLUMNS))
        self._h[n : n + m, 0] = full
        self._h[n : n + m, 1:] = crops
        self._keys.extend(keys)

    def _queries(self, h: int, crops: Sequence[int], forms: Sequence[int]) -> list[np.ndarray]:
        """Per stored column, the new photo's hashes compared with it (PAIRINGS order)."""
        mine = {FULL: h, **{r: (crops[r] if r < len(crops) else h) for r in range(CROPS)}}
        form_full = [h, *forms]
        per: list[list[int]] = [[] for _ in range(COLUMNS)]
        for form, qr, sr in PAIRINGS:
            if form >= len(form_full):
                continue
            per[sr + 1].append(form_full[form] if qr == FULL else mine[qr])
        return [np.array(q, dtype=np.uint64) for q in per]

    def _distances(self, queries: list[np.ndarray], lo: int, hi: int) -> np.ndarray:
        block = self._h[lo:hi]
        best = np.full(hi - lo, 64, dtype=np.uint8)
        for col, q in enumerate(queries):
            if len(q):
                d = np.bitwise_count(block[:, col, None] ^ q[None, :]).min(axis=1)
                np.minimum(best, d, out=best)
        return best

    def query_matches(
        self,
        h: int,
        max_distance: int = DEFAULT_MAX_DISTANCE,
        *,
        crops: Sequence[int] = (),
        forms: Sequence[int] = (),
    ) -> list[Match]:
        """Every stored photo within max_distance, nearest first, with the pairing that gave
        the distance. `forms`: the hashes of the new photo's other dihedral forms (FORMS[1:],
        ``dihedral_hashes(img)[1:]``); without them only its own orientation is tried."""
        n = len(self._keys)
        if n == 0:
            return []
        queries = self._queries(h, crops, forms)
        hits: list[tuple[int, int]] = []
        for lo in range(0, n, _BLOCK):
            d = self._distances(queries, lo, min(n, lo + _BLOCK))
            for i in np.flatnonzero(d <= max_distance).tolist():
                hits.append((int(d[i]), lo + i))
        hits.sort()
        mine = {FULL: h, **{r: (crops[r] if r < len(crops) else h) for r in range(CROPS)}}
        form_full = [h, *forms]
        out = []
        for dist, i in hits:
            row = self._h[i]
            for form, qr, sr in PAIRINGS:  # the first pairing giving the distance
                if form >= len(form_full):
                    continue
                q = form_full[form] if qr == FULL else mine[qr]
                if (int(row[sr + 1]) ^ q).bit_count() == dist:
                    out.append(Match(self._keys[i], dist, form, qr, sr))
                    break
        return out

    def query(
        self,
        h: int,
        max_distance: int = DEFAULT_MAX_DISTANCE,
        *,
        crops: Sequence[int] = (),
        forms: Sequence[int] = (),
    ) -> list[tuple[object, int]]:
        """All (key, distance) with distance <= max_distance, nearest first."""
        return [
            (m.key, m.distance)
            for m in self.query_matches(h, max_distance, crops=crops, forms=forms)
        ]


# -- stage two -------------------------------------------------------------------------------

_SIDE = 24


def _region(img: Image.Image, region: int) -> Image.Image:
    return img if region == FULL else img.crop(crop_box(img.size, region))


def _descriptor(img: Image.Image) -> np.ndarray:
    grey = img.convert("L").resize((_SIDE + 1, _SIDE + 1), Image.Resampling.BOX)
    a = np.asarray(grey, dtype=np.float64)
    parts = [a[:-1, :-1], a[:-1, 1:] - a[:-1, :-1], a[1:, :-1] - a[:-1, :-1]]
    out = []
    for p in parts:
        p = p - p.mean()
        norm = np.linalg.norm(p)
        out.append(p.ravel() / norm if norm > 1e-9 else p.ravel())
    return np.stack(out)


def similarity(query: Image.Image, stored: Image.Image, match: Match) -> float:
    """Second-stage score of a stage-one match, -1..1: the mean normalized cross-correlation of
    the grey block means and of their horizontal and vertical differences, on the parts of the
    two display versions the match paired (the new photo turned to the matching form)."""
    q = _region(apply_form(query, match.form), match.query_region)
    s = _region(stored, match.stored_region)
    a, b = _descriptor(q), _descriptor(s)
    return round(float(np.mean(np.sum(a * b, axis=1))), 3)
