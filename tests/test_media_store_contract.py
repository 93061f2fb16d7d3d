"""The photo store's contract (media/store.py `MediaStore`), run on both implementations: the
local directory and the S3-compatible store against moto's S3 server on loopback (an emulator,
started by tests/s3_helpers.py). Pure upload rules and local-only details are in
tests/test_media_store.py."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import CORPUS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from s3_helpers import client_for, free_port, moto_server, new_bucket  # noqa: F401 (fixture)

from media import s3_store
from media.s3_store import S3MediaStore, make_client
from media.store import (
    AlreadyHave,
    Appended,
    Completed,
    HashMismatch,
    LengthMismatch,
    LocalMediaStore,
    MediaStore,
    OffsetConflict,
    PastDeclaredLength,
    StoreUnavailable,
    TooLarge,
    is_sha256,
)

SMALL = CORPUS / "67-0_length_string.jpg"  # 162,716 bytes
LARGE = CORPUS / "HMD_Nokia_8.3_5G.jpg"  # 2,190,194 bytes (> 2 hash blocks)
ROOT = Path(__file__).resolve().parents[1]


def _photo(path: Path) -> tuple[bytes, str]:
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


SMALL_BYTES, SMALL_SHA = _photo(SMALL)


class LocalBackend:
    """A folder; `names()` lists its files."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def make(self, **kw) -> LocalMediaStore:
        return LocalMediaStore(self.root, **kw)

    def spec(self) -> dict:
        return {"kind": "local", "root": str(self.root)}

    def names(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())

    def mtime(self, sha: str) -> float:
        return max(p.stat().st_mtime for p in (self.root / "partials").glob(f"{sha}.*"))


class S3Backend:
    """A fresh prefix in a bucket on the moto server; `names()` lists its keys."""

    kind = "s3"

    def __init__(self, endpoint: str, bucket: str) -> None:
        self.endpoint, self.bucket = endpoint, bucket
        self.prefix = f"t-{uuid.uuid4().hex[:12]}/"
        self.client = client_for(endpoint)

    def make(self, **kw) -> S3MediaStore:
        # A new instance holds nothing of the last one's (the client is only a connection pool;
        # test_a_partial_upload_continues_in_another_process uses another process altogether).
        return S3MediaStore(self.client, self.bucket, prefix=self.prefix, **kw)

    def spec(self) -> dict:
        return {
            "kind": "s3",
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            "prefix": self.prefix,
        }

    def _items(self, under: str = "") -> list[dict]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + under
        )
        return [item for page in pages for item in page.get("Contents", ())]

    def names(self) -> list[str]:
        return sorted(item["Key"][len(self.prefix) :] for item in self._items())

    def mtime(self, sha: str) -> float:
        return max(i["LastModified"].timestamp() for i in self._items(f"partials/{sha}/"))


@pytest.fixture(scope="module")
def bucket(moto_server):  # noqa: F811
    return new_bucket(moto_server)


@pytest.fixture(params=["local", "s3"])
def new_backend(request, tmp_path_factory):
    """Make a fresh, empty store backing (several per test if need be)."""
    if request.param == "local":
        return lambda: LocalBackend(tmp_path_factory.mktemp("media"))
    endpoint = request.getfixturevalue("moto_server")
    bucket = request.getfixturevalue("bucket")
    return lambda: S3Backend(endpoint, bucket)


@pytest.fixture
def backend(new_backend):
    return new_backend()


def partials(backend) -> list[str]:
    return [n for n in backend.names() if n.startswith("partials/")]


def object_name(sha: str) -> str:
    return f"objects/{sha[:2]}/{sha[2:4]}/{sha}"


def _upload(store, data: bytes, sha: str, chunk: int):
    result = None
    for off in range(0, len(data), chunk):
        result = store.append_chunk(sha, off, data[off : off + chunk], len(data))
    return result


# ---------------------------------------------------------------------------------------------
# Uploads


def test_satisfies_protocol(backend):
    assert isinstance(backend.make(), MediaStore)


def test_whole_upload_in_one_chunk(backend):
    store = backend.make()
    assert not store.has(SMALL_SHA)
    assert store.partial_offset(SMALL_SHA) is None
    assert store.partial_length(SMALL_SHA) is None
    r = store.append_chunk(SMALL_SHA, 0, SMALL_BYTES, len(SMALL_BYTES))
    assert r == Completed(SMALL_SHA, len(SMALL_BYTES))
    assert store.has(SMALL_SHA)
    with store.open(SMALL_SHA) as fh:
        assert fh.read() == SMALL_BYTES
    assert store.partial_offset(SMALL_SHA) is None
    assert backend.names() == [object_name(SMALL_SHA)]


