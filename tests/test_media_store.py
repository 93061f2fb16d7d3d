"""Content-addressed media store and resumable uploads (media/store.py)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import CORPUS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.store import (
    Accept,
    AlreadyHave,
    Appended,
    Completed,
    HashMismatch,
    LengthMismatch,
    LocalMediaStore,
    MediaStore,
    OffsetConflict,
    PastDeclaredLength,
    TooLarge,
    decide_append,
    is_sha256,
)

SMALL = CORPUS / "67-0_length_string.jpg"  # 162,716 bytes
LARGE = CORPUS / "HMD_Nokia_8.3_5G.jpg"  # 2,190,194 bytes (> 2 hash blocks)


def _photo(path: Path) -> tuple[bytes, str]:
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


SMALL_BYTES, SMALL_SHA = _photo(SMALL) if SMALL.exists() else (b"", "")


def _files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _upload(store, data: bytes, sha: str, chunk: int):
    result = None
    for off in range(0, len(data), chunk):
        result = store.append_chunk(sha, off, data[off : off + chunk], len(data))
    return result


# ---------------------------------------------------------------------------------------------
# decide_append: the pure rules


def test_decide_first_chunk_and_completion():
    assert decide_append(None, 100, 0, 40, 1000) == Accept(40, False)
    assert decide_append(40, 100, 40, 60, 1000, held_length=100) == Accept(100, True)
    assert decide_append(None, 10, 0, 10, 1000) == Accept(10, True)


def test_decide_offset_conflict_reports_real_offset():
    assert decide_append(40, 100, 0, 10, 1000, held_length=100) == OffsetConflict(40)
    assert decide_append(40, 100, 50, 10, 1000, held_length=100) == OffsetConflict(40)
    assert decide_append(None, 100, 5, 10, 1000) == OffsetConflict(0)


def test_decide_length_rules():
    assert decide_append(40, 120, 40, 10, 1000, held_length=100) == LengthMismatch(120, 100)
    assert decide_append(40, 100, 40, 61, 1000, held_length=100) == PastDeclaredLength(100, 101)
    assert decide_append(None, 0, 0, 0, 1000) == LengthMismatch(0, None)
    assert decide_append(None, -5, 0, 0, 1000) == LengthMismatch(-5, None)


def test_decide_too_large_boundary():
    assert decide_append(None, 1001, 0, 10, 1000) == TooLarge(1000)
    assert decide_append(None, 1000, 0, 10, 1000) == Accept(10, False)


@given(
    held=st.one_of(st.none(), st.integers(0, 500)),
    declared=st.integers(-2, 600),
    offset=st.integers(-5, 600),
    n=st.integers(0, 600),
    max_bytes=st.integers(1, 600),
)
def test_decide_accepts_only_what_fits(held, declared, offset, n, max_bytes):
    held_length = None if held is None else max(declared, held, 1)
    d = decide_append(held, declared, offset, n, max_bytes, held_length=held_length)
    if isinstance(d, Accept):
        assert 1 <= declared <= max_bytes
        assert offset == (held or 0)
        assert d.new_offset == offset + n <= declared
        assert d.completes == (d.new_offset == declared)
    if isinstance(d, OffsetConflict):
        assert d.offset == (held or 0) != offset


# ---------------------------------------------------------------------------------------------
# The store


def test_local_store_satisfies_protocol(tmp_path):
    assert isinstance(LocalMediaStore(tmp_path), MediaStore)


def test_whole_upload_in_one_chunk(tmp_path):
    store = LocalMediaStore(tmp_path)
    assert not store.has(SMALL_SHA)
    assert store.partial_offset(SMALL_SHA) is None
    r = store.append_chunk(SMALL_SHA, 0, SMALL_BYTES, len(SMALL_BYTES))
    assert r == Completed(SMALL_SHA, len(SMALL_BYTES))
    assert store.has(SMALL_SHA)
    with store.open(SMALL_SHA) as fh:
        assert fh.read() == SMALL_BYTES
    assert store.partial_offset(SMALL_SHA) is None
    obj = f"objects/{SMALL_SHA[:2]}/{SMALL_SHA[2:4]}/{SMALL_SHA}"
    assert _files_under(tmp_path) == [obj]


def test_large_photo_in_chunks_hashes_across_blocks(tmp_path):
    data, sha = _photo(LARGE)
    store = LocalMediaStore(tmp_path)
    result = _upload(store, data, sha, 300_000)
    assert result == Completed(sha, len(data))
    with store.open(sha) as fh:
        assert fh.read() == data


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_interrupted_upload_resumes_byte_identical(data):
    """Random chunk boundaries, stale-offset resends, lost replies and new store instances
    (server restarts) between chunks: the photo still arrives byte-identical."""
    payload, sha, size = SMALL_BYTES, SMALL_SHA, len(SMALL_BYTES)
    cuts = data.draw(st.lists(st.integers(1, size - 1), max_size=25), label="chunk boundaries")
    boundaries = sorted({*cuts, size})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = LocalMediaStore(root)
        client_offset = 0  # what the phone believes the server holds
        server_offset = 0  # what the server really holds (for checking only)
        drops_left = 12
        for _ in range(200):
            if data.draw(st.booleans(), label="restart server"):
                store = LocalMediaStore(root)
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
                client_offset = r.offset  # resume from what the server reports
                continue
            server_offset = end
            if end == size:
                assert r == Completed(sha, size)
                break
            assert r == Appended(end)
            assert LocalMediaStore(root).partial_offset(sha) == end
            if drop != "lost_reply":  # a lost reply: the phone keeps its old offset
                client_offset = end
        else:
            pytest.fail("upload never completed")
        assert store.has(sha)
        with LocalMediaStore(root).open(sha) as fh:
            assert fh.read() == payload
        assert list((root / "partials").iterdir()) == []


def test_second_instance_sees_partial_offset(tmp_path):
    a = LocalMediaStore(tmp_path)
    assert a.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:1000], len(SMALL_BYTES)) == Appended(1000)
    b = LocalMediaStore(tmp_path)
    assert b.partial_offset(SMALL_SHA) == 1000
    assert b.partial_length(SMALL_SHA) == len(SMALL_BYTES)
    assert b.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:1000], len(SMALL_BYTES)) == OffsetConflict(
        1000
    )
    r = b.append_chunk(SMALL_SHA, 1000, SMALL_BYTES[1000:], len(SMALL_BYTES))
    assert r == Completed(SMALL_SHA, len(SMALL_BYTES))
    assert a.has(SMALL_SHA)


def test_corrupted_chunk_fails_hash_and_leaves_nothing(tmp_path):
    store = LocalMediaStore(tmp_path)
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
    assert store.read_head(SMALL_SHA, 10) is None
    assert _files_under(tmp_path) == []
    # and the phone can start again from zero
    assert _upload(store, SMALL_BYTES, SMALL_SHA, 60_000) == Completed(SMALL_SHA, size)


def test_wrong_bytes_for_declared_hash_are_refused(tmp_path):
    store = LocalMediaStore(tmp_path)
    other = b"not the photo"
    r = store.append_chunk(SMALL_SHA, 0, other, len(other))
    assert r == HashMismatch(SMALL_SHA, hashlib.sha256(other).hexdigest())
    assert _files_under(tmp_path) == []


def test_object_already_held_costs_nothing(tmp_path):
    store = LocalMediaStore(tmp_path)
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES, len(SMALL_BYTES))
    before = _files_under(tmp_path)
    obj = tmp_path / before[0]
    os.utime(obj, (1_000_000, 1_000_000))
    for offset, chunk, length in [
        (0, SMALL_BYTES[:100], len(SMALL_BYTES)),
        (500, b"x" * 10, len(SMALL_BYTES)),  # stale offset: no conflict, nothing to send
        (0, b"", 7),  # wrong length: irrelevant, we have it
        (0, b"", 10**12),  # over the limit: irrelevant too
    ]:
        assert store.append_chunk(SMALL_SHA, offset, chunk, length) == AlreadyHave(SMALL_SHA)
    assert _files_under(tmp_path) == before
    assert obj.stat().st_mtime == 1_000_000
    assert obj.read_bytes() == SMALL_BYTES


def test_length_must_stay_as_first_declared(tmp_path):
    store = LocalMediaStore(tmp_path)
    size = len(SMALL_BYTES)
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:100], size)
    assert store.append_chunk(SMALL_SHA, 100, SMALL_BYTES[100:200], size + 1) == LengthMismatch(
        size + 1, size
    )
    assert store.partial_offset(SMALL_SHA) == 100


def test_chunk_past_declared_length_is_refused(tmp_path):
    store = LocalMediaStore(tmp_path)
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:100], 150)
    r = store.append_chunk(SMALL_SHA, 100, SMALL_BYTES[100:200], 150)
    assert r == PastDeclaredLength(150, 200)
    assert store.partial_offset(SMALL_SHA) == 100
    # a first chunk that is already too long leaves no partial behind
    other = "0" * 64
    assert store.append_chunk(other, 0, b"x" * 20, 10) == PastDeclaredLength(10, 20)
    assert store.partial_offset(other) is None
    assert sorted(p.name for p in (tmp_path / "partials").iterdir()) == [
        f"{SMALL_SHA}.json",
        f"{SMALL_SHA}.part",
    ]


def test_too_large_is_refused_before_writing(tmp_path):
    store = LocalMediaStore(tmp_path, max_bytes=100_000)
    r = store.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:1000], len(SMALL_BYTES))
    assert r == TooLarge(100_000)
    assert _files_under(tmp_path) == []
    assert store.append_chunk(SMALL_SHA, 0, b"", 0) == LengthMismatch(0, None)
    assert _files_under(tmp_path) == []


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
def test_path_like_or_non_hex_hashes_are_refused(tmp_path, bad):
    store = LocalMediaStore(tmp_path)
    assert not is_sha256(bad)
    calls = [
        lambda: store.has(bad),
        lambda: store.open(bad),
        lambda: store.put_derived(bad, "1280.jpg", b"x"),
        lambda: store.open_derived(bad, "1280.jpg"),
        lambda: store.partial_offset(bad),
        lambda: store.read_head(bad, 10),
        lambda: store.append_chunk(bad, 0, b"x", 1),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()
    assert _files_under(tmp_path) == []


def test_is_sha256():
    assert is_sha256(SMALL_SHA)
    assert is_sha256("0" * 64)
    assert not is_sha256("0" * 63)


@pytest.mark.parametrize(
    "name", ["../1280.jpg", "a/b.jpg", ".hidden.jpg", "x.exe", "1280", "", "1280.jpg/", "A.JPG"]
)
def test_derived_names_are_validated(tmp_path, name):
    store = LocalMediaStore(tmp_path)
    with pytest.raises(ValueError):
        store.put_derived(SMALL_SHA, name, b"x")
    with pytest.raises(ValueError):
        store.open_derived(SMALL_SHA, name)


def test_derived_files_are_kept_apart_and_replaced_atomically(tmp_path):
    store = LocalMediaStore(tmp_path)
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES, len(SMALL_BYTES))
    assert store.open_derived(SMALL_SHA, "1280.jpg") is None
    store.put_derived(SMALL_SHA, "1280.jpg", b"first")
    store.put_derived(SMALL_SHA, "1280.jpg", b"second")
    store.put_derived(SMALL_SHA, "320.jpg", b"thumb")
    with store.open_derived(SMALL_SHA, "1280.jpg") as fh:
        assert fh.read() == b"second"
    derived_dir = tmp_path / "derived" / SMALL_SHA[:2] / SMALL_SHA
    assert sorted(p.name for p in derived_dir.iterdir()) == ["1280.jpg", "320.jpg"]
    with store.open(SMALL_SHA) as fh:
        assert fh.read() == SMALL_BYTES  # original untouched


def test_read_head_from_partial_then_object(tmp_path):
    store = LocalMediaStore(tmp_path)
    assert store.read_head(SMALL_SHA, 16) is None
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:8], len(SMALL_BYTES))
    assert store.read_head(SMALL_SHA, 16) == SMALL_BYTES[:8]
    assert store.read_head(SMALL_SHA, 16).startswith(b"\xff\xd8")  # JPEG SOI, for sniffing
    store.append_chunk(SMALL_SHA, 8, SMALL_BYTES[8:], len(SMALL_BYTES))
    assert store.read_head(SMALL_SHA, 16) == SMALL_BYTES[:16]


def test_open_missing_object_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        LocalMediaStore(tmp_path).open(SMALL_SHA)


def test_abandoned_partials_removed_by_age(tmp_path):
    store = LocalMediaStore(tmp_path)
    old, fresh = "a" * 64, "b" * 64
    store.append_chunk(old, 0, b"old bytes", 100)
    store.append_chunk(fresh, 0, b"fresh bytes", 100)
    now = 2_000_000_000.0
    for p in (tmp_path / "partials").glob(f"{old}.*"):
        os.utime(p, (now - 7200, now - 7200))
    for p in (tmp_path / "partials").glob(f"{fresh}.*"):
        os.utime(p, (now - 60, now - 60))
    assert store.remove_partials_older_than(3600, now=now) == [old]
    assert store.partial_offset(old) is None
    assert store.partial_offset(fresh) == len(b"fresh bytes")
    assert sorted(p.name for p in (tmp_path / "partials").iterdir()) == [
        f"{fresh}.json",
        f"{fresh}.part",
    ]
    # exactly at the age: kept; one second more: removed
    assert store.remove_partials_older_than(60, now=now) == []
    assert store.remove_partials_older_than(59, now=now) == [fresh]
    assert list((tmp_path / "partials").iterdir()) == []
    # the phone simply starts over
    assert store.append_chunk(old, 0, b"x", 100) == Appended(1)


def test_display_versions_left_half_written_by_a_kill_are_removed_by_age(tmp_path):
    store = LocalMediaStore(tmp_path)
    store.put_derived(SMALL_SHA, "320.jpg", b"done")
    folder = next((tmp_path / "derived").glob(f"*/{SMALL_SHA}"))
    old, fresh = folder / ".tmp-killed.part", folder / ".tmp-writing.part"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    now = 2_000_000_000.0
    os.utime(old, (now - 7200, now - 7200))
    os.utime(fresh, (now - 60, now - 60))
    store.remove_partials_older_than(3600, now=now)
    assert sorted(p.name for p in folder.iterdir()) == [".tmp-writing.part", "320.jpg"]
    with store.open_derived(SMALL_SHA, "320.jpg") as f:
        assert f.read() == b"done"


def test_appending_keeps_a_partial_alive(tmp_path):
    store = LocalMediaStore(tmp_path)
    sha = "c" * 64
    store.append_chunk(sha, 0, b"12345", 100)
    for p in (tmp_path / "partials").glob(f"{sha}.*"):
        os.utime(p, (1000, 1000))
    store.append_chunk(sha, 5, b"678", 100)  # touches the data file now
    assert store.remove_partials_older_than(3600, now=time.time()) == []
    assert store.partial_offset(sha) == 8


def test_concurrent_uploads_of_same_photo(tmp_path):
    """Two phones (or a retry racing the original) upload the same photo at once."""
    size = len(SMALL_BYTES)
    results: list = []

    def phone(chunk: int) -> None:
        store = LocalMediaStore(tmp_path)
        offset = 0
        for _ in range(10_000):
            r = store.append_chunk(SMALL_SHA, offset, SMALL_BYTES[offset : offset + chunk], size)
            if isinstance(r, Completed | AlreadyHave):
                results.append(r)
                return
            if isinstance(r, OffsetConflict):
                offset = r.offset
            else:
                assert isinstance(r, Appended), r
                offset = r.offset
        results.append("gave up")

    threads = [threading.Thread(target=phone, args=(c,)) for c in (7_001, 10_007, 13_003)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and "gave up" not in results
    assert Completed(SMALL_SHA, size) in results
    store = LocalMediaStore(tmp_path)
    with store.open(SMALL_SHA) as fh:
        assert fh.read() == SMALL_BYTES
    assert list((tmp_path / "partials").iterdir()) == []
