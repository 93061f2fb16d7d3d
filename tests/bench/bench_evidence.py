"""Benchmark: near-duplicate evidence on a labelled set of real photos (run on demand).

    .venv/bin/python tests/bench/bench_evidence.py [--corpus DIR ...] [--sizes 10000,100000,1000000]

Labelled set. Originals are the real camera photos under /work/shared/corpus (every folder; the
photos Pillow can decode and that are not flat frames) and, as further "scenes", the four
quadrants and ninths (3x3 grid) of each of them. Parts of a real photo are real content but NOT
independent photos: they share light, camera and subject with their source, so they are a hard
but small stand-in for a county's distinct scenes. Two parts of one photo count as distinct only
when they do not overlap; the HDR on/off pairs count as one scene.

Planted copies of every original, each made with Pillow and sent through the real ingest path
(media.images.process_image, the stored 320 px JPEG decoded again for stage two): recompress
(q60), resize (50%), crop 8% (one side), crop 15% (one side and centre), brightness +30%,
watermark band (dark band with white text over the bottom 12%), border (6% white frame),
mirror, rotation 90/180/270.

Library. Synthetic random hashes (9 per photo, as stored) for bulk, the originals planted in it;
the copies and the distinct scenes are the queries. Synthetic hashes have no pictures: a
synthetic candidate counts as a false flag (it could not be confirmed), so stage two only helps
on real pairs. Random hashes are uniform, real pHashes are not, so the false-flag rate at scale
is also extrapolated from the measured per-pair rate on real distinct pairs.
"""

from __future__ import annotations

import argparse
import io
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from media.images import process_image  # noqa: E402
from media.near_dup import (  # noqa: E402
    CROPS,
    DEFAULT_MIN_SIMILARITY,
    NearDuplicateIndex,
    similarity,
)
from media.phash import DEFAULT_MAX_DISTANCE, dihedral_hashes  # noqa: E402

THRESHOLD = DEFAULT_MAX_DISTANCE


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


class Photo:
    """What ingest keeps of a photo: hashes and the decoded 320 px JPEG."""

    def __init__(self, data: bytes, source: str, name: str, box=(0.0, 0.0, 1.0, 1.0)):
        p = process_image(data)
        self.h, self.crops = p.phash, list(p.crop_phashes)
        self.img = Image.open(io.BytesIO(p.versions[320])).convert("RGB")
        self.forms = dihedral_hashes(self.img)[1:]
        self.source, self.name, self.box = scene_of(source), name, box


def tiles() -> list[tuple[float, float, float, float]]:
    """Sub-regions used as further scenes: the four quadrants and the 3x3 grid's ninths."""
    quads = [(x / 2, y / 2, (x + 1) / 2, (y + 1) / 2) for y in range(2) for x in range(2)]
    ninths = [(x / 3, y / 3, (x + 1) / 3, (y + 1) / 3) for y in range(3) for x in range(3)]
    return quads + ninths


def disjoint(a, b) -> bool:
    return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def distinct(a: Photo, b: Photo) -> bool:
    """Different scenes, or parts of one photo that do not overlap."""
    return a.source != b.source or disjoint(a.box, b.box)


def band(img: Image.Image) -> Image.Image:
    out = img.convert("RGB").copy()
    w, h = out.size
    d = ImageDraw.Draw(out, "RGBA")
    top = int(h * 0.88)
    d.rectangle((0, top, w, h), fill=(20, 20, 20, 200))
    d.text(
        (w * 0.03, top + (h - top) * 0.2),
        "2026-11-20 10:20  乡村巡检 水印相机 N 23.1 E 113.2",
        fill="white",
    )
    d.text((w * 0.03, top + (h - top) * 0.55), "某某县某某镇某某村 公厕", fill="white")
    return out


