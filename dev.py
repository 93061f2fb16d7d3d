#!/usr/bin/env python3
"""Run or test villagecheck from a fresh checkout: `python3 dev.py run` / `python3 dev.py test`.

Creates its own virtualenv in .venv, installs the project into it, then runs the server (with
the demo county when the database is empty) or the test suite: the whole suite on SQLite and,
alongside it, the tests of the storage and what sits on it again with the app on PostgreSQL (a
throwaway cluster, when PostgreSQL is installed). Needs only python3.
"""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts import pg_cluster

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
# Run a second time with the app on PostgreSQL: the storage contract, the sync API, the merge
# scenarios, the supervisors' pages and the photo codes.
POSTGRES_TESTS = (
    "test_storage_*.py",
    "test_sync_api.py",
    "test_push_by_set.py",
    "test_conflict_scenario.py",
    "test_supervisor.py",
    "test_stamp_desk.py",
)
# The whole suite in two worker processes, a test file each at a time (so a module's browser and
# live server are started once): most tests wait on a browser, a subprocess or fsync, so two
# workers beside the PostgreSQL half still fit two cores.
SQLITE_DEFAULT = ["-q", "-n", "2", "--dist", "loadfile"]


def sh(*args, **kwargs):
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.run([str(a) for a in args], check=True, **kwargs)


def ensure_venv() -> None:
    """Make .venv; on Debian without python3-venv, install it when we are root."""
    if (BIN / "python").exists():
        return
    try:
        sh(sys.executable, "-m", "venv", VENV)
    except subprocess.CalledProcessError:
        shutil.rmtree(VENV, ignore_errors=True)
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            sys.exit(
                "python3 -m venv failed: install python3-venv (sudo apt-get install "
                "python3-venv) and run this again"
            )
        sh("apt-get", "update", "-q")
        ver = f"{sys.version_info.major}.{sys.version_info.minor}"
        subprocess.run(["apt-get", "install", "-y", "-q", f"python{ver}-venv"], check=False)
        sh("apt-get", "install", "-y", "-q", "python3-venv")
        sh(sys.executable, "-m", "venv", VENV)
    sh(BIN / "python", "-m", "pip", "install", "-q", "--upgrade", "pip")


def install(extra: str = "") -> None:
    sh(BIN / "python", "-m", "pip", "install", "-q", "-e", f"{ROOT}{extra}")


def run() -> None:
    ensure_venv()
    install()
    os.execv(BIN / "villagecheck", [str(BIN / "villagecheck"), "serve", "--demo", *sys.argv[2:]])


def test() -> None:
    """The whole suite on SQLite (with the pytest arguments given) and, at the same time,
    POSTGRES_TESTS on PostgreSQL; fails if either fails. The PostgreSQL half's output is
    printed when it ends. Both halves see the PostgreSQL server, so the storage contract tests
    run on both engines in the first half already."""
    ensure_venv()
    install("[test]")
    with postgres_server() as (server, skipped):
        env = {**os.environ, "VILLAGECHECK_TEST_ENGINE": "sqlite"}
        if server:
            env["VILLAGECHECK_TEST_POSTGRES"] = server
        second = None
        if server:
            files = [
                str(path.relative_to(ROOT))
                for name in POSTGRES_TESTS
                for path in sorted(ROOT.glob(f"tests/{name}"))
            ]
            name = "PostgreSQL, " + ", ".join(POSTGRES_TESTS)
            second = (
                name,
                pytest(
                    ["-q", *files], {**env, "VILLAGECHECK_TEST_ENGINE": "postgresql"}, quiet=True
                ),
            )
        chosen = " ".join(sys.argv[2:]) or "the whole suite"
        try:
            halves = {f"SQLite, {chosen}": pytest(sys.argv[2:] or SQLITE_DEFAULT, env).wait()}
        except BaseException:  # Ctrl-C: stop the other half too
            if second:
                second[1].kill()
            raise
        if second:
            name, process = second
            halves[name] = process.wait()
            process.stdout.seek(0)
            print(f"\n+ output of the PostgreSQL half:\n{process.stdout.read()}", flush=True)
    for name, code in halves.items():
        print(f"{name}: {'passed' if code == 0 else f'FAILED (pytest exit code {code})'}")
    if skipped:
        print(skipped)
    sys.exit(next((code for code in halves.values() if code), 0))


def pytest(args: list[str], env: dict, quiet: bool = False) -> subprocess.Popen:
    """Start pytest; with `quiet` its output goes to a temporary file (`process.stdout`)."""
    print(f"+ pytest {' '.join(args)}  (app on {env['VILLAGECHECK_TEST_ENGINE']})", flush=True)
    out = tempfile.TemporaryFile("w+", encoding="utf-8") if quiet else None
    process = subprocess.Popen(
        [str(BIN / "python"), "-m", "pytest", *args],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT if quiet else None,
    )
    process.stdout = out
    return process


@contextlib.contextmanager
def postgres_server():
    """The PostgreSQL server for the tests and, when there is none, why: the one named by
    VILLAGECHECK_TEST_POSTGRES, else a throwaway cluster started here (removed afterwards)."""
    if os.environ.get("VILLAGECHECK_TEST_POSTGRES"):
        yield os.environ["VILLAGECHECK_TEST_POSTGRES"], None
        return
    reason = pg_cluster.unavailable_reason()
    if reason:
        skipped = (
            f"PostgreSQL SKIPPED: {reason}. The tests ran on SQLite only; their PostgreSQL"
            " cases were skipped (pytest's summary lists them with the reason)."
        )
        print(skipped, flush=True)
        yield None, skipped
        return
    with pg_cluster.Cluster() as cluster:
        print(f"+ throwaway PostgreSQL cluster at {cluster.url}", flush=True)
        yield cluster.url, None


if __name__ == "__main__":
    commands = {"run": run, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit("usage: python3 dev.py run | test [pytest arguments]")
    commands[sys.argv[1]]()
