"""search documents: the embedded search backend's index

The document itself (JSONB with a GIN index on PostgreSQL), a narrow table of its scalar
fields with btree indexes for filters, sorts and facets, and side tables for list values
(keywords, and radiomics numbers). Words: a tsvector with a GIN index on PostgreSQL; on
SQLite an FTS5 table over ``search_fields.words``, kept in step by triggers.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_TEXT_INDEX = [
    # The words are pacsflow.search.sql.words(), space-separated: keep their "." and "_".
    "CREATE VIRTUAL TABLE search_text USING fts5("
    "words, content='search_fields', content_rowid='doc_id', "
    "tokenize=\"unicode61 remove_diacritics 2 tokenchars '._'\")",
    "CREATE TRIGGER search_fields_text_insert AFTER INSERT ON search_fields BEGIN "
    "INSERT INTO search_text(rowid, words) VALUES (new.doc_id, new.words); END",
    "CREATE TRIGGER search_fields_text_delete AFTER DELETE ON search_fields BEGIN "
    "INSERT INTO search_text(search_text, rowid, words) VALUES ('delete', old.doc_id, old.words);"
    " END",
    "CREATE TRIGGER search_fields_text_update AFTER UPDATE OF words ON search_fields BEGIN "
    "INSERT INTO search_text(search_text, rowid, words) VALUES ('delete', old.doc_id, old.words);"
    " INSERT INTO search_text(rowid, words) VALUES (new.doc_id, new.words); END",
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # Keys compare by code point on both databases (SQLite's default), as OpenSearch does.
    key: sa.types.TypeEngine[str] = sa.Text(collation="C") if postgres else sa.Text()
    uid = sa.String(length=64, collation="C") if postgres else sa.String(length=64)
    date = sa.String(length=10)
    datetime = sa.String(length=27)
    doc_id = sa.BigInteger() if postgres else sa.Integer()

    op.create_table(
        "search_documents",
        sa.Column("series_instance_uid", uid, nullable=False),
        sa.Column("study_instance_uid", uid, nullable=True),
        sa.Column("document", postgresql.JSONB() if postgres else sa.JSON(), nullable=False),
        sa.Column("indexed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("series_instance_uid"),
    )
    op.create_index(
        "ix_search_documents_study_instance_uid", "search_documents", ["study_instance_uid"]
    )
    if postgres:
        op.create_index(
            "ix_search_documents_document",
            "search_documents",
            ["document"],
            postgresql_using="gin",
            postgresql_ops={"document": "jsonb_path_ops"},
        )

    op.create_table(
        "search_fields",
        sa.Column("doc_id", doc_id, autoincrement=True, nullable=False),
        sa.Column("series_instance_uid", uid, nullable=False),
        sa.Column("study_instance_uid", uid, nullable=True),
        sa.Column("patient_id", key, nullable=True),
        sa.Column("patient_name", key, nullable=True),
        sa.Column("patient_family_name", key, nullable=True),
        sa.Column("patient_given_name", key, nullable=True),
        sa.Column("patient_middle_name", key, nullable=True),
        sa.Column("patient_name_prefix", key, nullable=True),
        sa.Column("patient_name_suffix", key, nullable=True),
        sa.Column("patient_birth_date", date, nullable=True),
        sa.Column("patient_sex", key, nullable=True),
        sa.Column("study_date", date, nullable=True),
        sa.Column("study_date_time", datetime, nullable=True),
        sa.Column("study_description", key, nullable=True),
        sa.Column("accession_number", key, nullable=True),
        sa.Column("study_id", key, nullable=True),
        sa.Column("referring_physician_name", key, nullable=True),
        sa.Column("referring_physician_family_name", key, nullable=True),
        sa.Column("referring_physician_given_name", key, nullable=True),
        sa.Column("referring_physician_middle_name", key, nullable=True),
        sa.Column("referring_physician_name_prefix", key, nullable=True),
        sa.Column("referring_physician_name_suffix", key, nullable=True),
        sa.Column("modality", key, nullable=True),
        sa.Column("series_number", sa.Float(), nullable=True),
        sa.Column("series_description", key, nullable=True),
        sa.Column("body_part_examined", key, nullable=True),
        sa.Column("series_date", date, nullable=True),
        sa.Column("manufacturer", key, nullable=True),
        sa.Column("number_of_instances", sa.Float(), nullable=True),
        sa.Column("slice_position_min", sa.Float(), nullable=True),
        sa.Column("slice_position_max", sa.Float(), nullable=True),
        sa.Column("acquisition_date_time_min", datetime, nullable=True),
        sa.Column("acquisition_date_time_max", datetime, nullable=True),
        sa.Column("arrived_at", datetime, nullable=True),
        sa.Column("source_kind", key, nullable=True),
        sa.Column("source_ae", key, nullable=True),
        sa.Column("words", postgresql.TSVECTOR() if postgres else sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_instance_uid"],
            ["search_documents.series_instance_uid"],
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("doc_id"),
        sa.UniqueConstraint("series_instance_uid"),
    )
    for column in (
        "study_instance_uid",
        "patient_id",
        "patient_name",
        "patient_family_name",
        "study_date",
        "accession_number",
        "modality",
        "body_part_examined",
    ):
        op.create_index(f"ix_search_fields_{column}", "search_fields", [column])
    # The default sort, newest arrival first; SQLite puts NULLs last in descending order.
    newest = "arrived_at DESC NULLS LAST" if postgres else "arrived_at DESC"
    op.create_index(
        "ix_search_fields_recent", "search_fields", [sa.text(newest), "series_instance_uid"]
    )
    if postgres:
        op.create_index(
            "ix_search_fields_words", "search_fields", ["words"], postgresql_using="gin"
        )
    else:
        for statement in SQLITE_TEXT_INDEX:
            op.execute(statement)

    for table, value in (("search_keywords", key), ("search_numbers", sa.Float())):
        op.create_table(
            table,
            sa.Column("field", key, nullable=False),
            sa.Column("value", value, nullable=False),
            sa.Column("doc_id", doc_id, nullable=False),
            sa.ForeignKeyConstraint(["doc_id"], ["search_fields.doc_id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("field", "value", "doc_id"),
            sqlite_with_rowid=False,
        )
        op.create_index(f"ix_{table}_doc_id", table, ["doc_id"])


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in ("search_numbers", "search_keywords"):
        op.drop_index(f"ix_{table}_doc_id", table_name=table)
        op.drop_table(table)
    if not postgres:
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER search_fields_text_{trigger}")
        op.execute("DROP TABLE search_text")
    op.drop_table("search_fields")
    op.drop_table("search_documents")
