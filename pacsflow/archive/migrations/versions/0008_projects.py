"""projects: studies grouped into projects, members with a role, DICOM peers per project

Revision ID: 0008
Revises: 0007

Peers registered before projects existed could query and retrieve everything; they keep
that (all_projects true). New peers see only the projects they are given.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("ae_title", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("ae_title"),
    )
    op.create_table(
        "study_projects",
        sa.Column("study_fk", sa.Integer(), nullable=False),
        sa.Column("project_fk", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["study_fk"], ["studies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_fk"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("study_fk", "project_fk"),
    )
    op.create_index("ix_study_projects_project_fk", "study_projects", ["project_fk"])
    op.create_table(
        "project_members",
        sa.Column("project_fk", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["project_fk"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_fk", "user_id"),
    )
    op.create_index("ix_project_members_user_id", "project_members", ["user_id"])
    op.create_table(
        "remote_ae_projects",
        sa.Column("remote_ae_fk", sa.Integer(), nullable=False),
        sa.Column("project_fk", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["remote_ae_fk"], ["remote_aes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["project_fk"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("remote_ae_fk", "project_fk"),
    )
    with op.batch_alter_table("remote_aes") as batch:
        batch.add_column(
            sa.Column("all_projects", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("remote_aes") as batch:
        batch.alter_column("all_projects", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("remote_aes") as batch:
        batch.drop_column("all_projects")
    op.drop_table("remote_ae_projects")
    op.drop_index("ix_project_members_user_id", table_name="project_members")
    op.drop_table("project_members")
    op.drop_index("ix_study_projects_project_fk", table_name="study_projects")
    op.drop_table("study_projects")
    op.drop_table("projects")
