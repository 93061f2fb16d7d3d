"""Villages: the county's villages, by code, township and county."""

from collections.abc import Iterable

from media.datum import DATUMS, SOURCES

from .tables import villages as villages_table

_COLUMNS = tuple(villages_table.c.keys())
_UPSERT = (
    f"INSERT INTO villages ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})"
    " ON CONFLICT (code) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "code")
)


def check_position(row: dict, what: str) -> dict:
    """A row's position fields as stored: lat/lon are WGS-84; `datum` is the datum they were
    declared in (wgs84 when a position comes without one, as every position did before schema
    7), `position_source` where they came from; both NULL without a position. Unknown values
    are refused."""
    datum, source = row.get("datum"), row.get("position_source")
    if datum is not None and datum not in DATUMS:
        raise ValueError(f"{what}: unknown datum {datum!r}")
    if source is not None and source not in SOURCES:
        raise ValueError(f"{what}: unknown position source {source!r}")
    if row.get("lat") is None:
        datum = source = None  # no position: nothing to qualify
    elif datum is None:
        datum = "wgs84"
    return {**row, "datum": datum, "position_source": source}


class VillagesMixin:
    """Villages."""

    # -- villages ----------------------------------------------------------------------------

    def is_empty(self) -> bool:
        """True when no village has been loaded yet (the run command then loads the demo)."""
        return self.scalar("SELECT count(*) FROM villages") == 0

    def upsert_villages(self, rows: list[dict], *, at: str) -> None:
        """Insert or replace villages, each a change every phone of that village will pull.

        A row holds the columns of `tables.villages`; those it leaves out are stored as NULL,
        except `datum`, wgs84 for a row with a position (`check_position`).
        """
        for row in rows:
            if unknown := row.keys() - set(_COLUMNS):
                raise ValueError(f"village {row.get('code')!r}: unknown columns {sorted(unknown)}")
        rows = [check_position(row, f"village {row.get('code')!r}") for row in rows]
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
