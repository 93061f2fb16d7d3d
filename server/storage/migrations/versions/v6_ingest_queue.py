"""Schema 6: `ingest_queue`, the durable queue of photos held but not yet processed.

The last chunk of an upload stores the bytes and enqueues the photo; ingest workers (threads in
each server process, or `villagecheck worker`) claim rows, process the photo and delete the row.
"""

import sqlalchemy as sa
from alembic import op

from server.storage.tables import TEXT

revision = "v6"
down_revision = "v5"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_queue",
        sa.Column("sha256", TEXT, primary_key=True),
        sa.Column("state", TEXT, nullable=False),
        sa.Column("attempts", sa.BigInteger, nullable=False),
        sa.Column("claimed_by", TEXT),
        sa.Column("claim_until", TEXT),
        sa.Column("last_error", TEXT),
        sa.Column("enqueued_at", TEXT, nullable=False),
        sa.Column("updated_at", TEXT, nullable=False),
    )
    op.create_index("idx_ingest_queue_state_claim_until", "ingest_queue", ["state", "claim_until"])


def downgrade() -> None:
    op.drop_table("ingest_queue")
