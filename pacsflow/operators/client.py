"""A small client for pacsflow's own DICOMweb, the only way tasks reach archived data.

Tasks never open the archive's files, so they run the same on any Airflow executor. The
client lists a series (QIDO-RS), reads its metadata and fetches instances as stored
(WADO-RS with ``transfer-syntax=*``), streaming each to a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.util.retry import Retry

from pacsflow.dicom.uid import check_uid
from pacsflow.operators.multipart import (
    DICOM,
    READ_CHUNK,
    MultipartError,
    boundary_of,
    copy_single_part,
)

# (connect, read) seconds; read bounds each wait for data, not the whole transfer.
DEFAULT_TIMEOUT = (10.0, 120.0)
DEFAULT_RETRIES = 3
RETRY_BACKOFF = 0.5  # urllib3 retries at once, then waits 1 s, 2 s, 4 s ...
RETRY_STATUSES = frozenset({500, 502, 503, 504})
QIDO_PAGE = 1000
DICOM_JSON = "application/dicom+json"
JSON = "application/json"
AS_STORED = f'multipart/related; type="{DICOM}"; transfer-syntax=*'
SOP_INSTANCE_UID = "00080018"
PREAMBLE_LENGTH = 128
DICM = b"DICM"

Auth = tuple[str, str] | AuthBase | None


class PacsflowError(Exception):
    """An HTTP request failed; names the request, the status and what the server said."""

    def __init__(self, method: str, url: str, status: int | None, message: str) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.message = message
        outcome = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{method} {url} failed: {outcome}: {message}")


class BearerAuth(AuthBase):
    """``Authorization: Bearer`` for a token from ``POST /api/v1/security/login``."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def http_session(
    auth: Auth, retries: int = DEFAULT_RETRIES, retry_post: bool = False
) -> requests.Session:
    """A session that retries connection errors, and 5xx answers to GET, with backoff.

    POST is retried only when the connection could not be made (nothing was sent), unless
    ``retry_post`` says the caller's POSTs are idempotent; a STOW that may have reached the
    server is retried by the caller, instance by instance.
    """
    methods = Retry.DEFAULT_ALLOWED_METHODS | ({"POST"} if retry_post else set())
    retry = Retry(
        total=retries,
        allowed_methods=methods,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=RETRY_BACKOFF,
        status_forcelist=RETRY_STATUSES,
        raise_on_status=False,  # the last answer is returned, so its message can be shown
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.auth = auth
    return session


def check_http_url(url: str, attribute: str) -> str:
    """``url`` if it is http(s) with a host and no credentials (URLs end up in logs and
    reports; credentials go in ``auth``), else raise ValueError naming ``attribute``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{attribute} {url!r} must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{attribute} must not hold credentials; give them separately")
    return url


def server_message(response: requests.Response) -> str:
    """What the server said about an error: pacsflow's JSON ``error``, else the text."""
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text.strip()[:500] or response.reason


def _raise_for_status(response: requests.Response) -> None:
    """Raise :class:`PacsflowError` with the server's own message for an error answer."""
    if response.status_code >= 400:
        method = response.request.method or ""
        raise PacsflowError(method, response.url, response.status_code, server_message(response))


class PacsflowClient:
    """pacsflow's DICOMweb at ``base_url`` (e.g. ``http://127.0.0.1:8000``) for one account.

    Give ``username`` and ``password`` (HTTP Basic) or a bearer ``token``, not both.
    """

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        token: str | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        check_http_url(base_url, "base_url")
        if token is not None and (username is not None or password is not None):
            raise ValueError("give either username and password or token, not both")
        if token is None and (not username or password is None):
            raise ValueError("username and password are required when no token is given")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries}")
        auth: Auth = BearerAuth(token) if token is not None else (str(username), str(password))
        self.api_url = base_url.rstrip("/") + "/api/v1"
        self.dicomweb_url = base_url.rstrip("/") + "/dicomweb"
        self.timeout = timeout
        self.session = http_session(auth, retries)

    def __enter__(self) -> PacsflowClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    def series_instances(self, study_uid: str, series_uid: str) -> list[str]:
        """SOP Instance UIDs of a series in the order stored; ``[]`` for an unknown series
        (QIDO-RS answers a search that matches nothing with an empty list)."""
        url = f"{self._series_url(study_uid, series_uid)}/instances"
        uids: list[str] = []
        while True:
            params = {"limit": QIDO_PAGE, "offset": len(uids)}
            page = self._get(url, DICOM_JSON, params=params).json()
            uids.extend(str(match[SOP_INSTANCE_UID]["Value"][0]) for match in page)
            if len(page) < QIDO_PAGE:
                return uids

    def series_metadata(self, study_uid: str, series_uid: str) -> list[dict[str, Any]]:
        """DICOM JSON of each instance; an unknown series raises :class:`PacsflowError` 404."""
        url = f"{self._series_url(study_uid, series_uid)}/metadata"
        metadata: list[dict[str, Any]] = self._get(url, DICOM_JSON).json()
        return metadata

    def remote_ae(self, ae_title: str) -> dict[str, Any]:
        """A registered DICOM peer (title, host, port...); an unknown one raises 404."""
        url = f"{self.api_url}/remote-aes/{quote(ae_title, safe='')}"
        peer: dict[str, Any] = self._get(url, JSON).json()
        return peer

    def add_study_to_project(self, project: str, study_uid: str) -> None:
        """Put a stored study in a project (a routing rule's action)."""
        study_uid = check_uid(study_uid, "StudyInstanceUID")
        url = f"{self.api_url}/projects/{quote(project, safe='')}/studies/{study_uid}"
        try:
            response = self.session.put(url, timeout=self.timeout)
        except requests.RequestException as error:
            raise PacsflowError("PUT", url, None, str(error)) from error
        _raise_for_status(response)

    def radiomics_parameters(self, name: str) -> str:
        """The YAML of an uploaded or shipped pyradiomics parameter set; unknown raises 404."""
        url = f"{self.api_url}/radiomics/parameters/{quote(name, safe='')}"
        return self._get(url, "application/yaml").content.decode("utf-8")

    def index_series(self, series_uid: str) -> int:
        """Bring the series' search document up to date (and those its reports measured)."""
        series_uid = check_uid(series_uid, "SeriesInstanceUID")
        return self._indexed(f"{self.api_url}/search/series/{series_uid}", self.timeout)

    def reindex(self, timeout: tuple[float, float]) -> int:
        """Rebuild the whole search index (admin); ``timeout`` must allow for all of it."""
        return self._indexed(f"{self.api_url}/search/reindex", timeout)

    def _indexed(self, url: str, timeout: tuple[float, float]) -> int:
        try:
            response = self.session.post(url, headers={"Accept": JSON}, timeout=timeout)
        except requests.RequestException as error:
            raise PacsflowError("POST", url, None, str(error)) from error
        _raise_for_status(response)
        return int(response.json()["indexed"])

    def retrieve_instance_file(
        self, study_uid: str, series_uid: str, sop_uid: str, into: Path
    ) -> Path:
        """Fetch an instance as stored into the folder ``into``; return the Part-10 file.

        The part is streamed to a temporary file that is renamed when complete, so the
        returned path never holds a partial object.
        """
        sop_uid = check_uid(sop_uid, "SOPInstanceUID")
        url = f"{self._series_url(study_uid, series_uid)}/instances/{sop_uid}"
        target = into / f"{sop_uid}.dcm"
        with self._get(url, AS_STORED, stream=True) as response:
            fd, partial = tempfile.mkstemp(dir=into, prefix=f".{sop_uid}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out:
                    _copy_part(response, out)
                _check_part10(Path(partial), url)
                os.replace(partial, target)
            except BaseException:
                Path(partial).unlink(missing_ok=True)
                raise
        return target

    def _series_url(self, study_uid: str, series_uid: str) -> str:
        study_uid = check_uid(study_uid, "StudyInstanceUID")
        series_uid = check_uid(series_uid, "SeriesInstanceUID")
        return f"{self.dicomweb_url}/studies/{study_uid}/series/{series_uid}"

    def _get(
        self, url: str, accept: str, params: dict[str, Any] | None = None, stream: bool = False
    ) -> requests.Response:
        try:
            response = self.session.get(
                url, params=params, headers={"Accept": accept}, timeout=self.timeout, stream=stream
            )
        except requests.RequestException as error:
            raise PacsflowError("GET", url, None, str(error)) from error
        _raise_for_status(response)
        return response


def _copy_part(response: requests.Response, out: BinaryIO) -> None:
    try:
        boundary = boundary_of(response.headers.get("Content-Type", ""))
        headers = copy_single_part(response.iter_content(READ_CHUNK), boundary, out)
    except MultipartError as error:
        raise PacsflowError("GET", response.url, response.status_code, str(error)) from None
    except requests.RequestException as error:  # the connection broke mid-body
        raise PacsflowError("GET", response.url, None, f"body cut short: {error}") from error
    part_type = headers.get("content-type", "").split(";")[0].strip()
    if part_type != DICOM:
        raise PacsflowError(
            "GET", response.url, response.status_code, f"part is {part_type!r}, not {DICOM}"
        )


def _check_part10(path: Path, url: str) -> None:
    with open(path, "rb") as f:
        f.seek(PREAMBLE_LENGTH)
        if f.read(len(DICM)) != DICM:
            raise PacsflowError("GET", url, 200, "the part is not a DICOM Part-10 file")


__all__ = [
    "Auth",
    "BearerAuth",
    "PacsflowClient",
    "PacsflowError",
    "check_http_url",
    "http_session",
    "server_message",
]
