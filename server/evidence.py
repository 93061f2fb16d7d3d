"""Evidence flags of a submission: gather what the checks need, run them, store the result.

The checks themselves are pure (media/checks.py); this module reads their inputs from storage
and the near-duplicate index, and writes flags and the risk score back. A submission is judged
once, when all its photos are in.

Reuse and near-duplicate flags relate submissions to each other, and the first use of a reused
photo must be flagged too, whichever arrived first. Judging stays bounded however often a photo
is reused: a new submission asks only *whether* another judged submission uses its photos (one
probe per photo), stores the flag without figures, and adds the same flag to the other judged
uses that lack it (each use gains it once, so after the second use there is nothing to add).
The figures (how many other records, which facilities) are counted when the flag is read, so
they are current and the same whatever order submissions arrived in; that is also where they
are redacted for a viewer who may not see the other records (`visible_flags`).
"""

import json
import logging
import threading
from collections.abc import Collection, Mapping, Sequence

import numpy as np
from flask import current_app

from media.checks import (
    CODES,
    OTHER_TOWNSHIP,
    RELATION_SUMMARY,
    EvidenceSettings,
    Flag,
    PhotoEvidence,
    check_submission,
    near_flag,
    reuse_flag,
    risk_score,
)
from media.near_dup import CROPS, DEFAULT_MIN_SIMILARITY, Match, NearDuplicateIndex, similarity
from media.phash import dihedral_hashes, from_hex

from .auth import scope_villages
from .context import media_store
from .overrides import county_code, effective_config
from .stamp import issue_codes
from .storage import Storage, connect

log = logging.getLogger("villagecheck.evidence")

# Figures of a flag on a photo the viewer may not see that come from the photo itself (EXIF).
WITHHELD = {
    "zh": f"这张照片属于{OTHER_TOWNSHIP['zh']}，不是本记录的作者上传的，不显示其详情",
    "en": f"This photo belongs to {OTHER_TOWNSHIP['en']}, not uploaded by this record's author;"
    " its details are withheld",
}


def settings_from(config) -> EvidenceSettings:
    return EvidenceSettings(
        far_metres=config["EVIDENCE_FAR_METRES"],
        register_uncertainty_metres=config["EVIDENCE_REGISTER_UNCERTAINTY_METRES"],
        taken_before_hours=config["EVIDENCE_TAKEN_BEFORE_HOURS"],
        taken_after_minutes=config["EVIDENCE_TAKEN_AFTER_MINUTES"],
        near_duplicate_distance=config["EVIDENCE_NEAR_DUPLICATE_BITS"],
        skew_minutes=config["SKEW_FLAG_MINUTES"],
        high_risk_score=config["HIGH_RISK_SCORE"],
    )


class HashCache:
    """The near-duplicate index of one database (keyed by its URL), kept in memory and topped
    up from it before every use with the photos after the last `seq` seen: one indexed query,
    empty when nothing changed. A photo ingested by any process (a server worker, `villagecheck
    worker`) is found by the next query in every other.

    Only a cache: the media table is the truth, and each process builds its own copy. Media
    rows commit in `seq` order (storage/media.py), so with several server processes on
    PostgreSQL a photo committed late is never skipped.

    Building it from a large archive takes seconds (tests/bench/bench_hash_cache.py: 1M photos),
    so a serving process starts loading it in the background when it starts (`warm`); a use
    before that is done waits for it rather than loading a second copy. Rows are read and
    parsed `BATCH` at a time into numpy arrays.
    """

    BATCH = 50_000
    _lock = threading.Lock()
    _entries: dict[str, "_CacheEntry"] = {}

    @classmethod
    def _entry(cls, key: str) -> "_CacheEntry":
        with cls._lock:
            return cls._entries.setdefault(key, _CacheEntry())

    @classmethod
    def warm(cls, url: str) -> threading.Thread:
        """Start loading `url`'s index in a background thread (once per process)."""
        entry = cls._entry(url)
        with cls._lock:
            if entry.loader is None:
                entry.loader = threading.Thread(
                    target=cls._load, args=(url, entry), name="near-dup-index", daemon=True
                )
                entry.loader.start()
            return entry.loader

    @classmethod
    def _load(cls, url: str, entry: "_CacheEntry") -> None:
        try:
            store = connect(url)
            try:
                with entry.lock:
                    entry.top_up(store, cls.BATCH)
            finally:
                store.close()
        except Exception:  # the next use loads what is missing itself
            log.exception("loading the near-duplicate index in the background failed")

    @classmethod
    def index(cls, store: Storage, key: str) -> NearDuplicateIndex:
        entry = cls._entry(key)
        loader = entry.loader
        if loader is not None and loader is not threading.current_thread():
            loader.join()
        with entry.lock:
            entry.top_up(store, cls.BATCH)
            return entry.index

    @classmethod
    def forget(cls) -> None:
        """Drop every cached index (tests, benches)."""
        with cls._lock:
            cls._entries.clear()


