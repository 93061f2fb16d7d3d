"""Schema 11: `admin_settings`, settings changed on the admin pages (issue 13).

Evidence thresholds, county class and targets set by an admin at /desk/admin/settings: a JSON
value per county ('' for the whole deployment) and name, read over the config value.
"""

import sqlalchemy as sa
from alembic import op

from server.storage.tables import ID, TEXT

revision = "v11"
down_revision = "v10"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_settings",
        sa.Column("county", TEXT, primary_key=True),
        sa.Column("name", TEXT, primary_key=True),
        sa.Column("value", TEXT, nullable=False),
        sa.Column("updated_at", TEXT, nullable=False),
        sa.Column("updated_by", ID),
    )


def downgrade() -> None:
    op.drop_table("admin_settings")
