"""Schema 4, the last made without Alembic (issue 8): the base every later revision builds on.

A database at schema 4 was either made by schema.py's MIGRATIONS or is stamped here after them.
"""

revision = "v4"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing: schema.py's MIGRATIONS build schema 4."""
