"""`villagecheck serve` as a real subprocess on 127.0.0.1, for the load bench, the slow-client
tests and the HTTPS browser test: the same gunicorn arbiter and worker processes, thread bound
and socket timeouts a deployment gets.

The database, photo store and secret live in a temporary folder given through VILLAGECHECK_*
variables; the subprocess imports this worktree's code (PYTHONPATH).
"""

import contextlib
import os
import signal
import socket
import ssl
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
        self.tls = "--certfile" in args
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

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
            start_new_session=True,  # its own process group, so __exit__ can stop every worker
        )
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {self.output()}")
            if self.answers():
                return self
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
        if self.process:  # workers a killed or crashed arbiter left behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()

    def answers(self) -> bool:
        """Whether a worker answers a request (the arbiter listens before its workers boot)."""
        try:
            with contextlib.ExitStack() as stack:
                conn = stack.enter_context(socket.create_connection(("127.0.0.1", self.port), 2))
                if self.tls:
                    context = ssl.create_default_context()
                    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
                    conn = stack.enter_context(context.wrap_socket(conn))
                conn.sendall(b"GET /api/v1/auth/me HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                return conn.recv(12).startswith(b"HTTP/1.")
        except OSError:
            return False

    def workers(self) -> list[int]:
        """The pids of the arbiter's worker processes (Linux)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(child) for child in children]

    def output(self) -> str:
        self.log.flush()
        return (self.folder / "serve.log").read_text(errors="replace")
