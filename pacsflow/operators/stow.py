"""STOW-RS client (PS3.18 10.5) that sends Part-10 files byte for byte.

dicomweb-client's ``store_instances`` would re-encode each data set with ``pydicom.dcmwrite``
(dropping group lengths, re-deflating ...), so the body is built from the files as stored.
The Store Instances Response (PS3.18 Annex I) gives each instance its status.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any

import requests

from pacsflow.dicom.status import StoreStatus
from pacsflow.operators.client import server_message
from pacsflow.operators.multipart import MultipartBody
from pacsflow.operators.report import Outcome, SendFailure

DICOM_JSON = "application/dicom+json"
# Store Instances Response Module attributes (PS3.18 Table I.2-1), as DICOM JSON keys.
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"
# Answers that carry a Store Instances Response (PS3.18 10.5.3).
ANSWERED = (HTTPStatus.OK, HTTPStatus.ACCEPTED, HTTPStatus.CONFLICT)
# Answers after which the same request may succeed later.
TRANSIENT_HTTP = (HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_MANY_REQUESTS)


def post_files(
    session: requests.Session,
    url: str,
    files: Sequence[tuple[str, Path]],
    timeout: tuple[float, float],
) -> dict[str, Outcome]:
    """STOW ``files`` (SOP Instance UID, path) in one request to the DICOMweb root ``url``."""
    body = MultipartBody([path for _, path in files])
    uids = [uid for uid, _ in files]
    studies_url = f"{url.rstrip('/')}/studies"
    headers = {"Content-Type": body.content_type, "Accept": DICOM_JSON}
    try:
        response = session.post(studies_url, data=body, headers=headers, timeout=timeout)
    except requests.RequestException as error:
        failure = SendFailure(f"POST {studies_url} failed: {error}", transient=True)
        return dict.fromkeys(uids, failure)
    if response.status_code not in ANSWERED:
        return dict.fromkeys(uids, _http_failure(response))
    try:
        outcomes = parse_response(response.json())
    except (ValueError, KeyError, IndexError, TypeError):
        failure = SendFailure(
            f"POST {studies_url}: HTTP {response.status_code} with an unreadable "
            "Store Instances Response",
            transient=False,
        )
        return dict.fromkeys(uids, failure)
    missing = SendFailure(
        f"POST {studies_url}: HTTP {response.status_code} does not mention the instance",
        transient=False,
    )
    return {uid: outcomes.get(uid, missing) for uid in uids}


def parse_response(body: dict[str, Any]) -> dict[str, int]:
    """SOP Instance UID → status: 0 stored, WarningReason stored with a warning,
    FailureReason not stored (a FailedSOPSequence item without one is a processing failure)."""
    statuses: dict[str, int] = {}
    for item in _items(body, REFERENCED_SOP_SEQUENCE):
        statuses[_uid(item)] = _value(item, WARNING_REASON, StoreStatus.SUCCESS)
    for item in _items(body, FAILED_SOP_SEQUENCE):
        statuses[_uid(item)] = _value(item, FAILURE_REASON, StoreStatus.PROCESSING_FAILURE)
    return statuses


def _items(body: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = body.get(tag, {}).get("Value", [])
    return items


def _uid(item: dict[str, Any]) -> str:
    return str(item[REFERENCED_SOP_INSTANCE_UID]["Value"][0])


def _value(item: dict[str, Any], tag: str, default: int) -> int:
    values = item.get(tag, {}).get("Value", [])
    return int(values[0]) if values else int(default)


def _http_failure(response: requests.Response) -> SendFailure:
    status = response.status_code
    message = f"POST {response.url} failed: HTTP {status}: {server_message(response)}"
    return SendFailure(message, transient=status >= 500 or status in TRANSIENT_HTTP)


__all__ = ["parse_response", "post_files"]
