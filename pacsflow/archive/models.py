"""The archive index: patient, study, series and instance rows, and the arrival outbox.

Rows hold the attributes QIDO-RS matches on and returns (PS3.18 10.6), plus derived counts,
so queries never open files. Person names keep a normalised copy for case-insensitive and
fuzzy matching; ModalitiesInStudy is kept as ``/CT/SEG/`` so one LIKE matches a value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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

    ON CONFLICT DO NOTHING makes concurrent ingests of a new study safe on both databases.
    """
    keys = NATURAL_KEYS[model]
    insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    result = conn.execute(
        insert(model).values(**values).on_conflict_do_nothing(index_elements=list(keys))
    )
    table = model.__table__
    row_id = conn.execute(
        select(table.c.id).where(*(table.c[key] == values[key] for key in keys))
    ).scalar_one()
    return row_id, bool(result.rowcount)  # type: ignore[attr-defined]


class RemoteAE(Base):
    """A DICOM peer: allowed to connect to us, and where C-MOVE may send (host and port)."""

    __tablename__ = "remote_aes"

    id: Mapped[int] = mapped_column(primary_key=True)
    ae_title: Mapped[str] = mapped_column(String(16), unique=True)
    host: Mapped[str] = mapped_column(String(255), default="")
    port: Mapped[int | None] = mapped_column(Integer)
    may_connect: Mapped[bool] = mapped_column(default=True)
    description: Mapped[str] = mapped_column(String(255), default="")
