"""The dashboard in Chromium: search by patient name, narrow by a facet, open a study in
OHIF, a study's page, upload, and hostile patient names shown as text everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from playwright.sync_api import Dialog, Page, expect

from tests.browser.conftest import Studies
from tests.browser.ohif import IMAGE_GREY_LEVELS, dismiss_notices, shown_image
from tests.browser_support import results, with_new_uids
from tests.live_server import LiveServer

HOSTILE_NAMES = ("<img src=x onerror=alert(1)>", "<script>alert(2)</script>")


def search(page: Page, server: LiveServer, patient: str) -> list[str]:
    page.goto(f"{server.url}/")
    page.get_by_label("Patient name").fill(patient)
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_url("**PatientName=*")
    return results(page)


def test_search_by_patient_name_then_narrow_by_a_facet(
    page: Page, browser_server: LiveServer, artifacts_dir: Path
) -> None:
    rows = search(page, browser_server, "jan")  # folded, prefix: JANCT000
    assert len(rows) == 2 and all("JANCT000" in row for row in rows)
    assert any("SEG" in row and "Liver Segmentation" in row for row in rows)
    facet = page.locator("#facets a[data-facet=Modality][data-key=SEG]")
    expect(facet.locator(".badge")).to_have_text("1")
    facet.click()
    page.wait_for_url("**Modality=SEG*")
    rows = results(page)
    assert len(rows) == 1 and "Liver Segmentation" in rows[0]
    expect(page.locator("#filters")).to_contain_text("Modality: SEG")
    expect(page.locator("#summary")).to_have_text("1–1 of 1 series")
    page.locator("#filters button").click()  # remove the filter again
    page.wait_for_url(lambda url: "Modality" not in url)
    assert len(results(page)) == 2
    page.screenshot(path=artifacts_dir / "dashboard.png")


def test_opens_a_study_in_the_viewer_from_the_dashboard(
    page: Page, browser_server: LiveServer, studies: Studies
) -> None:
    search(page, browser_server, "PAT1")
    page.locator("#results tr[data-series]").first.get_by_role("link", name="View").click()
    page.wait_for_url(f"**/viewer?StudyInstanceUIDs={studies.ct_rtstruct}")
    canvas = dismiss_notices(page)
    assert np.unique(shown_image(canvas)).size > IMAGE_GREY_LEVELS, "the viewport shows no image"


def test_a_study_page_lists_its_series_and_offers_downloads(
    page: Page, browser_server: LiveServer, studies: Studies
) -> None:
    page.goto(f"{browser_server.url}/studies/{studies.ct_seg}")
    expect(page.locator("#study h3")).to_contain_text("JANCT000")
    expect(page.locator("#series tr[data-series]")).to_have_count(2)
    expect(page.locator("#series")).to_contain_text("Liver Segmentation")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download (zip)").click()
    assert download.value.suggested_filename == f"{studies.ct_seg}.zip"
    # no Airflow here: the page says so rather than failing silently
    expect(page.locator("#runs")).to_contain_text("Runs are unavailable")
    expect(page.locator("#radiomics")).to_contain_text("No radiomics results")


def test_upload_stores_files_and_reports_each(
    page: Page, browser_server: LiveServer, shared_data: Path, tmp_path: Path
) -> None:
    dataset = with_new_uids(shared_data / "dcmqi-seg/ct-3slice/01.dcm", "Upload^Tessa")
    upload = tmp_path / "upload.dcm"
    dataset.save_as(upload)
    not_dicom = tmp_path / "notes.txt"
    not_dicom.write_text("not DICOM")
    page.goto(f"{browser_server.url}/upload")
    page.set_input_files("#files", [str(upload), str(not_dicom)])
    stored = page.locator("#uploads tr", has_text="upload.dcm")
    expect(stored).to_contain_text("stored")
    refused = page.locator("#uploads tr", has_text="notes.txt")
    expect(refused).to_contain_text("refused (400)")
    expect(refused).to_contain_text("not a DICOM object")
    stored.get_by_role("link", name="open study").click()
    expect(page.locator("#study h3")).to_contain_text("Upload, Tessa")


@pytest.fixture
def hostile_studies(browser_server: LiveServer, shared_data: Path) -> Iterator[list[str]]:
    """Studies whose PatientName is markup, stored and indexed; deleted afterwards."""
    client = DICOMwebClient(url=browser_server.dicomweb, session=browser_server.session())
    datasets = [
        with_new_uids(shared_data / "dcmqi-seg/ct-3slice/01.dcm", name) for name in HOSTILE_NAMES
    ]
    client.store_instances(datasets)
    session = browser_server.session()
    for dataset in datasets:
        indexed = session.post(
            f"{browser_server.url}/api/v1/search/series/{dataset.SeriesInstanceUID}", timeout=30
        )
        assert indexed.status_code == 200
    yield [str(dataset.StudyInstanceUID) for dataset in datasets]
    for dataset in datasets:
        session.delete(f"{browser_server.dicomweb}/studies/{dataset.StudyInstanceUID}", timeout=30)


def test_hostile_patient_names_are_shown_as_text(
    page: Page, browser_server: LiveServer, hostile_studies: list[str]
) -> None:
    dialogs: list[str] = []

    def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    pages = [
        f"{browser_server.url}/?q=&sort=-ArrivedAt",
        *(f"{browser_server.url}/studies/{study}" for study in hostile_studies),
        f"{browser_server.url}/overview",
    ]
    for url in pages:
        page.goto(url)
        page.wait_for_load_state("networkidle")
        assert page.locator("img[src=x]").count() == 0, url
        assert page.locator("#results script, #study script").count() == 0, url
    # "=" separates a name's alphabetic, ideographic and phonetic groups: the search shows
    # the first, the study page all three, each as plain text
    page.goto(f"{browser_server.url}/studies/{hostile_studies[0]}")
    expect(page.locator("#study h3")).to_contain_text("<img src = x onerror = alert(1)>")
    page.goto(f"{browser_server.url}/studies/{hostile_studies[1]}")
    expect(page.locator("#study h3")).to_contain_text("<script>alert(2)</script>")
    page.goto(f"{browser_server.url}/")
    expect(page.locator("#results")).to_contain_text("<script>alert(2)</script>")
    expect(page.locator("#results")).to_contain_text("<img src")
    assert dialogs == []
    assert page.evaluate("document.querySelectorAll('#results img:not(.pf-thumb)').length") == 0
