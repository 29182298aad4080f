"""arrivals: the DAG run each arrival was dispatched to

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("arrivals") as batch:
        batch.add_column(sa.Column("dag_run_id", sa.String(length=250), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("arrivals") as batch:
        batch.drop_column("dag_run_id")
