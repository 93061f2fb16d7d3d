"""Evidence flags of a submission: gather what the checks need, run them, store the result.

The checks themselves are pure (media/checks.py); this module reads their inputs from storage
and the near-duplicate index, and writes flags and the risk score back. A submission is judged
when all its photos are in; submissions sharing a photo or a near-duplicate with it are judged
again, so the first use of a reused photo is flagged too, whichever arrived first.
"""

import json
import threading

from flask import current_app

from media.checks import EvidenceSettings, PhotoEvidence, check_submission, risk_score
from media.near_dup import NearDuplicateIndex
from media.phash import from_hex

from .storage import Storage


def settings_from(config) -> EvidenceSettings:
    return EvidenceSettings(
        far_metres=config["EVIDENCE_FAR_METRES"],
        taken_before_hours=config["EVIDENCE_TAKEN_BEFORE_HOURS"],
        taken_after_minutes=config["EVIDENCE_TAKEN_AFTER_MINUTES"],
        near_duplicate_distance=config["EVIDENCE_NEAR_DUPLICATE_BITS"],
        skew_minutes=config["SKEW_FLAG_MINUTES"],
        high_risk_score=config["HIGH_RISK_SCORE"],
    )


class HashCache:
    """The near-duplicate index of one database, kept in memory and topped up from it.

    Only a cache: the media table is the truth, and each process builds its own copy.
    """

    _lock = threading.Lock()
    _indexes: dict[str, tuple[NearDuplicateIndex, list[int]]] = {}

    @classmethod
    def index(cls, store: Storage, key: str) -> NearDuplicateIndex:
        with cls._lock:
            index, last = cls._indexes.setdefault(key, (NearDuplicateIndex(), [0]))
            for rowid, sha, phash, crops in store.media_hashes_after(last[0]):
                index.add(
                    sha, from_hex(phash), crops=[from_hex(c) for c in json.loads(crops or "[]")]
                )
                last[0] = rowid
            return index


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


def judge(
    store: Storage,
    submission_id: str,
    *,
    settings: EvidenceSettings,
    index_key: str,
    at: str,
    complete: bool,
) -> set[str]:
    """Compute and store one submission's flags; returns the other submissions it touches."""
    inputs = store.evidence_inputs(submission_id)
    photos = {p["sha256"]: p for p in inputs["photos"]}
    uses = [u for u in store.submissions_using(photos) if u["submission_id"] != submission_id]
    same_bytes = {}
    for use in uses:
        same_bytes.setdefault(use["sha256"], []).append(
            {"submission_id": use["submission_id"], "facility_id": use["record_id"]}
        )
    index = HashCache.index(store, index_key)
    near, near_hashes = {}, {}
    for sha, photo in photos.items():
        if not photo["phash"]:
            continue
        crops = [from_hex(c) for c in photo["crop_hashes"] or []]
        matches = index.query(
            from_hex(photo["phash"]), settings.near_duplicate_distance, crops=crops
        )
        near_hashes[sha] = {other: d for other, d in matches if other != sha}
    other_uses = store.submissions_using(h for m in near_hashes.values() for h in m)
    related = {u["submission_id"] for u in uses}
    for sha, matches in near_hashes.items():
        for use in other_uses:
            if use["sha256"] in matches and use["record_id"] != inputs["record_id"]:
                near.setdefault(sha, []).append(
                    {
                        "sha256": use["sha256"],
                        "facility_id": use["record_id"],
                        "distance": matches[use["sha256"]],
                    }
                )
                related.add(use["submission_id"])
    position = {"lat": inputs["lat"], "lon": inputs["lon"]} if inputs["lat"] is not None else None
    flags = check_submission(
        photos=[_photo(p) for p in inputs["photos"]],
        facility_position=position,
        observed_at=inputs["observed_at"],
        device_skew_ms=inputs["skew_ms"],
        same_bytes_elsewhere=same_bytes,
        near_duplicates=near,
        settings=settings,
    )
    store.set_evidence(
        submission_id,
        flags=[
            {"code": f.code, "photo": f.photo, "figures": f.figures, "message": f.message}
            for f in flags
        ],
        risk_score=risk_score(flags, settings),
        state="complete" if complete else None,
        at=at,
    )
    return related - {submission_id}


def judge_complete(store: Storage, submission_ids, *, at: str) -> None:
    """Judge submissions whose photos are all in, then once more those they touch."""
    config = current_app.config
    settings = settings_from(config)
    key = config["DATABASE_PATH"]
    touched = set()
    for sid in submission_ids:
        touched |= judge(store, sid, settings=settings, index_key=key, at=at, complete=True)
    for sid in sorted(touched - set(submission_ids)):
        if store.evidence_inputs(sid)["state"] != "received":
            judge(store, sid, settings=settings, index_key=key, at=at, complete=False)
