#!/usr/bin/env python3
"""A throwaway PostgreSQL cluster for the tests: initdb into a temporary folder, serve it on a
free loopback port with trust authentication, and stop and remove it afterwards.

    with Cluster() as cluster:          # cluster.url: postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
        ...
        cluster.stop("immediate")       # the server goes away (the folder stays) ...
        cluster.start()                 # ... and comes back on the same port

    python3 scripts/pg_cluster.py                 # print the URL, serve until Ctrl-C
    python3 scripts/pg_cluster.py COMMAND ...     # run COMMAND with VILLAGECHECK_TEST_POSTGRES set

The binaries are Debian's (/usr/lib/postgresql/VERSION/bin, the newest version), else those on
PATH. initdb refuses to run as root, so as root the cluster runs as the `postgres` user (the
Debian package creates it) through `runuser`. Made for tests only: fsync is off.

Standard library only: `python3 dev.py test` runs it with the system Python, before the
virtualenv exists.
"""

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

SERVER_USER = "postgres"
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",  # a test cluster: losing it to a power cut costs nothing
    "full_page_writes": "off",
    "max_connections": "200",  # test workers, pools and the concurrency tests
}


def bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: Debian's newest version, else PATH's."""
    versions = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            versions.append(([int(n) for n in re.findall(r"\d+", path.parent.name)], path))
    if versions:
        return max(versions)[1]
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


def unavailable_reason() -> str | None:
    """Why no throwaway cluster can be started here, or None when one can."""
    if bin_dir() is None:
        return (
            "PostgreSQL is not installed (no initdb/pg_ctl in /usr/lib/postgresql/*/bin or on"
            " PATH; on Debian: apt-get install postgresql)"
        )
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            return "running as root, and runuser (util-linux) is missing to run PostgreSQL"
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root, and there is no {SERVER_USER!r} user to run PostgreSQL as"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """One throwaway cluster in a temporary folder; `start()` returns its URL."""

    def __init__(self):
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        self.bin = bin_dir()
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.folder: Path | None = None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _run(self, program: str, *args) -> subprocess.CompletedProcess:
        """Run a PostgreSQL program as the user that owns the cluster; fail with its output."""
        command = [str(self.bin / program), *map(str, args)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                + self.log_tail()
            )
        return done

    def log_tail(self, lines: int = 20) -> str:
        log = self.folder / "server.log"
        if not log.exists():
            return ""
        return "\nserver log:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def _create(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="villagecheck-pg-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        self._run(
            "initdb",
            "-D",
            self.data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        settings = {
            **SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": f"'{self.folder}'",
        }
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# villagecheck test cluster\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def start(self) -> str:
        """Start the server (creating the cluster the first time); returns its URL."""
        if self.folder is None:
            self._create()
        self._run("pg_ctl", "start", "-D", self.data, "-l", self.folder / "server.log", "-w")
        return self.url

    def stop(self, mode: str = "fast") -> None:
        """Stop the server, keeping its files. `immediate` kills it as a crash would:
        connections drop mid-transaction and the next start recovers from the WAL."""
        self._run("pg_ctl", "stop", "-D", self.data, "-m", mode, "-w")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        """Stop the server if it runs and delete the cluster."""
        if self.folder is None:
            return
        if self.running():
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def __enter__(self) -> "Cluster":
        try:
            self.start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        self.remove()


def main(argv: list[str]) -> int:
    reason = unavailable_reason()
    if reason:
        print(f"no throwaway PostgreSQL cluster: {reason}", file=sys.stderr)
        return 2
    # Ctrl-C and kill both end in `with`'s cleanup, so no cluster is left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with Cluster() as cluster:
        if argv:
            env = {**os.environ, "VILLAGECHECK_TEST_POSTGRES": cluster.url}
            return subprocess.run(argv, env=env).returncode
        print(cluster.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
