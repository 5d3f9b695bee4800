"""The Earn page in a browser whose only WebGPU adapter is software (SwiftShader): it says so plainly, and says
when payouts would go to another wallet than the signed-in one, with a one-click fix. Its own Chromium, with
WebGPU, launched inside each test (no module `browser` here: one sync Playwright at a time)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.web import CHROMIUM, CHROMIUM_ARGS, VIEWPORTS, shoot

pytestmark = pytest.mark.e2e


@VIEWPORTS
def test_a_software_gpu_is_named_and_a_payout_wallet_that_differs_is_said(devnet, shots, viewport):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, "--enable-unsafe-webgpu"])
        try:
            page = browser.new_page(viewport=viewport)
            page.goto(devnet.url + "/agents")  # any page with the sign-in panel
            page.locator("[data-testid=dev-wallet]").nth(0).click()
            expect(page.locator("#agent-editor")).to_be_visible(timeout=30_000)  # signed in
            account = page.evaluate("JSON.parse(localStorage.getItem('one.session')).account")
            page.goto(devnet.url + "/worker")
            expect(page.locator("#software-gpu")).to_have_text(
                "This is a software-emulated GPU (SwiftShader): it works but is slow; you will earn little. A browser with a hardware GPU earns far more.",
                timeout=30_000)  # fmt: skip
            expect(page.locator("#leave-button")).to_be_disabled()
            page.locator("[data-testid=dev-wallet]").nth(1).click()  # another wallet as the payout address
            expect(page.locator("#payout-differs")).to_contain_text(f"not your signed-in wallet {account[:6]}…{account[-4:]}")
            expect(page.locator("#join-button")).to_be_enabled()
            shoot(page, shots, "earn-software-gpu", viewport)
            page.locator("#use-signed-in").click()
            expect(page.locator("#payout-address")).to_have_text(f"Payout address: {account}")
            expect(page.locator("#payout-differs")).to_have_count(0)
        finally:
            browser.close()
