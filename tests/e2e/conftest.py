"""Fixtures of the web app's browser tests (tests/e2e/web.py holds the helpers): one headless Chromium per
module (a second sync Playwright cannot start while one runs) and the screenshots folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.web import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def shots(test_output) -> Path:
    path = test_output / "screenshots"
    path.mkdir(exist_ok=True)
    return path
