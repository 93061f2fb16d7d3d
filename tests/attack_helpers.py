"""Shared by the attack suite (OpenAPI check, fuzzer, scope matrix): the spec and the URL map."""

import collections
import hashlib
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from functools import cache
from pathlib import Path

import requests
import yaml
from conftest import PASSWORDS

from server.storage import connect
from server.storage.tables import metadata

ROOT = Path(__file__).resolve().parents[1]
SPEC_PATH = ROOT / "docs" / "openapi.yaml"
IGNORED_METHODS = {"HEAD", "OPTIONS"}
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


@cache
def load_spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


def spec_operations() -> set[tuple[str, str]]:
    """(METHOD, path) of every operation in docs/openapi.yaml."""
    return {
        (method.upper(), path) for path, item in load_spec()["paths"].items() for method in item
    }


def openapi_path(rule: str) -> str:
    """A Flask rule in OpenAPI's spelling: `<int:token_id>` becomes `{token_id}`."""
    return _CONVERTER.sub(r"{\1}", rule)


def app_rules(app) -> set[tuple[str, str]]:
    """(METHOD, Flask rule) of every route the app serves."""
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - IGNORED_METHODS
    }


def api_rules(app) -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path) of every /api/ route."""
    return {
        (method, openapi_path(rule)) for method, rule in app_rules(app) if rule.startswith("/api/")
    }


# -- a live `villagecheck serve` subprocess ------------------------------------------------------

# What a request may write that users care about; tokens, devices and the audit log are left
# out because every authenticated request touches them.
DATA_TABLES = (
    "facilities",
    "tasks",
    "submissions",
    "submission_media",
    "reviews",
    "flags",
    "observations",
    "media",
    "conflicts",
    "changes",
)


def data_fingerprint(database, media_path, tables=DATA_TABLES) -> str:
    """A digest of every row of the data tables, in key order, and of the photo store's files
    (`database`: a SQLite file or a database URL)."""
    digest = hashlib.sha256()
    store = connect(database)
    try:
        with store.reading():
            for table in tables:
                key = ", ".join(c.name for c in metadata.tables[table].primary_key) or "seq"
                for row in store.q(f"SELECT * FROM {table} ORDER BY {key}"):  # noqa: S608
                    digest.update(repr(tuple(row)).encode())
    finally:
        store.close()
    for path in sorted(Path(media_path).rglob("*")):
        if path.is_file():
            digest.update(f"{path.relative_to(media_path)}:{path.stat().st_size}".encode())
    return digest.hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`villagecheck serve --demo` on a free port, with its own database, photos and log."""

    def __init__(self, folder: Path, *, timeout: float = 60):
        self.folder = folder
        self.db_path = folder / "vc.db"
        self.media_path = folder / "media"
        self.log_path = folder / "server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._tokens: dict[str, str] = {}
        self._log_offset = 0
        self.errors: list[dict] = []
        self.statuses: collections.Counter = collections.Counter()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "VILLAGECHECK_DATABASE": str(self.db_path),
            "VILLAGECHECK_MEDIA_ROOT": str(self.media_path),
            "VILLAGECHECK_SECRET_KEY": "fuzz-" + uuid.uuid4().hex,
        }
        command = [sys.executable, "-c", "from server.cli import main; main()", "serve"]
        command += ["--demo", "--no-scheduler", "--port", str(self.port)]
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, env=env, cwd=folder, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()}")
            try:
                requests.get(self.url + "/api/v1/auth/me", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def login(self, username: str) -> str:
        response = requests.post(
            self.url + "/api/v1/auth/login",
            json={"username": username, "password": PASSWORDS[username]},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["token"]

    def token(self, username: str) -> str:
        """A token of this user kept for the whole run."""
        if username not in self._tokens:
            self._tokens[username] = self.login(username)
        return self._tokens[username]

    def push(self, username: str, items: list[dict]) -> dict:
        response = requests.post(
            self.url + "/api/v1/sync/push",
            json={"device_id": f"seed-{username}", "items": items},
            headers={"Authorization": f"Bearer {self.token(username)}"},
            timeout=60,
        )
        response.raise_for_status()
        return response.json()

    def fingerprint(self) -> str:
        return data_fingerprint(self.db_path, self.media_path)

    def last_traceback(self) -> str:
        """The last traceback the server logged since the previous call."""
        self._log.flush()
        with self.log_path.open("rb") as f:
            f.seek(self._log_offset)
            text = f.read().decode("utf-8", "replace")
            self._log_offset = f.tell()
        start = text.rfind("Traceback (most recent call last)")
        return text[start:] if start >= 0 else ""

    def record_5xx(self, label: str, status: int, stored: bool) -> dict:
        """Note a server error with its cause (the traceback's last line) for the report."""
        trace = self.last_traceback()
        lines = trace.splitlines()
        cause = next((line for line in lines[1:] if line and not line[0].isspace()), "")
        where = [line.strip() for line in lines if line.strip().startswith('File "')]
        entry = {
            "operation": label,
            "status": status,
            "stored": stored,
            "cause": cause,
            "where": where[-1] if where else "",
            "traceback": trace,
        }
        self.errors.append(entry)
        return entry
