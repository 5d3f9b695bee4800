"""Issue 16 items 5, 7 and 10 (+ 11's local image history) in headless Chromium, at desktop 1366 px and phone 390x844:
Verify opened from a chat answer's receipt badge checks the output too; Packages asks before it spends and lists
and revokes keys; Images says honestly how its candidates ran and keeps them in this browser across reloads."""

from __future__ import annotations

import hashlib
import json
import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.web import VIEWPORTS, fund, send_chat, shoot, size_name, wallet_context

pytestmark = pytest.mark.e2e

BADGE = re.compile(r"^✓ receipt [0-9a-f]{8}… · [0-9.]+ credits · Included$")
OUTPUT_COLUMN = 8  # "#", "Receipt", five checks before it; 1-based for :nth-child


@VIEWPORTS
def test_verify_from_a_chat_badge_checks_the_output_and_reads_in_words(browser, devnet, shots, viewport):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(devnet.url + "/")
    send_chat(page, "say something")
    badge = page.locator(".one-assistant [data-testid=receipt-badge]")
    expect(badge).to_be_visible(timeout=60_000)
    receipt_hash = badge.get_attribute("data-hash")
    # The random tiny model emits any byte, "\r" and NUL included, which a textarea would rewrite: the answer is
    # checked exactly as answered all the same.
    badge.click()
    expect(page.locator("#verify-summary")).to_be_visible(timeout=30_000)
    row = page.locator("#verify-table tbody tr").first
    # the answer the badge carried is filled in and checked: the Output column turns from "–" to ✓
    expect(row.locator(f"td:nth-child({OUTPUT_COLUMN})")).to_have_text("✓", timeout=30_000)
    expect(page.locator("#verify-summary")).to_contain_text("all checks pass")
    expect(page.locator("#output-input")).not_to_have_value("")
    hash_cell = row.locator("td:nth-child(2)")
    expect(hash_cell).to_contain_text(receipt_hash[:12])  # the hash itself, not a chip
    assert hash_cell.locator("[title]").first.get_attribute("title") == receipt_hash
    headers = page.locator("#verify-table thead th").all_inner_texts()
    assert headers[:3] == ["#", "Receipt", "Hash"] and "Coordinator signature" in headers and headers[-1] == "Problems", headers
    expect(page.locator("#verify-intro code")).to_have_text("one verify")
    assert "`" not in page.locator("body").inner_text()
    shoot(page, shots, "verify", viewport)

    # a tampered receipt: each problem on one line of its own, "hash check failed" never broken into fragments
    receipt = httpx.get(f"{devnet.url}/one/receipts/{receipt_hash}").json()
    tampered = {**receipt, "charge": {**receipt["charge"], "amount": receipt["charge"]["amount"] + 1}}
    page.locator("#receipts-input").fill(json.dumps(tampered))
    page.locator("#output-input").fill("")
    page.locator("#verify-button").click()
    problems = page.locator("#verify-table .verify-problems").first
    expect(problems).to_contain_text("hash check failed", timeout=20_000)
    lines, height, line_height = problems.evaluate(
        "el => [el.innerText.split('\\n').length, el.getBoundingClientRect().height, parseFloat(getComputedStyle(el).lineHeight)]")
    assert height < (lines + 0.5) * line_height, (lines, height, line_height)  # no problem wrapped onto a second line
    if size_name(viewport) == "phone":  # the table scrolls sideways inside its box, the page does not
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"] + 1
    else:  # at 1366 px every column, problems included, fits without scrolling
        assert page.evaluate("(el => el.scrollWidth <= el.clientWidth + 1)(document.getElementById('verify-table-scroll'))")
    context.close()


