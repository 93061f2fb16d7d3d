"""Content-addressed photo store with tus-style resumable uploads.

``MediaStore`` is the protocol the server uses; ``LocalMediaStore`` (here, the default) keeps
the photos in a directory, ``media.s3_store.S3MediaStore`` in an S3-compatible bucket.

Layout under ``root`` (``LocalMediaStore``)::

    objects/ab/cd/<sha256>          original bytes, named by their SHA-256
    derived/ab/<sha256>/<name>      display versions ("1280.jpg", "320.jpg", ...), kept apart
    partials/<sha256>.part          bytes received so far for an unfinished upload
    partials/<sha256>.json          {"sha256": ..., "length": <declared total length>}

Every path is built from a SHA-256 that has passed ``is_sha256`` (64 lowercase hex) and, for
derived files, a name matching ``DERIVED_NAME_RE``; nothing else from the caller reaches a path.
All state is on disk, so several processes (or store instances) can share one root: appends to
one partial are serialised with ``flock`` on the partial file.

Upload rules live in the pure function ``decide_append``; ``append_chunk`` does the I/O. The
results are frozen dataclasses so the HTTP layer can map them to statuses (suggested mapping:
Appended 204, Completed 201/204, AlreadyHave 200/204, OffsetConflict 409 with Upload-Offset,
LengthMismatch 400, PastDeclaredLength 400, TooLarge 413, HashMismatch 460/422).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DERIVED_NAME_RE",
    "Accept",
    "AlreadyHave",
    "AppendResult",
    "Appended",
    "Completed",
    "Decision",
    "HashMismatch",
    "LengthMismatch",
    "LocalMediaStore",
    "MediaStore",
    "OffsetConflict",
    "PastDeclaredLength",
    "StoreUnavailable",
    "TooLarge",
    "decide_append",
    "is_sha256",
    "validate_derived_name",
    "validate_sha256",
]

DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # matches server setting MAX_PHOTO_BYTES
HASH_BLOCK = 1024 * 1024

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
# Derived names: a short lowercase stem and a known image/data extension, e.g. "1280.jpg".
DERIVED_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}\.(?:jpg|jpeg|png|webp|json)")


def is_sha256(value: object) -> bool:
    """True for exactly 64 lowercase hex characters (nothing else may name a file here)."""
    return isinstance(value, str) and _SHA256_RE.fullmatch(value) is not None


def validate_sha256(value: object) -> str:
    if not is_sha256(value):
        raise ValueError(f"not a lowercase hex SHA-256: {value!r}"[:120])
    return value  # type: ignore[return-value]


def validate_derived_name(name: object) -> str:
    if not isinstance(name, str) or DERIVED_NAME_RE.fullmatch(name) is None:
        raise ValueError(f"not an allowed derived file name: {name!r}"[:120])
    return name


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Appended:
    """Chunk stored; the upload continues from ``offset``."""

    offset: int


@dataclass(frozen=True)
class Completed:
    """Last chunk stored, hash verified, object in place."""

    sha256: str
    size: int


@dataclass(frozen=True)
class AlreadyHave:
    """The object is already held; nothing was written."""

    sha256: str


@dataclass(frozen=True)
class OffsetConflict:
    """The chunk did not start at the held offset; resume from ``offset`` (HTTP 409)."""

    offset: int


@dataclass(frozen=True)
class LengthMismatch:
    """The declared total length is invalid (< 1) or differs from the one first declared.

    ``expected_length`` is the length first declared for the partial, or None when the declared
    length is invalid on its own.
    """

    declared_length: int
    expected_length: int | None


@dataclass(frozen=True)
class PastDeclaredLength:
    """The chunk would run past the declared total length."""

    declared_length: int
    chunk_end: int


@dataclass(frozen=True)
class TooLarge:
    """The declared total length exceeds the store's limit (HTTP 413)."""

    limit: int


@dataclass(frozen=True)
class HashMismatch:
    """All bytes arrived but they hash to ``actual``; the partial was discarded."""

    expected: str
    actual: str


@dataclass(frozen=True)
class Accept:
    """Decision: write the chunk; the held offset becomes ``new_offset``."""

    new_offset: int
    completes: bool


