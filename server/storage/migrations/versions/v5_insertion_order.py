"""Schema 5: `seq` columns number photos, flags and the near-duplicate index in insertion order.

SQLite numbered them implicitly (rowid); PostgreSQL has no such column, so the order is now
data. Existing rows keep their SQLite order.

Also drops the index of observations by (record, clock): merges now read a record's history by
wall time (`observations_since`), so it was written on every observation and never read.
"""

import sqlalchemy as sa
from alembic import op

revision = "v5"
down_revision = "v4"
branch_labels = None
depends_on = None

TABLES = ("flags", "media", "submission_media")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("seq", sa.BigInteger))
        op.execute(f"UPDATE {table} SET seq = rowid")
        op.create_index(f"idx_{table}_seq", table, ["seq"])
    op.drop_index("idx_observations_record_id_clock", "observations")
