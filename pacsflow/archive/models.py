"""The archive index: patient, study, series and instance rows, and the arrival outbox.

Rows hold the attributes QIDO-RS matches on and returns (PS3.18 10.6), plus derived counts,
so queries never open files. Person names keep a normalised copy for case-insensitive and
fuzzy matching; ModalitiesInStudy is kept as ``/CT/SEG/`` so one LIKE matches a value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    desc,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

UID = String(64)


class Base(DeclarativeBase):
    pass


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("patient_id", "issuer_of_patient_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    issuer_of_patient_id: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str] = mapped_column(String(324), default="")
    patient_name_search: Mapped[str] = mapped_column(String(324), default="", index=True)
    patient_birth_date: Mapped[str] = mapped_column(String(8), default="")
    patient_sex: Mapped[str] = mapped_column(String(16), default="")


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    patient_fk: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    # Patient attributes as this study carries them: real data disagrees across studies.
    patient_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    patient_name: Mapped[str] = mapped_column(String(324), default="")
    patient_name_search: Mapped[str] = mapped_column(String(324), default="", index=True)
    patient_birth_date: Mapped[str] = mapped_column(String(8), default="")
    patient_sex: Mapped[str] = mapped_column(String(16), default="")
    study_date: Mapped[str] = mapped_column(String(8), default="", index=True)
    study_time: Mapped[str] = mapped_column(String(16), default="")
    accession_number: Mapped[str] = mapped_column(String(16), default="", index=True)
    study_id: Mapped[str] = mapped_column(String(16), default="")
    study_description: Mapped[str] = mapped_column(String(64), default="")
    referring_physician_name: Mapped[str] = mapped_column(String(324), default="")
    referring_physician_name_search: Mapped[str] = mapped_column(String(324), default="")
    timezone_offset_from_utc: Mapped[str] = mapped_column(String(16), default="")
    modalities_in_study: Mapped[str] = mapped_column(String(256), default="/")
    number_of_series: Mapped[int] = mapped_column(Integer, default=0)
    number_of_instances: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class Series(Base):
    __tablename__ = "series"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="", index=True)
    series_number: Mapped[int | None] = mapped_column(Integer)
    series_description: Mapped[str] = mapped_column(String(64), default="")
    body_part_examined: Mapped[str] = mapped_column(String(16), default="")
    performed_procedure_step_start_date: Mapped[str] = mapped_column(String(8), default="")
    performed_procedure_step_start_time: Mapped[str] = mapped_column(String(16), default="")
    timezone_offset_from_utc: Mapped[str] = mapped_column(String(16), default="")
    number_of_instances: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    series_fk: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_class_uid: Mapped[str] = mapped_column(UID, index=True)
    instance_number: Mapped[int | None] = mapped_column(Integer)
    rows: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[int | None] = mapped_column(Integer)
    bits_allocated: Mapped[int | None] = mapped_column(Integer)
    number_of_frames: Mapped[int | None] = mapped_column(Integer)
    timezone_offset_from_utc: Mapped[str] = mapped_column(String(16), default="")
    transfer_syntax_uid: Mapped[str] = mapped_column(UID)
    storage_key: Mapped[str] = mapped_column(String(200))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # SHA-256 of the data set after the File Meta, so a resend with other meta is a duplicate.
    digest: Mapped[str] = mapped_column(String(64))
    # Where the Pixel Data value starts in the file and its length (-1: undefined length,
    # i.e. encapsulated); None when absent or when the stored syntax is deflated.
    pixel_data_offset: Mapped[int | None] = mapped_column(BigInteger)
    pixel_data_length: Mapped[int | None] = mapped_column(BigInteger)
    # PS3.18 Annex F DICOM JSON, bulk data as BulkDataURI relative to the DICOMweb root.
    metadata_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())


class Arrival(Base):
    """Outbox of ingested instances for the workflow dispatcher."""

    __tablename__ = "arrivals"
    __table_args__ = (Index("ix_arrivals_pending", "dispatched_at", "series_instance_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID)
    series_instance_uid: Mapped[str] = mapped_column(UID)
    sop_instance_uid: Mapped[str] = mapped_column(UID)
    sop_class_uid: Mapped[str] = mapped_column(UID)
    source_kind: Mapped[str] = mapped_column(String(16))
    username: Mapped[str] = mapped_column(String(256), default="")
    calling_ae: Mapped[str] = mapped_column(String(16), default="")
    called_ae: Mapped[str] = mapped_column(String(16), default="")
    peer: Mapped[str] = mapped_column(String(64), default="")
    # UTC, set by ingest (not the database's clock, whose zone and resolution vary).
    received_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime)
    dag_run_id: Mapped[str | None] = mapped_column(String(250))


NATURAL_KEYS: dict[type[Base], tuple[str, ...]] = {
    Patient: ("patient_id", "issuer_of_patient_id"),
    Study: ("study_instance_uid",),
    Series: ("series_instance_uid",),
}


def upsert(conn: Connection, model: type[Base], values: dict[str, Any]) -> tuple[int, bool]:
    """Insert a row unless its natural key exists; return its id and whether it was new.

    ON CONFLICT DO NOTHING makes concurrent ingests of a new study safe on both databases;
    RETURNING tells whether this insert made the row (the rowcount of an insert on
    PostgreSQL is -1, which said "new" even when another transaction had made it).
    """
    keys = NATURAL_KEYS[model]
    insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    table = model.__table__
    inserted = conn.execute(
        insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(keys))
        .returning(table.c.id)
    ).scalar()
    if inserted is not None:
        return inserted, True
    row_id = conn.execute(
        select(table.c.id).where(*(table.c[key] == values[key] for key in keys))
    ).scalar_one()
    return row_id, False


class RemoteAE(Base):
    """A DICOM peer: allowed to connect to us, and where C-MOVE may send (host and port)."""

    __tablename__ = "remote_aes"

    id: Mapped[int] = mapped_column(primary_key=True)
    ae_title: Mapped[str] = mapped_column(String(16), unique=True)
    host: Mapped[str] = mapped_column(String(255), default="")
    port: Mapped[int | None] = mapped_column(Integer)
    may_connect: Mapped[bool] = mapped_column(default=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    # Query and retrieve reach every study (a trusted node of the lab), or only the studies
    # of the projects in remote_ae_projects.
    all_projects: Mapped[bool] = mapped_column(default=False)
    projects: Mapped[list[Project]] = relationship(secondary="remote_ae_projects")


# -- projects: who sees which studies (pacsflow.archive.access) --------------------------------


class Project(Base):
    """A group of studies and the people who work on them; ``ae_title``, when set, is the
    called AE title whose C-STOREs land in the project (one per project, as in Kaapana)."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    ae_title: Mapped[str | None] = mapped_column(String(16), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=func.now())

    def __str__(self) -> str:  # how admin forms list it
        return self.name


