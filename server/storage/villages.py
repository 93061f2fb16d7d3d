"""Villages: the county's villages, by code, township and county."""

import json
from collections.abc import Iterable


class VillagesMixin:
    """Villages."""

    # -- villages ----------------------------------------------------------------------------

    def is_empty(self) -> bool:
        """True when no village has been loaded yet (the run command then loads the demo)."""
        return self.conn.execute("SELECT count(*) FROM villages").fetchone()[0] == 0

    def upsert_villages(self, rows: list[dict], *, at: str) -> None:
        """Insert or update villages, each a change every phone of that village will pull."""
        with self.write():
            for row in rows:
                self.db["villages"].upsert(row, pk="code")
                self.log_change("village", row["code"], village_code=row["code"], at=at)

    def village(self, code: str) -> dict | None:
        rows = list(self.db.query("SELECT * FROM villages WHERE code = ?", [code]))
        return rows[0] if rows else None

    def villages(self, codes: Iterable[str] | None = None) -> list[dict]:
        if codes is None:
            return list(self.db.query("SELECT * FROM villages ORDER BY code"))
        return list(
            self.db.query(
                "SELECT * FROM villages WHERE code IN (SELECT value FROM json_each(?))"
                " ORDER BY code",
                [json.dumps(sorted(codes))],
            )
        )

    def village_codes_where(self, *, township=None, county=None) -> list[str]:
        """Village codes of a township and/or county (a supervisor's or admin's scope)."""
        sql, params = "SELECT code FROM villages WHERE 1=1", []
        if township:
            sql += " AND township = ?"
            params.append(township)
        if county:
            sql += " AND (county = ? OR substr(code, 1, length(?)) = ?)"
            params += [county, county, county]
        return [r[0] for r in self.conn.execute(sql + " ORDER BY code", params)]
