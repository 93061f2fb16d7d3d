"""`villagecheck backup` and `restore`: a backup made while phones push and upload restores into
a fresh instance with every committed submission and every photo, hashes checked."""

import hashlib
import json
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from conftest import Phone, app_on, photo, sha, submission, toilet_answers
from engines import postgres_server
from test_supervisor import jpeg

from media.store import LocalMediaStore
from server.storage import connect


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Load:
    """Phones in threads, each pushing toilet inspections with two new photos and uploading
    them, noting when each push and each upload was answered (held: the last chunk answered,
    whether processed yet or still queued for processing)."""

    def __init__(self, app, toilets, phones=3):
        self.app, self.toilets = app, toilets
        self.stop = threading.Event()
        self.pushed: list[tuple[float, str]] = []  # (answered at, submission id)
        self.uploaded: list[tuple[float, str]] = []  # (complete at, sha256)
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(phones)]

    def run(self, n: int) -> None:
        phone = Phone(self.app.test_client(), "inspector")
        seed = n * 100_000
        try:
            while not self.stop.is_set():
                seed += 2
                photos = [jpeg(seed), jpeg(seed + 1)]
                answers = toilet_answers(
                    photo_outside=[photo(sha(photos[0]))], photo_inside=[photo(sha(photos[1]))]
                )
                item = submission(self.toilets[n], phone.clock(minutes=1), answers=answers)
                response = phone.push([item])
                if response.status_code != 200:
                    self.errors.append(f"push {response.status_code}")
                    continue
                self.pushed.append((time.monotonic(), item["id"]))
                for data in photos:
                    done = self._upload(phone, data)
                    if done:
                        self.uploaded.append((time.monotonic(), sha(data)))
        except Exception as exc:  # noqa: BLE001 (reported by the test)
            self.errors.append(repr(exc))

    def _upload(self, phone, data: bytes) -> bool:
        response = phone.client.patch(
            f"/api/v1/media/{sha(data)}",
            data=data,
            headers={
                **phone.headers,
                "Upload-Offset": "0",
                "Upload-Length": str(len(data)),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        if response.status_code == 503 and response.json["error"]["code"] == "processing":
            return True  # the bytes are held (and queued for processing): a photo to back up
        if response.status_code != 200:
            self.errors.append(f"upload {response.status_code} {response.get_json()}")
            return False
        return bool(response.json["complete"])

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def test_a_backup_under_load_restores_every_committed_submission_and_photo(app, tmp_path, toilets):
    folder = tmp_path / "backup"
    with Load(app, toilets) as load:
        deadline = time.monotonic() + 20
        while len(load.uploaded) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        result = app.test_cli_runner().invoke(args=["backup", str(folder)])
        finished = time.monotonic()
        time.sleep(0.3)  # the load goes on after the backup too
    assert result.exit_code == 0, result.output
    assert not load.errors, load.errors
    committed = {i for t, i in load.pushed if t < started}
    uploaded = {s for t, s in load.uploaded if t < started}
    assert committed and uploaded
    assert len(load.pushed) > len(committed), "the load ran during the backup"

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["engine"] == "sqlite" and manifest["database"]["file"] == "villagecheck.db"
    in_manifest = {p["sha256"] for p in manifest["photos"] if p["path"].startswith("objects/")}
    assert uploaded <= in_manifest
    assert not [p for p in manifest["photos"] if "partials" in p["path"]]
    assert not list(folder.parent.glob(".backup.partial-*"))

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    restored = app_on(fresh)
    result = restored.test_cli_runner().invoke(args=["restore", str(folder)])
    assert result.exit_code == 0, result.output

    store = connect(restored.config["DATABASE_URL"])
    try:
        assert store.scalar("PRAGMA integrity_check") == "ok"
        assert store.migrate() >= 1
        ids = {
            r["id"]
            for r in store.rows("SELECT id FROM submissions WHERE id IN :ids", ids=committed)
        }
        assert ids == committed
        held = {r["sha256"] for r in store.rows("SELECT sha256 FROM media")}
    finally:
        store.close()
    photos = LocalMediaStore(restored.config["MEDIA_PATH"])
    assert held <= in_manifest, "every photo the restored database knows is in the backup"
    for entry in manifest["photos"]:
        assert _file_sha(Path(restored.config["MEDIA_PATH"]) / entry["path"]) == entry["sha256"]
    for digest in held | uploaded:
        with photos.open(digest) as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == digest
    print(f"backup took {finished - started:.2f} s, {len(manifest['photos'])} photo files")


@pytest.fixture
def backup(app, tmp_path, phone, toilets):
    """A backup of the demo county with one inspection and its two photos."""
    photos = [jpeg(1), jpeg(2)]
    answers = toilet_answers(
        photo_outside=[photo(sha(photos[0]))], photo_inside=[photo(sha(photos[1]))]
    )
    assert phone.push([submission(toilets[0], phone.clock(), answers=answers)]).status_code == 200
    from conftest import upload_photo

    for data in photos:
        assert upload_photo(phone.client, phone.headers, data).json["complete"]
    folder = tmp_path / "backup"
    result = app.test_cli_runner().invoke(args=["backup", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


def test_backup_refuses_a_folder_that_is_not_empty(app, tmp_path, backup):
    result = app.test_cli_runner().invoke(args=["backup", str(backup)])
    assert result.exit_code != 0 and "不会覆盖" in result.output


def test_restore_refuses_a_database_with_data_unless_forced(app, backup):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["restore", str(backup)])
    assert result.exit_code != 0 and "--force" in result.output
    result = runner.invoke(args=["restore", "--force", str(backup)])
    assert result.exit_code == 0, result.output


def test_restore_into_an_initialised_empty_database(tmp_path, backup):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    restored = app_on(fresh)
    runner = restored.test_cli_runner()
    assert runner.invoke(args=["init-db"]).exit_code == 0
    result = runner.invoke(args=["restore", str(backup)])
    assert result.exit_code == 0, result.output
    store = connect(restored.config["DATABASE_URL"])
    assert store.scalar("SELECT count(*) FROM users") > 0
    store.close()


def _tampered_restore(tmp_path, backup, damage) -> tuple:
    copy = tmp_path / "tampered"
    shutil.copytree(backup, copy)
    damage(copy, json.loads((copy / "manifest.json").read_text()))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    restored = app_on(fresh)
    result = restored.test_cli_runner().invoke(args=["restore", str(copy)])
    return result, restored


def _flip_a_photo(copy, manifest):
    path = copy / "media" / manifest["photos"][0]["path"]
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))


def _flip_the_database(copy, manifest):
    with open(copy / "villagecheck.db", "r+b") as fh:
        fh.seek(4096 + 100)
        byte = fh.read(1)
        fh.seek(4096 + 100)
        fh.write(bytes([byte[0] ^ 0xFF]))


def _escape_the_store(copy, manifest):
    manifest["photos"][0]["path"] = "objects/../../../escaped"
    (copy / "manifest.json").write_text(json.dumps(manifest))


def _point_the_database_elsewhere(copy, manifest):
    manifest["database"]["file"] = "../../vc.db"
    (copy / "manifest.json").write_text(json.dumps(manifest))


def _a_photo_without_a_hash(copy, manifest):
    manifest["photos"][0]["sha256"] = None
    (copy / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "damage,message",
    [
        (_flip_a_photo, "校验失败"),
        (_flip_the_database, "校验失败"),
        (_escape_the_store, "路径不合法"),
        (_point_the_database_elsewhere, "数据库项不合法"),
        (_a_photo_without_a_hash, "照片项不合法"),
    ],
)
def test_restore_checks_every_hash_and_changes_nothing_when_one_fails(
    tmp_path, backup, damage, message
):
    result, restored = _tampered_restore(tmp_path, backup, damage)
    assert result.exit_code != 0 and message in result.output, result.output
    media = Path(restored.config["MEDIA_PATH"])
    assert not [p for p in media.rglob("*") if p.is_file()]
    store = connect(restored.config["DATABASE_URL"])
    assert "users" not in store.table_names()
    store.close()
    assert not (tmp_path / "escaped").exists()


def test_the_backup_database_is_a_self_contained_file(backup):
    assert not (backup / "villagecheck.db-wal").exists()
    db = sqlite3.connect(backup / "villagecheck.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


@pytest.mark.skipif(not postgres_server(), reason="VILLAGECHECK_TEST_POSTGRES not set")
def test_on_postgresql_backup_asks_for_pg_dump_or_takes_the_photos_only(tmp_path):
    from engines import create_database, drop_database

    url = create_database()
    try:
        app = app_on(tmp_path, database_url=url)
        runner = app.test_cli_runner()
        assert runner.invoke(args=["init-db"]).exit_code == 0
        media = LocalMediaStore(app.config["MEDIA_PATH"])
        data = jpeg(5)
        media.append_chunk(sha(data), 0, data, len(data))
        result = runner.invoke(args=["backup", str(tmp_path / "b1")])
        assert result.exit_code != 0 and "pg_dump" in result.output
        assert not (tmp_path / "b1").exists()
        result = runner.invoke(args=["backup", "--photos-only", str(tmp_path / "b2")])
        assert result.exit_code == 0, result.output
        manifest = json.loads((tmp_path / "b2" / "manifest.json").read_text())
        assert manifest["database"] is None
        assert [p["sha256"] for p in manifest["photos"]] == [sha(data)]
        media.discard(sha(data))
        result = runner.invoke(args=["restore", str(tmp_path / "b2")])
        assert result.exit_code == 0 and "pg_restore" in result.output, result.output
        assert media.has(sha(data))
    finally:
        drop_database(url)