AppendResult = (
    Appended
    | Completed
    | AlreadyHave
    | OffsetConflict
    | LengthMismatch
    | PastDeclaredLength
    | TooLarge
    | HashMismatch
)
Decision = Accept | OffsetConflict | LengthMismatch | PastDeclaredLength | TooLarge


def decide_append(
    held_offset: int | None,
    declared_length: int,
    chunk_offset: int,
    chunk_len: int,
    max_bytes: int,
    *,
    held_length: int | None = None,
) -> Decision:
    """Decide what to do with one chunk, without any I/O.

    ``held_offset``/``held_length``: bytes held and length first declared for the partial (both
    None when there is no partial). ``declared_length``: the total length sent with this chunk.
    Checks, in order: length valid (>= 1), not above ``max_bytes``, same as first declared,
    chunk starts at the held offset, chunk does not run past the declared length.
    """
    if chunk_len < 0:
        raise ValueError("chunk_len must be >= 0")
    if declared_length < 1:
        return LengthMismatch(declared_length, None)
    if declared_length > max_bytes:
        return TooLarge(max_bytes)
    if held_length is not None and declared_length != held_length:
        return LengthMismatch(declared_length, held_length)
    held = held_offset or 0
    if chunk_offset != held:
        return OffsetConflict(held)
    end = chunk_offset + chunk_len
    if end > declared_length:
        return PastDeclaredLength(declared_length, end)
    return Accept(end, end == declared_length)


# ---------------------------------------------------------------------------------------------
# Interface


class StoreUnavailable(Exception):
    """The store could not be reached or failed transiently (an object store that is down, a
    timeout, a 5xx). Nothing was marked complete; the caller answers 503 and the phone retries
    (server/errors.py maps it)."""


@runtime_checkable
class MediaStore(Protocol):
    """What the server does with photo bytes: exactly the operations server/ uses.

    Implementations: ``LocalMediaStore`` (a directory, the default) and
    ``media.s3_store.S3MediaStore`` (S3-compatible object storage). Every name is built from a
    SHA-256 that passed ``validate_sha256`` (and a derived name matching ``DERIVED_NAME_RE``);
    both raise ValueError for anything else. State lives in the store only, so any process or
    instance sharing it sees the same objects and partial uploads. Any method may raise
    ``StoreUnavailable``.
    """

    def has(self, sha256: str) -> bool:
        """Whether the verified original is held."""
        ...

    def open(self, sha256: str) -> BinaryIO:
        """Original bytes; FileNotFoundError if not held."""
        ...

    def put_derived(self, sha256: str, name: str, data: bytes) -> None:
        """Store (replace) a display version whole; readers never see half of one."""
        ...

    def open_derived(self, sha256: str, name: str) -> BinaryIO | None: ...

    def partial_offset(self, sha256: str) -> int | None:
        """Bytes held of an unfinished upload (where the phone resumes), None if none."""
        ...

    def partial_length(self, sha256: str) -> int | None:
        """Total length first declared for an unfinished upload, None if none."""
        ...

    def append_chunk(
        self, sha256: str, offset: int, chunk: bytes, total_length: int
    ) -> AppendResult:
        """Add one chunk (rules: ``decide_append``). The last one is checked against the
        SHA-256 before the object counts as held (``Completed``; ``HashMismatch`` otherwise)."""
        ...

    def discard(self, sha256: str) -> None:
        """Remove an object and its display versions (it failed the image checks)."""
        ...

    def remove_partials_older_than(self, seconds: float, *, now: float) -> list[str]:
        """Remove unfinished uploads idle for more than ``seconds`` before ``now`` (a Unix
        time); returns their SHA-256s, sorted."""
        ...


# ---------------------------------------------------------------------------------------------
# Local filesystem implementation


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _idle_for(paths, now: float) -> float:
    """Seconds since the newest mtime among ``paths`` (-inf if none exists)."""
    mtimes = []
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            mtimes.append(p.stat().st_mtime)
    return now - max(mtimes) if mtimes else float("-inf")


def _makedirs_durable(path: Path, stop: Path) -> None:
    """mkdir -p, fsyncing the parent of every directory created (up to ``stop``)."""
    missing = []
    p = path
    while not p.exists() and p != stop:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir()
            _fsync_dir(d.parent)


