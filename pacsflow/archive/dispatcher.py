"""The dispatcher: starts `process_series` once a series has been quiet for a while.

Every ingest writes an arrival row (the outbox) in the same transaction as the instance,
so no arrival is lost whatever fails. A series whose newest pending arrival is older
than the quiet period is dispatched: one DAG run for all its pending arrivals, with a run
id derived from the series and the newest arrival's id. A trigger retried after a crash
(before the rows were marked) therefore finds its run already there and never starts a
second one. Instances that arrive after a dispatch start a new run of their own once the
series is quiet again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from pacsflow.archive.archive import Archive
from pacsflow.archive.ingest import utc_now
from pacsflow.archive.models import Arrival, Instance, Series, Study
from pacsflow.workflows.airflow_api import AirflowClient, AirflowUnavailable

logger = logging.getLogger(__name__)

PROCESS_SERIES = "process_series"
MAX_BACKOFF_SECONDS = 30.0


@dataclass(frozen=True)
class QuietSeries:
    """The pending arrivals of one series, up to and including ``last_arrival_id``."""

    series_instance_uid: str
    last_arrival_id: int
    instances: int

    @property
    def run_id(self) -> str:
        return f"series__{self.series_instance_uid}__{self.last_arrival_id}"


def quiet_series(archive: Archive, quiet_seconds: float, now: datetime) -> list[QuietSeries]:
    """Series with pending arrivals, the newest older than the quiet period; oldest first."""
    cutoff = now - timedelta(seconds=quiet_seconds)
    query = (
        select(Arrival.series_instance_uid, func.max(Arrival.id), func.count())
        .where(Arrival.dispatched_at.is_(None))
        .group_by(Arrival.series_instance_uid)
        .having(func.max(Arrival.received_at) <= cutoff)
        .order_by(func.max(Arrival.id))
    )
    with archive.engine.connect() as conn:
        return [QuietSeries(uid, last, count) for uid, last, count in conn.execute(query)]


def run_conf(archive: Archive, series: QuietSeries) -> dict[str, Any]:
    """What `process_series` is told about the series and where its instances came from."""
    pending = (
        Arrival.series_instance_uid == series.series_instance_uid,
        Arrival.dispatched_at.is_(None),
        Arrival.id <= series.last_arrival_id,
    )
    with archive.engine.connect() as conn:
        last = conn.execute(select(Arrival).where(Arrival.id == series.last_arrival_id)).one()
        sop_classes = conn.execute(
            select(Arrival.sop_class_uid).where(*pending).distinct()
        ).scalars()
        stored = conn.execute(
            select(Series.modality, Series.number_of_instances).where(
                Series.series_instance_uid == series.series_instance_uid
            )
        ).first()
    source = {
        "kind": last.source_kind,
        "username": last.username,
        "calling_ae": last.calling_ae,
        "called_ae": last.called_ae,
        "peer": last.peer,
    }
    return _conf(
        last.study_instance_uid,
        series.series_instance_uid,
        stored.modality if stored else "",
        sop_classes,
        series.instances,
        stored.number_of_instances if stored else 0,
        source,
    )


def stored_series_conf(
    archive: Archive, series_instance_uid: str, source: dict[str, str]
) -> dict[str, Any] | None:
    """The conf of a run on a whole stored series (a manual run); None if it is not stored."""
    with archive.engine.connect() as conn:
        stored = conn.execute(
            select(Study.study_instance_uid, Series.id, Series.modality, Series.number_of_instances)
            .join(Study, Series.study_fk == Study.id)
            .where(Series.series_instance_uid == series_instance_uid)
        ).first()
        if stored is None:
            return None
        sop_classes = conn.execute(
            select(Instance.sop_class_uid).where(Instance.series_fk == stored.id).distinct()
        ).scalars()
        return _conf(
            stored.study_instance_uid,
            series_instance_uid,
            stored.modality,
            sop_classes,
            stored.number_of_instances,
            stored.number_of_instances,
            source,
        )


def _conf(
    study_instance_uid: str,
    series_instance_uid: str,
    modality: str,
    sop_class_uids: Iterable[str],
    instances: int,
    series_instances: int,
    source: dict[str, str],
) -> dict[str, Any]:
    """The one shape of a series run's conf, whoever starts the run (README: Dispatch)."""
    return {
        "study_instance_uid": study_instance_uid,
        "series_instance_uid": series_instance_uid,
        "modality": modality,
        "sop_class_uids": sorted(sop_class_uids),
        "instances": instances,
        "series_instances": series_instances,
        "source": source,
        "project": "",
    }


def mark_dispatched(archive: Archive, series: QuietSeries, now: datetime) -> None:
    with archive.write_connection() as conn:
        conn.execute(
            update(Arrival)
            .where(
                Arrival.series_instance_uid == series.series_instance_uid,
                Arrival.dispatched_at.is_(None),
                Arrival.id <= series.last_arrival_id,
            )
            .values(dispatched_at=now, dag_run_id=series.run_id)
        )


class Dispatcher:
    """Polls the outbox and triggers runs; waits with backoff while Airflow is away."""

    def __init__(
        self,
        archive: Archive,
        airflow: AirflowClient,
        quiet_seconds: float,
        dag_id: str = PROCESS_SERIES,
    ) -> None:
        self.archive = archive
        self.airflow = airflow
        self.quiet_seconds = quiet_seconds
        self.dag_id = dag_id

    def dispatch_once(self) -> int:
        """Trigger a run for every quiet series; return how many were dispatched."""
        dispatched = 0
        for series in quiet_series(self.archive, self.quiet_seconds, utc_now()):
            conf = run_conf(self.archive, series)
            started = self.airflow.trigger(self.dag_id, series.run_id, conf)
            mark_dispatched(self.archive, series, utc_now())
            logger.info(
                "%s %s run %s for %d instances of series %s",
                "started" if started else "found existing",
                self.dag_id,
                series.run_id,
                series.instances,
                series.series_instance_uid,
            )
            dispatched += 1
        return dispatched

    def run(self, stopping: threading.Event) -> None:
        """Dispatch until ``stopping`` is set."""
        poll = min(1.0, max(self.quiet_seconds / 4, 0.1))
        backoff = 0.0
        while not stopping.wait(backoff or poll):
            try:
                self.dispatch_once()
            except Exception as exc:
                backoff = min(max(backoff * 2, 1.0), MAX_BACKOFF_SECONDS)
                if isinstance(exc, AirflowUnavailable):
                    logger.warning("%s; arrivals stay queued, retrying in %.0f s", exc, backoff)
                else:
                    logger.exception("dispatching failed; retrying in %.0f s", backoff)
                continue
            if backoff:
                logger.info("Airflow is reachable again; dispatching resumed")
            backoff = 0.0