@VIEWPORTS
@pytest.mark.holds_capacity
def test_packages_confirm_before_paying_then_list_and_revoke_the_key(browser, devnet, shots, viewport):
    """Buys at most once per run (the desktop case): a bought package holds reserved capacity until revoked.
    The phone case checks the confirm step, Escape and Cancel, and that nothing was sent."""
    from backend.chain import token_at
    from backend.chain.devchain import dev_accounts

    phone = size_name(viewport) == "phone"
    address = dev_accounts(20)[12 if phone else 11].address
    fund(devnet, address, one_tokens=0, usdc=10)
    usdc = token_at(devnet.chain.web3(), devnet.deployment.usdc_token)
    held = usdc.functions.balanceOf(address).call()
    context = wallet_context(browser, devnet, address, viewport)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=devnet.url)
    page = context.new_page()
    page.goto(devnet.url + "/packages")
    expect(page.locator("#packages-intro")).to_contain_text("local dev chain (id 31337)", timeout=30_000)
    expect(page.locator("[data-package=starter] [data-testid=priority]")).to_contain_text("lower runs sooner")
    page.locator("[data-testid=buy-starter]").click()
    page.locator("#sign-in-panel [data-testid=browser-wallet]").click()

    confirm = page.locator("#purchase-confirm")
    expect(confirm).to_be_visible(timeout=30_000)
    expect(page.locator("[data-testid=confirm-amount]")).to_have_text("5 USDC")
    expect(page.locator("[data-testid=confirm-wallet]")).to_have_text(address)
    expect(page.locator("[data-testid=confirm-chain]")).to_have_text("local dev chain (id 31337)")
    expect(page.locator("#confirm-purchase")).to_be_focused()  # keyboard: Enter pays, Escape cancels
    if phone:
        page.keyboard.press("Escape")
        expect(page.locator("#purchase-status")).to_contain_text("nothing was sent")
        page.locator("[data-testid=buy-starter]").click()
        expect(confirm).to_be_visible(timeout=10_000)
        page.locator("#cancel-purchase").click()
        expect(confirm).to_have_count(0)
        page.wait_for_timeout(500)
        assert usdc.functions.balanceOf(address).call() == held  # no transfer was sent
        expect(page.locator("#your-keys")).to_contain_text("No package keys yet")
        shoot(page, shots, "packages", viewport)
        context.close()
        return

    page.keyboard.press("Enter")
    expect(page.locator("#purchase-status")).to_contain_text("Starter confirmed", timeout=60_000)
    assert usdc.functions.balanceOf(address).call() == held - 5 * 10**6
    expect(page.locator("#key-callout strong")).to_have_text("Copy it now: it is shown only this once.")
    api_key = page.locator("#api-key").inner_text().strip()
    page.locator("#copy-key").click()
    expect(page.locator("#copy-status")).to_have_text("Copied ✓")
    assert page.evaluate("navigator.clipboard.readText()") == api_key
    expect(page.locator("#copy-status")).to_have_text("", timeout=4_000)  # the feedback goes after 2 s

    key_row = page.locator(f"#keys-table tr[data-key-id='{hashlib.sha256(api_key.encode()).hexdigest()}']")
    expect(key_row).to_contain_text("starter", timeout=10_000)
    expect(page.locator("#keys-balance")).to_contain_text("USDC left")
    shoot(page, shots, "packages", viewport)
    chat = {"model": "tiny-chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 4}
    # A leaked key is replaced: the old one stops, this browser switches to the new one, shown once.
    key_row.locator("[data-testid=revoke]").click()
    key_row.locator("[data-testid=confirm-replace]").click()
    expect(page.locator("#replacement-key")).to_have_text(re.compile(r"^one_sk_"), timeout=10_000)
    expect(key_row).to_have_count(0)
    replacement = page.locator("#replacement-key").inner_text().strip()
    assert json.loads(page.evaluate("localStorage.getItem('one.dedicated')"))["api_key"] == replacement
    assert httpx.post(f"{devnet.url}/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {api_key}"}, timeout=30).status_code == 401
    assert httpx.get(f"{devnet.url}/one/auth/me", headers={"authorization": f"Bearer {replacement}"}).json()["package"] == "starter"
    # Revoked for good: the key stops and this browser drops it.
    key_row = page.locator(f"#keys-table tr[data-key-id='{hashlib.sha256(replacement.encode()).hexdigest()}']")
    key_row.locator("[data-testid=revoke]").click()
    key_row.locator("[data-testid=confirm-revoke]").click()
    expect(page.locator("#keys-status")).to_contain_text("revoked", timeout=10_000)
    expect(key_row).to_have_count(0)
    assert page.evaluate("localStorage.getItem('one.dedicated')") is None  # this browser's key is dropped with it
    refused = httpx.post(f"{devnet.url}/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {replacement}"}, timeout=30)
    assert refused.status_code == 401, refused.text
    context.close()


@VIEWPORTS
def test_images_show_each_tiles_time_and_come_back_after_a_reload(browser, devnet, shots, viewport):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(devnet.url + "/images")
    expect(page.locator("#image-model option")).not_to_have_count(0, timeout=30_000)
    assert "in parallel" not in page.locator("body").inner_text()
    page.select_option("#image-count", "4")
    prompt = f"a lighthouse at dusk, {size_name(viewport)}"
    page.locator("#image-prompt").fill(prompt)
    page.locator("#generate-button").click()
    expect(page.locator("#image-status")).to_contain_text("requests sent at once")
    expect(page.locator("#image-grid img.one-image")).to_have_count(4, timeout=120_000)
    expect(page.locator("#image-status")).to_contain_text("4 of 4 ready")
    for time_text in page.locator("#image-grid [data-testid=tile-time]").all_inner_texts():
        assert re.fullmatch(r"\d+\.\d s", time_text), time_text
    badges = page.locator("#image-grid [data-testid=receipt-badge]")
    expect(badges).to_have_count(4)
    for text in badges.all_inner_texts():
        assert BADGE.match(text), text  # the same format as chat's
    expect(page.locator("#image-history li")).to_have_count(1, timeout=10_000)

    page.reload()  # the grid and its links come back from this browser's IndexedDB
    expect(page.locator("#image-grid img.one-image")).to_have_count(4, timeout=30_000)
    expect(page.locator("#image-history li").first).to_contain_text(prompt)
    href = page.locator("[data-testid=open-image]").first.get_attribute("href")
    assert href.startswith("blob:")
    signature = page.evaluate("async (u) => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer()).slice(0, 8))", href)
    assert bytes(signature) == b"\x89PNG\r\n\x1a\n"
    expect(page.locator("#image-grid [data-testid=receipt-badge]")).to_have_count(4)
    shoot(page, shots, "images", viewport)

    page.locator("#image-history [data-testid=delete-run]").first.click()
    expect(page.locator("#image-history")).to_have_count(0)
    expect(page.locator("#image-grid img.one-image")).to_have_count(0)
    page.reload()
    expect(page.locator("#image-model option")).not_to_have_count(0, timeout=30_000)
    expect(page.locator("#image-grid img.one-image")).to_have_count(0)
    context.close()
