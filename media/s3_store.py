"""``MediaStore`` on S3-compatible object storage (MinIO, Aliyun OSS, Huawei OBS, Tencent COS,
Ceph RGW, AWS S3) through boto3. See docs/PHOTO_STORE.md.

Keys under ``prefix`` (the same layout as the local store for what is held)::

    objects/ab/cd/<sha256>                 verified original bytes
    derived/ab/<sha256>/<name>             display versions
    partials/<sha256>/length-<N>           an unfinished upload, N = declared total length
    partials/<sha256>/chunk-<offset>       its chunks, offset zero-padded to 15 digits

Every key is built from a SHA-256 that passed ``validate_sha256`` and, for display versions, a
name matching ``DERIVED_NAME_RE``; the prefix comes from the settings. Nothing else a client
sends reaches a key.

Partial uploads keep all their state in the bucket: one LIST of ``partials/<sha256>/`` gives
the declared length and the chunks, and the offset is the end of the run of chunks starting at
0 (chunk at 0, then the chunk starting where it ends, ...). Any worker process can therefore
take the next chunk, whichever one took the first: nothing lives in a process's memory and no
lock is needed. Multipart uploads are not used because their parts must be at least 5 MiB and
the phone sends 512 KiB chunks. Races between workers (a retry racing its original, two
phones) can only leave chunks off that run, which are ignored and deleted with the partial;
whatever the run holds, the last chunk's worker reads it back, and the object is written only
if those bytes hash to the SHA-256 it is named by (and with Content-MD5, so the store checks it
received exactly those bytes). A photo is held only once that single PUT succeeded.

Connection failures, timeouts and 5xx answers raise ``StoreUnavailable`` (one place:
``_translated``); the server maps that to 503 ``store_unavailable``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from .store import (
    DEFAULT_MAX_BYTES,
    Accept,
    AlreadyHave,
    Appended,
    AppendResult,
    Completed,
    HashMismatch,
    OffsetConflict,
    StoreUnavailable,
    decide_append,
    is_sha256,
    validate_derived_name,
    validate_sha256,
)

__all__ = ["S3MediaStore", "make_client"]

# More chunks than this in one partial are merged into one before the next is added, so a
# client sending tiny chunks cannot make every append list thousands of keys.
MAX_CHUNKS = 256
# An instance answers partial_offset/partial_length from one LIST for this long (instances are
# made per request: server/context.py media_store()).
MEMO_SECONDS = 1.0
_CHUNK_RE = re.compile(r"chunk-([0-9]{15})")
_LENGTH_RE = re.compile(r"length-([1-9][0-9]{0,14})")
_TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"}


def make_client(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    addressing_style: str = "path",
    max_pool_connections: int = 32,
):
    """A boto3 S3 client for an S3-compatible service (thread-safe; share it)."""
    import boto3
    from botocore.config import Config

    if addressing_style not in ("path", "virtual", "auto"):
        raise ValueError("S3_ADDRESSING_STYLE must be path, virtual or auto")
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": addressing_style},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=max_pool_connections,
        # boto3 >= 1.36 adds CRC checksums (and aws-chunked bodies) to every upload by default,
        # which several S3-compatible services refuse; only send them where the API needs them.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=region or None,
        aws_access_key_id=access_key_id or None,
        aws_secret_access_key=secret_access_key or None,
        config=config,
    )


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn "the store cannot be reached / failed for now" into ``StoreUnavailable``."""
    from botocore.exceptions import ClientError, HTTPClientError, IncompleteReadError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    try:
        yield
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if status >= 500 or exc.response.get("Error", {}).get("Code") in _TRANSIENT_CODES:
            raise StoreUnavailable(f"object store error {status}") from exc
        raise
    except (BotoConnectionError, HTTPClientError, IncompleteReadError) as exc:
        raise StoreUnavailable(f"object store unreachable: {type(exc).__name__}") from exc


def _is_missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = exc.response.get("Error", {}).get("Code")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("404", "NoSuchKey", "NotFound") or status == 404