class StudyProject(Base):
    """A study's membership of a project; a study may belong to several."""

    __tablename__ = "study_projects"

    study_fk: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True
    )
    project_fk: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ProjectMember(Base):
    """A user's role in a project (pacsflow.archive.access.ProjectRole)."""

    __tablename__ = "project_members"

    project_fk: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)  # ab_user.id
    role: Mapped[str] = mapped_column(String(16))


class RemoteAEProject(Base):
    """A project whose studies a DICOM peer may query and retrieve."""

    __tablename__ = "remote_ae_projects"

    remote_ae_fk: Mapped[int] = mapped_column(
        ForeignKey("remote_aes.id", ondelete="CASCADE"), primary_key=True
    )
    project_fk: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )


# -- the embedded search backend (pacsflow.search.sql) ------------------------------------------

# Search keys compare by code point on both databases, as OpenSearch keywords do, and on
# PostgreSQL a LIKE 'prefix%' can use their btree indexes.
SEARCH_KEY = Text().with_variant(Text(collation="C"), "postgresql")
SEARCH_UID = String(64).with_variant(String(64, collation="C"), "postgresql")
SEARCH_DATE = String(10)  # YYYY-MM-DD
SEARCH_DATETIME = String(27)  # YYYY-MM-DDTHH:MM:SS.ffffffZ, fixed width so it sorts as it compares


