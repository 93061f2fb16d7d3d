"""Schema 7: positions carry their datum and source.

`villages` and `facilities` gain `datum` (wgs84 / cgcs2000 / gcj02 / bd09: the datum the
position was declared in; lat/lon themselves are always WGS-84, converted on the way in) and
`position_source` (browser / exif / map_pick / register_import). Positions stored before
schema 7 were taken as WGS-84, so they get datum wgs84 and an unknown (NULL) source.
"""

import sqlalchemy as sa
from alembic import op

from server.storage.tables import TEXT

revision = "v7"
down_revision = "v6"
branch_labels = None
depends_on = None

TABLES = ("villages", "facilities")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("datum", TEXT))
            batch.add_column(sa.Column("position_source", TEXT))
        op.execute(f"UPDATE {table} SET datum = 'wgs84' WHERE lat IS NOT NULL")


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("position_source")
            batch.drop_column("datum")
