"""Benchmark: ingest pipeline vs bare JPEG draft decode on 12 MP photos (run on demand).

    .venv/bin/python tests/bench/bench_images.py [--rounds 3]

Makes 4000x3000 q90 JPEGs from the corpus photos in a temp dir (EXIF of the original kept, so the
EXIF read does real work), then times per photo:
  (a) bare: Image.open + draft("RGB", <same box the pipeline asks for>) + load()
  (b) pipeline: media.images.process_image (1280 + 320 JPEGs, pHash + crop hashes) + EXIF facts
Target: (b) <= 1.5 x (a).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from media.exif import read_facts  # noqa: E402
from media.images import DEFAULT_SIZES, draft_box, process_image  # noqa: E402


def corpus_dir() -> Path:
    env = os.environ.get("VILLAGECHECK_CORPUS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "corpus" / "exif-samples"


def make_12mp(src: Path, dst: Path) -> None:
    with Image.open(src) as im:
        exif = im.info.get("exif", b"")
        im = ImageOps.exif_transpose(im).convert("RGB")
        w, h = im.size
        size = (4000, 3000) if w >= h else (3000, 4000)
        im.resize(size, Image.Resampling.BICUBIC).save(dst, "JPEG", quality=90, exif=exif)


def bare(path: Path) -> None:
    with Image.open(path) as im:
        im.draft("RGB", draft_box(im.size, max(DEFAULT_SIZES)))
        im.load()


def pipeline(path: Path) -> None:
    data = path.read_bytes()
    read_facts(data, default_offset="+08:00")
    process_image(data)


def timeit(fn, paths: list[Path], rounds: int) -> list[float]:
    per_photo = []
    for _ in range(rounds):
        for p in paths:
            t = time.perf_counter()
            fn(p)
            per_photo.append(time.perf_counter() - t)
    return per_photo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    srcs = sorted(p for p in corpus_dir().glob("*.jpg") if not p.name.startswith("67-0"))
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for s in srcs:
            d = Path(tmp) / s.name
            make_12mp(s, d)
            paths.append(d)
        sizes = [os.path.getsize(p) for p in paths]
        print(f"{len(paths)} photos of 12 MP, {statistics.mean(sizes) / 1e6:.1f} MB average")
        timeit(bare, paths, 1)  # warm-up (page cache, imports)
        timeit(pipeline, paths, 1)
        a = timeit(bare, paths, args.rounds)
        b = timeit(pipeline, paths, args.rounds)
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"(a) bare draft decode : median {ma * 1000:6.1f} ms  -> {1 / ma:5.1f} photos/s")
    print(f"(b) pipeline          : median {mb * 1000:6.1f} ms  -> {1 / mb:5.1f} photos/s")
    print(f"ratio (b)/(a)         : {mb / ma:.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
