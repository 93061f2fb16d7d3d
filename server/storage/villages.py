"""Villages: the county's villages, by code, township and county."""

from collections.abc import Iterable

from .tables import villages as villages_table

_COLUMNS = tuple(villages_table.c.keys())
_UPSERT = (
    f"INSERT INTO villages ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})"
    " ON CONFLICT (code) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "code")
)


class VillagesMixin:
    """Villages."""

    # -- villages ----------------------------------------------------------------------------

    def is_empty(self) -> bool:
        """True when no village has been loaded yet (the run command then loads the demo)."""
        return self.scalar("SELECT count(*) FROM villages") == 0

    def upsert_villages(self, rows: list[dict], *, at: str) -> None:
        """Insert or replace villages, each a change every phone of that village will pull.

        A row holds the columns of `tables.villages`; those it leaves out are stored as NULL.
        """
        for row in rows:
            if unknown := row.keys() - set(_COLUMNS):
                raise ValueError(f"village {row.get('code')!r}: unknown columns {sorted(unknown)}")
        with self.write():
            self.many(_UPSERT, [dict.fromkeys(_COLUMNS) | row for row in rows])
            self.log_changes(
                [
                    {
                        "entity": "village",
                        "entity_id": r["code"],
                        "village_code": r["code"],
                        "at": at,
                    }
                    for r in rows
                ]
            )

    def village(self, code: str) -> dict | None:
        return self.row("SELECT * FROM villages WHERE code = :code", code=code)

    def villages(self, codes: Iterable[str] | None = None) -> list[dict]:
        if codes is None:
            return self.rows("SELECT * FROM villages ORDER BY code")
        codes = sorted(codes)
        if not codes:
            return []
        return self.rows("SELECT * FROM villages WHERE code IN :codes ORDER BY code", codes=codes)

    def village_codes_where(self, *, township=None, county=None) -> list[str]:
        """Village codes of a township and/or county (a supervisor's or admin's scope): the
        county by name, or by the prefix of the village codes it gives."""
        sql, params = "SELECT code FROM villages WHERE 1=1", {}
        if township:
            sql += " AND township = :township"
            params["township"] = township
        if county:
            sql += " AND (county = :county OR substr(code, 1, :county_length) = :county)"
            params.update(county=county, county_length=len(county))
        return self.q(sql + " ORDER BY code", **params).scalars().all()
