"""The photo pipeline: media rows, who holds each photo, evidence flags and risk scores."""

import json
from collections.abc import Iterable

from .core import dumps


class MediaMixin:
    """Media, photo holders and evidence flags."""

    # -- media and evidence (photo pipeline) -------------------------------------------------

    def missing_media(self, hashes: Iterable[str]) -> list[str]:
        """Which of these photo hashes the server does not hold yet, sorted."""
        wanted = sorted(set(hashes))
        if not wanted:
            return []
        held = {
            r[0]
            for r in self.conn.execute(
                "SELECT sha256 FROM media WHERE sha256 IN (SELECT value FROM json_each(?))",
                (json.dumps(wanted),),
            )
        }
        return [h for h in wanted if h not in held]

    def photos_without_media(self) -> list[str]:
        """Photos submissions use that have no media row: not uploaded yet, or held but not
        processed (a crash between the upload and its row; the photo store tells which)."""
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT sm.sha256 FROM submission_media sm"
                " LEFT JOIN media m ON m.sha256 = sm.sha256 WHERE m.sha256 IS NULL"
                " ORDER BY sm.sha256"
            )
        ]

    def received_with_all_photos(self) -> list[str]:
        """Submissions still `received` although every photo they use has its media row."""
        return [
            r[0]
            for r in self.conn.execute(
                "SELECT s.id FROM submissions s WHERE s.state = 'received' AND NOT EXISTS"
                " (SELECT 1 FROM submission_media sm LEFT JOIN media m ON m.sha256 = sm.sha256"
                " WHERE sm.submission_id = s.id AND m.sha256 IS NULL) ORDER BY s.id"
            )
        ]

    def insert_media(self, row: dict) -> None:
        """Record a photo the server now holds, with its EXIF facts and perceptual hashes."""
        self.conn.execute(
            "INSERT OR IGNORE INTO media (sha256, size, mime, width, height, exif, phash,"
            " crop_hashes, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                row["sha256"],
                row["size"],
                row["mime"],
                row["width"],
                row["height"],
                dumps(row["exif"]),
                row["phash"],
                dumps(row["crop_hashes"]),
                row["created_at"],
            ),
        )

    def media(self, sha256: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM media WHERE sha256 = ?", [sha256]))
        if not rows:
            return None
        row = rows[0]
        row["exif"] = json.loads(row["exif"]) if row["exif"] else None
        row["crop_hashes"] = json.loads(row["crop_hashes"]) if row["crop_hashes"] else []
        return row

    def media_hashes_after(self, rowid: int) -> list[tuple]:
        """(rowid, sha256, phash hex, crop hashes JSON) of photos added after `rowid`."""
        return self.conn.execute(
            "SELECT rowid, sha256, phash, crop_hashes FROM media WHERE rowid > ? AND phash"
            " IS NOT NULL ORDER BY rowid",
            (rowid,),
        ).fetchall()

    def photo_in_villages(self, sha256: str, village_codes: Iterable[str]) -> bool:
        """Whether a submission in one of these villages uses this photo (who may upload it)."""
        return (
            self.conn.execute(
                "SELECT 1 FROM submission_media m JOIN submissions s ON s.id = m.submission_id"
                " WHERE m.sha256 = ? AND s.village_code IN (SELECT value FROM json_each(?))"
                " LIMIT 1",
                (sha256, json.dumps(sorted(village_codes))),
            ).fetchone()
            is not None
        )

    def record_uploader(self, sha256: str, user_id: int, *, at: str) -> None:
        """This user sent the bytes of this photo (the upload completed and matched its hash)."""
        self.record_holder(sha256, user_id, source="upload", at=at)

    def record_holder(self, sha256: str, user_id: int, *, source: str, at: str) -> None:
        with self.write():
            self.conn.execute(
                "INSERT OR IGNORE INTO photo_holders (sha256, user_id, source, at)"
                " VALUES (?,?,?,?)",
                (sha256, user_id, source, at),
            )

    def credit_unheld_photo(self, sha256: str, *, at: str) -> None:
        """A photo processed with no holder (the server died between its upload completing and
        the uploader being recorded): credit the authors of the submissions already using it,
        as the schema 4 upgrade does, so the one who sent it can still be read."""
        with self.write():
            self.conn.execute(
                "INSERT OR IGNORE INTO photo_holders (sha256, user_id, source, at)"
                " SELECT m.sha256, s.author_id, 'recovered', ? FROM submission_media m"
                " JOIN submissions s ON s.id = m.submission_id"
                " WHERE m.sha256 = ? AND s.author_id IS NOT NULL"
                " AND NOT EXISTS (SELECT 1 FROM photo_holders WHERE sha256 = ?)",
                (at, sha256, sha256),
            )

    def photos_held_by(self, user_id: int, hashes: Iterable[str]) -> set[str]:
        return {
            r[0]
            for r in self.conn.execute(
                "SELECT sha256 FROM photo_holders WHERE user_id = ?"
                " AND sha256 IN (SELECT value FROM json_each(?))",
                (user_id, json.dumps(sorted(set(hashes)))),
            )
        }

    def readable_photos(self, hashes: Iterable[str], village_codes: Iterable[str]) -> set[str]:
        """Which photos these villages may see: used there by a submission whose author holds
        the photo's bytes (uploaded them, or could already see the photo when submitting)."""
        return {
            r[0]
            for r in self.conn.execute(
                "SELECT DISTINCT m.sha256 FROM submission_media m"
                " JOIN submissions s ON s.id = m.submission_id"
                " JOIN photo_holders h ON h.sha256 = m.sha256 AND h.user_id = s.author_id"
                " WHERE m.sha256 IN (SELECT value FROM json_each(?))"
                " AND s.village_code IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(set(hashes))), json.dumps(sorted(village_codes))),
            )
        }

    def photo_readable(self, sha256: str, village_codes: Iterable[str]) -> bool:
        return bool(self.readable_photos([sha256], village_codes))

    def submissions_using(self, hashes: Iterable[str]) -> list[dict]:
        """Every use of these photos: sha256, submission, its record and state."""
        return list(
            self.db.query(
                "SELECT m.sha256, m.submission_id, s.record_id, s.state FROM submission_media m"
                " JOIN submissions s ON s.id = m.submission_id"
                " WHERE m.sha256 IN (SELECT value FROM json_each(?)) ORDER BY m.submission_id",
                [json.dumps(sorted(set(hashes)))],
            )
        )

    def uses_elsewhere(
        self, hashes: Iterable[str], *, submission_id: str, record_id: str | None = None
    ) -> set[str]:
        """Which of these photos a judged submission other than this one uses (about another
        record than `record_id`, when given). One probe per photo, however often it is used."""
        return {
            r[0]
            for r in self.conn.execute(
                "SELECT j.value FROM json_each(?) j WHERE EXISTS (SELECT 1 FROM submission_media m"
                " JOIN submissions s ON s.id = m.submission_id WHERE m.sha256 = j.value"
                " AND m.submission_id != ? AND s.state != 'received'"
                " AND (? IS NULL OR s.record_id != ?))",
                (json.dumps(sorted(set(hashes))), submission_id, record_id, record_id),
            )
        }

    def unflagged_uses(
        self, hashes: Iterable[str], code: str, *, submission_id: str, record_id=None
    ) -> list[tuple[str, str]]:
        """(submission, photo) of judged uses of these photos, other than this submission (and
        about another record than `record_id`, when given), that lack flag `code` on it."""
        return self.conn.execute(
            "SELECT m.submission_id, m.sha256 FROM submission_media m"
            " JOIN submissions s ON s.id = m.submission_id"
            " WHERE m.sha256 IN (SELECT value FROM json_each(?)) AND m.submission_id != ?"
            " AND s.state != 'received' AND (? IS NULL OR s.record_id != ?)"
            " AND NOT EXISTS (SELECT 1 FROM flags f WHERE f.submission_id = m.submission_id"
            " AND f.code = ? AND f.photo = m.sha256)"
            " GROUP BY m.submission_id, m.sha256 ORDER BY m.submission_id, m.sha256",
            (json.dumps(sorted(set(hashes))), submission_id, record_id, record_id, code),
        ).fetchall()

    def judged_uses(
        self, hashes: Iterable[str], *, submission_id: str, record_id: str | None = None
    ) -> list[dict]:
        """Judged uses of these photos by other submissions (about another record than
        `record_id`, when given), with the village and township of each."""
        return list(
            self.db.query(
                "SELECT DISTINCT m.sha256, m.submission_id, s.record_id, s.village_code,"
                " v.township FROM submission_media m JOIN submissions s ON s.id = m.submission_id"
                " LEFT JOIN villages v ON v.code = s.village_code"
                " WHERE m.sha256 IN (SELECT value FROM json_each(?)) AND m.submission_id != ?"
                " AND s.state != 'received' AND (? IS NULL OR s.record_id != ?)"
                " ORDER BY m.sha256, m.submission_id",
                [json.dumps(sorted(set(hashes))), submission_id, record_id, record_id],
            )
        )

    def add_flags(self, flags: list[dict]) -> None:
        """Add flags to submissions already judged (the other side of a new reuse)."""
        self.conn.executemany(
            "INSERT INTO flags (submission_id, code, photo, figures, message)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (
                    f["submission_id"],
                    f["code"],
                    f["photo"],
                    dumps(f["figures"]),
                    dumps(f["message"]),
                )
                for f in flags
            ],
        )

    def flag_codes(self, submission_ids: Iterable[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for sid, code in self.conn.execute(
            "SELECT submission_id, code FROM flags"
            " WHERE submission_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(set(submission_ids))),),
        ):
            out.setdefault(sid, set()).add(code)
        return out

    def set_risk_scores(self, scores: dict[str, int]) -> None:
        self.conn.executemany(
            "UPDATE submissions SET risk_score = ? WHERE id = ?",
            [(score, sid) for sid, score in scores.items()],
        )

    def evidence_inputs(self, submission_id: str) -> dict | None:
        """What the evidence checks need about one submission: its photos and its record."""
        sub = self.conn.execute(
            "SELECT s.id, s.record_id, s.record_type, s.observed_at, s.skew_ms, s.state,"
            " s.author_id, f.lat, f.lon FROM submissions s"
            " LEFT JOIN facilities f ON f.id = s.record_id"
            " WHERE s.id = ?",
            (submission_id,),
        ).fetchone()
        if sub is None:
            return None
        photos = list(
            self.db.query(
                "SELECT m.field, m.sha256, m.captured_at, m.position, media.exif, media.phash,"
                " media.crop_hashes FROM submission_media m"
                " LEFT JOIN media ON media.sha256 = m.sha256 WHERE m.submission_id = ?"
                " ORDER BY m.field, m.sha256",
                [submission_id],
            )
        )
        for photo in photos:
            for key in ("position", "exif", "crop_hashes"):
                photo[key] = json.loads(photo[key]) if photo[key] else None
        keys = (
            "id",
            "record_id",
            "record_type",
            "observed_at",
            "skew_ms",
            "state",
            "author_id",
            "lat",
            "lon",
        )
        return {**dict(zip(keys, sub, strict=True)), "photos": photos}

    def set_evidence(
        self, submission_id: str, *, flags: list[dict], risk_score: int, state: str | None, at: str
    ) -> None:
        """Replace a submission's evidence flags and risk score (and its state if given)."""
        self.conn.execute("DELETE FROM flags WHERE submission_id = ?", (submission_id,))
        self.conn.executemany(
            "INSERT INTO flags (submission_id, code, photo, figures, message)"
            " VALUES (?, ?, ?, ?, ?)",
            [
                (submission_id, f["code"], f.get("photo"), dumps(f["figures"]), dumps(f["message"]))
                for f in flags
            ],
        )
        if state:
            self.conn.execute(
                "UPDATE submissions SET risk_score = ?, state = ?, completed_at = ? WHERE id = ?",
                (risk_score, state, at, submission_id),
            )
        else:
            self.conn.execute(
                "UPDATE submissions SET risk_score = ? WHERE id = ?", (risk_score, submission_id)
            )

    def flags_of(self, submission_id: str) -> list[dict]:
        rows = self.db.query(
            "SELECT code, photo, figures, message FROM flags WHERE submission_id = ?"
            " ORDER BY rowid",
            [submission_id],
        )
        return [
            {**r, "figures": json.loads(r["figures"]), "message": json.loads(r["message"])}
            for r in rows
        ]