def test_large_photo_in_chunks_hashes_across_blocks(backend):
    data, sha = _photo(LARGE)
    store = backend.make()
    assert _upload(store, data, sha, 300_000) == Completed(sha, len(data))
    with store.open(sha) as fh:
        assert fh.read() == data
    with store.open(sha) as fh:  # read in blocks, as the exports do
        assert b"".join(iter(lambda: fh.read(65536), b"")) == data
    assert backend.names() == [object_name(sha)]


def test_second_instance_sees_partial_offset(backend):
    a = backend.make()
    assert a.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:1000], len(SMALL_BYTES)) == Appended(1000)
    b = backend.make()
    assert b.partial_offset(SMALL_SHA) == 1000
    assert b.partial_length(SMALL_SHA) == len(SMALL_BYTES)
    assert b.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:1000], len(SMALL_BYTES)) == OffsetConflict(
        1000
    )
    r = b.append_chunk(SMALL_SHA, 1000, SMALL_BYTES[1000:], len(SMALL_BYTES))
    assert r == Completed(SMALL_SHA, len(SMALL_BYTES))
    assert a.has(SMALL_SHA)


WORKER = """
import json, sys
from pathlib import Path
spec, offset, end = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
data = Path(spec["photo"]).read_bytes()
if spec["kind"] == "local":
    from media.store import LocalMediaStore
    store = LocalMediaStore(Path(spec["root"]))
else:
    from media.s3_store import S3MediaStore, make_client
    client = make_client(endpoint_url=spec["endpoint"], region="us-east-1",
                         access_key_id="testing", secret_access_key="testing")
    store = S3MediaStore(client, spec["bucket"], prefix=spec["prefix"])
print(repr(store.append_chunk(spec["sha"], offset, data[offset:end], len(data))))
"""


def test_a_partial_upload_continues_in_another_process(backend):
    """Any worker process can take the next chunk, whichever one took the first: the upload's
    state is in the store, not in a process's memory."""
    size = len(SMALL_BYTES)
    assert backend.make().append_chunk(SMALL_SHA, 0, SMALL_BYTES[:50_000], size) == Appended(50_000)
    spec = {**backend.spec(), "photo": str(SMALL), "sha": SMALL_SHA}
    out = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(spec), "50000", "120000"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert out.stdout.strip() == "Appended(offset=120000)"
    store = backend.make()
    assert store.partial_offset(SMALL_SHA) == 120_000
    r = store.append_chunk(SMALL_SHA, 120_000, SMALL_BYTES[120_000:], size)
    assert r == Completed(SMALL_SHA, size)
    with store.open(SMALL_SHA) as fh:
        assert fh.read() == SMALL_BYTES
    assert partials(backend) == []


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(data=st.data())
def test_interrupted_upload_resumes_byte_identical(new_backend, data):
    """Random chunk boundaries, stale-offset resends, lost replies and new store instances
    (server restarts, another worker) between chunks: the photo still arrives byte-identical.
    (tests/test_media_store.py runs more examples on the local store.)"""
    backend = new_backend()
    payload, sha, size = SMALL_BYTES, SMALL_SHA, len(SMALL_BYTES)
    cuts = data.draw(st.lists(st.integers(1, size - 1), max_size=12), label="chunk boundaries")
    boundaries = sorted({*cuts, size})
    store = backend.make()
    client_offset = 0  # what the phone believes the server holds
    server_offset = 0  # what the server really holds (for checking only)
    drops_left = 6
    for _ in range(100):
        if data.draw(st.booleans(), label="restart server"):
            store = backend.make()
        drop = "none"
        if drops_left:
            drop = data.draw(st.sampled_from(["none", "stale", "lost_reply"]), label="drop")
            drops_left -= drop != "none"
        send_at = client_offset
        if drop == "stale":  # the phone resends from an offset it should not use
            send_at = data.draw(st.integers(0, size - 1), label="stale offset")
        end = next(b for b in boundaries if b > send_at)
        r = store.append_chunk(sha, send_at, payload[send_at:end], size)
        if send_at != server_offset:
            assert r == OffsetConflict(server_offset)
            client_offset = r.offset
            continue
        server_offset = end
        if end == size:
            assert r == Completed(sha, size)
            break
        assert r == Appended(end)
        assert backend.make().partial_offset(sha) == end
        if drop != "lost_reply":
            client_offset = end
    else:
        pytest.fail("upload never completed")
    with backend.make().open(sha) as fh:
        assert fh.read() == payload
    assert partials(backend) == []


