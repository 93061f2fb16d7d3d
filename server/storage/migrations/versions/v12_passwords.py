"""Schema 12: passwords and two-factor login (issue 13).

`users` gains `must_change_password` (set at creation by an admin and by an admin's reset:
the user must choose their own at the next login), `password_changed_at` (for the optional
PASSWORD_MAX_AGE_DAYS; existing users count from their creation) and the TOTP columns:
`totp_secret` (encrypted, server/totp.py), `totp_enrolled_at`, `totp_recovery` (hashes of the
unused recovery codes) and `totp_last_step` (so one code logs in once).
"""

import sqlalchemy as sa
from alembic import op

from server.storage.tables import TEXT

revision = "v12"
down_revision = "v11"
branch_labels = None
depends_on = None

COLUMNS = (
    ("must_change_password", sa.BigInteger, "0"),
    ("password_changed_at", TEXT, None),
    ("totp_secret", TEXT, None),
    ("totp_enrolled_at", TEXT, None),
    ("totp_recovery", TEXT, None),
    ("totp_last_step", sa.BigInteger, None),
)


def upgrade() -> None:
    for name, kind, default in COLUMNS:
        op.add_column("users", sa.Column(name, kind, server_default=default))
    op.execute("UPDATE users SET password_changed_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        for name, _, _ in reversed(COLUMNS):
            batch.drop_column(name)
