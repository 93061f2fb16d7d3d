"""Schema 9: `submissions.replaces`, the submission a fix-and-resend replaces (issue 12).

A phone that re-inspects a rejected submission sends the new one with `replaces: <old id>`;
the desk shows the chain (替代了 / 被替代). Nullable: every older submission replaces nothing.
"""

import sqlalchemy as sa
from alembic import op

from server.storage.tables import TEXT

revision = "v9"
down_revision = "v8"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("submissions", sa.Column("replaces", TEXT))
    # The desk asks which submissions replace the one it shows (被替代).
    op.create_index("idx_submissions_replaces", "submissions", ["replaces"])


def downgrade() -> None:
    op.drop_index("idx_submissions_replaces", table_name="submissions")
    with op.batch_alter_table("submissions") as batch:
        batch.drop_column("replaces")
