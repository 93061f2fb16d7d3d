"""What differs between SQLite and PostgreSQL, in one place: starting a write, locking, JSON,
a few functions, and how "busy" and "unreachable" look.

Everything else is written once. Both engines accept `INSERT … ON CONFLICT … DO NOTHING/UPDATE`,
`RETURNING`, `substr` and `coalesce`, so queries use those and never a dialect's own spelling.
A list is bound to `IN :name` (or `NOT IN :name`): SQLite gets one placeholder per element,
PostgreSQL one array parameter (`= ANY(:name)`), which also types an empty list from the column
it is compared with.

SQLite serialises writers on one lock taken up front (BEGIN IMMEDIATE), so record locks and the
change-log lock are no-ops there. PostgreSQL lets writers run side by side, so a transaction
locks each record it will merge (a transaction-scoped advisory lock, taken in sorted order so
two pushes never deadlock) and, before appending to the change log, the log itself: sequence
numbers then follow commit order, and a pull cursor never skips a change committed late.
"""

import sqlite3
import zlib

import psycopg
from psycopg import pq
from sqlalchemy import exc as sa_exc

#: Advisory lock keys of what is not a record (a record's key is positive: see `record_key`):
#: the change log, the numbering of photos (media.py), the schema (migrations) and the audit
#: log's hash chain (audit_chain.py: two appends never read the same head).
CHANGE_LOG_KEY = 0
MEDIA_SEQ_KEY = -1
SCHEMA_KEY = -2
AUDIT_KEY = -3

_SQLITE_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
#: PostgreSQL: lock_not_available, query_canceled (statement/lock timeout), deadlock_detected.
_PG_BUSY = {"55P03", "57014", "40P01"}


def record_key(record_id: str) -> int:
    """A stable 63-bit key for a record's advisory lock (never CHANGE_LOG_KEY)."""
    data = record_id.encode()
    return ((zlib.crc32(data) << 31) ^ zlib.adler32(data)) & 0x7FFF_FFFF_FFFF_FFFF or 1


class Dialect:
    """The SQLite spelling; `PostgresDialect` overrides what PostgreSQL spells differently."""

    name = "sqlite"
    #: Writers of one process must queue for the database's single write lock.
    single_writer = True
    #: Lists bound to `IN :name` become one placeholder per element (else `in_list`).
    expands_lists = True

    def begin_write(self) -> str:
        return "BEGIN IMMEDIATE"

    def begin_read(self) -> str:
        return "BEGIN"

    def lock_statements(self, keys: list[int]) -> list[tuple[str, dict]]:
        """Statements that lock `keys` until the end of the transaction (none on SQLite)."""
        return []

    def json_get(self, expr: str, key: str) -> str:
        """The text of member `key` of the JSON object in `expr` (NULL when absent)."""
        return f"json_extract({expr}, '$.{key}')"

    def json_number(self, expr: str, key: str) -> str:
        """Member `key` of the JSON object in `expr` as a number."""
        return f"json_extract({expr}, '$.{key}')"

    def json_array_values(self, expr: str) -> str:
        """A table with one column, `value`, of the text elements of the JSON array `expr`."""
        return f"(SELECT value FROM json_each({expr}))"

    def json_array_of(self, expr: str) -> str:
        """Aggregate: the JSON array of `expr` over a group."""
        return f"json_group_array({expr})"

    def greatest(self, *exprs: str) -> str:
        return f"max({', '.join(exprs)})"

    def least(self, *exprs: str) -> str:
        return f"min({', '.join(exprs)})"

    def next_seq(self, table: str) -> str:
        """The value of a `seq` column (tables.py) in an INSERT's VALUES."""
        return f"(SELECT coalesce(max(seq), 0) + 1 FROM {table})"

    def in_transaction(self, dbapi_connection) -> bool:
        return dbapi_connection.in_transaction

    def is_busy(self, exc: BaseException) -> bool:
        orig = getattr(exc, "orig", exc)
        code = getattr(orig, "sqlite_errorcode", None)
        return (
            isinstance(orig, sqlite3.OperationalError)
            and code is not None
            and (code & 0xFF in _SQLITE_BUSY)
        )

    def is_unavailable(self, exc: BaseException) -> bool:
        """The database cannot be reached (a file on a local disk always can)."""
        return False

    def json_path_text(self, expr: str, *keys: str) -> str:
        """The text of the JSON string at `keys` (nested members) of the object in `expr`."""
        return f"json_extract({expr}, '$.{'.'.join(keys)}')"

    def json_path_value(self, expr: str, *keys: str) -> str:
        """The JSON value at `keys` as the driver gives it: str, number, or bool (1/0 here)."""
        return f"json_extract({expr}, '$.{'.'.join(keys)}')"

    def skip_locked(self) -> str:
        """Appended to a SELECT choosing a row to claim: lock it, passing over rows other
        transactions hold (nothing on SQLite, whose write lock already admits one claimer)."""
        return ""


