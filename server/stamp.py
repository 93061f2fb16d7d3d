"""Server-verified photo stamps: issuing codes, looking them up, the stamped display version.

Each use of a photo by a submission gets a code (media/stamp_code.py) when the submission
becomes complete, i.e. when its last photo's ingest completes or at push when all its photos
were already in (`issue_codes`, called from evidence.judge_complete). Its "received" time is
the submission's `completed_at`: the server had this photo for this record by then. Photos of
submissions completed before schema 8 get theirs lazily, the first time the desk shows the
submission or its stamped version (`codes_for`): a code is given out only there.

`look_up` answers /desk/verify: it recomputes each stored code from the stored facts with the
current secret (a row planted without the secret does not verify) and keeps only uses in the
viewer's villages; anything else is answered exactly like an unknown code.

The stamped version (media/stamp.py) is drawn on the 1280 px display version at its first
request and kept in the photo store as one more derived file of the photo, named after the use's
code (`stamp-<code>.jpg`: server-made, never from the request), so a photo used by two records
has two stamps. It is not made at ingest, to keep ingest fast.
"""

import collections
import logging
import threading
import time

from flask import current_app

from media import stamp_code
from media.images import make_display_versions
from media.stamp import StampFacts, render_jpeg

from .plot import valid
from .storage import Storage

log = logging.getLogger("villagecheck.stamp")
BASE_SIZE = 1280


def secret(config=None) -> bytes:
    return stamp_code.stamp_secret(config if config is not None else current_app.config)


def issue_codes(store: Storage, submission_ids, *, config=None) -> None:
    """Give every processed photo of these judged submissions its code, if it has none yet."""
    uses = store.codeless_photo_uses(submission_ids)
    if not uses:
        return
    key = secret(config)
    kid = stamp_code.key_id(key)
    store.insert_photo_codes(
        [
            {
                "submission_id": u["submission_id"],
                "sha256": u["sha256"],
                "received_at": u["received_at"],
                "key_id": kid,
                "code": stamp_code.make_code(
                    key,
                    sha256=u["sha256"],
                    submission_id=u["submission_id"],
                    received_at=u["received_at"],
                    facility_id=u["record_id"],
                ),
            }
            for u in uses
        ]
    )


def codes_for(store: Storage, submission_id: str) -> dict[str, dict]:
    """sha256 -> code row of a submission's photos, issuing missing ones first (photos
    processed before schema 8)."""
    codes = store.photo_codes_of(submission_id)
    if not codes or len(codes) < len(store.submission_photo_hashes(submission_id)):
        issue_codes(store, [submission_id])
        codes = store.photo_codes_of(submission_id)
    return codes


def look_up(store: Storage, text, villages) -> dict:
    """The uses a typed code names, as the viewer may see them.

    {"status": "found", "code": ..., "uses": [...]} for a code that verifies against its stored
    facts in one of `villages`; "old_key" when it was issued under a secret since replaced (only
    within those villages); "invalid" for anything else: malformed, unknown, altered, forged,
    planted without the secret, or outside the viewer's villages (the same answer, so the page
    tells nothing about other townships)."""
    code = stamp_code.normalize(text)
    if code is None:
        return {"status": "invalid", "code": None, "uses": []}
    allowed = set(villages)
    key = secret()
    kid = stamp_code.key_id(key)
    found, old = [], []
    for use in store.photo_code_uses(code):
        if use["village_code"] not in allowed:
            continue
        if use["key_id"] != kid:
            old.append(use)
            continue
        if stamp_code.verify(
            key,
            code,
            sha256=use["sha256"],
            submission_id=use["submission_id"],
            received_at=use["received_at"],
            facility_id=use["record_id"],
        ):
            found.append(use)
    status = "found" if found else "old_key" if old else "invalid"
    return {"status": status, "code": code, "uses": found}


