"""Near-duplicate lookup over a county's archive of perceptual hashes, and the second-stage
check that confirms a candidate before it is flagged.

Stage one (``NearDuplicateIndex``): a brute-force Hamming scan with numpy, XOR and popcount over
every stored hash, row blocks at a time so a block's hashes stay in the CPU cache. Each photo is
stored with its own hashes only (the full picture and the nine ``CROP_REGIONS``: 80 bytes a
photo, 80 MB per process at 1M photos). A query pairs the new photo's hashes with stored
columns (``PAIRINGS``):

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
    trim_border,
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

_BLOCK = 131_072  # rows per scan block: each column's slice (1 MB) stays in the CPU cache


@dataclass(frozen=True)
class Match:
    key: object
    distance: int
    form: int  # the dihedral form of the new photo (media.phash.FORMS) that matched
    query_region: int  # region of the new photo (FULL or an index of CROP_REGIONS)
    stored_region: int  # region of the stored photo
    # Every pairing within the threshold as (distance, form, query region, stored region),
    # nearest first (the first is the one above): stage two tries the nearest few.
    pairings: tuple[tuple[int, int, int, int], ...] = ()


class NearDuplicateIndex:
    """Photos' hashes in one growable numpy array; `query` is exact (no false negatives)."""

    def __init__(self, capacity: int = 1024) -> None:
        self._keys: list[object] = []
        self._h = np.zeros((COLUMNS, capacity), dtype=np.uint64)  # a column per region

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
        if n == self._h.shape[1]:
            self._grow(2 * n)
        self._h[:, n] = [h, *crops, *[h] * (CROPS - len(crops))]
        self._keys.append(key)

    def extend(self, keys: Sequence[object], full: np.ndarray, crops: np.ndarray) -> None:
        """Add many photos at once: `full` (n,) and `crops` (n, CROPS) uint64 arrays."""
        n, m = len(self._keys), len(keys)
        if len(full) != m or crops.shape != (m, CROPS):
            raise ValueError("keys, full and crops must describe the same photos")
        if n + m > self._h.shape[1]:
            self._grow(max(2 * self._h.shape[1], n + m))
        self._h[0, n : n + m] = full
        self._h[1:, n : n + m] = crops.T
        self._keys.extend(keys)

    def _grow(self, capacity: int) -> None:
        grown = np.zeros((COLUMNS, capacity), dtype=np.uint64)
        grown[:, : self._h.shape[1]] = self._h
        self._h = grown

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
        m = hi - lo
        best = np.full(m, 64, dtype=np.uint8)
        xor, count = np.empty(m, dtype=np.uint64), np.empty(m, dtype=np.uint8)
        for col, q in enumerate(queries):
            column = self._h[col, lo:hi]
            for one in q:  # contiguous 1-D passes into reused buffers (they stay in cache)
                np.bitwise_xor(column, one, out=xor)
                np.bitwise_count(xor, out=count)
                np.minimum(best, count, out=best)
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
            row = self._h[:, i]
            found = []
            for form, qr, sr in PAIRINGS:
                if form >= len(form_full):
                    continue
                q = form_full[form] if qr == FULL else mine[qr]
                d = (int(row[sr + 1]) ^ q).bit_count()
                if d <= max_distance:
                    found.append((d, form, qr, sr))
            found.sort(key=lambda p: p[0])  # stable: PAIRINGS order among equals
            _, form, qr, sr = found[0]
            out.append(Match(self._keys[i], dist, form, qr, sr, tuple(found)))
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
_WORK = 160  # the display versions are compared at this size (longest side)
_SHIFTS = (-0.04, 0.0, 0.04)  # each edge of the stored part moved by this much of its size
# The alignment search runs only when the parts as paired score at least this (distinct
# scenes: mean 0.14, sd 0.09 in bench_evidence.py; copies score far higher).
_SEARCH_FROM = 0.35


def _grey(img: Image.Image) -> Image.Image:
    grey = trim_border(img.convert("L"))
    grey = grey.copy()
    grey.thumbnail((_WORK, _WORK), Image.Resampling.BOX)
    return grey


def _descriptor(img: Image.Image, box=None) -> np.ndarray:
    """Block means of a grey picture (or of `box` of it), and their horizontal and vertical
    differences, each zero-mean and unit-length: a (3, 576) array."""
    a = np.asarray(
        img.resize((_SIDE + 1, _SIDE + 1), Image.Resampling.BOX, box=box), dtype=np.float64
    )
    parts = [a[:-1, :-1], a[:-1, 1:] - a[:-1, :-1], a[1:, :-1] - a[:-1, :-1]]
    out = []
    for p in parts:
        p = (p - p.mean()).ravel()
        norm = np.linalg.norm(p)
        out.append(p / norm if norm > 1e-9 else p)
    return np.stack(out)


def _box(size: tuple[int, int], region: int) -> tuple[float, float, float, float]:
    w, h = size
    left, top, right, bottom = (0.0, 0.0, 1.0, 1.0) if region == FULL else CROP_REGIONS[region]
    return (left * w, top * h, right * w, bottom * h)


TRIED_PAIRINGS = 3  # stage two tries this many of a match's nearest pairings


def similarity(query: Image.Image, stored: Image.Image, match: Match) -> float:
    """The best `pair_similarity` over the match's nearest pairings (different forms and
    regions with close hashes point at different parts of the pictures)."""
    pairings = match.pairings or (
        (match.distance, match.form, match.query_region, match.stored_region),
    )
    q = {}
    s = _grey(stored)
    best = -1.0
    for _, form, qr, sr in pairings[:TRIED_PAIRINGS]:
        if form not in q:
            q[form] = _grey(apply_form(query, form))
        best = max(best, _pair_similarity(q[form], s, qr, sr))
    return round(best, 3)


def _pair_similarity(
    q: Image.Image, s: Image.Image, query_region: int, stored_region: int
) -> float:
    """Second-stage score of a stage-one match, about -1..1: normalized cross-correlation of
    24x24 grey block means and of their horizontal and vertical differences (averaged), between
    the part of the new photo and the part of the stored one the match paired (new photo turned
    to the matching form, plain frames trimmed). The hash regions are coarse (a 12% crop is
    matched against the 10% region), so when the parts score at least _SEARCH_FROM the stored
    part's edges are also tried 4% further in or out and the best score counts. Brightness
    and contrast changes do not matter."""
    mine = _descriptor(q, _box(q.size, query_region))
    left, top, right, bottom = _box(s.size, stored_region)
    w, h = right - left, bottom - top
    best = float(np.mean(np.sum(mine * _descriptor(s, (left, top, right, bottom)), axis=1)))
    if best < _SEARCH_FROM:  # unrelated pictures: no alignment search (most candidates)
        return best
    for dl in _SHIFTS:
        for dr in _SHIFTS:
            for dt in _SHIFTS:
                for db in _SHIFTS:
                    box = (
                        max(0.0, left + dl * w),
                        max(0.0, top + dt * h),
                        min(s.size[0], right + dr * w),
                        min(s.size[1], bottom + db * h),
                    )
                    score = float(np.mean(np.sum(mine * _descriptor(s, box), axis=1)))
                    best = max(best, score)
    return best