class PostgresDialect(Dialect):
    name = "postgresql"
    single_writer = False
    expands_lists = False

    def in_list(self, name: str, negated: str | None) -> str:
        """`IN :name` as a comparison with one array parameter."""
        return f"<> ALL(:{name})" if negated else f"= ANY(:{name})"

    def begin_write(self) -> str:
        return "BEGIN"

    def begin_read(self) -> str:
        return "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

    def lock_statements(self, keys: list[int]) -> list[tuple[str, dict]]:
        """One statement taking the locks in ascending order (two writers never deadlock)."""
        if not keys:
            return []
        return [
            (
                "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT k FROM"
                " unnest(CAST(:keys AS bigint[])) AS u(k) ORDER BY k) AS s",
                {"keys": sorted(set(keys))},
            )
        ]

    def json_get(self, expr: str, key: str) -> str:
        return f"(CAST({expr} AS jsonb) ->> '{key}')"

    def json_number(self, expr: str, key: str) -> str:
        return f"CAST(CAST({expr} AS jsonb) ->> '{key}' AS double precision)"

    def json_array_values(self, expr: str) -> str:
        return f"(SELECT value FROM jsonb_array_elements_text(CAST({expr} AS jsonb)) AS e(value))"

    def json_array_of(self, expr: str) -> str:
        return f"CAST(json_agg({expr}) AS text)"

    def greatest(self, *exprs: str) -> str:
        return f"greatest({', '.join(exprs)})"

    def least(self, *exprs: str) -> str:
        return f"least({', '.join(exprs)})"

    def next_seq(self, table: str) -> str:
        return "DEFAULT"

    def in_transaction(self, dbapi_connection) -> bool:
        return dbapi_connection.info.transaction_status != pq.TransactionStatus.IDLE

    def is_busy(self, exc: BaseException) -> bool:
        return getattr(getattr(exc, "orig", exc), "sqlstate", None) in _PG_BUSY

    def is_unavailable(self, exc: BaseException) -> bool:
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return True
        orig = getattr(exc, "orig", exc)
        sqlstate = getattr(orig, "sqlstate", None) or ""
        return isinstance(orig, psycopg.OperationalError) and (
            sqlstate[:2] in {"", "08", "57"} and sqlstate not in _PG_BUSY
        )

    def json_path_text(self, expr: str, *keys: str) -> str:
        return f"(CAST({expr} AS jsonb) #>> '{{{','.join(keys)}}}')"

    def json_path_value(self, expr: str, *keys: str) -> str:
        return f"(CAST({expr} AS jsonb) #> '{{{','.join(keys)}}}')"

    def skip_locked(self) -> str:
        return " FOR UPDATE SKIP LOCKED"


DIALECTS = {"sqlite": Dialect(), "postgresql": PostgresDialect()}


def dialect_for(name: str) -> Dialect:
    if name not in DIALECTS:
        raise ValueError(f"unsupported database engine {name!r} (SQLite or PostgreSQL)")
    return DIALECTS[name]
