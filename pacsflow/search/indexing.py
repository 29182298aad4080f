"""From the archive to the search index: a series' document, kept in step with the archive.

Documents are built from the index alone (each instance's stored DICOM JSON, the newest
arrival of the series, the study's modalities) plus the measurement reports that concern the
series, so indexing reads no image file. A measurement report changes the documents of the
series it measured, so indexing an SR series re-indexes those too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from more_itertools import chunked
from sqlalchemy import select

from pacsflow.archive.archive import Archive
from pacsflow.archive.models import Arrival, Instance, Project, Series, Study, StudyProject
from pacsflow.archive.reports import evidence_series, own_reports, series_reports
from pacsflow.search.document import radiomics_values, series_document
from pacsflow.search.model import SearchBackend
from pacsflow.settings import Settings

logger = logging.getLogger(__name__)

BATCH = 500


def open_backend(settings: Settings, archive: Archive) -> SearchBackend:
    """The embedded backend on the archive's database, or OpenSearch at PACSFLOW_SEARCH_URL."""
    if not settings.search_url:
        from pacsflow.search.sql import SqlSearchBackend

        return SqlSearchBackend(archive.engine)
    from pacsflow.search.opensearch import OpenSearchBackend, connect

    def text(path: object) -> str | None:
        return str(path) if path is not None else None

    client = connect(
        settings.search_url,
        username=settings.search_username or None,
        password=settings.search_password.get_secret_value() if settings.search_password else None,
        ca_certs=text(settings.search_ca_certs),
        verify_certs=settings.search_verify_certs,
        client_cert=text(settings.search_client_cert),
        client_key=text(settings.search_client_key),
    )
    return OpenSearchBackend(client)


def document_of(archive: Archive, series_uid: str) -> dict[str, Any] | None:
    """The series' document as it is stored now; None if the series is not stored."""
    with archive.engine.connect() as conn:
        series = conn.execute(
            select(Series.id, Series.study_fk, Study.modalities_in_study)
            .join(Study, Series.study_fk == Study.id)
            .where(Series.series_instance_uid == series_uid)
        ).first()
        if series is None:
            return None
        texts = conn.scalars(
            select(Instance.metadata_json).where(Instance.series_fk == series.id)
        ).all()
        projects = conn.scalars(
            select(Project.name)
            .join(StudyProject, StudyProject.project_fk == Project.id)
            .where(StudyProject.study_fk == series.study_fk)
        ).all()
        arrival = conn.execute(
            select(Arrival)
            .where(Arrival.series_instance_uid == series_uid)
            .order_by(Arrival.id.desc())
            .limit(1)
        ).first()
    if not texts:
        return None
    reports = series_reports(archive, series_uid) or []
    return series_document(
        [json.loads(text) for text in texts],
        source={"kind": arrival.source_kind, "calling_ae": arrival.calling_ae} if arrival else None,
        arrived_at=arrival.received_at if arrival else None,
        modalities_in_study=[m for m in series.modalities_in_study.split("/") if m],
        project=projects,
        radiomics=radiomics_values(reports),
    )


def affected_series(archive: Archive, series_uids: Iterable[str]) -> list[str]:
    """``series_uids`` and, for the measurement reports among them, the series they measured."""
    affected = dict.fromkeys(series_uids)
    for uid in list(affected):
        for report in own_reports(archive, uid):
            affected.update(dict.fromkeys(evidence_series(report)))
    return list(affected)


def refresh(archive: Archive, backend: SearchBackend, series_uids: Iterable[str]) -> int:
    """Index the series (and what their reports measured); drop documents of series gone."""
    documents, gone = [], []
    for uid in affected_series(archive, series_uids):
        document = document_of(archive, uid)
        if document is None:
            gone.append(uid)
        else:
            documents.append(document)
    if gone:
        backend.delete(gone)
    return backend.index(documents) if documents else 0


def study_series(archive: Archive, study_uid: str) -> list[str]:
    with archive.engine.connect() as conn:
        return list(
            conn.scalars(
                select(Series.series_instance_uid)
                .join(Study, Series.study_fk == Study.id)
                .where(Study.study_instance_uid == study_uid)
            )
        )


def all_series(archive: Archive) -> list[str]:
    with archive.engine.connect() as conn:
        return list(conn.scalars(select(Series.series_instance_uid).order_by(Series.id)))


def reindex(
    archive: Archive, backend: SearchBackend, progress: Callable[[int], object] = lambda _: None
) -> int:
    """Rebuild the index from the archive: every stored series, streamed to the backend."""

    def documents() -> Iterator[dict[str, Any]]:
        for batch in chunked(all_series(archive), BATCH):
            yield from (d for d in (document_of(archive, uid) for uid in batch) if d is not None)
            progress(len(batch))

    indexed = backend.reindex(documents())
    logger.info("search index rebuilt: %d series", indexed)
    return indexed
