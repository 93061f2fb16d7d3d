"""The pure upload rules (`decide_append`) and what only the local store does (media/store.py).

The store contract, on the local and the S3 store alike, is in test_media_store_contract.py."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import CORPUS
from hypothesis import given
from hypothesis import strategies as st

from media.store import (
    Accept,
    Completed,
    LengthMismatch,
    LocalMediaStore,
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


def test_is_sha256():
    assert is_sha256(SMALL_SHA)
    assert is_sha256("0" * 64)
    assert not is_sha256("0" * 63)


def test_read_head_from_partial_then_object(tmp_path):
    store = LocalMediaStore(tmp_path)
    for bad in ("../../etc/passwd", SMALL_SHA.upper(), None):
        with pytest.raises(ValueError):
            store.read_head(bad, 10)
    assert store.read_head(SMALL_SHA, 16) is None
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:8], len(SMALL_BYTES))
    assert store.read_head(SMALL_SHA, 16) == SMALL_BYTES[:8]
    assert store.read_head(SMALL_SHA, 16).startswith(b"\xff\xd8")  # JPEG SOI, for sniffing
    store.append_chunk(SMALL_SHA, 8, SMALL_BYTES[8:], len(SMALL_BYTES))
    assert store.read_head(SMALL_SHA, 16) == SMALL_BYTES[:16]


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


@pytest.mark.parametrize("lost", ["gone", "empty", "garbled"])
def test_an_upload_whose_meta_file_a_power_cut_lost_starts_again(tmp_path, lost):
    """The meta file is not fsynced: after a power cut it may be gone, empty or half-written.
    Then the partial's bytes are dropped and the phone's upload starts again from 0, and the
    photo still completes with its hash checked."""
    store = LocalMediaStore(tmp_path)
    half = len(SMALL_BYTES) // 2
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:half], len(SMALL_BYTES))
    assert store.partial_offset(SMALL_SHA) == half
    meta = tmp_path / "partials" / f"{SMALL_SHA}.json"
    if lost == "gone":
        meta.unlink()
    else:
        meta.write_text("" if lost == "empty" else '{"sha256": "', "utf-8")
    assert store.partial_offset(SMALL_SHA) is None  # the phone is told to start at 0
    resumed = store.append_chunk(SMALL_SHA, half, SMALL_BYTES[half:], len(SMALL_BYTES))
    assert not isinstance(resumed, Completed)  # bytes without a declared length are not kept
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES[:half], len(SMALL_BYTES))
    done = store.append_chunk(SMALL_SHA, half, SMALL_BYTES[half:], len(SMALL_BYTES))
    assert isinstance(done, Completed)
    with store.open(SMALL_SHA) as f:
        assert f.read() == SMALL_BYTES


def test_a_meta_file_left_by_a_power_cut_after_completion_is_swept(tmp_path):
    """Removing the meta file at completion is not fsynced either: one that comes back names no
    partial, never hides the stored photo, and goes with the abandoned partials."""
    store = LocalMediaStore(tmp_path)
    store.append_chunk(SMALL_SHA, 0, SMALL_BYTES, len(SMALL_BYTES))
    meta = tmp_path / "partials" / f"{SMALL_SHA}.json"
    meta.write_text(json.dumps({"sha256": SMALL_SHA, "length": len(SMALL_BYTES)}), "utf-8")
    assert store.has(SMALL_SHA) and store.partial_offset(SMALL_SHA) is None
    now = 2_000_000_000.0
    os.utime(meta, (now - 7200, now - 7200))
    store.remove_partials_older_than(3600, now=now)
    assert not meta.exists() and store.has(SMALL_SHA)