def test_corrupted_chunk_fails_hash_and_leaves_nothing(backend):
    store = backend.make()
    size = len(SMALL_BYTES)
    assert store.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:50_000], size) == Appended(50_000)
    bad = bytearray(SMALL_BYTES[50_000:100_000])
    bad[1234] ^= 0x01  # one flipped bit on the way
    assert store.append_chunk(SMALL_SHA, 50_000, bytes(bad), size) == Appended(100_000)
    r = store.append_chunk(SMALL_SHA, 100_000, SMALL_BYTES[100_000:], size)
    assert isinstance(r, HashMismatch)
    assert r.expected == SMALL_SHA
    assert (
        r.actual
        == hashlib.sha256(SMALL_BYTES[:50_000] + bytes(bad) + SMALL_BYTES[100_000:]).hexdigest()
    )
    assert not store.has(SMALL_SHA)
    assert store.partial_offset(SMALL_SHA) is None
    assert backend.names() == []
    # and the phone can start again from zero
    assert _upload(store, SMALL_BYTES, SMALL_SHA, 60_000) == Completed(SMALL_SHA, size)


def test_wrong_bytes_for_declared_hash_are_refused(backend):
    store = backend.make()
    other = b"not the photo"
    r = store.append_chunk(SMALL_SHA, 0, other, len(other))
    assert r == HashMismatch(SMALL_SHA, hashlib.sha256(other).hexdigest())
    assert backend.names() == []


def test_object_already_held_costs_nothing(backend):
    store = backend.make()
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES, len(SMALL_BYTES))
    before = backend.names()
    for offset, chunk, length in [
        (0, SMALL_BYTES[:100], len(SMALL_BYTES)),
        (500, b"x" * 10, len(SMALL_BYTES)),  # stale offset: no conflict, nothing to send
        (0, b"", 7),  # wrong length: irrelevant, we have it
        (0, b"", 10**12),  # over the limit: irrelevant too
    ]:
        assert store.append_chunk(SMALL_SHA, offset, chunk, length) == AlreadyHave(SMALL_SHA)
    assert backend.names() == before
    with store.open(SMALL_SHA) as fh:
        assert fh.read() == SMALL_BYTES


def test_length_must_stay_as_first_declared(backend):
    store = backend.make()
    size = len(SMALL_BYTES)
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:100], size)
    assert store.append_chunk(SMALL_SHA, 100, SMALL_BYTES[100:200], size + 1) == LengthMismatch(
        size + 1, size
    )
    assert store.partial_offset(SMALL_SHA) == 100
    assert store.partial_length(SMALL_SHA) == size


def test_chunk_past_declared_length_is_refused(backend):
    store = backend.make()
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:100], 150)
    r = store.append_chunk(SMALL_SHA, 100, SMALL_BYTES[100:200], 150)
    assert r == PastDeclaredLength(150, 200)
    assert store.partial_offset(SMALL_SHA) == 100
    # a first chunk that is already too long leaves no partial behind
    other = "0" * 64
    assert store.append_chunk(other, 0, b"x" * 20, 10) == PastDeclaredLength(10, 20)
    assert store.partial_offset(other) is None
    assert all(SMALL_SHA in name for name in partials(backend))


def test_too_large_is_refused_before_writing(backend):
    store = backend.make(max_bytes=100_000)
    r = store.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:1000], len(SMALL_BYTES))
    assert r == TooLarge(100_000)
    assert backend.names() == []
    assert store.append_chunk(SMALL_SHA, 0, b"", 0) == LengthMismatch(0, None)
    assert backend.names() == []


