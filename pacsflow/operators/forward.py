"""Forward a series from the archive to a DICOM node (C-STORE) or a DICOMweb server (STOW-RS).

Instances are read through pacsflow's DICOMweb as stored and sent byte for byte, so the
destination gets the objects the archive received. Every instance is tried even when some
fail; instances whose failure may pass (see :mod:`pacsflow.operators.report`) are tried
again after ``backoff`` seconds, doubled each time, ``retries`` times at most. If any
instance is finally not stored, :class:`ForwardError` is raised with the report.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from more_itertools import chunked
from pydicom.errors import InvalidDicomError

from pacsflow.operators.client import (
    DEFAULT_TIMEOUT,
    Auth,
    PacsflowClient,
    PacsflowError,
    check_http_url,
    http_session,
)
from pacsflow.operators.cstore import Destination, StoredFile, check_ae_title, store_files
from pacsflow.operators.report import ForwardReport, Outcome, SendFailure, describe, is_transient
from pacsflow.operators.stow import post_files

logger = logging.getLogger(__name__)

DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 1.0  # seconds before the first retry
# Seconds for connecting, association negotiation and each C-STORE response, which
# includes sending the instance: large objects over slow links need it generous.
DEFAULT_DIMSE_TIMEOUT = 120.0
STOW_BATCH = 16  # instances per STOW request; bounds what one failed request costs
SHOWN_FAILURES = 3

Send = Callable[[list[str]], dict[str, Outcome]]


class ForwardError(Exception):
    """Some instances were not stored; ``report`` has the outcome of each."""

    def __init__(self, message: str, report: ForwardReport) -> None:
        super().__init__(message)
        self.report = report


def forward_to_ae(
    client: PacsflowClient,
    study_uid: str,
    series_uid: str,
    destination: Destination,
    calling_ae: str,
    retries: int = DEFAULT_RETRIES,
    workdir: Path | None = None,
    *,
    backoff: float = DEFAULT_BACKOFF,
    timeout: float = DEFAULT_DIMSE_TIMEOUT,
) -> ForwardReport:
    """C-STORE every instance of a series to ``destination`` as ``calling_ae``.

    The series is fetched into a temporary folder under ``workdir`` (the system's by
    default) first, because the presentation contexts depend on every file's SOP Class and
    transfer syntax; the folder is removed afterwards.
    """
    check_ae_title(calling_ae, "calling_ae")
    _check_numbers(retries, backoff, timeout)
    report = ForwardReport(str(destination), study_uid, series_uid)
    uids = _instances(client, report)
    with tempfile.TemporaryDirectory(prefix="pacsflow-forward-", dir=workdir) as folder:
        fetched: dict[str, StoredFile] = {}

        def send(pending: list[str]) -> dict[str, Outcome]:
            outcomes: dict[str, Outcome] = {}
            for uid in pending:
                if uid not in fetched:
                    got = _fetch(client, report, uid, Path(folder))
                    if isinstance(got, SendFailure):
                        outcomes[uid] = got
                        continue
                    fetched[uid] = got
            files = [fetched[uid] for uid in pending if uid in fetched]
            outcomes.update(store_files(files, destination, calling_ae, timeout))
            return outcomes

        _run(report, uids, send, retries, backoff)
    return _finish(report)


def forward_to_dicomweb(
    client: PacsflowClient,
    study_uid: str,
    series_uid: str,
    url: str,
    auth: Auth = None,
    retries: int = DEFAULT_RETRIES,
    workdir: Path | None = None,
    *,
    backoff: float = DEFAULT_BACKOFF,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> ForwardReport:
    """STOW-RS every instance of a series to the DICOMweb root ``url``.

    ``auth`` is (username, password) for HTTP Basic, a requests ``AuthBase`` (e.g.
    :class:`~pacsflow.operators.client.BearerAuth`) or None. Instances go
    :data:`STOW_BATCH` to a request; only one batch is on disk at a time.
    """
    check_http_url(url, "url")
    _check_numbers(retries, backoff, timeout[1])
    report = ForwardReport(url, study_uid, series_uid)
    uids = _instances(client, report)
    with (
        http_session(auth, retries=0) as session,  # the rounds below retry
        tempfile.TemporaryDirectory(prefix="pacsflow-forward-", dir=workdir) as folder,
    ):

        def send(pending: list[str]) -> dict[str, Outcome]:
            outcomes: dict[str, Outcome] = {}
            for batch in chunked(pending, STOW_BATCH):
                files = []
                for uid in batch:
                    got = _fetch(client, report, uid, Path(folder))
                    if isinstance(got, SendFailure):
                        outcomes[uid] = got
                    else:
                        files.append((uid, got.path))
                if files:
                    outcomes.update(post_files(session, url, files, timeout))
                for _, path in files:
                    path.unlink()
            return outcomes

        _run(report, uids, send, retries, backoff)
    return _finish(report)


def _check_numbers(retries: int, backoff: float, timeout: float) -> None:
    if retries < 0:
        raise ValueError(f"retries must be 0 or more, not {retries}")
    if backoff < 0:
        raise ValueError(f"backoff must be 0 or more seconds, not {backoff}")
    if timeout <= 0:
        raise ValueError(f"timeout must be more than 0 seconds, not {timeout}")


def _instances(client: PacsflowClient, report: ForwardReport) -> list[str]:
    uids = client.series_instances(report.study_instance_uid, report.series_instance_uid)
    if not uids:
        raise ForwardError(
            f"series {report.series_instance_uid} of study {report.study_instance_uid} has "
            "no instances in pacsflow; check the UIDs",
            report,
        )
    logger.info(
        "Forwarding %d instances of series %s to %s",
        len(uids),
        report.series_instance_uid,
        report.destination,
    )
    return uids


def _fetch(
    client: PacsflowClient, report: ForwardReport, uid: str, folder: Path
) -> StoredFile | SendFailure:
    """The instance as stored, in ``folder``; a failure if pacsflow cannot give it."""
    try:
        path = client.retrieve_instance_file(
            report.study_instance_uid, report.series_instance_uid, uid, folder
        )
        return StoredFile.read(uid, path)
    except PacsflowError as error:
        transient = error.status is None or error.status >= 500
        return SendFailure(f"cannot read it from pacsflow: {error}", transient)
    except (InvalidDicomError, AttributeError, ValueError) as error:
        return SendFailure(f"its File Meta cannot be read: {error}", transient=False)


def _run(report: ForwardReport, uids: list[str], send: Send, retries: int, backoff: float) -> None:
    """Send ``uids``, then again those whose failure is transient, with growing pauses."""
    pending = uids
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff * 2 ** (attempt - 1)
            logger.info(
                "Retrying %d instances of series %s in %.1f s (retry %d of %d)",
                len(pending),
                report.series_instance_uid,
                delay,
                attempt,
                retries,
            )
            time.sleep(delay)
        report.outcomes.update(send(pending))
        report.attempts = attempt + 1
        pending = [uid for uid in pending if is_transient(report.outcomes[uid])]
        if not pending:
            return


def _finish(report: ForwardReport) -> ForwardReport:
    failed = report.failed
    logger.info(
        "Forwarded series %s to %s: %d succeeded, %d with warnings, %d failed",
        report.series_instance_uid,
        report.destination,
        len(report.succeeded),
        len(report.warnings),
        len(failed),
    )
    if not failed:
        return report
    shown = "; ".join(f"{uid}: {describe(report.outcomes[uid])}" for uid in failed[:SHOWN_FAILURES])
    more = f"; and {len(failed) - SHOWN_FAILURES} more" if len(failed) > SHOWN_FAILURES else ""
    raise ForwardError(
        f"{len(failed)} of {len(report.outcomes)} instances of series "
        f"{report.series_instance_uid} were not stored by {report.destination} after "
        f"{report.attempts} attempt(s): {shown}{more}",
        report,
    )


__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_RETRIES",
    "Destination",
    "ForwardError",
    "ForwardReport",
    "forward_to_ae",
    "forward_to_dicomweb",
]
