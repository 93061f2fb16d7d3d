"""Push and pull rules that need no database: content identity, item outcomes and cursors.

A phone may send the same item again (it never learned the first push worked); the server
must answer "duplicate" when the content is the same and refuse, never overwrite, when an id
comes back with different content. Pull cursors are opaque to phones; they carry the last
change sequence seen and a key of the caller's scope, so a user whose villages change starts
again from the beginning instead of missing the older records of a new village.
"""

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping

from sync.clock import Clock

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REFUSED = "refused"
INVALID = "invalid"
WAITING = "waiting_for_photos"
FAILED = "failed"  # the server could not store this item now; the phone sends it again

# Fields that describe the transport, not the item: a resend may differ in them.
_TRANSPORT_FIELDS = frozenset({"type", "sent_at"})


def content_hash(item: dict) -> str:
    """SHA-256 of an item's canonical JSON, transport fields left out."""
    content = {k: v for k, v in item.items() if k not in _TRANSPORT_FIELDS}
    raw = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def classify(stored_hash: str | None, new_hash: str) -> str:
    """What to do with an item given the hash stored under its id (None: new id)."""
    if stored_hash is None:
        return ACCEPTED
    return DUPLICATE if stored_hash == new_hash else REFUSED


def too_far_ahead(sent: Clock, now_ms: int, ahead_ms: int) -> bool:
    """A clock the server will not adopt: more than `ahead_ms` ahead of its own time."""
    return sent.wall_ms > now_ms + ahead_ms


def restamp(sent: Clock, server_now: Clock) -> Clock:
    """Order a far-ahead report at the server's clock on receipt, keeping the phone's device.

    The device stays so that "a phone has seen its own earlier reports" (sync/merge.py) still
    holds, and two re-stamped reports from different phones can still conflict.
    """
    return Clock(server_now.wall_ms, server_now.counter, sent.device)


def cap_base(base: Mapping[str, Clock], clock: Clock) -> dict[str, Clock]:
    """Base clocks later than the observation's own are capped to it: no report saw its future."""
    return {name: min(seen, clock) for name, seen in base.items()}


def scope_key(user_id: int, villages: Iterable[str]) -> str:
    """A short fingerprint of who is pulling and which villages they see."""
    raw = f"{user_id}:" + ",".join(sorted(villages))
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


_SEQ = re.compile(r"[0-9]{1,18}")  # ASCII digits that fit SQLite's 64-bit integers


def encode_cursor(seq: int, scope: str) -> str:
    return base64.urlsafe_b64encode(f"v1:{seq}:{scope}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, scope: str) -> tuple[int, bool]:
    """(sequence to continue after, whether the scope changed and the phone must start over).

    Raises ValueError for a cursor this server never issued.
    """
    if not cursor:
        return 0, False
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("cursor is not one this server issued") from exc
    parts = raw.split(":")
    if len(parts) != 3 or parts[0] != "v1" or not _SEQ.fullmatch(parts[1]):
        raise ValueError("cursor is not one this server issued")
    if parts[2] != scope:
        return 0, True
    return int(parts[1]), False


def latest_per_entity(rows: Iterable[tuple[int, str, str]]) -> list[tuple[str, str]]:
    """Entities changed in a page, once each, in the order of their last change."""
    last: dict[tuple[str, str], int] = {}
    for seq, entity, entity_id in rows:
        last[(entity, entity_id)] = seq
    return sorted(last, key=last.__getitem__)