class _CacheEntry:
    def __init__(self):
        self.index = NearDuplicateIndex()
        self.last = 0
        self.lock = threading.Lock()
        self.loader: threading.Thread | None = None

    def top_up(self, store: Storage, batch: int) -> None:
        """Add the photos after `last`, `batch` rows at a time (the caller holds `lock`)."""
        while True:
            rows = store.media_hashes_after(self.last, limit=batch)
            if rows:
                self.index.extend(*_hash_arrays(rows))
                self.last = rows[-1][0]
            if len(rows) < batch:
                return


#: Canonical JSON of CROPS 16-digit hex strings: `["…","…",…]`.
_CROPS_JSON_LEN = 2 + CROPS * 16 + (CROPS - 1) * 3 + 2


def _hex_array(text: str) -> np.ndarray:
    """Concatenated 16-digit hex numbers as uint64, parsed at C speed."""
    return np.frombuffer(bytes.fromhex(text), dtype=">u8").astype(np.uint64)


def _hash_arrays(rows: Sequence[tuple]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Keys, full hashes and crop hashes (the full hash standing in when a photo has none) of
    `media_hashes_after` rows. Hashes are 16-digit hex (`to_hex`), crop hashes canonical JSON
    arrays of them, so a batch is parsed as one hex string rather than row by row."""
    keys = [r[1] for r in rows]
    if any(len(r[2]) != 16 for r in rows):  # not written by to_hex: parse one by one
        full = np.array([int(r[2], 16) for r in rows], dtype=np.uint64)
    else:
        full = _hex_array("".join(r[2] for r in rows))
    crops = np.repeat(full[:, None], CROPS, axis=1)
    whole = [i for i, r in enumerate(rows) if r[3] and len(r[3]) == _CROPS_JSON_LEN]
    if whole:
        text = "".join(rows[i][3][2:-2].replace('","', "") for i in whole)
        crops[whole] = _hex_array(text).reshape(-1, CROPS)
    for i, r in enumerate(rows):  # anything else: read as JSON (empty: the full hash)
        if r[3] and len(r[3]) > 2 and len(r[3]) != _CROPS_JSON_LEN:
            older = [int(h, 16) for h in json.loads(r[3])][:CROPS]  # older photos: 5 regions
            crops[i, : len(older)] = older
    return keys, full, crops


def _photo(row: dict) -> PhotoEvidence:
    exif = row["exif"] or {}
    return PhotoEvidence(
        sha256=row["sha256"],
        exif_present=bool(exif.get("present")),
        exif_error=exif.get("error"),
        exif_lat=exif.get("lat"),
        exif_lon=exif.get("lon"),
        taken_at=exif.get("taken_at"),
        software=exif.get("software"),
        phone_position=row["position"],
        captured_at=row["captured_at"],
    )


def _display(sha256: str):
    """The 320 px display version kept at ingest, decoded, or None when it is not there."""
    from PIL import Image

    try:
        handle = media_store().open_derived(sha256, "320.jpg")
        if handle is None:
            return None
        with handle:
            img = Image.open(handle)
            img.load()
            return img.convert("RGB")
    except Exception:  # a missing or unreadable display version: no second stage possible
        log.warning("display version of %s unreadable for the near-duplicate check", sha256)
        return None


#: Candidates of one photo confirmed by the second stage at most, nearest first: each costs
#: two photo-store reads and a decode, and a burst of look-alike photos across facilities must
#: not make judging one photo cost as much as the whole burst.
MAX_SECOND_STAGE = 12


def _near_matches(
    index: NearDuplicateIndex,
    photos,
    threshold: int,
    eligible,
    min_similarity: float | None = None,
) -> dict[str, dict]:
    """sha256 -> {other photo's sha256: {"distance", "similarity"}} for each photo with a
    perceptual hash: candidates from the index (the photo's eight dihedral forms, from its
    display version), kept if `eligible(candidates)` keeps them (photos of other records: the
    same facility photographed every month is no fraud, and must not cost a second stage
    each time), then confirmed by the second stage on the two display versions. A candidate
    whose display versions cannot be read keeps its hash distance alone (similarity None)."""
    if min_similarity is None:
        min_similarity = current_app.config.get(
            "EVIDENCE_NEAR_DUPLICATE_SIMILARITY", DEFAULT_MIN_SIMILARITY
        )
    candidates = {}
    for photo in photos:
        if not photo["phash"]:
            continue
        crops = [from_hex(c) for c in photo["crop_hashes"] or []]
        img = _display(photo["sha256"])
        forms = dihedral_hashes(img)[1:] if img is not None else ()
        matches = index.query_matches(from_hex(photo["phash"]), threshold, crops=crops, forms=forms)
        candidates[photo["sha256"]] = (img, [m for m in matches if m.key != photo["sha256"]])
    keep = eligible({m.key for _, matches in candidates.values() for m in matches})
    near = {}
    for sha256, (img, matches) in candidates.items():
        found = {}
        tried = 0
        for m in sorted(matches, key=lambda m: (m.distance, str(m.key))):
            if m.key in found or m.key not in keep:
                continue
            if tried == MAX_SECOND_STAGE:
                break
            tried += 1
            score = _confirm(img, m)
            if score is None or score >= min_similarity:
                found[m.key] = {"distance": m.distance, "similarity": score}
        near[sha256] = found
    return near


def _confirm(img, match: Match) -> float | None:
    other = _display(str(match.key)) if img is not None else None
    if img is None or other is None:
        return None
    return similarity(img, other, match)


def _grant_held_in_scope(store: Storage, inputs: dict, at: str) -> None:
    """The author holds photos they did not upload but could already see when submitting."""
    author = store.user(id=inputs["author_id"]) if inputs["author_id"] is not None else None
    if author is None:
        return
    hashes = {p["sha256"] for p in inputs["photos"]}
    unheld = hashes - store.photos_held_by(author["id"], hashes)
    if unheld:
        for sha in sorted(store.readable_photos(unheld, scope_villages(store, author))):
            store.record_holder(sha, author["id"], source="scope", at=at)


def _stored(flag: Flag) -> dict:
    """A flag as stored: reuse and near-duplicate figures are counted when read."""
    figures, message = flag.figures, flag.message
    if flag.code in RELATION_SUMMARY:
        figures, message = {}, dict(RELATION_SUMMARY[flag.code])
    return {"code": flag.code, "photo": flag.photo, "figures": figures, "message": message}


def judge(
    store: Storage,
    submission_id: str,
    *,
    settings: EvidenceSettings,
    index: NearDuplicateIndex,
    at: str,
) -> None:
    """Compute and store one submission's flags, and add the other side of its relations."""
    inputs = store.evidence_inputs(submission_id)
    record = inputs["record_id"]
    hashes = sorted({p["sha256"] for p in inputs["photos"]})
    _grant_held_in_scope(store, inputs, at)
    reused = store.uses_elsewhere(hashes, submission_id=submission_id)
    near = _near_matches(
        index,
        inputs["photos"],
        settings.near_duplicate_distance,
        lambda keys: store.uses_elsewhere(keys, submission_id=submission_id, record_id=record),
    )
    near_used = {o for m in near.values() for o in m}
    position = (
        {"lat": inputs["lat"], "lon": inputs["lon"], "datum": inputs.get("datum") or "wgs84"}
        if inputs["lat"] is not None
        else None
    )
    flags = check_submission(
        photos=[_photo(p) for p in inputs["photos"]],
        facility_position=position,
        observed_at=inputs["observed_at"],
        device_skew_ms=inputs["skew_ms"],
        same_bytes_elsewhere={sha: [{}] for sha in reused},
        near_duplicates={
            sha: [{"sha256": o, **f} for o, f in m.items() if o in near_used]
            for sha, m in near.items()
        },
        settings=settings,
    )
    store.set_evidence(
        submission_id,
        flags=[_stored(f) for f in flags],
        risk_score=risk_score(flags, settings),
        state="complete",
        at=at,
    )
    others = [
        (sid, sha, "reused_photo")
        for sid, sha in store.unflagged_uses(reused, "reused_photo", submission_id=submission_id)
    ]
    others += [
        (sid, sha, "near_duplicate")
        for sid, sha in store.unflagged_uses(
            near_used, "near_duplicate", submission_id=submission_id, record_id=record
        )
    ]
    _add_relation_flags(store, others, settings)


def _add_relation_flags(store: Storage, added, settings: EvidenceSettings) -> None:
    """Give already-judged submissions a reuse or near-duplicate flag, and rescore them."""
    if not added:
        return
    store.add_flags(
        [{"submission_id": sid, **_stored(Flag(code, sha, {}, {}))} for sid, sha, code in added]
    )
    codes = store.flag_codes({sid for sid, _, _ in added})
    store.set_risk_scores(
        {
            sid: risk_score([Flag(c, None, {}, {}) for c in found], settings)
            for sid, found in codes.items()
        }
    )


def judge_complete(store: Storage, submission_ids, *, at: str) -> None:
    """Judge submissions whose photos are all in (each once, whatever else uses its photos)."""
    config = current_app.config
    index = HashCache.index(store, config["DATABASE_URL"])
    villages = store.villages_of_submissions(submission_ids)
    by_county = {}  # the thresholds an admin set for each county (server/overrides.py)
    for sid in submission_ids:
        county = county_code(villages.get(sid, ""))
        if county not in by_county:
            by_county[county] = settings_from(effective_config(config, store, county))
        judge(store, sid, settings=by_county[county], index=index, at=at)
    issue_codes(store, submission_ids)  # the photo stamps' codes (server/stamp.py)


# -- reading flags -------------------------------------------------------------------------


def relation_flags(store: Storage, submission_id: str) -> list[dict]:
    """A submission's stored flags in check order, reuse and near-duplicate ones with their
    other records (each with its village) counted now. Not yet redacted for any viewer."""
    config = current_app.config
    index = HashCache.index(store, config["DATABASE_URL"])
    threshold = config["EVIDENCE_NEAR_DUPLICATE_BITS"]
    inputs = store.evidence_inputs(submission_id)
    if inputs is None:
        return []
    order = list(dict.fromkeys(p["sha256"] for p in inputs["photos"]))
    out = []
    for flag in store.flags_of(submission_id):
        if flag["code"] == "reused_photo":
            uses = store.judged_uses([flag["photo"]], submission_id=submission_id)
            flag["relations"] = [
                {
                    "submission_id": u["submission_id"],
                    "facility_id": u["record_id"],
                    "village": u["village_code"],
                }
                for u in uses
            ]
        elif flag["code"] == "near_duplicate":
            photos = [p for p in inputs["photos"] if p["sha256"] == flag["photo"]][:1]
            near = _near_matches(
                index,
                photos,
                threshold,
                lambda keys: {
                    u["sha256"]
                    for u in store.judged_uses(
                        keys, submission_id=submission_id, record_id=inputs["record_id"]
                    )
                },
            ).get(flag["photo"], {})
            uses = store.judged_uses(
                near, submission_id=submission_id, record_id=inputs["record_id"]
            )
            flag["threshold"] = threshold
            flag["relations"] = [
                {
                    "sha256": u["sha256"],
                    "facility_id": u["record_id"],
                    "distance": near[u["sha256"]]["distance"],
                    "similarity": near[u["sha256"]]["similarity"],
                    "village": u["village_code"],
                }
                for u in uses
            ]
        out.append(flag)
    out.sort(
        key=lambda f: (
            f["photo"] is not None,
            order.index(f["photo"]) if f["photo"] in order else len(order),
            CODES.index(f["code"]) if f["code"] in CODES else len(CODES),
        )
    )
    return out


def visible_flags(
    flags: Sequence[Mapping],
    *,
    villages: Collection[str],
    readable: Collection[str],
    admin: bool,
) -> list[dict]:
    """Flags as one viewer may see them (pure).

    Other records outside the viewer's villages become "another township's record": counted,
    with no submission, facility or photo hash. A flag on a photo the viewer may not read (see
    PROTOCOL, Photos) keeps its code but not the figures the photo's own EXIF gave. Admins see
    everything.
    """
    out = []
    for flag in flags:
        code, photo = flag["code"], flag.get("photo")
        shown = {
            "code": code,
            "photo": photo,
            "figures": flag["figures"],
            "message": flag["message"],
        }
        if code in RELATION_SUMMARY:
            relations = [
                r
                if admin or r.get("village") in villages
                else {
                    "other_township": True,
                    "distance": r.get("distance"),
                    "similarity": r.get("similarity"),
                }
                for r in flag.get("relations", ())
            ]
            rendered = (
                reuse_flag(photo, relations)
                if code == "reused_photo"
                else near_flag(photo, relations, flag.get("threshold", 0))
            )
            # Without current relations (a setting changed; flags stored before schema 4)
            # only the summary is shown: stored figures may name other townships' records.
            shown.update(
                figures=rendered.figures if rendered else {},
                message=rendered.message if rendered else dict(RELATION_SUMMARY[code]),
            )
        elif photo is not None and not admin and photo not in readable:
            shown.update(figures={"withheld": True}, message=dict(WITHHELD))
        out.append(shown)
    return out


def named_flags(flags: list[dict], names: Mapping[str, str]) -> list[dict]:
    """Flags whose messages and figures name records by `names` (id → name) rather than by
    their ids (a facility UUID, `task-450222101001-2026-11-…`) (pure). Figures that list
    record ids become `record_names`; messages have each known id replaced."""
    out = []
    for flag in flags:
        ids = flag["figures"].get("facility_ids") if isinstance(flag["figures"], dict) else None
        if not ids:
            out.append(flag)
            continue
        message = {}
        for lang, text in (flag.get("message") or {}).items():
            for record_id in sorted(ids, key=len, reverse=True):
                name = names.get(record_id)
                if name:
                    text = text.replace(record_id, f"“{name}”" if lang == "zh" else f'"{name}"')
            message[lang] = text
        figures = {k: v for k, v in flag["figures"].items() if k != "facility_ids"}
        figures["record_names"] = [names.get(i) or "（未命名记录）" for i in ids]
        out.append({**flag, "figures": figures, "message": message})
    return out


def record_names(store: Storage, ids) -> dict[str, str]:
    """Display names of facilities and monthly tasks by id (a task: its village and title)."""
    names = {}
    for record_id in set(ids):
        if record_id.startswith("task-"):
            task = store.task(record_id)
            if task:
                title = task.get("title")
                if isinstance(title, str):
                    try:
                        title = json.loads(title)
                    except ValueError:
                        title = {"zh": title}
                village = store.village(task["village_code"]) or {}
                label = (title or {}).get("zh") or task.get("template") or "月度工作"
                names[record_id] = (
                    f"{village.get('name', '')}{task.get('month', '')} {label}".strip()
                )
            continue
        facility = store.facility(record_id)
        if facility and facility.get("name"):
            names[record_id] = facility["name"]
    return names


def flags_for_viewer(store: Storage, submission_id: str, user: dict, villages) -> list[dict]:
    """A submission's flags with current figures, redacted for this viewer."""
    flags = relation_flags(store, submission_id)
    photos = {f["photo"] for f in flags if f["photo"]}
    return visible_flags(
        flags,
        villages=villages,
        readable=store.readable_photos(photos, villages),
        admin=user["role"] == "admin",
    )


def flags_for_desk(store: Storage, submission_id: str, user: dict, villages) -> list[dict]:
    """flags_for_viewer for a person reading the desk: the other records a flag cites (only
    ones the viewer may see are cited at all) by name, not id. The API keeps the ids. Each
    flag carries `weight`, the risk points its code adds (on the first flag of each code; the
    others 0, as a code counts once), so the desk can show why the score is what it is."""
    shown = flags_for_viewer(store, submission_id, user, villages)
    ids = [i for f in shown if isinstance(f["figures"], dict)
           for i in f["figures"].get("facility_ids") or ()]  # fmt: skip
    out = named_flags(shown, record_names(store, ids)) if ids else shown
    weights = settings_from(current_app.config).weights
    seen: set[str] = set()
    for flag in out:
        flag["weight"] = 0 if flag["code"] in seen else weights.get(flag["code"], 0)
        seen.add(flag["code"])
    return out
