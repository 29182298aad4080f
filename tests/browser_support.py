"""Chromium for browser tests, as a pytest plugin (see the root conftest), so that tests in
any folder can drive the dashboard: tests/browser against a server with data, and
tests/workflows against the whole platform with Airflow. Plus helpers for the dashboard."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright
from pydicom.uid import generate_uid

from tests.live_server import ADMIN_PASSWORD, LiveServer

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium from Debian (scripts/install-test-tools.sh), not Playwright's own."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: run scripts/install-test-tools.sh (package chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """<repo>/test-artifacts: screenshots CI keeps (gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def signed_in_page(browser: Browser, server: LiveServer) -> Page:
    """A page in a fresh browser context, signed in as admin through the login form; close
    its context when done."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(f"{server.url}/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    with page.expect_navigation():
        page.click("[type=submit]")
    assert "/login" not in page.url, "signing in as admin failed"
    return page


def results(page: Page) -> list[str]:
    """The series rows of the dashboard's search page once it has searched, as their text."""
    # A locator assertion, not wait_for_function: the page's CSP forbids evaluating strings.
    expect(page.locator("#summary")).not_to_have_text(re.compile(r"^Search"), timeout=30_000)
    return [row.inner_text() for row in page.locator("#results tr[data-series]").all()]


def with_new_uids(path: Path, patient_name: str) -> pydicom.Dataset:
    """The file's data set as a new study of a patient of that name."""
    dataset = pydicom.dcmread(path)
    dataset.PatientName = patient_name
    dataset.PatientID = f"P-{generate_uid()[-8:]}"
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    return dataset