class SearchDocument(Base):
    """A series document (pacsflow.search.model) as given; search hits return it unchanged."""

    __tablename__ = "search_documents"
    __table_args__ = (
        Index(
            "ix_search_documents_document",
            "document",
            postgresql_using="gin",
            postgresql_ops={"document": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    series_instance_uid: Mapped[str] = mapped_column(SEARCH_UID, primary_key=True)
    study_instance_uid: Mapped[str | None] = mapped_column(SEARCH_UID, index=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    indexed_at: Mapped[datetime] = mapped_column(DateTime)


class SearchFields(Base):
    """A document's scalar fields as columns, so filters, sorts and facets read no JSON.

    Narrow on purpose: a facet over every series scans this table or its indexes, never the
    documents. Person names are folded (case and accents removed) per component; dates and
    date-times are ISO strings, which sort as they compare. ``words`` holds the folded words
    of the text fields: a tsvector on PostgreSQL; on SQLite the text that the FTS5 table
    ``search_text`` indexes, kept in step by triggers (migration 0004).
    """

    __tablename__ = "search_fields"
    __table_args__ = (
        # The default sort: newest arrival first, then SeriesInstanceUID.
        Index(
            "ix_search_fields_recent", desc("arrived_at").nulls_last(), "series_instance_uid"
        ).ddl_if(dialect="postgresql"),
        Index("ix_search_fields_recent", desc("arrived_at"), "series_instance_uid").ddl_if(
            dialect="sqlite"
        ),
        Index("ix_search_fields_words", "words", postgresql_using="gin").ddl_if(
            dialect="postgresql"
        ),
    )

    # INTEGER on SQLite, the rowid itself (and the FTS5 rowid); reindexing consumes ids.
    doc_id: Mapped[int] = mapped_column(
        Integer().with_variant(BigInteger(), "postgresql"), primary_key=True
    )
    series_instance_uid: Mapped[str] = mapped_column(
        SEARCH_UID,
        ForeignKey("search_documents.series_instance_uid", ondelete="CASCADE"),
        unique=True,
    )
    study_instance_uid: Mapped[str | None] = mapped_column(SEARCH_UID, index=True)
    patient_id: Mapped[str | None] = mapped_column(SEARCH_KEY, index=True)
    patient_name: Mapped[str | None] = mapped_column(SEARCH_KEY, index=True)
    patient_family_name: Mapped[str | None] = mapped_column(SEARCH_KEY, index=True)
    patient_given_name: Mapped[str | None] = mapped_column(SEARCH_KEY)
    patient_middle_name: Mapped[str | None] = mapped_column(SEARCH_KEY)
    patient_name_prefix: Mapped[str | None] = mapped_column(SEARCH_KEY)
    patient_name_suffix: Mapped[str | None] = mapped_column(SEARCH_KEY)
    patient_birth_date: Mapped[str | None] = mapped_column(SEARCH_DATE)
    patient_sex: Mapped[str | None] = mapped_column(SEARCH_KEY)
    study_date: Mapped[str | None] = mapped_column(SEARCH_DATE, index=True)
    study_date_time: Mapped[str | None] = mapped_column(SEARCH_DATETIME)
    study_description: Mapped[str | None] = mapped_column(SEARCH_KEY)
    accession_number: Mapped[str | None] = mapped_column(SEARCH_KEY, index=True)
    study_id: Mapped[str | None] = mapped_column(SEARCH_KEY)
    referring_physician_name: Mapped[str | None] = mapped_column(SEARCH_KEY)
    referring_physician_family_name: Mapped[str | None] = mapped_column(SEARCH_KEY)
    referring_physician_given_name: Mapped[str | None] = mapped_column(SEARCH_KEY)
    referring_physician_middle_name: Mapped[str | None] = mapped_column(SEARCH_KEY)
    referring_physician_name_prefix: Mapped[str | None] = mapped_column(SEARCH_KEY)
    referring_physician_name_suffix: Mapped[str | None] = mapped_column(SEARCH_KEY)
    modality: Mapped[str | None] = mapped_column(SEARCH_KEY, index=True)
    series_number: Mapped[float | None] = mapped_column(Float)
    series_description: Mapped[str | None] = mapped_column(SEARCH_KEY)
    body_part_examined: Mapped[str | None] = mapped_column(SEARCH_KEY, index=True)
    series_date: Mapped[str | None] = mapped_column(SEARCH_DATE)
    manufacturer: Mapped[str | None] = mapped_column(SEARCH_KEY)
    number_of_instances: Mapped[float | None] = mapped_column(Float)
    slice_position_min: Mapped[float | None] = mapped_column(Float)
    slice_position_max: Mapped[float | None] = mapped_column(Float)
    acquisition_date_time_min: Mapped[str | None] = mapped_column(SEARCH_DATETIME)
    acquisition_date_time_max: Mapped[str | None] = mapped_column(SEARCH_DATETIME)
    arrived_at: Mapped[str | None] = mapped_column(SEARCH_DATETIME)
    source_kind: Mapped[str | None] = mapped_column(SEARCH_KEY)
    source_ae: Mapped[str | None] = mapped_column(SEARCH_KEY)
    words: Mapped[Any] = mapped_column(Text().with_variant(TSVECTOR(), "postgresql"))


class SearchKeyword(Base):
    """One value of a list field (Project, AnnotationLabels, ...) of a document."""

    __tablename__ = "search_keywords"
    __table_args__ = ({"sqlite_with_rowid": False},)

    field: Mapped[str] = mapped_column(SEARCH_KEY, primary_key=True)
    value: Mapped[str] = mapped_column(SEARCH_KEY, primary_key=True)
    doc_id: Mapped[int] = mapped_column(
        ForeignKey("search_fields.doc_id", ondelete="CASCADE"), primary_key=True, index=True
    )


class SearchNumber(Base):
    """One value of a numeric list (``radiomics.<feature>``) of a document."""

    __tablename__ = "search_numbers"
    __table_args__ = ({"sqlite_with_rowid": False},)

    field: Mapped[str] = mapped_column(SEARCH_KEY, primary_key=True)
    value: Mapped[float] = mapped_column(Float, primary_key=True)
    doc_id: Mapped[int] = mapped_column(
        ForeignKey("search_fields.doc_id", ondelete="CASCADE"), primary_key=True, index=True
    )


class SearchGeneration(Base):
    """One row counting the search index's write transactions.

    Every write transaction of the embedded search adds one, so a search reads in its
    snapshot which generation of the index it sees, and per-process copies of index values
    (pacsflow.search.doc_values) know when they are out of date.
    """

    __tablename__ = "search_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


class ApiToken(Base):
    """A personal access token for scripts: only its SHA-256 is kept, never the token.

    The token is 256 random bits, so a plain hash is enough to make a stolen table useless
    (a slow password hash protects guessable secrets, which these are not). Checked on every
    request, uncached, so revoking one takes effect at once.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)  # Flask-AppBuilder's ab_user.id
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class AuditEvent(Base):
    """One access to patient data, with the fields of an IHE ATNA audit message (DICOM
    PS3.15 A.5): the event and its code, action and outcome, who (user or calling AE) from
    where, and which studies. Written by pacsflow.audit; read by admins only."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime)  # UTC
    event: Mapped[str] = mapped_column(String(16))  # pacsflow.audit.AuditKind
    event_code: Mapped[str] = mapped_column(String(16))  # DCM code of EventID
    action: Mapped[str] = mapped_column(String(1))  # EventActionCode: C R U D E
    outcome: Mapped[int] = mapped_column(Integer)  # EventOutcomeIndicator: 0 4 8 12
    status: Mapped[int] = mapped_column(Integer)  # HTTP status or DIMSE status
    user: Mapped[str] = mapped_column(String(256), index=True)  # "" when not signed in
    source: Mapped[str] = mapped_column(String(128))  # client address, or AE@address
    interface: Mapped[str] = mapped_column(String(16))  # dicomweb, rest, dimse
    studies: Mapped[list[str]] = mapped_column(JSON)
    detail: Mapped[str] = mapped_column(Text)  # request line, or DIMSE service and keys
