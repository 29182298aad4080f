"""The dashboard on the whole platform (Airflow running): a file uploaded in the browser is
found by search once `process_series` has indexed it, and a workflow started on a selected
series from the dashboard runs to success and shows on the study's page."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.browser_support import results, signed_in_page, with_new_uids
from tests.workflows.conftest import Platform

FOUND_SECONDS = 120
RUN_MILLISECONDS = 180_000


def test_upload_find_and_run_a_workflow_from_the_dashboard(
    platform: Platform, browser: Browser, shared_data: Path, tmp_path: Path
) -> None:
    dataset = with_new_uids(shared_data / "dcmqi-seg/ct-3slice/01.dcm", "Dashboard^Dora")
    upload = tmp_path / "dora.dcm"
    dataset.save_as(upload)
    page = signed_in_page(browser, platform.web)
    page.goto(f"{platform.web.url}/upload")
    page.set_input_files("#files", str(upload))
    expect(page.locator("#uploads tr", has_text="dora.dcm")).to_contain_text("stored")

    deadline = time.monotonic() + FOUND_SECONDS
    while True:  # the dispatcher waits for the quiet period, then process_series indexes
        page.goto(f"{platform.web.url}/?PatientName=dashboard")
        found = results(page)
        if found or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert len(found) == 1 and "Dashboard, Dora" in found[0]

    page.locator("#results input.pf-select").check()
    page.locator("#runner select").select_option("process_series")
    page.get_by_role("button", name="Run on selected series").click()
    run = page.locator("#runner tbody tr").first
    expect(run).to_contain_text(str(dataset.SeriesInstanceUID))
    expect(run.locator(".pf-state")).to_have_text("success", timeout=RUN_MILLISECONDS)

    page.goto(f"{platform.web.url}/studies/{dataset.StudyInstanceUID}")
    runs = page.locator("#runs tr")
    expect(runs.filter(has_text="manual__")).to_contain_text("success")
    expect(runs.filter(has_text="series__")).to_contain_text("process_series")
    page.context.close()