class _Body:
    """A held object's bytes as a read-only binary file; store failures while reading raise
    ``StoreUnavailable``."""

    def __init__(self, body) -> None:
        self._body = body

    def read(self, n: int | None = -1) -> bytes:
        with _translated():
            return self._body.read(None if n is None or n < 0 else n)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class _Partial:
    """One LIST of a partial upload's keys."""

    keys: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    chunks: dict[int, tuple[str, int]] = field(default_factory=dict)  # start -> (key, size)
    newest: float = float("-inf")  # Unix time of the newest key

    @property
    def length(self) -> int | None:
        # Two first chunks racing with different lengths: all workers agree on the smallest
        # (at most one is honest, and the hash check settles it).
        return min(self.lengths) if self.lengths else None

    def run(self) -> list[tuple[int, str, int]]:
        """The chunks from 0 onwards, each starting where the one before ends."""
        out, offset = [], 0
        while offset in self.chunks and self.chunks[offset][1] > 0:
            key, size = self.chunks[offset]
            out.append((offset, key, size))
            offset += size
        return out

    def offset(self) -> int:
        run = self.run()
        return run[-1][0] + run[-1][2] if run else 0


class S3MediaStore:
    """``MediaStore`` in a bucket of an S3-compatible service (``client`` from ``make_client``).

    ``max_bytes`` limits a declared upload length.
    """

    def __init__(
        self, client, bucket: str, *, prefix: str = "", max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if not bucket:
            raise ValueError("S3_BUCKET is not set")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.max_bytes = max_bytes
        self._memo: dict[str, tuple[float, _Partial]] = {}

    # -- keys (only ever from validated values) -----------------------------------------------

    def _object_key(self, sha256: str) -> str:
        sha256 = validate_sha256(sha256)
        return f"{self.prefix}objects/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def _derived_dir(self, sha256: str) -> str:
        sha256 = validate_sha256(sha256)
        return f"{self.prefix}derived/{sha256[:2]}/{sha256}/"

    def _derived_key(self, sha256: str, name: str) -> str:
        return self._derived_dir(sha256) + validate_derived_name(name)

    def _partial_dir(self, sha256: str) -> str:
        return f"{self.prefix}partials/{validate_sha256(sha256)}/"

    # -- plumbing ------------------------------------------------------------------------------

    def _list(self, prefix: str) -> Iterator[dict]:
        paginator = self.client.get_paginator("list_objects_v2")
        with _translated():
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                yield from page.get("Contents", ())

    def _put(self, key: str, data: bytes) -> None:
        md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        with _translated():
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentMD5=md5)

    def _get(self, key: str) -> bytes | None:
        try:
            with _translated():
                response = self.client.get_object(Bucket=self.bucket, Key=key)
                return response["Body"].read()
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise

    def _delete(self, keys: list[str]) -> None:
        from botocore.exceptions import ClientError

        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            try:
                with _translated():
                    self.client.delete_objects(
                        Bucket=self.bucket,
                        Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                    )
                continue
            except ClientError:
                pass  # some services want Content-MD5 on DeleteObjects: one by one then
            for key in batch:
                with _translated():
                    self.client.delete_object(Bucket=self.bucket, Key=key)

    def _partial(self, sha256: str) -> _Partial:
        base = self._partial_dir(sha256)
        p = _Partial()
        for item in self._list(base):
            key = item["Key"]
            p.keys.append(key)
            p.newest = max(p.newest, item["LastModified"].timestamp())
            name = key[len(base) :]
            if m := _CHUNK_RE.fullmatch(name):
                p.chunks[int(m.group(1))] = (key, int(item["Size"]))
            elif m := _LENGTH_RE.fullmatch(name):
                p.lengths.append(int(m.group(1)))
        return p

    # -- originals and derived ------------------------------------------------------------------

    def has(self, sha256: str) -> bool:
        key = self._object_key(sha256)
        try:
            with _translated():
                self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _is_missing(exc):
                return False
            raise
        return True

    def open(self, sha256: str):
        key = self._object_key(sha256)
        try:
            with _translated():
                response = self.client.get_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _is_missing(exc):
                raise FileNotFoundError(f"photo {sha256} is not held") from None
            raise
        return _Body(response["Body"])

    def put_derived(self, sha256: str, name: str, data: bytes) -> None:
        self._put(self._derived_key(sha256, name), data)  # a PUT is all or nothing

    def open_derived(self, sha256: str, name: str):
        data = self._get(self._derived_key(sha256, name))
        return None if data is None else io.BytesIO(data)

    # -- partial uploads ------------------------------------------------------------------------

    def _seen(self, sha256: str) -> _Partial:
        """The partial as last listed by this instance within MEMO_SECONDS, else listed now: the
        server asks for offset and length one after the other, one LIST answers both. Writes
        (``append_chunk``) always list afresh and forget what was seen."""
        seen = self._memo.get(sha256)
        if seen is None or time.monotonic() - seen[0] > MEMO_SECONDS:
            seen = self._memo[sha256] = (time.monotonic(), self._partial(sha256))
        return seen[1]

    def partial_offset(self, sha256: str) -> int | None:
        p = self._seen(sha256)
        return None if p.length is None else p.offset()

    def partial_length(self, sha256: str) -> int | None:
        return self._seen(sha256).length

    def append_chunk(
        self, sha256: str, offset: int, chunk: bytes, total_length: int
    ) -> AppendResult:
        sha256 = validate_sha256(sha256)
        self._memo.pop(sha256, None)
        if self.has(sha256):
            leftover = self._partial(sha256).keys  # a completion that died before its cleanup
            if leftover:
                self._delete(leftover)
            return AlreadyHave(sha256)
        pre = decide_append(None, total_length, 0, 0, self.max_bytes)  # before any request
        if not isinstance(pre, Accept):
            return pre
        p = self._partial(sha256)
        held_length = p.length
        if held_length is not None and p.offset() > held_length:
            held_length = None  # chunks written under a longer, refused length: start over
        if held_length is None and p.keys:
            self._delete(p.keys)  # chunks without a declared length (cleanup raced an append)
            p = _Partial()
        fresh = held_length is None
        decision = decide_append(
            None if fresh else p.offset(),
            total_length,
            offset,
            len(chunk),
            self.max_bytes,
            held_length=held_length,
        )
        if not isinstance(decision, Accept):
            return decision
        base = self._partial_dir(sha256)
        if not decision.completes and (fresh or not chunk):
            # Declare the length (a one-chunk upload needs no partial); an empty chunk
            # refreshes the partial's age.
            self._put(f"{base}length-{total_length}", b"")
        if decision.completes:
            return self._complete(sha256, p, chunk, decision.new_offset)
        if chunk:
            run = p.run()
            if len(run) >= MAX_CHUNKS:
                merged = self._read_run(run)
                if merged is None:
                    return self._lost_race(sha256)
                self._put(f"{base}chunk-{0:015d}", merged + chunk)
                self._delete([key for start, key, _ in run if start != 0])
            else:
                self._put(f"{base}chunk-{offset:015d}", chunk)
        return Appended(decision.new_offset)

    def _read_run(self, run: list[tuple[int, str, int]]) -> bytes | None:
        """The bytes of a run of chunks, or None if one changed or went meanwhile (another
        worker completed, cleaned up or raced on the same offset)."""
        parts = []
        for _, key, size in run:
            data = self._get(key)
            if data is None or len(data) != size:
                return None
            parts.append(data)
        return b"".join(parts)

    def _lost_race(self, sha256: str) -> AppendResult:
        if self.has(sha256):
            return AlreadyHave(sha256)
        return OffsetConflict(self.partial_offset(sha256) or 0)

    def _complete(self, sha256: str, p: _Partial, tail: bytes, size: int) -> AppendResult:
        """Read the run back, add the last chunk, and store the object only if it hashes
        right."""
        head = self._read_run(p.run())
        if head is None:
            return self._lost_race(sha256)
        data = head + tail
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256 or len(data) != size:
            self._delete(self._partial(sha256).keys)
            return HashMismatch(sha256, actual)
        self._put(self._object_key(sha256), data)
        self._delete(self._partial(sha256).keys)
        return Completed(sha256, size)

    def discard(self, sha256: str) -> None:
        key = self._object_key(sha256)
        derived = [item["Key"] for item in self._list(self._derived_dir(sha256))]
        self._delete([key, *derived])

    def remove_partials_older_than(self, seconds: float, *, now: float) -> list[str]:
        """As ``LocalMediaStore``: age is the newest key's LastModified (the store's clock).

        An append racing the removal may leave a chunk without its length key; the next
        append of that photo deletes it and the phone starts over.
        """
        newest: dict[str, float] = {}
        root = f"{self.prefix}partials/"
        for item in self._list(root):
            sha = item["Key"][len(root) :].partition("/")[0]
            if is_sha256(sha):
                newest[sha] = max(newest.get(sha, float("-inf")), item["LastModified"].timestamp())
        removed = []
        for sha in sorted(newest):
            if now - newest[sha] <= seconds:
                continue
            self._memo.pop(sha, None)
            p = self._partial(sha)  # look again just before: an append may have come
            if p.keys and now - p.newest > seconds:
                self._delete(p.keys)
                removed.append(sha)
        return removed
