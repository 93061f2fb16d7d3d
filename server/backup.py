"""`villagecheck backup DIR` and `villagecheck restore DIR`: the database and the photos.

A backup folder holds::

    manifest.json       what is in it: engine, schema version, and a SHA-256 for every file
    villagecheck.db     the SQLite database (absent for PostgreSQL: use pg_dump, docs/DEPLOY.md)
    media/objects/...   the photos' original bytes, laid out as in the photo store
    media/derived/...   their display versions

SQLite is copied with its online backup API while the server keeps serving: one consistent
snapshot (a reader in WAL mode blocks no writer). The photos are copied after the database, so
every photo the snapshot refers to that was complete then is copied too (photos are written
before the rows that name them, and never changed once complete); unfinished uploads are left
out. A backup is made in a hidden sibling folder and renamed to DIR when complete, so DIR is
either a whole backup or absent.

On PostgreSQL `backup` refuses unless `--photos-only`: a backup that silently lacked the
database would be worse than none. The database is backed up with pg_dump (docs/DEPLOY.md).

`restore` checks every file against the manifest before using it, refuses to overwrite a
database that holds villages, users or submissions unless `--force`, copies the photos into the
store (each through a temp file, hash checked), then the database through SQLite's backup API
(the target's WAL stays consistent), then checks PRAGMA integrity_check and brings the schema
up to date. Stop the server before restoring.
"""

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from media.store import is_sha256

from .context import media_store, storage

FORMAT = 1
MANIFEST = "manifest.json"
DATABASE_FILE = "villagecheck.db"
PHOTO_FOLDERS = ("objects", "derived")
BLOCK = 1024 * 1024


class BackupError(Exception):
    """The backup or restore cannot go on; the message says why (Chinese, for the operator)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _copy_checked(source: Path, target: Path, expected: str | None = None) -> str:
    """Copy through a temp file in the target's folder, fsync, rename; returns the SHA-256 and
    refuses (removing the temp file) when it is not `expected`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".restore-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            while block := src.read(BLOCK):
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if expected is not None and actual != expected:
            raise BackupError(f"文件校验失败 (SHA-256 不符): {source}")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return actual


def _photo_root():
    root = getattr(media_store(), "root", None)
    if root is None:
        raise BackupError(
            "照片存储不是本地文件夹 (对象存储)，请用存储自带的工具备份照片 (见 docs/DEPLOY.md)"
        )
    return Path(root)


def _photo_files(root: Path):
    """Complete photo files under the store: originals and display versions, no temp files."""
    for folder in PHOTO_FOLDERS:
        base = root / folder
        for dirpath, _dirs, files in os.walk(base):
            for name in sorted(files):
                if not name.startswith("."):  # temp files of writes in progress
                    yield (Path(dirpath) / name).relative_to(root)


def _snapshot_sqlite(store, target: Path) -> None:
    """One consistent copy of the live database (SQLite's online backup API)."""
    source = store.conn.connection.dbapi_connection
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)  # all pages in one step: a single read snapshot
        copy.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
        check = copy.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        copy.close()
    if check != "ok":
        raise BackupError(f"备份的数据库未通过完整性检查: {check}")


