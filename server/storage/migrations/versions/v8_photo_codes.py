"""Schema 8: `photo_codes`, the server-verified code of each use of a photo by a submission.

Codes are HMACs under a secret the migration does not have (STAMP_SECRET or one derived from
SECRET_KEY), so photos processed before this schema get theirs lazily: when the desk first
shows their submission, or its stamped version is first asked for (server/stamp.py). A code is
only ever given out on those pages, so no code can be looked up before it exists.
"""

import sqlalchemy as sa
from alembic import op

from server.storage.tables import TEXT

revision = "v8"
down_revision = "v7"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "photo_codes",
        sa.Column("submission_id", TEXT, sa.ForeignKey("submissions.id"), primary_key=True),
        sa.Column("sha256", TEXT, primary_key=True),
        sa.Column("code", TEXT, nullable=False),
        sa.Column("received_at", TEXT, nullable=False),
        sa.Column("key_id", TEXT, nullable=False),
    )
    op.create_index("idx_photo_codes_code", "photo_codes", ["code"])


def downgrade() -> None:
    op.drop_table("photo_codes")
