"""coder mapping keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 23:58:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coder_mapping_key",
        sa.Column("given", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=False),
        sa.PrimaryKeyConstraint("given"),
    )


def downgrade() -> None:
    op.drop_table("coder_mapping_key")