def make_backup(folder: Path, *, photos_only: bool = False) -> dict:
    """Write a backup into `folder` (which must not exist or be empty); returns the manifest."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BackupError(f"{folder} 已存在且不是空文件夹，不会覆盖")
    store = storage()
    engine = store.dialect.name
    root = _photo_root()
    if engine != "sqlite" and not photos_only:
        raise BackupError(
            "数据库是 PostgreSQL: 请用 pg_dump 备份数据库 (见 docs/DEPLOY.md)，"
            "再用 `villagecheck backup --photos-only DIR` 备份照片"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.partial-"))
    try:
        manifest = {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "engine": engine,
            "schema_version": store.schema_version(),
            "database": None,
            "photos": [],
        }
        if not photos_only:
            _snapshot_sqlite(store, work / DATABASE_FILE)
            manifest["database"] = {
                "file": DATABASE_FILE,
                "sha256": _sha256(work / DATABASE_FILE),
            }
        store.rollback()
        for relative in _photo_files(root):
            try:
                digest = _copy_checked(root / relative, work / "media" / relative)
            except FileNotFoundError:  # removed since it was listed (a photo that failed checks)
                continue
            if relative.parts[0] == "objects" and digest != relative.name:
                raise BackupError(f"照片存储中的文件与其名称 (SHA-256) 不符: {relative}")
            manifest["photos"].append({"path": relative.as_posix(), "sha256": digest})
        (work / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
        if folder.exists():
            folder.rmdir()
        os.replace(work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def _read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{folder} 不是 villagecheck 备份 (没有可读的 {MANIFEST})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("不认识的备份格式")
    database, photos = manifest.get("database"), manifest.get("photos")
    if database is not None and (
        not isinstance(database, dict)
        or database.get("file") != DATABASE_FILE
        or not is_sha256(database.get("sha256"))
    ):
        raise BackupError("备份清单中的数据库项不合法")
    if not isinstance(photos, list) or not all(
        isinstance(p, dict) and isinstance(p.get("path"), str) and is_sha256(p.get("sha256"))
        for p in photos
    ):
        raise BackupError("备份清单中的照片项不合法")
    return manifest


def _safe_relative(path: str) -> Path:
    """A manifest path, only if it stays inside the photo folders (a manifest is input)."""
    relative = Path(path)
    if (
        relative.is_absolute()
        or ".." in relative.parts
        or not relative.parts
        or relative.parts[0] not in PHOTO_FOLDERS
    ):
        raise BackupError(f"清单中的路径不合法: {path!r}")
    return relative


def holds_data(store) -> bool:
    """Whether a database holds anything a restore would destroy (a schema with only the
    built-in forms, as `init-db` leaves it, does not count)."""
    tables = store.table_names()
    return any(
        table in tables and store.scalar(f"SELECT count(*) FROM {table}")  # noqa: S608 (fixed names)
        for table in ("villages", "users", "submissions")
    )


def restore_backup(folder: Path, *, force: bool = False) -> dict:
    """Restore `folder` into this instance's database and photo store; returns the manifest."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    database = manifest.get("database")
    target_url = current_app.config["DATABASE_URL"]
    if database:
        if not target_url.startswith("sqlite"):
            raise BackupError("备份中是 SQLite 数据库，本实例用 PostgreSQL: 不能直接恢复")
        if _sha256(folder / database["file"]) != database["sha256"]:
            raise BackupError("备份中的数据库文件校验失败 (SHA-256 不符)，未恢复任何内容")
        store = storage()
        if holds_data(store) and not force:
            raise BackupError("目标数据库已有数据，未恢复。确认要覆盖请加 --force")
        store.rollback()
    photos = [(_safe_relative(p["path"]), p["sha256"]) for p in manifest["photos"]]
    for relative, expected in photos:  # check every photo before changing anything
        if relative.parts[0] == "objects" and relative.name != expected:
            raise BackupError(f"清单中的照片名称与 SHA-256 不符: {relative}")
        if _sha256(folder / "media" / relative) != expected:
            raise BackupError(f"备份中的照片校验失败 (SHA-256 不符): {relative}，未恢复任何内容")
    root = _photo_root()
    for relative, expected in photos:
        target = root / relative
        if target.is_file() and relative.parts[0] == "objects":
            continue  # content-addressed: the same name holds the same bytes
        _copy_checked(folder / "media" / relative, target, expected)
    if database:
        _restore_sqlite(folder / database["file"], storage())
    return manifest


def _restore_sqlite(source_file: Path, store) -> None:
    source = sqlite3.connect(f"file:{source_file}?mode=ro", uri=True)
    try:
        source.backup(store.conn.connection.dbapi_connection)
    finally:
        source.close()
    check = store.scalar("PRAGMA integrity_check")
    if check != "ok":
        raise BackupError(f"恢复后的数据库未通过完整性检查: {check}")
    store.migrate()


# -- commands (registered in cli.py) -------------------------------------------------------------


@click.command("backup")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--photos-only",
    is_flag=True,
    help="PostgreSQL: only the photos (back the database up with pg_dump)",
)
@with_appcontext
def backup_command(folder: Path, photos_only: bool):
    """Back up the database (SQLite, while serving) and the photos into a new folder."""
    try:
        manifest = make_backup(folder, photos_only=photos_only)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    what = "照片" if manifest["database"] is None else "数据库和照片"
    click.echo(f"已备份{what}到 {folder}: 照片文件 {len(manifest['photos'])} 个")


@click.command("restore")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="overwrite a database that already holds data")
@with_appcontext
def restore_command(folder: Path, force: bool):
    """Restore a backup folder (stop the server first); every file's SHA-256 is checked."""
    try:
        manifest = restore_backup(folder, force=force)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"已恢复 {folder}: 照片文件 {len(manifest['photos'])} 个")
    if manifest["database"] is None:
        click.echo("备份中没有数据库: 请用 pg_restore 恢复 PostgreSQL (见 docs/DEPLOY.md)")


COMMANDS = (backup_command, restore_command)
