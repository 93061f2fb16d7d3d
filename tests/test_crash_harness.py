"""Crash harness: SIGKILL a live server at random moments of push and photo ingest.

A phone-like client keeps an outbox of inspections with photos and syncs over real HTTP
(push, then resumable uploads in small chunks, asking the server where it is first, as the
PWA does). Each round queues new inspections, starts a sync, and kills the `villagecheck serve`
subprocess after a random delay; the server is restarted on the same files and the client
retries until its outbox is empty. Then integrity is checked on the database and the photo
store: SQLite's integrity check; every item the server acknowledged stored exactly once;
every inspection whose photos were all sent `complete` with its flags judged; every media row
with its display versions; no photo held but not processed; nothing left in the outbox.

Fixed seed; VILLAGECHECK_CRASH_ROUNDS (default 10, to keep the default run in its budget; set
it higher for a longer hunt) and VILLAGECHECK_CRASH_SEED change them.
Where each kill landed is printed (pytest -s) and kept in the failure message.
"""

import contextlib
import http.client
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import CORPUS, PASSWORDS, YUNYU, photo, sha, submission, toilet_answers
from PIL import Image

from server.demo import demo_data
from server.storage import connect
from sync.clock import Clock, encode

ROUNDS = int(os.environ.get("VILLAGECHECK_CRASH_ROUNDS", "10"))
SEED = int(os.environ.get("VILLAGECHECK_CRASH_SEED", "20261130"))
ITEMS_PER_ROUND = 2
CHUNK = 128 * 1024
KILL_WITHIN_S = 0.6  # kills fall uniformly in this many seconds from the start of a sync
PUSH_WITHIN_S = 0.05  # or, for a third of them, in this first part (the push)
SIZES = (1280, 320)
CORPUS_PHOTOS = ["iphone_hdr_NO.jpg", "HMD_Nokia_8.3_5G.jpg", "canon_hdr_NO.jpg"]


class ServerGone(Exception):
    """No answer: the server is dead or died during the request."""