def test_concurrent_uploads_of_same_photo(backend):
    """Two phones (or a retry racing the original) upload the same photo at once, each through
    its own store instance (another worker)."""
    size = len(SMALL_BYTES)
    results: list = []

    def phone(chunk: int) -> None:
        store = backend.make()
        offset = 0
        for _ in range(10_000):
            r = store.append_chunk(SMALL_SHA, offset, SMALL_BYTES[offset : offset + chunk], size)
            if isinstance(r, Completed | AlreadyHave):
                results.append(r)
                return
            assert isinstance(r, Appended | OffsetConflict), r
            offset = r.offset
        results.append("gave up")

    chunks = (7_001, 10_007, 13_003) if backend.kind == "local" else (40_001, 50_007, 60_013)
    threads = [threading.Thread(target=phone, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and "gave up" not in results
    assert Completed(SMALL_SHA, size) in results
    with backend.make().open(SMALL_SHA) as fh:
        assert fh.read() == SMALL_BYTES
    assert partials(backend) == []


# ---------------------------------------------------------------------------------------------
# Names, display versions, reads


BAD_HASHES = [
    "",
    "../../etc/passwd",
    "/etc/passwd",
    SMALL_SHA.upper(),
    SMALL_SHA[:-1],
    SMALL_SHA + "0",
    SMALL_SHA[:-2] + "/a",
    SMALL_SHA[:-2] + "..",
    "g" * 64,
    " " + SMALL_SHA[1:],
    SMALL_SHA[:-1] + "\n",
    "０" * 64,  # full-width digits are not hex
    None,
    12,
]


@pytest.mark.parametrize("bad", BAD_HASHES)
def test_path_like_or_non_hex_hashes_are_refused(backend, bad):
    store = backend.make()
    assert not is_sha256(bad)
    calls = [
        lambda: store.has(bad),
        lambda: store.open(bad),
        lambda: store.put_derived(bad, "1280.jpg", b"x"),
        lambda: store.open_derived(bad, "1280.jpg"),
        lambda: store.partial_offset(bad),
        lambda: store.partial_length(bad),
        lambda: store.append_chunk(bad, 0, b"x", 1),
        lambda: store.discard(bad),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()
    assert backend.names() == []


@pytest.mark.parametrize(
    "name", ["../1280.jpg", "a/b.jpg", ".hidden.jpg", "x.exe", "1280", "", "1280.jpg/", "A.JPG"]
)
def test_derived_names_are_validated(backend, name):
    store = backend.make()
    with pytest.raises(ValueError):
        store.put_derived(SMALL_SHA, name, b"x")
    with pytest.raises(ValueError):
        store.open_derived(SMALL_SHA, name)


def test_derived_files_are_kept_apart_and_replaced(backend):
    store = backend.make()
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES, len(SMALL_BYTES))
    assert store.open_derived(SMALL_SHA, "1280.jpg") is None
    store.put_derived(SMALL_SHA, "1280.jpg", b"first")
    store.put_derived(SMALL_SHA, "1280.jpg", b"second")
    store.put_derived(SMALL_SHA, "320.jpg", b"thumb")
    with store.open_derived(SMALL_SHA, "1280.jpg") as fh:
        assert fh.read() == b"second"
    folder = f"derived/{SMALL_SHA[:2]}/{SMALL_SHA}"
    assert backend.names() == sorted(
        [object_name(SMALL_SHA), f"{folder}/1280.jpg", f"{folder}/320.jpg"]
    )
    with store.open(SMALL_SHA) as fh:
        assert fh.read() == SMALL_BYTES  # original untouched


def test_discard_removes_the_object_and_its_versions(backend):
    store = backend.make()
    other = _photo(LARGE)
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES, len(SMALL_BYTES))
    store.append_chunk(other[1], 0, other[0], len(other[0]))
    store.put_derived(SMALL_SHA, "320.jpg", b"thumb")
    store.put_derived(other[1], "320.jpg", b"other thumb")
    store.discard(SMALL_SHA)
    assert not store.has(SMALL_SHA)
    assert store.open_derived(SMALL_SHA, "320.jpg") is None
    assert all(SMALL_SHA not in name for name in backend.names())
    assert store.has(other[1])
    with store.open_derived(other[1], "320.jpg") as fh:
        assert fh.read() == b"other thumb"
    store.discard(SMALL_SHA)  # twice is fine


def test_open_missing_object_raises(backend):
    with pytest.raises(FileNotFoundError):
        backend.make().open(SMALL_SHA)


# ---------------------------------------------------------------------------------------------
# Abandoned uploads


def test_abandoned_partials_removed_by_age(backend):
    store = backend.make()
    old, fresh = "a" * 64, "b" * 64
    store.append_chunk(old, 0, b"old bytes", 100)
    time.sleep(1.1)  # S3 keeps modification times to the second
    store.append_chunk(fresh, 0, b"fresh bytes", 100)
    now = backend.mtime(fresh) + 60
    assert backend.mtime(old) <= now - 61
    assert store.remove_partials_older_than(60, now=now) == [old]  # fresh: exactly 60 s, kept
    assert store.partial_offset(old) is None
    assert store.partial_offset(fresh) == len(b"fresh bytes")
    assert all(fresh in name for name in partials(backend)) and partials(backend)
    assert store.remove_partials_older_than(59, now=now) == [fresh]
    assert partials(backend) == []
    # the phone simply starts over
    assert store.append_chunk(old, 0, b"x", 100) == Appended(1)


def test_appending_keeps_a_partial_alive(backend):
    store = backend.make()
    sha = "c" * 64
    store.append_chunk(sha, 0, b"12345", 100)
    first = backend.mtime(sha)
    time.sleep(1.1)
    store.append_chunk(sha, 5, b"678", 100)
    assert backend.mtime(sha) >= first + 1
    assert store.remove_partials_older_than(1, now=first + 1.05) == []
    assert store.partial_offset(sha) == 8
    time.sleep(1.1)
    assert store.append_chunk(sha, 8, b"", 100) == Appended(8)  # an empty chunk counts too
    assert backend.mtime(sha) >= first + 2


# ---------------------------------------------------------------------------------------------
# S3 only


@pytest.fixture
def s3(moto_server, bucket):  # noqa: F811
    return S3Backend(moto_server, bucket)


def test_s3_keys_are_built_from_the_hash_only(s3):
    store = s3.make()
    size = len(SMALL_BYTES)
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:70_000], size)
    store.put_derived(SMALL_SHA, "320.jpg", b"thumb")
    assert s3.names() == [
        f"derived/{SMALL_SHA[:2]}/{SMALL_SHA}/320.jpg",
        f"partials/{SMALL_SHA}/chunk-{0:015d}",
        f"partials/{SMALL_SHA}/length-{size}",
    ]