class LocalMediaStore:
    """``MediaStore`` on a local directory. ``max_bytes`` limits a declared upload length."""

    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._objects = self.root / "objects"
        self._derived = self.root / "derived"
        self._partials = self.root / "partials"
        for d in (self.root, self._objects, self._derived, self._partials):
            d.mkdir(parents=True, exist_ok=True)

    # -- paths (only ever from validated values) ----------------------------------------------

    def _object_path(self, sha256: str) -> Path:
        sha256 = validate_sha256(sha256)
        return self._objects / sha256[:2] / sha256[2:4] / sha256

    def _derived_path(self, sha256: str, name: str) -> Path:
        sha256 = validate_sha256(sha256)
        name = validate_derived_name(name)
        return self._derived / sha256[:2] / sha256 / name

    def _partial_paths(self, sha256: str) -> tuple[Path, Path]:
        sha256 = validate_sha256(sha256)
        return self._partials / f"{sha256}.part", self._partials / f"{sha256}.json"

    def path_hint(self, sha256: str) -> Path | None:
        """Filesystem path of a held object (for send_file); not part of ``MediaStore``."""
        p = self._object_path(sha256)
        return p if p.is_file() else None

    # -- originals and derived ------------------------------------------------------------------

    def has(self, sha256: str) -> bool:
        return self._object_path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        return open(self._object_path(sha256), "rb")

    def put_derived(self, sha256: str, name: str, data: bytes) -> None:
        target = self._derived_path(sha256, name)
        _makedirs_durable(target.parent, self._derived)
        # Temp name starts with "." so it can never match DERIVED_NAME_RE (never served).
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(target.parent)

    def open_derived(self, sha256: str, name: str) -> BinaryIO | None:
        try:
            return open(self._derived_path(sha256, name), "rb")
        except FileNotFoundError:
            return None

    # -- partial uploads ------------------------------------------------------------------------

    def _read_meta(self, meta_path: Path) -> int | None:
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
            length = meta["length"]
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        return length if isinstance(length, int) and length >= 1 else None

    def _write_meta(self, meta_path: Path, sha256: str, length: int) -> None:
        """Atomic but not fsynced: a meta file lost or emptied by a power cut reads as absent,
        and then the partial's bytes are dropped and the phone starts that photo again, which
        is all a crash may cost an unfinished upload."""
        fd, tmp = tempfile.mkstemp(dir=self._partials, prefix=".meta-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"sha256": sha256, "length": length}, fh)
            os.replace(tmp, meta_path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def partial_offset(self, sha256: str) -> int | None:
        part, meta = self._partial_paths(sha256)
        if self._read_meta(meta) is None:
            return None
        try:
            return part.stat().st_size
        except FileNotFoundError:
            return None

    def partial_length(self, sha256: str) -> int | None:
        """Total length first declared for an unfinished upload (tus Upload-Length), or None."""
        part, meta = self._partial_paths(sha256)
        return self._read_meta(meta) if part.exists() else None

    def read_head(self, sha256: str, n: int) -> bytes | None:
        """First ``n`` bytes (fewer if not yet received) of the object or its partial (not part
        of ``MediaStore``: the server sniffs the type on the chunk itself)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        part, _ = self._partial_paths(sha256)
        for p in (self._object_path(sha256), part):
            try:
                with open(p, "rb") as fh:
                    return fh.read(n)
            except FileNotFoundError:
                continue
        return None

    @contextlib.contextmanager
    def _locked_partial(self, part: Path) -> Iterator[int]:
        """Open (creating if needed) and exclusively lock the partial file.

        After taking the lock, check that the path still names the locked inode: a concurrent
        completion (os.replace) or cleanup (unlink) may have moved it away while we waited.
        """
        while True:
            fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    st = os.stat(part)
                except FileNotFoundError:
                    st = None
                if st is not None and st.st_ino == os.fstat(fd).st_ino:
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        try:
            yield fd
        finally:
            os.close(fd)  # releases the lock

    def _discard_partial(self, part: Path, meta: Path) -> None:
        for p in (part, meta):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)

    def append_chunk(
        self, sha256: str, offset: int, chunk: bytes, total_length: int
    ) -> AppendResult:
        sha256 = validate_sha256(sha256)
        obj = self._object_path(sha256)
        if obj.is_file():
            return AlreadyHave(sha256)
        # Cheap rejections before touching the disk.
        pre = decide_append(None, total_length, 0, 0, self.max_bytes)
        if not isinstance(pre, Accept):
            return pre
        part, meta = self._partial_paths(sha256)
        with self._locked_partial(part) as fd:
            if obj.is_file():  # completed by someone else while we waited
                self._discard_partial(part, meta)
                return AlreadyHave(sha256)
            held_length = self._read_meta(meta)
            size = os.fstat(fd).st_size
            fresh = held_length is None
            if fresh and size:
                # Bytes without a declared length (crash between create and meta): start over.
                os.ftruncate(fd, 0)
                size = 0
            decision = decide_append(
                size, total_length, offset, len(chunk), self.max_bytes, held_length=held_length
            )
            if not isinstance(decision, Accept):
                if fresh:
                    self._discard_partial(part, meta)
                return decision
            if fresh:
                self._write_meta(meta, sha256, total_length)
            if chunk:
                view = memoryview(chunk)
                pos = offset
                while view:
                    written = os.pwrite(fd, view, pos)
                    view = view[written:]
                    pos += written
            else:
                os.utime(fd)  # an empty chunk still counts as activity
            if not decision.completes:
                return Appended(decision.new_offset)
            return self._complete(fd, sha256, part, meta, obj, decision.new_offset)

    def _complete(
        self, fd: int, sha256: str, part: Path, meta: Path, obj: Path, size: int
    ) -> AppendResult:
        os.fsync(fd)
        digest = hashlib.sha256()
        pos = 0
        while True:
            block = os.pread(fd, HASH_BLOCK, pos)
            if not block:
                break
            digest.update(block)
            pos += len(block)
        actual = digest.hexdigest()
        if actual != sha256 or pos != size:
            self._discard_partial(part, meta)
            return HashMismatch(sha256, actual)
        _makedirs_durable(obj.parent, self._objects)
        os.replace(part, obj)
        _fsync_dir(obj.parent)
        # Not fsynced: a meta file that comes back after a power cut names no partial and is
        # swept with the abandoned partials; the object is durable already.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(meta)
        return Completed(sha256, size)

    def discard(self, sha256: str) -> None:
        """Remove an object and its derived files (an upload that failed the image checks)."""
        path = self._object_path(validate_sha256(sha256))
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        derived = self._derived_path(sha256, "x.jpg").parent
        if derived.is_dir():
            for child in derived.iterdir():
                child.unlink()
            derived.rmdir()

    def remove_partials_older_than(self, seconds: float, *, now: float) -> list[str]:
        """Remove unfinished uploads not touched for more than ``seconds`` before ``now``.

        Age is the newest mtime of the partial and its sidecar. A partial whose lock is held
        (an append in progress) is skipped. Stray temp and orphan sidecar files of that age go
        too, and so do display versions' temp files left by a server killed while writing one.
        Returns the SHA-256s of the partials removed, sorted.
        """
        for tmp in self._derived.glob("*/*/.tmp-*.part"):
            if _idle_for((tmp,), now) > seconds:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        removed: list[str] = []
        try:
            entries = list(os.scandir(self._partials))
        except FileNotFoundError:
            return removed

        def too_old(*paths: Path) -> bool:
            return _idle_for(paths, now) > seconds

        for entry in sorted(entries, key=lambda e: e.name):
            name = entry.name
            stem, _, ext = name.rpartition(".")
            path = self._partials / name
            if ext == "part" and is_sha256(stem):
                part, meta = self._partial_paths(stem)
                if not too_old(part, meta):
                    continue
                if self._remove_idle_partial(part, meta, seconds, now):
                    removed.append(stem)
            elif ext == "json" and is_sha256(stem):
                part, meta = self._partial_paths(stem)
                if not part.exists() and too_old(meta):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(meta)
            elif name.startswith(".meta-") and too_old(path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        return removed

    def _remove_idle_partial(self, part: Path, meta: Path, seconds: float, now: float) -> bool:
        try:
            fd = os.open(part, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    return False  # an append is running right now
                raise
            try:
                st = os.stat(part)
            except FileNotFoundError:
                return False
            if st.st_ino != os.fstat(fd).st_ino or _idle_for((part, meta), now) <= seconds:
                return False
            self._discard_partial(part, meta)
            return True
        finally:
            os.close(fd)
