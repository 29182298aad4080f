"""Browser tests: Debian's Chromium driven by Playwright against a real pacsflow with data.

The server and its data start once per session and serve every browser test (viewer and
dashboard), as does Chromium (tests.browser_support); each test gets its own signed-in page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from playwright.sync_api import Browser, Page

from pacsflow.settings import load_settings
from tests.browser_support import signed_in_page
from tests.conftest import database
from tests.live_server import ADMIN_PASSWORD, LiveServer, running_server

# The data stored in browser_server, as folders and files under the shared test data.
STORED_DATA = (
    "dcmqi-seg/ct-3slice",
    "dcmqi-seg/liver.dcm",
    "ibsi-ct-phantom/image",
    "ibsi-ct-phantom/rtstruct",
    "tid1500-example/sr.dcm",
)


@dataclass(frozen=True)
class Studies:
    """StudyInstanceUIDs of the studies browser_server holds."""

    ct_seg: str  # dcmqi: three CT slices and a SEG with one segment, "Liver"
    ct_rtstruct: str  # IBSI CT phantom, 60 slices, and an RTSTRUCT
    sr: str  # TID 1500 measurement report (without its images)


def dicom_files(shared_data: Path) -> list[Path]:
    files: list[Path] = []
    for name in STORED_DATA:
        path = shared_data / name
        files.extend(sorted(path.glob("*.dcm")) if path.is_dir() else [path])
    return files


def study_uid(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)


@pytest.fixture(scope="session")
def browser_server(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path
) -> Iterator[LiveServer]:
    """pacsflow on SQLite holding the STORED_DATA, stored through STOW-RS and indexed for
    search (as process_series would, were Airflow running)."""
    folder = tmp_path_factory.mktemp("browser-server")
    with database("sqlite", folder) as url:
        settings = load_settings(
            home=folder / "home", database_url=url, admin_password=ADMIN_PASSWORD
        )
        with running_server(settings, folder / "server.log") as server:
            client = DICOMwebClient(url=server.dicomweb, session=server.session())
            datasets = [pydicom.dcmread(path) for path in dicom_files(shared_data)]
            response = client.store_instances(datasets)
            assert "FailedSOPSequence" not in response
            reindexed = server.session().post(f"{server.url}/api/v1/search/reindex", timeout=60)
            assert reindexed.status_code == 200, reindexed.text
            yield server


@pytest.fixture(scope="session")
def studies(shared_data: Path) -> Studies:
    return Studies(
        ct_seg=study_uid(shared_data / "dcmqi-seg/liver.dcm"),
        ct_rtstruct=study_uid(shared_data / "ibsi-ct-phantom/rtstruct/DCM_RS_00060.dcm"),
        sr=study_uid(shared_data / "tid1500-example/sr.dcm"),
    )


@pytest.fixture
def page(browser: Browser, browser_server: LiveServer) -> Iterator[Page]:
    """A fresh browser context signed in as admin through pacsflow's login form."""
    page = signed_in_page(browser, browser_server)
    yield page
    page.context.close()