def test_s3_chunks_off_the_run_are_ignored_and_removed(s3):
    """A chunk no run of chunks reaches (left by racing workers) changes nothing."""
    store = s3.make()
    size = len(SMALL_BYTES)
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:1000], size)
    stray = f"{s3.prefix}partials/{SMALL_SHA}/chunk-{5000:015d}"
    s3.client.put_object(Bucket=s3.bucket, Key=stray, Body=b"junk")
    assert store.partial_offset(SMALL_SHA) == 1000
    assert store.append_chunk(SMALL_SHA, 1000, SMALL_BYTES[1000:], size) == Completed(
        SMALL_SHA, size
    )
    assert s3.names() == [object_name(SMALL_SHA)]


def test_s3_many_small_chunks_are_merged(s3, monkeypatch):
    monkeypatch.setattr(s3_store, "MAX_CHUNKS", 4)
    store = s3.make()
    assert _upload(store, SMALL_BYTES, SMALL_SHA, 9_000) == Completed(SMALL_SHA, len(SMALL_BYTES))
    with store.open(SMALL_SHA) as fh:
        assert fh.read() == SMALL_BYTES
    # and while it runs, a partial never has more than MAX_CHUNKS + 1 chunks
    sha = "d" * 64
    for offset in range(0, 90, 10):
        store.append_chunk(sha, offset, b"x" * 10, 100)
        assert sum("chunk-" in n for n in partials(s3)) <= 5
    assert store.partial_offset(sha) == 90


def test_s3_unreachable_store_raises_store_unavailable():
    """A closed port: every operation says StoreUnavailable (the server's 503), never a
    botocore error or a wrong answer such as "not held"."""
    client = make_client(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
    )
    store = S3MediaStore(client, "photos")
    calls = [
        lambda: store.has(SMALL_SHA),
        lambda: store.open(SMALL_SHA),
        lambda: store.put_derived(SMALL_SHA, "320.jpg", b"x"),
        lambda: store.open_derived(SMALL_SHA, "320.jpg"),
        lambda: store.partial_offset(SMALL_SHA),
        lambda: store.partial_length(SMALL_SHA),
        lambda: store.append_chunk(SMALL_SHA, 0, SMALL_BYTES, len(SMALL_BYTES)),
        lambda: store.discard(SMALL_SHA),
        lambda: store.remove_partials_older_than(1, now=time.time()),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable):
            call()
