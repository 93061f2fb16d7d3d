"""Export benchmark (on demand, not in CI): a 100,000-row XLSX export's wait and memory.

Builds the scaled county of bench_dashboard.py with 100,000 toilet inspections, then, in a fresh
process per format, downloads /desk/exports/forms/toilet.xlsx (and .csv) as the county admin
(a desk session), reading the streamed body chunk by chunk, and reports the time to the first
byte, the total time, the size, and the process's peak RSS (ru_maxrss) and RSS before the export.
Targets: first byte under 2 s, peak RSS under 150 MB.

    .venv/bin/python tests/bench/bench_export.py [--rows 100000] [--db PATH]
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))


def measure(db: str, fmt: str) -> dict:
    """Run in a child process: one export, streamed to nowhere."""
    import uuid

    from bench_dashboard import NOW

    from server import create_app
    from server.auth import hash_token
    from server.storage import connect

    folder = tempfile.mkdtemp(prefix="vc-bench-export-")
    app = create_app(
        {
            "TESTING": True,
            "DATABASE": db,
            "MEDIA_ROOT": folder + "/media",
            "SECRET_KEY": "bench",
            "CLOCK": lambda: NOW,
        }
    )
    store = connect(db)
    client = app.test_client()
    session_id = f"bench-{uuid.uuid4()}"  # a desk session of the county admin
    store.create_desk_session(
        hash_token(session_id), store.user(username="admin")["id"], at=NOW.isoformat()
    )
    with client.session_transaction() as session:
        session["sid"] = session_id
    store.close()
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    response = client.get(f"/desk/exports/forms/toilet.{fmt}")
    assert response.status_code == 200, response.status_code
    size, first = 0, None
    for chunk in response.response:  # the streamed body, never joined
        if chunk and first is None:
            first = time.perf_counter() - start
        size += len(chunk)
    response.close()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"format": fmt, "seconds": seconds, "first_byte": first, "bytes": size,
            "rss_before_kb": before, "peak_rss_kb": peak,
            "final_rss_kb": _status_kb("VmRSS")}  # fmt: skip


def _status_kb(key: str) -> int:
    """A figure from /proc/self/status (Linux), in kB; ru_maxrss where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--child", nargs=2, metavar=("DB", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return
    from bench_dashboard import build

    path = args.db or Path(tempfile.mkdtemp(prefix="vc-bench-export-")) / "county.db"
    if not path.exists():
        start = time.perf_counter()
        counts = build(path, submissions=args.rows)
        print(f"built {json.dumps(counts)} in {time.perf_counter() - start:.1f} s -> {path}")
    for fmt in ("xlsx", "csv"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path), fmt],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{fmt}: first byte after {r['first_byte']:.2f} s, "
            f"{r['bytes'] / 1e6:.1f} MB in {r['seconds']:.1f} s, "
            f"peak RSS {r['peak_rss_kb'] / 1024:.0f} MB "
            f"(RSS before the export {r['rss_before_kb'] / 1024:.0f} MB, "
            f"after {r['final_rss_kb'] / 1024:.0f} MB)"
        )


if __name__ == "__main__":
    main()