class Server:
    """`villagecheck serve` on a free loopback port, on one instance's files."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.proc = None
        self.log = folder / "server.log"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), ROOT])),
            "VILLAGECHECK_DATABASE": str(folder / "vc.db"),
            "VILLAGECHECK_MEDIA_ROOT": str(folder / "media"),
            "VILLAGECHECK_SECRET_KEY": "crash-harness",
        }

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from server.cli import main; main()", "serve"]
                + ["--port", str(self.port)],
                env=self.env,
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: gunicorn's arbiter and workers
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.tail()
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.05)
        raise AssertionError("server did not start\n" + self.tail())

    def kill(self) -> None:
        """A crash: every process of the server dies at once (as at a power cut, or when
        systemd kills the service's control group)."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc:
            self.proc.wait()
            # The workers die a moment after the arbiter, and until then hold its listening
            # socket: wait until it is closed, or the restart's port check would reach them.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                except OSError:
                    break
                time.sleep(0.02)

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


ROOT = str(Path(__file__).resolve().parents[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Phone:
    """The PWA's sync, reduced to what matters here: an outbox, then the photos it lacks."""

    def __init__(self, server: Server, rng: random.Random):
        self.server, self.rng = server, rng
        self.device_id = f"crash-{uuid.uuid4().hex[:8]}"
        self.counter = 0
        self.outbox: dict[str, dict] = {}
        self.photos: dict[str, bytes] = {}
        self.missing: set[str] = set()
        self.acked: set[str] = set()
        self.last_request = None
        body = {
            "username": "inspector",
            "password": PASSWORDS["inspector"],
            "device_id": self.device_id,
        }
        self.token = self.call("POST", "/api/v1/auth/login", json_body=body)[1]["token"]

    def call(self, method, path, *, json_body=None, data=None, headers=None, step=None):
        self.last_request = step or f"{method} {path.split('/')[3]}"
        body = json.dumps(json_body).encode() if json_body is not None else data
        headers = dict(headers or {})
        if json_body is not None:
            headers["Content-Type"] = "application/json"
        if getattr(self, "token", None):
            headers["Authorization"] = f"Bearer {self.token}"
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ServerGone(str(exc)) from None
        finally:
            conn.close()
        return response.status, json.loads(raw) if raw else None

    def queue(self, facility_id: str, photos: list[bytes]) -> None:
        for data in photos:
            self.photos[sha(data)] = data
        answers = toilet_answers(
            photo_outside=[photo(sha(photos[0]))], photo_inside=[photo(sha(photos[1]))]
        )
        self.counter += 1
        wall = int(time.time() * 1000)
        item = submission(
            facility_id,
            encode(Clock(wall, self.counter, self.device_id)),
            answers=answers,
            observed_at=datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
        )
        self.outbox[item["id"]] = item

    def sync(self) -> None:
        """Push everything queued, then upload every photo the server still lacks."""
        self.push_outbox()
        for digest in sorted(self.missing):
            self.upload(digest)
            self.missing.discard(digest)

    def push_outbox(self, per_push: int | None = 2) -> None:
        """Push the outbox, `per_push` items a request (None: all in one), noting what the
        server acknowledged and the photos it still lacks."""
        while self.outbox:
            batch = list(self.outbox.values())[:per_push]
            status, body = self.call(
                "POST",
                "/api/v1/sync/push",
                json_body={
                    "device_id": self.device_id,
                    "device_time_ms": int(time.time() * 1000),
                    "items": batch,
                },
                step="push",
            )
            assert status == 200, (status, body)
            for result in body["results"]:
                assert result["status"] in ("accepted", "waiting_for_photos", "duplicate"), result
                self.acked.add(result["id"])
                self.missing |= set(result.get("missing", []))
                del self.outbox[result["id"]]

    def upload(self, digest: str) -> None:
        data = self.photos[digest]
        path = f"/api/v1/media/{digest}"
        for _ in range(200):
            status, body = self.call("GET", path, step="status")
            if status == 503:  # held, processing failed for now: ask again
                time.sleep(0.1)
                continue
            assert status == 200, (status, body)
            if body["complete"]:
                return
            offset = body["offset"]
            while True:
                # The PWA has no chunk to send from the very end (chunkPlan is empty): it stops.
                assert offset < len(data), f"{digest}: told to resume at the end, not complete"
                end = min(len(data), offset + CHUNK)
                status, body = self.call(
                    "PATCH",
                    path,
                    data=data[offset:end],
                    headers={
                        "Upload-Offset": str(offset),
                        "Upload-Length": str(len(data)),
                        "Content-Type": "application/offset+octet-stream",
                    },
                    step="last chunk (ingest)" if end == len(data) else "chunk",
                )
                if status == 409:
                    offset = body["error"]["offset"]
                    continue
                if status != 200:
                    break  # 422/503: ask where the server is and go on from there
                if body["complete"]:
                    return
                offset = body["offset"]
        raise AssertionError(f"photo {digest} never completed")


class Photos:
    """Distinct real JPEGs: the corpus camera photos once, then blocky 6 MP noise."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.corpus = [(CORPUS / name).read_bytes() for name in CORPUS_PHOTOS]

    def next(self) -> bytes:
        if self.corpus:
            return self.corpus.pop()
        img = Image.new("RGB", (32, 24))
        img.putdata([tuple(self.rng.randrange(256) for _ in range(3)) for _ in range(32 * 24)])
        buf = io.BytesIO()
        img.resize((2880, 2160), Image.Resampling.NEAREST).save(buf, "JPEG", quality=85)
        return buf.getvalue()


def held_state(folder: Path) -> dict:
    """What a kill left behind, read from the files while the server is dead."""
    store = connect(folder / "vc.db")
    try:
        rows = set(store.q("SELECT sha256 FROM media").scalars())
        received_all_in = store.scalar(
            "SELECT count(*) FROM submissions s WHERE s.state = 'received' AND NOT EXISTS"
            " (SELECT 1 FROM submission_media sm LEFT JOIN media m ON m.sha256 = sm.sha256"
            "  WHERE sm.submission_id = s.id AND m.sha256 IS NULL)"
            " AND EXISTS (SELECT 1 FROM submission_media sm WHERE sm.submission_id = s.id)"
        )
    finally:
        store.close()
    media = folder / "media"
    held = {p.name for p in (media / "objects").glob("*/*/*")} - rows
    derived = {p.name for p in (media / "derived").glob("*/*") if any(p.iterdir())}
    return {
        "held_unprocessed": len(held),
        "versions_without_row": len(held & derived),
        "partials": len(list((media / "partials").glob("*.part"))),
        "received_but_all_in": received_all_in,
    }


def integrity_failures(folder: Path, phone: Phone) -> list[str]:
    """Everything wrong with the stored state after the phone's sync finished."""
    failures = []
    store = connect(folder / "vc.db")
    try:
        check = store.scalar("PRAGMA integrity_check")  # the harness runs on a SQLite file
        if check != "ok":
            failures.append(f"integrity_check: {check}")
        if phone.outbox or phone.missing:
            failures.append(f"outbox not empty: {len(phone.outbox)} items, {len(phone.missing)}")
        for item_id in sorted(phone.acked):
            n = store.scalar("SELECT count(*) FROM submissions WHERE id = :id", id=item_id)
            if n != 1:
                failures.append(f"submission {item_id} stored {n} times")
        held_rows = set(store.q("SELECT sha256 FROM media").scalars())
        for sid, state, risk in store.q(
            "SELECT id, state, risk_score FROM submissions WHERE device_id = :device_id",
            device_id=phone.device_id,
        ).all():
            if sid not in phone.acked:
                failures.append(f"submission {sid} stored but never acknowledged")
            photos = set(store.submission_photo_hashes(sid))
            if photos - held_rows:
                failures.append(f"submission {sid}: photos without media row {photos - held_rows}")
            elif state != "complete" or risk is None:
                failures.append(f"submission {sid} all photos in but {state}, risk {risk}")
    finally:
        store.close()
    media = folder / "media"
    for digest in sorted(held_rows):
        for size in SIZES:
            p = media / "derived" / digest[:2] / digest / f"{size}.jpg"
            if not p.is_file() or p.read_bytes()[:3] != b"\xff\xd8\xff":
                failures.append(f"media {digest[:12]} lacks display version {size}")
    held = {p.name for p in (media / "objects").glob("*/*/*")}
    if held - held_rows:
        failures.append(f"held but not processed: {sorted(held - held_rows)}")
    if held_rows - held:
        failures.append(f"media rows without the photo: {sorted(held_rows - held)}")
    return failures


@pytest.fixture
def instance(tmp_path, demo_db):
    shutil.copy(demo_db, tmp_path / "vc.db")
    return tmp_path


def test_random_kills_during_push_and_ingest_lose_duplicate_and_strand_nothing(instance):
    rng = random.Random(SEED)
    toilets = [
        f["id"]
        for f in demo_data()["facilities"]
        if f["village"] == YUNYU and f["kind"] == "toilet"
    ]
    photos = Photos(rng)
    server = Server(instance)
    server.start()
    landed: dict[str, int] = {}
    after_kill = {"held_unprocessed": 0, "versions_without_row": 0, "partials": 0}
    failures = []
    timing = {"photos": 0.0, "restart": 0.0, "retry": 0.0}
    try:
        phone = Phone(server, rng)
        for round_no in range(ROUNDS):
            made = time.monotonic()
            for _ in range(ITEMS_PER_ROUND):
                shared = rng.random() < 0.2 and phone.photos
                inside = rng.choice(sorted(phone.photos)) if shared else None
                pair = [photos.next(), phone.photos[inside] if inside else photos.next()]
                phone.queue(rng.choice(toilets), pair)
            timing["photos"] += time.monotonic() - made
            early = rng.random() < 0.3  # aim a third of the kills at the push itself
            delay = rng.uniform(0, PUSH_WITHIN_S if early else KILL_WITHIN_S)
            killer = threading.Timer(delay, server.kill)
            killer.start()
            try:
                phone.sync()
                where = "after the sync (idle)"
            except ServerGone:
                where = phone.last_request
            killer.join()
            landed[where] = landed.get(where, 0) + 1
            state = held_state(instance)
            for key in after_kill:
                after_kill[key] += state[key]
            if state["received_but_all_in"]:
                failures.append(f"round {round_no}: a row was saved without its submission")
            restart = time.monotonic()
            server.start()
            timing["restart"] += time.monotonic() - restart
            retry = time.monotonic()
            phone.sync()
            timing["retry"] += time.monotonic() - retry
            failures += [f"round {round_no}: {f}" for f in integrity_failures(instance, phone)]
    finally:
        server.kill()
    summary = (
        f"{ROUNDS} rounds, seed {SEED}; kills landed during: {landed}; "
        f"left behind at the kills: {after_kill}; seconds: "
        + ", ".join(f"{k} {v:.1f}" for k, v in timing.items())
    )
    print(summary)
    assert not failures, summary + "\n" + "\n".join(failures[:30]) + "\n" + server.tail()
