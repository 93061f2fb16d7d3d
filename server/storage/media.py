"""The photo pipeline: media rows, who holds each photo, evidence flags and risk scores.

A method given an empty list answers without a statement.
"""

import json
from collections.abc import Iterable

from .core import dumps
from .dialect import MEDIA_SEQ_KEY


def _judged_elsewhere(record_id: str | None) -> str:
    """Use `m` is by a judged submission `s` other than :submission_id (and about another
    record than :record_id, when one is given)."""
    other_record = " AND s.record_id != :record_id" if record_id is not None else ""
    return f"m.submission_id != :submission_id AND s.state != 'received'{other_record}"


class MediaMixin:
    """Media, photo holders and evidence flags."""

    # -- media and evidence (photo pipeline) -------------------------------------------------

    def missing_media(self, hashes: Iterable[str]) -> list[str]:
        """Which of these photo hashes the server does not hold yet, sorted."""
        wanted = sorted(set(hashes))
        if not wanted:
            return []
        held = {
            r[0] for r in self.q("SELECT sha256 FROM media WHERE sha256 IN :hashes", hashes=wanted)
        }
        return [h for h in wanted if h not in held]

    def photos_without_media(self) -> list[str]:
        """Photos submissions use that have no media row: not uploaded yet, or held but not
        processed (a crash between the upload and its row; the photo store tells which)."""
        return list(
            self.q(
                "SELECT DISTINCT sm.sha256 FROM submission_media sm"
                " LEFT JOIN media m ON m.sha256 = sm.sha256 WHERE m.sha256 IS NULL"
                " ORDER BY sm.sha256"
            ).scalars()
        )

    def received_with_all_photos(self) -> list[str]:
        """Submissions still `received` although every photo they use has its media row."""
        return list(
            self.q(
                "SELECT s.id FROM submissions s WHERE s.state = 'received' AND NOT EXISTS"
                " (SELECT 1 FROM submission_media sm LEFT JOIN media m ON m.sha256 = sm.sha256"
                " WHERE sm.submission_id = s.id AND m.sha256 IS NULL) ORDER BY s.id"
            ).scalars()
        )

    def insert_media(self, row: dict) -> None:
        """Record a photo the server now holds, with its EXIF facts and perceptual hashes.

        Under the photo numbering's lock (PostgreSQL), so `seq` numbers commit in order and the
        near-duplicate index, which each process tops up with `media_hashes_after(last seq
        seen)`, never skips a photo committed late."""
        with self.write():
            self._lock([MEDIA_SEQ_KEY])
            self.q(
                "INSERT INTO media (sha256, size, mime, width, height, exif, phash, crop_hashes,"
                " created_at, seq) VALUES (:sha256, :size, :mime, :width, :height, :exif, :phash,"
                f" :crop_hashes, :created_at, {self.dialect.next_seq('media')})"
                " ON CONFLICT (sha256) DO NOTHING",
                sha256=row["sha256"],
                size=row["size"],
                mime=row["mime"],
                width=row["width"],
                height=row["height"],
                exif=dumps(row["exif"]),
                phash=row["phash"],
                crop_hashes=dumps(row["crop_hashes"]),
                created_at=row["created_at"],
            )

    def media(self, sha256: str) -> dict | None:
        row = self.row(
            "SELECT sha256, size, mime, width, height, exif, phash, crop_hashes, created_at"
            " FROM media WHERE sha256 = :sha256",
            sha256=sha256,
        )
        if row is None:
            return None
        row["exif"] = json.loads(row["exif"]) if row["exif"] else None
        row["crop_hashes"] = json.loads(row["crop_hashes"]) if row["crop_hashes"] else []
        return row

    def media_hashes_after(self, seq: int, limit: int | None = None) -> list[tuple]:
        """(seq, sha256, phash hex, crop hashes JSON) of photos added after `seq`, in order
        (at most `limit` of them)."""
        return [
            tuple(r)
            for r in self.q(
                "SELECT seq, sha256, phash, crop_hashes FROM media WHERE seq > :seq"
                " AND phash IS NOT NULL ORDER BY seq"
                + (" LIMIT :limit" if limit is not None else ""),
                seq=seq,
                limit=limit,
            )
        ]

    def photo_in_villages(self, sha256: str, village_codes: Iterable[str]) -> bool:
        """Whether a submission in one of these villages uses this photo (who may upload it)."""
        codes = sorted(village_codes)
        return bool(codes) and (
            self.q(
                "SELECT 1 FROM submission_media m JOIN submissions s ON s.id = m.submission_id"
                " WHERE m.sha256 = :sha256 AND s.village_code IN :codes LIMIT 1",
                sha256=sha256,
                codes=codes,
            ).first()
            is not None
        )

    def record_uploader(self, sha256: str, user_id: int, *, at: str) -> None:
        """This user sent the bytes of this photo (the upload completed and matched its hash)."""
        self.record_holder(sha256, user_id, source="upload", at=at)

    def record_holder(self, sha256: str, user_id: int, *, source: str, at: str) -> None:
        with self.write():
            self.q(
                "INSERT INTO photo_holders (sha256, user_id, source, at)"
                " VALUES (:sha256, :user_id, :source, :at) ON CONFLICT DO NOTHING",
                sha256=sha256,
                user_id=user_id,
                source=source,
                at=at,
            )

    def credit_unheld_photo(self, sha256: str, *, at: str) -> None:
        """A photo processed with no holder (the server died between its upload completing and
        the uploader being recorded): credit the authors of the submissions already using it,
        as the schema 4 upgrade does, so the one who sent it can still be read."""
        with self.write():
            self.q(
                "INSERT INTO photo_holders (sha256, user_id, source, at)"
                " SELECT DISTINCT m.sha256, s.author_id, 'recovered', :at FROM submission_media m"
                " JOIN submissions s ON s.id = m.submission_id"
                " WHERE m.sha256 = :sha256 AND s.author_id IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM photo_holders WHERE sha256 = :sha256)"
                " ON CONFLICT DO NOTHING",
                sha256=sha256,
                at=at,
            )

    def photos_held_by(self, user_id: int, hashes: Iterable[str]) -> set[str]:
        hashes = sorted(set(hashes))
        if not hashes:
            return set()
        return set(
            self.q(
                "SELECT sha256 FROM photo_holders WHERE user_id = :user_id AND sha256 IN :hashes",
                user_id=user_id,
                hashes=hashes,
            ).scalars()
        )

    def readable_photos(self, hashes: Iterable[str], village_codes: Iterable[str]) -> set[str]:
        """Which photos these villages may see: used there by a submission whose author holds
        the photo's bytes (uploaded them, or could already see the photo when submitting)."""
        hashes, codes = sorted(set(hashes)), sorted(village_codes)
        if not hashes or not codes:
            return set()
        return set(
            self.q(
                "SELECT DISTINCT m.sha256 FROM submission_media m"
                " JOIN submissions s ON s.id = m.submission_id"
                " JOIN photo_holders h ON h.sha256 = m.sha256 AND h.user_id = s.author_id"
                " WHERE m.sha256 IN :hashes AND s.village_code IN :codes",
                hashes=hashes,
                codes=codes,
            ).scalars()
        )

    def photo_readable(self, sha256: str, village_codes: Iterable[str]) -> bool:
        return bool(self.readable_photos([sha256], village_codes))

    def submissions_using(self, hashes: Iterable[str]) -> list[dict]:
        """Every use of these photos: sha256, submission, its record and state."""
        hashes = sorted(set(hashes))
        if not hashes:
            return []
        return self.rows(
            "SELECT m.sha256, m.submission_id, s.record_id, s.state FROM submission_media m"
            " JOIN submissions s ON s.id = m.submission_id"
            " WHERE m.sha256 IN :hashes ORDER BY m.submission_id, m.seq",
            hashes=hashes,
        )

    def uses_elsewhere(
        self, hashes: Iterable[str], *, submission_id: str, record_id: str | None = None
    ) -> set[str]:
        """Which of these photos a judged submission other than this one uses (about another
        record than `record_id`, when given). One probe per photo, however often it is used:
        the photos are a table (the JSON array's elements), each probed with EXISTS."""
        photos = self.dialect.json_array_values(":hashes")
        return set(
            self.q(
                f"SELECT j.value FROM {photos} AS j WHERE EXISTS (SELECT 1 FROM submission_media m"
                " JOIN submissions s ON s.id = m.submission_id WHERE m.sha256 = j.value AND "
                + _judged_elsewhere(record_id)
                + ")",
                hashes=json.dumps(sorted(set(hashes))),
                submission_id=submission_id,
                record_id=record_id,
            ).scalars()
        )

    def unflagged_uses(
        self, hashes: Iterable[str], code: str, *, submission_id: str, record_id=None
    ) -> list[tuple[str, str]]:
        """(submission, photo) of judged uses of these photos, other than this submission (and
        about another record than `record_id`, when given), that lack flag `code` on it."""
        hashes = sorted(set(hashes))
        if not hashes:
            return []
        return [
            tuple(r)
            for r in self.q(
                "SELECT m.submission_id, m.sha256 FROM submission_media m"
                " JOIN submissions s ON s.id = m.submission_id WHERE m.sha256 IN :hashes AND "
                + _judged_elsewhere(record_id)
                + " AND NOT EXISTS (SELECT 1 FROM flags f WHERE f.submission_id = m.submission_id"
                " AND f.code = :code AND f.photo = m.sha256)"
                " GROUP BY m.submission_id, m.sha256 ORDER BY m.submission_id, m.sha256",
                hashes=hashes,
                submission_id=submission_id,
                record_id=record_id,
                code=code,
            )
        ]

    def judged_uses(
        self, hashes: Iterable[str], *, submission_id: str, record_id: str | None = None
    ) -> list[dict]:
        """Judged uses of these photos by other submissions (about another record than
        `record_id`, when given), with the village and township of each."""
        hashes = sorted(set(hashes))
        if not hashes:
            return []
        return self.rows(
            "SELECT DISTINCT m.sha256, m.submission_id, s.record_id, s.village_code,"
            " v.township FROM submission_media m JOIN submissions s ON s.id = m.submission_id"
            " LEFT JOIN villages v ON v.code = s.village_code WHERE m.sha256 IN :hashes AND "
            + _judged_elsewhere(record_id)
            + " ORDER BY m.sha256, m.submission_id",
            hashes=hashes,
            submission_id=submission_id,
            record_id=record_id,
        )

    def add_flags(self, flags: list[dict]) -> None:
        """Add flags to submissions already judged (the other side of a new reuse); one
        statement, inside the caller's write."""
        self.many(
            "INSERT INTO flags (submission_id, code, photo, figures, message, seq)"
            " VALUES (:submission_id, :code, :photo, :figures, :message,"
            f" {self.dialect.next_seq('flags')})",
            [
                {
                    "submission_id": f["submission_id"],
                    "code": f["code"],
                    "photo": f.get("photo"),
                    "figures": dumps(f["figures"]),
                    "message": dumps(f["message"]),
                }
                for f in flags
            ],
        )

    def flag_codes(self, submission_ids: Iterable[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        ids = sorted(set(submission_ids))
        if not ids:
            return out
        for sid, code in self.q(
            "SELECT submission_id, code FROM flags WHERE submission_id IN :ids", ids=ids
        ):
            out.setdefault(sid, set()).add(code)
        return out

    def set_risk_scores(self, scores: dict[str, int]) -> None:
        """One statement, inside the caller's write."""
        self.many(
            "UPDATE submissions SET risk_score = :score WHERE id = :id",
            [{"score": score, "id": sid} for sid, score in scores.items()],
        )

    def evidence_inputs(self, submission_id: str) -> dict | None:
        """What the evidence checks need about one submission: its photos and its record."""
        sub = self.row(
            "SELECT s.id, s.record_id, s.record_type, s.observed_at, s.skew_ms, s.state,"
            " s.author_id, f.lat, f.lon, f.datum FROM submissions s"
            " LEFT JOIN facilities f ON f.id = s.record_id WHERE s.id = :id",
            id=submission_id,
        )
        if sub is None:
            return None
        photos = self.rows(
            "SELECT m.field, m.sha256, m.captured_at, m.position, media.exif, media.phash,"
            " media.crop_hashes FROM submission_media m"
            " LEFT JOIN media ON media.sha256 = m.sha256 WHERE m.submission_id = :id"
            " ORDER BY m.field, m.sha256",
            id=submission_id,
        )
        for photo in photos:
            for key in ("position", "exif", "crop_hashes"):
                photo[key] = json.loads(photo[key]) if photo[key] else None
        return {**sub, "photos": photos}

    def set_evidence(
        self, submission_id: str, *, flags: list[dict], risk_score: int, state: str | None, at: str
    ) -> None:
        """Replace a submission's evidence flags and risk score (and its state if given)."""
        with self.write():
            self.q("DELETE FROM flags WHERE submission_id = :id", id=submission_id)
            self.add_flags([{**f, "submission_id": submission_id} for f in flags])
            if state:
                self.q(
                    "UPDATE submissions SET risk_score = :score, state = :state,"
                    " completed_at = :at WHERE id = :id",
                    score=risk_score,
                    state=state,
                    at=at,
                    id=submission_id,
                )
            else:
                self.set_risk_scores({submission_id: risk_score})

    def flags_of(self, submission_id: str) -> list[dict]:
        rows = self.rows(
            "SELECT code, photo, figures, message FROM flags WHERE submission_id = :id"
            " ORDER BY seq",
            id=submission_id,
        )
        return [
            {**r, "figures": json.loads(r["figures"]), "message": json.loads(r["message"])}
            for r in rows
        ]

    # -- verification codes of stamped photos (server/stamp.py) ------------------------------

    def codeless_photo_uses(self, submission_ids: Iterable[str]) -> list[dict]:
        """Photo uses of these judged submissions that have a media row but no code yet: what
        the code is made from (the received time is when the submission became complete)."""
        ids = sorted(set(submission_ids))
        if not ids:
            return []
        return self.rows(
            "SELECT DISTINCT m.submission_id, m.sha256, s.record_id,"
            " coalesce(s.completed_at, s.received_at) AS received_at"
            " FROM submission_media m JOIN submissions s ON s.id = m.submission_id"
            " JOIN media ON media.sha256 = m.sha256"
            " LEFT JOIN photo_codes c ON c.submission_id = m.submission_id"
            " AND c.sha256 = m.sha256"
            " WHERE m.submission_id IN :ids AND s.state != 'received' AND c.code IS NULL"
            " ORDER BY m.submission_id, m.sha256",
            ids=ids,
        )

    def insert_photo_codes(self, rows: list[dict]) -> None:
        """Store codes (submission_id, sha256, code, received_at, key_id); one already stored
        for a use stays (codes never change)."""
        with self.write():
            self.many(
                "INSERT INTO photo_codes (submission_id, sha256, code, received_at, key_id)"
                " VALUES (:submission_id, :sha256, :code, :received_at, :key_id)"
                " ON CONFLICT (submission_id, sha256) DO NOTHING",
                rows,
            )

    def photo_codes_of(self, submission_id: str) -> dict[str, dict]:
        """sha256 -> its code row, for one submission."""
        return {
            r["sha256"]: r
            for r in self.rows(
                "SELECT sha256, code, received_at, key_id FROM photo_codes"
                " WHERE submission_id = :id",
                id=submission_id,
            )
        }

    def photo_code_uses(self, code: str) -> list[dict]:
        """Every use stored under this canonical code, with what it was made from and where
        its submission belongs (the caller keeps those in the viewer's villages)."""
        return self.rows(
            "SELECT c.submission_id, c.sha256, c.code, c.received_at, c.key_id, s.record_id,"
            " s.village_code FROM photo_codes c JOIN submissions s ON s.id = c.submission_id"
            " WHERE c.code = :code ORDER BY c.submission_id, c.sha256",
            code=code,
        )
