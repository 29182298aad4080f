"""The OHIF viewer at /viewer, in Chromium: behind the login, configured for pacsflow's own
DICOMweb only, showing images, segmentations and ROIs, and saving measurement reports and
segmentations through STOW-RS into the archive."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from playwright.sync_api import Locator, Page, expect
from pydicom.uid import UID

from pacsflow.web.viewer import viewer_dist
from tests.browser.conftest import Studies
from tests.browser.ohif import IMAGE_GREY_LEVELS, dismiss_notices, shown_image
from tests.live_server import LiveServer

SOP_CLASS_UID = "00080016"
SERIES_DESCRIPTION = "0008103E"
SERIES_INSTANCE_UID = "0020000E"
REPORT_NAME = "browser test report"
SEGMENTATION_NAME = "Segmentation 1"  # OHIF's name for the first one drawn


@pytest.fixture(autouse=True)
def fetched_viewer() -> None:
    if not (viewer_dist() / "index.html").is_file():
        pytest.fail(f"the OHIF viewer is not in {viewer_dist()}: run `make viewer`")


@pytest.fixture
def requested(page: Page, browser_server: LiveServer) -> Iterator[list[str]]:
    """Every URL the page requests; afterwards all must be pacsflow's (the viewer runs offline)."""
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    yield urls
    own = (f"{browser_server.url}/", "data:", "blob:")
    assert [url for url in urls if not url.startswith(own)] == []


def open_study(page: Page, server: LiveServer, study: str, mode: str = "") -> Locator:
    """Open a study as the dashboard links it, or in an OHIF ``mode`` such as /segmentation;
    return the viewport's canvas."""
    page.goto(f"{server.url}/viewer{mode}?StudyInstanceUIDs={study}")
    return dismiss_notices(page, tour=not mode)


def open_segmentation(page: Page, description: str) -> None:
    """Load a SEG or RTSTRUCT series from the study browser and show the segmentation panel."""
    page.locator("[data-cy=study-browser-thumbnail-no-image]", has_text=description).dblclick()
    page.get_by_role("button", name="Yes", exact=True).click()  # "open this Segmentation?"
    page.locator("[data-cy=panelSegmentation-btn]").click()


def select_tool(page: Page, name: str) -> None:
    """Click a tool's button and wait until OHIF shows it active (highlighted)."""
    button = page.locator(f"[data-cy={name}-btn]")
    button.click()
    expect(button).to_have_class(re.compile(r"\bbg-highlight\b"))


def drag(page: Page, canvas: Locator) -> None:
    """Drag the mouse across the middle of the viewport, as a tool's user does."""
    box = canvas.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 120, y + 40, steps=10)
    page.mouse.up()


def stored_through_stow(page: Page, save: Locator) -> None:
    """Click ``save`` and check OHIF stored the object with pacsflow's STOW-RS."""
    with page.expect_response(
        lambda response: (
            response.request.method == "POST" and response.url.endswith("/dicomweb/studies")
        )
    ) as stow:
        save.click()
    assert stow.value.status == 200


def take_series(server: LiveServer, study: str, description: str) -> list[str]:
    """The SOP classes (by name) of the instances in the series of ``study`` named
    ``description``, which are then deleted to leave the shared server's data as the other
    browser tests expect it."""
    session = server.session()
    series_url = f"{server.dicomweb}/studies/{study}/series"
    sop_classes = []
    for series in session.get(series_url, timeout=10).json():
        if series.get(SERIES_DESCRIPTION, {}).get("Value") != [description]:
            continue
        url = f"{series_url}/{series[SERIES_INSTANCE_UID]['Value'][0]}"
        instances = session.get(f"{url}/instances", timeout=10).json()
        sop_classes += [UID(i[SOP_CLASS_UID]["Value"][0]).name for i in instances]
        assert session.delete(url, timeout=10).status_code == 200
    return sop_classes


def test_viewer_needs_a_login(browser_server: LiveServer) -> None:
    for path in ("/viewer", "/viewer/viewer?StudyInstanceUIDs=1.2.3", "/viewer/app-config.js"):
        response = requests.get(browser_server.url + path, allow_redirects=False, timeout=10)
        assert response.status_code == 302, path
        assert "/login/" in response.headers["Location"], path


@pytest.mark.usefixtures("requested")
def test_config_names_pacsflow_only(page: Page, browser_server: LiveServer) -> None:
    source = page.request.get(f"{browser_server.url}/viewer/app-config.js").text()
    assert re.findall(r"https?://", source) == []
    page.goto(f"{browser_server.url}/viewer/")
    page.wait_for_function("window.config !== undefined")
    sources = page.evaluate("window.config.dataSources.map(source => source.configuration)")
    roots = {source[key] for source in sources for key in ("qidoRoot", "wadoRoot", "wadoUriRoot")}
    assert roots == {f"{browser_server.url}/dicomweb"}


def test_shows_a_study_and_its_segmentation(
    page: Page,
    browser_server: LiveServer,
    studies: Studies,
    requested: list[str],
    artifacts_dir: Path,
) -> None:
    pixels = shown_image(open_study(page, browser_server, studies.ct_seg))
    assert np.unique(pixels).size > IMAGE_GREY_LEVELS, "the viewport shows no image"
    assert any("/frames/" in url for url in requested), "pixels come through WADO-RS frames"
    open_segmentation(page, "Liver Segmentation")
    expect(page.get_by_text("Liver", exact=True)).to_be_visible()  # the SEG's one segment
    page.screenshot(path=artifacts_dir / "viewer.png")


@pytest.mark.usefixtures("requested")
def test_lists_the_rois_of_an_rtstruct(
    page: Page, browser_server: LiveServer, studies: Studies
) -> None:
    shown_image(open_study(page, browser_server, studies.ct_rtstruct))
    open_segmentation(page, "RTSTRUCT")
    expect(page.get_by_text("GTV-1", exact=True)).to_be_visible()


@pytest.mark.usefixtures("requested")
def test_saves_a_measurement_report_through_stow(
    page: Page, browser_server: LiveServer, studies: Studies
) -> None:
    canvas = open_study(page, browser_server, studies.ct_seg)
    shown_image(canvas)
    select_tool(page, "Length")
    drag(page, canvas)
    page.get_by_role("button", name="Yes", exact=True).click()  # "Track measurements?"
    page.locator("[data-cy=trackedMeasurements-btn]").click()
    page.get_by_text("Create SR").click()
    page.get_by_placeholder("Report name").fill(REPORT_NAME)
    stored_through_stow(page, page.get_by_role("button", name="Save"))
    assert take_series(browser_server, studies.ct_seg, REPORT_NAME) == ["Enhanced SR Storage"]


@pytest.mark.usefixtures("requested")
def test_saves_a_drawn_segmentation_through_stow(
    page: Page, browser_server: LiveServer, studies: Studies
) -> None:
    canvas = open_study(page, browser_server, studies.ct_seg, mode="/segmentation")
    shown_image(canvas)
    page.get_by_text("Add segmentation").click()
    expect(page.get_by_text("Segment 1", exact=True)).to_be_visible()
    select_tool(page, "Brush")
    drag(page, canvas)
    page.locator("[data-cy=segmentation-collapsed-more-btn-Labelmap]").click()
    page.get_by_text("Export", exact=True).hover()
    page.get_by_text("DICOM SEG", exact=True).click()
    stored_through_stow(page, page.get_by_role("button", name="Save"))
    # Binary Segmentation Storage (app-config.js), which the radiomics routing rule takes
    assert take_series(browser_server, studies.ct_seg, SEGMENTATION_NAME) == [
        "Segmentation Storage"
    ]
