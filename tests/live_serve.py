"""`villagecheck serve` as a real subprocess on 127.0.0.1, for the load bench and the slow-client
tests: the same server start, thread bound and socket timeouts a deployment gets.

The database, photo store and secret live in a temporary folder given through VILLAGECHECK_*
variables; the subprocess imports this worktree's code (PYTHONPATH).
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """`with Serve(folder, "--demo") as server:` runs the server until the block ends."""

    def __init__(self, folder: Path, *args: str, settings: dict | None = None, wait=60.0):
        self.folder, self.args, self.wait = Path(folder), args, wait
        self.settings = settings or {}
        self.port = free_port()
        self.database = self.folder / "vc.db"
        self.process = None

    def __enter__(self) -> "Serve":
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "VILLAGECHECK_DATABASE": str(self.database),
            "VILLAGECHECK_MEDIA_ROOT": str(self.folder / "media"),
            "VILLAGECHECK_SECRET_KEY": "live-serve",
            **{f"VILLAGECHECK_{k}": str(v) for k, v in self.settings.items()},
        }
        command = [sys.executable, "-c", "from server.cli import main; main()", "serve"]
        self.log = open(self.folder / "serve.log", "w")  # noqa: SIM115 (closed in __exit__)
        self.process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(self.port), *self.args],
            env=env,
            cwd=self.folder,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {self.output()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"serve did not listen within {self.wait} s: {self.output()}")

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def output(self) -> str:
        self.log.flush()
        return (self.folder / "serve.log").read_text(errors="replace")
