"""The audit log as a hash chain: appending, verifying, anchoring and archiving (issue 13).

Every entry carries `seq` (1, 2, 3, … with no gaps), `prev_hash` (the `hash` of entry seq - 1,
GENESIS for the first) and `hash`: SHA-256 over the canonical encoding of its own fields and
`prev_hash` (`entry_hash`). Editing an entry breaks its hash; deleting one breaks the next
entry's `prev_hash` and leaves a gap in `seq`; swapping two entries' `seq` breaks both hashes
(seq is hashed). `verify` walks the chain in seq order and reports the first broken link.

Appends are serialised: on PostgreSQL by a transaction-scoped advisory lock (AUDIT_KEY, held
to the commit, so two writers never read the same head), on SQLite by its single write lock.

Every ANCHOR_EVERY entries (and daily, by the `audit-retention` job) an `audit.anchor` entry
records the chain head it follows and the count so far: an operator can copy anchors out
(printout, another system) and later prove the chain up to them was not rewritten.

Retention (`archive_older_than`): entries older than the cut are written to a gzip JSON-lines
file first, then deleted, and an `audit.archive` entry (appended to the chain) records the
archived range, its last hash and the file. The remaining chain then starts at seq > 1 whose
`prev_hash` must equal the newest `audit.archive` entry's `head`: deleting more entries from the
start, or archiving without the anchor, is caught. With the archive files, `verify` checks
the whole chain from the genesis.
"""

import gzip
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .dialect import AUDIT_KEY

GENESIS = "0" * 64
#: An `audit.anchor` entry after every this many entries.
ANCHOR_EVERY = 1000
FIELDS = ("seq", "at", "user_id", "action", "entity", "entity_id", "detail")
ANCHOR = "audit.anchor"
ARCHIVE = "audit.archive"


def canonical(entry: dict, prev_hash: str) -> bytes:
    """The bytes an entry's hash covers: its fields in a fixed order, and the previous hash."""
    values = [entry.get(name) for name in FIELDS]
    values[2] = None if values[2] is None else int(values[2])
    values[0] = int(values[0])
    return json.dumps(
        [*values, prev_hash], ensure_ascii=False, separators=(",", ":"), sort_keys=True
    ).encode()


def entry_hash(entry: dict, prev_hash: str) -> str:
    return hashlib.sha256(canonical(entry, prev_hash)).hexdigest()


def head(store) -> dict | None:
    return store.row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")


def append(store, entry: dict) -> dict:
    """Append one entry (at, user_id, action, entity, entity_id, detail as text) to the chain,
    inside the caller's write; an anchor follows every ANCHOR_EVERY entries."""
    store._lock([AUDIT_KEY])
    top = head(store)
    row = _insert(store, entry, top)
    if row["seq"] % ANCHOR_EVERY == 0:
        row = _insert(store, _anchor_entry(row, entry["at"]), row)
    return row


def anchor(store, at: str) -> dict | None:
    """Append an `audit.anchor` entry recording the current head (None on an empty log)."""
    with store.write():
        store._lock([AUDIT_KEY])
        top = head(store)
        if top is None:
            return None
        return _insert(store, _anchor_entry(top, at), top)


def _anchor_entry(top: dict, at: str) -> dict:
    detail = json.dumps({"count": top["seq"], "head": top["hash"]}, separators=(",", ":"))
    return {
        "at": at,
        "user_id": None,
        "action": ANCHOR,
        "entity": "audit",
        "entity_id": None,
        "detail": detail,
    }


def _insert(store, entry: dict, top: dict | None) -> dict:
    row = {name: entry.get(name) for name in FIELDS if name != "seq"}
    row["seq"] = (int(top["seq"]) if top else 0) + 1
    row["prev_hash"] = top["hash"] if top else GENESIS
    row["hash"] = entry_hash(row, row["prev_hash"])
    store.q(
        "INSERT INTO audit (seq, at, user_id, action, entity, entity_id, detail, prev_hash, hash)"
        " VALUES (:seq, :at, :user_id, :action, :entity, :entity_id, :detail, :prev_hash, :hash)",
        **row,
    )
    return row


# -- verifying --------------------------------------------------------------------------------


@dataclass
class Verdict:
    ok: bool
    count: int = 0
    archived: int = 0
    problem: str | None = None  # what is wrong, in Chinese, naming the entry
    entry_id: int | None = None
    seq: int | None = None
    head: str | None = None
    notes: list[str] = field(default_factory=list)


def _walk(entries: Iterable[dict], prev: str, expected_seq: int, where: str):
    """Check each entry in turn; returns (count, last hash, next seq) or raises _Broken."""
    count = 0
    for e in entries:
        if e.get("seq") != expected_seq:
            raise _Broken(
                e, f"{where}序号不连续：应为 {expected_seq}，实为 {e.get('seq')}（删除或调换）"
            )
        if e.get("prev_hash") != prev:
            raise _Broken(e, f"{where}前一哈希不符（前一条记录被删除、修改或调换）")
        if e.get("hash") != entry_hash(e, prev):
            raise _Broken(e, f"{where}内容与哈希不符（记录被修改或调换）")
        prev = e["hash"]
        expected_seq += 1
        count += 1
    return count, prev, expected_seq