def copies(img: Image.Image) -> dict[str, bytes]:
    w, h = img.size
    return {
        "recompress_q60": jpeg(img, 60),
        "resize_50": jpeg(img.resize((w // 2, h // 2), Image.Resampling.LANCZOS)),
        "crop8_side": jpeg(img.crop((int(w * 0.08), 0, w, h))),
        "crop15_side": jpeg(img.crop((0, 0, w, int(h * 0.85)))),
        "crop15_centre": jpeg(
            img.crop((int(w * 0.075), int(h * 0.075), int(w * 0.925), int(h * 0.925)))
        ),
        "brightness": jpeg(ImageEnhance.Brightness(img).enhance(1.3)),
        "watermark_band": jpeg(band(img)),
        "border": jpeg(ImageOps.expand(img, border=int(max(w, h) * 0.06), fill="white")),
        "mirror": jpeg(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        "rotate90": jpeg(img.transpose(Image.Transpose.ROTATE_90)),
        "rotate180": jpeg(img.transpose(Image.Transpose.ROTATE_180)),
        "rotate270": jpeg(img.transpose(Image.Transpose.ROTATE_270)),
    }


def load_originals(folders: list[Path]) -> list[tuple[str, Image.Image]]:
    out = []
    for folder in folders:
        for f in sorted(folder.rglob("*")):
            if f.suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp"):
                continue
            try:
                img = ImageOps.exif_transpose(Image.open(f)).convert("RGB")
            except Exception:
                continue
            img.thumbnail((1600, 1600))
            if np.asarray(img.convert("L")).std() < 8:  # a flat frame is no scene
                continue
            out.append((f.name, img))
    return out


def scene_of(name: str) -> str:
    """Photos of one scene (the HDR on/off pairs: iphone_hdr_NO / _YES) are one source."""
    return name.replace("_YES", "").replace("_NO", "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", nargs="*", type=Path)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    folders = args.corpus or [p for p in Path("/work/shared/corpus").iterdir() if p.is_dir()]
    rng = random.Random(14)

    scenes: list[Photo] = []
    originals = load_originals(folders)
    t = time.perf_counter()
    for name, img in originals:
        w, h = img.size
        scenes.append(Photo(jpeg(img), name, name))
        for q, box in enumerate(tiles()):
            px = (int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h))
            scenes.append(Photo(jpeg(img.crop(px)), name, f"{name}#{q}", box))
    print(
        f"photos: {len(originals)} real originals from {', '.join(map(str, folders))}; "
        f"{len(scenes)} scenes with their quadrants and ninths"
    )
    planted: list[tuple[str, Photo, int]] = []
    sources = {n: img for n, img in originals}
    for i, s in enumerate(scenes):
        if "#" in s.name and int(s.name.split("#")[1]) >= 4:
            continue  # copies of the originals and their quadrants only
        img = sources[s.name.split("#")[0]]
        w, h = img.size
        box = s.box
        img = img.crop((int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)))
        for kind, data in copies(img).items():
            planted.append((kind, Photo(data, s.name.split("#")[0], s.name), i))
    print(
        f"planted copies: {len(planted)} (12 kinds x {len(planted) // 12} originals and "
        f"quadrants); ingest of all took {time.perf_counter() - t:.1f} s"
    )

    def index_of(n_bulk: int) -> NearDuplicateIndex:
        index = NearDuplicateIndex(capacity=n_bulk + len(scenes))
        gen = np.random.default_rng(14)
        b = 200_000
        for lo in range(0, n_bulk, b):
            m = min(b, n_bulk - lo)
            hashes = gen.integers(0, 2**64, size=(m, 1 + CROPS), dtype=np.uint64)
            index.extend(range(-lo - 1, -lo - m - 1, -1), hashes[:, 0], hashes[:, 1:])
        for i, s in enumerate(scenes):
            index.add(i, s.h, crops=s.crops)
        return index

    def nearest(q: Photo, i: int):
        """The stage-one match of q with scene i at any distance."""
        solo = NearDuplicateIndex(capacity=1)
        solo.add(i, scenes[i].h, crops=scenes[i].crops)
        return solo.query_matches(q.h, 64, crops=q.crops, forms=q.forms)[0]

    def judge(index, q: Photo, *, distinct_only: bool = False, want: int | None = None):
        """(flagged, flagged with `want`, stage-one candidates, their similarities). A
        synthetic candidate has no picture: it is counted, not confirmed or flagged."""
        matches = index.query_matches(q.h, THRESHOLD, crops=q.crops, forms=q.forms)
        flagged, hit, scores = False, False, []
        synthetic = sum(1 for m in matches if m.key < 0)
        for m in matches:
            if m.key >= 0:
                other = scenes[m.key]
                if distinct_only and not distinct(q, other):
                    continue
                score = similarity(q.img, other.img, m)
                scores.append(score)
                if score >= DEFAULT_MIN_SIMILARITY:
                    flagged = True
                    hit = hit or m.key == want
        return flagged, hit, synthetic, scores

    # Catch rate per kind, and the figures of the worst catches.
    sizes = [int(s) for s in args.sizes.split(",")]
    index = index_of(sizes[0])
    by_kind: dict[str, list] = {}
    for kind, q, i in planted:
        _, hit, _, scores = judge(index, q, want=i)
        d = nearest(q, i).distance
        by_kind.setdefault(kind, []).append((hit, d, max(scores, default=None)))
    print(
        f"\ncatch rate per kind of copy (stage one <= {THRESHOLD} bits, stage two >= "
        f"{DEFAULT_MIN_SIMILARITY}):"
    )
    total = caught = 0
    for kind, rows in by_kind.items():
        n_hit = sum(r[0] for r in rows)
        total, caught = total + len(rows), caught + n_hit
        worst_d = max(r[1] for r in rows)
        sims = [r[2] for r in rows if r[2] is not None]
        print(
            f"  {kind:16s} {n_hit:3d}/{len(rows)}  max bits {worst_d:2d}  "
            f"min similarity {min(sims) if sims else float('nan'):.3f}"
        )
    print(f"  {'all':16s} {caught}/{total} = {caught / total:.1%}")

    # Distinct pairs: every scene against every scene it does not overlap.
    pair_d, pair_s = [], []
    for a in range(len(scenes)):
        for b in range(len(scenes)):
            if a == b or not distinct(scenes[a], scenes[b]):
                continue
            solo = NearDuplicateIndex(capacity=1)
            solo.add(b, scenes[b].h, crops=scenes[b].crops)
            m = solo.query_matches(scenes[a].h, 64, crops=scenes[a].crops, forms=scenes[a].forms)[0]
            pair_d.append(m.distance)
            pair_s.append(similarity(scenes[a].img, scenes[b].img, m))
    pair_d, pair_s = np.array(pair_d), np.array(pair_s)
    n_pairs = len(pair_d)
    one = pair_d <= THRESHOLD
    both = one & (pair_s >= DEFAULT_MIN_SIMILARITY)
    print(
        f"\ndistinct ordered pairs (no overlapping content; 8 forms, all "
        f"pairings): {n_pairs}; min bits {pair_d.min()}, within {THRESHOLD}: {one.sum()}, "
        f"within 16: {(pair_d <= 16).sum()}; similarity max {pair_s.max():.3f}, p99 "
        f"{np.percentile(pair_s, 99):.3f}; flagged after both stages: {both.sum()}"
    )
    for lim in (16, 20, 24):
        sel = pair_d <= lim
        if sel.any():
            print(f"  within {lim} bits: {sel.sum()} pairs, similarity max {pair_s[sel].max():.3f}")
    near16 = pair_d <= 16
    cond = (pair_s[near16] >= DEFAULT_MIN_SIMILARITY).mean() if near16.any() else 0.0
    print(f"  stage two passes {cond:.1%} of the distinct pairs within 16 bits")

    print(
        "\nfalse flags on distinct photos (each scene queried against the library, its own "
        "overlapping parts of its own photo left out), and lookup time:"
    )
    mu, sd = pair_s[pair_d <= 24].mean(), pair_s[pair_d <= 24].std()
    z = (DEFAULT_MIN_SIMILARITY - mu) / sd
    p2 = 0.5 * math.erfc(z / math.sqrt(2))
    p2_bound = 3 / max(1, int((pair_d <= 24).sum()))
    print(
        f"  stage two on distinct pairs within 24 bits: mean {mu:.3f}, sd {sd:.3f}; the "
        f"threshold {DEFAULT_MIN_SIMILARITY} is {z:.1f} sd above: normal tail {p2:.1e} "
        f"(measured 0/{(pair_d <= 24).sum()}, < {p2_bound:.1e} at 95%)"
    )
    t2 = []
    for _kind, q, i in planted[:60]:
        m = nearest(q, i)
        t = time.perf_counter()
        similarity(q.img, scenes[i].img, m)
        t2.append((time.perf_counter() - t) * 1000)
    t3 = []
    for a in range(0, len(scenes), 7):
        b = (a + 3) % len(scenes)
        m = nearest(scenes[a], b)
        t = time.perf_counter()
        similarity(scenes[a].img, scenes[b].img, m)
        t3.append((time.perf_counter() - t) * 1000)
    print(
        f"  stage two time: a copy p50 {np.percentile(t2, 50):.1f} ms, p95 "
        f"{np.percentile(t2, 95):.1f} ms; a distinct photo p50 {np.percentile(t3, 50):.1f} ms "
        "(decoding the two 320 px JPEGs not included)"
    )

    print(
        "\nper library size: each distinct scene queried (overlapping parts of its own photo "
        "left out), and lookup time:"
    )
    real_rate = one.sum() / n_pairs
    for n in sizes:
        if n != sizes[0]:
            index = index_of(n)
        results = [judge(index, s, distinct_only=True) for s in scenes]
        flagged = sum(r[0] for r in results)
        cand = np.mean([r[2] for r in results])
        qs = [rng.choice(planted)[1] for _ in range(args.queries)]
        times = []
        for q in qs:
            t = time.perf_counter()
            index.query_matches(q.h, THRESHOLD, crops=q.crops, forms=q.forms)
            times.append((time.perf_counter() - t) * 1000)
        p50, p95 = np.percentile(times, [50, 95])
        expected = (cand + real_rate * n) * p2  # stage-one candidates x stage-two false pass
        print(
            f"  library {n + len(scenes):>9,}: flagged {flagged}/{len(scenes)} distinct scenes; "
            f"stage-one candidates per query {cand:.2f} (synthetic bulk) + {real_rate * n:.1f} "
            f"(at the real distinct-pair rate {real_rate:.1e}); estimated false flags per "
            f"submission {expected:.1e}; lookup p50 {p50:.1f} ms, p95 {p95:.1f} ms; index "
            f"{index.nbytes / 1e6:.0f} MB"
        )
    print(
        f"  real distinct pairs flagged after both stages: {both.sum()}/{n_pairs}"
        + (f" (< {3 / n_pairs:.1e} at 95%, rule of three)" if not both.sum() else "")
    )

    # Start-up: parsing 1M stored rows (hex hashes and JSON crop lists) into the index.
    from server.evidence import _hash_arrays

    n = sizes[-1]
    rows = []
    gen = random.Random(1)
    for i in range(n):
        hs = [f"{gen.getrandbits(64):016x}" for _ in range(1 + CROPS)]
        rows.append((i + 1, f"{i:064x}", hs[0], "[" + ",".join(f'"{x}"' for x in hs[1:]) + "]"))
    t = time.perf_counter()
    index = NearDuplicateIndex()
    for lo in range(0, n, 50_000):
        index.extend(*_hash_arrays(rows[lo : lo + 50_000]))
    print(
        f"\nstart-up: {n:,} stored rows parsed into the index in "
        f"{time.perf_counter() - t:.1f} s (rows already read; reading them from the database "
        f"is measured by bench_hash_cache.py); index arrays {index.nbytes / 1e6:.0f} MB"
    )


if __name__ == "__main__":
    main()