def stamp_facts(store: Storage, submission: dict, sha256: str, code_row: dict) -> StampFacts:
    """What the stamp of one photo use says, from the stored record."""
    record = store.record(submission["record_type"], submission["record_id"]) or {}
    title = record.get("title")
    facility = record.get("name") or (title.get("zh") if isinstance(title, dict) else title)
    village = store.village(submission["village_code"]) or {}
    village_text = village.get("name") or submission["village_code"]
    if village.get("township"):
        village_text += f"（{village['township']}）"
    author = submission.get("author_id")
    inspector = store.desk_user_names([author]).get(author, "") if author is not None else ""
    photo = next((p for p in store.desk_photos([submission["id"]]) if p["sha256"] == sha256), {})
    exif = photo.get("exif") or {}
    phone = photo.get("position") or {}
    lat = lon = accuracy = source = None
    if valid(exif.get("lat"), exif.get("lon")):
        lat, lon, source = exif["lat"], exif["lon"], "exif"
    elif valid(phone.get("lat"), phone.get("lon")):
        lat, lon, source = phone["lat"], phone["lon"], "phone"
        accuracy = phone.get("accuracy")
    captured, captured_source = photo.get("captured_at"), "phone"
    if not captured and exif.get("taken_at"):
        captured, captured_source = exif["taken_at"], "exif"
    return StampFacts(
        facility=str(facility or submission["record_id"]),
        village=village_text,
        code=code_row["code"],
        received_at=code_row["received_at"],
        inspector=inspector,
        captured_at=captured,
        captured_source=captured_source if captured else None,
        lat=lat,
        lon=lon,
        accuracy_m=accuracy if isinstance(accuracy, int | float) else None,
        position_source=source,
    )


def derived_name(code: str) -> str:
    """The stamped version's name in the photo store (a code is [0-9A-Z]{10})."""
    return f"stamp-{code.lower()}.jpg"


def stamped_jpeg(store: Storage, media, submission: dict, sha256: str) -> tuple[bytes, str] | None:
    """(the stamped JPEG, its code) of a photo of a submission the caller may see, made and kept
    at the first request; None when the photo has no code (not processed yet)."""
    code_row = codes_for(store, submission["id"]).get(sha256)
    if code_row is None:
        return None
    name = derived_name(code_row["code"])
    kept = media.open_derived(sha256, name)
    if kept is not None:
        with kept:
            return kept.read(), code_row["code"]
    base = media.open_derived(sha256, f"{BASE_SIZE}.jpg")
    if base is not None:
        with base:
            data = base.read()
    else:
        with media.open(sha256) as original:
            data = make_display_versions(
                original.read(),
                (BASE_SIZE,),
                max_pixels=current_app.config["MAX_PHOTO_PIXELS"],
            )[BASE_SIZE]
    jpeg, font_ok = render_jpeg(data, stamp_facts(store, submission, sha256, code_row))
    if font_ok:
        media.put_derived(sha256, name, jpeg)
    return jpeg, code_row["code"]


class VerifyLimiter:
    """At most STAMP_VERIFY_PER_MINUTE look-ups per user and minute, per process: a code space
    of 50 bits is not guessed by hand, and this keeps the page from being used to try codes in
    bulk (the answers never reach beyond the viewer's villages anyway)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._seen: dict[int, collections.deque] = {}

    def allow(self, user_id: int, config, now: float | None = None) -> bool:
        limit = int(config.get("STAMP_VERIFY_PER_MINUTE") or 0)
        if limit <= 0:
            return True
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._seen) > 10_000:  # forget idle users now and then
                self._seen = {u: q for u, q in self._seen.items() if q and q[-1] > now - 60}
            seen = self._seen.setdefault(user_id, collections.deque())
            while seen and seen[0] <= now - 60:
                seen.popleft()
            if len(seen) >= limit:
                return False
            seen.append(now)
            return True


VERIFY_LIMITER = VerifyLimiter()