class _Broken(Exception):
    def __init__(self, entry: dict, problem: str):
        super().__init__(problem)
        self.entry = entry
        self.problem = problem


def table_entries(store, batch: int = 1000) -> Iterator[dict]:
    return store.stream(
        "SELECT id, seq, at, user_id, action, entity, entity_id, detail, prev_hash, hash"
        " FROM audit ORDER BY seq, id",
        batch,
    )


def archive_entries(folder) -> Iterator[dict]:
    """The entries of every archive file in `folder`, in seq order of the files."""
    files = sorted(Path(folder).glob("audit-*.jsonl.gz"))
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


def verify(store, archive_dir=None) -> Verdict:
    """Walk the chain (the archive files first, when given) and report the first broken link."""
    prev, seq, archived = GENESIS, 1, 0
    try:
        if archive_dir is not None:
            archived, prev, seq = _walk(archive_entries(archive_dir), prev, seq, "归档中")
        with store.reading():
            first = store.row("SELECT min(seq) AS seq FROM audit")["seq"]
            if archive_dir is None and first is not None and first > 1:
                cut = _last_archive(store)
                if cut is None or cut.get("last_seq") != first - 1:
                    return Verdict(
                        False,
                        problem=f"日志从序号 {first} 开始，但没有归档记录说明前 {first - 1} 条"
                        "（记录被删除）",
                        seq=first,
                    )
                prev, seq = cut["head"], first
            count, last, _ = _walk(table_entries(store), prev, seq, "")
            if archived and not count:
                return Verdict(
                    False,
                    archived=archived,
                    seq=seq,
                    problem="归档之后的记录全部被删除（归档总会在日志中留下一条归档记录）",
                )
    except _Broken as broken:
        e = broken.entry
        return Verdict(
            False,
            problem=broken.problem,
            entry_id=e.get("id"),
            seq=e.get("seq"),
            archived=archived,
        )
    return Verdict(True, count=count, archived=archived, head=last)


def _last_archive(store) -> dict | None:
    found = store.row(
        "SELECT detail FROM audit WHERE action = :action ORDER BY seq DESC LIMIT 1", action=ARCHIVE
    )
    if not found or not found["detail"]:
        return None
    try:
        return json.loads(found["detail"])
    except ValueError:
        return None


# -- retention --------------------------------------------------------------------------------


def archive_older_than(store, cutoff: str, folder, *, at: str) -> dict:
    """Move entries with `at` before `cutoff` (ISO text) to a gzip JSON-lines file in `folder`,
    then delete them and append an `audit.archive` entry. Stops at the first entry not older
    than the cut (entries are taken in seq order), so nothing younger is ever removed. The file
    is written and synced before anything is deleted; all in one write.
    """
    folder = Path(folder)
    with store.write():
        store._lock([AUDIT_KEY])
        young = store.scalar("SELECT min(seq) FROM audit WHERE at >= :cutoff", cutoff=cutoff)
        old = store.rows(
            "SELECT seq, at, user_id, action, entity, entity_id, detail, prev_hash, hash"
            " FROM audit WHERE seq < :young ORDER BY seq",
            young=young if young is not None else (head(store) or {"seq": 0})["seq"] + 1,
        )
        if not old:
            return {"archived": 0}
        folder.mkdir(parents=True, exist_ok=True)
        first, last = old[0]["seq"], old[-1]["seq"]
        path = folder / f"audit-{first:012d}-{last:012d}.jsonl.gz"
        # A file from a run whose delete was rolled back holds entries the table still has
        # (same seq, same hash): replaced by this one, so archive files never overlap.
        still_held = {e["seq"]: e["hash"] for e in old}
        for stale in folder.glob("audit-*.jsonl.gz"):
            with gzip.open(stale, "rt", encoding="utf-8") as f:
                head_line = json.loads(f.readline() or "{}")
            if head_line.get("seq") in still_held and still_held[head_line["seq"]] == head_line.get(
                "hash"
            ):
                stale.unlink()
        tmp = path.with_suffix(".tmp")
        # Personal data (docs/PRIVACY.md): readable by the service's user and group only.
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640), "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb") as gz:
                for e in old:
                    gz.write((json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n").encode())
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
        top = head(store)  # before deleting: the whole table may be archived
        store.q("DELETE FROM audit WHERE seq <= :last", last=last)
        detail = json.dumps(
            {
                "first_seq": first,
                "last_seq": last,
                "head": old[-1]["hash"],
                "file": path.name,
                "cutoff": cutoff,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )
        _insert(
            store,
            {
                "at": at,
                "action": ARCHIVE,
                "entity": "audit",
                "entity_id": path.name,
                "detail": detail,
            },
            top,
        )
    return {"archived": len(old), "first_seq": first, "last_seq": last, "file": path.name}
