"""Peak memory of a live server while several 49 MP photos arrive at once (on demand, not CI).

For each INGEST_CONCURRENCY given, starts `villagecheck serve` on a copy of the demo county,
pushes one inspection per photo, uploads all photos from parallel threads and reads the server
process's peak resident memory (VmHWM) before and after. PNG by default: it has no reduced
decode, so each photo is decoded at full size (the worst case); --jpeg for camera-like files.

    .venv/bin/python tests/bench/bench_ingest_memory.py [--photos 4] [--limits 4,2,1] [--jpeg]

Measured on the 2-core dev box (2026-11-30), 4 photos at once, peak RSS of the server process
(91 MB before the uploads); the time to upload and process all four was 5-7 s in every case:

    INGEST_CONCURRENCY           4         2         1
    PNG 49 MP                909 MB    502 MB    499 MB
    PNG, MALLOC_MMAP_THRESHOLD_=1048576   914 MB    493 MB    285 MB
    JPEG 49 MP               137 MB    133 MB    151 MB   (draft mode decodes at 1/4 scale)

glibc keeps the ~200 MB a full decode freed in the arena of the thread that used it, so with
threads taking turns one decode's worth can stay held per arena; a fixed mmap threshold (the
environment variable above, for the server process) returns it at once.
"""

import argparse
import io
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import demo_database  # noqa: E402
from test_crash_harness import Phone, Server  # noqa: E402

from server.demo import demo_data  # noqa: E402

SIZE = (8160, 6000)  # 49 MP, under MAX_PHOTO_PIXELS


def big_photo(seed: int, fmt: str) -> bytes:
    rng = random.Random(seed)
    img = Image.new("RGB", (68, 50))
    img.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(68 * 50)])
    buf = io.BytesIO()
    img.resize(SIZE, Image.Resampling.NEAREST).save(
        buf, fmt, **({"quality": 85} if fmt == "JPEG" else {})
    )
    return buf.getvalue()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def run(
    limit: int, photos: list[bytes], folder: Path, template: Path
) -> tuple[float, float, float]:
    folder.mkdir()
    (folder / "vc.db").write_bytes(template.read_bytes())
    server = Server(folder)
    server.env["VILLAGECHECK_INGEST_CONCURRENCY"] = str(limit)
    server.start()
    try:
        phone = Phone(server, random.Random(1))
        toilets = [f["id"] for f in demo_data()["facilities"] if f["kind"] == "toilet"]
        for i, data in enumerate(photos):
            phone.queue(toilets[i % len(toilets)], [data, data])
        before = peak_rss_mb(server.proc.pid)
        phone.push_outbox(per_push=None)  # push only: the uploads below go in parallel
        started = time.monotonic()
        threads = [threading.Thread(target=phone.upload, args=(d,)) for d in sorted(phone.missing)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return before, peak_rss_mb(server.proc.pid), time.monotonic() - started
    finally:
        server.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--limits", default="4,2,1")
    parser.add_argument("--jpeg", action="store_true")
    args = parser.parse_args()
    fmt = "JPEG" if args.jpeg else "PNG"
    photos = [big_photo(n, fmt) for n in range(args.photos)]
    print(
        f"{args.photos} {fmt} photos of {SIZE[0]}x{SIZE[1]}, {len(photos[0]) / 2**20:.1f} MB each"
    )
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.db"
        demo_database(template, now=datetime.now(UTC))
        print("INGEST_CONCURRENCY  peak RSS before  peak RSS after  upload+ingest s")
        for limit in (int(x) for x in args.limits.split(",")):
            before, after, seconds = run(limit, photos, Path(tmp) / f"limit{limit}", template)
            print(f"{limit:>18}  {before:>13.0f} MB  {after:>12.0f} MB  {seconds:>15.1f}")


if __name__ == "__main__":
    main()
