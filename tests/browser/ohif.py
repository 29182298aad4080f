"""Helpers for browser tests that drive the OHIF viewer (a plain module: conftest is for
fixtures)."""

from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image
from playwright.sync_api import Locator, Page

IMAGE_SECONDS = 60
# A blank viewport is one grey level; a CT slice has hundreds.
IMAGE_GREY_LEVELS = 64


def dismiss_notices(page: Page, tour: bool = True) -> Locator:
    """Dismiss what OHIF shows on a first visit, and return the viewport's canvas.

    Every mode says "OHIF Viewer is for investigational use only"; the basic viewer (the one
    /viewer?StudyInstanceUIDs=... opens) also starts an onboarding tour.
    """
    page.get_by_text("Confirm and hide").click()
    if tour:
        page.get_by_text("Skip all").click()
    canvas = page.locator("canvas.cornerstone-canvas").first
    canvas.wait_for()
    return canvas


def shown_image(canvas: Locator) -> np.ndarray:
    """The canvas in grey levels, once it shows an image (or when IMAGE_SECONDS are over)."""
    deadline = time.monotonic() + IMAGE_SECONDS
    while True:
        pixels = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("L"))
        if np.unique(pixels).size > IMAGE_GREY_LEVELS or time.monotonic() > deadline:
            return pixels
        time.sleep(0.25)
