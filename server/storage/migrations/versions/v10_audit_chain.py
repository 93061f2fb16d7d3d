"""Schema 10: the audit log becomes a hash chain (`audit.seq`, `prev_hash`, `hash`; issue 13).

Existing entries are chained in id order (the order they were written), from the genesis hash,
so `villagecheck audit verify` holds for them from now on: what was edited before the upgrade
cannot be detected, what is edited after it can (server/storage/audit_chain.py).
"""

import sqlalchemy as sa
from alembic import op

from server.storage.audit_chain import GENESIS, entry_hash
from server.storage.tables import TEXT

revision = "v10"
down_revision = "v9"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit", sa.Column("seq", sa.BigInteger))
    op.add_column("audit", sa.Column("prev_hash", TEXT))
    op.add_column("audit", sa.Column("hash", TEXT))
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, at, user_id, action, entity, entity_id, detail FROM audit ORDER BY id")
    ).mappings()
    prev, updates = GENESIS, []
    for seq, row in enumerate(rows, start=1):
        entry = {**row, "seq": seq}
        digest = entry_hash(entry, prev)
        updates.append({"id": row["id"], "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    if updates:
        bind.execute(
            sa.text(
                "UPDATE audit SET seq = :seq, prev_hash = :prev_hash, hash = :hash WHERE id = :id"
            ),
            updates,
        )
    with op.batch_alter_table("audit") as batch:
        batch.alter_column("seq", existing_type=sa.BigInteger, nullable=False)
        batch.alter_column("prev_hash", existing_type=TEXT, nullable=False)
        batch.alter_column("hash", existing_type=TEXT, nullable=False)
    op.create_index("idx_audit_seq", "audit", ["seq"], unique=True)


def downgrade() -> None:
    op.drop_index("idx_audit_seq", table_name="audit")
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
        batch.drop_column("seq")
